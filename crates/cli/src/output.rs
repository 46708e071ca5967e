//! Output: one versioned JSON document with `--json`, human text otherwise.

use std::io::{IsTerminal, Write};

use oc_tasks::TaskStatus;
use serde::Serialize;

use crate::args::Global;

/// Version of the `--json` documents; bumped on any incompatible change.
pub(crate) const SCHEMA_VERSION: u32 = 1;

/// Where and how a command prints.
#[derive(Debug)]
pub(crate) struct Output {
    pub(crate) json: bool,
    pub(crate) quiet: bool,
    pub(crate) color: bool,
    /// stdout is a terminal (progress bars only then).
    pub(crate) tty: bool,
}

impl Output {
    pub(crate) fn new(g: &Global) -> Self {
        let tty = std::io::stdout().is_terminal();
        let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Output {
            json: g.json,
            quiet: g.quiet,
            color: tty && !g.no_color && !no_color_env && !g.json,
            tty,
        }
    }

    /// Prints `data` as `{"schema_version", "command", "data"}` with `--json`, else runs `human`.
    pub(crate) fn emit<T: Serialize>(
        &mut self,
        command: &str,
        data: &T,
        human: impl FnOnce(&mut dyn Write, &Output) -> std::io::Result<()>,
    ) -> anyhow::Result<()> {
        let stdout = std::io::stdout();
        let mut w = stdout.lock();
        if self.json {
            let doc = serde_json::json!({
                "schema_version": SCHEMA_VERSION,
                "command": command,
                "data": data,
            });
            serde_json::to_writer(&mut w, &doc)?;
            writeln!(w)?;
        } else {
            human(&mut w, self)?;
        }
        w.flush()?;
        Ok(())
    }

    /// A status word, coloured on terminals.
    pub(crate) fn status(&self, s: TaskStatus) -> String {
        if !self.color {
            return s.to_string();
        }
        let code = match s {
            TaskStatus::Pending => "33",
            TaskStatus::Running => "36",
            TaskStatus::Completed => "32",
            TaskStatus::Failed => "31",
            TaskStatus::Cancelled => "90",
        };
        format!("\x1b[{code}m{s}\x1b[0m")
    }
}

/// `1234567` → `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn groups_thousands() {
        for (n, s) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (1234, "1,234"),
            (1_234_567, "1,234,567"),
        ] {
            assert_eq!(thousands(n), s);
        }
    }
}
