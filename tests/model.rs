//! T8: model-based test. Random sequences of send, receive, ack, nack, reject, release, clock
//! ticks, graceful reopen, crash-reopen and power loss run against the store and against a plain
//! model of the queue (ready / in flight with deadlines / delivery counts / redelivery delays /
//! DLQ); any divergence fails and shrinks. The store runs on the fault-injecting file layer: a
//! power loss reopens from a crash image that keeps only synced data (or a random subset of the
//! unsynced writes, or a torn last write). Every call the model counts on waited for durability,
//! so every image must hold exactly the model's state. 500 cases in CI, 20,000 with MQLITE_SOAK=1.
//!
//! Beside the queue, a topic with two durable subscriptions, `all` (no selector) and `pri`
//! (selector `JMSPriority >= 1`, evaluated at publish), with the queue's options: a publish
//! reaches `all` always and `pri` for priorities 1 and 2, with one id in both. Each
//! subscription is modelled as the queue is (receive/ack/nack/reject/release, prefetch,
//! timeouts, reopen, crash, power loss), and the shared dead-letter queue must hold exactly the
//! model's dead letters of all three, each by its original queue (`q`, `$sub.all`, `$sub.pri`).
//!
//! Each queue prefetches (3 at a time): the model keeps the plain receive's buffer — a receive
//! hands out the buffer's front, or takes the next 3 (each counted) and hands out the first; a
//! graceful close gives the buffer back uncounted; a power loss counts each buffered message as
//! one failed delivery. Acks are lazy or `ack_sync`; the power loss follows a flush, so both
//! are durable there (the kill -9 and power-loss suites check lazy acks that were not).
mod common;
use common::fault::{CrashMode, FaultFs, Rng};
use common::*;
use mqlite::*;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::time::Duration;

const MAX_REDELIVERIES: u32 = 2;
const DELAY: u64 = 1000;
const ACK_TIMEOUT: u64 = 5000;
const PREFETCH: usize = 3;
/// The topic the subscriptions match (pattern `t.>`).
const TOPIC: &str = "t.x";
/// The durable subscriptions: name and selector. Channel 0 is the queue, channel `1 + i` is
/// `SUBS[i]`.
const SUBS: [(&str, Option<&str>); 2] = [("all", None), ("pri", Some("JMSPriority >= 1"))];
const CHANNELS: usize = 1 + SUBS.len();

/// Whether a message of priority `prio` published to [`TOPIC`] reaches channel `c` (the model's
/// reading of each subscription's selector).
fn routed(c: usize, prio: u8) -> bool {
    match c {
        1 => true,
        2 => prio >= 1,
        _ => unreachable!("channel {c} is no subscription"),
    }
}

#[derive(Debug, Clone)]
enum Op {
    Send(u8),
    /// Publish with this priority to [`TOPIC`].
    Publish(u8),
    /// A plain receive on channel `0` (the queue) or `1 + i` (subscription `SUBS[i]`).
    Receive(usize),
    Ack(usize),
    AckSync(usize),
    Nack(usize),
    Reject(usize),
    Release(usize),
    Tick(u64),
    Reopen {
        crash: bool,
    },
    PowerLoss(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3).prop_map(Op::Send),
        3 => (0u8..3).prop_map(Op::Publish),
        7 => (0usize..CHANNELS).prop_map(Op::Receive),
        2 => (0usize..4).prop_map(Op::Ack),
        1 => (0usize..4).prop_map(Op::AckSync),
        3 => (0usize..4).prop_map(Op::Nack),
        1 => (0usize..4).prop_map(Op::Reject),
        1 => (0usize..4).prop_map(Op::Release),
        3 => prop_oneof![Just(1u64), Just(999), Just(1000), Just(5000)].prop_map(Op::Tick),
        1 => any::<bool>().prop_map(|crash| Op::Reopen { crash }),
        1 => (0u8..4).prop_map(Op::PowerLoss),
    ]
}

