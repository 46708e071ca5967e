//! The pages' login: a one-time login token `oc serve` prints in a URL, exchanged once for a
//! session kept in memory and named by a random cookie.

use std::sync::Arc;
use std::time::Duration;

use oc_time::{Clock, SystemClock, Timestamp};
use parking_lot::Mutex;
use rand::TryRngCore;

/// How long the login token stays usable if nobody uses it: a URL left in a terminal's
/// scrollback or a log file opens nothing after this.
pub const LOGIN_FOR: Duration = Duration::from_secs(60 * 60);

/// How long a session lasts without a request.
pub const SESSION_IDLE: Duration = Duration::from_secs(12 * 60 * 60);

/// The most sessions kept at once; a new one pushes out the least recently used.
pub const MAX_SESSIONS: usize = 64;

/// Random bytes in a login token or a session id (256 bits).
const SECRET_BYTES: usize = 32;

/// The one-time login token and the sessions it opened, in memory only: a restart of the
/// server forgets every session (and prints a new login URL).
///
/// The token is usable once, within [`LOGIN_FOR`] of its making: the browser that opens the
/// printed URL gets a session, and the URL, wherever it was copied or logged, opens nothing
/// more. A session ends after [`SESSION_IDLE`] without a request, at logout, or when
/// [`MAX_SESSIONS`] newer ones push it out.
pub struct Sessions {
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

struct State {
    /// The login token and when it stops being usable; `None` once used.
    login: Option<(String, Timestamp)>,
    /// Session ids and when each was last used, least recently used first.
    open: Vec<(String, Timestamp)>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token or the ids.
        let state = self.state.lock();
        f.debug_struct("Sessions")
            .field("login_unused", &state.login.is_some())
            .field("open", &state.open.len())
            .finish_non_exhaustive()
    }
}

/// Why a login token was not exchanged for a session.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoginError {
    /// The token was not this server's (or this server's was already used).
    Refused,
    /// The token was this server's, but it is older than [`LOGIN_FOR`].
    Expired,
}

impl Sessions {
    /// A new login token from the operating system's random source, on the system clock.
    pub fn new() -> Result<Sessions, crate::Error> {
        Sessions::with_clock(Arc::new(SystemClock))
    }

    /// The same on `clock` (a test's `ManualClock`).
    pub fn with_clock(clock: Arc<dyn Clock>) -> Result<Sessions, crate::Error> {
        let token = secret()?;
        let until = clock.now().saturating_add(LOGIN_FOR);
        Ok(Sessions {
            clock,
            state: Mutex::new(State {
                login: Some((token, until)),
                open: Vec::new(),
            }),
        })
    }

    /// The URL that logs a browser in, on a server listening at `addr`
    /// (`http://127.0.0.1:9464/login?token=…`); `None` once the token was used.
    pub fn login_url(&self, addr: std::net::SocketAddr) -> Option<String> {
        let state = self.state.lock();
        let (token, _) = state.login.as_ref()?;
        Some(format!("http://{addr}/login?token={token}"))
    }

    /// Exchanges the login token for a new session's id. The token is spent by this call
    /// whether or not it was still in time; a wrong token spends nothing.
    pub fn log_in(&self, token: &str) -> Result<String, LoginError> {
        let now = self.clock.now();
        let mut state = self.state.lock();
        let until = match &state.login {
            Some((t, until)) if constant_time_eq(t.as_bytes(), token.as_bytes()) => *until,
            _ => return Err(LoginError::Refused),
        };
        state.login = None;
        if now > until {
            return Err(LoginError::Expired);
        }
        let id = secret().map_err(|_| LoginError::Refused)?;
        state.admit(id.clone(), now);
        Ok(id)
    }

    /// A new login token (the old one, if unused, stops working), for another browser of
    /// someone already logged in; usable once within [`LOGIN_FOR`].
    pub fn renew_login(&self) -> Result<String, crate::Error> {
        let token = secret()?;
        let until = self.clock.now().saturating_add(LOGIN_FOR);
        self.state.lock().login = Some((token.clone(), until));
        Ok(token)
    }

    /// Whether `id` names an open session; if so, it was used now.
    pub fn check(&self, id: &str) -> bool {
        let now = self.clock.now();
        let mut state = self.state.lock();
        state.forget_idle(now);
        // Every id is compared in full, so timing tells nothing of any of them.
        let mut found = None;
        for (i, (s, _)) in state.open.iter().enumerate() {
            if constant_time_eq(s.as_bytes(), id.as_bytes()) {
                found = Some(i);
            }
        }
        match found {
            Some(i) => {
                let (s, _) = state.open.remove(i);
                state.open.push((s, now));
                true
            }
            None => false,
        }
    }

