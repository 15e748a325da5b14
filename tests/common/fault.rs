//! A fault-injecting, in-memory implementation of mqlite's file layer (`mqlite::io::{Vfs, VFile}`).
//!
//! Every operation is counted and can be made to fail; every mutation is recorded so that a
//! *crash image* can be produced: the state a disk could be in after a power loss at the moment
//! the run was cut. The model follows redb's `tests/crash_consistency.rs` and RocksDB's
//! fault-injection file system:
//!
//! - data written with `write_at` is only durable once `sync_data` (fdatasync) ran on that file;
//! - a size change (`allocate`, `set_len`) is durable with the next `sync_data` as well;
//! - directory entries (create, remove, rename) are only durable once `sync_dir` ran;
//! - a crash image keeps the durable state, optionally plus a random subset of the unsynced
//!   writes and directory operations, or with the last unsynced write of each file torn at a
//!   sector boundary (512 B or 4 KiB) and the rest of its range filled with garbage.
//!
//! Used by the integration tests (`tests/common/mod.rs`) and by the fuzz targets (`tests/fuzz/`).
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use mqlite::io::{VFile, Vfs};

/// A small deterministic PRNG (xorshift64*), so every failure is reproducible from its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03 | 1)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (0 when `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next_u64() as u8;
        }
    }
}

/// The operations of the file layer, for counting and for fault injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// `Vfs::create`.
    Create,
    /// `Vfs::open`.
    Open,
    /// `Vfs::remove`.
    Remove,
    /// `Vfs::rename`.
    Rename,
    /// `Vfs::list`.
    List,
    /// `Vfs::sync_dir` (fsync of the directory).
    SyncDir,
    /// `VFile::read_at`.
    Read,
    /// `VFile::write_at`.
    Write,
    /// `VFile::sync_data` (fdatasync).
    Sync,
    /// `VFile::allocate` (fallocate).
    Allocate,
    /// `VFile::set_len`.
    SetLen,
    /// `VFile::len`.
    Len,
}

impl Op {
    /// Every operation.
    pub const ALL: [Op; 12] = [
        Op::Create,
        Op::Open,
        Op::Remove,
        Op::Rename,
        Op::List,
        Op::SyncDir,
        Op::Read,
        Op::Write,
        Op::Sync,
        Op::Allocate,
        Op::SetLen,
        Op::Len,
    ];
    /// Whether the operation changes what is (or may become) on disk: the crash cut counts these.
    pub fn mutating(self) -> bool {
        matches!(
            self,
            Op::Create
                | Op::Remove
                | Op::Rename
                | Op::SyncDir
                | Op::Write
                | Op::Sync
                | Op::Allocate
                | Op::SetLen
        )
    }
}

/// Fail the `nth` (1-based) call of `op` with `errno`; with `persistent`, every later one too.
#[derive(Debug, Clone, Copy)]
pub struct Fault {
    /// Which operation.
    pub op: Op,
    /// Which call of it (1-based, counted per operation).
    pub nth: u64,
    /// The error number (`libc::EIO`, `libc::ENOSPC`).
    pub errno: i32,
    /// Fail every call from the `nth` on, not only the `nth`.
    pub persistent: bool,
}

/// How a crash image is made from the recorded state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Only synced data and directory entries made durable by a directory fsync.
    SyncedOnly,
    /// Synced data plus a random subset of the unsynced writes (some torn at 512 B) and of the
    /// unsynced directory operations.
    RandomSubset,
    /// Every unsynced write reached the disk except the last one of each file, which is torn at a
    /// `sector`-byte boundary with garbage in the rest of its range; unsynced directory
    /// operations all reached the disk.
    TornLast {
        /// 512 or 4096.
        sector: u64,
    },
    /// A process crash (kill -9): everything written is still in the page cache, but nothing
    /// unsynced has become durable; a later power-loss image of the result can still lose it.
    ProcessCrash,
}

