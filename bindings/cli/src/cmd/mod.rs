//! The commands, one module each.

use std::io::Write;

use clap::CommandFactory;

use crate::cli::{Cli, Command};
use crate::error::Result;

mod bridge;
mod browse;
mod dlq;
mod export;
mod import;
mod info;
mod list;
mod maintenance;
mod receive;
mod send;
mod stats;
mod transfer;

pub fn run(cli: Cli, out: &mut dyn Write) -> Result<()> {
    let json = cli.json;
    if let Command::Bridge(_) = &cli.command {
        // Review r9 #4: both were listed for `bridge`, taken and dropped — a "read-only" bridge
        // created the store and acked forwarded messages. The bridge opens its store as its
        // owner and writes to it; neither option has a meaning there.
        if cli.read_only {
            return Err(crate::error::CliError::usage(
                "bridge: --read-only does not apply: a bridge owns its store and writes to it \
                 (it acks what it forwarded and stores what it receives)",
            ));
        }
        if cli.timeout_on_command_line {
            return Err(crate::error::CliError::usage(
                "bridge: --timeout does not apply: a bridge opens its store as its owner, never \
                 as another process's client",
            ));
        }
    }
    if let Some(t) = cli.timeout {
        // Checked by the commands that may wait on an owner, when they open a store (review
        // r4 #13: a bad MQLITE_CONNECT_TIMEOUT in a profile broke `completions`, `verify`).
        crate::open::set_connect_timeout(t);
    }
    crate::open::set_json(json);
    crate::open::set_read_only(cli.read_only);
    match cli.command {
        Command::Info(a) => info::run(&a.dir, json, out),
        Command::Stats(a) => stats::run(&a, json, out),
        Command::List(a) => list::run(&a.dir, json, out),
        Command::Browse(a) => browse::run(&a, json, out),
        Command::Send(a) => send::run(a, json, out),
        Command::Receive(a) => receive::run(&a, json, out),
        Command::Dlq(c) => dlq::run(c, json, out),
        Command::Purge(a) => transfer::purge(&a, json, out),
        Command::Move(a) => transfer::run(&a, false, json, out),
        Command::Copy(a) => transfer::run(&a, true, json, out),
        Command::Export(a) => export::run(&a, out),
        Command::Import(a) => import::run(&a, json, out),
        Command::Verify(a) => maintenance::verify(&a.dir, json, out),
        Command::Repair(a) => maintenance::repair(&a, json, out),
        Command::Compact(a) => maintenance::compact(&a.dir, json, out),
        Command::Bridge(a) => bridge::run(&a, json),
        Command::Completions { shell } => {
            // clap_complete panics when its writer fails (a closed pipe): it writes to memory,
            // and the script goes out through `out` like every other command's output.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "mqlite", &mut script);
            Ok(out.write_all(&script)?)
        }
    }
}
