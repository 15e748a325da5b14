//! `mqlite bridge`: runs the `mqlite-bridge` program in this process's place.
//!
//! The bridge links tokio, async-nats and lapin; keeping it a separate program keeps this command
//! (and every operator who never bridges) free of them, the way `git` and `cargo` find their
//! external subcommands. `exec` rather than a child process: SIGINT, SIGTERM and SIGHUP reach the bridge
//! itself (its graceful stop), and its exit status is ours with nothing in between.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use crate::cli::BridgeArgs;
use crate::error::{CliError, Result, Status};

/// The bridge program's file name.
const PROGRAM: &str = "mqlite-bridge";

/// With `json` (the command line's `--json`), the bridge logs JSON lines and reports a final
/// error as a JSON object, as every other command does.
pub fn run(args: &BridgeArgs, json: bool) -> Result<()> {
    let program = beside_this_program().unwrap_or_else(|| PathBuf::from(PROGRAM));
    let mut config = OsString::from("--config=");
    config.push(&args.config);
    let mut command = Command::new(&program);
    if json {
        command.arg("--json");
    }
    // `exec` returns only when it failed.
    let e = command.arg(config).exec();
    let message = if e.kind() == std::io::ErrorKind::NotFound {
        format!(
            "bridge: the program {PROGRAM} was found neither beside this one nor on PATH \
             (install it with `cargo install --path bindings/bridge`, or build it with \
             `cargo build --release -p mqlite-bridge`)"
        )
    } else {
        format!("bridge: cannot run {}: {e}", program.display())
    };
    Err(CliError::new(Status::Failed, message))
}

/// `mqlite-bridge` in the directory of the running `mqlite`, as `cargo build` and `cargo install`
/// put them side by side.
fn beside_this_program() -> Option<PathBuf> {
    let candidate = std::env::current_exe().ok()?.parent()?.join(PROGRAM);
    candidate.is_file().then_some(candidate)
}
