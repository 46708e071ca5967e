//! The login's pages: how to log in (shown to an action without a session, and at `/login`),
//! a new login link for another browser, and logged out. They need no script and read no
//! store, so the guard answers them itself.

use maud::{DOCTYPE, Markup, html};

use crate::http::Response;

/// A page of the login with `title` and `body`, no navigation (the visitor may have no
/// session), the stylesheet only.
fn page(status: u16, title: &str, body: Markup) -> Response {
    Response::html(
        status,
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " · oc" }
                    link rel="stylesheet" href="/static/app.css";
                }
                body {
                    header { nav aria-label="Pages" { span class="brand" { "oc" } a href="/" { "Overview" } } }
                    main id="main" {
                        h1 { (title) }
                        (body)
                    }
                }
            }
        },
    )
}

/// How to log in.
fn how() -> Markup {
    html! {
        p {
            "Open the URL " code { "oc serve" } " printed when it started ("
            code { "http://127.0.0.1:9464/login?token=…" } ")."
            " It works once, within an hour of the start."
        }
        p {
            "To log in another browser, use " strong { "Log in another browser" }
            " in a browser that is logged in, or restart " code { "oc serve" }
            " for a new URL (a restart ends every session: they are kept in memory only)."
        }
        p {
            "Scripts and tools read with any token of " code { "oc token create" }
            " and act with an " code { "admin" } " one ("
            code { "Authorization: Bearer …" } "). Or start the server with "
            code { "oc serve --no-auth" } ", and any process on this machine can act."
        }
    }
}

/// A read (a page, `/api`, `/metrics`) without a session or a token, on a server whose
/// actions need a login: 401, and how to log in.
pub(crate) fn needed_to_read(why: &str) -> Response {
    page(
        401,
        "Log in to read",
        html! { p class="error" role="alert" { (why) } (how()) },
    )
    .with("WWW-Authenticate", "Bearer realm=\"oc\"".into())
}

/// An action without a session or a token: 401, and how to log in.
pub(crate) fn needed(why: &str) -> Response {
    page(
        401,
        "Log in to act",
        html! { p class="error" role="alert" { (why) } (how()) },
    )
    .with("WWW-Authenticate", "Bearer realm=\"oc\"".into())
}

/// `/login` without a usable token.
pub(crate) fn refused(status: u16, why: &str) -> Response {
    page(
        status,
        "Log in",
        html! { p class="error" role="alert" { (why) } (how()) },
    )
}

/// `/login` on a server that asks for no login (`--no-auth`).
pub(crate) fn not_asked() -> Response {
    page(
        404,
        "No login here",
        html! {
            p { "This server was started with " code { "--no-auth" } ": it asks for no login, and any process on this machine can act." }
            p { a href="/" { "Go to the overview" } }
        },
    )
}

/// After logout.
pub(crate) fn logged_out() -> Response {
    page(
        200,
        "Logged out",
        html! { p role="status" { "The session has ended." } (how()) },
    )
}

/// A new one-time login URL for another browser.
pub(crate) fn renewed(url: &str) -> Response {
    page(
        200,
        "Log in another browser",
        html! {
            p { "Open this URL in the other browser. It works once, within an hour; any login URL given before stops working." }
            p { code class="login-url" { (url) } }
            p { a href="/" { "Back to the overview" } }
        },
    )
}
