//! The bridge's configuration: what the TOML file holds, and what a program builds in code.
//!
//! Durations are written as text with a unit (`"250ms"`, `"30s"`, `"10m"`, `"1h"`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Error;

/// The whole configuration. Every field but the routes has a default (`Config::default()` is
/// the same as an empty file).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The store directory ([`crate::run`] opens it; [`crate::Bridge::start`] is given a store).
    /// A relative path read from a file ([`Config::from_file`]) is relative to the file's
    /// directory, as is `stats_file`'s.
    #[serde(default)]
    pub store: Option<PathBuf>,
    /// Make a new store when `store` holds none (as `mqlite --create`). Default false: a typo
    /// in the path is refused, naming it, rather than leaving an empty store that the
    /// outbound routes would watch forever.
    #[serde(default)]
    pub create: bool,
    /// Prefix of the broker-side message ids of outbound messages (`<origin>:ID:<n>`), so that
    /// two stores forwarding to one broker never share an id. Default: the host name, the
    /// store directory and the store's id ([`mqlite::Store::id`], new when a store is created
    /// again at the same path, whose ids restart at `ID:1`). Used as written when set: it must
    /// then change when the store is re-created. At most [`MAX_ORIGIN`] bytes once
    /// percent-encoded as header values are (each byte outside printable ASCII, and `%`, takes
    /// three), so that every id fits AMQP's 255-byte `message_id`.
    #[serde(default)]
    pub origin: Option<String>,
    /// Where [`crate::run`] writes the routes' counters as JSON (rewritten every
    /// `stats_interval` and at stop). Default: none.
    #[serde(default)]
    pub stats_file: Option<PathBuf>,
    /// How often the stats file and the lag figures are refreshed. Default 5 s.
    #[serde(default = "default_stats_interval", with = "humantime_serde")]
    pub stats_interval: Duration,
    /// Waits between reconnection attempts while a broker is away.
    #[serde(default)]
    pub reconnect: Backoff,
    /// The NATS server, for routes with a `nats` table.
    #[serde(default)]
    pub nats: Option<NatsServer>,
    /// The RabbitMQ server, for routes with a `rabbitmq` table.
    #[serde(default)]
    pub rabbitmq: Option<RabbitServer>,
    /// Options of the store's queues, by name, applied when [`crate::run`] opens the store
    /// (queue options are set per open, not stored).
    #[serde(default)]
    pub queues: BTreeMap<String, QueueConfig>,
    /// Routes from an mqlite queue to a broker.
    #[serde(default)]
    pub outbound: Vec<OutboundRoute>,
    /// Routes from a broker to an mqlite queue.
    #[serde(default)]
    pub inbound: Vec<InboundRoute>,
}

fn default_stats_interval() -> Duration {
    Duration::from_secs(5)
}

impl Default for Config {
    fn default() -> Self {
        Config {
            store: None,
            create: false,
            origin: None,
            stats_file: None,
            stats_interval: default_stats_interval(),
            reconnect: Backoff::default(),
            nats: None,
            rabbitmq: None,
            queues: BTreeMap::new(),
            outbound: Vec::new(),
            inbound: Vec::new(),
        }
    }
}

/// Exponential backoff between reconnection attempts (doubling from `initial` up to `max`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    /// The first wait. Default 100 ms.
    #[serde(default = "default_initial", with = "humantime_serde")]
    pub initial: Duration,
    /// The longest wait. Default 5 s.
    #[serde(default = "default_max", with = "humantime_serde")]
    pub max: Duration,
}

fn default_initial() -> Duration {
    Duration::from_millis(100)
}
fn default_max() -> Duration {
    Duration::from_secs(5)
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: default_initial(),
            max: default_max(),
        }
    }
}

/// A NATS server (JetStream enabled).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsServer {
    /// Server URL(s), comma-separated: `nats://127.0.0.1:4222`.
    pub url: String,
    /// How long a publish waits for its PubAck before it counts as a lost connection (the
    /// message is then published again). Default 5 s.
    #[serde(default = "default_ack_timeout", with = "humantime_serde")]
    pub ack_timeout: Duration,
}

