//! Encoders: each appends one whole record to a batch buffer. A record that can fail to encode
//! (a meta that bincode refuses) leaves the buffer as it was.

use super::{flag, kind, put_bincode, SendHeader, IN_FLIGHT_BIT, MAX_META, MAX_SEND_META};
use crate::error::Result;
use crate::journal::frame::{put_record_header, RECORD_HEADER};
use crate::message::Meta;

/// Patches the length field of a record that began at `start` once its body is complete.
fn finish(buf: &mut [u8], start: usize) {
    let len = (buf.len() - start - 4) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

/// The flags a SEND header gets for `meta`.
pub(crate) fn flags_of(meta: &Meta) -> u8 {
    let mut f = 0;
    if meta.dedup_key.is_some() {
        f |= flag::DEDUP;
    }
    if meta.group.is_some() {
        f |= flag::GROUP;
    }
    if meta.repeat.is_some() {
        f |= flag::REPEAT;
    }
    f
}

/// Appends a SEND body (header with flags and meta length filled in, meta, body). `topic`, when
/// given, is written as the meta's topic (whose own `topic` is then `None`): the meta is encoded
/// as it is and its last field patched, so publishing copies no headers.
fn put_send_body(
    buf: &mut Vec<u8>,
    mut h: SendHeader,
    meta: &Meta,
    topic: Option<&str>,
    body: &[u8],
) -> Result<()> {
    let start = buf.len();
    h.flags = flags_of(meta);
    h.meta_len = 0;
    h.put(buf);
    if *meta != Meta::default() || topic.is_some() {
        // A message as sent keeps room for the dead-letter headers it may get later.
        let limit = if meta.dead_letter.is_some() {
            MAX_META
        } else {
            MAX_SEND_META
        };
        let mut n = put_bincode(buf, meta, limit)?;
        if let (Some(t), None) = (topic, &meta.topic) {
            // The topic is the meta's last field: bincode wrote `None` as one 0 byte; write
            // `Some(t)` (a 1 byte, then the string) in its place. Its room counts in the limit.
            buf.pop();
            buf.push(1);
            n += put_bincode(buf, &t, limit.saturating_sub(n))?;
        }
        buf[start + 44..start + 48].copy_from_slice(&(n as u32).to_le_bytes());
    }
    buf.extend_from_slice(body);
    Ok(())
}

/// Appends a SEND record; returns its length.
pub(crate) fn put_send(buf: &mut Vec<u8>, h: SendHeader, meta: &Meta, body: &[u8]) -> Result<u32> {
    let start = buf.len();
    put_record_header(buf, kind::SEND, 0);
    if let Err(e) = put_send_body(buf, h, meta, None, body) {
        buf.truncate(start);
        return Err(e);
    }
    finish(buf, start);
    Ok((buf.len() - start) as u32)
}

/// Appends a DEAD record (message `from_id` of queue `from_qid` moved, as `h.id`, into queue
/// `h.qid`); returns its length.
pub(crate) fn put_dead(
    buf: &mut Vec<u8>,
    from_qid: u32,
    from_id: u64,
    h: SendHeader,
    meta: &Meta,
    body: &[u8],
) -> Result<u32> {
    let start = buf.len();
    put_record_header(buf, kind::DEAD, 0);
    buf.extend_from_slice(&from_qid.to_le_bytes());
    buf.extend_from_slice(&from_id.to_le_bytes());
    if let Err(e) = put_send_body(buf, h, meta, None, body) {
        buf.truncate(start);
        return Err(e);
    }
    finish(buf, start);
    Ok((buf.len() - start) as u32)
}

/// Appends a PUBLISH record: message `h.id` published to `topic`, with a reference in each queue
/// of `qids`; returns its length.
pub(crate) fn put_publish(
    buf: &mut Vec<u8>,
    qids: &[u32],
    topic: &str,
    mut h: SendHeader,
    meta: &Meta,
    body: &[u8],
) -> Result<u32> {
    let start = buf.len();
    put_record_header(buf, kind::PUBLISH, 0);
    buf.extend_from_slice(&(qids.len() as u32).to_le_bytes());
    for &q in qids {
        // LEB128: a queue id under 128 takes one byte (ten references cost ten bytes, which
        // keeps a topic's disk use near one queue's).
        let mut v = q;
        while v >= 0x80 {
            buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        buf.push(v as u8);
    }
    h.qid = super::NO_QUEUE;
    if let Err(e) = put_send_body(buf, h, meta, Some(topic), body) {
        buf.truncate(start);
        return Err(e);
    }
    finish(buf, start);
    Ok((buf.len() - start) as u32)
}

/// Appends a SUBSCRIBE record (see [`super::Subscribe`] for the fields).
pub(crate) fn put_subscribe(buf: &mut Vec<u8>, s: &super::Subscribe<'_>) {
    let start = buf.len();
    put_record_header(buf, kind::SUBSCRIBE, 0);
    buf.extend_from_slice(&s.qid.to_le_bytes());
    buf.push(s.flags);
    for t in [s.name, s.pattern] {
        // Names and patterns are at most 255 bytes (checked when subscribing).
        buf.extend_from_slice(&(t.len() as u16).to_le_bytes());
        buf.extend_from_slice(t.as_bytes());
    }
    buf.extend_from_slice(s.selector.as_bytes());
    finish(buf, start);
}

/// Appends an UNSUBSCRIBE record.
pub(crate) fn put_unsubscribe(buf: &mut Vec<u8>, qid: u32) {
    put_record_header(buf, kind::UNSUBSCRIBE, 4);
    buf.extend_from_slice(&qid.to_le_bytes());
}

/// A message's state as compaction carries it forward (RELOCATE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Relocation<'a> {
    /// Delivery count.
    pub count: u32,
    /// Whether it was in flight.
    pub in_flight: bool,
    /// Due time of a delayed message (0 = none).
    pub not_before: u64,
    /// First failure time (0 = never failed).
    pub first_failure: u64,
    /// Last failure time.
    pub last_failure: u64,
    /// Last failure text.
    pub reason: &'a str,
}

/// Appends a RELOCATE record carrying `send` (the SEND body of the older copy) for queue `qid`
/// (written into the copy's header: a PUBLISH record's body names no queue); returns its length.
pub(crate) fn put_relocate(buf: &mut Vec<u8>, r: &Relocation<'_>, qid: u32, send: &[u8]) -> u32 {
    let start = buf.len();
    put_record_header(buf, kind::RELOCATE, 0);
    let state = (r.count & !IN_FLIGHT_BIT) | if r.in_flight { IN_FLIGHT_BIT } else { 0 };
    buf.extend_from_slice(&state.to_le_bytes());
    buf.extend_from_slice(&r.not_before.to_le_bytes());
    buf.extend_from_slice(&r.first_failure.to_le_bytes());
    buf.extend_from_slice(&r.last_failure.to_le_bytes());
    buf.extend_from_slice(&(r.reason.len() as u32).to_le_bytes());
    buf.extend_from_slice(r.reason.as_bytes());
    let at = buf.len();
    buf.extend_from_slice(send);
    if send.len() >= super::SEND_HEADER {
        buf[at + 8..at + 12].copy_from_slice(&qid.to_le_bytes());
    }
    finish(buf, start);
    (buf.len() - start) as u32
}

/// Appends a QUEUE record.
pub(crate) fn put_queue(buf: &mut Vec<u8>, qid: u32, name: &str) {
    put_record_header(buf, kind::QUEUE, 4 + name.len());
    buf.extend_from_slice(&qid.to_le_bytes());
    buf.extend_from_slice(name.as_bytes());
}

/// Appends a DELIVER record.
pub(crate) fn put_deliver(buf: &mut Vec<u8>, qid: u32, items: &[(u64, u32)]) {
    put_record_header(buf, kind::DELIVER, 8 + 12 * items.len());
    buf.extend_from_slice(&qid.to_le_bytes());
    buf.extend_from_slice(&(items.len() as u32).to_le_bytes());
    for (id, c) in items {
        buf.extend_from_slice(&id.to_le_bytes());
        buf.extend_from_slice(&c.to_le_bytes());
    }
}

fn put_id_list(buf: &mut Vec<u8>, k: u8, qid: u32, why: Option<u8>, ids: &[u64]) {
    let extra = usize::from(why.is_some());
    put_record_header(buf, k, 4 + extra + 4 + 8 * ids.len());
    buf.extend_from_slice(&qid.to_le_bytes());
    if let Some(w) = why {
        buf.push(w);
    }
    buf.extend_from_slice(&(ids.len() as u32).to_le_bytes());
    for id in ids {
        buf.extend_from_slice(&id.to_le_bytes());
    }
}

/// Appends an ACK record.
pub(crate) fn put_ack(buf: &mut Vec<u8>, qid: u32, ids: &[u64]) {
    put_id_list(buf, kind::ACK, qid, None, ids);
}

/// Appends a REMOVE record (`why` is one of [`why`](super::why)).
pub(crate) fn put_remove(buf: &mut Vec<u8>, qid: u32, why: u8, ids: &[u64]) {
    put_id_list(buf, kind::REMOVE, qid, Some(why), ids);
}

/// A failed delivery or a release (REQUEUE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requeue<'a> {
    /// Queue.
    pub qid: u32,
    /// Message.
    pub id: u64,
    /// Delivery count after it.
    pub count: u32,
    /// When it may be delivered again (0 = at once).
    pub not_before: u64,
    /// When it failed (0 = released, not failed).
    pub failed_at: u64,
    /// The failure text.
    pub reason: &'a str,
}

