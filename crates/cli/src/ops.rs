//! `oc metrics`, `oc db stats|check`, `oc health`, `oc serve`.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use oc_metrics::{Exporter, collect};
use serde::Serialize;

use crate::args::{DbCmd, MetricsFormat, ServeArgs};
use crate::output::{Clean, Output, thousands};
use crate::{Site, Tasks, UsageError};

pub(crate) fn metrics(site: &Site, format: MetricsFormat, out: &mut Output) -> anyhow::Result<()> {
    let tasks = site.tasks()?;
    let locks = site.locks()?;
    let files = site.files()?;
    let snap = collect(&tasks.sources().locks(&*locks).files(&*files))?;
    match format {
        MetricsFormat::Json => out.emit("metrics", &snap, |w, _| {
            serde_json::to_writer_pretty(&mut *w, &snap)?;
            writeln!(w)
        }),
        MetricsFormat::Prometheus => {
            let text = Exporter::new()?.render(&snap);
            out.emit(
                "metrics",
                &serde_json::json!({ "prometheus": text }),
                |w, _| w.write_all(text.as_bytes()),
            )
        }
    }
}

pub(crate) fn db(site: &Site, cmd: DbCmd, out: &mut Output) -> anyhow::Result<()> {
    let tasks = site.tasks()?;
    match cmd {
        DbCmd::ImportFiles { tasks } => crate::import::run(site, &tasks, out),
        DbCmd::Prune {
            finished_older_than,
            archive,
            batch,
        } => crate::prune::run(&tasks.store(), finished_older_than, archive, batch, out),
        DbCmd::Migrate => {
            // Opening migrates, once, whatever other hosts do at the same time.
            site.locks()?;
            site.files()?;
            if let Some(opts) = site.postgres()? {
                oc_postgres::PgFileImports::connect(opts)?;
            }
            crate::alerts::store(site)?;
            site.tokens()?;
            let place = match tasks {
                Tasks::Postgres(_) => {
                    "Tasks, locks, task files, alerts and tokens in the PostgreSQL schema"
                        .to_owned()
                }
                Tasks::Sqlite(db) => format!("Tasks, locks and tokens in {}", db.path().display()),
            };
            out.emit(
                "db.migrate",
                &serde_json::json!({ "migrated": true }),
                |w, o| {
                    if o.quiet {
                        Ok(())
                    } else {
                        writeln!(w, "{place} are at this build's schema")
                    }
                },
            )
        }
        DbCmd::Stats => {
            let store = match tasks {
                Tasks::Sqlite(db) => db,
                Tasks::Postgres(pg) => {
                    let st = pg.server_stats()?;
                    return out.emit("db.stats", &st, |w, _| {
                        writeln!(w, "Server: {}", st.server_version)?;
                        writeln!(w, "Database: {} bytes", thousands(st.database_bytes))?;
                        writeln!(w, "Tasks table: {} bytes", thousands(st.tasks_bytes))?;
                        writeln!(
                            w,
                            "Cache: {} hits, {} reads (the whole server)",
                            thousands(st.cache_hits),
                            thousands(st.cache_reads)
                        )
                    });
                }
            };
            let st = store.storage_stats()?;
            out.emit("db.stats", &st, |w, _| {
                writeln!(w, "Database: {}", st.location)?;
                writeln!(
                    w,
                    "Size: {} bytes ({} pages of {} bytes, {} free)",
                    thousands(st.database_bytes()),
                    thousands(st.page_count),
                    st.page_size,
                    thousands(st.freelist_count)
                )?;
                writeln!(
                    w,
                    "File: {} bytes, WAL: {} bytes",
                    thousands(st.file_bytes),
                    thousands(st.wal_bytes)
                )?;
                writeln!(
                    w,
                    "Cache: {} hits, {} misses (this process)",
                    thousands(st.cache_hits),
                    thousands(st.cache_misses)
                )?;
                writeln!(
                    w,
                    "Slow statements (>= {} ms): {}",
                    st.slow_threshold_ms, st.slow_statements
                )?;
                for s in &st.recent_slow {
                    writeln!(w, "  {} us  {}", s.duration_us, Clean(&s.sql))?;
                }
                Ok(())
            })
        }
        DbCmd::Check => {
            let problems = tasks.check()?;
            out.emit(
                "db.check",
                &serde_json::json!({ "ok": problems.is_empty(), "problems": problems }),
                |w, _| {
                    if problems.is_empty() {
                        writeln!(w, "ok")
                    } else {
                        problems
                            .iter()
                            .try_for_each(|p| writeln!(w, "{}", Clean(&p.to_string())))
                    }
                },
            )?;
            if problems.is_empty() {
                Ok(())
            } else {
                anyhow::bail!(
                    "the database failed its integrity check ({} problem(s))",
                    problems.len()
                )
            }
        }
    }
}