fn default_ack_timeout() -> Duration {
    Duration::from_secs(5)
}

/// A RabbitMQ server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RabbitServer {
    /// AMQP URI: `amqp://user:password@127.0.0.1:5672/%2f`.
    pub url: String,
    /// How long a publish, and then its publisher confirm, may take before the connection
    /// counts as lost (the message is then published again). Default 30 s.
    #[serde(default = "default_rabbit_ack_timeout", with = "humantime_serde")]
    pub ack_timeout: Duration,
}

fn default_rabbit_ack_timeout() -> Duration {
    Duration::from_secs(30)
}

/// Options of one mqlite queue (unset fields keep the store's defaults).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Redeliveries before a message is dead-lettered (−1 = unlimited). Default 6.
    #[serde(default)]
    pub max_redeliveries: Option<i32>,
    /// Delay before a failed message is delivered again. Default 1 s.
    #[serde(default, with = "humantime_serde")]
    pub redelivery_delay: Option<Duration>,
    /// Multiply the delay by 5 for each later redelivery. Default off.
    #[serde(default)]
    pub exponential_backoff: Option<bool>,
    /// Upper bound of any redelivery delay. Default none.
    #[serde(default, with = "humantime_serde")]
    pub maximum_redelivery_delay: Option<Duration>,
    /// Name of the dead-letter queue (one shared queue). Default `DLQ`.
    #[serde(default)]
    pub dead_letter_queue: Option<String>,
    /// How long a dedup key is remembered. Default 10 minutes.
    #[serde(default, with = "humantime_serde")]
    pub dedup_window: Option<Duration>,
    /// How many dedup keys are remembered at most. Default 100,000.
    #[serde(default)]
    pub dedup_window_count: Option<usize>,
}

impl QueueConfig {
    /// As mqlite queue options, on top of `store`'s defaults.
    pub fn to_options(&self, store: &mqlite::StoreOptions) -> mqlite::QueueOptions {
        let mut policy = store.redelivery.clone();
        if let Some(n) = self.max_redeliveries {
            policy.max_redeliveries = n;
        }
        if let Some(d) = self.redelivery_delay {
            policy.initial_redelivery_delay = d;
            policy.redelivery_delay = d;
        }
        if let Some(b) = self.exponential_backoff {
            policy.use_exponential_backoff = b;
        }
        if self.maximum_redelivery_delay.is_some() {
            policy.maximum_redelivery_delay = self.maximum_redelivery_delay;
        }
        mqlite::QueueOptions {
            redelivery: Some(policy),
            dead_letter: self
                .dead_letter_queue
                .clone()
                .map(|name| mqlite::DeadLetterStrategy::Shared { name }),
            dedup_window: self.dedup_window,
            dedup_window_count: self.dedup_window_count,
            ..mqlite::QueueOptions::default()
        }
    }
}

fn default_window() -> usize {
    256
}

/// A route from an mqlite queue to a broker (exactly one of `nats` and `rabbitmq`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundRoute {
    /// The route's name (in logs and stats); unique among all routes.
    pub name: String,
    /// The mqlite queue it consumes.
    pub queue: String,
    /// Most publishes awaiting their broker confirm at once (confirms are taken in publish
    /// order, so the queue's order is kept; a refused message waits for its redelivery while
    /// later ones go ahead, unless a message group holds them). Default 256.
    #[serde(default = "default_window")]
    pub window: usize,
    /// Publish to NATS JetStream.
    #[serde(default)]
    pub nats: Option<NatsTarget>,
    /// Publish to RabbitMQ.
    #[serde(default)]
    pub rabbitmq: Option<RabbitTarget>,
}

/// Where an outbound route publishes in NATS.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsTarget {
    /// The subject (a JetStream stream must capture it, or every publish is refused).
    pub subject: String,
    /// Also set JetStream's per-message TTL header (`Nats-TTL`) from the message's remaining
    /// time to live; the stream must allow per-message TTLs (server 2.11+). Default false.
    #[serde(default)]
    pub message_ttl: bool,
}

