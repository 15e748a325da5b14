//! The wire protocol between a store's owner and its clients, over a Unix stream socket.
//!
//! ```text
//!  connect ─► Hello   (fixed layout: magic, protocol version, journal format version, pid,
//!                      the store directory's device and inode)
//!          ◄─ Welcome (fixed layout: magic, versions, owner pid, status; a refusal carries the
//!                      error kind and text)
//!  then frames both ways: u32 little-endian payload length, then the payload in bincode:
//!          client → owner: (request id, Request)        id 0: no reply wanted
//!          owner → client: (request id, more, Response)  `more`: further parts follow
//!          owner → client: (0, false, Done) last, at a clean close (GOODBYE_ID): every request
//!                          it did not answer on the connection had no effect
//!  a payload over MAX_FRAME (64 MiB) goes as several frames of at most MAX_FRAME bytes each,
//!  every one but the last with bit 31 of its length set (MORE_FRAMES); the reader joins them,
//!  up to MAX_MESSAGE bytes in all
//! ```
//!
//! Requests are pipelined: a client may send many before the first reply, and replies come in
//! any order (a blocked receive does not hold up a send). The hello is fixed-layout, not bincode,
//! so that a peer of another version is recognised and refused with a clear error instead of
//! being misread. Every length is checked against [`MAX_FRAME`] before anything is allocated for
//! it, and bincode's own limit bounds every length inside a payload.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use crate::engine::{
    CompactReport, PurgeFilter, PurgeReport, QueueStats, StoredMessage, SubscriptionInfo,
    SubscriptionOptions, TopicStats, TransferFilter, TransferReport,
};
use crate::error::{Error, ErrorKind};
use crate::journal::{Missing, RecoveryReport};
use crate::message::{Message, MessageId};
use crate::options::{AckDurability, AckMode, QueueOptions};
use crate::queue::ReplayFilter;

/// The journal format version the hello carries (the owner's format is the store's).
pub use crate::journal::format::VERSION as FORMAT_VERSION;

/// The protocol version; a peer of another version is refused at the hello. 2: topics and
/// subscriptions, selective consumers, transactional publishes (journal format 2). 3: prefetch
/// (queue option and `OpenConsumer`), `ack_durability` (queue option), `AckSync` and the
/// `sync` flag of `AckBatch`, `prefetched` in queue stats; browse of every state or of ready
/// messages only, each browsed message with its state and delivery count; the owner's recovery
/// report (journal format 3). 4: `SettleHandedOver` (deliveries an owner's clean close handed
/// over to the next owner); requests and replies over [`MAX_FRAME`] as several frames
/// ([`MORE_FRAMES`]). 5: `Purge` carries a [`PurgeFilter`] (an upper id bound, a dry run)
/// and is answered `Purged`; [`TransferFilter::through`] and [`TransferReport::last`]
/// (review r6 #1: act only on what was counted). 6: `replayed_out` in queue stats (review r5
/// #14). 7: [`Missing::frames_lost`](crate::Missing::frames_lost) is an `Option` (`None`: not
/// known; review r5 #9); one-way lazy acks (issue 10, W10): `Declare` is answered `Declared`
/// (the queue's ack durability and prefetch, so that a client knows when an ack may go without
/// a round trip); `Settles` carries a batch of lazy acks, handled in read order and answered
/// `Settled` with the ones that failed; a `Receive` may carry them too. 8: a client consumer
/// prefetches into its own process (issue 10, W10 W3s): a `Receive` may ask the owner to lend
/// it up to `lend` of the consumer's prefetched messages (answered `Lent`); `LentNotice` says
/// which it handed out or gives back; the owner pushes `Recall` (request id [`RECALL_ID`]) when
/// a competing consumer waits with nothing ready.
pub const PROTOCOL_VERSION: u32 = 8;
/// The request id of an owner's [`Response::Recall`], a frame no request asked for.
pub const RECALL_ID: u64 = u64::MAX;
/// The request id of the owner's goodbye: its last frame on a connection when it closes
/// cleanly, after every answer it will give. What it did not answer had no effect (it was not
/// read, or failed as the engine closed), so the client may send it again to the next owner
/// even where the outcome of a lost answer is otherwise unknown.
pub const GOODBYE_ID: u64 = 0;
/// Magic of the hello and welcome.
pub const MAGIC: &[u8; 8] = b"MQLITEP\0";
/// The largest frame payload either side accepts (64 MiB). A request or reply larger than this
/// goes as several frames (see [`MORE_FRAMES`]); receive and browse replies are also split into
/// parts of about [`PART_BYTES`] (each its own reply frame), so that the client gets them in
/// pieces.
pub const MAX_FRAME: usize = 64 << 20;
/// Bit 31 of a frame's length word: this frame holds one piece of a payload over
/// [`MAX_FRAME`], and more pieces follow (the last one has the bit clear).
pub const MORE_FRAMES: u32 = 1 << 31;
/// The largest payload of a request or reply, its frames together: the largest body a store
/// accepts ([`MAX_BODY_BYTES`](crate::MAX_BODY_BYTES), 2 GiB) and [`MAX_FRAME`] more for the
/// rest of the message, so that any call the owner takes a client can make. It bounds what the
/// owner gathers for a connection at once: a connection is read by one thread at a time, whose
/// buffer grows only as bytes arrive and is given back after a payload over [`MAX_FRAME`].
pub const MAX_MESSAGE: usize = crate::MAX_BODY_BYTES as usize + MAX_FRAME;
/// Most lazy acks of one `Settles` request: a client's outbox goes out when it holds this many.
pub const MAX_LAZY_ACKS: usize = 256;
/// Replies are split into parts of about this many bytes.
pub const PART_BYTES: usize = 8 << 20;
/// Length of the hello.
pub const HELLO_LEN: usize = 8 + 4 + 4 + 4 + 8 + 8;
/// Length of the welcome before its message text.
pub const WELCOME_LEN: usize = 8 + 4 + 4 + 4 + 1 + 4 + 4;
/// The longest refusal text of a welcome.
pub const MAX_WELCOME_TEXT: usize = 4096;

