//! Transactions: sends and acks across queues, committed as one journal record.

use std::sync::Arc;

use crate::delivery::Delivery;
use crate::error::{Error, ErrorKind, Result};
use crate::message::{Message, MessageId};
use crate::queue::Queue;
use crate::store::{Shared, Store};

/// A transaction: sends and acks, across any queues of one store, that take effect together at
/// [`commit`](Transaction::commit) — one journal record, durable when `commit` returns — or not at
/// all. [`rollback`](Transaction::rollback) (or dropping it uncommitted) discards the sends and
/// makes the acked deliveries fail: they count as failed deliveries under the redelivery policy,
/// as a JMS session rollback does.
///
/// A full queue fails the commit with `QueueFull` (a transaction does not block on a limit).
pub struct Transaction {
    shared: Arc<Shared>,
    sends: Vec<(Queue, Message)>,
    acks: Vec<Delivery>,
    finished: bool,
}

impl Store {
    /// Begins a transaction.
    pub fn transaction(&self) -> Transaction {
        Transaction {
            shared: self.shared.clone(),
            sends: Vec::new(),
            acks: Vec::new(),
            finished: false,
        }
    }
}

impl Transaction {
    fn same_store(&self, q: &Queue) -> Result<()> {
        if Arc::ptr_eq(&self.shared, &q.shared) {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "queue {:?} belongs to another store",
                q.name()
            )))
        }
    }

    /// Adds a send; the message is stored at commit.
    pub fn send(&mut self, queue: &Queue, msg: impl Into<Message>) -> Result<()> {
        self.same_store(queue)?;
        self.sends.push((queue.clone(), msg.into()));
        Ok(())
    }

    /// Adds an ack; the delivery stays in flight until commit (acked) or rollback (failed).
    pub fn ack(&mut self, delivery: Delivery) -> Result<()> {
        self.same_store(delivery.queue())?;
        self.acks.push(delivery);
        Ok(())
    }

    /// Number of sends and acks added so far.
    pub fn len(&self) -> usize {
        self.sends.len() + self.acks.len()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Commits: every send and ack takes effect, as one durable journal record; returns the ids
    /// of the sent messages in order. On error nothing took effect and the acked deliveries are
    /// failed as in a rollback.
    pub fn commit(mut self) -> Result<Vec<MessageId>> {
        self.finished = true;
        match self.try_commit() {
            Ok(ids) => Ok(ids),
            Err(e) => {
                let _ = self.fail_acks();
                Err(e)
            }
        }
    }

    fn try_commit(&mut self) -> Result<Vec<MessageId>> {
        let shared = self.shared.clone();
        let mut g = shared.lock();
        g.check()?;
        let now = shared.now();
        // Validate everything first, so that applying cannot fail halfway.
        let mut need: std::collections::HashMap<u32, (u64, u64)> = Default::default();
        for (q, m) in &self.sends {
            if m.body().len() > g.max_body || m.get_priority() > 9 {
                return Err(Error::invalid(format!(
                    "invalid message for queue {:?} in transaction",
                    q.name()
                )));
            }
            let n = need.entry(q.qid).or_default();
            n.0 += 1;
            n.1 += (m.body().len() + crate::state::SEND_OVERHEAD) as u64;
        }
        for (&qid, &(n, b)) in &need {
            let q = &g.queues[qid as usize];
            let over_n = q
                .opts
                .max_messages
                .is_some_and(|m| q.count + q.pending_count + n > m);
            let over_b = q
                .opts
                .max_bytes
                .is_some_and(|m| q.bytes + q.pending_bytes + b > m);
            if over_n || over_b {
                return Err(Error::new(
                    ErrorKind::QueueFull,
                    format!("queue {:?} has no room for the transaction", q.name),
                ));
            }
        }
        for d in &self.acks {
            let (qid, id, tag) = d.parts();
            let ok = g.queues[qid as usize]
                .inflight
                .get(&id)
                .is_some_and(|f| tag.is_none_or(|(c, n)| c == f.consumer && n == f.entry.count));
            if !ok {
                return Err(Error::new(
                    ErrorKind::AlreadySettled,
                    format!("{} is no longer in flight", d.id()),
                ));
            }
        }
        let start = g.txn_begin();
        let mut ids = vec![MessageId(0); self.sends.len()];
        // Journaled sends and acks inside the TXN record; memory queues after (they cannot fail).
        for pass in [true, false] {
            for (i, (q, m)) in self.sends.iter().enumerate() {
                if g.queues[q.qid as usize].opts.journaled() == pass {
                    let (id, _) = g.send(q.qid, m, now)?;
                    ids[i] = MessageId(id);
                }
            }
            if pass {
                for d in &self.acks {
                    let (qid, id, tag) = d.parts();
                    g.ack(qid, &[id], tag)?;
                }
            }
            if pass {
                g.txn_end(start);
            }
        }
        for d in self.acks.iter_mut() {
            d.mark_settled();
        }
        g.pending.needs_sync = true;
        shared.avail.notify_all();
        shared.room.notify_all();
        let _g = shared.commit(g)?;
        Ok(ids)
    }

    fn fail_acks(&mut self) -> Result<()> {
        let mut first = None;
        for d in self.acks.drain(..) {
            if let Err(e) = d.nack("transaction rolled back") {
                first = first.or(Some(e));
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Rolls back: the sends are discarded; the acked deliveries fail (redelivery policy).
    pub fn rollback(mut self) -> Result<()> {
        self.finished = true;
        self.sends.clear();
        self.fail_acks()
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if !self.finished {
            self.sends.clear();
            let _ = self.fail_acks();
        }
    }
}
