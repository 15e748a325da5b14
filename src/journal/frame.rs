//! Segments, frames and the record envelope: the journal's byte layout, as
//! [`format`](super::format) specifies it (these items are public there).

use crate::error::{Error, Result};

/// Segment header magic.
pub const SEGMENT_MAGIC: &[u8; 8] = b"MQLITEJ\0";
/// Format version written into new segments. Version 2 added the topic records (PUBLISH,
/// SUBSCRIBE, UNSUBSCRIBE) and the topic in a message's meta; version 3 added the segment
/// header's `oldest` field and the journal's SEAL and TRIM marks, which let recovery tell a
/// segment file that is missing from one compaction removed. Older segments are read as they
/// are (their records are a subset), while an older mqlite refuses a newer segment by name.
pub const VERSION: u32 = 3;
/// The oldest format version this mqlite reads.
pub const OLDEST_READ_VERSION: u32 = 1;
/// Segment header length.
pub const SEGMENT_HEADER: usize = 64;
/// Frame magic.
pub const FRAME_MAGIC: u32 = u32::from_le_bytes(*b"MQF1");
/// Frame header length.
pub const FRAME_HEADER: usize = 32;
/// Record header length (`len` + `kind`).
pub const RECORD_HEADER: usize = 5;
/// A record kind the journal knows: padding written by repair over a damaged range (or over
/// frames it found missing). A frame holding only padding may skip sequence numbers: the
/// repair that wrote it declared the frames in between lost.
pub const PAD_KIND: u8 = 10;
/// A journal mark (format version 3): `next u64`. The last frame of a segment, written when the
/// next segment had been created: a last segment that ends with it means its successor is
/// missing.
pub const SEAL_KIND: u8 = 16;
/// A journal mark (format version 3): `first u64`. Written (and made durable) before compaction
/// removes segments below `first`: segments below the highest TRIM were removed on purpose.
pub const TRIM_KIND: u8 = 17;
/// Bytes of a frame holding one mark (SEAL or TRIM). Every segment keeps room for one at its
/// end, so a full segment can always be sealed.
pub const MARK_FRAME: usize = FRAME_HEADER + RECORD_HEADER + 8;

/// The payload of a frame holding one mark of `kind` with `value`.
pub fn mark_payload(kind: u8, value: u64) -> [u8; RECORD_HEADER + 8] {
    let mut p = [0u8; RECORD_HEADER + 8];
    p[0..4].copy_from_slice(&9u32.to_le_bytes());
    p[4] = kind;
    p[5..13].copy_from_slice(&value.to_le_bytes());
    p
}

/// The mark a frame payload of `count` records holds, if it is one: `(kind, value)`.
pub fn mark_of(payload: &[u8], count: u32) -> Option<(u8, u64)> {
    if count != 1 || payload.len() != RECORD_HEADER + 8 || u32_at(payload, 0) != 9 {
        return None;
    }
    matches!(payload[4], SEAL_KIND | TRIM_KIND).then(|| (payload[4], u64_at(payload, 5)))
}

/// Whether a frame payload of `count` records is one padding record (written by a repair).
pub fn is_pad(payload: &[u8], count: u32) -> bool {
    count == 1
        && payload.len() >= RECORD_HEADER
        && payload[4] == PAD_KIND
        && u32_at(payload, 0) as usize == payload.len() - 4
}

/// Encodes a segment header; `oldest` is the oldest segment the journal held when this one was
/// created (0: unknown, as in a header rewritten by repair). It names no store (see
/// [`segment_header_of`]).
pub fn segment_header(number: u64, created_ms: u64, oldest: u64) -> [u8; SEGMENT_HEADER] {
    segment_header_of(number, created_ms, oldest, None)
}

/// [`segment_header`] naming the store the segment belongs to: its identity (`STORE_ID`, 32 hex
/// digits) as 16 bytes at offset 40, so that a repair can tell a segment of another store put
/// into the directory (review r5 #20). `None`, or an identity that is not 32 hex digits: the
/// bytes stay zero, as in headers written before (which every reader since version 1 ignores:
/// the format version is unchanged).
pub fn segment_header_of(
    number: u64,
    created_ms: u64,
    oldest: u64,
    store: Option<[u8; 16]>,
) -> [u8; SEGMENT_HEADER] {
    let mut h = [0u8; SEGMENT_HEADER];
    if let Some(id) = store {
        h[40..56].copy_from_slice(&id);
    }
    h[0..8].copy_from_slice(SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(SEGMENT_HEADER as u32).to_le_bytes());
    h[16..24].copy_from_slice(&number.to_le_bytes());
    h[24..32].copy_from_slice(&created_ms.to_le_bytes());
    h[32..40].copy_from_slice(&oldest.to_le_bytes());
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
    if !(OLDEST_READ_VERSION..=VERSION).contains(&version) {
        return Err(Error::corrupt(
            file,
            8,
            &format!(
                "the store is in format version {version}; this mqlite reads format version \
                 {OLDEST_READ_VERSION} up to version {VERSION} (open it with a matching release)"
            ),
        ));
    }
    Ok(u64_at(h, 16))
}

/// The store a header that passed [`check_segment_header`] names (`None`: it names none, as
/// every header written before stores were named does).
pub fn header_store(h: &[u8]) -> Option<[u8; 16]> {
    let id: [u8; 16] = h.get(40..56)?.try_into().ok()?;
    (id != [0u8; 16]).then_some(id)
}

/// A store identity (`STORE_ID`: 32 hex digits) as the 16 bytes a segment header holds.
pub fn store_id_bytes(id: &str) -> Option<[u8; 16]> {
    let id = id.trim();
    if id.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(id.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    (out != [0u8; 16]).then_some(out)
}

/// The 16 bytes of a store identity as its 32 hex digits.
pub fn store_id_hex(id: &[u8; 16]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `oldest` field of a header that passed [`check_segment_header`] (0 before version 3).
pub fn header_oldest(h: &[u8]) -> u64 {
    if u32_at(h, 8) >= 3 {
        u64_at(h, 32)
    } else {
        0
    }
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
        let h = segment_header(42, 1000, 40);
        assert_eq!(check_segment_header(&h, "x").unwrap(), 42);
        assert_eq!(header_oldest(&h), 40);
        let mut bad = h;
        bad[20] ^= 4;
        assert!(check_segment_header(&bad, "x").is_err());
    }
}
