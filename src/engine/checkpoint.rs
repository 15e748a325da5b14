//! The index checkpoint: the state a replay of the journal would rebuild, written to the store
//! directory's `CHECKPOINT` file at a clean close, so that the next open reads it (and checks
//! the segments it covers against their CRC32C) instead of decoding every record.
//!
//! ## When it is used
//! An open loads it only if it is present, whole (its own CRC32C), of this format version, and
//! the directory holds exactly the segments it covers, each of the recorded size and CRC32C,
//! with nothing written after the recorded end of the tail. Anything else (stale, torn, another
//! version, a segment changed or missing, a decode error, an open with `repair`) and the open
//! ignores it, says why in [`RecoveryReport::checkpoint_ignored`](crate::RecoveryReport), and
//! replays the whole journal as without one.
//!
//! ## Why a stale checkpoint can never be loaded
//! Two guards, each sufficient. (1) Validation: it is accepted only when the journal's bytes
//! are exactly those it summarised (every segment's CRC32C) and nothing follows its end, so a
//! journal that went on after it (a later open that crashed, compaction, a repair) fails the
//! check. (2) Deletion: an owner removes it as soon as its recovery succeeded (from it or by
//! a replay), before the store writes anything, so a checkpoint on disk only ever describes a journal
//! nobody has written to since. (1) alone would suffice; (2) spares the next open a CRC scan
//! that is bound to fail, and keeps what the directory holds obvious.
//!
//! ## Layout (version 2)
//! All integers little-endian.
//!
//! | part | what |
//! |---|---|
//! | magic | 8 bytes `MQLCKPT\0` |
//! | version | u32: 2 |
//! | head | bincode 2 (standard configuration) of [`Head`]: the journal position (every segment with its number, covered length, file size and CRC32C; the next frame's sequence number), the next message id, and per queue its declaration, declaration segment, parked groups, dedup keys, group keys, failure info and message counts |
//! | entries | per queue in the head's order, its messages in id order, 49 bytes each: id u64, expires_at u64, due u64 (0: ready), seg u32, off u32, len u32, count u32, group u32 (index + 1 into the queue's group keys, 0: none), priority u8, flags u8, refs u16, in flight u8 |
//! | CRC | u32: CRC32C of every byte before it |
//!
//! It is written to `CHECKPOINT.tmp`, fdatasync'd, renamed to `CHECKPOINT` and the directory
//! fsync'd, so a crash leaves the old file, the new one, or (the rename not durable) none.

use std::io::{BufReader, Read, Write};
use std::path::Path;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::queue::{DedupEntry, Entry, FailInfo, MEM_SEG};
use super::topic::SubRecord;
use super::{Rebuild, State};
use crate::error::{Error, ErrorKind, Result};
use crate::io::{join, Mapped, VFile, Vfs};
use crate::journal::{Journal, Position};
use crate::options::StoreOptions;

/// The checkpoint's file name in the store directory.
pub(crate) const FILE: &str = "CHECKPOINT";
/// Its temporary name while it is written.
pub(crate) const TMP: &str = "CHECKPOINT.tmp";
const MAGIC: [u8; 8] = *b"MQLCKPT\0";
/// The format version of the checkpoint file (its own, apart from the journal's).
pub const VERSION: u32 = 2;
/// Bytes per message entry.
const ENTRY_BYTES: usize = 49;
/// Bytes written or read at a time.
const IO_CHUNK: usize = 1 << 20;
/// The largest head accepted (a damaged length must not allocate the machine away).
const HEAD_LIMIT: usize = 1 << 30;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<HEAD_LIMIT>()
}

/// Everything but the messages.
#[derive(Serialize, Deserialize)]
struct Head {
    position: Position,
    next_id: u64,
    queues: Vec<QueueImage>,
}

/// One queue, as a replay would declare it.
#[derive(Serialize, Deserialize)]
struct QueueImage {
    qid: u32,
    /// Its declaration record: `Err(name)` a QUEUE record, `Ok` a SUBSCRIBE record.
    decl: std::result::Result<SubRecord, String>,
    decl_seg: u32,
    parked: Vec<String>,
    /// (key, message id, time seen, segment of its record).
    dedup: Vec<(String, u64, u64, u32)>,
    /// Group keys its entries name (entry `group` is an index + 1 into this).
    groups: Vec<String>,
    /// (message id, first failure, last failure, reason).
    fails: Vec<(u64, u64, u64, String)>,
    /// Its entries.
    entries: u64,
    /// Entries that will be ready (not delayed, not in flight), by priority: the ready lists
    /// are sized once (no doubling while loading: the memory target of W8).
    ready: [u64; 10],
}

