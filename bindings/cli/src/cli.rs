//! The command line: every command, its options, and its help with an example.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const ABOUT: &str =
    "Operate an mqlite store from the shell: look inside, send and receive, replay dead \
letters, export and import, verify and repair.";

const LONG_ABOUT: &str = "\
Operate an mqlite store from the shell: look inside, send and receive, replay dead letters, \
export and import, verify and repair.

Every command takes the store directory DIR first and opens it the way a program linking mqlite \
does: as its owner when no other process has it open (recovery runs; a torn tail is cut), else \
as the owner's client (then the owner's queue options apply). `verify`, `repair` and `compact` \
need the store to themselves: on a store another process holds they exit with status 4 naming \
the owner's pid. `verify` never writes. A store this command cannot write (a read-only file \
system, a snapshot, another user's directory) is opened read-only by the commands that only read \
(info, stats, list, browse, export, dlq list, dlq show), with a note on stderr: nothing is locked \
or written, and the view may be stale if a live process owns the store; --read-only asks for \
that on any store.

Queue options (redelivery policy, dead-letter strategy, limits) live in the programs that use a \
store, not in the store. This command uses the defaults, except that it never dead-letters a \
message on its own: its redelivery policy is unlimited (see `receive --help`).";

#[derive(Parser, Debug)]
#[command(
    name = "mqlite",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = "Examples:\n  mqlite stats ./data\n  mqlite dlq list ./data\n  mqlite dlq replay ./data --queue orders --dry-run",
    after_long_help = concat!(
        "Examples:\n  mqlite stats ./data\n  mqlite dlq list ./data\n  mqlite dlq replay ./data --queue orders --dry-run\n\n",
        crate::exit_statuses!()
    ),
)]
pub struct Cli {
    /// Print data as JSON instead of text (errors too, as one JSON object on stderr)
    #[arg(long, global = true)]
    pub json: bool,

    /// How long to wait for the store's owner process to answer when another process holds
    /// the store (this command is then its client), e.g. 5s, 500ms, or a number of seconds;
    /// from 1ms to 24h, default 30s. A stopped or hung owner makes a command fail with
    /// `timeout` (exit status 1) after this long
    #[arg(
        long,
        global = true,
        value_name = "DURATION",
        env = "MQLITE_CONNECT_TIMEOUT"
    )]
    pub timeout: Option<String>,

    /// Open the store read-only: nothing is locked or written (recovery runs in memory), and
    /// any change is refused. For info, stats, list, browse, export, dlq list and dlq show;
    /// they also open a store read-only by themselves when it cannot be written (a read-only
    /// file system, a directory of another user), and say so on stderr. Without it, they open
    /// a writable store as every command does (its owner, or a live owner's client)
    #[arg(long, global = true)]
    pub read_only: bool,

    /// `--timeout` was given on the command line (not only through MQLITE_CONNECT_TIMEOUT):
    /// set by `main` from clap's value source, for the commands that refuse it.
    #[arg(skip)]
    pub timeout_on_command_line: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Format version, segments, disk use, owner pid and role, and what recovery found
    #[command(after_help = "Example:\n  mqlite info ./data\n  mqlite info ./data --json")]
    Info(StoreArg),

    /// One row per queue: depth, in flight, delayed, counters, bytes
    #[command(
        long_about = "One row per queue: depth (ready now), in flight, delayed, enqueued, acked, \
redelivered, dead-lettered, expired, bytes. The counters (enqueued, acked, …) count since the \
store's owner opened it: on a store no other process has open this command is the owner, so they \
start at 0 and move only while it holds the store (--watch); on a store another process owns, \
they are that owner's. The gauges (depth, in flight, prefetched, delayed, messages, bytes) are the \
store's state.",
        after_help = "Examples:\n  mqlite stats ./data\n  mqlite stats ./data orders payments --json\n  mqlite stats ./data --watch --interval 1"
    )]
    Stats(StatsArgs),

    /// Queues, dead-letter queues and subscriptions, with their message counts
    #[command(after_help = "Example:\n  mqlite list ./data")]
    List(StoreArg),

    /// Show stored messages (ready, delayed, in flight) without consuming them
    #[command(
        long_about = "Show stored messages (ready, delayed, in flight) without consuming them, in id \
(send) order: headers, properties, and the body as UTF-8 text when it is valid UTF-8, else as hex.",
        after_help = "Examples:\n  mqlite browse ./data orders --limit 10\n  mqlite browse ./data orders --from ID:1200 --body none\n  mqlite browse ./data orders --json\n  mqlite browse ./data orders --selector \"amount > 100\""
    )]
    Browse(BrowseArgs),

    /// Send one message (body from the argument, --file, or stdin)
    #[command(
        after_help = "Examples:\n  mqlite send ./data orders 'order #1' --property customer:int=42 --priority 7\n  mqlite send ./data orders --file order.json --ttl 10m --dedup-key order-1\n  echo hello | mqlite send ./data orders\n  mqlite send ./data orders.eu.created --topic 'order #2' -p amount:int=150"
    )]
    Send(SendArgs),

    /// Receive messages and settle them (ack by default)
    #[command(
        long_about = "Receive up to N messages and settle each: --ack (the default) removes it, --nack \
counts a failed delivery and makes it available again after the redelivery delay (1 s), --reject \
dead-letters it (to DLQ; refused on a dead-letter queue, DLQ or DLQ.*: a dead letter is not \
dead-lettered again — --ack deletes it, `mqlite dlq replay` sends it back), --release gives it \
back without counting a failure.