/// Where an outbound route publishes in RabbitMQ.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RabbitTarget {
    /// The exchange (`""` = the default exchange, which routes by queue name). Default `""`.
    #[serde(default)]
    pub exchange: String,
    /// The routing key.
    pub routing_key: String,
}

fn default_max_outage() -> Duration {
    Duration::from_secs(300)
}

/// A route from a broker to an mqlite queue (exactly one of `nats` and `rabbitmq`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundRoute {
    /// The route's name (in logs and stats); unique among all routes.
    pub name: String,
    /// The mqlite queue it stores into.
    pub queue: String,
    /// Most broker messages taken at once (one local transaction each). Default 256.
    #[serde(default = "default_window")]
    pub window: usize,
    /// The longest the bridge may be stopped (or cut off from the store) while the broker
    /// holds messages it delivered but never saw acknowledged. With the broker's redelivery
    /// delay it makes the horizon the queue's dedup window must cover; the route refuses to
    /// start otherwise. Default 5 minutes.
    #[serde(default = "default_max_outage", with = "humantime_serde")]
    pub max_outage: Duration,
    /// Consume a JetStream stream.
    #[serde(default)]
    pub nats: Option<NatsSource>,
    /// Consume a RabbitMQ queue.
    #[serde(default)]
    pub rabbitmq: Option<RabbitSource>,
}

fn default_ack_wait() -> Duration {
    Duration::from_secs(30)
}
fn yes() -> bool {
    true
}

/// The JetStream consumer an inbound route reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSource {
    /// The stream.
    pub stream: String,
    /// The durable pull consumer's name.
    pub consumer: String,
    /// Only subjects matching this filter. Default: the whole stream.
    #[serde(default)]
    pub filter_subject: Option<String>,
    /// Create the consumer when it is missing (explicit acks, unlimited deliveries). Default true.
    #[serde(default = "yes")]
    pub create: bool,
    /// Ack wait of a created consumer: a message not acknowledged within it is delivered
    /// again. Default 30 s.
    #[serde(default = "default_ack_wait", with = "humantime_serde")]
    pub ack_wait: Duration,
}

/// The RabbitMQ queue an inbound route reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RabbitSource {
    /// The queue (it must exist).
    pub queue: String,
}

impl OutboundRoute {
    /// A route from `queue` to the NATS subject `subject`.
    pub fn nats(name: &str, queue: &str, subject: &str) -> Self {
        OutboundRoute {
            name: name.into(),
            queue: queue.into(),
            window: default_window(),
            nats: Some(NatsTarget {
                subject: subject.into(),
                message_ttl: false,
            }),
            rabbitmq: None,
        }
    }

    /// A route from `queue` to the RabbitMQ `exchange` with `routing_key`.
    pub fn rabbitmq(name: &str, queue: &str, exchange: &str, routing_key: &str) -> Self {
        OutboundRoute {
            name: name.into(),
            queue: queue.into(),
            window: default_window(),
            nats: None,
            rabbitmq: Some(RabbitTarget {
                exchange: exchange.into(),
                routing_key: routing_key.into(),
            }),
        }
    }

    /// The same route with another window.
    pub fn window(mut self, window: usize) -> Self {
        self.window = window;
        self
    }
}

impl InboundRoute {
    /// A route from the durable JetStream consumer `consumer` of `stream` to `queue`.
    pub fn nats(name: &str, stream: &str, consumer: &str, queue: &str) -> Self {
        InboundRoute {
            name: name.into(),
            queue: queue.into(),
            window: default_window(),
            max_outage: default_max_outage(),
            nats: Some(NatsSource {
                stream: stream.into(),
                consumer: consumer.into(),
                filter_subject: None,
                create: true,
                ack_wait: default_ack_wait(),
            }),
            rabbitmq: None,
        }
    }

    /// A route from the RabbitMQ queue `source` to `queue`.
    pub fn rabbitmq(name: &str, source: &str, queue: &str) -> Self {
        InboundRoute {
            name: name.into(),
            queue: queue.into(),
            window: default_window(),
            max_outage: default_max_outage(),
            nats: None,
            rabbitmq: Some(RabbitSource {
                queue: source.into(),
            }),
        }
    }

