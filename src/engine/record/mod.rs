//! # The record schema
//!
//! Every change to a durable queue is one record in the journal; this module is the one place
//! that knows their layouts: each kind's encoder, its decoder, and round-trip tests. The journal
//! (see [`crate::journal::format`]) frames records without knowing their kinds, except `PAD`,
//! which its repair writes.
//!
//! A record is `len: u32` (bytes after this field) · `kind: u8` · body. All integers are
//! little-endian; strings are UTF-8 and run to the end of the record unless a length is given.
//!
//! | kind | name | body |
//! |---|---|---|
//! | 1 | QUEUE | `qid u32` · name |
//! | 2 | SEND | [send header](#send-header) · meta (`meta_len` bytes) · message body (rest) |
//! | 3 | DELIVER | `qid u32` · `n u32` · n × (`id u64`, `delivery_count u32`): counts made durable before hand-over |
//! | 4 | ACK | `qid u32` · `n u32` · n × `id u64` |
//! | 5 | REQUEUE | `qid u32` · `id u64` · `delivery_count u32` · `not_before u64` (ms; 0 = at once) · `failed_at u64` (ms; 0 = a release, not a failure) · reason |
//! | 6 | REMOVE | `qid u32` · `why u8` (1 purge, 2 expired, 3 discarded) · `n u32` · n × `id u64` |
//! | 7 | DEAD | `from_qid u32` · `from_id u64` · a SEND body (header with the dead-letter queue's `qid` and a new `id`): the copy and the removal in one record, so the move is atomic |
//! | 8 | RELOCATE | `state u32` · `not_before u64` · `first_failure u64` · `last_failure u64` · `reason_len u32` · reason · a SEND body: compaction's copy of a live message, replacing the older copy |
//! | 9 | DEDUP | `qid u32` · `id u64` · `at u64` (ms) · key: a dedup entry carried forward by compaction |
//! | 10 | PAD | ignored (written by repair over a damaged range) |
//! | 11 | TXN | whole records back to back, applied all or nothing: a transaction commit, or a delivery that schedules a repeat |
//! | 12 | GROUP | `qid u32` · `parked u8` (1 parked, 0 unparked) · group key |
//! | 13 | PUBLISH | `n u32` · n × `qid` (LEB128, 1–5 bytes) · a SEND body (header `qid` [`NO_QUEUE`]): one message published to a topic, stored once, with a reference in each of the n subscriptions' queues (all of them or none: one record) |
//! | 14 | SUBSCRIBE | `qid u32` · `flags u8` ([`sub_flag`]) · `name_len u16` · subscription name · `pattern_len u16` · pattern · selector (rest): declares queue `qid` as a subscription (it is the queue's declaration; a later SUBSCRIBE of the same `qid` replaces it) |
//! | 15 | UNSUBSCRIBE | `qid u32`: the subscription ends, and every message it held with it |
//! | 16 | SEAL | `next u64`: the journal's own mark (format version 3), never replayed to the engine: see [`crate::journal::format`] |
//! | 17 | TRIM | `first u64`: the journal's own mark (format version 3), never replayed to the engine |
//!
//! RELOCATE's `state` is the message's delivery count in bits 0–30 and, in bit 31
//! ([`IN_FLIGHT_BIT`]), whether it was in flight when it was copied: a message in flight at the
//! last crash counts one failed delivery at the next open, whether or not compaction moved it.
//!
//! ## Send header
//! 48 bytes:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | `id`: the store-unique message id |
//! | 8 | 4 | `qid`: the queue |
//! | 12 | 1 | `priority`, 0–9 |
//! | 13 | 1 | `flags`: what the meta holds, so recovery decodes it only when needed |
//! | 14 | 2 | zero |
//! | 16 | 4 | `delivery_count` when written (0 for a new message) |
//! | 20 | 8 | `timestamp`: send time, ms |
//! | 28 | 8 | `expires_at`, ms (0 = never) |
//! | 36 | 8 | `deliver_at`, ms (0 = at once) |
//! | 44 | 4 | `meta_len` |
//!
//! The flag bits: bit 0 ([`flag::DEDUP`]) the meta holds a dedup key; bit 1 ([`flag::GROUP`]) a
//! group key; bit 2 ([`flag::REPEAT`]) scheduled repeats. Bits 3–7 are zero (a reader ignores
//! them). The meta is bincode (standard configuration, little-endian, its size checked against
//! [`MAX_META`] before decoding allocates anything) of: properties, correlation id, group, dedup
//! key, dead-letter info, repeat (period ms, repeats left), topic; an empty meta (`meta_len` 0)
//! means none of them. (Format version 1 had no topic field: such a meta decodes without it.)
//!
//! A message published to a topic has the same id in every subscription it reached; the queue
//! id tells its references apart in DELIVER, ACK, REQUEUE, REMOVE and DEAD records. The only
//! dedup key a PUBLISH meta carries is a client process's automatic one (producer id and
//! sequence); recovery enters it in the dedup window of each subscription listed, as a SEND's
//! key in its queue's, and compaction carries it forward per subscription in DEDUP records.

