//! # The on-disk format
//!
//! A store directory holds:
//!
//! | file | what |
//! |---|---|
//! | `LOCK` | the exclusive lock (`flock`), holding the owner's pid as text |
//! | `<16 hex digits>.seg` | journal segments, numbered from 1, oldest first |
//! | `quarantine-<seg>-<offset>.bin` | byte ranges cut out by a repair (open with `repair`) |
//!
//! Queue names never become file names. Files are created 0600, the directory 0700.
//! All integers are little-endian.
//!
//! ## Segment
//! A segment is preallocated (`fallocate`) to its full size when created, so an append followed
//! by `fdatasync` does not have to update the file size. It starts with a 64-byte header:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `MQLITEJ\0` |
//! | 8 | 4 | format version (1) |
//! | 12 | 4 | header length (64) |
//! | 16 | 8 | segment number |
//! | 24 | 8 | creation time, ms since the epoch |
//! | 32 | 28 | zero |
//! | 60 | 4 | CRC32C of bytes 0..60 |
//!
//! The header is written and fdatasync'd, and the directory fsync'd, before any frame is written.
//!
//! ## Frame
//! Frames follow the header back to back. One frame is one `write(2)` of group commit: every
//! record pending at that moment. Bytes after the last frame are zero (preallocated space).
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `MQF1` |
//! | 4 | 4 | payload length `n` (≤ the rest of the segment) |
//! | 8 | 8 | sequence number: +1 per frame across the whole store |
//! | 16 | 8 | synced: every frame with a sequence number ≤ this was durable (fdatasync'd) before this frame was written |
//! | 24 | 4 | record count |
//! | 28 | 4 | CRC32C of bytes 0..28 followed by the payload |
//! | 32 | n | payload: `count` records |
//!
//! ### Telling a torn tail from corruption
//! A frame that fails its checks (magic, length, CRC, sequence) at sequence `s` is a **torn tail**
//! if no valid frame after it says `synced ≥ s`: it was never acknowledged as durable, so it and
//! everything after it are cut off (zeroed, so no stale frame can reappear behind new ones).
//! Otherwise a later frame proves the bad one had been made durable: that is **corruption**,
//! reported as `Corrupt { file, offset }`, never skipped, unless the store is opened with
//! `repair`, which copies the bad range to a quarantine file, overwrites it with a padding record
//! and reports what was lost.
//!
//! ## Record
//! `len: u32` (bytes after this field) · `kind: u8` · body. Bodies, by kind:
//!
//! | kind | name | body |
//! |---|---|---|
//! | 1 | QUEUE | `qid u32` · name (UTF-8, rest of the record) |
//! | 2 | SEND | [send header](#send-header) · meta · message body |
//! | 3 | DELIVER | `qid u32` · `n u32` · n × (`id u64`, `delivery_count u32`): counts persisted before hand-over |
//! | 4 | ACK | `qid u32` · `n u32` · n × `id u64` |
//! | 5 | REQUEUE | `qid u32` · `id u64` · `delivery_count u32` · `not_before u64` · `failed_at u64` (0: a release, not a failure) · reason (UTF-8, rest) |
//! | 6 | REMOVE | `qid u32` · `why u8` · `n u32` · n × `id u64` (purge, expiry or overflow without a dead-letter queue) |
//! | 7 | DEAD | `from_qid u32` · `from_id u64` · a SEND body into the dead-letter queue: one record, so the move is atomic |
//! | 8 | RELOCATE | `delivery_count u32` · `not_before u64` · `first_failure u64` · `last_failure u64` · `reason_len u32` · reason · a SEND body (compaction's copy, replacing the older one) |
//! | 9 | DEDUP | `qid u32` · `id u64` · `at u64` · key (UTF-8, rest): a dedup entry carried forward by compaction |
//! | 10 | PAD | ignored (written by repair over a damaged range) |
//! | 11 | TXN | whole records back to back: a transaction commit (or a delivery that schedules a repeat), applied all or nothing |
//! | 12 | GROUP | `qid u32` · `parked u8` · group key (UTF-8, rest): a message group parked or unparked |
//!
//! ### Send header
//! 48 bytes: `id u64` · `qid u32` · `priority u8` · `flags u8` · `0 u16` · `delivery_count u32` ·
//! `timestamp u64` · `expires_at u64` (0 = never) · `deliver_at u64` (0 = now) · `meta_len u32`;
//! then `meta_len` bytes of bincode (standard config, size-limited before decoding): properties,
//! correlation id, group, dedup key, dead-letter info, repeat (period ms, repeats left); then the message body (rest of the record).

