//! The app: what it is built over, and the router.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oc_alerts::{Dispatcher, Engine};
use oc_hooks::TaskLifecycle;
use oc_jsonl::TaskFileStore;
use oc_locks::{LockManager, Owner};
use oc_metrics::{
    Exporter, LatencyTracker, PROMETHEUS_CONTENT_TYPE, PerformanceGoals, Snapshot, Sources, collect,
};
use oc_tasks::{StorageSource, TaskId, TaskStore};
use parking_lot::Mutex;

use crate::http::{Method, Request, Response, param};
use crate::pages;

/// The alert engine `oc serve --alerts` evaluates in the background, and its receivers.
pub type Alerting = (Arc<Mutex<Engine>>, Arc<Dispatcher>);

/// The consistency check `/healthz` runs: the problems found (none: healthy).
type Health = dyn Fn() -> Result<Vec<String>, String> + Send + Sync;

/// What a run of the health check found.
type Checked = Result<Vec<String>, String>;

/// How long one run of the health check answers `/healthz`: the check (SQLite's integrity
/// check reads the whole database) runs at most this often, whatever the number of probes.
pub const HEALTH_FOR: Duration = Duration::from_secs(5);

/// How long every open page shares one reading of the overview.
const SHARED_FOR: Duration = Duration::from_secs(1);

/// A note on a task's files, by task id (see [`Web::file_notes`]); `None` says nothing.
pub type FileNotes = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The app behind `oc serve`: the machine routes and the pages.
pub struct Web {
    pub(crate) life: TaskLifecycle,
    pub(crate) locks: Arc<dyn LockManager>,
    pub(crate) files: Option<Arc<dyn TaskFileStore>>,
    pub(crate) file_notes: Option<FileNotes>,
    storage: Option<Arc<dyn StorageSource>>,
    health: Option<Arc<Health>>,
    /// The last run of the health check and when it ended.
    checked: Mutex<Option<(Instant, Checked)>>,
    pub(crate) alerting: Option<Alerting>,
    pub(crate) read_only: bool,
    /// The pages are behind the login: the navigation offers logout.
    pub(crate) login: bool,
    exporter: Option<Exporter>,
    latency: LatencyTracker,
    overview: Mutex<Option<(Instant, Arc<pages::overview::Data>)>>,
    pub(crate) samples: Mutex<pages::chart::Samples>,
}

impl std::fmt::Debug for Web {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Web")
            .field("files", &self.files.as_ref().map(|f| f.location()))
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

impl Web {
    /// The app over `life` (tasks, with hooks and history) and `locks`.
    pub fn new(life: TaskLifecycle, locks: Arc<dyn LockManager>) -> Web {
        Web {
            life,
            locks,
            files: None,
            file_notes: None,
            storage: None,
            health: None,
            checked: Mutex::new(None),
            alerting: None,
            read_only: false,
            login: false,
            exporter: Exporter::new().ok(),
            latency: LatencyTracker::new(Duration::from_secs(1)),
            overview: Mutex::new(None),
            samples: Mutex::new(pages::chart::Samples::default()),
        }
    }

    /// The store of the tasks' files (a data directory's `oc_jsonl::DirFileStore`, or
    /// PostgreSQL's): the tasks' logs, decisions and checkpoints on their pages, and the log
    /// volume in `/metrics`.
    pub fn files(mut self, files: Arc<dyn TaskFileStore>) -> Web {
        self.files = Some(files);
        self
    }

    /// What to say on a task's page about its files (a banner): `oc` says there when a task's
    /// files are still in this host's data directory while the pages read PostgreSQL.
    pub fn file_notes(mut self, notes: Option<FileNotes>) -> Web {
        self.file_notes = notes;
        self
    }

    /// The database's storage figures, for `/metrics`.
    pub fn storage(mut self, storage: Arc<dyn StorageSource>) -> Web {
        self.storage = Some(storage);
        self
    }

    /// The database's consistency check, for `/healthz`.
    pub fn health(
        mut self,
        check: impl Fn() -> Result<Vec<String>, String> + Send + Sync + 'static,
    ) -> Web {
        self.health = Some(Arc::new(check));
        self
    }

    /// The alert engine and its receivers: `/metrics` reports what fires, the alerts page
    /// shows every rule and alert.
    pub fn alerting(mut self, alerting: Alerting) -> Web {
        self.alerting = Some(alerting);
        self
    }