/// What the checkpoint says of one message.
struct Item {
    e: Entry,
    due: u64,
    in_flight: bool,
}

fn put_item(out: &mut Vec<u8>, it: &Item) {
    let e = &it.e;
    out.extend_from_slice(&e.id.to_le_bytes());
    out.extend_from_slice(&e.expires_at.to_le_bytes());
    out.extend_from_slice(&it.due.to_le_bytes());
    out.extend_from_slice(&e.seg.to_le_bytes());
    out.extend_from_slice(&e.off.to_le_bytes());
    out.extend_from_slice(&e.len.to_le_bytes());
    out.extend_from_slice(&e.count.to_le_bytes());
    out.extend_from_slice(&e.group.to_le_bytes());
    out.push(e.priority);
    out.push(e.flags);
    out.extend_from_slice(&e.refs.to_le_bytes());
    out.push(it.in_flight as u8);
}

fn get_item(b: &[u8; ENTRY_BYTES]) -> Item {
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or_default());
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or_default());
    Item {
        e: Entry {
            id: u64_at(0),
            expires_at: u64_at(8),
            seg: u32_at(24),
            off: u32_at(28),
            len: u32_at(32),
            count: u32_at(36),
            group: u32_at(40),
            priority: b[44],
            flags: b[45],
            refs: u16::from_le_bytes([b[46], b[47]]),
        },
        due: u64_at(16),
        in_flight: b[48] != 0,
    }
}

impl State {
    /// The head and every queue's messages as the checkpoint keeps them, or `None` when the
    /// state is not one a replay would rebuild (a declaration not yet durable, messages on
    /// their way to a dead-letter queue, a prefetch under way): no checkpoint is written then.
    fn checkpoint_image(&self, position: Position) -> Option<(Head, Vec<Vec<Item>>)> {
        if self.error.is_some()
            || !self.moves.is_empty()
            || self.moves_reading > 0
            || !self.pending.is_empty()
        {
            return None;
        }
        let mut queues = Vec::with_capacity(self.queues.len());
        let mut items = Vec::with_capacity(self.queues.len());
        for q in &self.queues {
            if q.decl_seg == MEM_SEG || q.prefetching > 0 {
                return None;
            }
            let mut groups: Vec<String> = Vec::new();
            let mut group_of: FxHashMap<u32, u32> = FxHashMap::default();
            let mut v: Vec<Item> = Vec::with_capacity(q.count as usize);
            let mut fails = Vec::new();
            let mut ready = [0u64; 10];
            q.for_each(|e, in_flight| {
                if e.seg == MEM_SEG {
                    return; // a memory queue's message: no replay finds it
                }
                let mut e = *e;
                if e.group != 0 {
                    let local = *group_of.entry(e.group).or_insert_with(|| {
                        groups.push(q.group_keys[e.group as usize - 1].clone());
                        groups.len() as u32
                    });
                    e.group = local;
                }
                // Only what the journal says: a replay sets the in-memory flag itself.
                e.flags &= super::queue::ENTRY_REPEATS;
                let due = if in_flight {
                    0
                } else {
                    q.delayed_due.get(&e.id).copied().unwrap_or(0)
                };
                if let Some(f) = q.fail.get(&e.id) {
                    fails.push((e.id, f.first, f.last, f.reason.clone()));
                }
                v.push(Item { e, due, in_flight });
            });
            v.sort_unstable_by_key(|it| it.e.id);
            let now_hint = self.clock.now_ms();
            for it in &v {
                if !it.in_flight && it.due <= now_hint {
                    ready[it.e.priority as usize % 10] += 1;
                }
            }
            let mut dedup: Vec<(String, u64, u64, u32)> = q
                .dedup
                .iter()
                .map(|(k, d)| (k.clone(), d.id, d.at, d.seg))
                .collect();
            dedup.sort_unstable_by(|a, b| (a.2, &a.0).cmp(&(b.2, &b.0)));
            let parked = q
                .group_state
                .iter()
                .zip(&q.group_keys)
                .filter(|(g, _)| g.parked)
                .map(|(_, k)| k.clone())
                .collect();
            queues.push(QueueImage {
                qid: q.qid,
                decl: self.declaration(q.qid),
                decl_seg: q.decl_seg,
                parked,
                dedup,
                groups,
                fails,
                entries: v.len() as u64,
                ready,
            });
            items.push(v);
        }
        let head = Head {
            position,
            next_id: self.next_id,
            queues,
        };
        Some((head, items))
    }
}

