"""browse() tells the truth: every message with its state and true delivery count;
``ready_only=True`` lists only the ready ones (subscriptions too)."""

import mqlite


def _view(ms: list[mqlite.Message]) -> list[tuple[bytes, object, int]]:
    return [(m.body, m.state, m.delivery_count) for m in ms]


def test_browse_lists_every_state_and_ready_only_the_ready(
    cstore: mqlite.Store, clock: mqlite.ManualClock
) -> None:
    q = cstore.queue("q")
    q.send(b"waiting")
    q.send(b"ready")
    q.send(b"delayed", delay=60)
    q.send(b"taken")
    m = q.receive(0)
    assert m is not None and m.body == b"waiting"
    m.nack("later", delay=30)
    m = q.receive(0)
    assert m is not None and m.body == b"ready"
    taken = q.receive(0)
    assert taken is not None and taken.body == b"taken" and taken.state is None
    m.nack("again", delay=0)
    assert _view(q.browse()) == [
        (b"ready", "ready", 1),
        (b"waiting", "redelivery_wait", 1),
        (b"delayed", "delayed", 0),
        (b"taken", "in_flight", 1),
    ]
    assert _view(q.browse(ready_only=True)) == [(b"ready", "ready", 1)]
    assert _view(q.browse(1)) == [(b"ready", "ready", 1)]
    clock.advance(31)
    assert sorted(_view(q.browse(ready_only=True))) == [
        (b"ready", "ready", 1),
        (b"waiting", "ready", 1),
    ]
    taken.ack()


def test_a_subscription_browses_the_same_way(cstore: mqlite.Store) -> None:
    sub = cstore.subscribe("orders", name="audit", durable=True)
    t = cstore.topic("orders")
    t.publish(b"a")
    t.publish(b"b", delay=5)
    m = sub.receive(0)
    assert m is not None
    assert _view(sub.browse()) == [(b"b", "delayed", 0), (b"a", "in_flight", 1)]
    assert sub.browse(ready_only=True) == []
    m.ack()
