//! Round trips of every record kind, and malformed records refused.

use super::*;
use crate::journal::frame::records;
use crate::message::{DeadLetterInfo, DeadLetterReason, MessageId, Meta, Value};

fn one(buf: &[u8]) -> Record<'_> {
    let mut it = records(buf);
    let (at, k, body) = it.next().expect("a record").expect("framed");
    assert_eq!(at, 0);
    assert!(it.next().is_none(), "exactly one record");
    decode(k, body).expect("decodes")
}

fn header(id: u64, qid: u32) -> SendHeader {
    SendHeader {
        id,
        qid,
        priority: 7,
        flags: 0,
        delivery_count: 2,
        timestamp: 11,
        expires_at: 12,
        deliver_at: 13,
        meta_len: 0,
    }
}

fn meta() -> Meta {
    Meta {
        properties: vec![("k".into(), Value::Int(42)), ("s".into(), "v".into())],
        correlation_id: Some("corr".into()),
        group: Some("g".into()),
        dedup_key: Some("d".into()),
        dead_letter: Some(DeadLetterInfo {
            original_queue: "orders".into(),
            original_id: MessageId(3),
            reason: DeadLetterReason::GroupParked,
            last_failure: "boom".into(),
            delivery_count: 4,
            first_failure_ms: 5,
            last_failure_ms: 6,
        }),
        repeat: Some((1000, 3)),
        topic: Some("orders.eu".into()),
    }
}

#[test]
fn send_header_roundtrip() {
    let h = SendHeader {
        meta_len: 14,
        flags: 5,
        ..header(9, 3)
    };
    let mut b = Vec::new();
    h.put(&mut b);
    assert_eq!(b.len(), SEND_HEADER);
    assert_eq!(SendHeader::get(&mut Cursor::new(&b)), Some(h));
}

#[test]
fn send_roundtrip_sets_every_flag() {
    let mut buf = Vec::new();
    let len = put_send(&mut buf, header(9, 3), &meta(), b"body").unwrap();
    assert_eq!(len as usize, buf.len());
    let Record::Send(s) = one(&buf) else {
        panic!("not a SEND")
    };
    assert_eq!(s.h.flags, flag::DEDUP | flag::GROUP | flag::REPEAT);
    assert_eq!((s.h.id, s.h.qid, s.h.priority), (9, 3, 7));
    assert_eq!(
        (s.h.timestamp, s.h.expires_at, s.h.deliver_at),
        (11, 12, 13)
    );
    assert_eq!(s.meta(), Some(meta()));
    assert_eq!(s.body, b"body");
    assert!(s.has_dedup() && s.has_group());
    let m = decode_message(&buf).unwrap();
    assert_eq!(
        (m.body(), m.id(), m.get_group()),
        (&b"body"[..], Some(MessageId(9)), Some("g"))
    );
    // No meta: no flags, an empty meta section.
    let mut buf = Vec::new();
    put_send(&mut buf, header(1, 0), &Meta::default(), b"").unwrap();
    let Record::Send(s) = one(&buf) else {
        panic!("not a SEND")
    };
    assert_eq!((s.h.flags, s.h.meta_len), (0, 0));
    assert_eq!(s.meta(), Some(Meta::default()));
}

#[test]
fn dead_and_relocate_roundtrip_and_locate_their_send() {
    let mut buf = Vec::new();
    put_dead(&mut buf, 2, 8, header(9, 3), &meta(), b"x").unwrap();
    let Record::Dead {
        from_qid,
        from_id,
        send,
    } = one(&buf)
    else {
        panic!("not a DEAD")
    };
    assert_eq!(
        (from_qid, from_id, send.h.id, send.body),
        (2, 8, 9, &b"x"[..])
    );
    assert_eq!(send_in_record(&buf).unwrap().h.id, 9);

    let copy = send_bytes_in_record(&buf).unwrap().to_vec();
    let state = Relocation {
        count: 5,
        in_flight: true,
        not_before: 77,
        first_failure: 1,
        last_failure: 2,
        reason: "why",
    };
    let mut buf = Vec::new();
    let len = put_relocate(&mut buf, &state, 3, &copy);
    assert_eq!(len as usize, buf.len());
    let Record::Relocate { state: got, send } = one(&buf) else {
        panic!("not a RELOCATE")
    };
    assert_eq!(got, state);
    assert_eq!((send.h.id, send.body), (9, &b"x"[..]));
    assert_eq!(send_bytes_in_record(&buf).unwrap(), &copy[..]);
    // The in-flight bit is bit 31 of the state word.
    assert_eq!(u32_at(&buf, RECORD_HEADER), 5 | IN_FLIGHT_BIT);
}