The application's redelivery policy is not stored in the store, so on a store this command owns \
it never dead-letters on its own: --nack redelivers however often the message has failed (use \
--reject). On a store another process owns, the command is its client and the owner's policy \
applies: a --nack past the owner's max_redeliveries dead-letters the message (mqlite dlq list \
shows it).",
        after_help = "Examples:\n  mqlite receive ./data orders\n  mqlite receive ./data orders -n 10 --release\n  mqlite receive ./data orders --reject 'bad payload' --json"
    )]
    Receive(ReceiveArgs),

    /// Dead letters: list, show, replay
    #[command(
        subcommand,
        after_help = "Examples:\n  mqlite dlq list ./data --reason max_redeliveries\n  mqlite dlq show ./data --id ID:42\n  mqlite dlq replay ./data --queue orders --dry-run"
    )]
    Dlq(DlqCommand),

    /// Remove every waiting message of a queue (asks first; --yes off a terminal)
    #[command(
        long_about = "Remove every waiting message of a queue (ready or delayed). Messages a \
consumer holds (in flight, or prefetched and not handed out yet) are left, and the output says \
how many. Asks first on a terminal (y; n, Enter, Esc, Ctrl-C or Ctrl-D decline with exit \
status 6); needs --yes otherwise.",
        after_help = "Examples:\n  mqlite purge ./data orders --dry-run\n  mqlite purge ./data orders --yes"
    )]
    Purge(PurgeArgs),

    /// Move waiting messages to another queue, keeping their headers (asks first)
    #[command(
        long_about = "Move waiting messages to another queue, keeping their headers. Messages a \
consumer prefetched but has not handed out are taken back and moved too, as purge takes them; \
messages in flight are left, and the output says how many; an --id in flight fails with exit status 5 before anything moves. A target that is the queue of a \
subscription the store does not have ($sub.NAME) is refused, in a dry run too. Out of a \
dead-letter queue only into another one: dead-letter queues are those the store's strategies \
name and the default names DLQ, DLQ.* (one rule for source and target; `mqlite dlq replay` is \
the way back to an ordinary queue). Asks first on a terminal, needs --yes otherwise.",
        after_help = "Examples:\n  mqlite move ./data orders orders.slow --id ID:12 --id ID:13 --yes\n  mqlite move ./data orders archive --limit 100 --dry-run"
    )]
    Move(TransferArgs),

    /// Copy waiting messages to another queue, keeping their headers (asks first)
    #[command(after_help = "Example:\n  mqlite copy ./data orders orders.audit --yes")]
    Copy(TransferArgs),

    /// Write messages as JSON Lines (one object a message) to stdout
    #[command(
        long_about = "Write every stored message of the given queues (default: all) to stdout as JSON \
Lines, one object a message: queue, id, timestamp_ms, expires_at_ms, deliver_at_ms, priority, \
correlation_id, group, dedup_key, repeat, properties (name, type, value), dead_letter, topic (the \
topic a subscription's message was published to, else null), and body (base64). The durable \
subscriptions whose queues ($sub.NAME) are exported come first, one line each: {\"subscription\": \
{\"name\", \"pattern\", \"selector\", \"shared\"}}. `mqlite import` restores them exactly (with new \
ids).",
        after_help = "Examples:\n  mqlite export ./data > all.jsonl\n  mqlite export ./data orders DLQ > some.jsonl"
    )]
    Export(ExportArgs),

    /// Read messages as JSON Lines (from `export`) from stdin and store them
    #[command(
        long_about = "Store the messages of a JSON Lines stream as written by `mqlite export`, with \
their original headers, properties and dead-letter information (new ids). Lines are read in \
batches; every line of a batch is checked before any is written, and a batch is stored as one \
transaction. A malformed line stops the import with exit status 7, naming the line: nothing of \
its batch is written (earlier batches are). Every line holds one JSON object (JSON Lines): a \
blank line followed by more lines, or a JSON array, is malformed; blank lines at the end of the \
input and a UTF-8 byte order mark at its start are skipped. A message whose dedup key its queue \
already holds is dropped by the dedup window and counted apart from the imported ones.

