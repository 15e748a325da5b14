//! # The on-disk format
//!
//! A store directory holds:
//!
//! | file | what |
//! |---|---|
//! | `LOCK` | the exclusive lock (a POSIX record lock, `fcntl(F_SETLK)`: never inherited by a `fork()` child), holding the owner's pid as text |
//! | `STORE_ID` | the store's identity: 32 random hex digits and a newline, written (through `STORE_ID.tmp`, fsync'd, renamed) when the store is created, replaced when a store is created again in the directory (no segment there), kept otherwise (`Store::id`) |
//! | `<16 hex digits>.seg` | journal segments, numbered from 1, oldest first |
//! | `CHECKPOINT` | the index checkpoint: the state a replay of the journal rebuilds, written (through `CHECKPOINT.tmp`, fdatasync'd, renamed, directory fsync'd) at a clean close, with a CRC32C of every segment it covers; the next open uses it instead of replaying if it matches the journal exactly, and removes it before writing anything. Its own format (version 2) is specified in `src/engine/checkpoint.rs` |
//! | `quarantine-<seg>-<offset>[-<n>].bin` | byte ranges cut out by a repair (open with `repair`); a second repair of the same range adds `-2`, `-3`… and never overwrites |
//!
//! Queue names never become file names. Files are created 0600, the directory 0700.
//! All integers are little-endian.
//!
//! ## Segment
//! A segment is preallocated (`fallocate`) ahead of the tail in 4 MiB steps (`GROW_BYTES` in
//! `src/journal/mod.rs`), up to `segment_bytes`, so an append followed by `fdatasync` rarely has to update
//! the file size. It starts with a 64-byte header:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `MQLITEJ\0` |
//! | 8 | 4 | format version (3; version-1 and version-2 segments are read too) |
//! | 12 | 4 | header length (64) |
//! | 16 | 8 | segment number |
//! | 24 | 8 | creation time, ms since the epoch |
//! | 32 | 8 | `oldest`: the oldest segment the journal held when this one was created (version 3; 0 = unknown, as in a header a repair rewrote) |
//! | 40 | 16 | the store's identity (`STORE_ID`'s 32 hex digits as 16 bytes); zero in a segment written before stores were named, or by a journal that did not know it yet (a new store's first segment). A repair moves a segment naming another store aside (review r5 #20) |
//! | 56 | 4 | zero |
//! | 60 | 4 | CRC32C of bytes 0..60 |
//!
//! The header is written and fdatasync'd, and the directory fsync'd, before any frame is written.
//!
//! ## Telling a missing segment from a removed one (version 3)
//! Segment numbers are consecutive: compaction removes only the oldest segments and a torn
//! tail only the newest, so a gap in the numbers is a missing file. Two journal marks, each a
//! frame of one record, cover the ends:
//!
//! - **SEAL** (kind 16, body `next u64`): when the journal rolls on, the new segment is
//!   created (header durable, directory fsync'd) and then a SEAL naming it is written and
//!   fdatasync'd as the old segment's last frame; every segment keeps room for it. A last
//!   segment that ends with a SEAL is missing its successor. A crash between the two steps
//!   leaves an unsealed segment followed by an empty one, which recovery removes.
//! - **TRIM** (kind 17, body `first u64`): made durable before compaction removes segments
//!   below `first`. A journal that starts after the highest TRIM and after every header's
//!   `oldest` is missing its first segments.
//!
//! Without `repair` a missing segment fails the open with `Corrupt` naming the missing file;
//! a segment followed by one whose first frame is ahead of the sequence is named as cut short
//! (its last frames are missing), not the healthy frame after it. A repair writes an empty
//! placeholder segment for each missing file and a padding frame at the end of a segment cut
//! short; a padding frame may skip sequence numbers (the repair declared the frames between
//! lost), so the next plain open reads the journal as whole. A file named like a segment whose
//! header is damaged gets a new header (the old bytes saved to `quarantine-<seg>-0.bin`); one
//! in which nothing checks out is renamed to `quarantine-<name>.bin`.
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
//! and reports what was lost. The `CHECKPOINT` of the last clean close, when it is whole, is the
//! same proof for every frame numbered below its `next_seq` (it is written only once the journal
//! is fdatasync'd): a bad frame it covers is corruption, and a journal ending before it is a
//! loss (`missing`), never a torn tail (the rule in full: `src/journal/recovery.rs`).
//!
//! ## Record
//! A frame's payload is whole records back to back: `len: u32` (bytes after this field) ·
//! `kind: u8` · body. The journal splits a batch into frames only between records, and knows
//! no kinds but `PAD` (10), which its repair writes over a damaged range, and its marks SEAL (16)
//! and TRIM (17), which it never hands to the engine. The kinds and their
//! bodies are the engine's record schema: [`crate::record`].
//!
//! (The code of this layout is in `src/journal/frame.rs`; its items are re-exported here.)

pub use super::frame::*;