    /// Refuses every action (403) and shows none.
    pub fn read_only(mut self, read_only: bool) -> Web {
        self.read_only = read_only;
        self
    }

    /// Whether the pages are behind the login of `oc serve` ([`crate::Sessions`]): the
    /// navigation then offers "Log in another browser" and "Log out".
    pub fn login(mut self, login: bool) -> Web {
        self.login = login;
        self
    }

    /// Whether actions are refused.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    pub(crate) fn store(&self) -> &Arc<dyn TaskStore> {
        self.life.store()
    }

    /// Answers `req` (which has passed the guard).
    pub fn respond(&self, req: &Request) -> Response {
        let path = req.path.as_str();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (req.method, segments.as_slice()) {
            (Method::Get, ["metrics"]) => self.metrics(),
            (Method::Get, ["healthz"]) => self.healthz(),
            (Method::Get, ["api", "stats"]) => {
                match self.snapshot().map(|s| serde_json::to_string_pretty(&s)) {
                    Ok(Ok(json)) => Response::new(200, "application/json", json),
                    Ok(Err(e)) => Response::text(500, format!("{e}\n")),
                    Err(e) => Response::text(500, format!("{e}\n")),
                }
            }
            (Method::Get, ["static", name]) => pages::asset(name),
            (Method::Get, [""]) => pages::overview::page(self),
            (Method::Get, ["ui", "tasks"]) => pages::tasks::list(self, req),
            (Method::Get, ["ui", "bulk"]) => pages::bulk::confirm(self, req),
            (Method::Post, ["ui", "bulk"]) => pages::bulk::apply(self, req),
            (Method::Get, ["ui", "tasks", id]) => pages::tasks::detail(self, id, req),
            (Method::Get, ["ui", "locks"]) => pages::locks::page(self),
            (Method::Get, ["ui", "agents"]) => pages::agents::page(self),
            (Method::Get, ["ui", "alerts"]) => pages::alerts::page(self),
            (Method::Post, ["ui", "tasks", id, action]) => self.task_action(id, action),
            (Method::Post, ["ui", "locks", "release"]) => self.release_owner(req),
            (Method::Post, ["ui", "alerts", "silence"]) => self.silence(req),
            (Method::Post, ["ui", "alerts", "unsilence"]) => self.unsilence(req),
            (Method::Post, _) | (Method::Other, _) => Response::text(405, "nothing to do here\n"),
            (Method::Get, _) => pages::not_found(self, path),
        }
    }

    /// Everything `/metrics` and `/api/stats` report, each reading timed as `db_query`.
    fn snapshot(&self) -> oc_metrics::Result<Snapshot> {
        let mut sources = Sources::new(&**self.store()).locks(&*self.locks);
        if let Some(s) = &self.storage {
            sources = sources.storage(&**s);
        }
        if let Some(f) = &self.files {
            sources = sources.files(&**f);
        }
        let mut snap = self.latency.time("db_query", || collect(&sources))?;
        snap.latency = self.latency.all();
        snap.violations = PerformanceGoals::default().check(&self.latency);
        snap.alerts = self
            .alerting
            .as_ref()
            .map(|(engine, d)| oc_alerts::figures(&engine.lock(), Some(d)));
        Ok(snap)
    }

    fn metrics(&self) -> Response {
        let Some(exporter) = &self.exporter else {
            return Response::text(500, "the metrics exporter could not start\n");
        };
        match self.snapshot() {
            Ok(s) => Response::new(200, PROMETHEUS_CONTENT_TYPE, exporter.render(&s)),
            Err(e) => Response::text(500, format!("{e}\n")),
        }
    }

    /// The health check's answer, run at most once per [`HEALTH_FOR`]: one probe runs it while
    /// the others are answered by its last run (or wait for the first).
    fn healthz(&self) -> Response {
        let checked = self.health.as_ref().map(|h| {
            let mut last = self.checked.lock();
            match &*last {
                Some((at, found)) if at.elapsed() < HEALTH_FOR => found.clone(),
                _ => {
                    let found = h();
                    *last = Some((Instant::now(), found.clone()));
                    found
                }
            }
        });
        match checked {
            None => Response::text(200, "ok\n"),
            Some(Ok(p)) if p.is_empty() => Response::text(200, "ok\n"),
            Some(Ok(p)) => Response::text(503, format!("{}\n", p.join("\n"))),
            Some(Err(e)) => Response::text(503, format!("{e}\n")),
        }
    }