#[derive(Debug, Clone)]
enum Ev {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

#[derive(Debug, Clone, Default)]
struct FileData {
    /// What reads see (the page cache).
    cur: Vec<u8>,
    /// What survives a power loss.
    durable: Vec<u8>,
    /// Changes since the last `sync_data`, in order.
    unsynced: Vec<Ev>,
}

#[derive(Debug, Clone)]
enum DirOp {
    Create(String, u64),
    Remove(String),
    Rename(String, String),
}

#[derive(Default)]
struct State {
    files: HashMap<u64, FileData>,
    next_file: u64,
    names: BTreeMap<String, u64>,
    durable_names: BTreeMap<String, u64>,
    dir_log: Vec<DirOp>,
    counts: HashMap<Op, u64>,
    mutations: u64,
    crash_at: Option<u64>,
    crashed: bool,
    faults: Vec<Fault>,
    injected: Vec<(Op, u64, i32)>,
    capacity: Option<u64>,
    /// Panic (once) in the `nth` call of the operation: a bug in the layer below, for the
    /// poisoning tests.
    panic_at: Option<(Op, u64)>,
}

impl State {
    fn gate(&mut self, op: Op) -> io::Result<()> {
        let n = {
            let c = self.counts.entry(op).or_insert(0);
            *c += 1;
            *c
        };
        if self.crashed {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        if op.mutating() {
            self.mutations += 1;
            if self.crash_at == Some(self.mutations) {
                self.crashed = true;
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
        }
        if self.panic_at == Some((op, n)) {
            self.panic_at = None;
            panic!("injected panic in {op:?} call #{n}");
        }
        for f in &self.faults {
            if f.op == op && (n == f.nth || (f.persistent && n > f.nth)) {
                self.injected.push((op, n, f.errno));
                return Err(io::Error::from_raw_os_error(f.errno));
            }
        }
        Ok(())
    }

    fn used(&self) -> u64 {
        self.names
            .values()
            .map(|id| self.files.get(id).map_or(0, |f| f.cur.len() as u64))
            .sum()
    }

    fn grow_ok(&self, id: u64, new_len: u64) -> io::Result<()> {
        if let Some(cap) = self.capacity {
            let old = self.files.get(&id).map_or(0, |f| f.cur.len() as u64);
            if new_len > old && self.used() + (new_len - old) > cap {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
        }
        Ok(())
    }
}

fn apply(data: &mut Vec<u8>, ev: &Ev) {
    match ev {
        Ev::Write(off, bytes) => {
            let end = *off as usize + bytes.len();
            if data.len() < end {
                data.resize(end, 0);
            }
            data[*off as usize..end].copy_from_slice(bytes);
        }
        Ev::SetLen(len) => data.resize(*len as usize, 0),
    }
}

fn name_of(path: &Path) -> io::Result<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "bad path"))
}

/// The fault-injecting file system. Cloning gives another handle to the same state.
#[derive(Clone, Default)]
pub struct FaultFs {
    st: Arc<Mutex<State>>,
}

impl FaultFs {
    /// An empty file system.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// As `Arc<dyn Vfs>` for `StoreOptions.vfs`.
    pub fn vfs(&self) -> Arc<dyn Vfs> {
        Arc::new(self.clone())
    }

    /// Cut the run at the `k`-th mutating operation (1-based): it and everything after fail with
    /// EIO, and nothing changes any more, so the recorded state is the state at the cut.
    pub fn crash_at(&self, k: u64) {
        self.lock().crash_at = Some(k);
    }

    /// Whether the run was cut.
    pub fn crashed(&self) -> bool {
        self.lock().crashed
    }

    /// Mutating operations so far.
    pub fn mutations(&self) -> u64 {
        self.lock().mutations
    }

    /// Calls of `op` so far.
    pub fn count(&self, op: Op) -> u64 {
        self.lock().counts.get(&op).copied().unwrap_or(0)
    }

    /// fdatasync calls so far.
    pub fn fsync_calls(&self) -> u64 {
        self.count(Op::Sync)
    }

    /// Resets the operation counters (faults count from here).
    pub fn reset_counts(&self) {
        let mut s = self.lock();
        s.counts.clear();
        s.mutations = 0;
    }

    /// Adds a fault.
    pub fn add_fault(&self, f: Fault) {
        self.lock().faults.push(f);
    }

    /// Makes the `nth` call (1-based, counted per operation) of `op` panic, once.
    pub fn panic_at(&self, op: Op, nth: u64) {
        self.lock().panic_at = Some((op, nth));
    }

    /// Removes every fault and the crash cut (a "repaired disk": the state stays as it is).
    pub fn clear_faults(&self) {
        let mut s = self.lock();
        s.faults.clear();
        s.crash_at = None;
        s.crashed = false;
    }

    /// The faults that fired: (operation, its call number, errno).
    pub fn injected(&self) -> Vec<(Op, u64, i32)> {
        self.lock().injected.clone()
    }

