//! `mqlite`: operate an mqlite store from the shell.
//!
//! One more face over the core, like the C ABI and the Python module: it holds no policy of its
//! own and uses only the public API of the `mqlite` crate. `mqlite --help` lists the commands
//! and the exit statuses; every command's `--help` has an example.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

mod cli;
mod cmd;
mod error;
mod open;
mod out;
mod parse;
mod report;
mod wire;

fn main() -> ExitCode {
    let matches = match cli::Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => return usage_error(e),
    };
    let mut cli = match cli::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    // A global option given after the subcommand is recorded in the subcommand's matches.
    let on_command_line = |m: &clap::ArgMatches| {
        m.value_source("timeout") == Some(clap::parser::ValueSource::CommandLine)
    };
    cli.timeout_on_command_line = on_command_line(&matches)
        || matches
            .subcommand()
            .is_some_and(|(_, sub)| on_command_line(sub));
    let json = cli.json;
    // One handler for the whole run, before any store is opened: on SIGINT, SIGTERM or SIGHUP
    // every command closes its stores cleanly and exits with 130 (review r4 #10). Not for
    // `bridge`, which opens no store and execs `mqlite-bridge`: `exec` resets a caught signal
    // to its default but keeps an ignored one ignored, so the handler would have turned the
    // SIGHUP that `nohup` ignores (or the SIGINT a shell ignores for a background job) into
    // one that kills the bridge — `mqlite bridge` must run as `mqlite-bridge` would.
    if !matches!(cli.command, cli::Command::Bridge(_)) {
        if let Err(e) = open::close_on_signal() {
            return e.report(json);
        }
    }
    let stdout = io::stdout();
    let mut out = BufWriter::new(out::Stdout::new(stdout.lock()));
    let result = cmd::run(cli, &mut out).and_then(|()| Ok(out.flush()?));
    if open::signalled() {
        // The handler is closing the stores and will exit with 130: what failed here is the
        // close it caused, not the command's (wait for it).
        loop {
            std::thread::park();
        }
    }
    if result.is_err() {
        // Whatever was printed before the failure goes out first.
        let _ = out.flush();
    }
    // The outcome is reported before the stores are closed (review r4 #3: a close can wait,
    // as a client, on an owner that stopped answering; the operator hears of the failure first).
    let code = if out.get_ref().reader_gone() {
        // The reader went away (`mqlite export … | head`, `mqlite stats DIR --json | head -c1`):
        // stop quietly with status 0, as cat, grep and git do, whatever the write that found
        // the pipe closed turned into on its way up (an I/O error, serde_json's error, a flush).
        ExitCode::SUCCESS
    } else {
        match &result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => e.report(json),
        }
    };
    // A close that fails after a success is the command's failure (a client's close hands back
    // what it held); after a failure, the first failure is the one reported.
    let closed = open::close_all();
    if open::signalled() {
        // A signal came during the close: its handler waited for this close to end and exits
        // with its own status (130); the run ends one way whatever the timing.
        loop {
            std::thread::park();
        }
    }
    match (closed, &result) {
        (Err(e), Ok(())) => e.report(json),
        _ => code,
    }
}

/// A command line clap refuses. With `--json` anywhere on it, the error goes through the same
/// reporter as every other failure (one JSON object on stderr, status 2); without, clap prints
/// its own text (with the usage line) and exits 2. `--help` and `--version` print as usual.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let json = std::env::args_os().skip(1).any(|a| a == "--json");
    let informational = matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion);
    if !json || informational {
        e.exit();
    }
    error::CliError::usage(format!("{} (see `mqlite --help`)", usage_message(&e))).report(true)
}

/// clap's error without its usage part, on one line: the error ("error: the following required
/// arguments were not provided:") and its context lines (the missing `<QUEUE>`, a `tip: …`) up
/// to the "Usage:" line. Review r3 #23: only the first line was kept, so a script got no clue
/// which argument was missing.
fn usage_message(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let parts: Vec<&str> = text
        .lines()
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let line = parts.join(" ");
    line.strip_prefix("error: ").unwrap_or(&line).to_string()
}
