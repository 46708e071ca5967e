//! The command line of `cargo xtask`: every subcommand and its flags, declared (with clap), so
//! `--help` prints help and runs nothing, and an unknown flag or a flag missing its value is an
//! error with a non-zero exit instead of being ignored.

use clap::{Args, Parser, Subcommand};

/// Project automation for opencode-tools, instead of shell scripts.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
pub(crate) struct Xtask {
    #[command(subcommand)]
    pub(crate) command: Cmd,
}

/// The tasks.
#[derive(Debug, Subcommand)]
pub(crate) enum Cmd {
    /// The checks `.ci/run` runs: fmt, clippy, tests (collecting the reliability figures),
    /// shuttle, fuzz, doc tests, docs, examples, benches in test mode, the hot paths'
    /// instruction counts, `--no-default-features` builds, the no-tokio and no-SQLite checks.
    Ci,
    /// Runs the evidence tests (linearizability, planted bugs, fenced writes, faults, power loss,
    /// fuzz corpora) and prints the figures each published.
    Reliability {
        /// The soak tier: longer runs and more schedules.
        #[arg(long)]
        soak: bool,
    },
    /// Builds the cargo-fuzz targets in `fuzz/` and runs each for a bounded time, adding their
    /// figures.
    Fuzz(Fuzz),
    /// The interleaving tests under shuttle's schedulers (a build with `--cfg shuttle`, in
    /// `shuttle/` of cargo's target directory).
    Shuttle {
        /// Twenty times as many schedules.
        #[arg(long)]
        soak: bool,
    },
    /// Runs the benchmark workloads in release mode (and the SQLite ones as a C program), then
    /// prints each figure beside its documented value, the C baseline and its target.
    BenchReport(BenchReport),
    /// Instructions per operation of the hot paths under callgrind, against the committed
    /// `benches/instructions.json`.
    Instructions(Instructions),
    /// oc-postgres against graphile-worker, pg-boss and pgqueuer (installed at their pins from
    /// npm and PyPI under the target directory) on one throwaway server, in interleaved rounds.
    Peers(Peers),
    /// Regenerates `docs/METRICS.md` from the metric catalogue.
    Codegen,
    /// Packages every published crate, checks each package's files, builds them from their
    /// `.crate` files in an out-of-tree project running the README examples of oc-tasks and
    /// oc-locks, and installs the packaged `oc`.
    Package,
    /// The compatibility and supply-chain checks: cargo-deny (licences, bans, sources,
    /// advisories when reachable), cargo-semver-checks against `release/baseline.toml`, MSRV.
    Supply,
    /// Bumps the published crates' version and dates CHANGELOG.md's Unreleased section, then
    /// writes the SBOM of `oc` to `release-artifacts/` in cargo's target directory.
    Release(Release),
}

/// `cargo xtask release`.
#[derive(Debug, Args)]
pub(crate) struct Release {
    /// patch (fixes), minor (features; breaking before 1.0) or major.
    #[arg(value_enum)]
    pub(crate) level: crate::release::Level,
    /// Prints what would change; writes nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// `cargo xtask fuzz`.
#[derive(Debug, Args)]
pub(crate) struct Fuzz {
    /// Seconds per target [default: 20; 1800 with --soak or OC_SOAK=1].
    #[arg(long, value_name = "N")]
    pub(crate) seconds: Option<u64>,
    /// Thirty minutes per target.
    #[arg(long)]
    pub(crate) soak: bool,
}

/// `cargo xtask bench-report`.
#[derive(Debug, Args)]
pub(crate) struct BenchReport {
    /// One run, and no 1M-task figure.
    #[arg(long)]
    pub(crate) quick: bool,
    /// One JSON object per figure instead of the table.
    #[arg(long)]
    pub(crate) json: bool,
    /// Runs per figure, of which the median is reported [default: 5; 1 with --quick].
    #[arg(long, value_name = "N")]
    pub(crate) runs: Option<usize>,
    /// No C baseline.
    #[arg(long)]
    pub(crate) no_c: bool,
    /// Keeps every run of every figure as `bench-report/NAME.json` in cargo's target directory.
    #[arg(long, value_name = "NAME")]
    pub(crate) save: Option<String>,
    /// Compares this run with the one saved as NAME, each change judged against the noise.
    #[arg(long, value_name = "NAME")]
    pub(crate) compare: Option<String>,
    /// Instead of timing: the SQLite phases, ours and C's, under callgrind (with --json).
    #[arg(long)]
    pub(crate) instructions: bool,
}

/// `cargo xtask peers`.
#[derive(Debug, Args, Default)]
pub(crate) struct Peers {
    /// 2,000 jobs, one round, 2 s of pgbench: to check it works, not to publish.
    #[arg(long)]
    pub(crate) short: bool,
    /// Jobs per run [default: 20,000; 2,000 with --short].
    #[arg(long, value_name = "N")]
    pub(crate) jobs: Option<usize>,
    /// Rounds, each running every system [default: 3; 1 with --short].
    #[arg(long, value_name = "N")]
    pub(crate) rounds: Option<usize>,
    /// Every client over 127.0.0.1 TCP instead of the Unix socket.
    #[arg(long)]
    pub(crate) tcp: bool,
    /// Only these systems (comma-separated: oc-16t, oc-1t, oc-batch, graphile-worker,
    /// pg-boss, pg-boss-batch10, pgqueuer, pgbench); ours with 16 threads still runs before
    /// each peer.
    #[arg(long, value_name = "LIST")]
    pub(crate) only: Option<String>,
    /// Installs and measures nothing: reports again the lines of an earlier run of
    /// `oc-bench-peers` (every run keeps them as `peers/last-run.jsonl` in the target directory).
    #[arg(long, value_name = "FILE")]
    pub(crate) replay: Option<std::path::PathBuf>,
}

/// `cargo xtask instructions`.
#[derive(Debug, Args)]
pub(crate) struct Instructions {
    /// Fails when a hot path grew by more than 5 %.
    #[arg(long, conflicts_with = "update")]
    pub(crate) check: bool,
    /// Rewrites `benches/instructions.json` from this run, on purpose.
    #[arg(long)]
    pub(crate) update: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cmd, clap::Error> {
        Xtask::try_parse_from(std::iter::once("xtask").chain(args.iter().copied()))
            .map(|x| x.command)
    }