    /// Limits the bytes of all linked files: growing past it fails with ENOSPC (a full disk).
    pub fn set_capacity(&self, cap: Option<u64>) {
        self.lock().capacity = cap;
    }

    /// Bytes of all linked files.
    pub fn used(&self) -> u64 {
        self.lock().used()
    }

    /// Names of the files (current view).
    pub fn names(&self) -> Vec<String> {
        self.lock().names.keys().cloned().collect()
    }

    /// The current contents of file `name`.
    pub fn read(&self, name: &str) -> Option<Vec<u8>> {
        let s = self.lock();
        let id = s.names.get(name)?;
        s.files.get(id).map(|f| f.cur.clone())
    }

    /// Replaces file `name` (creating it) with `data`, durably: for building damaged images.
    pub fn put(&self, name: &str, data: Vec<u8>) {
        let mut s = self.lock();
        let id = match s.names.get(name) {
            Some(&id) => id,
            None => {
                s.next_file += 1;
                let id = s.next_file;
                s.names.insert(name.to_string(), id);
                s.durable_names.insert(name.to_string(), id);
                id
            }
        };
        s.files.insert(
            id,
            FileData {
                cur: data.clone(),
                durable: data,
                unsynced: Vec::new(),
            },
        );
    }

    /// Removes file `name` durably.
    pub fn delete(&self, name: &str) {
        let mut s = self.lock();
        s.names.remove(name);
        s.durable_names.remove(name);
    }

    /// A new file system holding the crash image of this one's recorded state.
    pub fn crash_image(&self, mode: CrashMode, rng: &mut Rng) -> FaultFs {
        let s = self.lock();
        let mut out = State {
            next_file: s.next_file,
            ..Default::default()
        };
        if mode == CrashMode::ProcessCrash {
            out.files = s.files.clone();
            out.names = s.names.clone();
            out.durable_names = s.durable_names.clone();
            out.dir_log = s.dir_log.clone();
            return FaultFs {
                st: Arc::new(Mutex::new(out)),
            };
        }
        // Directory entries.
        let mut names = s.durable_names.clone();
        for op in &s.dir_log {
            let keep = match mode {
                CrashMode::SyncedOnly => false,
                CrashMode::RandomSubset => rng.chance(0.5),
                _ => true,
            };
            if !keep {
                continue;
            }
            match op {
                DirOp::Create(n, id) => {
                    names.insert(n.clone(), *id);
                }
                DirOp::Remove(n) => {
                    names.remove(n);
                }
                DirOp::Rename(a, b) => {
                    if let Some(id) = names.remove(a) {
                        names.insert(b.clone(), id);
                    }
                }
            }
        }
        // File contents.
        for (&id, f) in &s.files {
            let mut data = f.durable.clone();
            let last_write = f.unsynced.iter().rposition(|e| matches!(e, Ev::Write(..)));
            for (i, ev) in f.unsynced.iter().enumerate() {
                match mode {
                    CrashMode::SyncedOnly | CrashMode::ProcessCrash => {}
                    CrashMode::RandomSubset => {
                        if !rng.chance(0.5) {
                            continue;
                        }
                        match ev {
                            Ev::Write(off, bytes) if rng.chance(0.25) && bytes.len() > 1 => {
                                // Torn: only the sectors before a 512-byte boundary made it.
                                let cut = torn_cut(*off, bytes.len() as u64, 512, rng);
                                apply(
                                    &mut data,
                                    &Ev::Write(*off, bytes[..(cut - off) as usize].to_vec()),
                                );
                            }
                            _ => apply(&mut data, ev),
                        }
                    }
                    CrashMode::TornLast { sector } => {
                        if Some(i) == last_write {
                            if let Ev::Write(off, bytes) = ev {
                                let cut = torn_cut(*off, bytes.len() as u64, sector, rng);
                                let mut torn = bytes[..(cut - off) as usize].to_vec();
                                let mut garbage = vec![0u8; bytes.len() - torn.len()];
                                rng.fill(&mut garbage);
                                torn.extend_from_slice(&garbage);
                                apply(&mut data, &Ev::Write(*off, torn));
                            }
                        } else {
                            apply(&mut data, ev);
                        }
                    }
                }
            }
            out.files.insert(
                id,
                FileData {
                    cur: data.clone(),
                    durable: data,
                    unsynced: Vec::new(),
                },
            );
        }
        out.durable_names = names.clone();
        out.names = names;
        FaultFs {
            st: Arc::new(Mutex::new(out)),
        }
    }
}

/// A cut point inside the write `[off, off + len)`: the first sector boundary after `off`
/// strictly inside the write, or a random later one; `off` itself when none is inside.
fn torn_cut(off: u64, len: u64, sector: u64, rng: &mut Rng) -> u64 {
    let end = off + len;
    let first = (off / sector + 1) * sector;
    if first >= end {
        return off + rng.below(len); // the write lies in one sector: any prefix may have landed
    }
    let n = (end - 1 - first) / sector + 1;
    first + rng.below(n) * sector
}

struct FaultFile {
    fs: FaultFs,
    id: u64,
}

impl VFile for FaultFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let mut s = self.fs.lock();
        s.gate(Op::Read)?;
        let f = s
            .files
            .get(&self.id)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))?;
        let end = offset as usize + buf.len();
        if end > f.cur.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end",
            ));
        }
        buf.copy_from_slice(&f.cur[offset as usize..end]);
        Ok(())
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut s = self.fs.lock();
        s.gate(Op::Write)?;
        s.grow_ok(self.id, offset + buf.len() as u64)?;
        let f = s.files.entry(self.id).or_default();
        let ev = Ev::Write(offset, buf.to_vec());
        apply(&mut f.cur, &ev);
        f.unsynced.push(ev);
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        let mut s = self.fs.lock();
        s.gate(Op::Sync)?;
        let f = s.files.entry(self.id).or_default();
        for ev in std::mem::take(&mut f.unsynced) {
            apply(&mut f.durable, &ev);
        }
        Ok(())
    }
    fn allocate(&self, len: u64) -> io::Result<()> {
        let mut s = self.fs.lock();
        s.gate(Op::Allocate)?;
        s.grow_ok(self.id, len)?;
        let f = s.files.entry(self.id).or_default();
        if (f.cur.len() as u64) < len {
            let ev = Ev::SetLen(len);
            apply(&mut f.cur, &ev);
            f.unsynced.push(ev);
        }
        Ok(())
    }
    fn len(&self) -> io::Result<u64> {
        let mut s = self.fs.lock();
        s.gate(Op::Len)?;
        Ok(s.files.get(&self.id).map_or(0, |f| f.cur.len() as u64))
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.fs.lock();
        s.gate(Op::SetLen)?;
        s.grow_ok(self.id, len)?;
        let f = s.files.entry(self.id).or_default();
        let ev = Ev::SetLen(len);
        apply(&mut f.cur, &ev);
        f.unsynced.push(ev);
        Ok(())
    }
}

