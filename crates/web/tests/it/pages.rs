//! The pages, answered without a socket: content, escaping, filters and paging, actions.

use std::time::{Duration, Instant};

use oc_tasks::{NewTask, TaskId, TaskStatus};
use oc_web::{Method, Request, Response, Web};

use crate::filled;

fn get(web: &Web, target: &str) -> Response {
    web.respond(&Request::new(Method::Get, target))
}

fn post(web: &Web, target: &str, form: &[(&str, &str)]) -> Response {
    web.respond(&Request::new(Method::Post, target).form(form))
}

#[test]
fn every_page_renders_and_shows_agents_text_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let (web, _, _) = filled(dir.path());
    for path in [
        "/",
        "/ui/tasks",
        "/ui/tasks?status=failed",
        "/ui/tasks/f1",
        "/ui/tasks/r1",
        "/ui/locks",
        "/ui/agents",
        "/ui/alerts",
    ] {
        let r = get(&web, path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.content_type, "text/html; charset=utf-8");
        let body = r.body_text();
        for raw in ["<img src=x", "<script>boom", "<b>1</b>", "<i>flaky"] {
            assert!(!body.contains(raw), "{path} renders {raw} as markup");
        }
        assert!(body.contains(r#"<main id="main""#), "{path}");
    }
    let f1 = get(&web, "/ui/tasks/f1").body_text();
    assert!(f1.contains("&lt;img src=x onerror=alert(1)&gt; build docs"));
    assert!(
        f1.contains("&lt;script&gt;boom()&lt;/script&gt;"),
        "the error, escaped"
    );
    assert!(
        f1.contains(r#"action="/ui/tasks/f1/retry""#),
        "a failed task can be retried"
    );
    let r1 = get(&web, "/ui/tasks/r1").body_text();
    assert!(
        r1.contains("&lt;i&gt;flaky&lt;/i&gt; test"),
        "the log's tail"
    );
    assert!(r1.contains(r#"action="/ui/tasks/r1/cancel""#));
    assert!(
        get(&web, "/ui/agents")
            .body_text()
            .contains("agent-&lt;b&gt;1&lt;/b&gt;")
    );
    assert!(
        get(&web, "/ui/locks")
            .body_text()
            .contains("repo/src/lib.rs")
    );
    let overview = get(&web, "/").body_text();
    assert!(
        overview.contains(r#"href="/ui/tasks?status=failed">1<"#),
        "{overview}"
    );
    assert_eq!(get(&web, "/ui/tasks/nope").status, 404);
    assert_eq!(get(&web, "/ui/tasks/..%2Fetc").status, 404);
    assert_eq!(get(&web, "/nowhere").status, 404);
}

#[test]
fn filters_stay_in_the_url_and_pages_follow_on() {
    let dir = tempfile::tempdir().unwrap();
    let (web, store, _) = filled(dir.path());
    for i in 0..120 {
        store
            .create(NewTask::new(format!("bulk {i}")).label("bulk"))
            .unwrap();
    }
    let first = get(&web, "/ui/tasks?label=bulk&order=oldest").body_text();
    assert_eq!(first.matches("<tr>").count(), 51, "a header and 50 rows");
    assert!(first.contains(">bulk 0<") && !first.contains(">bulk 50<"));
    let next = first
        .split(r#"rel="next" href=""#)
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a next link")
        .replace("&amp;", "&");
    assert!(
        next.contains("label=bulk") && next.contains("order=oldest"),
        "{next}"
    );
    let second = get(&web, &next).body_text();
    assert!(second.contains(">bulk 50<") && !second.contains(">bulk 0<"));
    assert!(
        get(&web, "/ui/tasks?q=bulk+7")
            .body_text()
            .contains(">bulk 7<")
    );
    let bad = get(&web, "/ui/tasks?status=done").body_text();
    assert!(
        bad.contains(r#"role="alert""#) && bad.contains("done"),
        "{bad}"
    );
    let bad = get(&web, "/ui/tasks?after=garbage").body_text();
    assert!(bad.contains(r#"role="alert""#), "{bad}");
}

#[test]
fn actions_go_through_the_lifecycle_and_refusals_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let (web, store, locks) = filled(dir.path());
    let id = |s: &str| TaskId::new(s).unwrap();
    let r = post(&web, "/ui/tasks/f1/retry", &[]);
    assert_eq!(r.status, 303);
    assert!(r.headers.contains(&("Location", "/ui/tasks/f1".into())));
    assert_eq!(
        store.get(&id("f1")).unwrap().unwrap().status,
        TaskStatus::Pending
    );
    let r = post(&web, "/ui/tasks/c1/retry", &[]);
    assert_eq!(r.status, 409);
    assert!(r.body_text().contains("completed"), "{}", r.body_text());
    assert_eq!(
        store.get(&id("c1")).unwrap().unwrap().status,
        TaskStatus::Completed
    );
    assert_eq!(post(&web, "/ui/tasks/p1/cancel", &[]).status, 303);
    assert_eq!(
        store.get(&id("p1")).unwrap().unwrap().status,
        TaskStatus::Cancelled
    );
    assert_eq!(post(&web, "/ui/tasks/p1/explode", &[]).status, 404);
    assert_eq!(post(&web, "/ui/tasks/nope/retry", &[]).status, 404);
    assert_eq!(post(&web, "/ui/locks/release", &[]).status, 409);
    assert_eq!(
        post(&web, "/ui/locks/release", &[("owner", "agent-2")]).status,
        303
    );
    assert!(locks.list().unwrap().is_empty());
    let history = store.history(&id("f1")).unwrap();
    assert_eq!(
        history.last().unwrap().kind,
        oc_tasks::EventKind::Retried,
        "recorded like any other retry"
    );
}

#[test]
fn a_read_only_app_shows_its_actions_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let (web, _, _) = filled(dir.path());
    let web = web.read_only(true);
    let page = get(&web, "/ui/tasks/f1").body_text();
    assert!(page.contains("disabled"), "{page}");
    assert!(page.contains("read-only"));
    assert!(get(&web, "/ui/locks").body_text().contains("disabled"));
}

/// The overview's count of all tasks.
fn total(web: &Web) -> String {
    let page = get(web, "/").body_text();
    page.split(r#"<dd><a href="/ui/tasks">"#)
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap()
        .to_owned()
}

#[test]
fn the_overview_is_read_once_a_second_for_every_page() {
    let dir = tempfile::tempdir().unwrap();
    let (web, store, _) = filled(dir.path());
    let started = Instant::now();
    let before = total(&web);
    store.create(NewTask::new("late")).unwrap();
    let again = total(&web);
    if started.elapsed() < Duration::from_millis(900) {
        assert_eq!(before, again, "the second reader shares the first reading");
    }
    // An action through the page is shown at once.
    post(&web, "/ui/tasks/f1/retry", &[]);
    assert_eq!(total(&web), "5");
}

#[test]
fn the_script_and_stylesheet_are_served_from_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let (web, _, _) = filled(dir.path());
    let js = get(&web, "/static/app.js");
    assert_eq!(
        (js.status, js.content_type),
        (200, "text/javascript; charset=utf-8")
    );
    assert!(js.body_text().contains("visibilitychange"));
    let css = get(&web, "/static/app.css");
    assert_eq!(
        (css.status, css.content_type),
        (200, "text/css; charset=utf-8")
    );
    assert_eq!(get(&web, "/static/other.js").status, 404);
    let page = get(&web, "/").body_text();
    assert!(
        !page.contains("<script>") && !page.contains("<style"),
        "nothing inline"
    );
}

#[test]
fn alerts_are_shown_and_silenced_from_the_page() {
    use std::sync::Arc;

    use oc_alerts::{Condition, Dispatcher, Engine, RetryPolicy, Rule, Severity};
    use parking_lot::Mutex;

    let dir = tempfile::tempdir().unwrap();
    let (web, store, _) = filled(dir.path());
    let rule = Rule::new(
        "<b>TooMany</b>",
        Severity::High,
        Condition::when(|snap| Some(snap.tasks.total as f64)),
    )
    .summary("{{value}} tasks");
    let mut engine = Engine::new(vec![rule]).unwrap();
    let snap = oc_metrics::collect(&oc_metrics::Sources::new(&*store)).unwrap();
    engine.evaluate(&snap, store.now()).unwrap();
    let engine = Arc::new(Mutex::new(engine));
    let dispatcher = Arc::new(Dispatcher::new(Vec::new(), RetryPolicy::default()).unwrap());
    let web = web.alerting((Arc::clone(&engine), dispatcher));
    let page = get(&web, "/ui/alerts").body_text();
    assert!(
        page.contains("&lt;b&gt;TooMany&lt;/b&gt;") && page.contains("firing"),
        "{page}"
    );
    assert!(
        get(&web, "/").body_text().contains(r#"role="alert""#),
        "the firing banner"
    );

    let r = post(
        &web,
        "/ui/alerts/silence",
        &[
            ("matcher", "alertname=<b>TooMany</b>"),
            ("duration_secs", "3600"),
            ("comment", "deploying"),
        ],
    );
    assert_eq!(r.status, 303);
    let silences = engine.lock().silences().to_vec();
    assert_eq!(silences.len(), 1);
    assert_eq!(silences[0].comment, "deploying");
    assert!(get(&web, "/ui/alerts").body_text().contains("deploying"));
    for bad in [
        vec![("matcher", "no matcher here"), ("duration_secs", "3600")],
        vec![("matcher", "alertname=x"), ("duration_secs", "5")],
        vec![("duration_secs", "3600")],
    ] {
        assert_eq!(
            post(&web, "/ui/alerts/silence", &bad).status,
            409,
            "{bad:?}"
        );
    }
    assert_eq!(engine.lock().silences().len(), 1, "refusals added nothing");
    let id = silences[0].id.to_string();
    assert_eq!(
        post(&web, "/ui/alerts/unsilence", &[("id", &id)]).status,
        303
    );
    assert_eq!(
        post(&web, "/ui/alerts/unsilence", &[("id", "999")]).status,
        409
    );
    assert!(
        !get(&web, "/ui/alerts").body_text().contains("deploying"),
        "ended"
    );
}

#[test]
fn bulk_actions_confirm_the_count_and_act_through_the_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let (web, store, _) = filled(dir.path());
    for i in 0..3 {
        let t = store
            .create(NewTask::new(format!("flaky {i}")).label("ci"))
            .unwrap();
        store.start(&t.id, "a").unwrap();
        store.fail(&t.id, None, "flaked").unwrap();
    }
    let list = get(&web, "/ui/tasks?status=failed&label=ci").body_text();
    assert!(
        list.contains("/ui/bulk?action=retry&amp;status=failed&amp;label=ci"),
        "{list}"
    );
    let confirm = get(&web, "/ui/bulk?action=retry&status=failed&label=ci").body_text();
    assert!(confirm.contains("<strong>3</strong>"), "{confirm}");
    let r = post(
        &web,
        "/ui/bulk",
        &[("action", "retry"), ("status", "failed"), ("label", "ci")],
    );
    assert_eq!(r.status, 200);
    assert!(
        r.body_text().contains("<strong>3</strong> task(s) done"),
        "{}",
        r.body_text()
    );
    assert_eq!(
        store
            .count(&oc_tasks::TaskFilter::new().status(TaskStatus::Failed))
            .unwrap(),
        1,
        "the failed task without the label is untouched"
    );
    for bad in [
        vec![("action", "retry")],
        vec![("action", "retry"), ("status", "completed")],
        vec![("action", "cancel"), ("status", "failed")],
        vec![("action", "retry"), ("status", "bogus")],
    ] {
        assert_eq!(post(&web, "/ui/bulk", &bad).status, 409, "{bad:?}");
    }
    assert_eq!(
        store
            .count(&oc_tasks::TaskFilter::new().status(TaskStatus::Failed))
            .unwrap(),
        1,
        "refusals changed nothing"
    );
}

/// What an agent can pile up on a task: 5,000 decisions, 21 log entries of 800 KB, 90
/// transitions, 30 checkpoints. The page shows the newest of each, pages to the rest, cuts
/// each entry past 4 KiB with a link to it whole, and stays small.
#[test]
fn a_task_page_shows_the_newest_of_each_and_pages_to_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (web, store, _) = filled(dir.path());
    let id = TaskId::new("big").unwrap();
    let deps: Vec<NewTask> = (0..200)
        .map(|i| NewTask::new("dep").id(TaskId::new(format!("dep{i}")).unwrap()))
        .collect();
    store.create_many(deps).unwrap();
    let mut big = NewTask::new("big").id(id.clone());
    for i in 0..200 {
        big = big.depends_on(TaskId::new(format!("dep{i}")).unwrap());
    }
    store.create(big).unwrap();
    for _ in 0..45 {
        let t = store.claim(&id, "agent", Duration::from_secs(60)).unwrap();
        store.release(&id, t.lease.unwrap().token).unwrap();
    }
    let files = oc_jsonl::TaskFiles::new(dir.path(), "big").unwrap();
    for i in 0..30 {
        files
            .create_checkpoint(&format!("cp <b>{i}</b>"), store.now())
            .unwrap();
    }
    let decision = |i: usize| oc_jsonl::Decision {
        timestamp: store.now(),
        agent: "a".into(),
        decision: format!("decision <b>{i}</b>;"),
        reasoning: "r".repeat(if i == 4_999 { 10_000 } else { 400 }),
        metadata: Default::default(),
    };
    files.append_decision(&decision(0)).unwrap();
    oc_jsonl::JsonlWriter::open(
        files.dir().join("decisions.jsonl"),
        oc_jsonl::WriterOptions::default(),
    )
    .unwrap()
    .append_batch(&(1..5_000).map(decision).collect::<Vec<_>>())
    .unwrap();
    let log = files
        .log_writer(oc_jsonl::WriterOptions::default())
        .unwrap();
    for i in 0..21 {
        log.append(
            &oc_jsonl::LogEntry::new(
                store.now(),
                oc_jsonl::Level::Info,
                "big",
                format!("<i>{i}</i>{}", "x".repeat(800_000)),
            )
            .with("i", i),
        )
        .unwrap();
    }
    drop(log);

    let page = get(&web, "/ui/tasks/big");
    assert_eq!(page.status, 200);
    let body = page.body_text();
    assert!(body.len() < 300_000, "{} bytes", body.len());
    for (shown, hidden) in [
        (
            "decision &lt;b&gt;4999&lt;/b&gt;;",
            "decision &lt;b&gt;4979&lt;/b&gt;;",
        ),
        ("cp &lt;b&gt;29&lt;/b&gt;", "cp &lt;b&gt;9&lt;/b&gt;"),
        ("&lt;i&gt;20&lt;/i&gt;", "&lt;i&gt;0&lt;/i&gt;"),
    ] {
        assert!(body.contains(shown), "{shown}");
        assert!(!body.contains(hidden), "{hidden}");
    }
    assert!(body.contains("decision &lt;b&gt;4980&lt;/b&gt;;"));
    assert_eq!(
        body.matches(r#"href="/ui/tasks/dep"#).count(),
        50,
        "50 of 200 dependencies"
    );
    assert!(body.contains("… and 150 more"));
    assert_eq!(
        body.matches("released: running").count(),
        25,
        "the last 50 transitions"
    );
    assert!(
        !body.contains("created: none"),
        "the oldest transition is on an older page"
    );
    assert!(
        body.contains("… (cut: 10,000 bytes; ") && body.contains("… (cut: 800,009 bytes; "),
        "log entries are cut"
    );
    for (name, older) in [
        ("decisions", "/ui/tasks/big?decisions=20"),
        ("history", "/ui/tasks/big?history=50"),
        ("log", "/ui/tasks/big?log=20"),
        ("checkpoints", "/ui/tasks/big?checkpoints=20"),
    ] {
        assert!(body.contains(&format!(r#"href="{older}""#)), "older {name}");
    }

    let older = get(&web, "/ui/tasks/big?decisions=20&log=20").body_text();
    assert!(
        older.contains("decision &lt;b&gt;4979&lt;/b&gt;;")
            && older.contains("decision &lt;b&gt;4960&lt;/b&gt;;")
    );
    assert!(!older.contains("decision &lt;b&gt;4980&lt;/b&gt;;"));
    assert!(older.contains("&lt;i&gt;0&lt;/i&gt;") && !older.contains("&lt;i&gt;1&lt;/i&gt;"));
    assert!(
        older.contains(r#"href="/ui/tasks/big?log=20&amp;decisions=0""#),
        "back to the newest, the other page kept"
    );
    let last = get(&web, "/ui/tasks/big?decisions=4990").body_text();
    assert!(
        last.contains("decision &lt;b&gt;9&lt;/b&gt;;")
            && last.contains("decision &lt;b&gt;0&lt;/b&gt;;")
    );
    assert!(
        !last.contains("?decisions=5010"),
        "no older page after the oldest"
    );
    assert!(
        get(&web, "/ui/tasks/big?decisions=99999")
            .body_text()
            .contains("None recorded")
    );

    // One click to an entry whole: the link the cut entry carries.
    let at = body.rfind("?entry=").unwrap();
    let href: String = body[at..].chars().take_while(|&c| c != '"').collect();
    let whole = get(
        &web,
        &format!("/ui/tasks/big{}", href.replace("&amp;", "&")),
    );
    assert_eq!(whole.status, 200);
    let whole = whole.body_text();
    assert!(whole.contains(&format!("&lt;i&gt;20&lt;/i&gt;{}", "x".repeat(800_000))));
    let at = body.rfind("?decision=").unwrap();
    let href: String = body[at..].chars().take_while(|&c| c != '"').collect();
    assert!(
        get(&web, &format!("/ui/tasks/big{href}"))
            .body_text()
            .contains(&"r".repeat(10_000)),
        "a decision whole"
    );
    // Offsets an agent or a stale link makes up: not found, nothing else.
    for bad in [
        "?entry=1",
        "?entry=99999999999",
        // The first line of a rotated file that is not there (generation 9, offset 0).
        "?entry=2533274790395904",
        "?entry=x",
        "?decision=3",
    ] {
        let r = get(&web, &format!("/ui/tasks/big{bad}"));
        assert_eq!(r.status, 404, "{bad}");
    }
    for bad in [
        "?decisions=x",
        "?log=-1",
        "?history=99999999999999999999999",
    ] {
        assert_eq!(
            get(&web, &format!("/ui/tasks/big{bad}")).status,
            200,
            "{bad}"
        );
    }
}

/// Each list of a task's page fails alone and says why: a decisions file swapped for a link
/// is refused (never followed) and named, while the log beside it is shown.
#[test]
fn a_part_of_a_task_page_that_cannot_be_read_says_why_and_the_rest_is_shown() {
    let dir = tempfile::tempdir().unwrap();
    let (web, _, _) = filled(dir.path());
    let elsewhere = dir.path().join("elsewhere.jsonl");
    std::fs::write(
        &elsewhere,
        "{\"timestamp\":\"2026-01-01T00:00:00Z\",\"agent\":\"x\",\"decision\":\"<b>planted</b>\",\"reasoning\":\"\"}\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(&elsewhere, dir.path().join("tasks/r1/decisions.jsonl")).unwrap();
    let page = get(&web, "/ui/tasks/r1");
    assert_eq!(page.status, 200);
    let body = page.body_text();
    assert!(
        body.contains("&lt;i&gt;flaky&lt;/i&gt; test"),
        "the log is shown"
    );
    assert!(!body.contains("planted"), "nothing read through the link");
    assert!(
        body.contains(r#"<p class="error" role="alert">refusing "#)
            && body.contains("symbolic link"),
        "{body}"
    );
    assert!(!body.contains("None recorded."));
}
