use mqlite::*;
use std::time::Duration;

#[test]
fn send_receive_ack_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let q = s.queue("a").unwrap();
        for i in 0..10 {
            q.send(format!("m{i}")).unwrap();
        }
        let d = q.receive(Some(Duration::ZERO)).unwrap().unwrap();
        assert_eq!(d.body(), b"m0");
        d.ack().unwrap();
        let d = q.receive(Some(Duration::ZERO)).unwrap().unwrap();
        assert_eq!(d.body(), b"m1");
        std::mem::forget(d); // simulate a crash with m1 in flight
    }
    let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let q = s.queue("a").unwrap();
    let st = q.stats().unwrap();
    assert_eq!(st.messages, 9);
    let clock_wait = q.receive_batch(100, Some(Duration::ZERO)).unwrap();
    let bodies: Vec<_> = clock_wait
        .iter()
        .map(|d| String::from_utf8(d.body().to_vec()).unwrap())
        .collect();
    assert_eq!(bodies, (2..10).map(|i| format!("m{i}")).collect::<Vec<_>>());
}
