"""The future returned by :meth:`mqlite.Queue.send_async`.

A :class:`SendFuture` *is* a :class:`concurrent.futures.Future` (``isinstance`` holds, and
``concurrent.futures.wait``/``as_completed``/``asyncio.wrap_future`` accept it), made cheap
for the common case where nobody waits on it before it completes:

* ``Future()`` builds a ``threading.Condition`` and two lists (about 1 µs, and ``set_result``
  takes that lock and notifies, another 1.5 µs). At hundreds of thousands of sends per second
  that would be most of the cost, so here the condition and the lists are created only when
  somebody first looks (``result()``, ``done()``, ``add_done_callback()``, ``wait()`` …).
* The library completes a future that was never looked at by writing ``_result``/``_exception``
  and then ``_state`` with the GIL held (no Python code runs in between); a future that was
  looked at is completed through the ordinary ``set_result``/``set_exception``. Every reader
  checks ``_state`` while holding the condition, so it sees either the finished state or is
  woken by ``set_result``; :meth:`_wake` covers a reader that arrived between the check and
  the write.

It starts in the RUNNING state: a send cannot be taken back, so ``cancel()`` returns False.
This relies on ``concurrent.futures.Future``'s private attribute names, unchanged from
Python 3.2 to 3.13; the test suite checks the behaviour on the running Python.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from concurrent.futures._base import RUNNING
from typing import Any, Generator

__all__ = ["SendFuture"]


class _Waiters(list):  # type: ignore[type-arg]
    """The waiters ``concurrent.futures.wait``/``as_completed`` install on a pending future.

    Those calls block on a waiter of their own, not through ``result()``, so the deadlock check
    of :meth:`SendFuture.result` would not see them (review r5 #12): installing one on the
    send callback thread, which is the thread that would complete the future, raises
    :class:`mqlite.WouldDeadlock` instead. A waiter is only installed on a future not done
    (checked under its condition), so no state check is needed here.
    """

    __slots__ = ()

    def append(self, waiter: Any) -> None:
        from . import _mqlite

        if _mqlite._on_callback_thread():
            raise _mqlite.WouldDeadlock(
                "waiting in a send callback for another send's future would deadlock: "
                "the callback thread is the one that completes it"
            )
        super().append(waiter)


class SendFuture(Future):  # type: ignore[type-arg]
    """The id of a message once it is durable, or the :class:`mqlite.Error` that prevented it.

    ``await`` works on it too (inside a running asyncio loop).
    """

    # Class-level defaults: a fresh instance has an empty __dict__ (creating one costs ~0.1 µs).
    _state = RUNNING
    _result = None
    _exception = None
    # Non-None once somebody has looked at the future (see the module docs).
    _cond: threading.Condition | None = None

    # Deliberately not Future.__init__ (see above); object's C-level __init__ costs no frame.
    __init__ = object.__init__

    @property
    def _condition(self) -> threading.Condition:  # type: ignore[override]
        c = self.__dict__.get("_cond")
        if c is None:
            # setdefault is atomic under the GIL: two racing creators end up with one condition.
            c = self.__dict__.setdefault("_cond", threading.Condition())
        return c  # type: ignore[no-any-return]

    @property
    def _waiters(self) -> list[Any]:  # type: ignore[override]
        return self.__dict__.setdefault("_w", _Waiters())  # type: ignore[no-any-return]

    @property
    def _done_callbacks(self) -> list[Any]:
        return self.__dict__.setdefault("_cb", [])  # type: ignore[no-any-return]

    def _wake(self) -> None:
        """Called by the library after a lock-free completion when a reader appeared meanwhile."""
        with self._condition:
            for waiter in self._waiters:
                if self._exception is None:
                    waiter.add_result(self)
                else:
                    waiter.add_exception(self)
            self._condition.notify_all()
        self._invoke_callbacks()  # type: ignore[attr-defined]

    def _check_deadlock(self) -> None:
        # A send callback runs on the thread that completes every send of its store: waiting
        # there for a send that is not complete yet would wait for good.
        if self._state is RUNNING:
            from . import _mqlite

            if _mqlite._on_callback_thread():
                raise _mqlite.WouldDeadlock(
                    "waiting in a send callback for another send's future would deadlock: "
                    "the callback thread is the one that completes it"
                )

    def result(self, timeout: float | None = None) -> int:
        self._check_deadlock()
        return super().result(timeout)  # type: ignore[no-any-return]

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._check_deadlock()
        return super().exception(timeout)

    def __await__(self) -> Generator[Any, None, int]:
        return asyncio.wrap_future(self).__await__()
