//! Compaction on demand (`mqlite compact`).
//!
//! Compaction normally rides on group commits: each commit removes the oldest segments with
//! nothing live and, when the oldest live segment holds less than `compact_below` of live data,
//! copies its live items forward so that it can go at the next commit. A store with no traffic
//! therefore never compacts; [`Store::compact`] drives those same commits until there is
//! nothing left to do.

use crate::error::Result;
use crate::store::Store;

pub use crate::engine::CompactReport;

impl Store {
    /// Compacts now: runs group commits (empty ones if nothing is pending) until every segment
    /// older than the current tail segment is gone, or compaction stops making progress (the
    /// oldest segment is mostly live: above the store's `compact_below`, default 0.25; open the
    /// store with `compact_below: 1.0` to rewrite every older segment). Live messages, their
    /// delivery counts and dedup entries are copied forward, each copy durable before the old
    /// segment is removed, so a crash at any moment loses nothing. The copies go into segments
    /// of this open's `segment_bytes`: open a store written with small segments with larger
    /// ones and its compaction can grow it (a new segment is preallocated up to 4 MiB at once,
    /// plus a reserve of an eighth of its size, at most 1 MiB); `mqlite compact` opens with
    /// the store's own segment size for that reason.
    ///
    /// On a full disk (less than a segment free) the copies go into a short segment sized to
    /// them, or, with no room even for that, into up to half the tail's reserve (the segment
    /// they empty is removed at the next commit, issue 15 §5).
    ///
    /// Errors: `Closed`, `Poisoned`, the `Io` error of a failed commit, or `NoSpace` when
    /// compaction stopped because the disk has room neither for a short segment holding the
    /// oldest segment's live data nor for it in the reserve: the message names the free bytes
    /// needed and the segments before and after (nothing is lost; free space and compact
    /// again).
    pub fn compact(&self) -> Result<CompactReport> {
        self.engine.compact_now()
    }
}