impl Vfs for FaultFs {
    fn create(&self, path: &Path) -> io::Result<Arc<dyn VFile>> {
        let name = name_of(path)?;
        let mut s = self.lock();
        s.gate(Op::Create)?;
        if s.names.contains_key(&name) {
            return Err(io::Error::from_raw_os_error(libc::EEXIST));
        }
        s.next_file += 1;
        let id = s.next_file;
        s.files.insert(id, FileData::default());
        s.names.insert(name.clone(), id);
        s.dir_log.push(DirOp::Create(name, id));
        Ok(Arc::new(FaultFile {
            fs: self.clone(),
            id,
        }))
    }
    fn open(&self, path: &Path) -> io::Result<Arc<dyn VFile>> {
        let name = name_of(path)?;
        let mut s = self.lock();
        s.gate(Op::Open)?;
        let id = *s
            .names
            .get(&name)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        Ok(Arc::new(FaultFile {
            fs: self.clone(),
            id,
        }))
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        let name = name_of(path)?;
        let mut s = self.lock();
        s.gate(Op::Remove)?;
        s.names
            .remove(&name)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        s.dir_log.push(DirOp::Remove(name));
        Ok(())
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (a, b) = (name_of(from)?, name_of(to)?);
        let mut s = self.lock();
        s.gate(Op::Rename)?;
        let id = s
            .names
            .remove(&a)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        s.names.insert(b.clone(), id);
        s.dir_log.push(DirOp::Rename(a, b));
        Ok(())
    }
    fn list(&self, _dir: &Path) -> io::Result<Vec<String>> {
        let mut s = self.lock();
        s.gate(Op::List)?;
        Ok(s.names.keys().cloned().collect())
    }
    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.gate(Op::SyncDir)?;
        s.durable_names = s.names.clone();
        s.dir_log.clear();
        Ok(())
    }
}