/// The client's opening: who it is and which store it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    pub protocol: u32,
    pub format: u32,
    pub pid: u32,
    /// The store directory's device and inode as the client resolved it: the owner refuses a
    /// client that reached its socket through another directory.
    pub dir: (u64, u64),
}

impl Hello {
    pub fn encode(&self) -> [u8; HELLO_LEN] {
        let mut b = [0u8; HELLO_LEN];
        b[..8].copy_from_slice(MAGIC);
        b[8..12].copy_from_slice(&self.protocol.to_le_bytes());
        b[12..16].copy_from_slice(&self.format.to_le_bytes());
        b[16..20].copy_from_slice(&self.pid.to_le_bytes());
        b[20..28].copy_from_slice(&self.dir.0.to_le_bytes());
        b[28..36].copy_from_slice(&self.dir.1.to_le_bytes());
        b
    }

    /// Decodes a hello; `None` if it is not one (wrong magic).
    pub fn decode(b: &[u8; HELLO_LEN]) -> Option<Hello> {
        (&b[..8] == MAGIC).then(|| Hello {
            protocol: u32_at(b, 8),
            format: u32_at(b, 12),
            pid: u32_at(b, 16),
            dir: (u64_at(b, 20), u64_at(b, 28)),
        })
    }
}

/// The owner's answer to a hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    pub protocol: u32,
    pub format: u32,
    pub owner_pid: u32,
    /// `None`: accepted; otherwise the refusal.
    pub refusal: Option<(ErrorKind, String)>,
}