/// Writes the checkpoint of `st` at the journal's current position (nothing may be written
/// meanwhile: the closing store's commit thread calls it holding `io` and the state lock).
/// Returns whether one was written (see [`State::checkpoint_image`]).
pub(crate) fn write(journal: &Journal, st: &State) -> Result<bool> {
    // Written by name: never into a directory that is no longer the store's.
    journal.check_home()?;
    // Recovery takes a checkpoint as proof that every frame below its `next_seq` had been
    // durable (`src/journal/recovery.rs`): never one of a journal with frames not yet synced.
    if journal.dirty() {
        return Ok(false);
    }
    let position = journal.position()?;
    let Some((head, items)) = st.checkpoint_image(position) else {
        return Ok(false);
    };
    let vfs = journal.vfs();
    let dir = journal.dir();
    let tmp = join(dir, TMP);
    // One a failed write left (the file is created exclusively, never through a link).
    let _ = vfs.remove(&tmp);
    let f = vfs
        .create(&tmp)
        .map_err(|e| Error::io(format!("creating {TMP}"), &e))?;
    let mut w = FileWrite {
        f: f.clone(),
        at: 0,
        buf: Vec::with_capacity(IO_CHUNK + ENTRY_BYTES),
        crc: 0,
    };
    w.buf.extend_from_slice(&MAGIC);
    w.buf.extend_from_slice(&VERSION.to_le_bytes());
    bincode::serde::encode_into_std_write(&head, &mut w, config())
        .map_err(|e| Error::new(ErrorKind::Internal, format!("encoding {TMP}: {e}")))?;
    for v in &items {
        for it in v {
            put_item(&mut w.buf, it);
            if w.buf.len() >= IO_CHUNK {
                w.write_out()
                    .map_err(|e| Error::io(format!("writing {TMP}"), &e))?;
            }
        }
    }
    w.write_out()
        .map_err(|e| Error::io(format!("writing {TMP}"), &e))?;
    f.write_at(&w.crc.to_le_bytes(), w.at)
        .map_err(|e| Error::io(format!("writing {TMP}"), &e))?;
    f.sync_data()
        .map_err(|e| Error::io(format!("fdatasync of {TMP}"), &e))?;
    vfs.rename(&tmp, &join(dir, FILE))
        .map_err(|e| Error::io(format!("renaming {TMP} to {FILE}"), &e))?;
    vfs.sync_dir(dir)
        .map_err(|e| Error::io("fsync of the store directory", &e))?;
    Ok(true)
}

/// `items` more live items of `bytes` in segment `seg` (as `items` calls of `State::live_inc`).
fn live_add(st: &mut State, seg: u64, items: u64, bytes: u64) {
    let l = st.space.seg_live.entry(seg).or_insert((0, 0));
    l.0 += items;
    l.1 += bytes;
}

/// Removes the checkpoint (and a temporary one a crash left). Failures are ignored: a
/// checkpoint left behind is still checked against the journal before use (see the module
/// docs), so removing it is not what keeps a stale one from being loaded.
pub(crate) fn remove(vfs: &Arc<dyn Vfs>, dir: &Path) {
    let names = vfs.list(dir).unwrap_or_default();
    let mut removed = false;
    for name in [FILE, TMP] {
        if names.iter().any(|n| n == name) {
            removed |= vfs.remove(&join(dir, name)).is_ok();
        }
    }
    if removed {
        let _ = vfs.sync_dir(dir);
    }
}

/// Buffered appends to a file, with the CRC32C of everything written.
struct FileWrite {
    f: Arc<dyn VFile>,
    at: u64,
    buf: Vec<u8>,
    crc: u32,
}