A subscription line (as export writes them first) re-creates that durable subscription before \
its messages are stored; one the store already has with the same pattern, selector and sharing \
is kept as it is, and one with other settings is refused (re-creating it would drop what it \
holds). A message line for a subscription's queue ($sub.NAME) that neither the store nor an \
earlier line has is malformed. With --queue, subscription lines are skipped.",
        after_help = "Examples:\n  mqlite import ./data < all.jsonl\n  mqlite import ./restored --create < all.jsonl\n  mqlite import ./data --queue orders.replayed < some.jsonl"
    )]
    Import(ImportArgs),

    /// Read-only integrity scan of every journal segment
    #[command(
        long_about = "Scan every journal segment read-only and report what opening the store would \
find: exit status 0 when the journal is sound, 3 with the file and offset of each damaged place. \
A torn tail (a last write that never became durable) is reported but is not damage: the next open \
cuts it. The store's lock is held during the scan (the LOCK file is not written).",
        after_help = "Example:\n  mqlite verify ./data && echo sound"
    )]
    Verify(StoreArg),

    /// Open the store with repair: quarantine damaged ranges and report what was lost
    #[command(
        long_about = "Open the store with repair: each damaged journal range is copied to a \
quarantine-<segment>-<offset>.bin file in the store and cut out, and the report says how many \
frames were lost. Asks first when there is damage (--yes off a terminal); --dry-run only verifies.",
        after_help = "Examples:\n  mqlite repair ./data --dry-run\n  mqlite repair ./data --yes"
    )]
    Repair(RepairArgs),

    /// Rewrite live messages forward and remove the journal segments they free
    #[command(
        long_about = "Rewrite live messages forward and remove the journal segments they free. \
On a full disk the copies go into a short segment sized to them, or into the tail's reserve \
when small enough; when the disk has room for neither, it fails (exit status 1) naming the \
free bytes it needs, and nothing is lost.",
        after_help = "Example:\n  mqlite compact ./data"
    )]
    Compact(StoreArg),

    /// Print a shell completion script
    #[command(
        after_help = "Examples:\n  mkdir -p ~/.local/share/bash-completion/completions\n  mqlite completions bash > ~/.local/share/bash-completion/completions/mqlite\n  mkdir -p ~/.zfunc  # and in ~/.zshrc, before compinit: fpath+=~/.zfunc\n  mqlite completions zsh > ~/.zfunc/_mqlite"
    )]
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },

    /// Run store-and-forward bridges to NATS JetStream or RabbitMQ until SIGINT, SIGTERM or SIGHUP
    #[command(
        long_about = "Run the routes of a bridge configuration file (TOML) until SIGINT, SIGTERM or SIGHUP: \
outbound routes forward a queue's messages to NATS JetStream or RabbitMQ (acked locally only after \
the broker confirmed), inbound routes store a broker's messages durably (deduplicated) before \
acking the broker. The fields are documented in bindings/bridge/bridge.example.toml and the \
README's \"Beyond one machine\" section.