impl Welcome {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(WELCOME_LEN + 64);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&self.protocol.to_le_bytes());
        b.extend_from_slice(&self.format.to_le_bytes());
        b.extend_from_slice(&self.owner_pid.to_le_bytes());
        let (kind, text) = match &self.refusal {
            None => (0u32, ""),
            Some((k, t)) => (k.code(), t.as_str()),
        };
        let text = &text.as_bytes()[..text.len().min(MAX_WELCOME_TEXT)];
        b.push(self.refusal.is_some() as u8);
        b.extend_from_slice(&kind.to_le_bytes());
        b.extend_from_slice(&(text.len() as u32).to_le_bytes());
        b.extend_from_slice(text);
        b
    }

    /// Reads a welcome; an error names what was wrong with it.
    pub fn read(r: &mut impl Read) -> Result<Welcome, String> {
        let mut b = [0u8; WELCOME_LEN];
        r.read_exact(&mut b)
            .map_err(|e| format!("the owner closed the connection during the hello ({e})"))?;
        if &b[..8] != MAGIC {
            return Err("the socket's peer does not speak mqlite's protocol".into());
        }
        let refused = b[20] != 0;
        let kind = u32_at(&b, 21);
        let len = u32_at(&b, 25) as usize;
        if len > MAX_WELCOME_TEXT {
            return Err(format!(
                "the owner's welcome text of {len} bytes is over the limit"
            ));
        }
        let mut text = vec![0u8; len];
        r.read_exact(&mut text)
            .map_err(|e| format!("the owner closed the connection during the hello ({e})"))?;
        let refusal = refused.then(|| {
            (
                ErrorKind::from_code(kind).unwrap_or(ErrorKind::Internal),
                String::from_utf8_lossy(&text).into_owned(),
            )
        });
        Ok(Welcome {
            protocol: u32_at(&b, 8),
            format: u32_at(&b, 12),
            owner_pid: u32_at(&b, 16),
            refusal,
        })
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// A delivery as the wire names it (the owner's queue id, message id, delivery tag and
/// consumer id; consumer 0 is a plain receive of the connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireRef {
    pub queue: u32,
    pub id: u64,
    pub tag: u64,
    pub consumer: u64,
}

/// How a delivery is settled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireSettle {
    /// Lazy unless the queue's ack durability is sync: answered once the owner queued it.
    Ack,
    /// Answered only once the owner's fdatasync of the ack returned.
    AckSync,
    Nack {
        reason: String,
        delay_ms: Option<u64>,
    },
    Reject {
        reason: String,
    },
    Release,
}

/// A lazy ack of a client's outbox ([`Request::Settles`]): the delivery as a settle names it,
/// and its delivery count (what names it to a later owner it was handed over to).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LazyAck {
    pub delivery: WireRef,
    pub count: u32,
}

/// A lazy ack the owner could not apply ([`Response::Settled`]): the message id and the
/// error (kind code and text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LazyFailure {
    pub id: u64,
    pub kind: u32,
    pub message: String,
}

/// Where a transaction's send goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireDest {
    Queue(u32),
    Topic(String),
}