#[derive(Debug, Clone)]
struct M {
    prio: u8,
    count: u32,
    due: u64,
    inflight: Option<u64>, // deadline
    /// Prefetched into the receive's buffer, not handed out.
    buffered: bool,
}

/// One queue's model (the queue's or a subscription's).
#[derive(Default, Debug)]
struct Model {
    msgs: BTreeMap<u64, M>,
    /// Its dead letters: id, reason, delivery count.
    dlq: Vec<(u64, DeadLetterReason, u32)>,
    /// The plain receive's prefetch buffer, in hand-out order.
    buffer: std::collections::VecDeque<u64>,
}

impl Model {
    fn fail(&mut self, id: u64, now: u64) {
        let m = self.msgs.get_mut(&id).unwrap();
        m.inflight = None;
        m.buffered = false;
        if m.count > MAX_REDELIVERIES {
            let c = m.count;
            self.msgs.remove(&id);
            self.dlq.push((id, DeadLetterReason::MaxRedeliveries, c));
        } else {
            m.due = now + DELAY;
        }
    }
    fn timeouts(&mut self, now: u64) {
        let late: Vec<u64> = self
            .msgs
            .iter()
            .filter(|(_, m)| m.inflight.is_some_and(|d| d <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            self.fail(id, now);
        }
    }
    fn next(&self, now: u64) -> Option<u64> {
        self.msgs
            .iter()
            .filter(|(_, m)| m.inflight.is_none() && !m.buffered && m.due <= now)
            .min_by_key(|(id, m)| (std::cmp::Reverse(m.prio), **id))
            .map(|(id, _)| *id)
    }
    /// A receive: the buffer's front, or a prefetch of up to [`PREFETCH`] (each counted) whose
    /// first is handed out. Returns the id handed out.
    fn receive(&mut self, now: u64) -> Option<u64> {
        if self.buffer.is_empty() {
            while self.buffer.len() < PREFETCH {
                let Some(id) = self.next(now) else { break };
                let m = self.msgs.get_mut(&id).unwrap();
                m.count += 1;
                m.buffered = true;
                self.buffer.push_back(id);
            }
        }
        let id = self.buffer.pop_front()?;
        let m = self.msgs.get_mut(&id).unwrap();
        m.buffered = false;
        m.inflight = Some(now + ACK_TIMEOUT);
        Some(id)
    }
}

/// The queue names of the channels: the queue's, then each subscription's (`$sub.<name>`).
fn channel_name(c: usize) -> String {
    match c {
        0 => "q".into(),
        _ => format!("$sub.{}", SUBS[c - 1].0),
    }
}

/// A delivery the test holds: the delivery, its channel, its id and delivery count.
type Held = (Delivery, usize, u64, u32);

/// Whether `(id, count)` is the live delivery of a message in flight in `model`: only that one
/// can settle it.
fn live(model: &Model, id: u64, count: u32) -> bool {
    model
        .msgs
        .get(&id)
        .is_some_and(|m| m.inflight.is_some() && m.count == count)
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let env = Env::new();
    let policy = RedeliveryPolicy {
        max_redeliveries: MAX_REDELIVERIES as i32,
        initial_redelivery_delay: Duration::from_millis(DELAY),
        redelivery_delay: Duration::from_millis(DELAY),
        ..Default::default()
    };
    let qopts = QueueOptions {
        redelivery: Some(policy),
        ack_timeout: Some(Duration::from_millis(ACK_TIMEOUT)),
        prefetch: Some(PREFETCH as u32),
        ..Default::default()
    };
    // The store, the topic, the subscriber handles (kept attached) and the channels' queues.
    let open = |fs: &FaultFs| {
        let s = env.open_with(|o| {
            o.segment_bytes = 16 << 10;
            o.vfs = fs.vfs();
        });
        let q = s.queue_with("q", qopts.clone()).unwrap();
        let t = s.topic(TOPIC).unwrap();
        let subs: Vec<Subscription> = SUBS
            .iter()
            .map(|(name, selector)| {
                let o = SubscriptionOptions {
                    name: Some(name.to_string()),
                    durable: true,
                    shared: false,
                    selector: selector.map(str::to_string),
                    queue: qopts.clone(),
                };
                s.subscribe("t.>", o).unwrap()
            })
            .collect();
        let mut qs = vec![q];
        qs.extend(subs.iter().map(|sub| sub.queue().clone()));
        (s, t, subs, qs)
    };
    let mut fs = FaultFs::new();
    let mut rng = Rng::new(ops.len() as u64 * 7919 + 17);
    let (mut store, mut topic, mut subs, mut qs) = open(&fs);
    let mut models: Vec<Model> = (0..CHANNELS).map(|_| Model::default()).collect();
    let mut held: Vec<Held> = Vec::new();
    let new_msg = |prio| M {
        prio,
        count: 0,
        due: 0,
        inflight: None,
        buffered: false,
    };
    for op in ops {
        let now = env.clock.now_ms();
        for model in &mut models {
            model.timeouts(now);
        }
        match op {
            Op::Send(p) => {
                let id = qs[0].send(Message::new(vec![p; 3]).priority(p)).unwrap();
                models[0].msgs.insert(id.0, new_msg(p));
            }
            Op::Publish(p) => {
                let id = topic.publish(Message::new(vec![p; 3]).priority(p)).unwrap();
                for (c, model) in models.iter_mut().enumerate().skip(1) {
                    if routed(c, p) {
                        model.msgs.insert(id.0, new_msg(p));
                    }
                }
            }
            Op::Receive(c) => {
                let got = qs[c].receive(NOW).unwrap();
                let model = &mut models[c];
                let want = model.receive(now);
                prop_assert_eq!(
                    got.as_ref().map(|d| d.id().0),
                    want,
                    "receive from {} at {}",
                    channel_name(c),
                    now - T0
                );
                if let Some(d) = got {
                    let m = &model.msgs[&d.id().0];
                    prop_assert_eq!(d.delivery_count(), m.count);
                    prop_assert_eq!(d.body(), &vec![m.prio; 3][..]);
                    prop_assert_eq!(d.message().topic(), (c > 0).then_some(TOPIC));
                    let id = d.id().0;
                    let count = d.delivery_count();
                    held.push((d, c, id, count));
                }
            }
            Op::Ack(k) | Op::AckSync(k) | Op::Nack(k) | Op::Reject(k) | Op::Release(k)
                if !held.is_empty() =>
            {
                let (d, c, id, count) = held.remove(k % held.len());
                let model = &mut models[c];
                let live = live(model, id, count);
                let r = match &op {
                    Op::Ack(_) => d.ack(),
                    Op::AckSync(_) => d.ack_sync(),
                    Op::Nack(_) => d.nack("model says no"),
                    Op::Reject(_) => d.reject("poison"),
                    _ => d.release(),
                };
                if !live {
                    prop_assert_eq!(r.map_err(|e| e.kind()), Err(ErrorKind::AlreadySettled));
                    continue;
                }
                r.unwrap();
                match op {
                    Op::Ack(_) | Op::AckSync(_) => {
                        model.msgs.remove(&id);
                    }
                    Op::Nack(_) => model.fail(id, now),
                    Op::Reject(_) => {
                        let c = model.msgs.remove(&id).unwrap().count;
                        model.dlq.push((id, DeadLetterReason::Rejected, c));
                    }
                    _ => {
                        let m = model.msgs.get_mut(&id).unwrap();
                        m.count -= 1;
                        m.inflight = None;
                        m.due = now;
                        // The released message is the next one delivered: the later messages
                        // its (the plain receive's) buffer held go back too, uncounted.
                        for id in model.buffer.drain(..) {
                            let m = model.msgs.get_mut(&id).unwrap();
                            m.buffered = false;
                            m.count -= 1;
                        }
                    }
                }
            }
            Op::Tick(ms) => env.clock.advance_ms(ms),
            Op::Reopen { crash } => {
                // Graceful: unsettled deliveries are dropped (failed). Crash: never settled; the
                // journal's DELIVER records make recovery count them as failed.
                for (d, c, id, count) in held.drain(..) {
                    if crash {
                        std::mem::forget(d);
                    } else {
                        drop(d);
                    }
                    if live(&models[c], id, count) {
                        models[c].fail(id, now);
                    }
                }
                // Closing gives the prefetched messages back, uncounted.
                for model in &mut models {
                    for id in model.buffer.drain(..) {
                        let m = model.msgs.get_mut(&id).unwrap();
                        m.buffered = false;
                        m.count -= 1;
                    }
                }
                // Detaching keeps a durable subscription collecting (nothing to model).
                drop((qs, subs, topic));
                store.close().unwrap();
                drop(store);
                (store, topic, subs, qs) = open(&fs);
            }
            Op::PowerLoss(m) => {
                for model in &mut models {
                    // Prefetched messages: their counts were durable, each is one failed
                    // delivery.
                    for id in model.buffer.drain(..).collect::<Vec<_>>() {
                        model.fail(id, now);
                    }
                }
                // The deliveries are never settled; their DELIVER records make them failures.
                for (d, c, id, count) in held.drain(..) {
                    std::mem::forget(d);
                    if live(&models[c], id, count) {
                        models[c].fail(id, now);
                    }
                }
                // Records nobody waits for (ack-timeout failures found by `stats`) are synced
                // first: the model applied them, and they are not what this transition tests.
                store.flush().unwrap();
                let mode = match m {
                    0 => CrashMode::SyncedOnly,
                    1 => CrashMode::RandomSubset,
                    2 => CrashMode::TornLast { sector: 512 },
                    _ => CrashMode::TornLast { sector: 4096 },
                };
                let image = fs.crash_image(mode, &mut rng);
                drop((qs, subs, topic));
                store.close().unwrap();
                drop(store);
                fs = image;
                (store, topic, subs, qs) = open(&fs);
            }
            _ => {}
        }
        let now = env.clock.now_ms();
        for (c, model) in models.iter_mut().enumerate() {
            model.timeouts(now);
            let st = qs[c].stats().unwrap();
            let what = channel_name(c);
            prop_assert_eq!(st.messages, model.msgs.len() as u64, "messages of {}", what);
            prop_assert_eq!(
                st.in_flight,
                model.msgs.values().filter(|m| m.inflight.is_some()).count() as u64,
                "in flight in {}",
                what
            );
            prop_assert_eq!(
                st.prefetched,
                model.buffer.len() as u64,
                "prefetched by {}",
                what
            );
        }
    }
    // The dead-letter queue holds exactly what the model expects of each channel, by original
    // queue, with reasons and counts. Unsettled deliveries dropped at the end fail like any
    // dropped delivery.
    let now = env.clock.now_ms();
    for (d, c, id, count) in held.drain(..) {
        drop(d);
        if live(&models[c], id, count) {
            models[c].fail(id, now);
        }
    }
    let dlq = store.queue("DLQ").unwrap();
    let mut got: Vec<_> = dlq
        .browse(10_000)
        .unwrap()
        .iter()
        .map(|m| {
            let i = m.dead_letter_info().unwrap();
            (
                i.original_queue.clone(),
                i.original_id.0,
                i.reason,
                i.delivery_count,
            )
        })
        .collect();
    got.sort_by(|a, b| (&a.0, a.1, a.3).cmp(&(&b.0, b.1, b.3)));
    let mut want: Vec<_> = models
        .iter()
        .enumerate()
        .flat_map(|(c, model)| {
            model
                .dlq
                .iter()
                .map(move |&(id, reason, count)| (channel_name(c), id, reason, count))
        })
        .collect();
    want.sort_by(|a, b| (&a.0, a.1, a.3).cmp(&(&b.0, b.1, b.3)));
    prop_assert_eq!(got, want);
    drop((qs, subs, topic));
    Ok(())
}

fn cases() -> u32 {
    if std::env::var_os("MQLITE_SOAK").is_some() {
        20_000
    } else {
        500
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 2000, ..ProptestConfig::default() })]
    #[test]
    fn store_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops)?;
    }
}