    /// Ends the session `id`, if it is open.
    pub fn log_out(&self, id: &str) {
        self.state
            .lock()
            .open
            .retain(|(s, _)| !constant_time_eq(s.as_bytes(), id.as_bytes()));
    }

    /// How many sessions are open (expired ones not yet noticed included).
    pub fn len(&self) -> usize {
        self.state.lock().open.len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl State {
    /// Opens session `id`, after forgetting idle ones and, at [`MAX_SESSIONS`], the least
    /// recently used.
    fn admit(&mut self, id: String, now: Timestamp) {
        self.forget_idle(now);
        if self.open.len() >= MAX_SESSIONS {
            self.open.remove(0);
        }
        self.open.push((id, now));
    }

    fn forget_idle(&mut self, now: Timestamp) {
        let idle = Timestamp::from_millis(now.as_millis().saturating_sub(millis(SESSION_IDLE)));
        self.open.retain(|(_, seen)| *seen >= idle);
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// [`SECRET_BYTES`] from the operating system's random source, as hex.
fn secret() -> Result<String, crate::Error> {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| crate::Error::Serve(format!("the system's random source failed: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Compares without stopping at the first difference, so timing tells nothing of the secret.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use oc_time::ManualClock;

    fn sessions() -> (Sessions, ManualClock) {
        let clock = ManualClock::new(Timestamp::from_millis(1_000_000));
        let s = Sessions::with_clock(Arc::new(clock.clone())).unwrap();
        (s, clock)
    }

    fn token(s: &Sessions) -> String {
        let url = s.login_url("127.0.0.1:1".parse().unwrap()).unwrap();
        url.split_once("token=").unwrap().1.to_owned()
    }

    #[test]
    fn the_login_token_is_random_and_works_once() {
        let (s, _) = sessions();
        let t = token(&s);
        assert_eq!(t.len(), 64);
        assert_ne!(t, token(&sessions().0), "two servers, two tokens");
        assert_eq!(s.log_in("wrong"), Err(LoginError::Refused));
        let id = s.log_in(&t).unwrap();
        assert_eq!(id.len(), 64);
        assert_ne!(id, t);
        assert!(s.check(&id));
        assert_eq!(s.log_in(&t), Err(LoginError::Refused), "replayed");
        assert_eq!(s.login_url("127.0.0.1:1".parse().unwrap()), None);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn an_unused_login_token_expires_and_is_spent() {
        let (s, clock) = sessions();
        let t = token(&s);
        clock.advance(LOGIN_FOR + Duration::from_secs(1));
        assert_eq!(s.log_in(&t), Err(LoginError::Expired));
        clock.set(Timestamp::from_millis(1_000_000));
        assert_eq!(s.log_in(&t), Err(LoginError::Refused), "spent");
        assert!(s.is_empty());
    }

    #[test]
    fn sessions_end_when_idle_or_logged_out() {
        let (s, clock) = sessions();
        let id = s.log_in(&token(&s)).unwrap();
        assert!(!s.check("forged"));
        assert!(!s.check(&id[..63]));
        assert!(!s.check(""));
        clock.advance(SESSION_IDLE - Duration::from_secs(1));
        assert!(s.check(&id), "used within the idle time");
        clock.advance(SESSION_IDLE - Duration::from_secs(1));
        assert!(s.check(&id), "each use starts the idle time again");
        clock.advance(SESSION_IDLE + Duration::from_secs(1));
        assert!(!s.check(&id), "idle too long");
        assert!(s.is_empty());

        let (s, _) = sessions();
        let id = s.log_in(&token(&s)).unwrap();
        s.log_out(&id);
        assert!(!s.check(&id));
    }

    #[test]
    fn another_browser_logs_in_with_a_renewed_token_and_the_table_is_bounded() {
        let (s, clock) = sessions();
        let first = s.log_in(&token(&s)).unwrap();
        let unused = s.renew_login().unwrap();
        let second = s.log_in(&s.renew_login().unwrap()).unwrap();
        assert_eq!(
            s.log_in(&unused),
            Err(LoginError::Refused),
            "renewing replaces"
        );
        assert!(s.check(&first) && s.check(&second));
        for _ in 0..MAX_SESSIONS {
            clock.advance(Duration::from_secs(1));
            s.log_in(&s.renew_login().unwrap()).unwrap();
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        assert!(!s.check(&first), "the least recently used went first");
    }

    #[test]
    fn debug_shows_no_secret() {
        let (s, _) = sessions();
        let t = token(&s);
        let id = s.log_in(&t).unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains(&t) && !shown.contains(&id), "{shown}");
    }
}