    /// The same route with another window.
    pub fn window(mut self, window: usize) -> Self {
        self.window = window;
        self
    }
}

impl Config {
    /// Reads and checks a TOML file for [`crate::run`] (so it must name a `store` and at least
    /// one route); every error names the file.
    pub fn from_file(path: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            let text = format!("reading {}: {e}", path.display());
            match e.kind() {
                std::io::ErrorKind::NotFound => Error::NotFound(text),
                _ => Error::Config(text),
            }
        })?;
        let named = |e| match e {
            Error::Config(m) => Error::Config(format!("{}: {m}", path.display())),
            e => e,
        };
        let mut c = Config::from_toml(&text).map_err(named)?;
        c.resolve_paths(path.parent().unwrap_or(Path::new("")));
        c.check_runnable().map_err(named)?;
        c.check_stats_file()?;
        Ok(c)
    }

    /// Makes relative `store` and `stats_file` paths relative to `base`, the directory of the
    /// configuration file, as daemons resolve their configuration's paths (review r3 #36:
    /// started by a service manager in `/`, a relative store with `create = true` became a new,
    /// empty `/store` that the application never saw).
    pub fn resolve_paths(&mut self, base: &Path) {
        for p in [&mut self.store, &mut self.stats_file]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    /// Checks what [`crate::run`] needs beyond [`Config::check`]: a `store` directory, and at
    /// least one route (a bridge with nothing to forward is a mistake, not a configuration).
    pub fn check_runnable(&self) -> Result<(), Error> {
        if self.store.is_none() {
            return Err(Error::Config(
                "`store` (the store directory) is missing".into(),
            ));
        }
        if self.outbound.is_empty() && self.inbound.is_empty() {
            return Err(Error::Config(
                "no routes: add an [[outbound]] or [[inbound]] route".into(),
            ));
        }
        Ok(())
    }

    /// Parses and checks TOML text. A syntax or type error is one line naming its line and
    /// column (`line 7, column 12: invalid type: …`), from the parser's span.
    pub fn from_toml(text: &str) -> Result<Config, Error> {
        let c: Config = toml::from_str(text).map_err(|e| Error::Config(toml_error(text, &e)))?;
        c.check()?;
        Ok(c)
    }

    /// Checks that the stats file can be written: it is not a directory, its directory exists,
    /// is a directory and takes a new file (probed by creating and removing one), so that a typo is refused at
    /// load rather than reported at the first write, `stats_interval` later.
    pub fn check_stats_file(&self) -> Result<(), Error> {
        let Some(path) = &self.stats_file else {
            return Ok(());
        };
        let bad = |m: String| Err(Error::Config(format!("stats_file {}: {m}", path.display())));
        if path.file_name().is_none() {
            return bad("names no file".into());
        }
        // The file is replaced by a rename at every write, which fails on a directory (every
        // write would warn and the final one would make a clean stop exit non-zero), and would
        // replace a symbolic link, a device (`/dev/stdout`, `/dev/null`), a fifo or a socket
        // with a regular file instead of writing through it.
        if let Ok(m) = std::fs::symlink_metadata(path) {
            if let Some(what) = not_regular(&m) {
                return Err(Error::Config(format!(
                    "stats_file {} is {what}: it is rewritten by renaming a new file over it, \
                     which would replace it; name a regular file (or a new one)",
                    path.display()
                )));
            }
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        match std::fs::metadata(dir) {
            Err(e) => return bad(format!("its directory {}: {e}", dir.display())),
            Ok(m) if !m.is_dir() => return bad(format!("{} is not a directory", dir.display())),
            Ok(_) => {}
        }
        let probe = dir.join(format!(".mqlite-bridge-probe-{}", std::process::id()));
        match std::fs::File::create(&probe) {
            Ok(_) => {
                let _ = std::fs::remove_file(&probe);
                Ok(())
            }
            Err(e) => bad(format!(
                "its directory {} is not writable: {e}",
                dir.display()
            )),
        }
    }

    /// Checks what the types cannot: one broker per route, unique names, limits.
    pub fn check(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::Config(m));
        // Empty names: a route is named in every log line and stat, and an empty one names
        // nothing (the other string fields are checked where their rules live: names.rs,
        // check_url, origin below).
        let unnamed = (self.outbound.iter().map(|r| ("outbound", &r.name)))
            .chain(self.inbound.iter().map(|r| ("inbound", &r.name)))
            .enumerate()
            .find(|(_, (_, n))| n.trim().is_empty() || n.chars().any(char::is_control));
        if let Some((i, (kind, n))) = unnamed {
            return bad(format!(
                "{kind} route {} (counting all routes from 1) has the name {n:?}: a route \
                 needs a name without control characters that is not empty",
                i + 1
            ));
        }
        let mut names = std::collections::HashSet::new();
        let routes = self
            .outbound
            .iter()
            .map(|r| (&r.name, r.window, r.nats.is_some(), r.rabbitmq.is_some()))
            .chain(
                self.inbound
                    .iter()
                    .map(|r| (&r.name, r.window, r.nats.is_some(), r.rabbitmq.is_some())),
            );
        for (name, window, nats, rabbit) in routes {
            if !names.insert(name) {
                return bad(format!("route name {name:?} is used twice"));
            }
            if nats == rabbit {
                return bad(format!(
                    "route {name:?} needs exactly one of a `nats` or a `rabbitmq` table"
                ));
            }
            if !(1..=65_535).contains(&window) {
                return bad(format!(
                    "route {name:?}: window {window} is outside 1..=65535"
                ));
            }
            if nats && self.nats.is_none() {
                return bad(format!(
                    "route {name:?} uses NATS but there is no [nats] table with its url"
                ));
            }
            if rabbit && self.rabbitmq.is_none() {
                return bad(format!(
                    "route {name:?} uses RabbitMQ but there is no [rabbitmq] table with its url"
                ));
            }
        }
        crate::names::check(self).map_err(Error::Config)?;
        match &self.origin {
            Some(o) if crate::mapping::encode_text(o).0.len() > MAX_ORIGIN => {
                return bad(format!(
                    "origin is {} bytes once percent-encoded, more than {MAX_ORIGIN} (each \
                     non-ASCII byte takes three)",
                    crate::mapping::encode_text(o).0.len()
                ))
            }
            Some(o) if o.trim().is_empty() => {
                return bad("origin is empty (leave it out for the default)".into())
            }
            _ => {}
        }
        if let Some(n) = &self.nats {
            for url in n.url.split(',') {
                check_url(url.trim(), &["nats", "tls", "ws", "wss"], true)
                    .map_err(|e| Error::Config(format!("[nats] url {:?}: {e}", n.url)))?;
            }
        }
        if let Some(r) = &self.rabbitmq {
            check_url(&r.url, &["amqp", "amqps"], false)
                .map_err(|e| Error::Config(format!("[rabbitmq] url {:?}: {e}", r.url)))?;
        }
        crate::limits::check(self).map_err(Error::Config)?;
        crate::loops::check(self).map_err(Error::Config)?;
        // Queue options the store would refuse (after the name checks above, which say more
        // about a bad name), refused here naming the table, before
        // anything is created on disk (review r8 #7: the store's own error named neither file
        // nor table, and came after the store was created).
        for (name, q) in &self.queues {
            let bare = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            let table = if bare {
                format!("[queues.{name}]")
            } else {
                format!("[queues.{name:?}]")
            };
            if q.dedup_window_count == Some(0) {
                return bad(format!(
                    "{table} dedup_window_count 0 would remember no dedup key (an inbound route \
                     needs at least its window; unset it for the default of 100,000)"
                ));
            }
            if let Err(e) = q.to_options(&mqlite::StoreOptions::default()).validate() {
                return bad(format!("{table} {}", e.message()));
            }
        }
        if self
            .store
            .as_ref()
            .is_some_and(|s| s.as_os_str().is_empty())
        {
            return bad("store is empty (the store directory's path)".into());
        }
        Ok(())
    }
}

