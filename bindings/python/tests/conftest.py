from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import mqlite

HERE = Path(__file__).resolve().parent
PY = sys.executable


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(store_dir: Path) -> Iterator[mqlite.Store]:
    with mqlite.open(store_dir) as s:
        yield s


@pytest.fixture
def clock() -> mqlite.ManualClock:
    return mqlite.ManualClock(1_700_000_000)


@pytest.fixture
def cstore(store_dir: Path, clock: mqlite.ManualClock) -> Iterator[mqlite.Store]:
    """A store on a ManualClock: timers move only when the test advances the clock."""
    with mqlite.open(store_dir, clock=clock) as s:
        yield s


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env
