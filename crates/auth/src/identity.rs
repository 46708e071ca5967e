//! Identities, scopes and tenants.

use std::fmt;

/// What a credential allows, from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Reads only.
    Read,
    /// Reads, and writes as its own agent.
    Work,
    /// Everything, for any agent.
    Admin,
}

impl Scope {
    /// The scope's name: `read`, `work` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Work => "work",
            Scope::Admin => "admin",
        }
    }

    /// Parses `read`, `work` or `admin`.
    pub fn parse(s: &str) -> Result<Scope, AuthError> {
        match s {
            "read" => Ok(Scope::Read),
            "work" => Ok(Scope::Work),
            "admin" => Ok(Scope::Admin),
            other => Err(AuthError::Invalid {
                what: "scope",
                reason: format!(
                    "{:?} is not one of read, work, admin",
                    other.escape_debug().to_string()
                ),
            }),
        }
    }

    /// Whether this scope includes `needed` (`admin` includes `work`, which includes `read`).
    pub fn allows(self, needed: Scope) -> bool {
        self >= needed
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tenant: a store of its own (a PostgreSQL schema per tenant). Its name is 1 to 32
/// characters of `a-z`, `0-9` and `_`, starting with a letter, so it is safe in a schema name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tenant(String);

/// The longest tenant name.
const MAX_TENANT: usize = 32;

impl Tenant {
    /// Checks a tenant name.
    pub fn new(name: &str) -> Result<Tenant, AuthError> {
        let ok = !name.is_empty()
            && name.len() <= MAX_TENANT
            && name.as_bytes()[0].is_ascii_lowercase()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(Tenant(name.to_owned()))
        } else {
            Err(AuthError::Invalid {
                what: "tenant",
                reason: format!(
                    "{:?} is not 1 to {MAX_TENANT} characters of a-z, 0-9 and _ starting with a letter",
                    name.chars().take(40).collect::<String>()
                ),
            })
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who a request acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The agent name the credential was issued to (an OAuth token's subject).
    pub agent: String,
    /// What it may do.
    pub scope: Scope,
    /// The store it reaches; `None` is the default store.
    pub tenant: Option<Tenant>,
}

impl Identity {
    /// The identity of a local process that already holds the store (`oc mcp` over stdio,
    /// `oc serve --no-auth`): admin of the default tenant.
    pub fn local() -> Identity {
        Identity {
            agent: String::new(),
            scope: Scope::Admin,
            tenant: None,
        }
    }

    /// The agent a write acts as: `requested` if this identity may act for it, else a refusal
    /// naming both. A `work` identity acts only as itself (`None` means itself); `admin` as
    /// anyone (`None` means `fallback`, the server's default agent); `read` writes nothing.
    pub fn acting_as<'a>(
        &'a self,
        requested: Option<&'a str>,
        fallback: Option<&'a str>,
    ) -> Result<&'a str, AuthError> {
        match self.scope {
            Scope::Read => Err(AuthError::Forbidden {
                needed: Scope::Work,
                had: Scope::Read,
            }),
            Scope::Work => match requested {
                None => Ok(&self.agent),
                Some(a) if a == self.agent => Ok(a),
                Some(a) => Err(AuthError::NotYourAgent {
                    agent: self.agent.clone(),
                    requested: a.chars().take(200).collect(),
                }),
            },
            Scope::Admin => requested.or(fallback).ok_or(AuthError::Invalid {
                what: "agent",
                reason: "is required".into(),
            }),
        }
    }

    /// Refuses unless the scope includes `needed`.
    pub fn require(&self, needed: Scope) -> Result<(), AuthError> {
        if self.scope.allows(needed) {
            Ok(())
        } else {
            Err(AuthError::Forbidden {
                needed,
                had: self.scope,
            })
        }
    }
}

/// Why a credential or an action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No credential where one is needed (HTTP 401).
    #[error("a bearer token is required")]
    Missing,
    /// A credential that is not valid: unknown, revoked, expired, badly signed, for another
    /// audience (HTTP 401). The reason is for logs; clients are told only that it is invalid.
    #[error("the token is not valid: {0}")]
    BadToken(String),
    /// A valid credential whose scope does not allow the action (HTTP 403 `insufficient_scope`).
    #[error("this needs the {needed} scope; the token has {had}")]
    Forbidden {
        /// The scope the action needs.
        needed: Scope,
        /// The scope the token has.
        had: Scope,
    },
    /// A valid OAuth access token granting none of the scopes this server knows
    /// (HTTP 403 `insufficient_scope`).
    #[error("the token grants none of this server's scopes; it needs at least {needed}")]
    InsufficientScope {
        /// The OAuth scope to ask for (`oc:read` by default).
        needed: String,
    },
    /// A `work` credential asked to act as another agent.
    #[error("this token acts as agent {agent:?} only, not as {requested:?}")]
    NotYourAgent {
        /// The token's agent.
        agent: String,
        /// The agent asked for (cut to 200 characters).
        requested: String,
    },
    /// A malformed value (a scope, a tenant name, a token's format).
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was malformed.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The store of tokens failed.
    #[error("the token store failed: {0}")]
    Backend(String),
    /// No token has this id (revoking one, say).
    #[error("no token has id {id:?}")]
    NotFound {
        /// The id asked for (cut to 40 characters).
        id: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(scope: Scope) -> Identity {
        Identity {
            agent: "alice".into(),
            scope,
            tenant: None,
        }
    }

    #[test]
    fn a_work_identity_acts_only_as_itself() {
        let w = id(Scope::Work);
        assert_eq!(w.acting_as(None, Some("bob")), Ok("alice"));
        assert_eq!(w.acting_as(Some("alice"), None), Ok("alice"));
        assert!(matches!(
            w.acting_as(Some("bob"), None),
            Err(AuthError::NotYourAgent { .. })
        ));
    }

    #[test]
    fn admin_acts_for_anyone_and_read_for_nobody() {
        let a = id(Scope::Admin);
        assert_eq!(a.acting_as(Some("bob"), None), Ok("bob"));
        assert_eq!(a.acting_as(None, Some("carol")), Ok("carol"));
        assert!(a.acting_as(None, None).is_err());
        assert!(matches!(
            id(Scope::Read).acting_as(Some("alice"), None),
            Err(AuthError::Forbidden { .. })
        ));
        assert!(id(Scope::Read).require(Scope::Read).is_ok());
        assert!(id(Scope::Work).require(Scope::Admin).is_err());
    }

    #[test]
    fn tenant_names_are_safe_in_a_schema_name() {
        for good in ["a", "acme", "team_2", &"a".repeat(32)] {
            assert!(Tenant::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "A",
            "2team",
            "a-b",
            "a;drop",
            "é",
            &"a".repeat(33),
            "a b",
        ] {
            assert!(Tenant::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scopes_parse_and_order() {
        for s in [Scope::Read, Scope::Work, Scope::Admin] {
            assert_eq!(Scope::parse(s.as_str()), Ok(s));
        }
        assert!(Scope::parse("root").is_err());
        assert!(Scope::Admin.allows(Scope::Work) && !Scope::Read.allows(Scope::Work));
    }
}
