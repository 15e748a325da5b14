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
    /// Log as JSON lines on stderr (one object per event: timestamp, level, fields with the
    /// route and the message), and a final error as `{"error":{"message":…}}`.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match mqlite_bridge::main_with_config_as(&args.config, args.json) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if args.json => {
            let line = serde_json::json!({"error": {"message": e.to_string()}});
            eprintln!("{line}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("mqlite-bridge: {e}");
            ExitCode::FAILURE
        }
    }
}
