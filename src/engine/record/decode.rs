//! Decoders: a record body to a [`Record`] with every length checked, and the message inside a
//! stored record.

use super::{
    flag, get_bincode, kind, Cursor, Relocation, Requeue, SendHeader, IN_FLIGHT_BIT, SEND_HEADER,
};
use crate::journal::frame::RECORD_HEADER;
use crate::message::{Message, MessageId, Meta};

/// A decoded SEND body.
#[derive(Debug, Clone, Copy)]
pub struct SendRec<'a> {
    /// The header.
    pub h: SendHeader,
    /// The meta bytes.
    pub meta: &'a [u8],
    /// The message body.
    pub body: &'a [u8],
}

impl<'a> SendRec<'a> {
    /// Decodes a SEND body.
    pub fn get(c: &mut Cursor<'a>) -> Option<Self> {
        let h = SendHeader::get(c)?;
        let meta = c.take(h.meta_len as usize)?;
        let body = c.rest();
        Some(SendRec { h, meta, body })
    }
    /// The decoded meta (`None` if it does not decode).
    pub(crate) fn meta(&self) -> Option<Meta> {
        if self.meta.is_empty() {
            Some(Meta::default())
        } else {
            // A meta of format version 1 lacks the trailing topic: read it compatibly.
            get_bincode::<Meta>(self.meta)
                .or_else(|| get_bincode::<crate::message::MetaV1>(self.meta).map(Meta::from))
        }
    }
    /// Whether the meta holds a dedup key.
    pub fn has_dedup(&self) -> bool {
        self.h.flags & flag::DEDUP != 0
    }
    /// Whether the meta holds a group key.
    pub fn has_group(&self) -> bool {
        self.h.flags & flag::GROUP != 0
    }
    /// The message it holds (`None` if its meta does not decode).
    pub(crate) fn to_message(self) -> Option<Message> {
        let mut m = Message::new(self.body);
        m.meta = self.meta()?;
        m.priority = self.h.priority;
        m.id = Some(MessageId(self.h.id));
        m.timestamp_ms = self.h.timestamp;
        m.expires_at_ms = self.h.expires_at;
        Some(m)
    }
}

/// The ids of an ACK or REMOVE record, decoded as iterated.
#[derive(Debug, Clone, Copy)]
pub struct Ids<'a>(&'a [u8]);

impl Iterator for Ids<'_> {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        let (head, rest) = self.0.split_first_chunk::<8>()?;
        self.0 = rest;
        Some(u64::from_le_bytes(*head))
    }
}

/// The (id, delivery count) items of a DELIVER record, decoded as iterated.
#[derive(Debug, Clone, Copy)]
pub struct Counts<'a>(&'a [u8]);

impl Iterator for Counts<'_> {
    type Item = (u64, u32);
    fn next(&mut self) -> Option<(u64, u32)> {
        let (id, rest) = self.0.split_first_chunk::<8>()?;
        let (count, rest) = rest.split_first_chunk::<4>()?;
        self.0 = rest;
        Some((u64::from_le_bytes(*id), u32::from_le_bytes(*count)))
    }
}

/// The queue ids of a PUBLISH record (LEB128), decoded as iterated; decoding the record
/// checked them all.
#[derive(Debug, Clone, Copy)]
pub struct Qids<'a> {
    b: &'a [u8],
    n: usize,
}

/// One LEB128 u32 from the front of `b`: the value and the bytes it took.
fn leb128(b: &[u8]) -> Option<(u32, usize)> {
    let mut v: u32 = 0;
    for (i, &x) in b.iter().enumerate().take(5) {
        v |= u32::from(x & 0x7f).checked_shl(7 * i as u32)?;
        if x & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

impl Iterator for Qids<'_> {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        let (v, used) = leb128(self.b)?;
        self.b = &self.b[used..];
        self.n -= 1;
        Some(v)
    }
}

impl Qids<'_> {
    /// How many references are left (all of them before iterating).
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether none is left.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
}

