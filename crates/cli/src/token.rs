//! `oc token ...`: the static bearer tokens `oc serve` accepts.

use comfy_table::{ContentArrangement, Table, presets};
use oc_auth::TokenInfo;
use oc_time::Timestamp;
use serde_json::{Value, json};

use crate::Site;
use crate::args::TokenCmd;
use crate::output::{Clean, Output};

/// What `--json` shows of a token: everything `list` knows, never a secret or hash.
fn info_json(i: &TokenInfo) -> Value {
    json!({
        "id": i.id,
        "agent": i.agent,
        "scope": i.scope.as_str(),
        "tenant": i.tenant.as_ref().map(|t| t.as_str()),
        "created_at": i.created_at,
        "expires_at": i.expires_at,
        "revoked_at": i.revoked_at,
        "last_used_at": i.last_used_at,
    })
}

fn state(i: &TokenInfo, now: Timestamp) -> &'static str {
    if i.revoked_at.is_some() {
        "revoked"
    } else if !i.is_live(now) {
        "expired"
    } else {
        "active"
    }
}

fn when(t: Option<Timestamp>) -> String {
    t.map_or_else(|| "-".to_owned(), Timestamp::to_rfc3339_seconds)
}

pub(crate) fn run(site: &Site, cmd: TokenCmd, out: &mut Output) -> anyhow::Result<()> {
    match cmd {
        TokenCmd::Create {
            agent,
            scope,
            expires,
        } => {
            let tenant = site.tenant_name().cloned();
            oc_auth::backend::check_agent(&agent)?;
            let expires_at = expires.map(|d| Timestamp::now().saturating_add(d));
            let store = site.tokens()?;
            let (secret, info) = store.create(&agent, scope, tenant, expires_at)?;
            let mut data = info_json(&info);
            data["token"] = Value::from(secret.expose());
            out.emit("token.create", &data, |w, o| {
                if o.quiet {
                    return writeln!(w, "{}", secret.expose());
                }
                let tenant = info.tenant.as_ref().map_or("default", |t| t.as_str());
                writeln!(
                    w,
                    "Created token {} for agent {} (scope {}, tenant {tenant}, expires {})",
                    info.id,
                    Clean(&info.agent),
                    info.scope,
                    info.expires_at
                        .map_or_else(|| "never".to_owned(), Timestamp::to_rfc3339_seconds)
                )?;
                writeln!(w, "{}", secret.expose())?;
                writeln!(w, "Keep it now: it is not shown again.")
            })
        }
        TokenCmd::List => {
            let tokens = site.tokens()?.list()?;
            let data: Vec<Value> = tokens.iter().map(info_json).collect();
            let now = Timestamp::now();
            out.emit("token.list", &data, |w, o| {
                if o.quiet {
                    for t in &tokens {
                        writeln!(w, "{}", t.id)?;
                    }
                    return Ok(());
                }
                if tokens.is_empty() {
                    return writeln!(w, "No tokens");
                }
                let mut table = Table::new();
                table
                    .load_style(presets::NOTHING)
                    .set_content_arrangement(ContentArrangement::Disabled)
                    .set_header([
                        "ID",
                        "AGENT",
                        "SCOPE",
                        "TENANT",
                        "STATE",
                        "CREATED",
                        "EXPIRES",
                        "LAST USED",
                    ]);
                for t in &tokens {
                    table.add_row([
                        t.id.clone(),
                        Clean(&t.agent).to_string(),
                        t.scope.to_string(),
                        t.tenant
                            .as_ref()
                            .map_or_else(|| "-".to_owned(), ToString::to_string),
                        state(t, now).to_owned(),
                        t.created_at.to_rfc3339_seconds(),
                        when(t.expires_at),
                        when(t.last_used_at),
                    ]);
                }
                for line in table.lines() {
                    writeln!(w, "{}", line.trim_end())?;
                }
                writeln!(w, "{} token(s)", tokens.len())
            })
        }
        TokenCmd::Revoke { id } => {
            oc_auth::backend::check_id(&id)?;
            let info = site.tokens()?.revoke(&id)?;
            out.emit("token.revoke", &info_json(&info), |w, o| {
                if o.quiet {
                    return Ok(());
                }
                writeln!(
                    w,
                    "Revoked token {} of agent {} (at {})",
                    info.id,
                    Clean(&info.agent),
                    when(info.revoked_at)
                )
            })
        }
    }
}
