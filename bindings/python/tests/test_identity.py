"""A message keeps its id through dead-lettering and replay, as ActiveMQ keeps the JMSMessageID:
idempotent consumers and tracing key on it. Also across a reopen (recovery must not take the
replayed message for its earlier stay in the queue)."""

from pathlib import Path

import mqlite


def test_id_kept_through_dead_letter_and_replay_across_reopen(store_dir: Path) -> None:
    policy = mqlite.RedeliveryPolicy(max_redeliveries=0)
    with mqlite.open(store_dir) as s:
        # Prefetch 1 keeps the strict order (semantics: a prefetched message is handed out
        # before one replayed later), which the receives below rely on.
        q = s.queue("orders", redelivery=policy, prefetch=1)
        poison = q.send(b"poison")
        fine = q.send(b"fine")
        # Once rejected, once by exhausting its redeliveries (a failed delivery).
        m = q.receive(timeout=0)
        assert m is not None and (m.id, m.body) == (poison, b"poison")
        m.reject("bad")
        dlq = s.queue("DLQ")
        (dead,) = dlq.browse()
        assert (dead.id, dead.message_id) == (poison, f"ID:{poison}")
        assert dead.dead_letter is not None and dead.dead_letter.original_id == poison
        assert dlq.replay() == 1
        assert sorted((m.id, m.body) for m in q.browse()) == [(poison, b"poison"), (fine, b"fine")]
        m = q.receive(timeout=0)
        assert m is not None and (m.id, m.body) == (poison, b"poison")
        m.nack("again")
        (dead,) = dlq.browse()
        assert dead.id == poison
        assert dead.dead_letter is not None and dead.dead_letter.reason == "max_redeliveries"
    with mqlite.open(store_dir) as s:
        (dead,) = s.queue("DLQ").browse()
        assert dead.id == poison
        assert s.queue("DLQ").replay() == 1
    with mqlite.open(store_dir) as s:
        q = s.queue("orders")
        assert sorted((m.id, m.body) for m in q.browse()) == [(poison, b"poison"), (fine, b"fine")]
        assert s.queue("DLQ").browse() == []
        got = q.receive_batch(10, timeout=0)
        assert sorted((m.id, m.message_id) for m in got) == [
            (poison, f"ID:{poison}"),
            (fine, f"ID:{fine}"),
        ]
        q.ack_batch(got)
    with mqlite.open(store_dir) as s:
        assert s.queue("orders").browse() == []
