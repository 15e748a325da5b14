//! `mqlite`: operate an mqlite store from the shell.
//!
//! One more face over the core, like the C ABI and the Python module: it holds no policy of its
//! own and uses only the public API of the `mqlite` crate. `mqlite --help` lists the commands
//! and the exit statuses; every command's `--help` has an example.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use clap::Parser;

mod cli;
mod cmd;
mod error;
mod open;
mod out;
mod parse;
mod report;
mod wire;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let json = cli.json;
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = cmd::run(cli, &mut out).and_then(|()| Ok(out.flush()?));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`mqlite export … | head`): stop quietly, as other tools do.
        Err(e) if e.status == error::Status::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            // Whatever was printed before the failure goes out first.
            let _ = out.flush();
            e.report(json)
        }
    }
}