/// A SUBSCRIBE record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscribe<'a> {
    /// The subscription's queue.
    pub qid: u32,
    /// [`sub_flag`](super::sub_flag) bits.
    pub flags: u8,
    /// The subscription's name.
    pub name: &'a str,
    /// Its topic pattern.
    pub pattern: &'a str,
    /// Its selector text (empty: every message).
    pub selector: &'a str,
}

/// A decoded record. Decoding checks every length, so iterating what it holds cannot fail.
#[derive(Debug, Clone, Copy)]
pub enum Record<'a> {
    /// QUEUE.
    Queue {
        /// Queue id.
        qid: u32,
        /// Its name.
        name: &'a str,
    },
    /// SEND.
    Send(SendRec<'a>),
    /// DELIVER.
    Deliver {
        /// Queue id.
        qid: u32,
        /// (id, delivery count).
        items: Counts<'a>,
    },
    /// ACK.
    Ack {
        /// Queue id.
        qid: u32,
        /// Acked ids.
        ids: Ids<'a>,
    },
    /// REQUEUE.
    Requeue(Requeue<'a>),
    /// REMOVE.
    Remove {
        /// Queue id.
        qid: u32,
        /// One of [`why`](super::why).
        why: u8,
        /// Removed ids.
        ids: Ids<'a>,
    },
    /// DEAD.
    Dead {
        /// The queue it left.
        from_qid: u32,
        /// Its id there.
        from_id: u64,
        /// The copy in the dead-letter queue.
        send: SendRec<'a>,
    },
    /// RELOCATE.
    Relocate {
        /// The carried state.
        state: Relocation<'a>,
        /// The message.
        send: SendRec<'a>,
    },
    /// DEDUP.
    Dedup {
        /// Queue id.
        qid: u32,
        /// The message the key names.
        id: u64,
        /// When the key was first seen.
        at: u64,
        /// The key.
        key: &'a str,
    },
    /// PAD.
    Pad,
    /// TXN: the records inside, framed as in a frame payload.
    Txn(&'a [u8]),
    /// PUBLISH.
    Publish {
        /// The subscriptions' queues, one reference each.
        qids: Qids<'a>,
        /// The message (its header's `qid` is [`NO_QUEUE`](super::NO_QUEUE)).
        send: SendRec<'a>,
    },
    /// SUBSCRIBE.
    Subscribe(Subscribe<'a>),
    /// UNSUBSCRIBE.
    Unsubscribe {
        /// The subscription's queue.
        qid: u32,
    },
    /// GROUP.
    Group {
        /// Queue id.
        qid: u32,
        /// Parked (true) or unparked.
        parked: bool,
        /// The group key.
        key: &'a str,
    },
}

/// Why a record did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// A length, count or string is wrong for the record's kind.
    Malformed,
    /// The kind is not one of [`kind`].
    UnknownKind(u8),
}

fn list<'a>(c: &mut Cursor<'a>, item: usize) -> Option<&'a [u8]> {
    let n = c.u32()? as usize;
    let b = c.take(n.checked_mul(item)?)?;
    (c.pos == c.b.len()).then_some(b)
}

