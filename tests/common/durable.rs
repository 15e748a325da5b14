//! Shared helpers of the durability suites (with the fault-injecting file layer,
//! [`super::fault`]): a model of what was durably acknowledged ([`Model`]) and a mixed workload
//! that drives a store and records into the model ([`Workload`]).
#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mqlite::*;

#[allow(unused_imports)]
pub use super::fault::{CrashMode, Fault, FaultFs, Op, Rng};

/// Whether the soak sizes were asked for (`MQLITE_SOAK=1`).
pub fn soak() -> bool {
    std::env::var("MQLITE_SOAK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// CI size, or soak size under `MQLITE_SOAK=1`.
pub fn size(ci: u64, soak_size: u64) -> u64 {
    if soak() {
        soak_size
    } else {
        ci
    }
}

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Tests of one binary that open stores or start processes hold this, one at a time, so that
/// what one test measures (descriptors, processes, timing of children) is not disturbed by
/// another. (The store lock itself is a POSIX record lock, which a forked child never holds.)
pub static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes [`SERIAL`] (even if a previous holder panicked).
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counts panics on every thread (library threads included), keeping the default report.
/// Returns the count so far: a test asserts that [`panics`] did not move past it.
pub fn count_panics() -> usize {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            prev(info);
        }));
    });
    panics()
}

/// Panics seen so far (see [`count_panics`]).
pub fn panics() -> usize {
    PANICS.load(Ordering::SeqCst)
}

/// Aborts the whole test process if `f` does not finish within `secs`: a hang (a deadlock, a
/// waiter nobody wakes) must fail CI instead of stalling it.
pub fn within<T: Send + 'static>(
    secs: u64,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let r = f();
        let _ = tx.send(());
        r
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(()) => h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
        }
        Err(_) => {
            eprintln!("HANG: {what} did not finish within {secs} s");
            std::process::abort();
        }
    }
}

/// A redelivery policy without delays and without a limit, so that no timer has to pass and no
/// message dead-letters except by `reject`.
pub fn no_delay_policy() -> RedeliveryPolicy {
    RedeliveryPolicy {
        max_redeliveries: -1,
        initial_redelivery_delay: Duration::ZERO,
        redelivery_delay: Duration::ZERO,
        ..Default::default()
    }
}

/// Store options over `fs` with small segments (so rolls, compaction and segment removal happen
/// within short workloads), a manual clock and [`no_delay_policy`].
pub fn opts(fs: &FaultFs, clock: &Arc<ManualClock>) -> StoreOptions {
    StoreOptions {
        vfs: fs.vfs(),
        clock: clock.clone(),
        segment_bytes: 16 << 10,
        redelivery: no_delay_policy(),
        ..Default::default()
    }
}

/// A body that names its tag and whose filler is derived from the tag, so any corruption is seen.
pub fn body(tag: &str, len: usize) -> Vec<u8> {
    let mut b = format!("{tag}|").into_bytes();
    let mut h: u32 = tag
        .bytes()
        .fold(2166136261u32, |h, c| (h ^ c as u32).wrapping_mul(16777619));
    while b.len() < len.max(tag.len() + 1) {
        h ^= h << 13;
        h ^= h >> 17;
        h ^= h << 5;
        b.push(b'a' + (h % 26) as u8);
    }
    b
}

/// The tag of a body made by [`body`], if the body is intact.
pub fn tag_of(b: &[u8]) -> Option<String> {
    let p = b.iter().position(|&c| c == b'|')?;
    let tag = std::str::from_utf8(&b[..p]).ok()?.to_string();
    (body(&tag, b.len()) == b).then_some(tag)
}

/// Where a message may be after recovery.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Loc {
    /// Not stored anywhere (acked, or never durably sent).
    Absent,
    /// In this queue.
    Queue(String),
    /// In the dead-letter queue.
    Dlq,
}

/// What may be found for one message (identified by its body's tag).
#[derive(Debug, Clone)]
pub struct Expect {
    /// The places allowed; exactly one means the outcome was durably acknowledged.
    pub allowed: BTreeSet<Loc>,
    /// The message id, if its send returned.
    pub id: Option<u64>,
}

/// A transaction whose commit did not return: all of its parts applied, or none.
#[derive(Debug, Clone)]
pub struct Txn {
    /// (tag, place if committed, place if not).
    pub parts: Vec<(String, Loc, Loc)>,
}