impl FileWrite {
    fn write_out(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.crc = crc32c::crc32c_append(self.crc, &self.buf);
        self.f.write_at(&self.buf, self.at)?;
        self.at += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }
}

impl Write for FileWrite {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= IO_CHUNK {
            self.write_out()?;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.write_out()
    }
}

/// Sequential reads of `[at, end)` of a file, with the CRC32C of everything read.
struct FileRead {
    f: Arc<dyn VFile>,
    at: u64,
    end: u64,
    crc: u32,
}

impl Read for FileRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (self.end - self.at).min(buf.len() as u64) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.f.read_at(&mut buf[..n], self.at)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        self.at += n as u64;
        Ok(n)
    }
}

/// A checkpoint whose head was read: its journal position is to be checked, then its
/// messages streamed into the state.
pub(crate) struct Checkpoint {
    head: Head,
    entries: Entries,
    /// The CRC32C its last 4 bytes say the rest has.
    crc: u32,
}

/// Entries handed out per [`Entries::next`] call: the block is decoded while it is in the
/// core's cache, right after the CRC pass that brought it in.
const BLOCK_ENTRIES: usize = 4096;
/// Bytes of entries mapped at a time (a whole number of entries, about 8 MiB): the map is
/// resident while it lives, and the whole file mapped at once would add its size to the peak
/// memory of an open (target W8).
const MAP_BYTES: u64 = ((8 << 20) / ENTRY_BYTES * ENTRY_BYTES) as u64;

/// The entries part of a checkpoint, handed out block by block, with the CRC32C of every byte
/// taken from the file: from read-only maps of the file where it offers them (no copy), else
/// read into one buffer (no allocation or copy per entry).
struct Entries {
    f: Arc<dyn VFile>,
    /// The next file offset to map or read, and where the entries end.
    at: u64,
    end: u64,
    crc: u32,
    /// `buf[lo..hi]`: bytes read and not yet handed out (first, what the head's reader read
    /// ahead).
    buf: Vec<u8>,
    lo: usize,
    hi: usize,
    /// The window mapped now, and how much of it was handed out.
    map: Option<Mapped>,
    mlo: usize,
    /// Whether the file may offer a map (false once it did not).
    mapping: bool,
}

impl Entries {
    /// The bytes of the next `n` entries or fewer (at most [`BLOCK_ENTRIES`], at least one);
    /// an error if the file ends first.
    fn next(&mut self, n: u64) -> std::io::Result<&[u8]> {
        let want = n.min(BLOCK_ENTRIES as u64) as usize * ENTRY_BYTES;
        if self.lo == self.hi {
            // At an entry boundary (the buffer is only ever filled up to one): a window of
            // whole entries may be mapped.
            let spent = self.map.as_ref().is_none_or(|m| self.mlo == m.len());
            if spent && self.mapping && self.at < self.end {
                let k = MAP_BYTES.min(self.end - self.at);
                self.map = self.f.map(self.at, k)?;
                self.mlo = 0;
                match self.map {
                    Some(_) => self.at += k,
                    None => self.mapping = false,
                }
            }
            if let Some(m) = &self.map {
                if self.mlo < m.len() {
                    let k = want.min(m.len() - self.mlo);
                    let out = &m[self.mlo..self.mlo + k];
                    self.mlo += k;
                    self.crc = crc32c::crc32c_append(self.crc, out);
                    return Ok(out);
                }
            }
        }
        if self.hi - self.lo < want && self.at < self.end {
            self.buf.copy_within(self.lo..self.hi, 0);
            self.hi -= self.lo;
            self.lo = 0;
            let room = ((self.buf.len() - self.hi) as u64).min(self.end - self.at) as usize;
            // Up to an entry boundary, so that what follows may be mapped (`read` checked
            // that the file ends on one).
            let whole = (self.hi + room) / ENTRY_BYTES * ENTRY_BYTES;
            let k = if whole > self.hi {
                whole - self.hi
            } else {
                room
            };
            let new = &mut self.buf[self.hi..self.hi + k];
            self.f.read_at(new, self.at)?;
            self.crc = crc32c::crc32c_append(self.crc, new);
            self.at += k as u64;
            self.hi += k;
        }
        let k = want.min((self.hi - self.lo) / ENTRY_BYTES * ENTRY_BYTES);
        if k == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let out = &self.buf[self.lo..self.lo + k];
        self.lo += k;
        Ok(out)
    }

