//! Transactions: sends and acks across queues, committed as one journal record (one engine
//! request at commit).

use crate::delivery::Delivery;
use crate::engine::{TxnDest, TxnSpec};
use crate::error::{Error, Result};
use crate::message::{Message, MessageId};
use crate::queue::Queue;
use crate::remote::backend::Backend;
use crate::store::Store;

/// A transaction: sends, publishes and acks, across any queues and topics of one store, that take effect together at
/// [`commit`](Transaction::commit) — one journal record, durable when `commit` returns — or not at
/// all. [`rollback`](Transaction::rollback) (or dropping it uncommitted) discards the sends and
/// makes the acked deliveries fail: they count as failed deliveries under the redelivery policy,
/// as a JMS session rollback does.
///
/// A full queue fails the commit with `QueueFull` (a transaction does not block on a limit).
pub struct Transaction {
    engine: Backend,
    sends: Vec<(TxnDest, Message)>,
    acks: Vec<Delivery>,
    finished: bool,
}

impl Store {
    /// Begins a transaction.
    pub fn transaction(&self) -> Transaction {
        Transaction {
            engine: self.engine.clone(),
            sends: Vec::new(),
            acks: Vec::new(),
            finished: false,
        }
    }
}

impl Transaction {
    /// Whether `q` belongs to this transaction's store.
    pub(crate) fn same_store(&self, q: &Queue) -> bool {
        self.engine.same(&q.engine)
    }

    fn check_store(&self, q: &Queue) -> Result<()> {
        if self.same_store(q) {
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
        self.engine.check()?;
        self.check_store(queue)?;
        self.sends.push((TxnDest::Queue(queue.id), msg.into()));
        Ok(())
    }

    /// Adds a publish to `topic`; at commit it reaches the subscriptions that match then, in the
    /// same journal record as the transaction's sends and acks (all or nothing). Its id is among
    /// those `commit` returns, in the order added.
    pub fn publish(&mut self, topic: &crate::Topic, msg: impl Into<Message>) -> Result<()> {
        if !self.engine.same(topic.engine()) {
            return Err(Error::invalid(format!(
                "topic {:?} belongs to another store",
                topic.name()
            )));
        }
        self.sends
            .push((TxnDest::Topic(topic.name().into()), msg.into()));
        Ok(())
    }

    /// Adds an ack; the delivery stays in flight until commit (acked) or rollback (failed).
    /// The transaction owns it from now on (as in JMS): closing its consumer does not fail it.
    pub fn ack(&mut self, mut delivery: Delivery) -> Result<()> {
        self.check_store(delivery.queue())?;
        self.engine.txn_claim(delivery.reference())?;
        delivery.claimed_by_transaction();
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
    ///
    /// A queue at its `max_messages`/`max_bytes` applies its overflow policy as for a send
    /// (`drop_oldest` dead-letters its oldest, `block` waits up to its timeout).
    /// Errors: `QueueFull` (`reject`, a `block` timeout, every message in flight),
    /// `AlreadySettled` for an ack whose delivery is no longer in flight, `NoSpace` when the disk
    /// is full (the store stays usable; see `mqlite::docs::durability`), `Closed`/`Poisoned`.
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
        let spec = TxnSpec {
            sends: std::mem::take(&mut self.sends),
            acks: self.acks.iter().map(Delivery::reference).collect(),
        };
        let ids = self.engine.commit_txn(spec)?;
        for d in self.acks.iter_mut() {
            d.mark_settled();
        }
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
