//! The C face in the same run as the Rust API: W2's async send with a callback per message and
//! W3's batch drain made through the exported C functions (the calls a C program makes, as
//! `benches/c/bench_c.c` does), so that both faces share the process, the interleaving and the
//! disk, and their ratio is not a comparison of two runs on a machine whose load moves.

use std::ffi::{c_char, c_void};
use std::time::Instant;

use super::{Cfg, Completions, Step};

/// An opaque C handle (`mqlite_store`, `mqlite_queue`, `mqlite_message`, …).
#[repr(C)]
struct Opaque {
    _p: [u8; 0],
}
type H = *mut Opaque;
/// `mqlite_status`: 0 is `MQLITE_OK`.
type Status = u32;
type SendCallback = unsafe extern "C" fn(*mut c_void, Status, u64, *const Opaque);

extern "C" {
    fn mqlite_store_open(
        p: *const c_char,
        len: usize,
        o: *const Opaque,
        out: *mut H,
        e: *mut H,
    ) -> Status;
    fn mqlite_store_queue(s: H, n: *const c_char, len: usize, out: *mut H, e: *mut H) -> Status;
    fn mqlite_store_flush(s: H, e: *mut H) -> Status;
    fn mqlite_store_close(s: H, e: *mut H) -> Status;
    fn mqlite_store_free(s: H);
    fn mqlite_queue_free(q: H);
    fn mqlite_message_new(b: *const u8, len: usize, out: *mut H, e: *mut H) -> Status;
    fn mqlite_message_free(m: H);
    fn mqlite_message_body(m: H, data: *mut *const u8, len: *mut usize) -> Status;
    fn mqlite_queue_send_async(
        q: H,
        m: H,
        cb: Option<SendCallback>,
        ud: *mut c_void,
        free: Option<unsafe extern "C" fn(*mut c_void)>,
        e: *mut H,
    ) -> Status;
    fn mqlite_queue_send_batch(q: H, ms: *const H, n: usize, ids: *mut u64, e: *mut H) -> Status;
    fn mqlite_delivery_batch_new() -> H;
    fn mqlite_delivery_batch_free(b: H);
    fn mqlite_delivery_batch_get(b: H, i: usize) -> H;
    fn mqlite_delivery_batch_ack(b: H, e: *mut H) -> Status;
    fn mqlite_delivery_message(d: H) -> H;
    fn mqlite_queue_receive_into(
        q: H,
        max: usize,
        t: i64,
        b: H,
        n: *mut usize,
        e: *mut H,
    ) -> Status;
}

fn ok(what: &str, st: Status) {
    assert_eq!(st, 0, "{what} failed with status {st}");
}

/// A store opened through the C API, with queue "q" and a 100 B message to send.
struct CStore {
    s: H,
    q: H,
    m: H,
    _dir: tempfile::TempDir,
}

impl CStore {
    fn new(cfg: &Cfg) -> CStore {
        let dir = cfg.tempdir("mqlite-c");
        let path = dir.path().to_str().expect("UTF-8 path");
        let body = super::body(100);
        let (mut s, mut q, mut m) = (
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
        let e = std::ptr::null_mut();
        unsafe {
            ok(
                "open",
                mqlite_store_open(
                    path.as_ptr().cast(),
                    path.len(),
                    std::ptr::null(),
                    &mut s,
                    e,
                ),
            );
            ok("queue", mqlite_store_queue(s, c"q".as_ptr(), 1, &mut q, e));
            ok(
                "message",
                mqlite_message_new(body.as_ptr(), body.len(), &mut m, e),
            );
        }
        CStore { s, q, m, _dir: dir }
    }

    /// `n` messages with `mqlite_queue_send_batch` of 1,000, flushed.
    fn fill(&self, n: usize) {
        let batch = vec![self.m; 1000];
        let mut left = n;
        while left > 0 {
            let k = left.min(1000);
            let e = std::ptr::null_mut();
            unsafe {
                ok(
                    "send_batch",
                    mqlite_queue_send_batch(self.q, batch.as_ptr(), k, std::ptr::null_mut(), e),
                )
            };
            left -= k;
        }
        unsafe { ok("flush", mqlite_store_flush(self.s, std::ptr::null_mut())) };
    }
}

impl Drop for CStore {
    fn drop(&mut self) {
        unsafe {
            mqlite_message_free(self.m);
            mqlite_queue_free(self.q);
            ok("close", mqlite_store_close(self.s, std::ptr::null_mut()));
            mqlite_store_free(self.s);
        }
    }
}

unsafe extern "C" fn on_sent(ud: *mut c_void, st: Status, _id: u64, _e: *const Opaque) {
    // SAFETY: `ud` is the `Completions` the step keeps alive until every callback fired.
    unsafe { &*(ud as *const Completions) }.hit(st == 0);
}

/// W2 through C: `mqlite_queue_send_async` with a callback per message, timed until every
/// callback fired.
pub(crate) fn c_async<'a>(cfg: &Cfg) -> Step<'a> {
    let c = CStore::new(cfg);
    Box::new(move |k| {
        // The whole store, not just its pointer fields (a closure would capture only those,
        // and the store would be closed when this function returns).
        let c = &c;
        let done = Completions::new(k);
        let ud = std::sync::Arc::as_ptr(&done) as *mut c_void;
        let t0 = Instant::now();
        for _ in 0..k {
            let st = unsafe {
                mqlite_queue_send_async(c.q, c.m, Some(on_sent), ud, None, std::ptr::null_mut())
            };
            ok("send_async", st);
        }
        done.wait();
        t0.elapsed()
    })
}

/// W3 through C: a flushed backlog of `n` (untimed), drained with `mqlite_queue_receive_into`
/// (`batch` at a time), each body read, then `mqlite_delivery_batch_ack`.
pub(crate) fn c_w3<'a>(cfg: &Cfg, n: usize, batch: usize) -> Step<'a> {
    let c = CStore::new(cfg);
    c.fill(n);
    let batch_obj = CBatch(unsafe { mqlite_delivery_batch_new() });
    Box::new(move |k| {
        // Whole objects, not their pointer fields (a closure would capture only those, and
        // the store and batch would be freed when this function returns).
        let (c, b) = (&c, &batch_obj);
        let b = b.0;
        let t0 = Instant::now();
        let mut got = 0;
        while got < k {
            let mut m = 0usize;
            let st = unsafe {
                mqlite_queue_receive_into(
                    c.q,
                    batch.min(k - got),
                    0,
                    b,
                    &mut m,
                    std::ptr::null_mut(),
                )
            };
            ok("receive_into (the backlog ran dry?)", st);
            for i in 0..m {
                let (mut data, mut len) = (std::ptr::null(), 0usize);
                unsafe {
                    let d = mqlite_delivery_batch_get(b, i);
                    ok(
                        "body",
                        mqlite_message_body(mqlite_delivery_message(d), &mut data, &mut len),
                    );
                }
                assert_eq!(len, 100);
            }
            unsafe {
                ok(
                    "batch_ack",
                    mqlite_delivery_batch_ack(b, std::ptr::null_mut()),
                )
            };
            got += m;
        }
        t0.elapsed()
    })
}

/// A delivery batch, freed with the step.
struct CBatch(H);

impl Drop for CBatch {
    fn drop(&mut self) {
        unsafe { mqlite_delivery_batch_free(self.0) };
    }
}