/// One line for a TOML error: `line L, column C: <message>` (1-based, from the error's byte
/// span; the parser's own text is several lines with the source quoted).
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', "; ");
    let Some(span) = e.span() else {
        return message;
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column}: {message}")
}

/// Checks the shape of a broker URL, `scheme://[user[:password]@]host[:port][/path]`, so that
/// a typo (`nats//host:4222`) is refused at load instead of being retried forever: the scheme
/// must be one of `schemes` (it may be left out when `bare` — NATS then assumes `nats://`), the
/// host must not be empty, the port must be a number in 1..=65535, and a path is allowed only
/// when not `bare` (AMQP's vhost). The clients parse the URL again at connect; this only
/// catches what they would take for a host name they then never reach.
fn check_url(url: &str, schemes: &[&str], bare: bool) -> Result<(), String> {
    let rest = match url.split_once("://") {
        Some((scheme, rest)) if schemes.contains(&scheme) => rest,
        Some((scheme, _)) => {
            return Err(format!(
                "scheme {scheme:?} is not one of {}",
                schemes.join(", ")
            ));
        }
        None if bare => url,
        None => return Err(format!("needs a scheme: {}://host", schemes[0])),
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if bare && !path.is_empty() {
        return Err(format!("unexpected path {path:?} (expected host:port)"));
    }
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match host_port.rsplit_once(':') {
        // An IPv6 address in brackets holds colons of its own.
        Some((h, p)) if !p.contains(']') => (h, Some(p)),
        _ => (host_port, None),
    };
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
        return Err(format!("no valid host in {host_port:?}"));
    }
    if let Some(p) = port {
        // Port 0 is no port a server listens on: a client would retry it forever (review r9 #6).
        p.parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("port {p:?} is not a number in 1..=65535"))?;
    }
    Ok(())
}

