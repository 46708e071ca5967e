//! Tenants: which app ([`Web`]) and MCP endpoint serve a request, chosen by the tenant of the
//! identity its bearer token stands for, never by anything the request says otherwise.
//!
//! [`Tenants`] opens a tenant's app on its first request (through the embedder's opener,
//! which chooses the store) and keeps it open; at most [`Tenants::max_open`] tenants are open
//! at once ([`MAX_TENANTS`] by default), and a request of one more is refused
//! ([`TenantError::Full`], `503`) rather than closing another's app under its sessions.

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
}

impl std::fmt::Display for TenantError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TenantError::Full { max } => write!(
                f,
                "this server serves at most {max} tenants at once, and that many are open: ask its operator"
            ),
            TenantError::Open(why) => write!(f, "the tenant's store could not be opened: {why}"),
        }
    }
}

impl std::error::Error for TenantError {}

/// The open tenants' apps, opened lazily and kept until the server stops.
pub struct Tenants {
    open: OpenTenant,
    max: usize,
    apps: parking_lot::Mutex<BTreeMap<Tenant, TenantApp>>,
}

impl std::fmt::Debug for Tenants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenants")
            .field("max", &self.max)
            .field("open", &self.apps.lock().len())
            .finish_non_exhaustive()
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
            apps: parking_lot::Mutex::new(BTreeMap::new()),
        }
    }

    /// At most `max` tenants open at once (at least 1).
    pub fn max_open(mut self, max: usize) -> Tenants {
        self.max = max.max(1);
        self
    }

    /// `tenant`'s app, opened on first use. Opening runs outside the lock (it may connect to a
    /// database and migrate it), so tenants already open are served meanwhile; two first
    /// requests at once may both open, and the first to finish is kept.
    pub fn get(&self, tenant: &Tenant) -> Result<TenantApp, TenantError> {
        {
            let apps = self.apps.lock();
            if let Some(app) = apps.get(tenant) {
                return Ok(app.clone());
            }
            if apps.len() >= self.max {
                return Err(TenantError::Full { max: self.max });
            }
        }
        let app = (self.open)(tenant).map_err(TenantError::Open)?;
        let mut apps = self.apps.lock();
        if let Some(first) = apps.get(tenant) {
            return Ok(first.clone());
        }
        if apps.len() >= self.max {
            return Err(TenantError::Full { max: self.max });
        }
        apps.insert(tenant.clone(), app.clone());
        Ok(app)
    }

    /// The apps open now (the server samples their throughput charts).
    pub fn apps(&self) -> Vec<Arc<Web>> {
        self.apps
            .lock()
            .values()
            .map(|a| Arc::clone(&a.web))
            .collect()
    }

    /// How many tenants are open.
    pub fn open_count(&self) -> usize {
        self.apps.lock().len()
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
}
