#!/usr/bin/env python3
"""mqlite from Python vs the stdlib sqlite3 queue table, side by side (W1–W3 as benches/README.md describes them).

    pip install ./bindings/python && python benches/python/bench.py [--runs 3] [--scale 1.0]

W1   sync durable send, one producer, 10,000 msgs            sqlite3: one INSERT per transaction
W2   async send with a callback per message, 200,000 msgs     sqlite3: 1,000 INSERTs per transaction
W2b  send_batch of 1,000, 200,000 msgs                        (same baseline)
W3   drain 200,000 persisted msgs: receive_batch + ack_batch  sqlite3: select-and-delete, 100 per txn
W3s  the idiomatic consumer, 200,000 msgs: receive(timeout) + ack() each, default options
     (prefetch, lazy acks); also `for m in q.consume(): with m:`   sqlite3: one transaction per message
     (20,000 msgs); and the disk's own rate of 100 B pwrite + fdatasync, for scale

Bodies are 100 bytes. Durable = fdatasync'd before the call returns or the callback fires
(sqlite3: WAL, synchronous=FULL). Each figure is the median of --runs runs (min–max shown),
each run in a fresh directory under $MQLITE_BENCH_DIR (default: the system temp dir).
Not part of the test command.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import tempfile
import threading
import time
from typing import Callable

import mqlite

BODY = b"x" * 100


def fresh_dir() -> str:
    return tempfile.mkdtemp(prefix="mqbench-", dir=os.environ.get("MQLITE_BENCH_DIR"))


# ---------------------------------------------------------------- mqlite


def mq_w1(n: int) -> tuple[float, list[float]]:
    d = fresh_dir()
    try:
        with mqlite.open(d) as s:
            q = s.queue("w1")
            lat = []
            t0 = time.perf_counter()
            for _ in range(n):
                a = time.perf_counter()
                q.send(BODY)
                lat.append(time.perf_counter() - a)
            return n / (time.perf_counter() - t0), lat
    finally:
        shutil.rmtree(d, ignore_errors=True)


def mq_w2_async(n: int) -> float:
    d = fresh_dir()
    try:
        with mqlite.open(d) as s:
            q = s.queue("w2")
            done = threading.Event()
            count = [0]

            def cb(_f: object) -> None:
                count[0] += 1
                if count[0] == n:
                    done.set()

            send = q.send_async
            t0 = time.perf_counter()
            for _ in range(n):
                send(BODY, callback=cb)
            done.wait()
            return n / (time.perf_counter() - t0)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def mq_w2_batch(n: int, batch: int = 1000) -> float:
    d = fresh_dir()
    try:
        with mqlite.open(d) as s:
            q = s.queue("w2b")
            chunk = [BODY] * batch
            t0 = time.perf_counter()
            for _ in range(n // batch):
                q.send_batch(chunk)
            return n / (time.perf_counter() - t0)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def mq_backlog(d: str, name: str, n: int) -> None:
    """Fills queue `name` of the store in `d` with `n` messages (untimed) and closes it."""
    with mqlite.open(d) as s:
        q = s.queue(name)
        chunk = [BODY] * 1000
        for _ in range(n // 1000):
            q.send_batch(chunk)


def mq_w3(n: int, batch: int = 1000) -> float:
    d = fresh_dir()
    try:
        mq_backlog(d, "w3", n)
        with mqlite.open(d) as s:  # a persisted backlog, as after a restart
            q = s.queue("w3")
            got = 0
            t0 = time.perf_counter()
            while got < n:
                ms = q.receive_batch(batch, timeout=1)
                if not ms:
                    raise RuntimeError(f"backlog ran dry at {got}")
                q.ack_batch(ms)
                got += len(ms)
            return n / (time.perf_counter() - t0)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def mq_w3s(n: int, style: str) -> float:
    d = fresh_dir()
    try:
        mq_backlog(d, "w3s", n)
        with mqlite.open(d) as s:  # a persisted backlog, as after a restart
            q = s.queue("w3s")
            t0 = time.perf_counter()
            if style == "receive":
                for _ in range(n):
                    m = q.receive(timeout=1)
                    if m is None:
                        raise RuntimeError("backlog ran dry")
                    m.ack()
            else:
                got = 0
                for m in q.consume(timeout=0):
                    with m:
                        got += 1
                    if got == n:
                        break
            return n / (time.perf_counter() - t0)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def disk_fsync_rate(n: int) -> float:
    """100-byte pwrite + fdatasync into a preallocated file: the disk's own synced-write rate."""
    d = fresh_dir()
    try:
        fd = os.open(os.path.join(d, "raw"), os.O_RDWR | os.O_CREAT, 0o600)
        os.posix_fallocate(fd, 0, (n + 1) * 100)
        os.fsync(fd)
        t0 = time.perf_counter()
        for i in range(n):
            os.pwrite(fd, BODY, i * 100)
            os.fdatasync(fd)
        r = n / (time.perf_counter() - t0)
        os.close(fd)
        return r
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- sqlite3 baseline