/// Counts of what a verification checked.
#[derive(Debug, Default, Clone, Copy)]
pub struct Checked {
    /// Messages whose durable send was acknowledged and that were found where they must be.
    pub durable_present: u64,
    /// Messages whose ack (or reject) was durably acknowledged and that were not found again.
    pub durable_settled: u64,
    /// In-doubt outcomes (call cut by the crash) found in one of their allowed states.
    pub in_doubt: u64,
    /// In-doubt transactions found all-or-nothing.
    pub txns: u64,
    /// Delivery counts checked not to have gone back after recovery.
    pub counts: u64,
}

impl std::ops::AddAssign for Checked {
    fn add_assign(&mut self, o: Checked) {
        self.durable_present += o.durable_present;
        self.durable_settled += o.durable_settled;
        self.in_doubt += o.in_doubt;
        self.txns += o.txns;
        self.counts += o.counts;
    }
}

/// The log of what was durably acknowledged, as allowed places per message.
#[derive(Debug, Default, Clone)]
pub struct Model {
    /// Per tag.
    pub msgs: HashMap<String, Expect>,
    /// In-doubt transactions.
    pub txns: Vec<Txn>,
    /// The highest delivery count a receive returned, per tag (reset by moves to and from the
    /// dead-letter queue, which make a new message).
    pub seen: HashMap<String, u32>,
    /// Lazy acks that returned and are not known durable yet: in doubt (acked, or delivered
    /// again) until a later durable call of the store returns.
    pub lazy: Vec<String>,
}

fn set(locs: &[Loc]) -> BTreeSet<Loc> {
    locs.iter().cloned().collect()
}

impl Model {
    /// Records that a call moving `tag` to `to` started (its outcome is in doubt until `done`).
    pub fn begin(&mut self, tag: &str, to: Loc) {
        let e = self.msgs.entry(tag.to_string()).or_insert(Expect {
            allowed: set(&[Loc::Absent]),
            id: None,
        });
        e.allowed.insert(to);
    }
    /// Records that a send of `tag` was refused: it was never stored.
    pub fn refused(&mut self, tag: &str) {
        if let Some(e) = self.msgs.get_mut(tag) {
            e.allowed = set(&[Loc::Absent]);
        }
    }

    /// Records that a lazy ack of `tag` returned: it stays in doubt (begun with
    /// [`begin`](Model::begin)) until a later durable call returns ([`Model::done`]).
    pub fn lazy_ack(&mut self, tag: &str) {
        self.lazy.push(tag.to_string());
    }

    /// A durable call returned: every lazy ack before it is durable too (it was in the same or an
    /// earlier group commit).
    pub fn synced(&mut self) {
        for t in self.lazy.drain(..) {
            if let Some(e) = self.msgs.get_mut(&t) {
                e.allowed = set(&[Loc::Absent]);
            }
        }
    }

    /// Records that the call moving `tag` to `to` returned successfully (every call but a lazy
    /// ack waits for its group commit, so earlier lazy acks are durable too).
    pub fn done(&mut self, tag: &str, to: Loc, id: Option<u64>) {
        self.synced();
        let e = self.msgs.entry(tag.to_string()).or_insert(Expect {
            allowed: BTreeSet::new(),
            id: None,
        });
        e.allowed = set(&[to]);
        if id.is_some() {
            e.id = id;
        }
    }
    /// Forgets the id of `tag` (it moved and got a new one: dead-lettering, replay).
    pub fn new_id(&mut self, tag: &str, id: Option<u64>) {
        if let Some(e) = self.msgs.get_mut(tag) {
            e.id = id;
        }
    }