#[test]
fn small_records_roundtrip() {
    let mut b = Vec::new();
    put_queue(&mut b, 4, "orders");
    assert!(matches!(
        one(&b),
        Record::Queue {
            qid: 4,
            name: "orders"
        }
    ));

    let mut b = Vec::new();
    put_deliver(&mut b, 4, &[(1, 2), (3, 4)]);
    let Record::Deliver { qid, items } = one(&b) else {
        panic!()
    };
    assert_eq!((qid, items.collect::<Vec<_>>()), (4, vec![(1, 2), (3, 4)]));

    let mut b = Vec::new();
    put_ack(&mut b, 4, &[5, 6, 7]);
    let Record::Ack { qid, ids } = one(&b) else {
        panic!()
    };
    assert_eq!((qid, ids.collect::<Vec<_>>()), (4, vec![5, 6, 7]));

    let mut b = Vec::new();
    put_remove(&mut b, 4, why::EXPIRED, &[8]);
    let Record::Remove { qid, why: w, ids } = one(&b) else {
        panic!()
    };
    assert_eq!(
        (qid, w, ids.collect::<Vec<_>>()),
        (4, why::EXPIRED, vec![8])
    );

    let r = Requeue {
        qid: 4,
        id: 9,
        count: 3,
        not_before: 100,
        failed_at: 90,
        reason: "nope",
    };
    let mut b = Vec::new();
    put_requeue(&mut b, &r);
    assert!(matches!(one(&b), Record::Requeue(x) if x == r));

    let mut b = Vec::new();
    put_dedup(&mut b, 4, 9, 123, "key");
    assert!(matches!(
        one(&b),
        Record::Dedup {
            qid: 4,
            id: 9,
            at: 123,
            key: "key"
        }
    ));

    let mut b = Vec::new();
    put_group(&mut b, 4, true, "g");
    assert!(matches!(
        one(&b),
        Record::Group {
            qid: 4,
            parked: true,
            key: "g"
        }
    ));
}

#[test]
fn txn_holds_records_and_an_empty_one_vanishes() {
    let mut b = Vec::new();
    let t = txn_begin(&mut b);
    txn_end(&mut b, t);
    assert!(b.is_empty());
    let t = txn_begin(&mut b);
    put_ack(&mut b, 1, &[2]);
    put_queue(&mut b, 1, "q");
    txn_end(&mut b, t);
    let Record::Txn(inner) = one(&b) else {
        panic!()
    };
    let kinds: Vec<u8> = records(inner).map(|r| r.unwrap().1).collect();
    assert_eq!(kinds, vec![kind::ACK, kind::QUEUE]);
}