/// What a file that exists and is not a regular file is (`None` for a regular file), from its
/// own metadata (`symlink_metadata`: a link is not followed).
pub(crate) fn not_regular(m: &std::fs::Metadata) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_file() {
        return None;
    }
    Some(if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_fifo() {
        "a fifo"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    })
}

/// The most bytes an `origin` may take once percent-encoded: with `:ID:` and a 20-digit
/// message number it still fits AMQP's 255-byte short string `message_id`.
pub const MAX_ORIGIN: usize = 200;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_example_parses() {
        let c = Config::from_toml(include_str!("../bridge.example.toml")).unwrap();
        assert_eq!(c.outbound.len(), 2);
        assert_eq!(c.inbound.len(), 2);
        assert_eq!(c.queues["orders"].max_redeliveries, Some(10));
    }

    #[test]
    fn the_default_is_an_empty_file() {
        let d = Config::default();
        let e = Config::from_toml("").unwrap();
        assert_eq!(d.stats_interval, e.stats_interval);
        assert_eq!(d.reconnect.initial, e.reconnect.initial);
        d.check().unwrap();
    }

    #[test]
    fn mistakes_are_named() {
        let two = r#"
            [nats]
            url = "nats://127.0.0.1:4222"
            [rabbitmq]
            url = "amqp://127.0.0.1"
            [[outbound]]
            name = "x"
            queue = "q"
            nats = { subject = "s" }
            rabbitmq = { routing_key = "k" }
        "#;
        let e = Config::from_toml(two).unwrap_err().to_string();
        assert!(e.contains("exactly one"), "{e}");
        let no_url = "[[inbound]]\nname='i'\nqueue='q'\nrabbitmq={queue='x'}";
        let e = Config::from_toml(no_url).unwrap_err().to_string();
        assert!(e.contains("[rabbitmq]"), "{e}");
        let typo = "stats_intervall = '1s'";
        let e = Config::from_toml(typo).unwrap_err().to_string();
        assert!(e.contains("stats_intervall"), "{e}");
        let dup = "[nats]\nurl='x'\n[[outbound]]\nname='a'\nqueue='q'\nnats={subject='s'}\n\
                   [[inbound]]\nname='a'\nqueue='q'\nnats={stream='S',consumer='c'}";
        let e = Config::from_toml(dup).unwrap_err().to_string();
        assert!(e.contains("twice"), "{e}");
    }

    #[test]
    fn malformed_urls_empty_subjects_and_origins_are_refused_at_load() {
        let route = "[[outbound]]\nname='a'\nqueue='q'\nnats={subject='s'}\n";
        for (url, what) in [
            ("nats//127.0.0.1:14222", "path"),
            ("http://127.0.0.1:4222", "scheme"),
            ("nats://:4222", "host"),
            ("nats://127.0.0.1:42x2", "port"),
            ("nats://127.0.0.1:4222,nats//h:1", "path"),
            // Review r9 #6: port 0 was accepted and retried forever.
            (
                "nats://127.0.0.1:0",
                "port \"0\" is not a number in 1..=65535",
            ),
        ] {
            let text = format!("[nats]\nurl='{url}'\n{route}");
            let e = Config::from_toml(&text).unwrap_err().to_string();
            assert!(e.contains("[nats] url") && e.contains(what), "{url}: {e}");
        }
        for url in [
            "nats://127.0.0.1:4222",
            "127.0.0.1:4222",
            "tls://u:p@h:1,nats://[::1]:2",
        ] {
            Config::from_toml(&format!("[nats]\nurl='{url}'\n{route}")).unwrap();
        }
        let rabbit = "[rabbitmq]\nurl='amqp//guest@h'";
        let e = Config::from_toml(rabbit).unwrap_err().to_string();
        assert!(e.contains("[rabbitmq] url"), "{e}");
        Config::from_toml("[rabbitmq]\nurl='amqp://guest:guest@127.0.0.1:5672/%2f'").unwrap();
        let e = Config::from_toml("[rabbitmq]\nurl='amqp://guest:guest@127.0.0.1:0/%2f'")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("[rabbitmq] url") && e.contains("1..=65535"),
            "{e}"
        );
        let empty =
            "[nats]\nurl='nats://h:1'\n[[outbound]]\nname='a'\nqueue='q'\nnats={subject=''}";
        let e = Config::from_toml(empty).unwrap_err().to_string();
        assert!(e.contains("subject is empty"), "{e}");
        let e = Config::from_toml("origin = ''").unwrap_err().to_string();
        assert!(e.contains("origin is empty"), "{e}");
        // Review r3 #5: 100 × `é` is 200 bytes but 600 once percent-encoded, which made every
        // RabbitMQ message id too long (every message dead-lettered). Refused at load now.
        let e = Config::from_toml(&format!("origin = '{}'", "é".repeat(100)))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("origin is 600 bytes once percent-encoded"),
            "{e}"
        );
        Config::from_toml(&format!("origin = '{}'", "é".repeat(33))).unwrap();
        Config::from_toml(&format!("origin = '{}'", "e".repeat(200))).unwrap();
        let e = Config::from_toml(&format!("origin = '{}'", "e".repeat(201))).unwrap_err();
        assert!(e.to_string().contains("201 bytes"), "{e}");
    }

    #[test]
    fn empty_route_names_and_store_paths_are_refused_at_load() {
        // Review r1 #17: `name = ""` was accepted (logs and stats named the route "").
        let nats = "[nats]\nurl='nats://h:1'\n";
        for name in ["", " ", "a\\u0001"] {
            let text = format!(
                "{nats}[[outbound]]\nname='ok'\nqueue='q'\nnats={{subject='s'}}\n\
                 [[inbound]]\nname=\"{name}\"\nqueue='r'\nnats={{stream='S',consumer='c'}}"
            );
            let e = Config::from_toml(&text).unwrap_err().to_string();
            assert!(
                e.contains("inbound route 2") && e.contains("name"),
                "{name:?}: {e}"
            );
        }
        let e = Config::from_toml("store = ''").unwrap_err().to_string();
        assert!(e.contains("store is empty"), "{e}");
        let field = "url = ''";
        let e = Config::from_toml(&format!("[nats]\n{field}")).unwrap_err();
        assert!(e.to_string().contains("[nats] url"), "{e}");
        let e = Config::from_toml(&format!("[rabbitmq]\n{field}")).unwrap_err();
        assert!(e.to_string().contains("[rabbitmq] url"), "{e}");
        let e = Config::from_toml(&format!(
            "{nats}[[outbound]]\nname='a'\nqueue=''\nnats={{subject='s'}}"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("queue"), "{e}");
    }
}