    /// Checks `store` against the model; on success collapses every in-doubt outcome to what was
    /// found (it is durable now), so the model can go on. `queues` are the workload's queues.
    pub fn verify(&mut self, store: &Store, queues: &[&str]) -> Result<Checked, String> {
        let mut found: HashMap<String, (Loc, u64)> = HashMap::new();
        let mut scan = |qname: &str, loc: Loc| -> Result<(), String> {
            let q = store
                .queue(qname)
                .map_err(|e| format!("queue {qname}: {e}"))?;
            let st = q.stats().map_err(|e| format!("stats of {qname}: {e}"))?;
            let ms = q
                .browse(usize::MAX)
                .map_err(|e| format!("browse of {qname}: {e}"))?;
            if st.messages != ms.len() as u64 || st.in_flight != 0 {
                return Err(format!(
                    "{qname}: stats say {} messages ({} in flight), browse shows {}",
                    st.messages,
                    st.in_flight,
                    ms.len()
                ));
            }
            for m in ms {
                let tag = tag_of(m.body()).ok_or_else(|| {
                    format!(
                        "{qname}: corrupted or unknown body {:?}",
                        String::from_utf8_lossy(&m.body()[..m.body().len().min(40)])
                    )
                })?;
                let id = m.id().map(|i| i.0).unwrap_or(0);
                if let Some(prev) = found.insert(tag.clone(), (loc.clone(), id)) {
                    return Err(format!("{tag} found twice: in {:?} and {loc:?}", prev.0));
                }
            }
            Ok(())
        };
        for q in queues {
            scan(q, Loc::Queue(q.to_string()))?;
        }
        scan("DLQ", Loc::Dlq)?;
        let mut c = Checked::default();
        for (tag, (_, _)) in found.iter() {
            if !self.msgs.contains_key(tag) {
                return Err(format!("{tag} found but never sent"));
            }
        }
        for t in &self.txns {
            let committed = t
                .parts
                .iter()
                .all(|(tag, yes, _)| found.get(tag).map_or(Loc::Absent, |f| f.0.clone()) == *yes);
            let not = t
                .parts
                .iter()
                .all(|(tag, _, no)| found.get(tag).map_or(Loc::Absent, |f| f.0.clone()) == *no);
            if !committed && !not {
                let got: Vec<_> = t
                    .parts
                    .iter()
                    .map(|(tag, _, _)| (tag.clone(), found.get(tag).map(|f| f.0.clone())))
                    .collect();
                return Err(format!("transaction applied in part: {t:?}, found {got:?}"));
            }
            c.txns += 1;
        }
        self.txns.clear();
        self.lazy.clear();
        for (tag, e) in self.msgs.iter_mut() {
            let (loc, id) = found.get(tag).cloned().unwrap_or((Loc::Absent, 0));
            if !e.allowed.contains(&loc) {
                return Err(format!(
                    "{tag} (id {:?}) found {loc:?}, allowed {:?}",
                    e.id, e.allowed
                ));
            }
            if e.allowed.len() == 1 {
                if loc == Loc::Absent {
                    c.durable_settled += 1;
                } else {
                    c.durable_present += 1;
                    if let (Some(want), Loc::Queue(_)) = (e.id, &loc) {
                        if want != id {
                            return Err(format!("{tag}: id {id}, its send returned id {want}"));
                        }
                    }
                }
            } else {
                c.in_doubt += 1;
            }
            e.allowed = set(std::slice::from_ref(&loc));
            e.id = (loc != Loc::Absent).then_some(id);
        }
        // Absent ones that are settled for good need no more checking.
        self.msgs.retain(|_, e| !e.allowed.contains(&Loc::Absent));
        Ok(c)
    }
}

/// A mixed workload over queues "a" and "b": send, batch send, receive, ack, nack, reject,
/// release, drop, batch ack, transactions, dead-letter replay; each call's outcome goes into
/// the model *after* it returns (and as in doubt before).
pub struct Workload {
    /// The queues.
    pub queues: Vec<Queue>,
    /// The dead-letter queue.
    pub dlq: Queue,
    /// Deliveries held unsettled, with their tags.
    pub held: Vec<(Delivery, String)>,
    /// Randomness.
    pub rng: Rng,
    /// Prefix of tags (unique per run phase).
    pub prefix: String,
    /// Next tag number.
    pub n: u64,
    /// Largest body.
    pub max_body: usize,
    /// Calls made, by name.
    pub calls: HashMap<&'static str, u64>,
}

/// The queue names of [`Workload`].
pub const QUEUES: [&str; 2] = ["a", "b"];

impl Workload {
    /// A workload on `store`.
    pub fn new(store: &Store, seed: u64, prefix: &str) -> Result<Workload, Error> {
        Ok(Workload {
            queues: vec![store.queue("a")?, store.queue("b")?],
            dlq: store.queue("DLQ")?,
            held: Vec::new(),
            rng: Rng::new(seed),
            prefix: prefix.to_string(),
            n: 0,
            max_body: 3000,
            calls: HashMap::new(),
        })
    }

