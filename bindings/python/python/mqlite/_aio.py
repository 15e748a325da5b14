"""asyncio helpers behind Queue.receive_aio / Queue.consume_aio.

Receives run on the loop's default executor (the native call releases the GIL and waits in
short slices). A wait cancelled while a receive is running gives back whatever that receive
returns afterwards (``release()``: no failure counted), so cancellation never loses a message.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, AsyncIterator

if TYPE_CHECKING:
    from mqlite._mqlite import Message, Queue


def _give_back(fut: asyncio.Future[Any]) -> None:
    if fut.cancelled() or fut.exception() is not None:
        return
    got = fut.result()
    for m in got if isinstance(got, list) else [got] if got is not None else []:
        if not m.settled:
            m.release()


async def _run(fn: Any, *args: Any) -> Any:
    loop = asyncio.get_running_loop()
    fut = loop.run_in_executor(None, fn, *args)
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        fut.add_done_callback(_give_back)
        raise


async def receive(queue: Queue, timeout: float | None) -> Message | None:
    # Wait in slices of at most 1 s so a cancelled wait frees its executor thread soon.
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + float(timeout)
    while True:
        left = 1.0 if deadline is None else max(0.0, min(1.0, deadline - loop.time()))
        msg = await _run(queue.receive, left)
        if msg is not None or (deadline is not None and loop.time() >= deadline):
            return msg  # type: ignore[no-any-return]


async def consume(queue: Queue, timeout: float | None, batch: int) -> AsyncIterator[Message]:
    loop = asyncio.get_running_loop()
    while True:
        deadline = None if timeout is None else loop.time() + float(timeout)
        got: list[Message] = []
        while not got:
            left = 1.0 if deadline is None else max(0.0, min(1.0, deadline - loop.time()))
            got = await _run(queue.receive_batch, batch, left)
            if not got and deadline is not None and loop.time() >= deadline:
                return
        for i, m in enumerate(got):
            try:
                yield m
            except BaseException:
                for rest in got[i + 1 :]:
                    if not rest.settled:
                        rest.release()
                raise
