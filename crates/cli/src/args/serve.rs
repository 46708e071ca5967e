//! `oc serve`'s arguments.

use super::McpTools;

/// `oc serve`: the status pages, `/metrics`, `/healthz` and `/api/stats`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on (loopback by default; any other needs a token).
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub(crate) addr: std::net::SocketAddr,
    /// Also evaluate alerts with this configuration (TOML) in the background.
    #[arg(long, value_name = "FILE")]
    pub(crate) alerts: Option<std::path::PathBuf>,
    /// Refuse every action (retry, cancel, release) on the server side.
    #[arg(long)]
    pub(crate) read_only: bool,
    /// A host name the pages may be reached by, besides localhost and loopback addresses
    /// (against DNS rebinding, others are refused); repeat for several.
    #[arg(long = "allowed-host", value_name = "NAME")]
    pub(crate) allowed_hosts: Vec<String>,
    /// Let anyone who can reach the server act on the pages (retry, cancel, release locks)
    /// without logging in: on loopback, any process of this machine. Without it, acting needs
    /// the session of the login URL printed at start, or an admin token.
    #[arg(long)]
    pub(crate) no_auth: bool,
    /// Answer `/metrics` (the default store's) without a credential to clients on loopback
    /// addresses, for a local Prometheus. Without it, once auth is on, `/metrics` needs a
    /// token as every read does (a `read` token of `oc token create`, as Prometheus's
    /// `authorization: credentials_file`). It trusts the peer's address: behind a reverse
    /// proxy on the same host every client looks like loopback, so do not use it there.
    #[arg(long)]
    pub(crate) metrics_open: bool,
    /// A file holding the token every request must carry (as a Bearer token, or as the
    /// password of Basic auth) unless it has a session; it acts as an admin token. Required
    /// to listen beyond loopback.
    #[arg(long, value_name = "FILE", conflicts_with = "token_env")]
    pub(crate) token_file: Option<std::path::PathBuf>,
    /// The token itself, from the environment.
    #[arg(
        long = "token-from-env",
        hide = true,
        env = "OC_SERVE_TOKEN",
        hide_env_values = true
    )]
    pub(crate) token_env: Option<String>,
    /// Which tools `/mcp` serves: the compact default set, or all of them.
    #[arg(long = "mcp-tools", value_enum, default_value_t = McpTools::Default)]
    pub(crate) mcp_tools: McpTools,
    /// Requests answered at once (threads for the pages, `/api` and `/mcp`; 1 to 256); more
    /// wait up to 2 s in a queue of 64, then get 503 with `Retry-After`. A large fleet of agents
    /// on `/mcp` wants more than the default.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub(crate) workers: u16,
    /// Also accept OAuth 2.1 JWT access tokens from this issuer on `/mcp` (keys from its JWKS),
    /// and serve the protected-resource metadata (RFC 9728) that leads clients to it.
    #[arg(long = "oauth-issuer", value_name = "URL", conflicts_with = "no_auth")]
    pub(crate) oauth_issuer: Option<String>,
    /// This server's resource identifier, the audience OAuth tokens must name (RFC 8707): the
    /// URL of `/mcp` as clients reach it. Default `http://ADDR/mcp` from `--addr`, which must
    /// then name a port and an address clients use (not 0, not 0.0.0.0).
    #[arg(long = "oauth-audience", value_name = "URL", requires = "oauth_issuer")]
    pub(crate) oauth_audience: Option<String>,
    /// The issuer's JWKS, when its metadata does not say (default: the `jwks_uri` of its
    /// `/.well-known/openid-configuration` or `/.well-known/oauth-authorization-server`).
    #[arg(long = "oauth-jwks", value_name = "URL", requires = "oauth_issuer")]
    pub(crate) oauth_jwks: Option<String>,
    /// The claim of an OAuth token naming the agent it acts as (default `sub`).
    #[arg(
        long = "oauth-agent-claim",
        value_name = "CLAIM",
        requires = "oauth_issuer"
    )]
    pub(crate) oauth_agent_claim: Option<String>,
}