/// One request: one engine call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    Declare {
        name: String,
        options: Option<QueueOptions>,
    },
    QueueNames,
    Send {
        queue: u32,
        message: Message,
    },
    /// Answered once the message is durable (the owner's async send).
    SendAsync {
        queue: u32,
        message: Message,
    },
    SendBatch {
        queue: u32,
        messages: Vec<Message>,
    },
    Receive {
        queue: u32,
        consumer: u64,
        max: u32,
        timeout_ms: Option<u64>,
        /// A selective consumer's selector text.
        selector: Option<String>,
        /// Lazy acks that go with the receive (the client's outbox), at most
        /// [`MAX_LAZY_ACKS`]: applied, in read order, before the receive (an ack may free a
        /// message group's next message) and answered as the `Settles` of request id `acks_id`
        /// would be, before the owner reads the next request.
        acks: Vec<LazyAck>,
        acks_id: u64,
        /// Besides the one message handed out (`max` must be 1, no selector), lend the
        /// client up to this many of the consumer's prefetched messages, which it hands out
        /// itself (answered [`Response::Lent`]; 0: none, answered `Received`).
        lend: u32,
    },
    /// What a client did with messages lent to its consumer (the owner's consumer id, 0: the
    /// connection's plain receives of `queue`), by (message id, tag): `handed` it handed out
    /// (in flight from now on: their ack deadlines start), `returned` it gives back uncounted.
    /// One-way (request id 0), handled in read order before the next request is read, so that
    /// a settle of a handed-out message written after it finds it in flight.
    /// `handed_over`: the items of `returned` are (message id, delivery count) of messages an
    /// earlier owner lent this client and handed over at its clean close (their tags were that
    /// owner's): released uncounted; one not held for this client is skipped.
    LentNotice {
        queue: u32,
        consumer: u64,
        handed: Vec<(u64, u64)>,
        returned: Vec<(u64, u64)>,
        handed_over: bool,
    },
    OpenConsumer {
        queue: u32,
        mode: AckMode,
        /// The consumer's prefetch; `None` takes the queue's.
        prefetch: Option<u32>,
    },
    CloseConsumer {
        consumer: u64,
    },
    Settle {
        delivery: WireRef,
        op: WireSettle,
    },
    /// Settles a delivery the previous owner handed over at its clean close, named by queue,
    /// message id and delivery count (its tag was the previous owner's); `DeliveryLost` if it
    /// was not handed over (the previous owner died).
    SettleHandedOver {
        queue: u32,
        id: u64,
        count: u32,
        op: WireSettle,
    },
    /// Lazy acks of deliveries of lazy queues (at most [`MAX_LAZY_ACKS`]), in the order they
    /// were made: handled by the reading thread before the next request is read, so that a
    /// later request's durability covers them (SPEC §1); answered `Settled` with the failures.
    /// `handed_over`: the acks name deliveries an earlier owner handed over at its clean close
    /// (by queue, message id and count; their tags and consumers are that owner's), and one no
    /// longer held for this client (the earlier owner died) is skipped, not a failure: the ack
    /// was lazy, and the message comes back redelivered.
    Settles {
        acks: Vec<LazyAck>,
        handed_over: bool,
    },
    /// A delivery dropped unsettled: a failed delivery.
    SettleOnDrop {
        delivery: WireRef,
    },
    AckBatch {
        queue: u32,
        deliveries: Vec<WireRef>,
        /// Answered only once the acks are durable (otherwise as the queue's ack durability).
        sync: bool,
    },
    IsSettled {
        delivery: WireRef,
    },
    Commit {
        sends: Vec<(WireDest, Message)>,
        acks: Vec<WireRef>,
    },
    /// Whether a transaction whose answer was lost with the previous owner was committed: the
    /// ids of its sends if their dedup keys are known, else `DeliveryLost`.
    CommitProbe {
        sends: Vec<(WireDest, Message)>,
    },
    /// A delivery added to a transaction.
    TxnClaim {
        delivery: WireRef,
    },
    Publish {
        topic: String,
        message: Message,
    },
    /// Answered once the message is durable (the owner's async publish).
    PublishAsync {
        topic: String,
        message: Message,
    },
    PublishBatch {
        topic: String,
        messages: Vec<Message>,
    },
    TopicStats {
        topic: String,
    },
    /// Attaches a subscriber (answered with the subscription's queue and name); the
    /// connection holds it until `CloseSubscription` or until it ends.
    Subscribe {
        pattern: String,
        options: SubscriptionOptions,
    },
    CloseSubscription {
        queue: u32,
    },
    Unsubscribe {
        name: String,
    },
    Subscriptions,
    Browse {
        queue: u32,
        max: u64,
        /// Ready messages only (else every message, whatever its state).
        ready_only: bool,
    },
    Purge {
        queue: u32,
        filter: PurgeFilter,
    },
    Stats {
        queue: u32,
    },
    IsMemory {
        queue: u32,
    },
    Replay {
        queue: u32,
        filter: ReplayFilter,
    },
    BrowseStored {
        queue: u32,
        from: u64,
        max: u64,
    },
    Transfer {
        queue: u32,
        filter: TransferFilter,
    },
    DedupWindow {
        queue: u32,
    },
    DedupLookup {
        queue: u32,
        key: String,
    },
    Compact,
    Flush,
    DiskBytes,
    Check,
    /// What recovery found when the owner opened the store.
    RecoveryReport,
}

/// A message handed over by a receive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireReceived {
    pub message: Message,
    pub tag: u64,
    pub count: u32,
}