The bridge is its own program, `mqlite-bridge` (crate bindings/bridge), so that this command does \
not carry the broker clients: `mqlite bridge ARGS` runs `mqlite-bridge ARGS`, found beside this \
program or else on PATH (`cargo install --path bindings/bridge` installs it). Its exit status is \
the bridge's.",
        after_help = "Example (the template's store and broker URLs are placeholders: copy it and edit them \
first; bindings/bridge/try.sh runs a whole tour with its own brokers and a fresh directory):\n  \
cp bindings/bridge/bridge.example.toml bridge.toml\n  mqlite bridge --config bridge.toml\n\n\
--read-only and --timeout do not apply: a bridge owns its store and writes to it (refused with \
exit status 2)."
    )]
    Bridge(BridgeArgs),
}

#[derive(Args, Debug)]
pub struct BridgeArgs {
    /// The configuration file (TOML): brokers, routes, queue options
    #[arg(long, short)]
    pub config: PathBuf,
}

#[derive(Args, Debug)]
pub struct StoreArg {
    /// The store directory
    pub dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// The store directory
    pub dir: PathBuf,
    /// Only these queues (default: all)
    pub queues: Vec<String>,
    /// Refresh until interrupted, with per-second rates of the counters (with --json, every
    /// refresh carries them: the first comes after one interval, measured against a sample
    /// taken then)
    #[arg(long)]
    pub watch: bool,
    /// Seconds between refreshes (only with --watch)
    #[arg(
        long,
        default_value_t = 2.0,
        value_name = "SECONDS",
        requires = "watch"
    )]
    pub interval: f64,
    /// Stop after this many refreshes (only with --watch)
    #[arg(long, value_name = "N", requires = "watch",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
}

/// How a body is shown.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    /// UTF-8 text when it is valid UTF-8, else hex; only the first 1 KiB of a longer body
    /// (with how many bytes more there are): the other formats show all of it
    Auto,
    /// Base64
    Base64,
    /// Hex
    Hex,
    /// The bytes as they are
    Raw,
    /// Not shown
    None,
}

#[derive(Args, Debug)]
pub struct BrowseArgs {
    /// The store directory
    pub dir: PathBuf,
    /// The queue
    pub queue: String,
    /// Show at most this many messages
    #[arg(long, default_value_t = 100, value_name = "N", value_parser = at_least_one())]
    pub limit: usize,
    /// Start at this message id (ID:n or n)
    #[arg(long, value_name = "ID")]
    pub from: Option<String>,
    /// How to show bodies
    #[arg(long, value_enum, default_value_t = BodyFormat::Auto)]
    pub body: BodyFormat,
    /// Only messages this JMS message selector selects (e.g. "amount > 100 AND region = 'eu'")
    #[arg(long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Only ready messages (deliverable now); by default every message the queue holds is
    /// shown with its state: ready, delayed, redelivery_wait or in_flight
    #[arg(long)]
    pub ready_only: bool,
}