use crate::error::{Error, Result};

/// Segment header magic.
pub const SEGMENT_MAGIC: &[u8; 8] = b"MQLITEJ\0";
/// Format version.
pub const VERSION: u32 = 1;
/// Segment header length.
pub const SEGMENT_HEADER: usize = 64;
/// Frame magic.
pub const FRAME_MAGIC: u32 = u32::from_le_bytes(*b"MQF1");
/// Frame header length.
pub const FRAME_HEADER: usize = 32;
/// Record header length (`len` + `kind`).
pub const RECORD_HEADER: usize = 5;
/// Send header length.
pub const SEND_HEADER: usize = 48;
/// The largest meta section decoded (checked before decoding allocates anything).
pub const MAX_META: usize = 16 << 20;

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
    pub const PAD: u8 = 10;
    /// Records applied all or nothing.
    pub const TXN: u8 = 11;
    /// A group parked or unparked.
    pub const GROUP: u8 = 12;
}

/// Encodes a segment header.
pub fn segment_header(number: u64, created_ms: u64) -> [u8; SEGMENT_HEADER] {
    let mut h = [0u8; SEGMENT_HEADER];
    h[0..8].copy_from_slice(SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(SEGMENT_HEADER as u32).to_le_bytes());
    h[16..24].copy_from_slice(&number.to_le_bytes());
    h[24..32].copy_from_slice(&created_ms.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..60]);
    h[60..64].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Checks a segment header; returns its segment number.
pub fn check_segment_header(h: &[u8], file: &str) -> Result<u64> {
    if h.len() < SEGMENT_HEADER {
        return Err(Error::corrupt(file, 0, "segment header is short"));
    }
    if &h[0..8] != SEGMENT_MAGIC {
        return Err(Error::corrupt(file, 0, "bad segment magic"));
    }
    if crc32c::crc32c(&h[0..60]) != u32_at(h, 60) {
        return Err(Error::corrupt(file, 60, "segment header checksum mismatch"));
    }
    let version = u32_at(h, 8);
    if version != VERSION {
        return Err(Error::corrupt(
            file,
            8,
            &format!("unsupported format version {version}"),
        ));
    }
    Ok(u64_at(h, 16))
}

/// The parsed header of a frame that passed its checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload length.
    pub len: usize,
    /// Sequence number.
    pub seq: u64,
    /// Highest sequence number durable when this frame was written.
    pub synced: u64,
    /// Record count.
    pub count: u32,
}