#[test]
fn malformed_and_unknown_records_are_refused() {
    assert_eq!(decode(99, b"").unwrap_err(), DecodeError::UnknownKind(99));
    // A count that claims more ids than the record holds, or fewer.
    let mut b = Vec::new();
    put_ack(&mut b, 4, &[5, 6]);
    let body = &b[RECORD_HEADER..];
    assert_eq!(
        decode(kind::ACK, &body[..body.len() - 1]).unwrap_err(),
        DecodeError::Malformed
    );
    let mut longer = body.to_vec();
    longer.push(0);
    assert_eq!(
        decode(kind::ACK, &longer).unwrap_err(),
        DecodeError::Malformed
    );
    assert_eq!(
        decode(kind::SEND, &[0; SEND_HEADER - 1]).unwrap_err(),
        DecodeError::Malformed
    );
    assert_eq!(
        decode(kind::QUEUE, &[0, 0, 0, 0, 0xff]).unwrap_err(),
        DecodeError::Malformed
    );
    // Every truncation of a valid record of each kind fails cleanly (no panic).
    let mut all = Vec::new();
    put_send(&mut all, header(1, 2), &meta(), b"b").unwrap();
    put_dead(&mut all, 1, 2, header(3, 4), &meta(), b"b").unwrap();
    put_relocate(&mut all, &Relocation::default(), 0, &[0; SEND_HEADER]);
    put_publish(&mut all, &[1, 2], "t.x", header(5, 0), &meta(), b"b").unwrap();
    put_subscribe(
        &mut all,
        &Subscribe {
            qid: 1,
            flags: 3,
            name: "n",
            pattern: "a.*",
            selector: "x > 1",
        },
    );
    put_unsubscribe(&mut all, 1);
    put_requeue(
        &mut all,
        &Requeue {
            qid: 1,
            id: 2,
            count: 3,
            not_before: 4,
            failed_at: 5,
            reason: "r",
        },
    );
    put_deliver(&mut all, 1, &[(2, 3)]);
    put_group(&mut all, 1, false, "g");
    put_dedup(&mut all, 1, 2, 3, "k");
    for r in records(&all) {
        let (_, k, body) = r.unwrap();
        for cut in 0..body.len() {
            let _ = decode(k, &body[..cut]);
        }
    }
}

#[test]
fn publish_roundtrips_with_its_queues_and_topic_and_relocates_into_one_queue() {
    let mut buf = Vec::new();
    let mut m = meta();
    m.topic = None;
    let len = put_publish(
        &mut buf,
        &[4, 7, 300_000],
        "orders.eu",
        header(21, 0),
        &m,
        b"body",
    )
    .unwrap();
    assert_eq!(len as usize, buf.len());
    let Record::Publish { qids, send } = one(&buf) else {
        panic!("not a PUBLISH")
    };
    assert_eq!(qids.len(), 3);
    assert_eq!(qids.collect::<Vec<_>>(), vec![4, 7, 300_000]);
    assert_eq!(
        (send.h.id, send.h.qid, send.body),
        (21, NO_QUEUE, &b"body"[..])
    );
    let got = decode_message(&buf).expect("a message");
    assert_eq!(got.topic(), Some("orders.eu"));
    assert_eq!(got.get_property("k"), Some(&Value::Int(42)));
    // Compaction's copy for one subscription names that subscription's queue.
    let copy = send_bytes_in_record(&buf).unwrap().to_vec();
    let mut rel = Vec::new();
    put_relocate(&mut rel, &Relocation::default(), 7, &copy);
    let Record::Relocate { send, .. } = one(&rel) else {
        panic!("not a RELOCATE")
    };
    assert_eq!((send.h.id, send.h.qid), (21, 7));
    assert_eq!(decode_message(&rel).unwrap().topic(), Some("orders.eu"));
}

#[test]
fn subscribe_and_unsubscribe_roundtrip() {
    let s = Subscribe {
        qid: 3,
        flags: sub_flag::DURABLE | sub_flag::SHARED,
        name: "billing",
        pattern: "orders.*.created",
        selector: "amount > 100 AND region = 'eu'",
    };
    let mut buf = Vec::new();
    put_subscribe(&mut buf, &s);
    let Record::Subscribe(got) = one(&buf) else {
        panic!("not a SUBSCRIBE")
    };
    assert_eq!(got, s);
    let mut buf = Vec::new();
    put_unsubscribe(&mut buf, 3);
    assert!(matches!(one(&buf), Record::Unsubscribe { qid: 3 }));
    assert_eq!(
        decode(kind::UNSUBSCRIBE, &[3, 0, 0, 0, 0]).unwrap_err(),
        DecodeError::Malformed
    );
}

