//! The login's own routes, which the guard answers itself: `GET /login?token=…` (the one-time
//! token exchanged for a session cookie), `POST /logout`, and `POST /login/new` (a new login
//! URL for another browser, after the checks of an action).

use super::Guard;
use super::credentials::{clear_cookie, cookie_name, cookies};
use super::origin::same_origin;
use crate::http::{Actions, Request, Response};
use crate::pages::login as login_pages;
use crate::session::LoginError;

impl Guard {
    /// `GET /login?token=…`: the one-time token exchanged for a session cookie, then the
    /// overview, so the token is not left in the address bar or history.
    pub(super) fn login(&self, req: &Request) -> Response {
        if !same_origin(req) {
            return login_pages::refused(
                403,
                "A login link opened from another site is refused: paste the URL into the address bar.",
            );
        }
        let Some(sessions) = &self.sessions else {
            return if self.actions == Actions::Open {
                login_pages::not_asked()
            } else {
                login_pages::refused(404, "This server offers no login: act with an admin token.")
            };
        };
        if self.session(req).is_some() {
            return Response::see_other("/");
        }
        let Some(token) = req.param("token") else {
            return login_pages::refused(200, "You are not logged in.");
        };
        match sessions.log_in(token) {
            Ok(id) => Response::see_other("/").with(
                "Set-Cookie",
                format!(
                    "{}={id}; Path=/; HttpOnly; SameSite=Strict",
                    cookie_name(req)
                ),
            ),
            Err(LoginError::Expired) => login_pages::refused(
                403,
                "This login link has expired: each works for an hour after it was made.",
            ),
            Err(_) => login_pages::refused(
                403,
                "This login link is not valid, or was used already: each works once.",
            ),
        }
    }

    /// `POST /logout`: ends the session and clears its cookie.
    pub(super) fn logout(&self, req: &Request) -> Response {
        if !same_origin(req) {
            return Response::text(403, "cross-origin requests may not change anything\n");
        }
        let name = cookie_name(req);
        if let Some(sessions) = &self.sessions {
            for id in cookies(req, &name) {
                sessions.log_out(id);
            }
        }
        login_pages::logged_out().with("Set-Cookie", clear_cookie(&name))
    }

    /// `POST /login/new` (after the checks of an action): a new login URL for another
    /// browser.
    pub(super) fn renew(&self, req: &Request) -> Response {
        let Some(sessions) = &self.sessions else {
            return login_pages::refused(404, "This server offers no login.");
        };
        match sessions.renew_login() {
            Ok(token) => {
                let host = req.header_value("host").unwrap_or("127.0.0.1");
                login_pages::renewed(&format!("http://{host}/login?token={token}"))
            }
            Err(e) => Response::text(500, format!("{e}\n")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{HOST, log_in, login_guard, retry, status};
    use crate::http::{Method, Request};
    use crate::session::{LOGIN_FOR, SESSION_IDLE};

    #[test]
    fn the_login_token_works_once_and_opens_a_session() {
        let (g, sessions, _, login) = login_guard(None);
        let cookie = log_in(&g, &login).unwrap();
        assert_eq!(status(&g, &retry().header("Cookie", &cookie)), 200);
        assert_eq!(
            status(
                &g,
                &retry().header("Cookie", &format!("theme=dark; {cookie}"))
            ),
            200
        );
        let replay = log_in(&g, &login).unwrap_err();
        assert_eq!(replay.status, 403);
        assert!(replay.body_text().contains("used already"));
        assert_eq!(sessions.len(), 1);
        // The cookie of another port's server is not this one's.
        let other = cookie.replace("9464", "9465");
        assert_eq!(status(&g, &retry().header("Cookie", &other)), 401);
        // Logged in, the login URL goes to the overview.
        let again = Request::new(Method::Get, &format!("/login?token={login}"))
            .header("Host", HOST)
            .header("Cookie", &cookie);
        assert_eq!(status(&g, &again), 303);
    }

    #[test]
    fn a_login_link_from_another_site_is_refused() {
        let (g, sessions, _, login) = login_guard(None);
        for foreign in [
            ("Sec-Fetch-Site", "cross-site"),
            ("Sec-Fetch-Site", "same-site"),
        ] {
            let req = Request::new(Method::Get, &format!("/login?token={login}"))
                .header("Host", HOST)
                .header(foreign.0, foreign.1);
            assert_eq!(status(&g, &req), 403, "{foreign:?}");
        }
        assert!(sessions.is_empty());
        let evil = Request::new(Method::Get, &format!("/login?token={login}"))
            .header("Host", "evil.example");
        assert_eq!(status(&g, &evil), 403, "DNS rebinding");
        assert!(log_in(&g, &login).is_ok(), "still unspent");
    }

    #[test]
    fn expired_sessions_and_login_tokens_are_refused() {
        let (g, _, clock, login) = login_guard(None);
        let cookie = log_in(&g, &login).unwrap();
        clock.advance(SESSION_IDLE + std::time::Duration::from_secs(1));
        let r = g.check(&retry().header("Cookie", &cookie)).unwrap();
        assert_eq!(r.status, 401);
        assert!(
            r.body_text().contains("session has ended"),
            "{}",
            r.body_text()
        );

        let (g, _, clock, login) = login_guard(None);
        clock.advance(LOGIN_FOR + std::time::Duration::from_secs(1));
        let r = log_in(&g, &login).unwrap_err();
        assert_eq!(r.status, 403);
        assert!(r.body_text().contains("expired"));
    }

    #[test]
    fn logout_ends_the_session() {
        let (g, sessions, _, login) = login_guard(None);
        let cookie = log_in(&g, &login).unwrap();
        let out = Request::new(Method::Post, "/logout")
            .header("Host", HOST)
            .header("Cookie", &cookie);
        assert_eq!(
            status(&g, &out.clone().header("Sec-Fetch-Site", "cross-site")),
            403,
            "no logout from another site"
        );
        assert_eq!(sessions.len(), 1);
        let r = g.check(&out).unwrap();
        assert_eq!(r.status, 200);
        assert!(
            r.headers
                .iter()
                .any(|(n, v)| *n == "Set-Cookie" && v.contains("Max-Age=0"))
        );
        assert!(sessions.is_empty());
        assert_eq!(status(&g, &retry().header("Cookie", &cookie)), 401);
    }

    #[test]
    fn a_session_gives_another_browser_a_new_login_url() {
        let (g, sessions, _, login) = login_guard(None);
        let cookie = log_in(&g, &login).unwrap();
        let new = Request::new(Method::Post, "/login/new").header("Host", HOST);
        assert_eq!(status(&g, &new), 401);
        let r = g.check(&new.header("Cookie", &cookie)).unwrap();
        assert_eq!(r.status, 200);
        let page = r.body_text();
        let url = page
            .split("http://127.0.0.1:9464/login?token=")
            .nth(1)
            .unwrap();
        let token: String = url.chars().take_while(char::is_ascii_hexdigit).collect();
        let second = log_in(&g, &token).unwrap();
        assert_eq!(sessions.len(), 2);
        assert_eq!(status(&g, &retry().header("Cookie", &second)), 200);
    }
}
