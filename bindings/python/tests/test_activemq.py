"""The classic ActiveMQ scenario: with the default policy a message that keeps failing is
delivered 7 times (1 + 6 redeliveries, 1 s apart) and then lands in the DLQ with the failure
text. Time is a ManualClock: nothing sleeps."""

from __future__ import annotations

from pathlib import Path

import mqlite


def test_default_policy_seven_deliveries_then_dlq(cstore: mqlite.Store, clock: mqlite.ManualClock) -> None:
    q = cstore.queue("orders")  # store defaults = ActiveMQ defaults
    mid = q.send(b"order #1")
    counts = []
    for n in range(1, 8):
        msg = q.receive(timeout=0)
        assert msg is not None, f"delivery {n} did not happen"
        assert msg.id == mid and msg.delivery_count == n and msg.redelivered == (n > 1)
        counts.append(msg.delivery_count)
        msg.nack(f"payment service down (attempt {n})")
        # The redelivery waits for its 1 s delay: not before.
        assert q.receive(timeout=0) is None
        clock.advance(1)
    assert counts == [1, 2, 3, 4, 5, 6, 7]
    assert q.receive(timeout=0) is None
    stats = q.stats()
    assert stats["dead_lettered"] == 1 and stats["redelivered"] == 6 and stats["messages"] == 0

    dlq = cstore.queue("DLQ")
    (dead,) = dlq.browse()
    info = dead.dead_letter
    assert info is not None
    assert info.original_queue == "orders" and info.original_id == mid
    assert info.reason == "max_redeliveries"
    assert info.last_failure == "payment service down (attempt 7)"
    assert info.delivery_count == 7
    assert info.first_failure_ms == 1_700_000_000_000
    assert info.last_failure_ms == 1_700_000_006_000

    # The DLQ is an ordinary queue; replay puts it back with a fresh delivery count.
    assert dlq.replay() == 1
    again = q.receive(timeout=0)
    assert again is not None and again.body == b"order #1" and again.delivery_count == 1
    again.ack()


def test_exponential_backoff_and_context_manager(cstore: mqlite.Store, clock: mqlite.ManualClock) -> None:
    policy = mqlite.RedeliveryPolicy(max_redeliveries=2, use_exponential_backoff=True, backoff_multiplier=2)
    q = cstore.queue("jobs", redelivery=policy)
    q.send(b"job")
    waits = []
    for _ in range(3):
        waited = 0
        msg = q.receive(timeout=0)
        while msg is None:
            clock.advance(1)
            waited += 1
            msg = q.receive(timeout=0)
        waits.append(waited)
        try:
            with msg:
                raise RuntimeError("worker crashed")
        except RuntimeError:
            pass
    assert waits == [0, 1, 2]
    (dead,) = cstore.queue("DLQ").browse()
    assert dead.dead_letter is not None
    assert dead.dead_letter.last_failure == "RuntimeError: worker crashed"


def test_retention_declared_later_expires_the_dead_letters_already_held(
    store_dir: Path, clock: mqlite.ManualClock
) -> None:
    # Review r12 #8: a letter that arrived before its DLQ had `retention` was kept for ever,
    # also after a reopen that declared it. Retention counts from each letter's dead-letter time.
    s = mqlite.open(store_dir, clock=clock)
    q = s.queue("q")
    q.send(b"a")
    msg = q.receive(timeout=0)
    assert msg is not None
    msg.reject("x")  # the DLQ is made by the dead-lettering, with default options
    dl = s.queue("DLQ", retention=10)
    clock.advance(9)
    assert dl.stats()["messages"] == 1, "expired before its time"
    clock.advance(1)
    stats = dl.stats()
    assert (stats["messages"], stats["expired"]) == (0, 1)
    q.send(b"b")
    msg = q.receive(timeout=0)
    assert msg is not None
    msg.reject("y")
    s.close()
    clock.advance(11)
    # Options are not stored: the reopen declares the retention again, and the letter, 11 s
    # old, expires at once.
    s = mqlite.open(store_dir, clock=clock)
    dl = s.queue("DLQ", retention=10)
    stats = dl.stats()
    assert (stats["messages"], stats["expired"]) == (0, 1)
    s.close()
