//! Options are validated once, in the core, for every face: what cannot work is refused with
//! `InvalidArgument` naming the option, before anything is created or changed.
mod common;
use common::*;
use mqlite::*;
use std::time::Duration;

fn open_err(env: &Env, f: impl FnOnce(&mut StoreOptions)) -> Error {
    let mut o = env.opts();
    f(&mut o);
    Store::open(env.dir.path(), o).expect_err("options that cannot work were accepted")
}

/// Offsets inside a segment are 32-bit: a segment over 4 GiB would corrupt them silently.
#[test]
fn segment_bytes_over_4_gib_is_refused() {
    let env = Env::new();
    let e = open_err(&env, |o| o.segment_bytes = 5 << 30);
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.message().contains("segment_bytes"), "{e}");
    let e = open_err(&env, |o| o.segment_bytes = MAX_SEGMENT_BYTES + 1);
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let e = open_err(&env, |o| o.segment_bytes = MIN_SEGMENT_BYTES - 1);
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    // The limits themselves are accepted (the segment is only preallocated as it fills).
    drop(env.open_with(|o| o.segment_bytes = MAX_SEGMENT_BYTES));
    drop(env.open_with(|o| o.segment_bytes = MIN_SEGMENT_BYTES));
}

/// A connect timeout shorter than any answer can take (review r5 #19: 0 used to be accepted,
/// and a client then blamed the healthy owner as hung) is refused; the minimum is accepted.
#[test]
fn a_connect_timeout_below_the_minimum_is_refused() {
    let env = Env::new();
    for t in [
        Duration::ZERO,
        Duration::from_micros(100),
        Duration::from_millis(9),
    ] {
        let e = open_err(&env, |o| o.connect_timeout = t);
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{t:?}: {e}");
        assert!(e.message().contains("connect_timeout"), "{e}");
    }
    drop(env.open_with(|o| o.connect_timeout = Duration::from_millis(MIN_CONNECT_TIMEOUT_MS)));
}

/// A record's length is 32-bit, and an oversized record gets a segment of its own.
#[test]
fn max_body_bytes_beyond_a_record_is_refused() {
    let env = Env::new();
    let e = open_err(&env, |o| o.max_body_bytes = MAX_BODY_BYTES as usize + 1);
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.message().contains("max_body_bytes"), "{e}");
}

/// `max_redeliveries` below −1 and a backoff multiplier below 1 (or not finite) are refused
/// for the store and for a queue alike (they used to be refused by the C face only).
#[test]
fn redelivery_policy_is_validated() {
    let env = Env::new();
    let bad = [
        RedeliveryPolicy {
            max_redeliveries: -2,
            ..Default::default()
        },
        RedeliveryPolicy {
            backoff_multiplier: 0.5,
            ..Default::default()
        },
        RedeliveryPolicy {
            backoff_multiplier: f64::NAN,
            ..Default::default()
        },
    ];
    for p in &bad {
        let e = p.validate().expect_err("accepted");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        let e = open_err(&env, |o| o.redelivery = p.clone());
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    }
    let s = env.open();
    for p in bad {
        let e = s
            .queue_with(
                "q",
                QueueOptions {
                    redelivery: Some(p),
                    ..Default::default()
                },
            )
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    }
    assert!(s.queue_names().is_empty(), "a refused queue was declared");
    RedeliveryPolicy {
        max_redeliveries: -1,
        backoff_multiplier: 1.0,
        ..Default::default()
    }
    .validate()
    .unwrap();
}

/// The defaults every face shows come from one place.
#[test]
fn defaults_are_the_cores() {
    let o = StoreOptions::default();
    assert_eq!(o.max_body_bytes as u64, DEFAULT_MAX_BODY_BYTES);
    assert_eq!(o.segment_bytes, DEFAULT_SEGMENT_BYTES);
    assert_eq!(
        DeadLetterStrategy::default(),
        DeadLetterStrategy::Shared {
            name: DEFAULT_DEAD_LETTER_QUEUE.into()
        }
    );
    assert_eq!(
        DeadLetterStrategy::individual(),
        DeadLetterStrategy::Individual {
            prefix: DEFAULT_DEAD_LETTER_PREFIX.into()
        }
    );
    assert_eq!(
        Durability::batched(),
        Durability::Batched {
            max_delay: std::time::Duration::from_millis(DEFAULT_BATCHED_MAX_DELAY_MS)
        }
    );
    assert_eq!(
        OverflowPolicy::block(),
        OverflowPolicy::Block {
            timeout: std::time::Duration::from_millis(DEFAULT_BLOCK_TIMEOUT_MS)
        }
    );
    let p = RedeliveryPolicy::default();
    assert_eq!(p.max_redeliveries, DEFAULT_MAX_REDELIVERIES);
    assert_eq!(p.backoff_multiplier, DEFAULT_BACKOFF_MULTIPLIER);
}

/// A receive batch of none is refused alike in every face (C's `max` 0 included), by the queue
/// and by a consumer, instead of returning at once in some faces and waiting in others.
#[test]
fn a_receive_batch_of_zero_is_refused() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    q.send(Message::new(&b"x"[..])).unwrap();
    let e = q.receive_batch(0, None).expect_err("0 was accepted");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    // The message names the valid range, worded as the other faces word a range (r5 #21).
    let range = format!("must be an integer from 1 to {}, not 0", usize::MAX);
    assert!(e.message().contains(&range), "{e}");
    let c = q.consumer(ConsumerOptions::default());
    let e = c.receive_batch(0, None).expect_err("0 was accepted");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.message().contains(&range), "{e}");
    // Nothing was taken: the message is still there for a real receive.
    assert_eq!(
        q.receive_batch(1, Some(std::time::Duration::ZERO))
            .unwrap()
            .len(),
        1
    );
}

/// Priorities are checked once, in the core, with the one limit.
#[test]
fn priority_above_the_maximum_is_refused() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    let e = q
        .send(Message::new(&b"x"[..]).priority(MAX_PRIORITY + 1))
        .expect_err("priority 10 accepted");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("0–9"), "{e}");
    q.send(Message::new(&b"x"[..]).priority(MAX_PRIORITY))
        .unwrap();
}
