//! The `mcp.*` workloads: tool calls over stdio to a running `oc mcp`, beside the same
//! operations as one `oc` process per call; and over HTTP to a running `oc serve`'s `/mcp`
//! ([`Served`], [`HttpClient`]), with a token from `oc token create` ([`token`]).

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

/// A running `oc serve` (its `/mcp`), killed when dropped.
pub struct Served {
    child: Child,
    /// The address it listens on.
    pub addr: String,
}

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Served").field("addr", &self.addr).finish()
    }
}

impl Served {
    /// Starts `oc --data-dir <data> [--database <url>] serve --addr 127.0.0.1:0` and reads the
    /// address it bound.
    pub fn start(oc: &Path, data: &Path, database: Option<&str>) -> anyhow::Result<Served> {
        let mut cmd = Command::new(oc);
        cmd.arg("--data-dir").arg(data);
        if let Some(url) = database {
            cmd.arg("--database").arg(url);
        }
        let mut child = cmd
            .args(["--json", "serve", "--addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting oc serve")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        let doc: Value =
            serde_json::from_str(&line).with_context(|| format!("oc serve said {line:?}"))?;
        let addr = doc["data"]["addr"]
            .as_str()
            .context("oc serve printed no address")?
            .to_owned();
        Ok(Served { child, addr })
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `oc --data-dir <data> [--database <url>] token create --agent <agent> --scope <scope>`:
/// the token it printed.
pub fn token(
    oc: &Path,
    data: &Path,
    database: Option<&str>,
    agent: &str,
    scope: &str,
) -> anyhow::Result<String> {
    let mut cmd = Command::new(oc);
    cmd.arg("--data-dir").arg(data);
    if let Some(url) = database {
        cmd.arg("--database").arg(url);
    }
    let out = cmd
        .args([
            "--quiet", "token", "create", "--agent", agent, "--scope", scope,
        ])
        .output()?;
    if !out.status.success() {
        bail!("oc token create: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// A blocking HTTP/1.1 client of `/mcp` on one kept-alive connection, speaking the stateless
/// 2026-07-28 revision (POST, `Mcp-Method` and `Mcp-Name` headers, `_meta`) with a bearer
/// token.
pub struct HttpClient {
    conn: BufReader<std::net::TcpStream>,
    head: String,
    next_id: u64,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("next_id", &self.next_id)
            .finish()
    }
}

impl HttpClient {
    /// Connects to `addr`.
    pub fn connect(addr: &str, token: &str) -> anyhow::Result<HttpClient> {
        let s = std::net::TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
        Ok(HttpClient {
            conn: BufReader::new(s),
            head: format!(
                "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\n"
            ),
            next_id: 0,
        })
    }

    /// One tool call, round trip; its `structuredContent` (a refusal or any status but 200 is
    /// an error).
    pub fn call(&mut self, tool: &str, arguments: Value) -> anyhow::Result<Value> {
        self.next_id += 1;
        let body = json!({"jsonrpc":"2.0","id":self.next_id,"method":"tools/call","params":{
            "name": tool, "arguments": arguments,
            "_meta": {"io.modelcontextprotocol/protocolVersion":"2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities":{}}}})
        .to_string();
        let req = format!(
            "{}Mcp-Name: {tool}\r\nContent-Length: {}\r\n\r\n{body}",
            self.head,
            body.len()
        );
        self.conn.get_mut().write_all(req.as_bytes())?;
        let mut line = String::new();
        self.conn.read_line(&mut line)?;
        let status = line.split(' ').nth(1).unwrap_or_default().to_owned();
        let mut length = None;
        loop {
            line.clear();
            if self.conn.read_line(&mut line)? == 0 {
                bail!("oc serve closed the connection");
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((n, v)) = l.split_once(':')
                && n.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse::<usize>().ok();
            }
        }
        let mut answer = vec![0; length.context("an answer without Content-Length")?];
        std::io::Read::read_exact(&mut self.conn, &mut answer)?;
        if status != "200" {
            bail!(
                "{tool}: HTTP {status}: {}",
                String::from_utf8_lossy(&answer)
            );
        }
        let v: Value = serde_json::from_slice(&answer)?;
        if v.get("error").is_some() || v["result"]["isError"] == json!(true) {
            bail!("{tool}: {v}");
        }
        Ok(v["result"]["structuredContent"].clone())
    }
}