/// Decodes the body of a record of kind `k`.
// One arm per record kind: long because the schema has twelve kinds, and kept in one match so
// that every layout is decoded in one place, next to the table in the module docs.
pub fn decode(k: u8, body: &[u8]) -> std::result::Result<Record<'_>, DecodeError> {
    let mut c = Cursor::new(body);
    let c = &mut c;
    let r = match k {
        kind::QUEUE => (|| {
            let qid = c.u32()?;
            Some(Record::Queue {
                qid,
                name: c.rest_str()?,
            })
        })(),
        kind::SEND => SendRec::get(c).map(Record::Send),
        kind::DELIVER => (|| {
            let qid = c.u32()?;
            Some(Record::Deliver {
                qid,
                items: Counts(list(c, 12)?),
            })
        })(),
        kind::ACK => (|| {
            let qid = c.u32()?;
            Some(Record::Ack {
                qid,
                ids: Ids(list(c, 8)?),
            })
        })(),
        kind::REQUEUE => (|| {
            Some(Record::Requeue(Requeue {
                qid: c.u32()?,
                id: c.u64()?,
                count: c.u32()?,
                not_before: c.u64()?,
                failed_at: c.u64()?,
                reason: c.rest_str()?,
            }))
        })(),
        kind::REMOVE => (|| {
            let qid = c.u32()?;
            let why = c.u8()?;
            Some(Record::Remove {
                qid,
                why,
                ids: Ids(list(c, 8)?),
            })
        })(),
        kind::DEAD => (|| {
            let from_qid = c.u32()?;
            let from_id = c.u64()?;
            Some(Record::Dead {
                from_qid,
                from_id,
                send: SendRec::get(c)?,
            })
        })(),
        kind::RELOCATE => (|| {
            let state = c.u32()?;
            let not_before = c.u64()?;
            let first_failure = c.u64()?;
            let last_failure = c.u64()?;
            let n = c.u32()? as usize;
            let reason = std::str::from_utf8(c.take(n)?).ok()?;
            Some(Record::Relocate {
                state: Relocation {
                    count: state & !IN_FLIGHT_BIT,
                    in_flight: state & IN_FLIGHT_BIT != 0,
                    not_before,
                    first_failure,
                    last_failure,
                    reason,
                },
                send: SendRec::get(c)?,
            })
        })(),
        kind::DEDUP => (|| {
            Some(Record::Dedup {
                qid: c.u32()?,
                id: c.u64()?,
                at: c.u64()?,
                key: c.rest_str()?,
            })
        })(),
        kind::PAD => Some(Record::Pad),
        kind::TXN => Some(Record::Txn(c.rest())),
        kind::GROUP => (|| {
            let qid = c.u32()?;
            let parked = c.u8()? != 0;
            Some(Record::Group {
                qid,
                parked,
                key: c.rest_str()?,
            })
        })(),
        kind::PUBLISH => (|| {
            let n = c.u32()? as usize;
            let start = c.pos;
            for _ in 0..n {
                let (_, used) = leb128(&c.b[c.pos..])?;
                c.pos += used;
            }
            let qids = Qids {
                b: &c.b[start..c.pos],
                n,
            };
            Some(Record::Publish {
                qids,
                send: SendRec::get(c)?,
            })
        })(),
        kind::SUBSCRIBE => (|| {
            let qid = c.u32()?;
            let flags = c.u8()?;
            let mut text = || {
                let n = u16::from_le_bytes(c.take(2)?.try_into().ok()?) as usize;
                std::str::from_utf8(c.take(n)?).ok()
            };
            let name = text()?;
            let pattern = text()?;
            Some(Record::Subscribe(Subscribe {
                qid,
                flags,
                name,
                pattern,
                selector: c.rest_str()?,
            }))
        })(),
        kind::UNSUBSCRIBE => (|| {
            let qid = c.u32()?;
            (c.pos == c.b.len()).then_some(Record::Unsubscribe { qid })
        })(),
        _ => return Err(DecodeError::UnknownKind(k)),
    };
    r.ok_or(DecodeError::Malformed)
}

/// The SEND body inside a whole stored record (kind, length and all) of kind SEND, DEAD,
/// RELOCATE or PUBLISH: what the index points at for every message.
pub(crate) fn send_in_record(rec: &[u8]) -> Option<SendRec<'_>> {
    let k = *rec.get(4)?;
    match decode(k, rec.get(RECORD_HEADER..)?).ok()? {
        Record::Send(s)
        | Record::Dead { send: s, .. }
        | Record::Relocate { send: s, .. }
        | Record::Publish { send: s, .. } => Some(s),
        _ => None,
    }
}

/// The bytes of the SEND body inside a whole stored record (for compaction's copy).
pub(crate) fn send_bytes_in_record(rec: &[u8]) -> Option<&[u8]> {
    let s = send_in_record(rec)?;
    let body_end = rec.len();
    let start = body_end - s.body.len() - s.meta.len() - SEND_HEADER;
    rec.get(start..body_end)
}

/// Decodes a whole stored record into its message.
pub(crate) fn decode_message(rec: &[u8]) -> Option<Message> {
    send_in_record(rec)?.to_message()
}