    fn error(args: &[&str]) -> ErrorKind {
        parse(args).expect_err("an error").kind()
    }

    #[test]
    fn the_declaration_is_consistent() {
        Xtask::command().debug_assert();
    }

    #[test]
    fn help_is_help_for_every_subcommand() {
        for sub in [
            "ci",
            "reliability",
            "fuzz",
            "shuttle",
            "bench-report",
            "instructions",
            "peers",
            "codegen",
        ] {
            assert_eq!(error(&[sub, "--help"]), ErrorKind::DisplayHelp, "{sub}");
        }
        assert_eq!(error(&["--help"]), ErrorKind::DisplayHelp);
    }

    #[test]
    fn an_unknown_flag_or_a_missing_value_is_an_error() {
        assert_eq!(
            error(&["bench-report", "--bogus"]),
            ErrorKind::UnknownArgument
        );
        assert_eq!(error(&["ci", "--soak"]), ErrorKind::UnknownArgument);
        assert_eq!(error(&["bench-report", "--runs"]), ErrorKind::InvalidValue);
        assert_eq!(
            error(&["bench-report", "--runs", "five"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(error(&["fuzz", "--seconds"]), ErrorKind::InvalidValue);
        assert_eq!(error(&["bench-report", "--save"]), ErrorKind::InvalidValue);
        assert_eq!(
            error(&["instructions", "--check", "--update"]),
            ErrorKind::ArgumentConflict
        );
        assert_eq!(error(&["bench"]), ErrorKind::InvalidSubcommand);
        assert_eq!(
            error(&[]),
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
    }

    #[test]
    fn every_flag_of_today_parses() {
        let Ok(Cmd::BenchReport(b)) = parse(&[
            "bench-report",
            "--quick",
            "--json",
            "--runs",
            "7",
            "--no-c",
            "--save",
            "before",
            "--compare",
            "older",
        ]) else {
            panic!("bench-report with every flag");
        };
        assert!(b.quick && b.json && b.no_c && !b.instructions);
        assert_eq!(b.runs, Some(7));
        assert_eq!(
            (b.save.as_deref(), b.compare.as_deref()),
            (Some("before"), Some("older"))
        );
        assert!(matches!(
            parse(&["bench-report", "--instructions", "--json"]),
            Ok(Cmd::BenchReport(BenchReport {
                instructions: true,
                json: true,
                ..
            }))
        ));
        assert!(matches!(
            parse(&["fuzz", "--seconds", "5", "--soak"]),
            Ok(Cmd::Fuzz(Fuzz {
                seconds: Some(5),
                soak: true
            }))
        ));
        assert!(matches!(
            parse(&["reliability", "--soak"]),
            Ok(Cmd::Reliability { soak: true })
        ));
        assert!(matches!(
            parse(&["shuttle", "--soak"]),
            Ok(Cmd::Shuttle { soak: true })
        ));
        assert!(matches!(
            parse(&["instructions", "--check"]),
            Ok(Cmd::Instructions(Instructions {
                check: true,
                update: false
            }))
        ));
        assert!(matches!(
            parse(&[
                "peers", "--short", "--jobs", "500", "--rounds", "2", "--tcp", "--only", "pg-boss"
            ]),
            Ok(Cmd::Peers(Peers {
                short: true,
                jobs: Some(500),
                rounds: Some(2),
                tcp: true,
                only: Some(_),
                replay: None,
            }))
        ));
        assert!(matches!(parse(&["ci"]), Ok(Cmd::Ci)));
        assert!(matches!(parse(&["codegen"]), Ok(Cmd::Codegen)));
    }
}
