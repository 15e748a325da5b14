"""T13 of the test catalogue (`mqlite::docs::tests`): the GIL is released while blocking, Ctrl-C interrupts a blocking receive,
an exception in a callback reaches sys.unraisablehook, and a producer killed with SIGKILL loses
no message whose send returned."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import mqlite

from conftest import child_env


def _progress_while(block: Any) -> int:
    """How far a pure-Python counting thread gets while the main thread runs `block()`."""
    count = [0]
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            count[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    time.sleep(0.05)
    before = count[0]
    block()
    after = count[0]
    stop.set()
    t.join()
    return after - before


def test_blocking_calls_release_the_gil(store: mqlite.Store) -> None:
    q = store.queue("empty")
    baseline = _progress_while(lambda: time.sleep(0.5))
    during_receive = _progress_while(lambda: q.receive(timeout=0.5))
    assert during_receive > 0.25 * baseline, (during_receive, baseline)
    # A blocking send (full queue, overflow "block") releases it too, for the whole wait.
    full = store.queue("full", max_messages=1, overflow="block", overflow_timeout=0.5)
    full.send(b"1")

    def blocked_send() -> None:
        try:
            full.send(b"2")
        except mqlite.QueueFull:
            pass

    during_send = _progress_while(blocked_send)
    assert during_send > 0.25 * baseline, (during_send, baseline)


def test_ctrl_c_interrupts_a_blocking_receive(tmp_path: Path) -> None:
    # A process started with SIGINT ignored (a background job of a non-interactive shell, or a
    # child of one: the test command under `&` or nohup) inherits SIG_IGN, and Python then
    # installs no KeyboardInterrupt handler. The child sets Python's default handler itself, as
    # an interactive program would have it, so the test does not depend on how it was started.
    code = textwrap.dedent(
        f"""
        import signal
        signal.signal(signal.SIGINT, signal.default_int_handler)
        import mqlite
        with mqlite.open({str(tmp_path / "s")!r}) as store:
            q = store.queue("empty")
            print("ready", flush=True)
            q.receive()  # forever
        """
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env())
    assert p.stdout is not None
    assert p.stdout.readline().strip() == b"ready"
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    try:
        _, err = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        raise AssertionError("SIGINT did not interrupt the blocking receive")
    assert p.returncode != 0
    assert b"KeyboardInterrupt" in err, err


def test_callback_exception_goes_to_unraisablehook(store: mqlite.Store) -> None:
    q = store.queue("q")
    seen: list[Any] = []
    got = threading.Event()
    old = sys.unraisablehook

    def hook(u: Any) -> None:
        seen.append(u)
        got.set()

    sys.unraisablehook = hook
    try:

        def bad(_f: Any) -> None:
            raise ZeroDivisionError("callback bug")

        f = q.send_async(b"x", callback=bad)
        assert isinstance(f.result(timeout=10), int)
        assert got.wait(10)
        assert isinstance(seen[0].exc_value, ZeroDivisionError)
        assert seen[0].object is bad
        # The library keeps running: later sends and callbacks still complete.
        ok = threading.Event()
        q.send_async(b"y", callback=lambda _f: ok.set())
        assert ok.wait(10)
    finally:
        sys.unraisablehook = old


PRODUCER = """
import sys, mqlite
store = mqlite.open(sys.argv[1])
q = store.queue("orders")
i = 0
while True:
    body = b"m%d" % i
    if i % 3 == 0:
        mid = q.send(body)
    elif i % 3 == 1:
        mid = q.send_async(body).result()
    else:
        (mid,) = q.send_batch([body])
    sys.stdout.write("%d %s\\n" % (mid, body.decode()))
    sys.stdout.flush()
    i += 1
"""


def test_sigkill_of_a_producer_loses_no_returned_send(tmp_path: Path) -> None:
    d = tmp_path / "s"
    rng = random.Random(5)
    reported: dict[int, bytes] = {}
    for cycle in range(3):
        p = subprocess.Popen([sys.executable, "-c", PRODUCER, str(d)], stdout=subprocess.PIPE, env=child_env())
        assert p.stdout is not None
        want = rng.randint(20, 300)
        lines = []
        while len(lines) < want:
            line = p.stdout.readline()
            assert line, "producer died"
            lines.append(line)
        os.kill(p.pid, signal.SIGKILL)
        rest, _ = p.communicate()
        # Only whole lines: a line cut by the kill was not reported.
        for line in lines + rest.split(b"\n")[:-1]:
            mid, body = line.split()
            reported[int(mid)] = body
    with mqlite.open(d) as store:
        q = store.queue("orders")
        stored = {m.id: m.body for m in q.browse()}
    missing = {i: b for i, b in reported.items() if stored.get(i) != b}
    assert not missing, f"{len(missing)} returned sends lost, e.g. {list(missing.items())[:5]}"
    print(f"SIGKILL x3: {len(reported)} returned sends, all {len(stored)} stored messages present")