/// One health check.
#[derive(Debug, Serialize)]
struct Check {
    name: &'static str,
    status: &'static str,
    message: String,
}

fn check(name: &'static str, r: anyhow::Result<(bool, String)>) -> Check {
    match r {
        Ok((true, message)) => Check {
            name,
            status: "healthy",
            message,
        },
        Ok((false, message)) => Check {
            name,
            status: "warning",
            message,
        },
        Err(e) => Check {
            name,
            status: "unhealthy",
            message: crate::one_line(&e),
        },
    }
}

/// Free and total bytes of the filesystem holding `dir`, from `df -Pk`.
fn disk_space(dir: &Path) -> anyhow::Result<(u64, u64)> {
    let out = std::process::Command::new("df")
        .arg("-Pk")
        .arg(dir)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = text
        .lines()
        .nth(1)
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    let kb = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| anyhow::anyhow!("cannot read `df` output"))
    };
    Ok((kb(3)? * 1024, kb(1)? * 1024))
}

pub(crate) fn health(site: &Site, out: &mut Output) -> anyhow::Result<()> {
    let data_dir = site.data_dir.as_path();
    let checks = vec![
        check(
            "database",
            (|| {
                let tasks = site.tasks()?;
                let problems = tasks.check()?;
                anyhow::ensure!(
                    problems.is_empty(),
                    "integrity check failed: {}",
                    problems.join("; ")
                );
                let size = thousands(tasks.size()?);
                Ok((
                    true,
                    match &tasks {
                        Tasks::Postgres(pg) => {
                            format!("ok, {size} bytes, {}", pg.server_stats()?.server_version)
                        }
                        Tasks::Sqlite(_) => format!("ok, {size} bytes"),
                    },
                ))
            })(),
        ),
        check(
            "data_dir",
            (|| {
                // A fresh, unguessable name created exclusively (`O_CREAT | O_EXCL` never follows
                // a link, nor opens what someone planted), and removed after: whatever else is
                // in the data directory is never written through.
                use rand::{Rng, SeedableRng};
                let token: u64 = rand::rngs::StdRng::from_os_rng().random();
                let probe = data_dir.join(format!(".oc-health-probe-{token:016x}"));
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&probe)
                    .with_context(|| format!("cannot create {}", probe.display()))?;
                let written = std::io::Write::write_all(&mut f, b"ok");
                drop(f);
                std::fs::remove_file(&probe)
                    .with_context(|| format!("cannot remove {}", probe.display()))?;
                written.with_context(|| format!("cannot write {}", probe.display()))?;
                Ok((true, format!("{} is writable", data_dir.display())))
            })(),
        ),
        check(
            "disk",
            (|| {
                let (free, total) = disk_space(data_dir)?;
                let used = 100.0 * (1.0 - free as f64 / total.max(1) as f64);
                anyhow::ensure!(
                    used < 95.0,
                    "{used:.1}% used, {} bytes free",
                    thousands(free)
                );
                Ok((
                    used < 90.0,
                    format!("{used:.1}% used, {} bytes free", thousands(free)),
                ))
            })(),
        ),
        check(
            "task_files",
            (|| {
                // Where every host reads logs, decisions and checkpoints from, and that it
                // answers: the data directory's, or the database's.
                let files = site.files()?;
                let v = files.volume()?;
                Ok((
                    true,
                    format!(
                        "{}: {} task log(s), {} entries",
                        files.location(),
                        thousands(v.tasks),
                        thousands(v.entries)
                    ),
                ))
            })(),
        ),
    ];
    let healthy = checks.iter().all(|c| c.status != "unhealthy");
    let overall = if healthy {
        if checks.iter().all(|c| c.status == "healthy") {
            "healthy"
        } else {
            "warning"
        }
    } else {
        "unhealthy"
    };
    out.emit(
        "health",
        &serde_json::json!({ "overall": overall, "checks": checks }),
        |w, _| {
            for c in &checks {
                writeln!(w, "{:<10} {:<9} {}", c.name, c.status, Clean(&c.message))?;
            }
            writeln!(w, "overall: {overall}")
        },
    )?;
    anyhow::ensure!(
        healthy,
        "unhealthy: {}",
        checks
            .iter()
            .filter(|c| c.status == "unhealthy")
            .map(|c| c.name)
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// A tenant's app for `oc serve`: the pages and `/mcp` over the tenant's own stores
/// ([`Site::tenant`], created and migrated here on first use), one task store and one lock
/// manager shared by both. No alerting: `--alerts` evaluates the default store's rules.
fn tenant_app(
    site: &Site,
    read_only: bool,
    login: bool,
    tools: crate::args::McpTools,
) -> anyhow::Result<oc_web::TenantApp> {
    let tasks = site.tasks()?;
    let locks = site.locks()?;
    let files = site.files()?;
    let life = oc_hooks::TaskLifecycle::new(tasks.store(), Arc::new(oc_hooks::Hooks::new()));
    let checked = tasks.clone();
    let web = oc_web::Web::new(life.clone(), Arc::clone(&locks))
        .files(Arc::clone(&files))
        .file_notes(
            crate::import::Notes::new(site)
                .map(|n| Arc::new(move |task: &str| n.line(task)) as oc_web::FileNotes),
        )
        .storage(tasks.storage_source())
        .health(move || checked.check().map_err(|e| crate::one_line(&e)))
        .read_only(read_only)
        .login(login);
    let mut mcp = oc_mcp::Server::new(oc_mcp::Toolbox::new(life, locks).files(files));
    if tools == crate::args::McpTools::All {
        mcp = mcp.all_tools();
    }
    Ok(oc_web::TenantApp {
        web: Arc::new(web),
        mcp: Some(Arc::new(oc_mcp::HttpSessions::new(
            mcp,
            oc_mcp::HttpOptions::default(),
        ))),
    })
}

pub(crate) fn serve(site: &Site, args: ServeArgs, out: &mut Output) -> anyhow::Result<()> {
    if let Some(t) = site.tenant_name() {
        return Err(UsageError(format!(
            "oc serve serves every tenant, each to its own tokens: start it without --tenant {t}"
        ))
        .into());
    }
    let oauth = oauth_config(&args)?;
    // With --alerts, rules are evaluated in the background, /metrics reports what fires and
    // the alerts page shows every rule.
    let alerting = args
        .alerts
        .as_deref()
        .map(|cfg| crate::alerts::Alerting::open(site, Some(cfg)))
        .transpose()?;
    let files = site.files()?;
    let _evaluator = alerting
        .as_ref()
        .map(|a| a.spawn(site, files.clone()))
        .transpose()?;
    let token = match (&args.token_file, args.token_env) {
        (Some(file), _) => {
            let t = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the token file {}", file.display()))?;
            let t = t.trim().to_owned();
            if t.is_empty() {
                return Err(
                    UsageError(format!("the token file {} is empty", file.display())).into(),
                );
            }
            Some(t)
        }
        (None, t) => t.filter(|t| !t.is_empty()),
    };
    let tasks = site.tasks()?;
    let life = oc_hooks::TaskLifecycle::new(tasks.store(), Arc::new(oc_hooks::Hooks::new()));
    let checked = tasks.clone();
    let mut web = oc_web::Web::new(life, site.locks()?)
        .files(files)
        .file_notes(
            crate::import::Notes::new(site)
                .map(|n| Arc::new(move |task: &str| n.line(task)) as oc_web::FileNotes),
        )
        .storage(tasks.storage_source())
        .health(move || checked.check().map_err(|e| crate::one_line(&e)))
        .read_only(args.read_only)
        .login(!args.no_auth && !args.read_only);
    if let Some(a) = alerting {
        web = web.alerting((a.engine, a.dispatcher));
    }
    // The pages' login: a one-time token printed in a URL, exchanged for a session kept in
    // memory. With --no-auth, actions are open, as they were before the login.
    let sessions = if args.no_auth {
        None
    } else {
        Some(Arc::new(oc_web::Sessions::new()?))
    };
    // Bearers, for the pages' actions and `/mcp`: the tokens `oc token create` made, checked
    // on every request. With --no-auth, `/mcp` serves every request as the local process.
    // With --oauth-issuer, OAuth access tokens are checked after the static ones.
    let verifier: Option<Arc<dyn oc_auth::Verifier>> = if args.no_auth {
        None
    } else {
        let mut chain = oc_auth::Verifiers::new().tokens(site.tokens()?);
        if let Some(config) = &oauth {
            let jwt = oc_auth::oauth::JwtVerifier::new(config.clone())
                .map_err(|e| UsageError(format!("--oauth-issuer: {e}")))?;
            chain = chain.other(Arc::new(jwt));
        }
        Some(Arc::new(chain))
    };
    // `/mcp`: the same tools as `oc mcp`, over one toolbox every session shares.
    let toolbox =
        oc_mcp::Toolbox::new(crate::task::lifecycle(site)?, site.locks()?).files(site.files()?);
    let mut mcp = oc_mcp::Server::new(toolbox);
    if args.mcp_tools == crate::args::McpTools::All {
        mcp = mcp.all_tools();
    }
    let mcp_sessions = Arc::new(oc_mcp::HttpSessions::new(mcp, http_options(args.no_auth)));
    // Tenants: a bearer of tenant T is served by T's pages and tools, opened on its first
    // request (at most `oc_web::MAX_TENANTS` at once); nothing but the token names a tenant.
    let tenants = verifier.as_ref().map(|_| {
        let root = site.clone();
        let (read_only, login, tools) = (
            args.read_only,
            !args.no_auth && !args.read_only,
            args.mcp_tools,
        );
        Arc::new(oc_web::Tenants::new(move |t: &oc_auth::Tenant| {
            tenant_app(&root.tenant(t), read_only, login, tools).map_err(|e| {
                let why = crate::one_line(&e);
                eprintln!(
                    "oc: error: cannot open the store of tenant {t}: {}",
                    Clean(&why)
                );
                why
            })
        }))
    });
    let opts = oc_web::ServeOptions {
        allowed_hosts: args.allowed_hosts,
        token,
        actions: if args.no_auth {
            oc_web::Actions::Open
        } else {
            oc_web::Actions::Admin
        },
        sessions: sessions.clone(),
        verifier: verifier.clone(),
        mcp: Some(mcp_options(
            {
                let mut mcp = oc_web::McpOptions::new(mcp_sessions, verifier);
                if args.no_auth {
                    mcp.max_streams_per_identity = mcp.max_streams;
                }
                mcp
            },
            oauth.as_ref(),
        )),
        tenants,
        metrics_open: args.metrics_open,
        workers: usize::from(args.workers),
        ..oc_web::ServeOptions::default()
    };
    let server = oc_web::serve(args.addr, Arc::new(web), opts)?;
    let bound = server.addr();
    if args.no_auth && !args.read_only {
        eprintln!(
            "oc: warning: --no-auth: anyone who can reach {bound}, any process of this machine included, can retry, cancel and release locks on the pages without logging in, and act as any agent on /mcp"
        );
    }
    // Read-only, the login is for reading: every read needs a credential once auth is on.
    let login_url = sessions.as_ref().and_then(|s| s.login_url(bound));
    // What answers without a credential, said at start (decision 0046).
    let open: Vec<&str> = if args.no_auth {
        vec!["everything"]
    } else if args.metrics_open {
        vec!["/healthz", "/metrics (loopback clients)"]
    } else {
        vec!["/healthz"]
    };
    out.emit(
        "serve",
        &serde_json::json!({
            "addr": bound.to_string(),
            "login_url": login_url,
            "open": open,
            "oauth": oauth.as_ref().map(|c| serde_json::json!({"issuer": c.issuer, "audience": c.audience})),
        }),
        |w, _| {
            writeln!(
                w,
                "Serving http://{bound}/ (status pages), /mcp (MCP over Streamable HTTP), /metrics, /healthz and /api/stats (Ctrl-C to stop)"
            )?;
            if let Some(c) = &oauth {
                writeln!(
                    w,
                    "/mcp also accepts OAuth access tokens of {} for the resource {}",
                    c.issuer, c.audience
                )?;
            }
            if !args.no_auth {
                writeln!(
                    w,
                    "Without a credential only {} answer; the pages, /api, /metrics and /mcp need a session or a token",
                    open.join(" and ")
                )?;
            }
            if let Some(url) = &login_url {
                let what = if args.read_only {
                    "To read the pages"
                } else {
                    "To read and act on the pages (retry, cancel, release locks)"
                };
                writeln!(
                    w,
                    "{what}, log in by opening: {url}\n  (it works once, within an hour; sessions are kept in memory and end when oc serve stops)"
                )?;
            }
            Ok(())
        },
    )?;
    server.wait();
    Ok(())
}

/// The limits of `/mcp`'s sessions: per identity as `oc_mcp` sets them, but with `--no-auth`,
/// where every client is the one local identity, only the global cap (which makes room for a
/// new session by ending the oldest, rather than refusing it).
fn http_options(no_auth: bool) -> oc_mcp::HttpOptions {
    let mut options = oc_mcp::HttpOptions::default();
    if no_auth {
        options.max_sessions_per_identity = usize::MAX;
    }
    options
}

/// The OAuth resource server's configuration, from `--oauth-issuer`, `--oauth-audience` and
/// `--oauth-jwks`. The audience defaults to `http://ADDR/mcp`: the resource identifier is what
/// clients put in `resource=` and the issuer in `aud`, so it must be known before the server
/// binds, and an address clients cannot reach (port 0, `0.0.0.0`) cannot be it.
fn oauth_config(args: &ServeArgs) -> anyhow::Result<Option<oc_auth::oauth::OAuthConfig>> {
    let Some(issuer) = &args.oauth_issuer else {
        return Ok(None);
    };
    let audience = match &args.oauth_audience {
        Some(a) => a.clone(),
        None if args.addr.port() == 0 || args.addr.ip().is_unspecified() => {
            return Err(UsageError(format!(
                "--oauth-issuer needs --oauth-audience (the URL clients reach /mcp at) when --addr is {}: tokens name that URL, and a port or address chosen at start cannot be it",
                args.addr
            ))
            .into());
        }
        None => format!("http://{}/mcp", args.addr),
    };
    let mut config = oc_auth::oauth::OAuthConfig::new(issuer.clone(), audience);
    if let Some(jwks) = &args.oauth_jwks {
        config = config.with_jwks_uri(jwks.clone());
    }
    if let Some(claim) = &args.oauth_agent_claim {
        config = config.with_agent_claim(claim.clone());
    }
    Ok(Some(config))
}

/// `/mcp` with OAuth's challenges (401 with `resource_metadata`, 403 `insufficient_scope`)
/// and its metadata at `/.well-known/oauth-protected-resource` and the path-suffixed form
/// RFC 9728 derives for the resource (`…/mcp`, which the MCP SDK asks for first).
fn mcp_options(
    mut mcp: oc_web::McpOptions,
    oauth: Option<&oc_auth::oauth::OAuthConfig>,
) -> oc_web::McpOptions {
    let Some(config) = oauth else {
        return mcp;
    };
    let meta = oc_auth::oauth::ProtectedResourceMetadata::from_config(config);
    let mut paths = vec![meta.metadata_path()];
    let root = "/.well-known/oauth-protected-resource".to_owned();
    if !paths.contains(&root) {
        paths.push(root);
    }
    mcp.metadata = Some(oc_web::WellKnown {
        paths,
        json: meta.to_json().to_string(),
    });
    mcp.challenge = Arc::new(move |e| match meta.challenge(e) {
        Some(c) => (c.status, c.www_authenticate),
        None => (401, oc_web::bearer_challenge(e)),
    });
    mcp
}
