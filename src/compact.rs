//! Compaction on demand (`mqlite compact`).
//!
//! Compaction normally rides on group commits: each commit removes the oldest segments with
//! nothing live and, when the oldest live segment holds less than `compact_below` of live data,
//! copies its live items forward so that it can go at the next commit. A store with no traffic
//! therefore never compacts; [`Store::compact`] drives those same commits until there is
//! nothing left to do.

use crate::error::Result;
use crate::store::Store;

/// What [`Store::compact`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// Journal segments before.
    pub segments_before: usize,
    /// Journal segments after.
    pub segments_after: usize,
    /// Disk bytes of the journal before (segments are preallocated: this is disk use).
    pub bytes_before: u64,
    /// Disk bytes of the journal after.
    pub bytes_after: u64,
    /// Group commits run to get there.
    pub commits: usize,
}

impl Store {
    /// Compacts now: runs group commits (empty ones if nothing is pending) until every segment
    /// older than the current tail segment is gone, or compaction stops making progress (the
    /// oldest segment is mostly live: above the store's `compact_below`, default 0.25; open the
    /// store with `compact_below: 1.0` to rewrite every older segment). Live messages, their
    /// delivery counts and dedup entries are copied forward, each copy durable before the old
    /// segment is removed, so a crash at any moment loses nothing.
    ///
    /// Errors: `Closed`, `Poisoned`, or the `Io`/`NoSpace` error of a failed commit.
    pub fn compact(&self) -> Result<CompactReport> {
        let shape = |g: &crate::store::Inner| {
            (
                g.segs.len(),
                g.segs.iter().map(|s| s.1).sum::<u64>(),
                g.segs.first().map(|s| s.0),
            )
        };
        let (segments_before, bytes_before, start_tail) = {
            let g = self.shared.lock();
            g.check()?;
            let (n, b, _) = shape(&g);
            (n, b, g.segs.last().map(|s| s.0).unwrap_or(0))
        };
        let mut commits = 0;
        let mut stalled = 0;
        let mut last = None;
        // Each segment needs one commit to be copied forward and one to be removed.
        while commits < 2 * segments_before + 8 {
            let g = self.shared.lock();
            g.check()?;
            let (n, _, head) = shape(&g);
            if head.is_none_or(|h| h >= start_tail) {
                break;
            }
            if last == Some((n, head)) {
                stalled += 1;
                if stalled > 2 {
                    break;
                }
            } else {
                stalled = 0;
                last = Some((n, head));
            }
            // Wait for the batch now being gathered (possibly empty) to be committed: every
            // commit plans compaction first.
            let no = g.batch_no;
            drop(self.shared.wait_done(g, no)?);
            commits += 1;
        }
        let g = self.shared.lock();
        let (segments_after, bytes_after, _) = shape(&g);
        Ok(CompactReport {
            segments_before,
            segments_after,
            bytes_before,
            bytes_after,
            commits,
        })
    }
}