mod decode;
mod encode;
#[cfg(test)]
mod test;

use crate::error::{Error, Result};
use crate::journal::frame::{u32_at, u64_at, RECORD_HEADER};

pub use decode::{decode, Counts, DecodeError, Ids, Qids, Record, SendRec, Subscribe};
pub(crate) use decode::{decode_message, send_bytes_in_record, send_in_record};
pub(crate) use encode::*;
pub use encode::{Relocation, Requeue};

/// Record kinds.
pub mod kind {
    /// Queue declaration.
    pub const QUEUE: u8 = 1;
    /// A message.
    pub const SEND: u8 = 2;
    /// Delivery counts persisted before hand-over.
    pub const DELIVER: u8 = 3;
    /// Acknowledgements.
    pub const ACK: u8 = 4;
    /// Back to the queue (nack, release, failure).
    pub const REQUEUE: u8 = 5;
    /// Dropped without a dead letter.
    pub const REMOVE: u8 = 6;
    /// Moved to a dead-letter queue.
    pub const DEAD: u8 = 7;
    /// Compaction's copy of a live message.
    pub const RELOCATE: u8 = 8;
    /// A dedup entry carried forward.
    pub const DEDUP: u8 = 9;
    /// Padding written by repair.
    pub const PAD: u8 = crate::journal::frame::PAD_KIND;
    /// Records applied all or nothing.
    pub const TXN: u8 = 11;
    /// A group parked or unparked.
    pub const GROUP: u8 = 12;
    /// A message published to a topic: one body, one reference per matching subscription.
    pub const PUBLISH: u8 = 13;
    /// A subscription declared (or replaced).
    pub const SUBSCRIBE: u8 = 14;
    /// A subscription ended.
    pub const UNSUBSCRIBE: u8 = 15;
}

/// SUBSCRIBE flag bits.
pub mod sub_flag {
    /// Durable: it survives restarts. (A non-durable subscription writes its SUBSCRIBE only to
    /// hold its queue id; recovery drops it.)
    pub const DURABLE: u8 = 1;
    /// Shared: several consumers may attach to it at once (JMS 2.0 shared subscription).
    pub const SHARED: u8 = 2;
}

/// The `qid` of the SEND header inside a PUBLISH record (its queues are listed before it).
pub const NO_QUEUE: u32 = u32::MAX;

/// Send-header flag bits.
pub mod flag {
    /// The meta holds a dedup key.
    pub const DEDUP: u8 = 1;
    /// The meta holds a group key.
    pub const GROUP: u8 = 2;
    /// The meta holds scheduled repeats.
    pub const REPEAT: u8 = 4;
}

/// Reason codes of REMOVE records.
pub mod why {
    /// Purged.
    pub const PURGE: u8 = 1;
    /// Expired without a dead-letter queue.
    pub const EXPIRED: u8 = 2;
    /// Dead-lettered with the discard strategy.
    pub const DISCARD: u8 = 3;
}

/// Send header length.
pub const SEND_HEADER: usize = 48;
/// Bytes of a SEND record besides its meta and body.
pub const SEND_OVERHEAD: usize = RECORD_HEADER + SEND_HEADER;
/// The largest meta section decoded (checked before decoding allocates anything). Encoding
/// refuses a larger one (bincode checks its limit only when decoding): whatever a send accepts
/// decodes at recovery.
pub const MAX_META: usize = 16 << 20;
/// The longest failure text (`nack`/`reject` reason) a settle accepts, in bytes: it is stored in
/// REQUEUE records and in a dead letter's headers.
pub const MAX_REASON_BYTES: usize = 32 << 10;
/// Room kept in a sent message's meta for the dead-letter information added when it is
/// dead-lettered (original queue name ≤ 255 bytes, failure text ≤ [`MAX_REASON_BYTES`], times,
/// counts), so that dead-lettering a message a send accepted cannot fail to encode.
pub const DEAD_LETTER_ROOM: usize = MAX_REASON_BYTES + 4096;
/// The largest meta section a send accepts (properties, correlation id, group, dedup key).
pub const MAX_SEND_META: usize = MAX_META - DEAD_LETTER_ROOM;
/// RELOCATE state bit: the message was in flight when compaction copied it.
pub const IN_FLIGHT_BIT: u32 = 1 << 31;

/// A cursor for reading record bodies with bounds checks (a failure is a corrupt record).
pub struct Cursor<'a> {
    /// The bytes.
    pub b: &'a [u8],
    /// The position.
    pub pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `b`.
    pub fn new(b: &'a [u8]) -> Self {
        Cursor { b, pos: 0 }
    }
    /// Takes `n` bytes.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.b.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    /// Reads a u8.
    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|s| s[0])
    }
    /// Reads a u32.
    pub fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|s| u32_at(s, 0))
    }
    /// Reads a u64.
    pub fn u64(&mut self) -> Option<u64> {
        self.take(8).map(|s| u64_at(s, 0))
    }
    /// The rest.
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.b[self.pos..];
        self.pos = self.b.len();
        s
    }
    /// The rest as UTF-8.
    pub(crate) fn rest_str(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.rest()).ok()
    }
}

