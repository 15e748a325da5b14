//! Transactions: sends and acks across queues committed as one TXN record, all or nothing.

use std::collections::HashMap;

use super::batch::Counted;
use super::record::{txn_begin, txn_end};
use super::send::payload_of;
use super::{ConsumerId, DeliveryRef, Engine, TxnDest, TxnSpec};
use crate::error::{Error, ErrorKind, Result};
use crate::message::MessageId;

impl Engine {
    /// Hands delivery `d` to a transaction (an ack added to it): from now on the transaction,
    /// not the consumer, owns it (as in JMS), so closing the consumer does not fail it, and the
    /// transaction's commit acks it or its rollback fails it. `AlreadySettled` if it is no
    /// longer in flight under its tag; `Closed` on a closed store.
    pub(crate) fn txn_claim(&self, d: DeliveryRef) -> Result<()> {
        let mut g = self.shared.lock();
        g.check()?;
        let q = &mut g.queues[d.queue.0 as usize];
        match q.inflight.get_mut(&d.id.0) {
            Some(f) if f.tag == d.tag.0 => f.consumer = ConsumerId::NONE.0,
            _ => {
                return Err(Error::new(
                    ErrorKind::AlreadySettled,
                    format!(
                        "delivery of {} on queue {:?} is already settled (or timed out)",
                        d.id, q.name
                    ),
                ))
            }
        }
        g.forget_received(d.consumer, d.id.0, d.tag);
        Ok(())
    }

    /// Commits `spec`: every send and ack takes effect, as one durable journal record; returns
    /// the ids of the sent messages in order. Everything is checked first (messages, room in
    /// every queue — at a limit each queue's overflow policy applies as for its sends:
    /// `reject` fails with `QueueFull`, `drop_oldest` dead-letters the oldest, `block` waits
    /// up to its timeout —, that every delivery is still in flight under its tag), so that
    /// applying cannot fail halfway; on error nothing took effect (a full disk: `NoSpace`).
    pub(crate) fn commit_txn(&self, spec: &TxnSpec) -> Result<Vec<MessageId>> {
        let shared = &self.shared;
        let mut g = shared.lock();
        g.check()?;
        let mut need: HashMap<u32, (u64, u64)> = HashMap::new();
        for (to, m) in &spec.sends {
            let (what, targets) = match to {
                TxnDest::Queue(q) => {
                    let name = &g.queues[q.0 as usize].name;
                    (
                        format!("queue {name:?}"),
                        g.check_message(m).map(|()| vec![q.0]),
                    )
                }
                // A publish needs room in every subscription its pattern matches (its selector
                // is not evaluated yet: the room check is conservative).
                TxnDest::Topic(t) => (format!("topic {t:?}"), g.check_publish(t, m)),
            };
            let targets = targets.map_err(|e| {
                Error::new(
                    e.kind(),
                    format!("message for {what} in transaction: {}", e.message()),
                )
            })?;
            for qid in targets {
                let n = need.entry(qid).or_default();
                n.0 += 1;
                n.1 += payload_of(m);
            }
        }
        // Room in every queue, by each queue's overflow policy (as `send_batch`). A wait
        // releases the lock: every queue is looked at again until all have room at once.
        let mut need: Vec<(u32, u64, u64)> =
            need.into_iter().map(|(q, (n, b))| (q, n, b)).collect();
        need.sort_unstable();
        for &(qid, n, b) in &need {
            // More than the queue can hold even empty: no dropping makes room, since a
            // transaction's own sends are not dropped (it is one atomic record). Said as it is,
            // rather than after dropping every message the queue had.
            let q = &g.queues[qid as usize];
            let over_count = q.opts.max_messages.filter(|&m| n > m);
            let counted = super::send::counted_bytes(n, b);
            let over_bytes = q.opts.max_bytes.filter(|&m| n > 1 && counted > m);
            let limit = match (over_count, over_bytes) {
                (Some(m), _) => Some(format!("max_messages {m}")),
                (None, Some(m)) => Some(format!("max_bytes {m} ({counted} bytes counted)")),
                (None, None) => None,
            };
            if let Some(limit) = limit {
                return Err(Error::new(
                    ErrorKind::QueueFull,
                    format!(
                        "transaction: its {n} sends to queue {:?} cannot fit {limit} at once \
                         (a transaction's own sends are never dropped to make room); commit \
                         fewer sends per transaction",
                        q.name
                    ),
                ));
            }
        }
        while let Some(&(qid, n, b)) = need
            .iter()
            .find(|&&(qid, n, b)| !g.queues[qid as usize].room_for(n, b))
        {
            g = self
                .wait_room_for(g, qid, n, b)
                .map_err(|e| Error::new(e.kind(), format!("transaction: {}", e.message())))?;
            g.check()?;
        }
        let now = shared.now();
        for d in &spec.acks {
            if g.is_settled(d.queue.0, d.id.0, d.tag) {
                return Err(Error::new(
                    ErrorKind::AlreadySettled,
                    format!("{} is no longer in flight", d.id),
                ));
            }
        }
        let start = txn_begin(&mut g.pending.buf);
        let mut ids = vec![MessageId(0); spec.sends.len()];
        // Journaled sends, publishes and acks inside the TXN record; memory queues after (they
        // cannot fail). A publish's copies for non-durable subscriptions are made with its
        // record: nothing after it can fail.
        for pass in [true, false] {
            for (i, (to, m)) in spec.sends.iter().enumerate() {
                match to {
                    TxnDest::Queue(q) if g.queues[q.0 as usize].opts.journaled() == pass => {
                        ids[i] = MessageId(g.send_in_txn(q.0, m, now)?.0);
                    }
                    TxnDest::Topic(t) if pass => {
                        ids[i] = MessageId(g.publish_to(t, m, now)?.id);
                    }
                    _ => {}
                }
            }
            if pass {
                for d in &spec.acks {
                    g.forget_received(d.consumer, d.id.0, d.tag);
                    let held = g.queues[d.queue.0 as usize].inflight.get(&d.id.0);
                    let entry = held.map(|f| (f.entry, f.tag));
                    g.ack(d.queue.0, &[(d.id.0, d.tag)])?;
                    // A full disk refuses the TXN record as a whole (it carries the sends):
                    // then the acked message is back in its queue.
                    if let Some((e, tag)) = entry {
                        g.note_restore(start, d.queue.0, e, Counted::Acked, true, Some(tag));
                    }
                }
                txn_end(&mut g.pending.buf, start);
            }
        }
        g.pending.needs_sync = true;
        shared.avail.notify_all();
        shared.room.notify_all();
        let mut g = self.commit(g)?;
        // Refused as a whole on a full disk (see `commit::carries_message`): nothing took effect.
        let refused: Vec<Error> = ids
            .iter()
            .map(|id| id.0)
            .chain(spec.acks.iter().map(|d| d.id.0))
            .filter_map(|id| g.refused.remove(&id))
            .collect();
        if let Some(e) = refused.into_iter().next() {
            return Err(Error::new(
                ErrorKind::NoSpace,
                format!(
                    "the transaction was not committed (nothing of it took effect): {}",
                    e.message()
                ),
            ));
        }
        Ok(ids)
    }
}
