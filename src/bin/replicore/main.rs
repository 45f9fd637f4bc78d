//! `replicore`: the command line of the replication core. Every capability can be driven by
//! hand or from scripts; `replicore demo` shows the whole job on a sample disk.
//!
//! Exit codes: 0 success, 2 usage or invalid argument, 3 corruption, 4 authentication, 5 broken
//! chain, conflict, locked or an existing output, 6 I/O or not found, 7 resync required, 1
//! anything else. Errors are one line on stderr.
//!
//! Files: every output (key files, logs, bundles, ship state, images, signatures, deltas) is
//! created 0600 under an unpredictable temporary name and renamed into place; an existing
//! output is refused (exit 5) unless the verb's `--force` is given.

mod args;
mod demo;
mod demo_cycle;
mod keys;
mod log_cmd;
mod out;
mod resync_cmd;
mod reverse_cmd;
mod ship_cmd;
mod status_cmd;
mod vault_cmd;

use std::process::ExitCode;

use clap::Parser;
use replicore::ErrorKind;

use args::{Cli, Cmd};

/// Why a command failed, with the exit code it gives.
#[derive(Debug)]
pub enum Failure {
    /// An error of the library.
    Lib(replicore::Error),
    /// A usage error the library did not see (exit 2).
    Usage(String),
    /// A check found damage (exit 3).
    Damage(String),
    /// An output exists and `--force` was not given (exit 5).
    Exists(String),
    /// Anything else (exit 1).
    Other(String),
}

impl From<replicore::Error> for Failure {
    fn from(e: replicore::Error) -> Self {
        Failure::Lib(e)
    }
}

impl Failure {
    /// The exit code scripts rely on.
    pub fn code(&self) -> u8 {
        match self {
            Failure::Usage(_) => 2,
            Failure::Damage(_) => 3,
            Failure::Exists(_) => 5,
            Failure::Other(_) => 1,
            Failure::Lib(e) => exit_code(e.kind()),
        }
    }
}

/// The exit code of an error kind.
pub fn exit_code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::InvalidArgument => 2,
        ErrorKind::Corrupt | ErrorKind::UnsupportedVersion | ErrorKind::LimitExceeded => 3,
        ErrorKind::Authentication => 4,
        ErrorKind::ChainBroken | ErrorKind::AlreadyExists | ErrorKind::Locked => 5,
        ErrorKind::Io | ErrorKind::NotFound => 6,
        ErrorKind::ResyncRequired => 7,
        _ => 1,
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Lib(e) => write!(f, "{e}"),
            Failure::Usage(m) | Failure::Damage(m) | Failure::Exists(m) | Failure::Other(m) => {
                f.write_str(m)
            }
        }
    }
}

/// What a command returns.
pub type CmdResult = Result<(), Failure>;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // --help and --version are successes; everything else is a usage error (exit 2).
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    // A panic is a bug: it is reported in one line and exit 1, never as a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!(
            "replicore: internal error (a bug; please report it): {}",
            one_line(&msg)
        );
    }));
    match std::panic::catch_unwind(|| run(cli.cmd)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(f)) => {
            eprintln!("replicore: error: {}", one_line(&f.to_string()));
            ExitCode::from(f.code())
        }
        Err(_) => ExitCode::from(1),
    }
}

fn one_line(s: &str) -> String {
    s.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

fn run(cmd: Cmd) -> CmdResult {
    // The library names arguments as its Rust API does (`chunk_size`); the operator is told the
    // flag or operand they typed (`--chunk-size`).
    match cmd {
        Cmd::Keygen(a) => keys::keygen(a),
        Cmd::Key(args::KeyCmd::Rotate(a)) => keys::rotate(a),
        Cmd::Key(args::KeyCmd::Show { key, pass, json }) => keys::show(&key, &pass, json),
        Cmd::Seed(a) => ship_cmd::seed(a).map_err(as_typed(&[
            ("group", "--group"),
            ("disks", "--disk"),
            ("disk name", "--disk"),
            ("chunk_size", "--chunk-size"),
        ])),
        Cmd::Log(c) => {
            log_cmd::run(c).map_err(as_typed(&[("time", "--time"), ("offset", "--extents")]))
        }
        Cmd::Ship(a) => {
            ship_cmd::ship(a).map_err(as_typed(&[("sealed_log", "SEALED"), ("key", "--key")]))
        }
        Cmd::Vault(c) => vault_cmd::run(c).map_err(as_typed(&[
            ("dir", "DIR"),
            ("window_hours", "--window"),
            ("app_every_hours", "--app-every"),
            ("extra_hourly", "--extra-hourly"),
            ("keep_last", "--keep-last"),
            ("verifying key", "--verifying-key"),
        ])),
        Cmd::Failover(a) => vault_cmd::failover(a).map_err(as_typed(&[("out_dir", "--out-dir")])),
        Cmd::Resync(c) => resync_cmd::run(c).map_err(as_typed(&[
            ("chunk_size", "--chunk-size"),
            ("target", "TARGET"),
            ("signature", "--signature"),
            ("key", "--key"),
        ])),
        Cmd::Status(a) => status_cmd::run(a),
        Cmd::Apply(a) => reverse_cmd::apply(a).map_err(as_typed(&[
            ("disks", "--disk"),
            ("key", "--key"),
            ("bundle", "BUNDLE"),
        ])),
        Cmd::Protection(a) => reverse_cmd::protection(a).map_err(as_typed(&[("to", "--set")])),
        Cmd::Demo => demo::run(),
    }
}

/// Renames the arguments an InvalidArgument error of the library names (`from`) to what the
/// command line calls them (`to`).
fn as_typed(names: &'static [(&'static str, &'static str)]) -> impl Fn(Failure) -> Failure {
    move |f| match f {
        Failure::Lib(e) => Failure::Lib(
            names
                .iter()
                .fold(e, |e, (from, to)| e.renaming_argument(from, to)),
        ),
        f => f,
    }
}