    fn tag(&mut self) -> String {
        self.n += 1;
        format!("{}{}", self.prefix, self.n)
    }

    fn body_len(&mut self) -> usize {
        if self.rng.chance(0.2) {
            self.rng.below(self.max_body as u64) as usize
        } else {
            8 + self.rng.below(120) as usize
        }
    }

    fn take_held(&mut self) -> Option<(Delivery, String)> {
        if self.held.is_empty() {
            return None;
        }
        let i = self.rng.below(self.held.len() as u64) as usize;
        Some(self.held.swap_remove(i))
    }

    fn qloc(d: &Delivery) -> Loc {
        Loc::Queue(d.queue().name().to_string())
    }

    /// One random call. An error is returned as is (the model already holds the call as in doubt).
    pub fn step(&mut self, m: &mut Model, store: &Store) -> Result<(), Error> {
        let r = self.rng.below(100);
        let qi = self.rng.below(self.queues.len() as u64) as usize;
        match r {
            0..=29 => {
                *self.calls.entry("send").or_default() += 1;
                let tag = self.tag();
                let len = self.body_len();
                let loc = Loc::Queue(QUEUES[qi].into());
                m.begin(&tag, loc.clone());
                let id = self.queues[qi].send(body(&tag, len)).inspect_err(|e| {
                    if e.kind() == ErrorKind::NoSpace {
                        m.refused(&tag); // never stored
                    }
                })?;
                m.done(&tag, loc, Some(id.0));
            }
            30..=34 => {
                *self.calls.entry("send_batch").or_default() += 1;
                let n = 1 + self.rng.below(4);
                let tags: Vec<String> = (0..n).map(|_| self.tag()).collect();
                let loc = Loc::Queue(QUEUES[qi].into());
                let mut bodies = Vec::new();
                for t in &tags {
                    m.begin(t, loc.clone());
                    let len = self.body_len();
                    bodies.push(body(t, len));
                }
                let ids = self.queues[qi].send_batch(bodies).inspect_err(|e| {
                    if e.kind() == ErrorKind::NoSpace {
                        tags.iter().for_each(|t| m.refused(t));
                    }
                })?;
                for (t, id) in tags.iter().zip(ids) {
                    m.done(t, loc.clone(), Some(id.0));
                }
            }
            35..=54 => {
                *self.calls.entry("receive").or_default() += 1;
                let n = if self.rng.chance(0.3) { 3 } else { 1 };
                if self.held.len() < 8 {
                    for d in self.queues[qi].receive_batch(n, Some(Duration::ZERO))? {
                        let tag = tag_of(d.body())
                            .unwrap_or_else(|| panic!("corrupted delivery {:?}", d.body()));
                        assert!(m.msgs.contains_key(&tag), "delivered {tag}, never sent");
                        let c = m.seen.entry(tag.clone()).or_insert(0);
                        *c = (*c).max(d.delivery_count());
                        self.held.push((d, tag));
                    }
                }
            }
            55..=69 => {
                let Some((d, tag)) = self.take_held() else {
                    return Ok(());
                };
                m.begin(&tag, Loc::Absent);
                if self.rng.chance(0.5) {
                    *self.calls.entry("ack").or_default() += 1;
                    d.ack()?;
                    m.lazy_ack(&tag);
                } else {
                    *self.calls.entry("ack_sync").or_default() += 1;
                    d.ack_sync()?;
                    m.done(&tag, Loc::Absent, None);
                }
            }
            70..=76 => {
                let Some((d, _tag)) = self.take_held() else {
                    return Ok(());
                };
                *self.calls.entry("nack").or_default() += 1;
                d.nack("workload nack")?;
            }
            77..=79 => {
                let Some((d, tag)) = self.take_held() else {
                    return Ok(());
                };
                *self.calls.entry("reject").or_default() += 1;
                m.begin(&tag, Loc::Dlq);
                d.reject("workload reject")?;
                m.done(&tag, Loc::Dlq, None);
                m.new_id(&tag, None);
                m.seen.remove(&tag);
            }
            80..=82 => {
                let Some((d, _)) = self.take_held() else {
                    return Ok(());
                };
                *self.calls.entry("release").or_default() += 1;
                d.release()?;
            }
            83..=84 => {
                let Some((d, _)) = self.take_held() else {
                    return Ok(());
                };
                *self.calls.entry("drop").or_default() += 1;
                drop(d); // counts as a failed delivery
                store.flush()?;
                m.synced();
            }
            85..=87 => {
                // Batch ack of the held deliveries of one queue.
                let name = QUEUES[qi];
                let (mine, rest): (Vec<_>, Vec<_>) = self
                    .held
                    .drain(..)
                    .partition(|(d, _)| d.queue().name() == name);
                self.held = rest;
                if mine.is_empty() {
                    return Ok(());
                }
                *self.calls.entry("ack_batch").or_default() += 1;
                let tags: Vec<String> = mine.iter().map(|x| x.1.clone()).collect();
                for t in &tags {
                    m.begin(t, Loc::Absent);
                }
                let ds = mine.into_iter().map(|x| x.0).collect();
                if self.rng.chance(0.5) {
                    self.queues[qi].ack_batch(ds)?;
                    tags.iter().for_each(|t| m.lazy_ack(t));
                } else {
                    self.queues[qi].ack_batch_sync(ds)?;
                    tags.iter().for_each(|t| m.done(t, Loc::Absent, None));
                }
            }
            88..=94 => {
                // A transaction: one or two sends and maybe an ack, all or nothing.
                *self.calls.entry("transaction").or_default() += 1;
                let mut tx = store.transaction();
                let mut parts = Vec::new();
                for _ in 0..1 + self.rng.below(2) {
                    let tag = self.tag();
                    let to = self.rng.below(2) as usize;
                    let len = self.body_len();
                    tx.send(&self.queues[to], body(&tag, len))?;
                    parts.push((tag, Loc::Queue(QUEUES[to].into()), Loc::Absent));
                }
                if self.rng.chance(0.6) {
                    if let Some((d, tag)) = self.take_held() {
                        parts.push((tag, Loc::Absent, Self::qloc(&d)));
                        tx.ack(d)?;
                    }
                }
                for (t, yes, _) in &parts {
                    m.begin(t, yes.clone());
                }
                match tx.commit() {
                    Ok(ids) => {
                        let mut ids = ids.into_iter();
                        for (t, yes, _) in &parts {
                            let id = if *yes == Loc::Absent {
                                None
                            } else {
                                ids.next().map(|i| i.0)
                            };
                            m.done(t, yes.clone(), id);
                        }
                    }
                    Err(e) => {
                        m.txns.push(Txn { parts });
                        return Err(e);
                    }
                }
            }
            _ => {
                // Replay one dead letter to its original queue.
                let dead = self.dlq.browse(1)?;
                let Some(msg) = dead.first() else {
                    return Ok(());
                };
                let Some(tag) = tag_of(msg.body()) else {
                    panic!("corrupted dead letter")
                };
                let info = msg
                    .dead_letter_info()
                    .expect("dead letters carry their info")
                    .clone();
                *self.calls.entry("replay").or_default() += 1;
                let to = Loc::Queue(info.original_queue.clone());
                m.begin(&tag, to.clone());
                let n = self.dlq.replay(&ReplayFilter {
                    ids: Some(vec![msg.id().expect("stored")]),
                    ..Default::default()
                })?;
                assert_eq!(n, 1, "replay of {tag}");
                m.done(&tag, to, None);
                m.new_id(&tag, None);
                m.seen.remove(&tag);
            }
        }
        Ok(())
    }
}