    /// Whether every byte of the file was taken and handed out.
    fn done(&self) -> bool {
        self.at == self.end
            && self.lo == self.hi
            && self.map.as_ref().is_none_or(|m| self.mlo == m.len())
    }
}

/// Reads the head of the checkpoint in `dir`: `Ok(None)` when there is none, `Err(why)` when
/// it cannot be used (the open then ignores it, saying why).
pub(crate) fn read(
    vfs: &Arc<dyn Vfs>,
    dir: &Path,
) -> std::result::Result<Option<Checkpoint>, String> {
    let names = vfs
        .list(dir)
        .map_err(|e| format!("listing the directory: {e}"))?;
    if !names.iter().any(|n| n == FILE) {
        return Ok(None);
    }
    let f = vfs
        .open(&join(dir, FILE))
        .map_err(|e| format!("opening it: {e}"))?;
    let len = f.len().map_err(|e| format!("its size: {e}"))?;
    if len < (MAGIC.len() + 4 + 4) as u64 {
        return Err(format!("torn: {len} bytes"));
    }
    let mut tail = [0u8; 4];
    f.read_at(&mut tail, len - 4)
        .map_err(|e| format!("reading it: {e}"))?;
    let mut r = BufReader::with_capacity(
        IO_CHUNK,
        FileRead {
            f,
            at: 0,
            end: len - 4,
            crc: 0,
        },
    );
    let mut start = [0u8; 12];
    r.read_exact(&mut start)
        .map_err(|e| format!("reading it: {e}"))?;
    if start[..8] != MAGIC {
        return Err("not a checkpoint (bad magic)".into());
    }
    let version = u32::from_le_bytes([start[8], start[9], start[10], start[11]]);
    if version != VERSION {
        return Err(format!(
            "format version {version}, this build reads version {VERSION}"
        ));
    }
    let head: Head = bincode::serde::decode_from_std_read(&mut r, config())
        .map_err(|e| format!("torn or damaged: its head does not decode ({e})"))?;
    // Every entry must fit in what is left of the file: a damaged count must not reserve
    // memory for entries that are not there.
    let left = r.get_ref().end - r.get_ref().at + r.buffer().len() as u64;
    let entries = head
        .queues
        .iter()
        .try_fold(0u64, |a, q| a.checked_add(q.entries));
    if entries.and_then(|n| n.checked_mul(ENTRY_BYTES as u64)) != Some(left) {
        return Err(format!(
            "torn or damaged: {left} bytes of entries, the head counts {entries:?} entries"
        ));
    }
    // What the reader read ahead is the start of the entries; its CRC32C covers it already.
    let left_over = r.buffer();
    let mut buf = vec![0u8; IO_CHUNK.max(left_over.len())];
    buf[..left_over.len()].copy_from_slice(left_over);
    let hi = left_over.len();
    let FileRead {
        f,
        at,
        end,
        crc: so_far,
    } = r.into_inner();
    Ok(Some(Checkpoint {
        head,
        entries: Entries {
            f,
            at,
            end,
            crc: so_far,
            buf,
            lo: 0,
            hi,
            map: None,
            mlo: 0,
            mapping: true,
        },
        crc: u32::from_le_bytes(tail),
    }))
}

impl Checkpoint {
    /// The journal position it covers.
    pub(crate) fn position(&self) -> &Position {
        &self.head.position
    }

    /// Its journal position, once every byte of the file was read and checked against its
    /// CRC32C (`Err(why)` if it fails): what it proves had been durable, without building the
    /// state (an open with `repair`, `verify`).
    pub(crate) fn into_position(self) -> std::result::Result<Position, String> {
        let Checkpoint {
            head,
            mut entries,
            crc,
        } = self;
        let mut left: u64 = head.queues.iter().map(|q| q.entries).sum();
        while left > 0 {
            let block = entries
                .next(left)
                .map_err(|e| format!("torn or damaged: reading an entry: {e}"))?;
            left -= (block.len() / ENTRY_BYTES) as u64;
        }
        if !entries.done() || entries.crc != crc {
            return Err("torn or damaged: its CRC32C does not match".into());
        }
        Ok(head.position)
    }

