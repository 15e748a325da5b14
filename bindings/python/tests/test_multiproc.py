"""Several processes, one store: a producer and two consumers in separate processes share one
store (the first to open it owns it, the others are its clients); the owner is SIGKILLed
mid-stream, a client takes over, and nothing acknowledged is lost or stored twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import mqlite

OWNER = """
import sys, mqlite
s = mqlite.open(sys.argv[1], open_as="owner")
print("ready", flush=True)
sys.stdin.read()
"""

PRODUCER = """
import sys, mqlite
s = mqlite.open(sys.argv[1], open_as="client", connect_timeout=20)
print("role", s.role(), flush=True)
q = s.queue("jobs")
for i in range(int(sys.argv[2])):
    q.send(f"job-{i}".encode())
    print("sent", i, flush=True)
s.close()
"""

CONSUMER = """
import sys, mqlite
s = mqlite.open(sys.argv[1], connect_timeout=20)
q = s.queue("jobs")
idle = 0
while idle < 20:
    d = q.receive(timeout=0.1)
    if d is None:
        idle += 1
        continue
    idle = 0
    body = d.body.decode()
    try:
        d.ack()
        print("acked", body, flush=True)
    except mqlite.DeliveryLost:
        print("doubt", body, flush=True)  # in flight when the owner died
print("role", s.role(), flush=True)
s.close()
"""


def _py(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_role_and_open_as(store_dir: Path) -> None:
    owner = _py(OWNER, str(store_dir))
    try:
        assert owner.stdout is not None and owner.stdout.readline().strip() == "ready"
        with mqlite.open(store_dir, open_as="client") as c:
            assert c.role() == "client"
            assert c.owner_pid == owner.pid
            q = c.queue("q")
            q.send(b"from a client")
            d = q.receive(timeout=5)
            assert d is not None and d.body == b"from a client"
            d.ack()
            assert q.stats()["depth"] == 0
        with pytest.raises(mqlite.Locked) as e:
            mqlite.open(store_dir, open_as="owner")
        assert str(owner.pid) in str(e.value)
        with pytest.raises(mqlite.InvalidArgument):
            mqlite.open(store_dir, open_as="nobody")  # type: ignore[arg-type]
    finally:
        owner.kill()
        owner.wait()


def test_three_processes_owner_killed_mid_stream(store_dir: Path) -> None:
    n = 300
    owner = _py(OWNER, str(store_dir))
    assert owner.stdout is not None and owner.stdout.readline().strip() == "ready"
    producer = _py(PRODUCER, str(store_dir), str(n))
    consumers = [_py(CONSUMER, str(store_dir)) for _ in range(2)]
    # Kill the owner once the producer is under way.
    assert producer.stdout is not None
    sent = []
    while len(sent) < n // 3:
        line = producer.stdout.readline()
        assert line, producer.stderr.read() if producer.stderr else ""
        if line.startswith("sent"):
            sent.append(int(line.split()[1]))
    os.kill(owner.pid, signal.SIGKILL)
    owner.wait()
    out, err = producer.communicate(timeout=120)
    assert producer.returncode == 0, err
    sent += [int(x.split()[1]) for x in out.splitlines() if x.startswith("sent")]
    assert sent == list(range(n))
    acked: list[str] = []
    doubt: set[str] = set()
    for c in consumers:
        out, err = c.communicate(timeout=120)
        assert c.returncode == 0, err
        acked += [x.split()[1] for x in out.splitlines() if x.startswith("acked")]
        doubt |= {x.split()[1] for x in out.splitlines() if x.startswith("doubt")}
    # What the consumers did not ack is still in the store; nothing is there twice.
    with mqlite.open(store_dir) as s:
        q = s.queue("jobs")
        left = []
        while (d := q.receive(timeout=0)) is not None:
            left.append(d.body.decode())
            d.ack()
    everything = acked + left
    assert len(everything) == len(set(everything)), "a message was stored or acked twice"
    want = {f"job-{i}" for i in range(n)}
    assert set(everything) <= want
    # An ack in flight when the owner died may have been made durable (then the message is gone).
    assert want - set(everything) <= doubt, "an acknowledged send was lost"


def test_a_forked_child_of_a_client_gets_the_clear_error_and_can_open_its_own(
    store_dir: Path,
) -> None:
    owner = _py(OWNER, str(store_dir))
    try:
        assert owner.stdout is not None and owner.stdout.readline().strip() == "ready"
        c = mqlite.open(store_dir, open_as="client")
        q = c.queue("q")
        q.send(b"parent")
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                try:
                    q.send(b"through the parent's connection")
                except mqlite.Closed as e:
                    os.write(w, str(e).encode() + b"\n")
                    with mqlite.open(store_dir, open_as="client") as own:
                        own.queue("q").send(b"child")
                        os.write(w, own.role().encode())
                    code = 0
            finally:
                os._exit(code)
        os.close(w)
        _, status = os.waitpid(pid, 0)
        text = os.read(r, 4096).decode()
        assert os.WEXITSTATUS(status) == 0, text
        assert "fork()" in text and text.endswith("client"), text
        bodies = []
        while (d := q.receive(timeout=0)) is not None:
            bodies.append(d.body)
            d.ack()
        assert sorted(bodies) == [b"child", b"parent"]
        c.close()
    finally:
        owner.kill()
        owner.wait()
