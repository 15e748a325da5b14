//! `mqlite-bridge --config bridge.toml`: runs the routes of a configuration file until SIGINT
//! or SIGTERM (see the README's "Beyond one machine" section for the file's fields).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Store-and-forward bridges between mqlite queues and NATS JetStream or RabbitMQ.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The configuration file (TOML).
    #[arg(long, short)]
    config: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match mqlite_bridge::main_with_config(&args.config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mqlite-bridge: {e}");
            ExitCode::FAILURE
        }
    }
}
