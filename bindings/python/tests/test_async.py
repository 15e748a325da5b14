"""Async sends: futures and callbacks fire exactly once; asyncio producer and consumer."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections import Counter
from pathlib import Path

import pytest

import mqlite


def test_futures_and_callbacks_fire_exactly_once(store: mqlite.Store) -> None:
    q = store.queue("q")
    fired: Counter[int] = Counter()
    threads = set()
    lock = threading.Lock()

    def cb(fut: concurrent.futures.Future[int]) -> None:
        with lock:
            fired[fut.result()] += 1
            threads.add(threading.current_thread().ident)

    n = 20_000
    futs = [q.send_async(b"m%d" % i, callback=cb) for i in range(n)]
    assert all(isinstance(f, concurrent.futures.Future) for f in futs)
    # Some are waited on while pending (the slow path), most never before completion.
    ids = [f.result(timeout=30) for f in futs[::97]]
    store.flush()
    done, not_done = concurrent.futures.wait(futs, timeout=30)
    assert not not_done
    ids = [f.result() for f in futs]
    assert len(set(ids)) == n and ids == sorted(ids)
    for _ in range(100):
        if len(fired) == n:
            break
        threading.Event().wait(0.05)
    assert len(fired) == n and set(fired.values()) == {1}
    assert threading.main_thread().ident not in threads  # callbacks run on a library thread
    assert not futs[0].cancel() and futs[0].done()
    assert q.stats()["depth"] == n


def test_close_completes_every_pending_future(store_dir: Path) -> None:
    s = mqlite.open(store_dir)
    q = s.queue("q")
    calls = []
    futs = [q.send_async(b"x", callback=calls.append) for _ in range(5000)]
    s.close()  # flushes and completes everything before returning
    assert all(f.done() for f in futs) and len(calls) == 5000
    with pytest.raises(mqlite.Closed):
        q.send_async(b"late")


def test_future_reports_errors(store_dir: Path) -> None:
    with mqlite.open(store_dir, max_body_bytes=10) as s:
        q = s.queue("q")
        with pytest.raises(mqlite.InvalidArgument):
            q.send_async(b"x" * 11)  # refused at once: raised, no future


def test_as_completed_and_wrap_future(store: mqlite.Store) -> None:
    q = store.queue("q")
    futs = [q.send_async(b"x") for _ in range(100)]
    assert len(list(concurrent.futures.as_completed(futs, timeout=30))) == 100

    async def main() -> list[int]:
        return [await asyncio.wrap_future(f) for f in [q.send_async(b"y") for _ in range(10)]] + [
            await q.send_async(b"z")
        ]

    assert len(asyncio.run(main())) == 11


def test_asyncio_producer_and_consumer(store: mqlite.Store) -> None:
    q = store.queue("aio")
    n = 2000

    async def producer() -> list[int]:
        ids = await asyncio.gather(*(q.send_async_aio(b"m%d" % i, properties={"i": i}) for i in range(n)))
        return list(ids)

    async def consumer() -> list[int]:
        seen: list[int] = []
        async for msg in q.consume_aio(timeout=2, batch=100):
            with msg:
                seen.append(int(msg.properties["i"]))  # type: ignore[arg-type]
            if len(seen) == n:
                break
        return seen

    async def main() -> tuple[list[int], list[int]]:
        c = asyncio.create_task(consumer())
        ids = await producer()
        return ids, await c

    ids, seen = asyncio.run(main())
    assert len(set(ids)) == n
    assert sorted(seen) == list(range(n))
    assert q.stats()["acked"] == n and q.stats()["in_flight"] == 0


def test_asyncio_receive_timeout_and_cancel(store: mqlite.Store) -> None:
    q = store.queue("aio2")

    async def main() -> None:
        assert await q.receive_aio(timeout=0.05) is None
        t = asyncio.create_task(q.receive_aio(timeout=None))
        await asyncio.sleep(0.05)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        await q.send_async_aio(b"after cancel")
        m = await q.receive_aio(timeout=5)
        assert m is not None and m.body == b"after cancel"
        m.ack()

    asyncio.run(main())
    # A message picked up by the cancelled wait (if any) was released, not lost.
    assert q.stats()["in_flight"] == 0