    /// Builds the state it holds (as [`Rebuild::into_state`] would from the records it
    /// summarises), streaming its messages into their queues; `Err(why)` if it does not decode
    /// or fails its own CRC32C (the caller then replays the journal).
    pub(crate) fn into_state(
        self,
        opts: &StoreOptions,
        segs: Vec<(u64, u64)>,
        now: u64,
        lost: &mut Vec<String>,
    ) -> std::result::Result<State, String> {
        let Checkpoint {
            head,
            mut entries,
            crc,
        } = self;
        let mut rb = Rebuild::default();
        let mut queues = Vec::with_capacity(head.queues.len());
        for q in head.queues {
            rb.declare(q.qid, q.decl, q.decl_seg as u64);
            for key in q.parked {
                rb.park(q.qid, key, true);
            }
            for (key, id, at, seg) in q.dedup {
                rb.dedup_key(q.qid, key, DedupEntry { id, at, seg });
            }
            let fails: FxHashMap<u64, FailInfo> = q
                .fails
                .into_iter()
                .map(|(id, first, last, reason)| {
                    (
                        id,
                        FailInfo {
                            first,
                            last,
                            reason,
                        },
                    )
                })
                .collect();
            queues.push((q.qid, q.entries, q.ready, q.groups, fails));
        }
        rb.ids_below(head.next_id);
        let bad = |what: String| Error::new(ErrorKind::Corrupt, what);
        let state = rb.into_state_with(opts, segs, now, lost, None, |_, st, crashed| {
            for (qid, n, ready, groups, mut fails) in queues {
                let q = st
                    .queues
                    .get_mut(qid as usize)
                    .ok_or_else(|| bad(format!("queue {qid} is not declared")))?;
                for (p, &k) in ready.iter().enumerate() {
                    // `read` checked that every entry is in the file: `k` is bounded by it.
                    q.ready[p].reserve_exact(k.min(n) as usize);
                }
                let mut last_id = None;
                // Live journal space, counted per run of one segment (messages of a queue are
                // mostly in segment order): one map update per run, not per message.
                let mut run: Option<(u64, u64, u64)> = None;
                let mut left = n;
                while left > 0 {
                    let block = entries
                        .next(left)
                        .map_err(|e| bad(format!("reading an entry: {e}")))?;
                    left -= (block.len() / ENTRY_BYTES) as u64;
                    for b in block.chunks_exact(ENTRY_BYTES) {
                        let b = b.try_into().map_err(|_| bad("an entry's length".into()))?;
                        let Item { e, due, in_flight } = get_item(b);
                        if e.priority > crate::defaults::MAX_PRIORITY
                            || e.group as usize > groups.len()
                            || last_id.is_some_and(|l| l >= e.id)
                        {
                            return Err(bad(format!("entry of message {} does not decode", e.id)));
                        }
                        last_id = Some(e.id);
                        let group = (e.group != 0).then(|| groups[e.group as usize - 1].as_str());
                        // Most stores have no failure on record: no hash lookup per message.
                        let fail = if fails.is_empty() {
                            None
                        } else {
                            fails.remove(&e.id)
                        };
                        let e = Entry { group: 0, ..e };
                        let seg = e.seg as u64;
                        match &mut run {
                            Some((s, items, bytes)) if *s == seg => {
                                *items += 1;
                                *bytes += e.live_bytes();
                            }
                            _ => {
                                if let Some((s, items, bytes)) = run.take() {
                                    live_add(st, s, items, bytes);
                                }
                                run = Some((seg, 1, e.live_bytes()));
                            }
                        }
                        Rebuild::place(st, qid, e, group, due, in_flight, fail, now, crashed);
                    }
                }
                if let Some((s, items, bytes)) = run {
                    live_add(st, s, items, bytes);
                }
            }
            Ok(())
        });
        let state = state.map_err(|e| format!("torn or damaged: {}", e.message()))?;
        // Everything read (the count check in `read` makes this hold) and its CRC32C.
        if !entries.done() {
            return Err("torn or damaged: bytes after its last entry".into());
        }
        if entries.crc != crc {
            return Err("torn or damaged: its CRC32C does not match".into());
        }
        Ok(state)
    }
}
