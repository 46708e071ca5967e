//! Tenants: which app ([`Web`]) and MCP endpoint serve a request, chosen by the tenant of the
//! identity its bearer token stands for, never by anything the request says otherwise.
//!
//! [`Tenants`] opens a tenant's app on its first request (through the embedder's opener,
//! which chooses the store) and keeps it open; at most [`Tenants::max_open`] tenants are open
//! at once ([`MAX_TENANTS`] by default), and a request of one more is refused
//! ([`TenantError::Full`], `503`) rather than closing another's app under its sessions. A
//! tenant is opened by one request only: others of the same tenant wait for it, so no tenant
//! ever has two stores.

use std::collections::BTreeMap;
use std::sync::Arc;

use oc_auth::Tenant;

use crate::Web;

/// Tenants open at once, by default.
pub const MAX_TENANTS: usize = 64;

/// What serves one tenant: its app (the pages, `/api/stats`, `/metrics`) and its MCP endpoint.
#[derive(Clone)]
pub struct TenantApp {
    /// The pages, `/api/stats` and `/metrics` over the tenant's store.
    pub web: Arc<Web>,
    /// `/mcp` over the tenant's store (`None`: the tenant has no `/mcp`, answered `404`).
    pub mcp: Option<Arc<oc_mcp::HttpSessions>>,
}

impl std::fmt::Debug for TenantApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantApp")
            .field("mcp", &self.mcp.is_some())
            .finish_non_exhaustive()
    }
}

/// Opens a tenant's app: its stores, created and migrated on first use. An error is a message
/// for the operator's log; the client is told only that the store could not be opened.
pub type OpenTenant = Box<dyn Fn(&Tenant) -> Result<TenantApp, String> + Send + Sync>;

/// Why a tenant's app is not there.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TenantError {
    /// As many tenants as allowed are open already (`503`, until the server restarts).
    Full {
        /// The most open at once.
        max: usize,
    },
    /// The tenant's store could not be opened (`503`, try again).
    Open(String),
    /// Another request is still opening the tenant's store, for longer than a request waits
    /// ([`Tenants::opening_wait`]; `503`, try again).
    Opening,
}

impl std::fmt::Display for TenantError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TenantError::Full { max } => write!(
                f,
                "this server serves at most {max} tenants at once, and that many are open: ask its operator"
            ),
            TenantError::Open(why) => write!(f, "the tenant's store could not be opened: {why}"),
            TenantError::Opening => write!(f, "the tenant's store is still being opened"),
        }
    }
}

impl std::error::Error for TenantError {}

/// The open tenants' apps, opened lazily and kept until the server stops.
pub struct Tenants {
    open: OpenTenant,
    max: usize,
    /// How long a request waits for another's opening of its tenant.
    wait: std::time::Duration,
    apps: parking_lot::Mutex<BTreeMap<Tenant, Slot>>,
    /// Signalled whenever an opening ends (opened or failed), for the requests waiting on it.
    opened: parking_lot::Condvar,
}

/// A tenant's place: being opened by one request (the others wait), or open.
enum Slot {
    Opening,
    Open(TenantApp),
}

impl std::fmt::Debug for Tenants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenants")
            .field("max", &self.max)
            .field("open", &self.open_count())
            .finish_non_exhaustive()
    }
}

/// Gives a tenant's place back if its opener ends without filling it (an error, or a panic in
/// the embedder's opener), and wakes the requests waiting on it.
struct Opening<'a> {
    tenants: &'a Tenants,
    tenant: &'a Tenant,
    done: bool,
}

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.tenants.apps.lock().remove(self.tenant);
        }
        self.tenants.opened.notify_all();
    }
}

impl Tenants {
    /// Tenants opened by `open`, at most [`MAX_TENANTS`] at once.
    pub fn new(
        open: impl Fn(&Tenant) -> Result<TenantApp, String> + Send + Sync + 'static,
    ) -> Tenants {
        Tenants {
            open: Box::new(open),
            max: MAX_TENANTS,
            wait: std::time::Duration::from_secs(5),
            apps: parking_lot::Mutex::new(BTreeMap::new()),
            opened: parking_lot::Condvar::new(),
        }
    }