def sq_open(d: str) -> sqlite3.Connection:
    c = sqlite3.connect(os.path.join(d, "q.db"), isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA synchronous=FULL")
    c.execute("CREATE TABLE IF NOT EXISTS q (id INTEGER PRIMARY KEY, body BLOB, state INTEGER DEFAULT 0)")
    return c


def sq_w1(n: int) -> tuple[float, list[float]]:
    d = fresh_dir()
    try:
        c = sq_open(d)
        lat = []
        t0 = time.perf_counter()
        for _ in range(n):
            a = time.perf_counter()
            c.execute("INSERT INTO q (body) VALUES (?)", (BODY,))
            lat.append(time.perf_counter() - a)
        r = n / (time.perf_counter() - t0)
        c.close()
        return r, lat
    finally:
        shutil.rmtree(d, ignore_errors=True)


def sq_w2(n: int, batch: int = 1000) -> float:
    d = fresh_dir()
    try:
        c = sq_open(d)
        rows = [(BODY,)] * batch
        t0 = time.perf_counter()
        for _ in range(n // batch):
            c.execute("BEGIN")
            c.executemany("INSERT INTO q (body) VALUES (?)", rows)
            c.execute("COMMIT")
        r = n / (time.perf_counter() - t0)
        c.close()
        return r
    finally:
        shutil.rmtree(d, ignore_errors=True)


def sq_w3(n: int, batch: int = 100) -> float:
    d = fresh_dir()
    try:
        c = sq_open(d)
        rows = [(BODY,)] * 1000
        for _ in range(n // 1000):
            c.execute("BEGIN")
            c.executemany("INSERT INTO q (body) VALUES (?)", rows)
            c.execute("COMMIT")
        c.close()
        c = sq_open(d)
        got = 0
        t0 = time.perf_counter()
        while got < n:
            c.execute("BEGIN")
            rs = c.execute("SELECT id, body FROM q WHERE state = 0 ORDER BY id LIMIT ?", (batch,)).fetchall()
            c.executemany("DELETE FROM q WHERE id = ?", [(r[0],) for r in rs])
            c.execute("COMMIT")
            got += len(rs)
        r = n / (time.perf_counter() - t0)
        c.close()
        return r
    finally:
        shutil.rmtree(d, ignore_errors=True)


def sq_w3s(n: int) -> float:
    d = fresh_dir()
    try:
        c = sq_open(d)
        rows = [(BODY,)] * 1000
        for _ in range(max(1, n // 1000)):
            c.execute("BEGIN")
            c.executemany("INSERT INTO q (body) VALUES (?)", rows)
            c.execute("COMMIT")
        c.close()
        c = sq_open(d)
        t0 = time.perf_counter()
        for _ in range(n):
            c.execute("BEGIN")
            r = c.execute("SELECT id, body FROM q WHERE state = 0 ORDER BY id LIMIT 1").fetchone()
            c.execute("DELETE FROM q WHERE id = ?", (r[0],))
            c.execute("COMMIT")
        rate = n / (time.perf_counter() - t0)
        c.close()
        return rate
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- driver


def measure(fn: Callable[[], float], runs: int) -> list[float]:
    return [fn() for _ in range(runs)]


def fmt(xs: list[float]) -> str:
    return f"{statistics.median(xs):>12,.0f}  ({min(xs):,.0f}–{max(xs):,.0f})"


def pct(lat: list[float], p: float) -> float:
    s = sorted(lat)
    return s[min(len(s) - 1, int(p * len(s)))] * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply message counts (quick runs: 0.1)")
    a = ap.parse_args()
    n1, n2, n3 = (max(1000, int(x * a.scale)) for x in (10_000, 200_000, 200_000))
    print(f"mqlite {mqlite.__version__} vs sqlite3 {sqlite3.sqlite_version}; 100-byte bodies; median of {a.runs} runs")
    print(f"{'workload':<34}{'mqlite msgs/s (min–max)':>34}{'sqlite3 msgs/s (min–max)':>34}{'ratio':>8}")
    rows = []

    w1 = [mq_w1(n1) for _ in range(a.runs)]
    s1 = [sq_w1(n1) for _ in range(a.runs)]
    lat_m = [x for _, l in w1 for x in l]
    lat_s = [x for _, l in s1 for x in l]
    rows.append((f"W1 sync send ({n1:,})", [r for r, _ in w1], [r for r, _ in s1]))
    sq2 = measure(lambda: sq_w2(n2), a.runs)
    rows.append((f"W2 send_async+callback ({n2:,})", measure(lambda: mq_w2_async(n2), a.runs), sq2))
    rows.append((f"W2 send_batch of 1000 ({n2:,})", measure(lambda: mq_w2_batch(n2), a.runs), sq2))
    rows.append(
        (f"W3 receive_batch+ack_batch ({n3:,})", measure(lambda: mq_w3(n3), a.runs), measure(lambda: sq_w3(n3), a.runs))
    )
    n3s_sq = max(1000, n3 // 10)
    sq3s = measure(lambda: sq_w3s(n3s_sq), a.runs)
    w3s = measure(lambda: mq_w3s(n3, "receive"), a.runs)
    rows.append((f"W3s receive(timeout)+ack ({n3:,})", w3s, sq3s))
    rows.append((f"W3s consume()+with ({n3:,})", measure(lambda: mq_w3s(n3, "consume"), a.runs), sq3s))
    disk = measure(lambda: disk_fsync_rate(max(1000, n1)), a.runs)
    for name, ours, base in rows:
        ratio = statistics.median(ours) / statistics.median(base)
        print(f"{name:<34}{fmt(ours):>34}{fmt(base):>34}{ratio:>7.2f}x")
    print(f"disk: 100 B pwrite + fdatasync into a preallocated file: {fmt(disk)} /s")
    m3s, s3s = statistics.median(w3s), statistics.median(sq3s)
    print(
        f"W3s target: >= 100,000 msgs/s and >= 30x SQLite (one transaction per message): "
        f"{m3s:,.0f}/s ({'PASS' if m3s >= 1e5 else 'MISS'}), {m3s / s3s:.1f}x ({'PASS' if m3s / s3s >= 30 else 'MISS'})"
    )
    print(
        f"W1 latency p50/p99: mqlite {pct(lat_m, 0.5):.0f}/{pct(lat_m, 0.99):.0f} µs, "
        f"sqlite3 {pct(lat_s, 0.5):.0f}/{pct(lat_s, 0.99):.0f} µs"
    )


if __name__ == "__main__":
    main()
