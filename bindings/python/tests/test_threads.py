"""Many producer and consumer threads: nothing lost, nothing delivered twice."""

from __future__ import annotations

import threading

import mqlite


def test_many_producers_and_consumers(store: mqlite.Store) -> None:
    q = store.queue("work")
    producers, consumers, per = 6, 4, 300
    received: list[bytes] = []
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []

    def produce(p: int) -> None:
        try:
            for i in range(per):
                if i % 3 == 0:
                    q.send(b"%d-%d" % (p, i))
                elif i % 3 == 1:
                    q.send_async(b"%d-%d" % (p, i)).result(timeout=30)
                else:
                    q.send_batch([b"%d-%d" % (p, i)])
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    def consume() -> None:
        try:
            while not stop.is_set():
                got = q.receive_batch(16, timeout=0.05)
                if got:
                    with lock:
                        received.extend(m.body for m in got)
                    q.ack_batch(got)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    cs = [threading.Thread(target=consume) for _ in range(consumers)]
    ps = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    for t in cs + ps:
        t.start()
    for t in ps:
        t.join()
    deadline = threading.Event()
    for _ in range(200):
        with lock:
            if len(received) >= producers * per:
                break
        deadline.wait(0.05)
    stop.set()
    for t in cs:
        t.join()
    assert not errors, errors
    assert len(received) == producers * per
    assert len(set(received)) == producers * per
    assert q.stats()["acked"] == producers * per
