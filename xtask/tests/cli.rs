//! The `xtask` binary's command line as a user meets it: `--help` prints help and runs nothing,
//! an unknown flag is an error (non-zero exit) that names it.

use std::process::Command;

fn xtask(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("xtask runs")
}

#[test]
fn an_unknown_flag_is_an_error_naming_it() {
    // `codegen` is the one subcommand cheap and harmless enough to run if the flag were ignored.
    let out = xtask(&["codegen", "--bogus"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exit {:?}: {stderr}", out.status);
    assert!(stderr.contains("--bogus"), "{stderr}");
}

#[test]
fn help_prints_the_flags_and_runs_nothing() {
    let out = xtask(&["bench-report", "--help"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "exit {:?}", out.status);
    for flag in [
        "--quick",
        "--json",
        "--runs <N>",
        "--no-c",
        "--save <NAME>",
        "--compare <NAME>",
        "--instructions",
    ] {
        assert!(stdout.contains(flag), "{flag} in {stdout}");
    }
    assert!(
        out.stderr.is_empty(),
        "nothing built or run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn no_subcommand_prints_usage_and_fails() {
    let out = xtask(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bench-report"));
}