#[derive(Args, Debug)]
pub struct SendArgs {
    /// The store directory
    pub dir: PathBuf,
    /// The queue (created if new), or with --topic the topic
    pub queue: String,
    /// Publish to topic QUEUE instead: every matching subscription gets the message
    #[arg(long)]
    pub topic: bool,
    /// The body (else --file, else stdin; an empty stdin is refused: give '' for an empty body)
    #[arg(conflicts_with = "file")]
    pub body: Option<String>,
    /// Read the body from this file (`-`: stdin)
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// A property NAME[:TYPE]=VALUE (repeatable, each NAME once); TYPE is str (default), int,
    /// float (a decimal, or nan, inf, -inf in any case), bool or bytes (base64); what follows
    /// the last `:` before `=` is always the TYPE (a name with `:` needs one)
    #[arg(long = "property", short = 'p', value_name = "NAME[:TYPE]=VALUE")]
    pub properties: Vec<String>,
    /// Priority 0–9 (default 4; higher first)
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=9))]
    pub priority: Option<u8>,
    /// Time to live, e.g. 30s, 10m, 2h: undelivered by then, it expires (dead-lettered as
    /// expired); 0s means it never expires, as JMS's time to live of 0
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Delivery delay, e.g. 500ms, 5m
    #[arg(long, value_name = "DURATION")]
    pub delay: Option<String>,
    /// Group key (JMSXGroupID): same-key messages go in order, one at a time
    #[arg(long)]
    pub group: Option<String>,
    /// Dedup key: a second send with the same key within the dedup window stores nothing
    #[arg(long)]
    pub dedup_key: Option<String>,
    /// Correlation id
    #[arg(long)]
    pub correlation_id: Option<String>,
    /// Create the store if DIR holds none
    #[arg(long)]
    pub create: bool,
}

#[derive(Args, Debug)]
#[group(id = "settle", multiple = false)]
pub struct Settle {
    /// Acknowledge: the message is removed (the default)
    #[arg(long, group = "settle")]
    pub ack: bool,
    /// Count a failed delivery with this reason (at most 32 KiB): redelivered after the
    /// redelivery delay
    #[arg(long, value_name = "REASON", group = "settle", value_parser = reason)]
    pub nack: Option<String>,
    /// Dead-letter it at once with this reason (at most 32 KiB; not from a dead-letter queue:
    /// status 2)
    #[arg(long, value_name = "REASON", group = "settle", value_parser = reason)]
    pub reject: Option<String>,
    /// Give it back without counting a failure
    #[arg(long, group = "settle")]
    pub release: bool,
}

#[derive(Args, Debug)]
pub struct ReceiveArgs {
    /// The store directory
    pub dir: PathBuf,
    /// The queue
    pub queue: String,
    /// Receive up to this many messages
    #[arg(short = 'n', long = "count", default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub n: u64,
    /// Wait this long for the first message, e.g. 5s (default: do not wait)
    #[arg(long, value_name = "DURATION")]
    pub wait: Option<String>,
    #[command(flatten)]
    pub settle: Settle,
    /// How to show bodies
    #[arg(long, value_enum, default_value_t = BodyFormat::Auto)]
    pub body: BodyFormat,
}