/// Writes a frame header for `payload` into `out[0..FRAME_HEADER]`.
pub fn put_frame_header(out: &mut [u8], seq: u64, synced: u64, count: u32, payload: &[u8]) {
    out[0..4].copy_from_slice(&FRAME_MAGIC.to_le_bytes());
    out[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    out[8..16].copy_from_slice(&seq.to_le_bytes());
    out[16..24].copy_from_slice(&synced.to_le_bytes());
    out[24..28].copy_from_slice(&count.to_le_bytes());
    let mut crc = crc32c::crc32c(&out[0..28]);
    crc = crc32c::crc32c_append(crc, payload);
    out[28..32].copy_from_slice(&crc.to_le_bytes());
}

/// Checks the frame starting at `buf[0]`: magic, length within `buf`, CRC. `None` if it fails.
pub fn check_frame(buf: &[u8]) -> Option<FrameHeader> {
    if buf.len() < FRAME_HEADER || u32_at(buf, 0) != FRAME_MAGIC {
        return None;
    }
    let len = u32_at(buf, 4) as usize;
    if len > buf.len() - FRAME_HEADER {
        return None;
    }
    let mut crc = crc32c::crc32c(&buf[0..28]);
    crc = crc32c::crc32c_append(crc, &buf[FRAME_HEADER..FRAME_HEADER + len]);
    if crc != u32_at(buf, 28) {
        return None;
    }
    Some(FrameHeader {
        len,
        seq: u64_at(buf, 8),
        synced: u64_at(buf, 16),
        count: u32_at(buf, 24),
    })
}

/// Little-endian u32 at `off` (caller checked bounds).
pub fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Little-endian u64 at `off` (caller checked bounds).
pub fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

/// Iterates the records of a frame payload: yields `(offset in payload, kind, body)`.
pub fn records(payload: &[u8]) -> RecordIter<'_> {
    RecordIter { payload, pos: 0 }
}

/// See [`records`].
pub struct RecordIter<'a> {
    payload: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = std::result::Result<(usize, u8, &'a [u8]), usize>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.payload.len() {
            return None;
        }
        let at = self.pos;
        let rest = &self.payload[at..];
        if rest.len() < RECORD_HEADER {
            self.pos = self.payload.len();
            return Some(Err(at));
        }
        let len = u32_at(rest, 0) as usize;
        if len < 1 || len > rest.len() - 4 {
            self.pos = self.payload.len();
            return Some(Err(at));
        }
        self.pos = at + 4 + len;
        Some(Ok((at, rest[4], &rest[RECORD_HEADER..4 + len])))
    }
}

/// Appends a record header for a record of `kind` whose body will be `body_len` bytes.
pub fn put_record_header(buf: &mut Vec<u8>, kind: u8, body_len: usize) {
    buf.extend_from_slice(&((body_len + 1) as u32).to_le_bytes());
    buf.push(kind);
}

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
    /// Flags (reserved).
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

/// Encodes `value` with bincode, appending to `buf`; returns the number of bytes written.
pub fn put_bincode<T: serde::Serialize>(buf: &mut Vec<u8>, value: &T) -> Result<usize> {
    let before = buf.len();
    bincode::serde::encode_into_std_write(value, buf, bincode_config())
        .map_err(|e| Error::invalid(format!("cannot encode message headers: {e}")))?;
    Ok(buf.len() - before)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_roundtrip_and_every_flip_detected() {
        let payload = b"hello records".to_vec();
        let mut buf = vec![0u8; FRAME_HEADER];
        put_frame_header(&mut buf, 7, 6, 1, &payload);
        buf.extend_from_slice(&payload);
        let h = check_frame(&buf).expect("valid");
        assert_eq!((h.len, h.seq, h.synced, h.count), (payload.len(), 7, 6, 1));
        for bit in 0..buf.len() * 8 {
            let mut b = buf.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(check_frame(&b).is_none(), "flip of bit {bit} not detected");
        }
    }

    #[test]
    fn segment_header_roundtrip() {
        let h = segment_header(42, 1000);
        assert_eq!(check_segment_header(&h, "x").unwrap(), 42);
        let mut bad = h;
        bad[20] ^= 4;
        assert!(check_segment_header(&bad, "x").is_err());
    }

    #[test]
    fn send_header_roundtrip() {
        let h = SendHeader {
            id: 9,
            qid: 3,
            priority: 7,
            flags: 0,
            delivery_count: 2,
            timestamp: 11,
            expires_at: 12,
            deliver_at: 13,
            meta_len: 14,
        };
        let mut b = Vec::new();
        h.put(&mut b);
        assert_eq!(b.len(), SEND_HEADER);
        assert_eq!(SendHeader::get(&mut Cursor::new(&b)), Some(h));
    }
}