/// One reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    Done,
    Id(MessageId),
    Ids(Vec<MessageId>),
    /// A declared queue: its id, whether its ack durability is sync, its prefetch.
    Declared {
        queue: u32,
        ack_sync: bool,
        prefetch: u32,
    },
    /// The lazy acks of a `Settles` the owner could not apply (none: all applied).
    Settled {
        failed: Vec<LazyFailure>,
    },
    Consumer(u64),
    Names(Vec<String>),
    Received(Vec<WireReceived>),
    /// A `Receive` with `lend`: what it handed out and what it lends the client (prefetched
    /// messages the client hands out itself, telling the owner with a `LentNotice`).
    Lent {
        handed: Vec<WireReceived>,
        lent: Vec<WireReceived>,
    },
    /// Pushed by the owner (request id [`RECALL_ID`]): a competing consumer of `queue` waits
    /// with nothing ready; the client gives back (`LentNotice::returned`) what was lent to its
    /// consumer `consumer` (the owner's id; 0: its plain receives) and not handed out.
    Recall {
        queue: u32,
        consumer: u64,
    },
    Messages(Vec<Message>),
    Count(u64),
    Flag(bool),
    Stats(QueueStats),
    Stored(Vec<StoredMessage>),
    Transferred(TransferReport),
    Purged(PurgeReport),
    Compacted(CompactReport),
    Window {
        ms: u64,
        count: u64,
    },
    Found(Option<MessageId>),
    Subscribed {
        queue: u32,
        name: String,
    },
    Subscriptions(Vec<SubscriptionInfo>),
    TopicStats(TopicStats),
    Report(RecoveryReport),
    Error {
        kind: u32,
        message: String,
    },
    /// A publish's id and how many subscriptions it reached (0: stored nowhere).
    Published {
        id: MessageId,
        subscriptions: u32,
    },
}

impl Response {
    /// The reply of a failed call.
    pub fn error(e: &Error) -> Response {
        Response::Error {
            kind: e.kind().code(),
            message: e.message().to_string(),
        }
    }

    /// The error of an error reply.
    pub fn into_result(self) -> Result<Response, Error> {
        match self {
            Response::Error { kind, message } => Err(Error::new(
                ErrorKind::from_code(kind).unwrap_or(ErrorKind::Internal),
                message,
            )),
            r => Ok(r),
        }
    }

    /// Appends the parts of a split reply (receive and browse results).
    pub fn extend(&mut self, part: Response) -> bool {
        match (self, part) {
            (Response::Received(a), Response::Received(b)) => a.extend(b),
            (Response::Messages(a), Response::Messages(b)) => a.extend(b),
            (Response::Stored(a), Response::Stored(b)) => a.extend(b),
            _ => return false,
        }
        true
    }
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard()
        .with_little_endian()
        .with_limit::<MAX_MESSAGE>()
}