    /// How long a request waits while another request opens its tenant (default 5 s): past
    /// it, [`TenantError::Opening`], so that a tenant slow to open (or failing again and again)
    /// holds no worker longer than this.
    pub fn opening_wait(mut self, wait: std::time::Duration) -> Tenants {
        self.wait = wait;
        self
    }

    /// At most `max` tenants open at once (at least 1).
    pub fn max_open(mut self, max: usize) -> Tenants {
        self.max = max.max(1);
        self
    }

    /// `tenant`'s app, opened on first use, by one request only: the first request of a
    /// tenant opens it outside the lock (it may connect to a database and migrate it), so
    /// tenants already open are served meanwhile; other requests of the same tenant wait for
    /// that opening, and try again themselves if it failed. A tenant being opened counts
    /// against the cap.
    pub fn get(&self, tenant: &Tenant) -> Result<TenantApp, TenantError> {
        let deadline = std::time::Instant::now() + self.wait;
        let mut apps = self.apps.lock();
        loop {
            match apps.get(tenant) {
                Some(Slot::Open(app)) => return Ok(app.clone()),
                Some(Slot::Opening) => {
                    if self.opened.wait_until(&mut apps, deadline).timed_out()
                        && matches!(apps.get(tenant), Some(Slot::Opening))
                    {
                        return Err(TenantError::Opening);
                    }
                }
                None => break,
            }
        }
        if apps.len() >= self.max {
            return Err(TenantError::Full { max: self.max });
        }
        apps.insert(tenant.clone(), Slot::Opening);
        drop(apps);
        let mut opening = Opening {
            tenants: self,
            tenant,
            done: false,
        };
        let app = (self.open)(tenant).map_err(TenantError::Open)?;
        self.apps
            .lock()
            .insert(tenant.clone(), Slot::Open(app.clone()));
        opening.done = true;
        Ok(app)
    }

    /// The apps open now (the server samples their throughput charts).
    pub fn apps(&self) -> Vec<Arc<Web>> {
        self.apps
            .lock()
            .values()
            .filter_map(|slot| match slot {
                Slot::Open(a) => Some(Arc::clone(&a.web)),
                Slot::Opening => None,
            })
            .collect()
    }