/// Runs up to `steps` workload calls; returns how many ran and the first error, if any.
pub fn run(w: &mut Workload, m: &mut Model, store: &Store, steps: u64) -> (u64, Option<Error>) {
    for i in 0..steps {
        if let Err(e) = w.step(m, store) {
            return (i, Some(e));
        }
    }
    (steps, None)
}

/// Opens `dir` over `fs`.
pub fn open(dir: &Path, fs: &FaultFs, clock: &Arc<ManualClock>) -> Result<Store, Error> {
    Store::open(dir, opts(fs, clock))
}

/// Opens, checks the model, and receives + acks nothing: the integrity scan. Returns the counts.
pub fn reopen_and_verify(
    dir: &Path,
    fs: &FaultFs,
    clock: &Arc<ManualClock>,
    m: &mut Model,
) -> Result<(Checked, RecoveryReport), String> {
    let s = open(dir, fs, clock).map_err(|e| format!("reopen failed: {e}"))?;
    let mut c = m.verify(&s, &QUEUES)?;
    // Delivery counts are persisted before hand-over: a crash never resets them.
    for q in QUEUES {
        let ds = s
            .queue(q)
            .and_then(|q| q.receive_batch(1 << 20, Some(Duration::ZERO)))
            .map_err(|e| format!("receive: {e}"))?;
        for d in &ds {
            let tag = tag_of(d.body()).ok_or("corrupted body")?;
            if let Some(&seen) = m.seen.get(&tag) {
                if d.delivery_count() < seen {
                    return Err(format!(
                        "{tag}: delivery count {} after recovery, {seen} was handed out before",
                        d.delivery_count()
                    ));
                }
                c.counts += 1;
            }
        }
    }
    let rep = s.recovery_report().clone();
    s.close().map_err(|e| format!("close after verify: {e}"))?;
    Ok((c, rep))
}