/// Appends a REQUEUE record.
pub(crate) fn put_requeue(buf: &mut Vec<u8>, r: &Requeue<'_>) {
    put_record_header(buf, kind::REQUEUE, 4 + 8 + 4 + 8 + 8 + r.reason.len());
    buf.extend_from_slice(&r.qid.to_le_bytes());
    buf.extend_from_slice(&r.id.to_le_bytes());
    buf.extend_from_slice(&r.count.to_le_bytes());
    buf.extend_from_slice(&r.not_before.to_le_bytes());
    buf.extend_from_slice(&r.failed_at.to_le_bytes());
    buf.extend_from_slice(r.reason.as_bytes());
}

/// Appends a DEDUP record.
pub(crate) fn put_dedup(buf: &mut Vec<u8>, qid: u32, id: u64, at: u64, key: &str) {
    put_record_header(buf, kind::DEDUP, 4 + 8 + 8 + key.len());
    buf.extend_from_slice(&qid.to_le_bytes());
    buf.extend_from_slice(&id.to_le_bytes());
    buf.extend_from_slice(&at.to_le_bytes());
    buf.extend_from_slice(key.as_bytes());
}

/// Appends a GROUP record.
pub(crate) fn put_group(buf: &mut Vec<u8>, qid: u32, parked: bool, key: &str) {
    put_record_header(buf, kind::GROUP, 4 + 1 + key.len());
    buf.extend_from_slice(&qid.to_le_bytes());
    buf.push(parked as u8);
    buf.extend_from_slice(key.as_bytes());
}

/// Starts a TXN record: the records appended until [`txn_end`] apply all or nothing.
pub(crate) fn txn_begin(buf: &mut Vec<u8>) -> usize {
    let start = buf.len();
    put_record_header(buf, kind::TXN, 0);
    start
}

/// Closes the TXN record begun at `start` (dropping it if it stayed empty).
pub(crate) fn txn_end(buf: &mut Vec<u8>, start: usize) {
    if buf.len() == start + RECORD_HEADER {
        buf.truncate(start);
    } else {
        finish(buf, start);
    }
}