/// The fixed part of a SEND body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SendHeader {
    /// Message id.
    pub id: u64,
    /// Queue.
    pub qid: u32,
    /// Priority 0–9.
    pub priority: u8,
    /// [`flag`] bits.
    pub flags: u8,
    /// Delivery count at the time of writing.
    pub delivery_count: u32,
    /// Send time.
    pub timestamp: u64,
    /// Expiry, 0 = never.
    pub expires_at: u64,
    /// Deliver-at, 0 = at once.
    pub deliver_at: u64,
    /// Meta length.
    pub meta_len: u32,
}

impl SendHeader {
    /// Appends the 48-byte encoding.
    pub fn put(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&self.id.to_le_bytes());
        buf.extend_from_slice(&self.qid.to_le_bytes());
        buf.push(self.priority);
        buf.push(self.flags);
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&self.delivery_count.to_le_bytes());
        buf.extend_from_slice(&self.timestamp.to_le_bytes());
        buf.extend_from_slice(&self.expires_at.to_le_bytes());
        buf.extend_from_slice(&self.deliver_at.to_le_bytes());
        buf.extend_from_slice(&self.meta_len.to_le_bytes());
    }

    /// Decodes from `c`.
    pub fn get(c: &mut Cursor<'_>) -> Option<Self> {
        let b = c.take(SEND_HEADER)?;
        Some(SendHeader {
            id: u64_at(b, 0),
            qid: u32_at(b, 8),
            priority: b[12],
            flags: b[13],
            delivery_count: u32_at(b, 16),
            timestamp: u64_at(b, 20),
            expires_at: u64_at(b, 28),
            deliver_at: u64_at(b, 36),
            meta_len: u32_at(b, 44),
        })
    }
}

/// The bincode configuration of every payload, with the size limit checked before allocating.
pub fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard()
        .with_little_endian()
        .with_limit::<MAX_META>()
}

/// Encodes `value` with bincode, appending to `buf`; returns the number of bytes written. A
/// payload over `limit` bytes (at most [`MAX_META`], what the decoder accepts) is refused with
/// `InvalidArgument` and leaves `buf` as it was.
pub fn put_bincode<T: serde::Serialize>(
    buf: &mut Vec<u8>,
    value: &T,
    limit: usize,
) -> Result<usize> {
    let before = buf.len();
    bincode::serde::encode_into_std_write(value, buf, bincode_config()).map_err(|e| {
        buf.truncate(before);
        Error::invalid(format!("cannot encode message headers: {e}"))
    })?;
    let n = buf.len() - before;
    if n > limit.min(MAX_META) {
        buf.truncate(before);
        return Err(Error::invalid(format!(
            "message headers (properties, correlation id, group, dedup key) take {n} bytes, over \
             the limit of {} bytes",
            limit.min(MAX_META)
        )));
    }
    Ok(n)
}

/// The bytes `meta` takes in a SEND record (0 for a message without headers, as
/// `put_send_body` writes none): what [`crate::engine::payload_of`] adds to the body.
pub(crate) fn meta_bytes(meta: &crate::message::Meta) -> u64 {
    if *meta == crate::message::Meta::default() {
        return 0;
    }
    let mut w = bincode::enc::write::SizeWriter::default();
    // A meta too large to encode is refused by the send itself; count it as the limit.
    match bincode::serde::encode_into_writer(meta, &mut w, bincode_config()) {
        Ok(()) => w.bytes_written as u64,
        Err(_) => MAX_META as u64,
    }
}

/// The bytes `meta` takes in a SEND record once its dead-letter part is taken off (as a replay
/// sends it back): the size a send of it must keep within [`MAX_SEND_META`]. An `Option` field
/// is one tag byte whether `None` or `Some`, so this is the whole size less the info's own.
pub(crate) fn meta_bytes_without_dead_letter(meta: &crate::message::Meta) -> u64 {
    let Some(info) = &meta.dead_letter else {
        return meta_bytes(meta);
    };
    let mut w = bincode::enc::write::SizeWriter::default();
    match bincode::serde::encode_into_writer(info, &mut w, bincode_config()) {
        Ok(()) => meta_bytes(meta).saturating_sub(w.bytes_written as u64),
        Err(_) => MAX_META as u64,
    }
}

/// Decodes a bincode payload.
pub fn get_bincode<T: serde::de::DeserializeOwned>(b: &[u8]) -> Option<T> {
    if b.len() > MAX_META {
        return None;
    }
    bincode::serde::decode_from_slice(b, bincode_config())
        .ok()
        .map(|(v, _)| v)
}
