"""mqlite — SQLite for reliable messaging: an embedded, durable message queue.

>>> import mqlite, tempfile
>>> with mqlite.open(tempfile.mkdtemp()) as store:
...     q = store.queue("orders")
...     q.send(b"order #1", properties={"customer": 42})
...     with q.receive(timeout=1) as msg:   # acks on a clean exit, nacks on an exception
...         print(msg.body, msg.properties)
1
b'order #1' {'customer': 42}

Bodies are bytes; a ``str`` body is sent encoded as UTF-8 (``msg.text`` decodes it).
Property values keep their Python type: str, int (64-bit), float, bool, bytes.
Durations (ttl, delay, timeouts, policy delays) are seconds (int/float) or ``timedelta``.

Errors are :class:`mqlite.Error` subclasses, one per error kind, with a built-in base where one
fits: ``InvalidArgument``/``InvalidName`` are ``ValueError``, ``Timeout`` is ``TimeoutError``,
``Io``/``NoSpace`` are ``OSError``, ``NotFound`` is ``LookupError``.

Threads: every object is thread-safe; blocking calls release the GIL and stay interruptible by
Ctrl-C. Async-send futures and callbacks complete on a library thread (one per store) with the
GIL held. A store belongs to the process that opened it: after ``fork()`` the child must open
its own (using the parent's raises :class:`Closed`).
"""

from __future__ import annotations

from mqlite._future import SendFuture
from mqlite._mqlite import (
    AlreadySettled,
    Closed,
    Consume,
    Consumer,
    Corrupt,
    DeadLetterInfo,
    DeadLetterStrategy,
    DeliveryLost,
    Error,
    Internal,
    InvalidArgument,
    InvalidName,
    Io,
    Listener,
    Locked,
    ManualClock,
    Message,
    NoSpace,
    NotFound,
    OwnerLost,
    Poisoned,
    Queue,
    QueueFull,
    ReadOnly,
    RedeliveryPolicy,
    Store,
    Timeout,
    Topic,
    Transaction,
    WouldDeadlock,
    __version__,
    open,
)

__all__ = [
    "AlreadySettled",
    "Closed",
    "Consume",
    "Consumer",
    "Corrupt",
    "DeadLetterInfo",
    "DeadLetterStrategy",
    "DeliveryLost",
    "Error",
    "Internal",
    "InvalidArgument",
    "InvalidName",
    "Io",
    "Listener",
    "Locked",
    "ManualClock",
    "Message",
    "NoSpace",
    "NotFound",
    "OwnerLost",
    "Poisoned",
    "Queue",
    "QueueFull",
    "ReadOnly",
    "RedeliveryPolicy",
    "SendFuture",
    "Store",
    "Timeout",
    "Topic",
    "Transaction",
    "WouldDeadlock",
    "__version__",
    "open",
]
