"""The Python API, end to end."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import pytest

import mqlite


def test_send_receive_ack_roundtrip(store: mqlite.Store) -> None:
    q = store.queue("orders")
    props = {"s": "é", "i": -(2**63), "f": 1.5, "t": True, "n": False, "b": b"\x00\xff"}
    mid = q.send(b"order #1", properties=props, correlation_id="c-1")
    assert isinstance(mid, int)
    msg = q.receive(timeout=1)
    assert msg is not None
    assert msg.id == mid and msg.message_id == f"ID:{mid}"
    assert msg.body == b"order #1"
    assert msg.properties == props
    assert [type(v) for v in msg.properties.values()] == [str, int, float, bool, bool, bytes]
    assert msg.correlation_id == "c-1" and msg.queue == "orders"
    assert msg.delivery_count == 1 and not msg.redelivered and not msg.settled
    assert msg.priority == 4 and msg.expires_at_ms is None and msg.timestamp_ms > 0
    msg.ack()
    assert msg.settled
    assert msg.body == b"order #1"  # still readable after settling
    with pytest.raises(mqlite.AlreadySettled):
        msg.ack()
    assert q.receive(timeout=0) is None
    assert q.stats()["acked"] == 1


def test_str_body_is_utf8_and_other_buffers(store: mqlite.Store) -> None:
    q = store.queue("q")
    q.send("héllo")
    q.send(bytearray(b"ba"))
    q.send(memoryview(b"mv"))
    got = [m for m in q.receive_batch(10, timeout=0)]
    assert [m.body for m in got] == ["héllo".encode(), b"ba", b"mv"]
    assert got[0].text == "héllo"
    q.ack_batch(got)
    with pytest.raises(TypeError):
        q.send(12)  # type: ignore[arg-type]


def test_bad_properties(store: mqlite.Store) -> None:
    q = store.queue("q")
    with pytest.raises(mqlite.InvalidArgument):
        q.send(b"x", properties={"big": 2**64})
    with pytest.raises(TypeError):
        q.send(b"x", properties={"l": [1]})  # type: ignore[dict-item]
    with pytest.raises(mqlite.InvalidArgument):
        q.send(b"x", priority=10)
    with pytest.raises(ValueError):
        q.send(b"x", ttl=-1)


def test_ttl_zero_never_expires(store: mqlite.Store) -> None:
    # As JMS: a time to live of 0 means the message never expires (it expired at once before).
    q = store.queue("q")
    q.send(b"forever", ttl=0)
    q.send(b"soon", ttl=3600)
    got = {m.body: m.expires_at_ms for m in q.browse()}
    assert got[b"forever"] is None and got[b"soon"] is not None, got
    msg = q.receive(timeout=0)
    assert msg is not None and msg.body == b"forever"
    msg.ack()


def test_exception_tree(store: mqlite.Store) -> None:
    kinds = {
        "InvalidArgument": ValueError,
        "InvalidName": ValueError,
        "NotFound": LookupError,
        "Locked": None,
        "QueueFull": None,
        "NoSpace": OSError,
        "Io": OSError,
        "Corrupt": None,
        "Poisoned": None,
        "Closed": None,
        "Timeout": TimeoutError,
        "AlreadySettled": None,
        "WouldDeadlock": RuntimeError,
        "Internal": RuntimeError,
        "DeliveryLost": None,
        "OwnerLost": None,
        "ReadOnly": None,
    }
    for name, base in kinds.items():
        cls = getattr(mqlite, name)
        assert issubclass(cls, mqlite.Error) and cls.__module__ == "mqlite"
        assert isinstance(cls.kind, str)
        if base is not None:
            assert issubclass(cls, base)
    for bad in ["", "a\x00b", "x" * 256, "tab\there"]:
        with pytest.raises(mqlite.InvalidName) as e:
            store.queue(bad)
        assert e.value.kind == "invalid_name"


def test_locked_names_the_pid(store_dir: Path) -> None:
    with mqlite.open(store_dir) as s:
        import subprocess
        import sys

        assert s.role() == "owner" and s.owner_pid == os.getpid()
        code = (
            f"import mqlite\ntry:\n    mqlite.open({str(store_dir)!r}, open_as='owner')\n"
            "except mqlite.Locked as e:\n    print(e)\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert str(os.getpid()) in out.stdout, out


def test_closed_store(store_dir: Path) -> None:
    s = mqlite.open(store_dir)
    q = s.queue("q")
    s.close()
    s.close()  # idempotent
    assert s.closed
    with pytest.raises(mqlite.Closed):
        q.send(b"x")
    with pytest.raises(mqlite.Closed):
        q.receive(timeout=0)


def test_queue_keeps_store_alive(store_dir: Path) -> None:
    q = mqlite.open(store_dir).queue("q")  # the Store object itself is not kept by the caller
    q.send(b"x")
    m = q.receive(timeout=1)
    assert m is not None
    m.ack()
    q.store.close()


def test_priority_ttl_delay_with_manual_clock(cstore: mqlite.Store, clock: mqlite.ManualClock) -> None:
    q = cstore.queue("q")
    q.send(b"low", priority=1)
    q.send(b"high", priority=9)
    q.send(b"later", delay=10)
    q.send(b"at", deliver_at=clock.now() + 20)
    q.send(b"short", ttl=datetime.timedelta(seconds=5), priority=0)
    assert q.stats()["delayed"] == 2
    clock.advance(6)  # "short" expires
    got = q.receive_batch(10, timeout=0)
    assert [m.body for m in got] == [b"high", b"low"]
    q.ack_batch(got)
    assert q.receive(timeout=0) is None
    clock.advance(5)
    m = q.receive(timeout=0)
    assert m is not None and m.body == b"later"
    m.ack()
    clock.advance(datetime.timedelta(seconds=10))
    m = q.receive(timeout=0)
    assert m is not None and m.body == b"at"
    m.ack()
    dlq = cstore.queue("DLQ").browse()
    assert [(m.body, m.dead_letter.reason) for m in dlq if m.dead_letter] == [(b"short", "expired")]


def test_context_manager_acks_or_nacks(store: mqlite.Store) -> None:
    q = store.queue("q", redelivery=mqlite.RedeliveryPolicy(initial_redelivery_delay=0, redelivery_delay=0))
    q.send(b"one")
    with q.receive(timeout=1) as msg:  # type: ignore[union-attr]
        assert msg.body == b"one"
    assert msg.settled and q.stats()["acked"] == 1

    q.send(b"two")
    with pytest.raises(KeyError):
        with q.receive(timeout=1) as msg:  # type: ignore[union-attr]
            raise KeyError("no such customer")
    assert msg.settled
    again = q.receive(timeout=1)
    assert again is not None and again.body == b"two" and again.redelivered and again.delivery_count == 2
    again.reject("poison")
    (dead,) = store.queue("DLQ").browse()
    assert dead.dead_letter is not None
    assert dead.dead_letter.reason == "rejected" and dead.dead_letter.last_failure == "poison"


def test_nack_text_from_exception(store: mqlite.Store) -> None:
    q = store.queue("q", redelivery=mqlite.RedeliveryPolicy(max_redeliveries=0))
    q.send(b"x")
    with pytest.raises(ValueError):
        with q.receive(timeout=1):  # type: ignore[union-attr]
            raise ValueError("bad order")
    (dead,) = store.queue("DLQ").browse()
    assert dead.dead_letter is not None
    assert dead.dead_letter.reason == "max_redeliveries"
    assert dead.dead_letter.last_failure == "ValueError: bad order"


def test_release_does_not_count_a_failure(store: mqlite.Store) -> None:
    q = store.queue("q")
    q.send(b"x")
    m = q.receive(timeout=1)
    assert m is not None
    m.release()
    m2 = q.receive(timeout=1)
    assert m2 is not None and m2.id == m.id
    m2.ack()


def test_nack_with_delay(cstore: mqlite.Store, clock: mqlite.ManualClock) -> None:
    q = cstore.queue("q")
    q.send(b"x")
    m = q.receive(timeout=0)
    assert m is not None
    m.nack("busy", delay=30)
    assert q.receive(timeout=0) is None
    clock.advance(30)
    m = q.receive(timeout=0)
    assert m is not None and m.delivery_count == 2
    m.ack()


def test_consume_iterator(store: mqlite.Store) -> None:
    q = store.queue("q")
    q.send_batch([b"a", b"b", b"c"])
    seen = []
    for msg in q.consume(timeout=0.05):
        with msg:
            seen.append(msg.body)
    assert seen == [b"a", b"b", b"c"]


def test_send_batch_items_and_errors(store: mqlite.Store) -> None:
    q = store.queue("q")
    ids = q.send_batch([b"a", "b", {"body": b"c", "priority": 9, "properties": {"k": 1}}])
    assert len(ids) == 3 and ids == sorted(ids)
    first = q.receive(timeout=0)
    assert first is not None and first.body == b"c" and first.properties == {"k": 1}
    first.ack()
    with pytest.raises(mqlite.InvalidArgument, match="message 1 of the batch"):
        q.send_batch([b"ok", {"body": b"bad", "priority": 12}])
    with pytest.raises(TypeError):
        q.send_batch([{"bodee": b"x"}])


def test_receive_batch_and_ack_batch(store: mqlite.Store) -> None:
    q = store.queue("q")
    q.send_batch([str(i) for i in range(100)])
    got = q.receive_batch(60, timeout=0)
    assert len(got) == 60
    q.ack_batch(got)
    assert all(m.settled for m in got)
    rest = q.receive_batch(100, timeout=0)
    assert len(rest) == 40
    other = store.queue("other")
    with pytest.raises(mqlite.InvalidArgument):
        other.ack_batch(rest)
    assert not any(m.settled for m in rest)  # nothing was taken by the refused call
    q.ack_batch(rest)
    assert q.stats()["acked"] == 100
    # A batch of none is refused as in every face (it used to wait for "the first of none").
    # One message naming the valid range for 0 and a negative value alike (review r5 #21).
    for bad in (0, -1):
        with pytest.raises(mqlite.InvalidArgument, match=r"must be an integer from 1 to 18446744073709551615"):
            q.receive_batch(bad, timeout=None)
        with pytest.raises(mqlite.InvalidArgument, match=r"batch must be an integer from 1 to"):
            q.consume_aio(batch=bad)


def test_browse_purge_stats(store: mqlite.Store) -> None:
    q = store.queue("q")
    q.send_batch([b"1", b"2", b"3"])
    b = q.browse()
    assert [m.body for m in b] == [b"1", b"2", b"3"]
    assert b[0].delivery_count == 0
    with pytest.raises(mqlite.InvalidArgument):
        b[0].ack()
    assert len(q.browse(2)) == 2
    s = q.stats()
    assert s["depth"] == 3 and s["enqueued"] == 3 and s["messages"] == 3
    assert set(s) >= {"in_flight", "delayed", "bytes", "acked", "redelivered", "dead_lettered", "expired"}
    assert q.purge() == 3
    assert q.stats()["depth"] == 0
    assert store.stats()["q"]["discarded"] >= 0
    assert "q" in store.queue_names()


def test_purge_filtered_counts_what_it_removes_prefetched_included(store: mqlite.Store) -> None:
    q = store.queue("q")
    q.send_batch([b"%d" % i for i in range(8)])
    c = q.consumer(prefetch=4)
    held = c.receive(timeout=0)  # 1 in flight, 3 prefetched, 4 ready
    assert held is not None
    dry = q.purge_filtered(dry_run=True)
    assert dry["matched"] == 7 and dry["purged"] == 0 and isinstance(dry["last"], int)
    q.send(b"later")
    done = q.purge_filtered(through=dry["last"])
    assert done == {"matched": 7, "purged": 7, "last": dry["last"]}
    s = q.stats()
    assert (s["messages"], s["in_flight"], s["prefetched"]) == (2, 1, 0)
    for bad in (0, -1):
        with pytest.raises(mqlite.InvalidArgument, match="through must be an integer from 1"):
            q.purge_filtered(through=bad)
    with pytest.raises(TypeError, match="through must be an int"):
        q.purge_filtered(through="ID:3")  # type: ignore[arg-type]
    assert q.purge_filtered(dry_run=True) == {"matched": 1, "purged": 0, "last": dry["last"] + 1}
    held.ack()


def test_open_read_only(store_dir: Path) -> None:
    with mqlite.open(store_dir) as s:
        s.queue("q").send_batch([b"a", b"b"])
    with mqlite.open(store_dir, read_only=True) as s:
        assert not (store_dir / "owner.sock").exists()
        q = s.queue("q")
        assert [m.body for m in q.browse()] == [b"a", b"b"]
        assert q.purge_filtered(dry_run=True)["matched"] == 2
        with pytest.raises(mqlite.ReadOnly):
            q.purge_filtered()
        with pytest.raises(mqlite.ReadOnly):
            q.send(b"c")
    with pytest.raises(mqlite.InvalidArgument, match="repair"):
        mqlite.open(store_dir, read_only=True, repair=True)
    with mqlite.open(store_dir) as s:
        assert s.queue("q").stats()["messages"] == 2


def test_dedup(store: mqlite.Store) -> None:
    q = store.queue("q", dedup_window=60)
    a = q.send(b"x", dedup_key="k")
    b = q.send(b"y", dedup_key="k")
    assert a == b and q.stats()["depth"] == 1


def test_queue_limits(store: mqlite.Store) -> None:
    q = store.queue("small", max_messages=2)
    q.send(b"1")
    q.send(b"2")
    with pytest.raises(mqlite.QueueFull):
        q.send(b"3")


def test_persistence_across_reopen(store_dir: Path) -> None:
    with mqlite.open(store_dir) as s:
        s.queue("q").send(b"kept", properties={"a": 1})
    with mqlite.open(store_dir) as s:
        m = s.queue("q").receive(timeout=1)
        assert m is not None and m.body == b"kept" and m.properties == {"a": 1}
        m.ack()
    with mqlite.open(store_dir) as s:
        assert s.queue("q").receive(timeout=0) is None


def test_memory_durability(store_dir: Path) -> None:
    with mqlite.open(store_dir, durability="memory") as s:
        s.queue("q").send(b"gone")
    with mqlite.open(store_dir) as s:
        assert s.queue("q").receive(timeout=0) is None


def test_transaction_commit_and_rollback(store: mqlite.Store) -> None:
    a = store.queue("a")
    b = store.queue("b")
    a.send(b"in")
    with store.transaction() as tx:
        m = a.receive(timeout=1)
        assert m is not None
        tx.ack(m)
        tx.send(b, b"out-1")
        tx.send(b, b"out-2", properties={"n": 2})
        assert len(tx) == 3
    assert tx.ids is not None and len(tx.ids) == 2
    assert [x.body for x in b.browse()] == [b"out-1", b"out-2"]
    assert a.stats()["acked"] == 1

    a.send(b"again")
    with pytest.raises(RuntimeError):
        with store.transaction() as tx:
            m = a.receive(timeout=1)
            assert m is not None
            tx.ack(m)
            tx.send(b, b"never")
            raise RuntimeError("handler failed")
    assert len(b.browse()) == 2
    m = a.receive(timeout=5)
    assert m is not None and m.body == b"again" and m.redelivered
    m.ack()
    with pytest.raises(mqlite.AlreadySettled):
        tx.commit()


def test_dlq_browse_and_replay(store: mqlite.Store) -> None:
    q = store.queue("orders")
    q.send(b"p1")
    q.send(b"p2")
    for _ in range(2):
        m = q.receive(timeout=1)
        assert m is not None
        m.reject("bad format")
    dlq = store.queue("DLQ")
    dead = dlq.browse()
    assert len(dead) == 2
    info = dead[0].dead_letter
    assert info is not None
    assert (info.original_queue, info.reason, info.last_failure) == ("orders", "rejected", "bad format")
    assert info.delivery_count == 1 and info.last_failure_ms > 0
    assert "DeadLetterInfo(" in repr(info)
    assert dlq.replay(dry_run=True) == 2
    assert len(dlq.browse()) == 2
    assert dlq.replay(reason="expired") == 0
    assert dlq.replay(original_queue="orders", limit=1) == 1
    assert dlq.replay(reason="rejected") == 1
    assert dlq.browse() == []
    got = q.receive_batch(10, timeout=1)
    assert sorted(m.body for m in got) == [b"p1", b"p2"]
    assert all(m.delivery_count == 1 for m in got)
    q.ack_batch(got)
    # Review r5 #14: one event, one counter; the books of both queues balance.
    qs, ds = q.stats(), dlq.stats()
    assert (ds["enqueued"], ds["replayed_out"], ds["messages"]) == (2, 2, 0)
    assert (qs["enqueued"], qs["replayed"], qs["acked"], qs["dead_lettered"]) == (2, 2, 2, 2)
    for s in (qs, ds):
        left = s["acked"] + s["dead_lettered"] + s["expired"] + s["discarded"] + s["replayed_out"]
        assert s["enqueued"] + s["replayed"] - left == s["messages"], s


def test_a_reject_from_a_dead_letter_queue_is_refused_and_the_message_stays_held(store: mqlite.Store) -> None:
    # Review r4 #16: it was dropped silently (the dead-letter queue is its own).
    q = store.queue("orders")
    q.send(b"p1")
    m = q.receive(timeout=1)
    assert m is not None
    m.reject("bad format")
    dlq = store.queue("DLQ")
    d = dlq.receive(timeout=1)
    assert d is not None
    with pytest.raises(mqlite.InvalidArgument, match="cannot be dead-lettered again"):
        d.reject("again")
    assert not d.settled
    st = dlq.stats()
    assert (st["in_flight"], st["messages"], st["dead_lettered"], st["discarded"]) == (1, 1, 0, 0)
    d.release()
    d = dlq.receive(timeout=1)
    assert d is not None and d.body == b"p1"
    with pytest.raises(mqlite.InvalidArgument):
        d.reject("again")
    d.ack()
    assert dlq.stats()["messages"] == 0


def test_individual_dead_letter_strategy(store_dir: Path) -> None:
    with mqlite.open(store_dir, dead_letter=mqlite.DeadLetterStrategy.individual()) as s:
        q = s.queue("jobs")
        q.send(b"x")
        m = q.receive(timeout=1)
        assert m is not None
        m.reject("no")
        assert [d.body for d in s.queue("DLQ.jobs").browse()] == [b"x"]
    d = mqlite.DeadLetterStrategy.shared("dead")
    assert (d.kind, d.name) == ("shared", "dead")
    assert mqlite.DeadLetterStrategy.discard().name is None


def test_scheduled_repeat(cstore: mqlite.Store, clock: mqlite.ManualClock) -> None:
    q = cstore.queue("q")
    q.send(b"tick", repeat=(60, 2))
    bodies = []
    for _ in range(3):
        m = q.receive(timeout=0)
        assert m is not None
        bodies.append(m.body)
        m.ack()
        assert q.receive(timeout=0) is None
        clock.advance(60)
    assert bodies == [b"tick"] * 3
    clock.advance(600)
    assert q.receive(timeout=0) is None


def test_redelivery_policy_object() -> None:
    p = mqlite.RedeliveryPolicy(
        initial_redelivery_delay=datetime.timedelta(milliseconds=10),
        redelivery_delay=0.3,
        use_exponential_backoff=False,
    )
    assert p.max_redeliveries == 6
    assert p.delay(1) == pytest.approx(0.01) and p.delay(2) == pytest.approx(0.3)
    p.use_exponential_backoff = True
    assert p.delay(3) == pytest.approx(0.01 * 25)
    assert "RedeliveryPolicy(" in repr(p)
    assert mqlite.RedeliveryPolicy(backoff=[1, 5, 30]).delay(5) == 30


def test_options_are_the_cores(store_dir: Path) -> None:
    """Defaults and validation come from the core, as in the C and Rust faces."""
    with pytest.raises(mqlite.InvalidArgument):
        mqlite.RedeliveryPolicy(max_redeliveries=-2)
    with pytest.raises(mqlite.InvalidArgument):
        mqlite.RedeliveryPolicy(backoff_multiplier=0.5)
    p = mqlite.RedeliveryPolicy()
    # A setter checks as the constructor does (the core's check), and leaves the policy as it was.
    with pytest.raises(mqlite.InvalidArgument, match="max_redeliveries"):
        p.max_redeliveries = -2
    assert p.max_redeliveries == 6
    assert mqlite.RedeliveryPolicy(max_redeliveries=-1).max_redeliveries == -1
    d = mqlite.RedeliveryPolicy()
    assert d.max_redeliveries == 6 and d.backoff_multiplier == 5.0 and d.delay(1) == 1.0
    assert mqlite.DeadLetterStrategy.shared().name == "DLQ"
    assert mqlite.DeadLetterStrategy.individual().name == "DLQ."
    with pytest.raises(mqlite.InvalidArgument, match="segment_bytes"):
        mqlite.open(store_dir, segment_bytes=5 << 30)
    # One name for batched durability's delay in every face: max_delay (C: max_delay_ms).
    with mqlite.open(store_dir, durability="batched", max_delay=0.01) as s:
        q = s.queue("b", durability="batched", max_delay=datetime.timedelta(milliseconds=5))
        q.send(b"x")
        dlq = s.queue("DLQ")
        assert dlq.replay(reason="group_parked", dry_run=True) == 0
        with pytest.raises(mqlite.InvalidArgument, match="group_parked"):
            dlq.replay(reason="parked")  # type: ignore[arg-type]


def test_unsettled_message_dropped_counts_as_failure(store: mqlite.Store) -> None:
    q = store.queue("q", redelivery=mqlite.RedeliveryPolicy(initial_redelivery_delay=0))
    q.send(b"x")
    m = q.receive(timeout=1)
    del m
    m = q.receive(timeout=1)
    assert m is not None and m.delivery_count == 2
    m.ack()


def test_fork_child_gets_a_clear_error(store_dir: Path) -> None:
    s = mqlite.open(store_dir)
    q = s.queue("q")
    q.send(b"x")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            q.send(b"from child")
        except mqlite.Closed as e:
            os.write(w, str(e).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    text = os.read(r, 4096).decode()
    assert os.WEXITSTATUS(status) == 0, text
    assert "fork()" in text and "Open the store" in text and str(os.getpid()) in text
    # The child closed the lock descriptor it inherited: the parent can close and reopen.
    s.close()
    with mqlite.open(store_dir) as s2:
        m = s2.queue("q").receive(timeout=1)
        assert m is not None and m.body == b"x"
        m.ack()


def test_readme_example_runs() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(code.strip().splitlines()) <= 12
    import tempfile

    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)
        try:
            exec(compile(code, "README.md", "exec"), {})
        finally:
            os.chdir(cwd)


def test_consumer_ack_modes(store: mqlite.Store) -> None:
    q = store.queue("modes", redelivery=mqlite.RedeliveryPolicy(initial_redelivery_delay=0))
    q.send_batch([b"1", b"2", b"3"])
    with q.consumer("cumulative") as c:
        got = c.receive_batch(3, timeout=1)
        assert [m.body for m in got] == [b"1", b"2", b"3"]
        assert not any(m.settled for m in got)
        got[1].ack()  # acks 1 and 2 as well
        assert got[0].settled and not got[2].settled  # the earlier one was acked with it
        with pytest.raises(mqlite.AlreadySettled):
            got[0].ack()
    # Closing the consumer returned the unsettled "3" as a failed delivery.
    assert q.stats()["acked"] == 2
    q.send(b"4")
    with q.consumer("auto") as c:
        auto = c.receive_batch(10, timeout=5)
        assert sorted(m.body for m in auto) == [b"3", b"4"]
        assert all(m.settled for m in auto)
    assert q.stats()["messages"] == 0
    with pytest.raises(mqlite.InvalidArgument):
        q.consumer("sometimes")  # type: ignore[arg-type]
    c = q.consumer()
    c.close()
    with pytest.raises(mqlite.Closed):
        c.receive(timeout=0)


def test_listener_acks_or_nacks_from_the_handler(store: mqlite.Store) -> None:
    import threading

    q = store.queue("pushed", redelivery=mqlite.RedeliveryPolicy(max_redeliveries=0))
    seen: list[bytes] = []
    done = threading.Event()

    def handler(msg: mqlite.Message) -> None:
        seen.append(msg.body)
        assert threading.current_thread() is not threading.main_thread()
        if msg.body == b"bad":
            raise ValueError("cannot parse")
        if len(seen) == 3:
            done.set()

    with q.listen(handler) as listener:
        assert listener.running
        q.send_batch([b"ok", b"bad", b"ok2"])
        assert done.wait(10)
    assert not listener.running
    assert sorted(seen) == [b"bad", b"ok", b"ok2"]
    assert q.stats()["acked"] == 2
    (dead,) = store.queue("DLQ").browse()
    assert dead.dead_letter is not None and dead.dead_letter.last_failure == "ValueError: cannot parse"


def test_a_listener_message_after_close_says_closed_and_the_listener_stops_running(store_dir: Path) -> None:
    # Review r10 #6: after close, the handler's m.ack()/m.nack() said "a browsed copy"
    # (InvalidArgument), and Listener.running stayed True.
    import threading
    import time

    s = mqlite.open(store_dir)
    q = s.queue("q")
    entered, closed = threading.Event(), threading.Event()
    res: list[tuple[str, str]] = []

    def handler(m: mqlite.Message) -> None:
        for name, f in [("ack", m.ack), ("nack", lambda: m.nack("x"))]:
            try:
                f()
                res.append((name, "ok"))
            except mqlite.Error as e:
                res.append((name, type(e).__name__))
        entered.set()
        assert closed.wait(10)
        for name, f in [("ack", m.ack), ("nack", lambda: m.nack("x"))]:
            try:
                f()
                res.append((name, "ok"))
            except mqlite.Error as e:
                res.append((name, type(e).__name__))

    listener = q.listen(handler)
    q.send(b"a")
    assert entered.wait(10)
    s.close()
    closed.set()
    deadline = time.monotonic() + 10
    while listener.running and time.monotonic() < deadline:
        time.sleep(0.01)  # the listener thread's end, not a timer
    assert not listener.running
    assert res == [
        ("ack", "InvalidArgument"),
        ("nack", "InvalidArgument"),
        ("ack", "Closed"),
        ("nack", "Closed"),
    ], res
    listener.stop()


def test_prefetch_stats_and_close_give_back_uncounted(store: mqlite.Store) -> None:
    q = store.queue("pf")
    q.send_batch([b"a", b"b", b"c", b"d"])
    c = q.consumer(prefetch=3)
    m = c.receive(timeout=0)
    assert m is not None and m.body == b"a"
    st = q.stats()
    assert (st["in_flight"], st["prefetched"], st["depth"]) == (1, 2, 1)
    m.ack_sync()
    c.close()  # the two prefetched go back, uncounted
    st = q.stats()
    assert (st["in_flight"], st["prefetched"], st["depth"]) == (0, 0, 3)
    rest = q.receive_batch(10, timeout=0)
    assert [x.body for x in rest] == [b"b", b"c", b"d"]
    assert all(x.delivery_count == 1 and not x.redelivered for x in rest)
    q.ack_batch(rest, sync=True)
    with pytest.raises(mqlite.InvalidArgument):
        q.consumer(prefetch=2**31).receive(timeout=0)


def test_queue_consuming_options(store: mqlite.Store) -> None:
    q = store.queue("sync-acks", prefetch=1, ack_durability="sync")
    q.send_batch([b"x", b"y"])
    m = q.receive(timeout=0)
    assert m is not None
    assert q.stats()["prefetched"] == 0  # prefetch 1: one at a time
    m.ack()
    with pytest.raises(mqlite.InvalidArgument):
        store.queue("bad", ack_durability="later")
    with pytest.raises(mqlite.InvalidArgument):
        store.queue("bad", prefetch=2**31)


@pytest.mark.parametrize("part", [0.0004, 0.0504, 0.9996])
def test_deliver_at_below_the_ms_is_never_early(store_dir: Path, part: float) -> None:
    # Issue 15 §3: nothing is delivered before it is due; a due time between two ms rounds up.
    clock = mqlite.ManualClock(start=1000.0)
    with mqlite.open(store_dir, clock=clock) as s:
        q = s.queue("q")
        due = 1000.0 + part
        q.send(b"x", deliver_at=due)
        while clock.now() < due:
            assert q.receive(timeout=0) is None, f"delivered at {clock.now()}, due {due}"
            clock.advance(0.001)
        m = q.receive(timeout=0)
        assert m is not None and clock.now() - due < 0.0011
        m.ack()
