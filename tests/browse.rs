//! browse() tells the truth: every message the queue holds, each with its state (ready,
//! delayed, redelivery wait, in flight) and its true delivery count; `browse_ready` lists only
//! the ready ones. Subscriptions' queues too.
mod common;
use common::*;
use mqlite::*;
use std::time::Duration;

fn view(ms: &[Message]) -> Vec<(String, Option<&'static str>, u32)> {
    ms.iter()
        .map(|m| {
            (
                String::from_utf8(m.body().to_vec()).unwrap(),
                m.state().map(MessageState::as_str),
                m.delivery_count(),
            )
        })
        .collect()
}

/// One message in each state: `ready` (delivered and nacked once without delay, so its count
/// is 1), `delayed`, `waiting` (nacked with a redelivery delay), `taken` (in flight).
fn every_state(q: &Queue) -> Delivery {
    q.send("waiting").unwrap();
    q.send("ready").unwrap();
    q.send(Message::new("delayed").delay(Duration::from_secs(60)))
        .unwrap();
    q.send("taken").unwrap();
    let d = q.receive(NOW).unwrap().unwrap();
    assert_eq!(body(&d), "waiting");
    d.nack_with_delay("later", Duration::from_secs(30)).unwrap();
    let r = q.receive(NOW).unwrap().unwrap();
    assert_eq!(body(&r), "ready");
    let d = q.receive(NOW).unwrap().unwrap();
    assert_eq!(body(&d), "taken");
    r.nack_with_delay("again", Duration::ZERO).unwrap();
    d
}

fn expected() -> Vec<(String, Option<&'static str>, u32)> {
    vec![
        ("ready".into(), Some("ready"), 1),
        ("waiting".into(), Some("redelivery_wait"), 1),
        ("delayed".into(), Some("delayed"), 0),
        ("taken".into(), Some("in_flight"), 1),
    ]
}

#[test]
fn browse_lists_every_state_with_true_delivery_counts_and_browse_ready_only_the_ready() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    let held = every_state(&q);
    assert_eq!(view(&q.browse(100).unwrap()), expected());
    assert_eq!(
        view(&q.browse_ready(100).unwrap()),
        vec![("ready".to_string(), Some("ready"), 1)]
    );
    assert_eq!(view(&q.browse(2).unwrap()), expected()[..2].to_vec());
    // A sent message is not a browsed one.
    assert_eq!(Message::new("x").state(), None);
    // Once the redelivery delay passes, the waiting message is ready with its count.
    env.clock.advance(Duration::from_secs(31));
    let ready = view(&q.browse_ready(100).unwrap());
    assert_eq!(ready.len(), 2, "{ready:?}");
    assert!(
        ready.contains(&("waiting".into(), Some("ready"), 1)),
        "{ready:?}"
    );
    held.ack().unwrap();
}

#[test]
fn a_subscription_browses_the_same_way() {
    let env = Env::new();
    let s = env.open();
    let sub = s
        .subscribe(
            "orders",
            SubscriptionOptions {
                name: Some("audit".into()),
                durable: true,
                ..Default::default()
            },
        )
        .unwrap();
    let t = s.topic("orders").unwrap();
    t.publish("a").unwrap();
    t.publish(Message::new("b").delay(Duration::from_secs(5)))
        .unwrap();
    let d = sub.receive(NOW).unwrap().unwrap();
    assert_eq!(
        view(&sub.browse(10).unwrap()),
        vec![
            ("b".to_string(), Some("delayed"), 0),
            ("a".to_string(), Some("in_flight"), 1)
        ]
    );
    assert!(sub.browse_ready(10).unwrap().is_empty());
    d.ack().unwrap();
}
