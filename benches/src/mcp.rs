//! The `mcp.*` workloads: tool calls over stdio to a running `oc mcp`, beside the same
//! operations as one `oc` process per call.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// The `oc` binary: `$OC_BIN`, or the one built beside the running executable.
pub fn oc_binary() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("OC_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let oc = exe.with_file_name("oc");
    if oc.exists() {
        Ok(oc)
    } else {
        bail!("no oc binary at {} (build it, or set OC_BIN)", oc.display())
    }
}

/// A running `oc mcp` on a data directory, after its handshake.
pub struct Session {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("next_id", &self.next_id)
            .finish()
    }
}

impl Session {
    /// Starts `oc --data-dir <data> mcp --tools all` and shakes hands.
    pub fn start(oc: &Path, data: &Path) -> anyhow::Result<Session> {
        let mut child = Command::new(oc)
            .arg("--data-dir")
            .arg(data)
            .args(["mcp", "--tools", "all"])
            .env("OC_AGENT", "bench")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting oc mcp")?;
        let stdin = child.stdin.take().context("stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("stdout")?);
        let mut s = Session {
            child,
            stdin,
            stdout,
            next_id: 0,
        };
        s.request(
            "initialize",
            json!({"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"oc-bench","version":"1"}}),
        )?;
        Ok(s)
    }

    fn request(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.next_id += 1;
        let msg = json!({"jsonrpc":"2.0","id":self.next_id,"method":method,"params":params});
        let mut line = msg.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes())?;
        self.stdin.flush()?;
        let mut answer = String::new();
        if self.stdout.read_line(&mut answer)? == 0 {
            bail!("oc mcp ended");
        }
        let mut v: Value = serde_json::from_str(&answer)?;
        if v.get("error").is_some() {
            bail!("{method}: {}", v["error"]);
        }
        Ok(v["result"].take())
    }

    /// One tool call, round trip; its `structuredContent` (a refusal is an error).
    pub fn call(&mut self, tool: &str, arguments: Value) -> anyhow::Result<Value> {
        let r = self.request("tools/call", json!({"name": tool, "arguments": arguments}))?;
        if r["isError"] == json!(true) {
            bail!("{tool}: {}", r["content"][0]["text"]);
        }
        Ok(r["structuredContent"].clone())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Closing stdin ends the server.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Milliseconds each call of `f` took, for `n` calls.
pub fn latencies(
    n: usize,
    mut f: impl FnMut(usize) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<f64>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        f(i)?;
        out.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(out)
}

/// Runs `oc --data-dir <data> <args>` once, failing unless it succeeds.
pub fn oc_once(oc: &Path, data: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(oc)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("OC_AGENT", "bench")
        .stdout(Stdio::null())
        .output()?;
    if !out.status.success() {
        bail!(
            "oc {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
