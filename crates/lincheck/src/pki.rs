//! A throwaway public-key infrastructure for TLS tests, made with the `openssl` command: an
//! authority, a server certificate for 127.0.0.1 it signed, and a stranger authority that
//! signed nothing (what a client must refuse).

use std::io;
use std::path::Path;
use std::process::Command;

/// Runs `openssl args` in `dir`; its message on failure.
fn openssl(dir: &Path, args: &[&str]) -> io::Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

/// Makes, in `dir`: the authorities `ca.crt` / `ca.key` and `stranger.crt` / `stranger.key`,
/// and `server.crt` / `server.key`, a certificate for `IP:127.0.0.1` signed by `ca`, all valid
/// for a day.
pub fn test_pki(dir: &Path) -> io::Result<()> {
    for ca in ["ca", "stranger"] {
        let (key, crt, subj) = (
            format!("{ca}.key"),
            format!("{ca}.crt"),
            format!("/CN={ca}"),
        );
        openssl(
            dir,
            &[
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", &key,
                "-out", &crt, "-subj", &subj,
            ],
        )?;
    }
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    )?;
    std::fs::write(
        dir.join("ext.cnf"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-out",
            "server.crt",
            "-extfile",
            "ext.cnf",
        ],
    )
}