/// Which dead letters a dlq command works on.
#[derive(Args, Debug, Clone)]
pub struct DlqFilter {
    /// The store directory
    pub dir: PathBuf,
    /// Only dead letters from this (original) queue
    #[arg(long, value_name = "QUEUE")]
    pub queue: Option<String>,
    /// Only this reason: max_redeliveries, rejected, expired, overflow, group_parked
    #[arg(long)]
    pub reason: Option<String>,
    /// Only dead letters whose last failure is at or after TIME (RFC 3339, ms since the epoch, or a duration ago such as 2h)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only dead letters whose last failure is before TIME (same forms as --since; after it)
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only these ids (the dead letter's own id or its original id; repeatable); an id no
    /// dead letter has fails with exit status 5
    #[arg(long = "id", value_name = "ID")]
    pub ids: Vec<String>,
    /// The dead-letter queues to look in (repeatable; default: DLQ and every DLQ.* queue); a
    /// queue of ordinary messages is refused
    #[arg(long = "dlq", value_name = "QUEUE")]
    pub dlqs: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum DlqCommand {
    /// One row per dead letter: why it died, where from, when
    #[command(
        after_help = "Examples:\n  mqlite dlq list ./data\n  mqlite dlq list ./data --queue orders --reason max_redeliveries --since 2h --json"
    )]
    List {
        #[command(flatten)]
        filter: DlqFilter,
        /// Show at most this many
        #[arg(long, value_name = "N", value_parser = at_least_one())]
        limit: Option<usize>,
    },
    /// Everything about the matching dead letters: headers, properties, body, failure
    #[command(
        after_help = "Examples:\n  mqlite dlq show ./data --id ID:42\n  mqlite dlq show ./data --queue orders --body hex"
    )]
    Show {
        #[command(flatten)]
        filter: DlqFilter,
        /// How to show bodies
        #[arg(long, value_enum, default_value_t = BodyFormat::Auto)]
        body: BodyFormat,
        /// Show at most this many
        #[arg(long, value_name = "N", value_parser = at_least_one())]
        limit: Option<usize>,
    },
    /// Move matching dead letters back to their original queue (or --to), delivery counts reset
    #[command(
        long_about = "Move the matching dead letters back to their original queue (or --to QUEUE), \
with delivery counts reset. Each move is one journal record: a crash in the middle loses and \
doubles nothing, and running the command again finishes the job. Dead letters a consumer \
prefetched but has not handed out are taken back and replayed too, as purge takes them; those \
in flight are left, and the output says how many (`held` in --json). --dry-run only counts. A \
progress bar shows on a terminal.",
        after_help = "Examples:\n  mqlite dlq replay ./data --queue orders --dry-run\n  mqlite dlq replay ./data --reason max_redeliveries --rate 100/s\n  mqlite dlq replay ./data --id ID:42 --to orders.retry"
    )]
    Replay {
        #[command(flatten)]
        filter: DlqFilter,
        /// Send them here instead of to their original queue (not a dead-letter queue — DLQ,
        /// DLQ.*, or one a strategy names: a replay strips the dead-letter information)
        #[arg(long, value_name = "QUEUE")]
        to: Option<String>,
        /// Only count what would be replayed
        #[arg(long)]
        dry_run: bool,
        /// At most this many per second, e.g. 100 or 100/s; from 0.001 (one per 1,000 s) to
        /// 1000000 (a rate outside is refused with exit status 2 before anything moves)
        #[arg(long, value_name = "N/s")]
        rate: Option<String>,
    },
}

#[derive(Args, Debug)]
pub struct PurgeArgs {
    /// The store directory
    pub dir: PathBuf,
    /// The queue
    pub queue: String,
    /// Do not ask
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Only count what would be removed
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct TransferArgs {
    /// The store directory
    pub dir: PathBuf,
    /// The source queue
    pub from: String,
    /// The target queue (created if new)
    pub to: String,
    /// Only these messages (repeatable)
    #[arg(long = "id", value_name = "ID")]
    pub ids: Vec<String>,
    /// At most this many (lowest ids first)
    #[arg(long, value_name = "N", value_parser = at_least_one())]
    pub limit: Option<usize>,
    /// Do not ask
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Only count what would be moved or copied
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The store directory
    pub dir: PathBuf,
    /// Only these queues (default: all)
    pub queues: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The store directory
    pub dir: PathBuf,
    /// Store every message in this queue instead of the one its line names
    #[arg(long, value_name = "QUEUE")]
    pub queue: Option<String>,
    /// Lines per batch (each batch is checked whole, then stored as one transaction)
    #[arg(long, default_value_t = 1000, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: u64,
    /// Read from this file instead of stdin (`-`: stdin)
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Create the store if DIR holds none
    #[arg(long)]
    pub create: bool,
}

#[derive(Args, Debug)]
pub struct RepairArgs {
    /// The store directory
    pub dir: PathBuf,
    /// Do not ask
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Only verify: show what a repair would cut out
    #[arg(long)]
    pub dry_run: bool,
}

/// A count of at least 1 (`--limit 0` would ask for nothing and is refused as a mistake).
/// A `--nack`/`--reject` reason: refused at parsing when over `mqlite::MAX_REASON_BYTES`, before
/// any message is received (a refused settle would drop each delivery as a failure; review
/// r5 #11).
fn reason(s: &str) -> Result<String, String> {
    if s.len() > mqlite::MAX_REASON_BYTES {
        return Err(format!(
            "a reason of {} bytes is over the limit of {} bytes",
            s.len(),
            mqlite::MAX_REASON_BYTES
        ));
    }
    Ok(s.to_string())
}

fn at_least_one() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
}