#[test]
fn a_meta_of_format_version_1_still_decodes() {
    // Format version 1's meta: the same fields without the trailing topic.
    #[derive(serde::Serialize)]
    struct V1 {
        properties: Vec<(String, Value)>,
        correlation_id: Option<String>,
        group: Option<String>,
        dedup_key: Option<String>,
        dead_letter: Option<DeadLetterInfo>,
        repeat: Option<(u64, u32)>,
    }
    let v1 = V1 {
        properties: vec![("k".into(), Value::Int(1))],
        correlation_id: Some("c".into()),
        group: None,
        dedup_key: None,
        dead_letter: None,
        repeat: None,
    };
    let mut meta_bytes = Vec::new();
    let n = put_bincode(&mut meta_bytes, &v1, MAX_META).unwrap();
    let mut h = header(5, 1);
    h.meta_len = n as u32;
    let mut body = Vec::new();
    h.put(&mut body);
    body.extend_from_slice(&meta_bytes);
    body.extend_from_slice(b"old");
    let mut rec = Vec::new();
    crate::journal::frame::put_record_header(&mut rec, kind::SEND, body.len());
    rec.extend_from_slice(&body);
    let m = decode_message(&rec).expect("a version-1 meta decodes");
    assert_eq!(m.get_correlation_id(), Some("c"));
    assert_eq!(m.topic(), None);
    assert_eq!(m.body(), b"old");
}

/// Lengths around every limit the encoder and the decoder share, and far beyond it.
fn meta_len() -> impl proptest::strategy::Strategy<Value = usize> {
    use proptest::prelude::*;
    prop_oneof![
        0usize..64,
        (MAX_SEND_META - 64)..(MAX_SEND_META + 64),
        (MAX_META - 64)..(MAX_META + 64),
        Just(17 << 20),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
    /// Whatever a SEND (or a DEAD record with the longest failure text) encodes, the recovery
    /// decoder decodes; whatever it cannot, the encoder refuses with `InvalidArgument` and
    /// leaves the buffer as it was.
    #[test]
    fn every_encoded_send_decodes(field in 0usize..5, len in meta_len(), dead in proptest::bool::ANY) {
        let big = "x".repeat(len);
        let mut m = Meta::default();
        match field {
            0 => m.properties.push((big, Value::Int(1))),
            1 => m.properties.push(("k".into(), Value::Str(big))),
            2 => m.correlation_id = Some(big),
            3 => m.group = Some(big),
            _ => m.dedup_key = Some(big),
        }
        let mut b = vec![7u8; 3];
        let r = put_send(&mut b, header(1, 2), &m, b"body");
        match r {
            Ok(n) => {
                let rec = &b[3..];
                assert_eq!(n as usize, rec.len());
                let Record::Send(s) = one(rec) else { panic!("a SEND record") };
                assert_eq!(s.meta(), Some(m.clone()));
                if dead {
                    m.dead_letter = Some(DeadLetterInfo {
                        original_queue: "q".repeat(255),
                        original_id: MessageId(u64::MAX),
                        reason: DeadLetterReason::MaxRedeliveries,
                        last_failure: "r".repeat(MAX_REASON_BYTES),
                        delivery_count: u32::MAX,
                        first_failure_ms: u64::MAX,
                        last_failure_ms: u64::MAX,
                    });
                    let mut d = Vec::new();
                    put_dead(&mut d, 1, 2, header(3, 4), &m, b"body").expect("a dead letter of an accepted message encodes");
                    let Record::Dead { send, .. } = one(&d) else { panic!("a DEAD record") };
                    assert_eq!(send.meta(), Some(m));
                }
            }
            Err(e) => {
                assert_eq!(e.kind(), crate::error::ErrorKind::InvalidArgument);
                assert_eq!(b, vec![7u8; 3], "a refused record leaves the buffer as it was");
                assert!(len > MAX_SEND_META - 64, "refused a meta of {len} bytes");
            }
        }
    }
}