/// A listing of the frames and records of every segment of `fs` (for failure reports).
pub fn dump(fs: &FaultFs) -> String {
    use mqlite::journal::format::*;
    use mqlite::record::*;
    let mut out = String::new();
    for name in fs.names() {
        let Some(b) = fs.read(&name) else { continue };
        out += &format!("{name}: {} bytes\n", b.len());
        if !name.ends_with(".seg") || b.len() < SEGMENT_HEADER {
            continue;
        }
        let mut pos = SEGMENT_HEADER;
        while let Some(h) = check_frame(&b[pos..]) {
            out += &format!(
                "  frame @{pos} seq {} synced {} records {}:",
                h.seq, h.synced, h.count
            );
            for (_, k, body) in
                records(&b[pos + FRAME_HEADER..pos + FRAME_HEADER + h.len]).flatten()
            {
                let id = if body.len() >= 12 {
                    u64_at(body, if k == kind::SEND { 0 } else { 4 })
                } else {
                    0
                };
                out += &format!(" k{k}(len {}, {id})", body.len());
                if k == kind::TXN {
                    out += "[";
                    for (_, k2, b2) in records(body).flatten() {
                        out += &format!(" k{k2}(len {})", b2.len());
                    }
                    out += " ]";
                }
            }
            out += "\n";
            pos += FRAME_HEADER + h.len;
        }
        out += &format!("  end of frames @{pos}\n");
    }
    out
}

/// A child of a kill -9 loop: this test binary re-executed as `--exact <test>` with
/// `<env_var>=<arg>`, and its protocol lines (`R` ready, `B …` begun, `D …` done) sent to
/// [`KillChild::lines`] by a reader thread, without the harness's own output around them.
pub struct KillChild {
    child: std::process::Child,
    /// The child's protocol lines, in order.
    pub lines: std::sync::mpsc::Receiver<String>,
    reader: std::thread::JoinHandle<()>,
}

impl KillChild {
    /// Starts the child test `test` of this binary.
    pub fn spawn(test: &str, env_var: &str, arg: String) -> KillChild {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};
        let exe = std::env::current_exe().expect("the test binary");
        let mut child = Command::new(exe)
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env(env_var, arg)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("re-execute the test binary");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = std::sync::mpsc::channel::<String>();
        let prefix = format!("test {test} ... ");
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // The test harness prints around the child's lines; ours are the only ones that
                // start with a tag letter and a space.
                let line = line.trim_start_matches(prefix.as_str()).to_string();
                let ours = line == "R" || line.starts_with("B ") || line.starts_with("D ");
                if ours && tx.send(line).is_err() {
                    break;
                }
            }
        });
        KillChild {
            child,
            lines,
            reader,
        }
    }

    /// SIGKILLs the child, waits for it, and appends every line it wrote to `got`.
    pub fn kill(mut self, got: &mut Vec<String>) -> std::process::ExitStatus {
        self.child.kill().expect("SIGKILL");
        let status = self.child.wait().expect("wait for the child");
        self.reader.join().expect("the reader thread");
        got.extend(self.lines.try_iter());
        status
    }
}