    /// How many tenants are open.
    pub fn open_count(&self) -> usize {
        self.apps
            .lock()
            .values()
            .filter(|slot| matches!(slot, Slot::Open(_)))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oc_hooks::{Hooks, TaskLifecycle};
    use oc_locks::MemoryLockManager;
    use oc_tasks::MemoryTaskStore;

    fn app() -> TenantApp {
        let life = TaskLifecycle::new(Arc::new(MemoryTaskStore::new()), Arc::new(Hooks::new()));
        TenantApp {
            web: Arc::new(Web::new(life, Arc::new(MemoryLockManager::new()))),
            mcp: None,
        }
    }

    #[test]
    fn tenants_are_opened_once_and_bounded() {
        let opened = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = Arc::clone(&opened);
        let tenants = Tenants::new(move |t: &Tenant| {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if t.as_str() == "broken" {
                Err("no database".into())
            } else {
                Ok(app())
            }
        })
        .max_open(2);
        let a = Tenant::new("a").unwrap();
        let first = tenants.get(&a).unwrap();
        let again = tenants.get(&a).unwrap();
        assert!(Arc::ptr_eq(&first.web, &again.web), "the same app");
        assert_eq!(opened.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(
            tenants.get(&Tenant::new("broken").unwrap()).err(),
            Some(TenantError::Open("no database".into()))
        );
        assert_eq!(tenants.open_count(), 1, "a failed open keeps nothing");
        tenants.get(&Tenant::new("b").unwrap()).unwrap();
        assert_eq!(
            tenants.get(&Tenant::new("c").unwrap()).err(),
            Some(TenantError::Full { max: 2 })
        );
        assert!(tenants.get(&a).is_ok(), "the open ones stay served");
        assert_eq!(tenants.apps().len(), 2);
    }

    /// The security review's finding: concurrent first requests of a tenant each opened a
    /// store. Many threads ask for a few tenants at once; each tenant is opened once, and
    /// every thread gets that one app.
    #[test]
    fn concurrent_first_requests_open_a_tenant_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let opens = Arc::new(parking_lot::Mutex::new(BTreeMap::<String, usize>::new()));
        let count = Arc::clone(&opens);
        let tenants = Arc::new(Tenants::new(move |t: &Tenant| {
            *count.lock().entry(t.as_str().to_owned()).or_default() += 1;
            // Opening takes a while (a database, a migration): the window of the race.
            std::thread::sleep(std::time::Duration::from_millis(20));
            Ok(app())
        }));
        let names = ["a", "b", "c"];
        let start = Arc::new(std::sync::Barrier::new(24));
        let failed = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..24)
            .map(|i| {
                let (tenants, start, failed) = (
                    Arc::clone(&tenants),
                    Arc::clone(&start),
                    Arc::clone(&failed),
                );
                std::thread::spawn(move || {
                    let t = Tenant::new(names[i % names.len()]).unwrap();
                    start.wait();
                    match tenants.get(&t) {
                        Ok(app) => Some((t, app.web)),
                        Err(_) => {
                            failed.fetch_add(1, Ordering::SeqCst);
                            None
                        }
                    }
                })
            })
            .collect();
        let got: Vec<_> = threads
            .into_iter()
            .filter_map(|t| t.join().unwrap())
            .collect();
        assert_eq!(failed.load(Ordering::SeqCst), 0);
        for name in names {
            assert_eq!(opens.lock().get(name), Some(&1), "{name} opened once");
            let webs: Vec<_> = got.iter().filter(|(t, _)| t.as_str() == name).collect();
            assert!(
                webs.iter().all(|(_, w)| Arc::ptr_eq(w, &webs[0].1)),
                "one app for {name}"
            );
        }
        assert_eq!(tenants.open_count(), 3);
    }

    /// A failed opening wakes the waiters, one of which opens it again; the cap counts a
    /// tenant being opened.
    #[test]
    fn a_failed_opening_is_tried_again_by_the_next_request() {
        let tries = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = Arc::clone(&tries);
        let tenants = Tenants::new(move |_: &Tenant| {
            if count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                Err("not yet".into())
            } else {
                Ok(app())
            }
        })
        .max_open(1);
        let a = Tenant::new("a").unwrap();
        assert_eq!(
            tenants.get(&a).err(),
            Some(TenantError::Open("not yet".into()))
        );
        assert_eq!(tenants.open_count(), 0);
        assert!(tenants.get(&a).is_ok());
        assert_eq!(
            tenants.get(&Tenant::new("b").unwrap()).err(),
            Some(TenantError::Full { max: 1 })
        );
    }

    /// A request waits for another's opening of its tenant only so long: a tenant slow to open
    /// holds no other request (and no worker) past `opening_wait`.
    #[test]
    fn a_request_waits_for_a_slow_opening_only_so_long() {
        let (entered, release) = (
            Arc::new(std::sync::Barrier::new(2)),
            Arc::new(std::sync::Barrier::new(2)),
        );
        let (e, r) = (Arc::clone(&entered), Arc::clone(&release));
        let tenants = Arc::new(
            Tenants::new(move |_: &Tenant| {
                e.wait();
                r.wait();
                Ok(app())
            })
            .opening_wait(std::time::Duration::from_millis(50)),
        );
        let a = Tenant::new("a").unwrap();
        let opener = {
            let (tenants, a) = (Arc::clone(&tenants), a.clone());
            std::thread::spawn(move || tenants.get(&a).is_ok())
        };
        entered.wait();
        assert_eq!(tenants.get(&a).err(), Some(TenantError::Opening));
        release.wait();
        assert!(opener.join().unwrap());
        assert!(tenants.get(&a).is_ok(), "open once the opener is done");
    }
}