    /// Reads the overview's figures if they are older than a second, which also samples the
    /// throughput chart's counters; `serve` calls it every few seconds, so the chart fills in
    /// while nobody watches.
    pub fn sample(&self) -> Result<(), String> {
        self.overview().map(drop)
    }

    /// The overview's figures, read at most once a second whatever the number of open pages.
    pub(crate) fn overview(&self) -> Result<Arc<pages::overview::Data>, String> {
        let mut cached = self.overview.lock();
        if let Some((at, data)) = &*cached
            && at.elapsed() < SHARED_FOR
        {
            return Ok(Arc::clone(data));
        }
        let data = Arc::new(pages::overview::Data::read(self)?);
        *cached = Some((Instant::now(), Arc::clone(&data)));
        Ok(data)
    }

    /// A task's action from its page (a form post): retry or cancel, through the lifecycle,
    /// then back to the page (303), or a page saying why not.
    fn task_action(&self, id: &str, action: &str) -> Response {
        let Ok(task) = TaskId::new(id) else {
            return pages::not_found(self, id);
        };
        let done = match action {
            "retry" => self.life.retry(&task),
            "cancel" => self.life.cancel(&task),
            _ => return Response::text(404, format!("no action {action:?}\n")),
        };
        self.forget_overview();
        match done {
            Ok(_) => Response::see_other(&format!("/ui/tasks/{task}")),
            Err(e) if e.is_not_found() => pages::not_found(self, id),
            Err(e) => pages::refused(
                self,
                &format!("Cannot {action} {task}"),
                &e.to_string(),
                &format!("/ui/tasks/{task}"),
            ),
        }
    }

    /// Frees every lock of an owner (emergency cleanup from the locks page).
    fn release_owner(&self, req: &Request) -> Response {
        let form = req.form_pairs();
        let Some(Ok(owner)) = param(&form, "owner").map(Owner::new) else {
            return pages::refused(
                self,
                "Cannot release",
                "the form names no valid owner",
                "/ui/locks",
            );
        };
        self.forget_overview();
        match self.locks.release_owner(&owner) {
            Ok(_) => Response::see_other("/ui/locks"),
            Err(e) => pages::refused(self, "Cannot release", &e.to_string(), "/ui/locks"),
        }
    }

    /// Silences the alerts a matcher picks (`alertname=Rule`) for `duration_secs`.
    fn silence(&self, req: &Request) -> Response {
        let form = req.form_pairs();
        let field = |name: &str| param(&form, name);
        let refuse = |why: &str| pages::refused(self, "Cannot silence", why, "/ui/alerts");
        let Some((engine, _)) = &self.alerting else {
            return refuse("this server evaluates no alert rules");
        };
        let matcher = match field("matcher").map(oc_alerts::Matcher::parse) {
            Some(Ok(m)) => m,
            Some(Err(e)) => return refuse(&e.to_string()),
            None => return refuse("the form names no matcher"),
        };
        let secs = match field("duration_secs").map(str::parse::<u64>) {
            Some(Ok(s)) if (60..=7 * 86_400).contains(&s) => s,
            _ => return refuse("the duration must be a whole number of seconds from 60 to 604800"),
        };
        let comment = field("comment")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .unwrap_or("silenced from oc serve");
        let now = self.store().now();
        let done = engine
            .lock()
            .silence(vec![matcher], now, Duration::from_secs(secs), comment);
        self.forget_overview();
        match done {
            Ok(_) => Response::see_other("/ui/alerts"),
            Err(e) => refuse(&e.to_string()),
        }
    }

    /// Ends a silence now.
    fn unsilence(&self, req: &Request) -> Response {
        let form = req.form_pairs();
        let id = param(&form, "id").and_then(|v| v.parse::<u64>().ok());
        let refuse = |why: &str| pages::refused(self, "Cannot end the silence", why, "/ui/alerts");
        let (Some((engine, _)), Some(id)) = (&self.alerting, id) else {
            return refuse("the form names no silence of this server");
        };
        let now = self.store().now();
        let done = engine.lock().expire_silence(id, now);
        self.forget_overview();
        match done {
            Ok(true) => Response::see_other("/ui/alerts"),
            Ok(false) => refuse(&format!("there is no silence {id}")),
            Err(e) => refuse(&e.to_string()),
        }
    }

    /// After an action, the next page shows its effect at once.
    pub(crate) fn forget_overview(&self) {
        *self.overview.lock() = None;
    }
}