/// Appends one frame (length, then the bincode of `value`) to `buf`.
pub fn put_frame<T: Serialize>(buf: &mut Vec<u8>, value: &T) -> Result<(), Error> {
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    if let Err(e) = bincode::serde::encode_into_std_write(value, buf, config()) {
        buf.truncate(start);
        return Err(Error::invalid(format!("cannot encode a request: {e}")));
    }
    let len = buf.len() - start - 4;
    if len > MAX_MESSAGE {
        buf.truncate(start);
        return Err(Error::invalid(format!(
            "a request or reply of {len} bytes is over the limit of {MAX_MESSAGE} bytes \
             between processes"
        )));
    }
    if len <= MAX_FRAME {
        buf[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
        return Ok(());
    }
    let payload = buf.split_off(start + 4);
    buf.truncate(start);
    put_pieces(buf, &payload, MAX_FRAME);
    Ok(())
}

/// Appends `payload` as frames of at most `piece` bytes, all but the last marked
/// [`MORE_FRAMES`].
pub fn put_pieces(buf: &mut Vec<u8>, payload: &[u8], piece: usize) {
    let piece = piece.clamp(1, MAX_FRAME);
    let mut pieces = payload.chunks(piece).peekable();
    if pieces.peek().is_none() {
        buf.extend_from_slice(&0u32.to_le_bytes());
    }
    while let Some(p) = pieces.next() {
        let more = if pieces.peek().is_some() {
            MORE_FRAMES
        } else {
            0
        };
        buf.extend_from_slice(&(p.len() as u32 | more).to_le_bytes());
        buf.extend_from_slice(p);
    }
}

/// Decodes a frame payload: the whole payload must be one value.
pub fn decode<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, String> {
    if payload.len() > MAX_MESSAGE {
        return Err(format!(
            "a frame of {} bytes is over the limit",
            payload.len()
        ));
    }
    match bincode::serde::decode_from_slice(payload, config()) {
        Ok((v, n)) if n == payload.len() => Ok(v),
        Ok((_, n)) => Err(format!(
            "a frame of {} bytes holds {} bytes of trailing garbage",
            payload.len(),
            payload.len() - n
        )),
        Err(e) => Err(format!("a frame does not decode: {e}")),
    }
}

/// A client's request frame.
pub type RequestFrame = (u64, Request);
/// An owner's reply frame: request id, whether more parts follow, the (part of the) reply.
pub type ResponseFrame = (u64, bool, Response);

/// Reads one payload into `buf` (replacing its contents): one frame, or the frames of a
/// payload over [`MAX_FRAME`] joined. `Ok(false)` at a clean end of stream before a frame.
/// Every length is checked before anything is allocated for it (a frame's against
/// [`MAX_FRAME`], the joined payload's against [`MAX_MESSAGE`]), and the buffer grows only as
/// bytes actually arrive, so a peer that announces a huge frame and sends nothing costs
/// nothing. A piece marked as followed by more must not be empty.
pub fn read_frame(r: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<bool> {
    buf.clear();
    let bad = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    loop {
        let mut word = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match r.read(&mut word[got..]) {
                Ok(0) if got == 0 && buf.is_empty() => return Ok(false),
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let word = u32::from_le_bytes(word);
        let more = word & MORE_FRAMES != 0;
        let len = (word & !MORE_FRAMES) as usize;
        if len > MAX_FRAME {
            return Err(bad(format!(
                "a frame of {len} bytes is over the limit of {MAX_FRAME}"
            )));
        }
        if more && len == 0 {
            return Err(bad("an empty frame is marked as followed by more".into()));
        }
        let end = buf.len() + len;
        if end > MAX_MESSAGE {
            return Err(bad(format!("frames joining into over {MAX_MESSAGE} bytes")));
        }
        const STEP: usize = 1 << 20;
        while buf.len() < end {
            let want = (end - buf.len()).min(STEP);
            let at = buf.len();
            buf.resize(at + want, 0);
            r.read_exact(&mut buf[at..])?;
        }
        if !more {
            return Ok(true);
        }
    }
}

/// Writes bytes already framed.
pub fn write_all(w: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    w.write_all(bytes)
}

/// Splits a large receive or browse reply into parts of about [`PART_BYTES`] each (every part
/// then fits a frame); any other reply is one part.
pub fn split(resp: Response) -> Vec<Response> {
    fn size(m: &Message) -> usize {
        m.body.len() + 256
    }
    match resp {
        Response::Received(items)
            if items.iter().map(|r| size(&r.message)).sum::<usize>() > PART_BYTES =>
        {
            chunks(items, |r| size(&r.message))
                .into_iter()
                .map(Response::Received)
                .collect()
        }
        Response::Messages(items) if items.iter().map(size).sum::<usize>() > PART_BYTES => {
            chunks(items, size)
                .into_iter()
                .map(Response::Messages)
                .collect()
        }
        Response::Stored(items)
            if items.iter().map(|s| size(&s.message)).sum::<usize>() > PART_BYTES =>
        {
            chunks(items, |s| size(&s.message))
                .into_iter()
                .map(Response::Stored)
                .collect()
        }
        r => vec![r],
    }
}

fn chunks<T>(items: Vec<T>, size: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
    let mut out = vec![Vec::new()];
    let mut bytes = 0;
    for it in items {
        let s = size(&it);
        if bytes + s > PART_BYTES && !out.last().is_some_and(Vec::is_empty) {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += s;
        if let Some(last) = out.last_mut() {
            last.push(it);
        }
    }
    out
}

/// The fuzz harness's entry: decodes arbitrary bytes as both frame kinds and as a hello and a
/// welcome, as the owner and the client do; returns how many decoded (never panics).
#[doc(hidden)]
pub fn fuzz_decode(data: &[u8]) -> usize {
    let mut n = 0;
    n += decode::<RequestFrame>(data).is_ok() as usize;
    n += decode::<ResponseFrame>(data).is_ok() as usize;
    if let Ok(h) = <&[u8; HELLO_LEN]>::try_from(&data[..data.len().min(HELLO_LEN)]) {
        n += Hello::decode(h).is_some() as usize;
    }
    n += Welcome::read(&mut &data[..]).is_ok() as usize;
    let mut r = data;
    let mut buf = Vec::new();
    while let Ok(true) = read_frame(&mut r, &mut buf) {
        n += decode::<RequestFrame>(&buf).is_ok() as usize;
        if let Ok((_, _, resp)) = decode::<ResponseFrame>(&buf) {
            // What the client does with a reply: split and rejoin parts, read an error.
            let mut parts = split(resp).into_iter();
            if let Some(mut first) = parts.next() {
                for p in parts {
                    first.extend(p);
                }
                n += 1;
                let _ = first.into_result();
            }
        }
    }
    n
}

/// Valid encodings the fuzz harnesses start from: a hello, a welcome, and one frame (length
/// included) of each kind of request and of the main replies, so that mutations reach deep
/// into every variant's decoding rather than failing at the first byte.
#[doc(hidden)]
pub fn fuzz_seeds() -> Vec<Vec<u8>> {
    let msg = || {
        Message::new(&b"body"[..])
            .property("k", 1i64)
            .dedup_key("\u{1}mq1.2")
    };
    let wref = WireRef {
        queue: 1,
        id: 2,
        tag: 3,
        consumer: 4,
    };
    let requests = vec![
        Request::Declare {
            name: "q".into(),
            options: Some(QueueOptions::default()),
        },
        Request::Declare {
            name: "q".into(),
            options: Some(QueueOptions {
                prefetch: Some(10),
                ack_durability: Some(AckDurability::Sync),
                ..Default::default()
            }),
        },
        Request::QueueNames,
        Request::Send {
            queue: 0,
            message: msg(),
        },
        Request::SendAsync {
            queue: 0,
            message: msg(),
        },
        Request::SendBatch {
            queue: 0,
            messages: vec![msg(), msg()],
        },
        Request::Receive {
            queue: 0,
            consumer: 1,
            max: 10,
            timeout_ms: Some(5),
            selector: Some("k > 0".into()),
            acks: vec![LazyAck {
                delivery: wref,
                count: 1,
            }],
            acks_id: 9,
            lend: 0,
        },
        Request::Receive {
            queue: 0,
            consumer: 0,
            max: 1,
            timeout_ms: Some(5),
            selector: None,
            acks: Vec::new(),
            acks_id: 0,
            lend: 99,
        },
        Request::LentNotice {
            queue: 0,
            consumer: 0,
            handed: vec![(1, 2), (3, 4)],
            returned: vec![(5, 6)],
            handed_over: false,
        },
        Request::OpenConsumer {
            queue: 0,
            mode: AckMode::Explicit,
            prefetch: Some(100),
        },
        Request::Settle {
            delivery: wref,
            op: WireSettle::AckSync,
        },
        Request::Settle {
            delivery: wref,
            op: WireSettle::Nack {
                reason: "r".into(),
                delay_ms: Some(1),
            },
        },
        Request::AckBatch {
            queue: 0,
            deliveries: vec![wref, wref],
            sync: true,
        },
        Request::SettleHandedOver {
            queue: 1,
            id: 2,
            count: 3,
            op: WireSettle::Ack,
        },
        Request::Settles {
            acks: vec![
                LazyAck {
                    delivery: wref,
                    count: 1,
                },
                LazyAck {
                    delivery: wref,
                    count: 2,
                },
            ],
            handed_over: false,
        },
        Request::Commit {
            sends: vec![
                (WireDest::Queue(0), msg()),
                (WireDest::Topic("a.b".into()), msg()),
            ],
            acks: vec![wref],
        },
        Request::Publish {
            topic: "a.b".into(),
            message: msg(),
        },
        Request::Subscribe {
            pattern: "a.>".into(),
            options: SubscriptionOptions {
                name: Some("s".into()),
                durable: true,
                selector: Some("k = 1".into()),
                ..Default::default()
            },
        },
        Request::Replay {
            queue: 0,
            filter: ReplayFilter::default(),
        },
        Request::Browse {
            queue: 0,
            max: 10,
            ready_only: true,
        },
        Request::RecoveryReport,
        Request::Transfer {
            queue: 0,
            filter: TransferFilter {
                to: "b".into(),
                ids: Some(vec![MessageId(1)]),
                limit: Some(3),
                through: Some(MessageId(9)),
                copy: true,
                dry_run: false,
            },
        },
        Request::Purge {
            queue: 2,
            filter: PurgeFilter {
                through: Some(MessageId(7)),
                dry_run: true,
            },
        },
    ];
    let responses = vec![
        Response::Ids(vec![MessageId(1), MessageId(2)]),
        Response::Received(vec![WireReceived {
            message: msg(),
            tag: 1,
            count: 2,
        }]),
        Response::Lent {
            handed: vec![WireReceived {
                message: msg(),
                tag: 1,
                count: 2,
            }],
            lent: vec![WireReceived {
                message: msg(),
                tag: 3,
                count: 1,
            }],
        },
        Response::Recall {
            queue: 1,
            consumer: 0,
        },
        Response::Stats(QueueStats {
            depth: 1,
            in_flight: 2,
            prefetched: 3,
            replayed_out: 4,
            ..Default::default()
        }),
        Response::Messages(vec![{
            let mut m = msg();
            m.browsed = Some((crate::engine::MessageState::RedeliveryWait, 2));
            m
        }]),
        Response::Report(RecoveryReport {
            missing: vec![Missing {
                file: "00000000000000000002.seg".into(),
                what: "segment file is missing".into(),
                frames_lost: None,
            }],
            ..Default::default()
        }),
        Response::Subscribed {
            queue: 3,
            name: "s".into(),
        },
        Response::Error {
            kind: 1,
            message: "e".into(),
        },
        Response::Published {
            id: MessageId(7),
            subscriptions: 2,
        },
        Response::Declared {
            queue: 1,
            ack_sync: true,
            prefetch: 100,
        },
        Response::Settled {
            failed: vec![LazyFailure {
                id: 3,
                kind: 5,
                message: "e".into(),
            }],
        },
    ];
    let mut out = vec![
        Hello {
            protocol: PROTOCOL_VERSION,
            format: FORMAT_VERSION,
            pid: 1,
            dir: (2, 3),
        }
        .encode()
        .to_vec(),
        Welcome {
            protocol: PROTOCOL_VERSION,
            format: FORMAT_VERSION,
            owner_pid: 1,
            refusal: Some((ErrorKind::Locked, "no".into())),
        }
        .encode(),
    ];
    for (i, r) in requests.into_iter().enumerate() {
        let mut b = Vec::new();
        if put_frame(&mut b, &(i as u64, r)).is_ok() {
            out.push(b);
        }
    }
    for (i, r) in responses.into_iter().enumerate() {
        let mut b = Vec::new();
        if put_frame(&mut b, &(i as u64, false, r)).is_ok() {
            out.push(b);
        }
    }
    // A request and a reply in pieces, as one over MAX_FRAME goes (here in small pieces).
    let mut b = Vec::new();
    if put_frame(
        &mut b,
        &(
            7u64,
            Request::SendBatch {
                queue: 0,
                messages: vec![msg(), msg()],
            },
        ),
    )
    .is_ok()
    {
        let mut pieces = Vec::new();
        put_pieces(&mut pieces, &b[4..], 16);
        out.push(pieces);
    }
    let mut b = Vec::new();
    let reply = Response::Received(vec![WireReceived {
        message: msg(),
        tag: 1,
        count: 1,
    }]);
    if put_frame(&mut b, &(8u64, false, reply)).is_ok() {
        let mut pieces = Vec::new();
        put_pieces(&mut pieces, &b[4..], 24);
        out.push(pieces);
    }
    out
}
