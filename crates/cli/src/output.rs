//! Output: one versioned JSON document with `--json`, human text otherwise.

use std::io::{IsTerminal, Write};

use comfy_table::{ContentArrangement, Table, presets};
use oc_tasks::{TaskPage, TaskStatus};
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

/// Text that agents wrote, made safe to print on a terminal: control characters (C0, newlines
/// and tabs included, DEL, C1) are shown as escapes (`\n`, `\x1b`, `\u{9b}`), so a task name
/// cannot recolour, clear or retitle the operator's terminal, nor forge lines of output; so are
/// the invisible characters that make a line read differently from what it is ([`unseen`]:
/// bidirectional overrides, embeddings, isolates and marks, line and paragraph separators).
/// `--json` prints the exact text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clean<'a>(pub(crate) &'a str);

impl std::fmt::Display for Clean<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(escaped) {
            f.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            match c {
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                c if u32::from(c) < 0x80 => write!(f, "\\x{:02x}", u32::from(c))?,
                c => write!(f, "\\u{{{:x}}}", u32::from(c))?,
            }
            rest = &rest[at + c.len_utf8()..];
        }
        f.write_str(rest)
    }
}

/// Whether `c` is invisible and changes how the text around it reads: the bidirectional
/// embeddings and overrides (U+202A–U+202E), isolates (U+2066–U+2069) and marks (U+200E,
/// U+200F, U+061C), which reorder what follows them (a "Trojan Source" line), and the line and
/// paragraph separators (U+2028, U+2029), which some terminals break lines at.
fn unseen(c: char) -> bool {
    matches!(
        c,
        '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{061c}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

/// What [`Clean`] shows as an escape.
fn escaped(c: char) -> bool {
    c.is_control() || unseen(c)
}

/// [`Clean`] as a string, borrowed when there was nothing to escape.
pub(crate) fn clean(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(escaped) {
        Clean(s).to_string().into()
    } else {
        s.into()
    }
}

/// `1234567` → `1,234,567` (one definition, in `oc-jsonl`, for the CLI and the pages).
pub(crate) use oc_jsonl::thousands;

pub(crate) fn print_page(command: &str, page: &TaskPage, out: &mut Output) -> anyhow::Result<()> {
    out.emit(command, page, |w, o| {
        if o.quiet {
            for t in &page.tasks {
                writeln!(w, "{}", t.id)?;
            }
            return Ok(());
        }
        if page.tasks.is_empty() {
            return writeln!(w, "No tasks found");
        }
        let mut table = Table::new();
        table
            .load_style(presets::NOTHING)
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header(["ID", "NAME", "STATUS", "OWNER", "PRIO", "CREATED"]);
        for t in &page.tasks {
            table.add_row([
                t.id.to_string(),
                clean(&t.name).into_owned(),
                // Plain: escape codes would throw the column widths off.
                t.status.to_string(),
                clean(t.owner.as_deref().unwrap_or("-")).into_owned(),
                t.priority.to_string(),
                t.created_at.to_rfc3339_seconds(),
            ]);
        }
        for line in table.lines() {
            writeln!(w, "{}", line.trim_end())?;
        }
        writeln!(w, "{} task(s)", page.tasks.len())?;
        if let Some(next) = &page.next {
            writeln!(w, "More: --after {}", String::from(next.clone()))?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::{clean, thousands};

    #[test]
    fn escapes_every_control_character() {
        for (raw, shown) in [
            ("plain", "plain"),
            ("evil\x1b[31mRED\x1b[0m", "evil\\x1b[31mRED\\x1b[0m"),
            ("a\nb\r\tc", "a\\nb\\r\\tc"),
            ("\0\x07\x7f", "\\x00\\x07\\x7f"),
            ("c1 \u{9b}2J \u{85}", "c1 \\u{9b}2J \\u{85}"),
            ("ünïcode ✓ \u{a0}", "ünïcode ✓ \u{a0}"),
            // Bidirectional overrides, isolates and marks, and separators.
            (
                "a\u{202e}b\u{202a}\u{202b}\u{202c}\u{202d}",
                "a\\u{202e}b\\u{202a}\\u{202b}\\u{202c}\\u{202d}",
            ),
            (
                "\u{2066}\u{2067}\u{2068}\u{2069}",
                "\\u{2066}\\u{2067}\\u{2068}\\u{2069}",
            ),
            (
                "\u{200e}\u{200f}\u{61c}\u{2028}\u{2029}",
                "\\u{200e}\\u{200f}\\u{61c}\\u{2028}\\u{2029}",
            ),
            // Other format characters stay: joiners are part of emoji and scripts.
            ("\u{200d}\u{2069}", "\u{200d}\\u{2069}"),
        ] {
            assert_eq!(clean(raw), shown);
        }
    }

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
