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
    /// route and the message), and a final error as `{"error":{"kind":…,"message":…,"status":…}}`
    /// like every `mqlite --json` command. Exit statuses as `mqlite --help` lists them: 1
    /// failed, 2 usage (invalid configuration), 3 corrupt, 4 locked, 5 not found (no
    /// configuration file, no store).
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match mqlite_bridge::main_with_config_as(&args.config, args.json) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The same shape and statuses as every `mqlite` command's error (review r3 #29).
            if args.json {
                let line = serde_json::json!({"error": {
                    "status": e.status(),
                    "kind": e.kind(),
                    "message": e.to_string(),
                }});
                eprintln!("{line}");
            } else {
                eprintln!("mqlite-bridge: {e}");
            }
            ExitCode::from(e.status())
        }
    }
}
