"""Topics from Python: fan-out, durable/non-durable/shared subscriptions, wildcards, selectors,
per-subscription dead letters, unsubscribe."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import mqlite


def drain(q: mqlite.Queue) -> list[bytes]:
    out = []
    while (m := q.receive(timeout=0)) is not None:
        out.append(m.body)
        m.ack()
    return out


def test_fan_out_to_every_matching_subscription(store: mqlite.Store) -> None:
    a = store.subscribe("orders.>", name="a", durable=True)
    b = store.subscribe("orders.*.created", name="b", durable=True)
    c = store.subscribe("orders.eu.created")  # non-durable, unnamed
    other = store.subscribe("invoices.>", name="other", durable=True)
    t = store.topic("orders.eu.created")
    mid = t.publish(b"m1", properties={"k": 1})
    for s in (a, b, c):
        m = s.receive(timeout=0)
        assert m is not None
        assert (m.id, m.topic, m.properties) == (mid, "orders.eu.created", {"k": 1})
        m.ack()
    assert other.receive(timeout=0) is None
    assert t.publish_async(b"m2").result(timeout=10) > mid
    t.publish_batch([b"m3", {"body": b"m4", "priority": 9}])
    for s in (a, b, c):
        assert drain(s) == [b"m4", b"m2", b"m3"]
    assert t.stats() == {"published": 4, "unrouted": 0, "subscriptions": 3}
    assert a.subscription == "a" and a.name == "$sub.a"


def test_unrouted_publishes_store_nothing(store: mqlite.Store) -> None:
    t = store.topic("nobody")
    t.publish(b"x")
    assert t.stats()["unrouted"] == 1


def test_durable_collects_while_away_and_across_reopen(store_dir: Path) -> None:
    with mqlite.open(store_dir) as s:
        sub = s.subscribe("audit.>", name="auditor", durable=True)
        del sub
        s.topic("audit.login").publish(b"away")
    with mqlite.open(store_dir) as s:
        assert [i["name"] for i in s.subscriptions()] == ["auditor"]
        sub = s.subscribe("audit.>", name="auditor", durable=True)
        assert drain(sub) == [b"away"]
        with pytest.raises(mqlite.InvalidArgument):
            s.unsubscribe("auditor")  # attached
        del sub
        s.unsubscribe("auditor")
        with pytest.raises(mqlite.NotFound):
            s.unsubscribe("auditor")


def test_late_non_durable_subscriber_sees_nothing_earlier(store: mqlite.Store) -> None:
    t = store.topic("news")
    t.publish(b"before")
    s = store.subscribe("news", name="r")
    t.publish(b"after")
    assert drain(s) == [b"after"]
    del s
    assert store.subscriptions() == []


def test_shared_subscription_competing_consumers(store: mqlite.Store) -> None:
    w1 = store.subscribe("jobs", name="w", durable=True, shared=True)
    w2 = store.subscribe("jobs", name="w", durable=True, shared=True)
    store.topic("jobs").publish_batch([b"1", b"2", b"3", b"4"])
    got1, got2 = w1.receive_batch(2, timeout=0), w2.receive_batch(2, timeout=0)
    assert sorted(m.body for m in got1 + got2) == [b"1", b"2", b"3", b"4"]
    for m in got1 + got2:
        m.ack()
    solo = store.subscribe("jobs", name="solo", durable=True)
    with pytest.raises(mqlite.InvalidArgument):
        store.subscribe("jobs", name="solo", durable=True)  # unshared: one subscriber at a time
    del solo
    store.subscribe("jobs", name="solo", durable=True)  # detached when the handle went


@pytest.mark.parametrize(
    "pattern,name,matches",
    [
        ("orders.*.created", "orders.eu.created", True),
        ("orders.*.created", "orders.eu.deleted", False),
        ("orders.>", "orders.eu", True),
        ("orders.>", "orders", False),
        (">", "anything.at.all", True),
        ("*.eu", "orders.eu", True),
        ("*.eu", "orders.eu.x", False),
    ],
)
def test_wildcards(store: mqlite.Store, pattern: str, name: str, matches: bool) -> None:
    s = store.subscribe(pattern, name="w", durable=True)
    store.topic(name).publish(b"x")
    assert (s.receive(timeout=0) is not None) == matches


def test_selectors_and_errors(store: mqlite.Store) -> None:
    rich = store.subscribe("o.>", name="rich", durable=True, selector="amount > 100 AND region = 'eu'")
    notnum = store.subscribe("o.>", name="nn", durable=True, selector="NOT (region = 1)")
    t = store.topic("o.x")
    t.publish(b"big-eu", properties={"amount": 150, "region": "eu"})
    t.publish(b"big-us", properties={"amount": 150, "region": "us"})
    t.publish(b"none")
    assert drain(rich) == [b"big-eu"]
    assert drain(notnum) == [b"big-eu", b"big-us"]  # unlike types compare FALSE (JMS)
    with pytest.raises(mqlite.InvalidArgument, match="at character 9"):
        store.subscribe("o.>", name="bad", durable=True, selector="amount >> 1")
    with pytest.raises(mqlite.InvalidName):
        store.subscribe("o..x", name="bad", durable=True)
    with pytest.raises(mqlite.InvalidName):
        store.topic("o.*")
    with pytest.raises(mqlite.InvalidArgument):
        store.subscribe("o.>", durable=True)  # a durable subscription needs a name


def test_per_subscription_dead_letters_name_topic_and_subscription(store: mqlite.Store) -> None:
    s = store.subscribe(
        "pay.>",
        name="strict",
        durable=True,
        redelivery=mqlite.RedeliveryPolicy(max_redeliveries=0, initial_redelivery_delay=0),
        dead_letter=mqlite.DeadLetterStrategy.individual("DLQ."),
    )
    store.topic("pay.card").publish(b"p")
    m = s.receive(timeout=0)
    assert m is not None
    m.nack("boom")
    assert s.receive(timeout=0) is None
    dead = store.queue("DLQ.$sub.strict").browse(10)
    assert len(dead) == 1 and dead[0].topic == "pay.card"
    info = dead[0].dead_letter
    assert info is not None and info.subscription == "strict" and info.original_queue == "$sub.strict"


def test_selective_queue_consumer_finds_matches_deep_in_the_backlog(store: mqlite.Store) -> None:
    q = store.queue("work")
    q.send_batch([{"body": f"m{i}", "properties": {"kind": "rare" if i % 500 == 499 else "common"}} for i in range(2000)])
    c = q.consumer(selector="kind = 'rare'")
    got = c.receive_batch(10, timeout=0)
    assert [m.body for m in got] == [b"m499", b"m999", b"m1499", b"m1999"]
    for m in got:
        m.ack()
    assert q.stats()["depth"] == 1996
    with pytest.raises(mqlite.InvalidArgument, match="at character"):
        q.consumer(selector="kind == 'x'")


def test_subscription_prefetch_and_ack_durability(store: mqlite.Store) -> None:
    # The subscription queue's own consuming options, as for store.queue(...).
    s = store.subscribe("pf.>", name="pf", durable=True, prefetch=3, ack_durability="sync")
    t = store.topic("pf.x")
    t.publish_batch([b"a", b"b", b"c", b"d"])
    m = s.receive(timeout=0)
    assert m is not None and m.body == b"a"
    st = s.stats()
    assert (st["in_flight"], st["prefetched"], st["depth"]) == (1, 2, 1)
    m.ack()
    one = store.subscribe("pf1.>", prefetch=1)
    store.topic("pf1.x").publish_batch([b"x", b"y"])
    m = one.receive(timeout=0)
    assert m is not None and one.stats()["prefetched"] == 0
    m.ack()
    with pytest.raises(mqlite.InvalidArgument):
        store.subscribe("pf2.>", ack_durability="later")
    with pytest.raises(mqlite.InvalidArgument):
        store.subscribe("pf2.>", prefetch=2**31)


def test_publish_async_aio_returns_the_id_and_reaches_matching_subscriptions(
    store: mqlite.Store,
) -> None:
    big = store.subscribe("orders.>", name="big", durable=True, selector="amount > 100")
    t = store.topic("orders.eu.created")

    async def main() -> tuple[int, int]:
        small = await t.publish_async_aio(b"small", properties={"amount": 5})
        large = await t.publish_async_aio(b"large", properties={"amount": 500}, priority=7)
        return small, large

    small, large = asyncio.run(main())
    assert isinstance(small, int) and large > small
    m = big.receive(timeout=0)
    assert m is not None
    assert (m.id, m.body, m.priority, m.topic) == (large, b"large", 7, "orders.eu.created")
    m.ack()
    assert big.receive(timeout=0) is None  # the selector left "small" out
    assert t.stats() == {"published": 1, "unrouted": 1, "subscriptions": 1}


def test_publish_async_aio_unrouted_as_the_sync_publish_reports_it(store: mqlite.Store) -> None:
    t = store.topic("nobody.listens")
    sync_id = t.publish(b"x")

    async def main() -> int:
        return await t.publish_async_aio(b"y")

    aio_id = asyncio.run(main())
    # Both return an id (nothing stored, as JMS drops a topic message nobody subscribes to) and
    # both count as unrouted.
    assert isinstance(sync_id, int) and isinstance(aio_id, int) and aio_id > sync_id
    assert t.stats() == {"published": 0, "unrouted": 2, "subscriptions": 0}


def test_publish_async_aio_needs_a_running_loop(store: mqlite.Store) -> None:
    t = store.topic("t")
    with pytest.raises(RuntimeError):
        t.publish_async_aio(b"x")
