//! Deliveries handed over from one owner process to the next (SPEC §10: "a normal close() of
//! the owner hands over without any error in the clients").
//!
//! When an owner closes cleanly, the deliveries its client processes hold stay in flight: the
//! owner lists them — (queue, message id, delivery count) — in the store directory's
//! `HANDOVER` file (`remote::owner`). The next owner's recovery finds them in flight (a DELIVER
//! record and no settle) like the deliveries of a crashed process, but instead of failing them
//! at the queue's first declaration it keeps them in flight for the clients: a client settles
//! one by naming (queue, id, delivery count), and nothing counts as a failed delivery. What no
//! client settles within the hold time fails then, as a crashed process's delivery does. After
//! a crash there is no list: today's path (the settle fails with `DeliveryLost`, the message
//! comes back counted).

use std::collections::{HashMap, HashSet};

use super::{ConsumerId, DeliveryRef, DeliveryTag, Engine, QueueId, Settle};
use crate::error::{Error, ErrorKind, Result};
use crate::message::MessageId;

/// The consumer id that holds handed-over deliveries in the next owner (no consumer of the
/// engine gets it: ids count up from 1).
pub(crate) const HANDED_OVER: u64 = u64::MAX;

/// One handed-over delivery: queue id, message id, delivery count, and until when (ms, by the
/// store's clock) the next owner holds it for its client.
pub(crate) type Handed = (u32, u64, u32, u64);

/// How long the deliveries an owner hands over are held for their clients (ms): twice the time
/// a client waits for a next owner (`connect_timeout`), at least a minute. A delivery its client
/// does not settle by then fails, as a crashed process's delivery does. The hold runs from the
/// close that handed it over, across every owner after it (review r14 #15: each next owner
/// restarted it, so a store opened only by short-lived processes — CLI commands, cron jobs —
/// held a dead client's deliveries for good).
pub(crate) fn hold_ms(o: &crate::StoreOptions) -> u64 {
    let t = o.connect_timeout.saturating_mul(2).as_millis();
    u64::try_from(t).unwrap_or(u64::MAX).max(60_000)
}

impl Engine {
    /// The deliveries of journaled queues held in flight by `consumers` (the consumers of the
    /// owner's client connections), held from now for [`hold_ms`], and those handed over to
    /// this owner and not settled yet (handed over again, held until the time they were held
    /// until here), as [`Handed`]. Read after the engine closed, when what the state says is
    /// what the journal says.
    pub(crate) fn in_flight_of(&self, consumers: &HashSet<u64>) -> Vec<Handed> {
        let g = self.shared.lock();
        let until = self.shared.now().saturating_add(hold_ms(&self.shared.opts));
        let mut out = Vec::new();
        for q in g.queues.iter().filter(|q| q.opts.journaled()) {
            for f in q.inflight.values() {
                if f.tag == 0 {
                    continue;
                }
                if f.consumer == HANDED_OVER {
                    let held = f.deadline.unwrap_or(until);
                    out.push((q.qid, f.entry.id, f.entry.count, held));
                } else if consumers.contains(&f.consumer) {
                    out.push((q.qid, f.entry.id, f.entry.count, until));
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// Takes over `items`, the deliveries the previous owner handed over at its clean close:
    /// each one recovery found in flight with the same delivery count is held for its client
    /// (settled by [`Engine::settle_handed_over`]) instead of failing as a crashed delivery,
    /// until the time the list gives (its hold runs from the close that first handed it over);
    /// what is not settled by then fails, as a crashed delivery — at once if that time passed.
    /// Returns how many were taken over (an item the journal no longer has in flight, as
    /// listed, is not: the list is only advice).
    /// (A time of 0, from a list of version 1, is held from now.)
    pub(crate) fn adopt_handover(&self, items: &[Handed]) -> usize {
        let now = self.shared.now();
        let from_now = now.saturating_add(hold_ms(&self.shared.opts));
        let wanted: HashMap<(u32, u64), (u32, u64)> = items
            .iter()
            .map(|&(q, i, c, until)| ((q, i), (c, if until == 0 { from_now } else { until })))
            .filter(|&(_, (_, until))| until > now)
            .collect();
        let mut g = self.shared.lock();
        let st = &mut *g;
        let mut n = 0;
        for qid in 0..st.queues.len() {
            if st.queues[qid].crashed.is_empty() {
                continue;
            }
            let crashed = std::mem::take(&mut st.queues[qid].crashed);
            let mut keep = Vec::with_capacity(crashed.len());
            for id in crashed {
                let q = &st.queues[qid];
                let held = wanted
                    .get(&(qid as u32, id))
                    .filter(|&&(c, _)| q.inflight.get(&id).is_some_and(|f| f.entry.count == c));
                let Some(&(_, until)) = held else {
                    keep.push(id);
                    continue;
                };
                let tag = st.tag();
                let q = &mut st.queues[qid];
                if let Some(f) = q.inflight.get_mut(&id) {
                    f.consumer = HANDED_OVER;
                    f.tag = tag.0;
                    f.deadline = Some(until);
                    // The earliest hold to end (each item has its own: see `Handed`).
                    q.handover_until = Some(q.handover_until.map_or(until, |t| t.min(until)));
                    n += 1;
                }
            }
            st.queues[qid].crashed = keep;
        }
        n
    }

    /// Settles a delivery the previous owner handed over, named by queue, message id and
    /// delivery count (its tag was the previous owner's). `DeliveryLost` if no such delivery
    /// was handed over (the previous owner crashed, or it was settled or timed out since).
    pub(crate) fn settle_handed_over(
        &self,
        queue: QueueId,
        id: MessageId,
        count: u32,
        op: Settle<'_>,
    ) -> Result<()> {
        let d = {
            let g = self.shared.lock();
            g.check()?;
            let f = g
                .queues
                .get(queue.0 as usize)
                .and_then(|q| q.inflight.get(&id.0))
                .filter(|f| f.consumer == HANDED_OVER && f.entry.count == count);
            match f {
                Some(f) => DeliveryRef {
                    queue,
                    id,
                    tag: DeliveryTag(f.tag),
                    consumer: ConsumerId(HANDED_OVER),
                    origin: 0,
                    count,
                },
                None => {
                    return Err(Error::new(
                        ErrorKind::DeliveryLost,
                        "this delivery was handed out by a store owner process that has since \
                         died (or it was not settled in time after its owner's close): it can \
                         no longer be settled; the message comes back with its delivery count \
                         incremented",
                    ))
                }
            }
        };
        self.settle(d, op)
    }
}
