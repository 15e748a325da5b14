"""Type stubs of the native module mqlite._mqlite (checked against it by mypy.stubtest)."""

from __future__ import annotations

import asyncio
import datetime
import os
import pathlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Literal, Optional, Tuple, Union, final


from mqlite._future import SendFuture

__version__: str
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
    "Store",
    "Timeout",
    "Topic",
    "Transaction",
    "WouldDeadlock",
    "__version__",
    "_aio_complete",
    "_close_open_stores",
    "_on_callback_thread",
    "open",
]

_Seconds = Union[int, float, datetime.timedelta]
"""A duration: seconds (int or float) or a ``datetime.timedelta``."""
_When = Union[int, float, datetime.datetime]
"""A point in time: seconds since the epoch or a ``datetime`` (naive = local time)."""
_Body = Union[bytes, bytearray, memoryview, str]
"""A message body; ``str`` is sent encoded as UTF-8."""
_PropertyValue = Union[str, int, float, bool, bytes]
"""A property value; it comes back with the same Python type."""
_Properties = Mapping[str, _PropertyValue]
_BatchItem = Union[_Body, Mapping[str, Any]]
"""A ``send_batch`` item: a body, or a dict with ``body`` and keywords of ``Queue.send``."""

class Error(Exception):
    """The root of every mqlite error."""

    kind: Optional[str]

class InvalidArgument(Error, ValueError): ...
class InvalidName(Error, ValueError): ...
class NotFound(Error, LookupError): ...
class Locked(Error): ...
class QueueFull(Error): ...
class NoSpace(Error, OSError): ...
class Io(Error, OSError): ...
class Corrupt(Error): ...
class Poisoned(Error): ...
class Closed(Error): ...
class Timeout(Error, TimeoutError): ...
class AlreadySettled(Error): ...
class WouldDeadlock(Error, RuntimeError): ...
class Internal(Error, RuntimeError): ...
class DeliveryLost(Error): ...
class OwnerLost(Error): ...
class ReadOnly(Error): ...

@final
class RedeliveryPolicy:
    """When and how often a failed message is delivered again (ActiveMQ's fields and defaults)."""

    max_redeliveries: int
    initial_redelivery_delay: float
    redelivery_delay: float
    use_exponential_backoff: bool
    backoff_multiplier: float
    maximum_redelivery_delay: Optional[float]
    use_collision_avoidance: bool
    backoff: list[float]
    def __new__(
        cls,
        *,
        max_redeliveries: int = ...,  # the core's default: 6
        initial_redelivery_delay: Optional[_Seconds] = None,
        redelivery_delay: Optional[_Seconds] = None,
        use_exponential_backoff: bool = False,
        backoff_multiplier: float = ...,  # the core's default: 5.0
        maximum_redelivery_delay: Optional[_Seconds] = None,
        use_collision_avoidance: bool = False,
        backoff: Optional[list[_Seconds]] = None,
    ) -> RedeliveryPolicy: ...
    def delay(self, n: int) -> float: ...

@final
class DeadLetterStrategy:
    """Where dead letters go: shared (default ``"DLQ"``), individual (prefix + name), discard."""

    @staticmethod
    def shared(name: Optional[str] = None) -> DeadLetterStrategy: ...
    @staticmethod
    def individual(prefix: Optional[str] = None) -> DeadLetterStrategy: ...
    @staticmethod
    def discard() -> DeadLetterStrategy: ...
    @property
    def kind(self) -> Literal["shared", "individual", "discard"]: ...
    @property
    def name(self) -> Optional[str]: ...

@final
class ManualClock:
    """A clock that moves only when told to; every timer of a store opened with it follows it."""

    def __new__(cls, start: Optional[_When] = None) -> ManualClock: ...
    def advance(self, seconds: _Seconds) -> None:
        """Moves the clock forward by seconds (or a timedelta) and wakes waiting receivers. The
        clock reads whole milliseconds; parts of a millisecond of successive calls add up (ten
        advance(0.0001) move it 1 ms), so it never runs ahead of the time asked for."""
        ...
    def set(self, when: _When) -> None: ...
    def now(self) -> float: ...
    def now_ms(self) -> int: ...

@final
class DeadLetterInfo:
    """Why a message of a dead-letter queue died."""

    @property
    def original_queue(self) -> str: ...
    @property
    def original_id(self) -> int: ...
    @property
    def reason(self) -> Literal["max_redeliveries", "rejected", "expired", "overflow", "group_parked"]: ...
    @property
    def last_failure(self) -> str: ...
    @property
    def delivery_count(self) -> int: ...
    @property
    def first_failure_ms(self) -> int: ...
    @property
    def last_failure_ms(self) -> int: ...
    @property
    def subscription(self) -> Optional[str]: ...

@final
class Message:
    """A received delivery (settle it exactly once) or a browsed copy."""

    @property
    def id(self) -> int: ...
    @property
    def message_id(self) -> str: ...
    @property
    def body(self) -> bytes: ...
    @property
    def text(self) -> str: ...
    @property
    def properties(self) -> dict[str, _PropertyValue]: ...
    @property
    def priority(self) -> int: ...
    @property
    def correlation_id(self) -> Optional[str]: ...
    @property
    def group(self) -> Optional[str]: ...
    @property
    def dedup_key(self) -> Optional[str]: ...
    @property
    def timestamp_ms(self) -> int: ...
    @property
    def expires_at_ms(self) -> Optional[int]: ...
    @property
    def delivery_count(self) -> int: ...
    @property
    def state(self) -> Optional[Literal["ready", "delayed", "redelivery_wait", "in_flight", "prefetched"]]: ...
    @property
    def redelivered(self) -> bool: ...
    @property
    def queue(self) -> str: ...
    @property
    def dead_letter(self) -> Optional[DeadLetterInfo]: ...
    @property
    def topic(self) -> Optional[str]: ...
    @property
    def settled(self) -> bool: ...
    def ack(self) -> None:
        """Acknowledges (lazy by default: queued for the next group commit). From a client
        process the ack goes one way: an error the owner finds then is raised once, as
        ``DeliveryLost`` ("n lazy acks failed: first: ..."), by the next ``ack_sync()``,
        ``ack_batch_sync()``, ``store.flush()``, transaction commit or ``store.close()``."""
        ...
    def ack_sync(self) -> None: ...
    def nack(self, reason: str = "", *, delay: Optional[_Seconds] = None) -> None: ...
    def reject(self, reason: str = "") -> None: ...
    def release(self) -> None: ...
    def __enter__(self) -> Message:
        """Returns the message. Raises Closed if its store is closed."""
        ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]] = None,
        exc: Optional[BaseException] = None,
        _tb: Optional[TracebackType] = None,
    ) -> bool: ...

@final
class Consume:
    """The iterator of ``Queue.consume``."""

    def __iter__(self) -> Consume: ...
    def __next__(self) -> Message: ...

@final
class Consumer:
    """A pull consumer with its own ack mode (``Queue.consumer``)."""

    def receive(self, timeout: Optional[_Seconds] = None) -> Optional[Message]: ...
    def receive_batch(self, n: int, timeout: Optional[_Seconds] = None) -> list[Message]: ...
    def close(self) -> None: ...
    def __enter__(self) -> Consumer: ...
    def __exit__(
        self,
        _exc_type: Optional[type[BaseException]] = None,
        _exc: Optional[BaseException] = None,
        _tb: Optional[TracebackType] = None,
    ) -> bool: ...

@final
class Listener:
    """A running push consumer (``Queue.listen``)."""

    def stop(self) -> None: ...
    @property
    def running(self) -> bool: ...
    def __enter__(self) -> Listener: ...
    def __exit__(
        self,
        _exc_type: Optional[type[BaseException]] = None,
        _exc: Optional[BaseException] = None,
        _tb: Optional[TracebackType] = None,
    ) -> bool: ...

@final
class Queue:
    """A handle to one queue, or a subscription (``store.subscribe``); thread-safe."""

    @property
    def name(self) -> str: ...
    @property
    def subscription(self) -> Optional[str]: ...
    @property
    def store(self) -> Store: ...
    def send(
        self,
        body: _Body,
        *,
        properties: Optional[_Properties] = None,
        priority: Optional[int] = None,
        ttl: Optional[_Seconds] = None,
        delay: Optional[_Seconds] = None,
        deliver_at: Optional[_When] = None,
        group: Optional[str] = None,
        dedup_key: Optional[str] = None,
        correlation_id: Optional[str] = None,
        repeat: Optional[Tuple[_Seconds, int]] = None,
    ) -> int: ...
    def send_async(
        self,
        body: _Body,
        *,
        callback: Optional[Callable[[SendFuture], object]] = None,
        properties: Optional[_Properties] = None,
        priority: Optional[int] = None,
        ttl: Optional[_Seconds] = None,
        delay: Optional[_Seconds] = None,
        deliver_at: Optional[_When] = None,
        group: Optional[str] = None,
        dedup_key: Optional[str] = None,
        correlation_id: Optional[str] = None,
        repeat: Optional[Tuple[_Seconds, int]] = None,
    ) -> SendFuture: ...
    def send_async_aio(
        self,
        body: _Body,
        *,
        properties: Optional[_Properties] = None,
        priority: Optional[int] = None,
        ttl: Optional[_Seconds] = None,
        delay: Optional[_Seconds] = None,
        deliver_at: Optional[_When] = None,
        group: Optional[str] = None,
        dedup_key: Optional[str] = None,
        correlation_id: Optional[str] = None,
        repeat: Optional[Tuple[_Seconds, int]] = None,
    ) -> asyncio.Future[int]: ...
    def send_batch(self, messages: Iterable[_BatchItem]) -> list[int]: ...
    def receive(self, timeout: Optional[_Seconds] = None) -> Optional[Message]: ...
    def receive_batch(self, n: int, timeout: Optional[_Seconds] = None) -> list[Message]: ...
    def consume(self, timeout: Optional[_Seconds] = None) -> Consume: ...
    def receive_aio(self, timeout: Optional[_Seconds] = None) -> asyncio.Future[Optional[Message]]: ...
    def consume_aio(self, timeout: Optional[_Seconds] = None, batch: int = 64) -> AsyncIterator[Message]: ...
    def ack_batch(self, messages: Iterable[Message], *, sync: bool = False) -> None: ...
    def consumer(
        self,
        ack_mode: Literal["explicit", "cumulative", "auto"] = "explicit",
        *,
        prefetch: Optional[int] = None,
        selector: Optional[str] = None,
    ) -> Consumer: ...
    def listen(self, handler: Callable[[Message], object]) -> Listener: ...
    def browse(self, max: Optional[int] = None, *, ready_only: bool = False) -> list[Message]:
        """Up to ``max`` messages the queue holds (all when None), without consuming them, each
        with its ``state`` and ``delivery_count``; with ``ready_only`` only ``"ready"`` ones:
        waiting with no delivery time or redelivery delay of their own. A group's message
        behind one in flight is ``"ready"`` (next in its group, handed out once that one
        settles) and counts in ``depth``, as ActiveMQ's queue size counts it.
        """
    def purge(self) -> int:
        """Removes every waiting message (and those prefetched by a consumer, not handed out;
        not those in flight); returns how many."""
    def purge_filtered(
        self, *, through: Optional[int] = None, dry_run: bool = False
    ) -> dict[str, Optional[int]]:
        """Removes the waiting (and prefetched, not handed out) messages with ids up to
        ``through`` (inclusive; None: every one), or with ``dry_run`` only counts them.
        Returns ``{"matched": int, "purged": int, "last": int | None}``; pass a dry run's
        ``last`` as ``through`` to remove exactly what it counted. Raises InvalidArgument for
        ``through`` < 1, ReadOnly on a read-only store (a dry run works)."""
    def stats(self) -> dict[str, int]:
        """Statistics of this queue (or subscription), in messages unless said.

        Gauges now: ``depth`` (ready), ``in_flight`` (handed out, unsettled), ``prefetched``
        (taken by a consumer's prefetch, not yet handed out), ``delayed`` (waiting for a delivery
        time or redelivery delay), ``messages`` (all held: the four added up), ``bytes`` (bytes
        of the journal records held, bodies and headers). Counters since the store was opened
        (0 at every open): ``enqueued`` (stored into the queue: sent, published, dead-lettered
        in; not replays), ``acked``, ``redelivered`` (deliveries that were redeliveries),
        ``dead_lettered`` (left for the dead-letter queue or dropped by the discard strategy),
        ``expired`` (TTL or retention passed), ``discarded`` (by purge), ``replayed`` (replayed
        into the queue), ``replayed_out`` (moved out to another queue: replayed dead letters, and moves). A message
        that leaves counts once, in one of acked, dead_lettered, expired, discarded,
        replayed_out; one that arrives once, in enqueued or replayed, so ``enqueued + replayed -
        (acked + dead_lettered + expired + discarded + replayed_out)`` is the change of
        ``messages`` since the open. Raises Closed after close.
        """
    def replay(
        self,
        *,
        reason: Optional[Literal["max_redeliveries", "rejected", "expired", "overflow", "group_parked"]] = None,
        original_queue: Optional[str] = None,
        since: Optional[_When] = None,
        until: Optional[_When] = None,
        ids: Optional[list[int]] = None,
        to: Optional[str] = None,
        limit: Optional[int] = None,
        dry_run: bool = False,
    ) -> int: ...

@final
class Transaction:
    """Sends and acks across queues, committed together as one durable record."""

    def send(
        self,
        queue: Queue,
        body: _Body,
        *,
        properties: Optional[_Properties] = None,
        priority: Optional[int] = None,
        ttl: Optional[_Seconds] = None,
        delay: Optional[_Seconds] = None,
        deliver_at: Optional[_When] = None,
        group: Optional[str] = None,
        dedup_key: Optional[str] = None,
        correlation_id: Optional[str] = None,
        repeat: Optional[Tuple[_Seconds, int]] = None,
    ) -> None: ...
    def ack(self, message: Message) -> None: ...
    def commit(self) -> list[int]: ...
    def rollback(self) -> None: ...
    @property
    def ids(self) -> Optional[list[int]]: ...
    def __len__(self) -> int: ...
    def __enter__(self) -> Transaction: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]] = None,
        _exc: Optional[BaseException] = None,
        _tb: Optional[TracebackType] = None,
    ) -> bool: ...

@final
class Topic:
    """A topic: publishing reaches every subscription whose pattern and selector match."""

    @property
    def name(self) -> str: ...
    def publish(
        self,
        body: _Body,
        *,
        properties: Optional[_Properties] = None,
        priority: Optional[int] = None,
        ttl: Optional[_Seconds] = None,
        delay: Optional[_Seconds] = None,
        deliver_at: Optional[_When] = None,
        group: Optional[str] = None,
        correlation_id: Optional[str] = None,
    ) -> int: ...
    def publish_async(
        self,
        body: _Body,
        *,
        callback: Optional[Callable[[SendFuture], object]] = None,
        properties: Optional[_Properties] = None,
        priority: Optional[int] = None,
        ttl: Optional[_Seconds] = None,
        delay: Optional[_Seconds] = None,
        deliver_at: Optional[_When] = None,
        group: Optional[str] = None,
        correlation_id: Optional[str] = None,
    ) -> SendFuture: ...
    def publish_async_aio(
        self,
        body: _Body,
        *,
        properties: Optional[_Properties] = None,
        priority: Optional[int] = None,
        ttl: Optional[_Seconds] = None,
        delay: Optional[_Seconds] = None,
        deliver_at: Optional[_When] = None,
        group: Optional[str] = None,
        correlation_id: Optional[str] = None,
    ) -> asyncio.Future[int]: ...
    def publish_batch(self, messages: Iterable[_BatchItem]) -> list[int]: ...
    def stats(self) -> dict[str, int]:
        """Statistics of this topic: ``published`` (messages that reached at least one
        subscription) and ``unrouted`` (messages no subscription matched: stored nowhere), both
        counted since the store was opened (0 at every open); ``subscriptions`` (subscriptions
        whose pattern matches the topic now). Raises Closed after close.
        """

@final
class Store:
    """An open store (one directory); thread-safe."""

    def queue(
        self,
        name: str,
        *,
        redelivery: Optional[RedeliveryPolicy] = None,
        dead_letter: Optional[DeadLetterStrategy] = None,
        durability: Optional[Literal["sync", "batched", "memory"]] = None,
        max_delay: Optional[_Seconds] = None,
        max_messages: Optional[int] = None,
        max_bytes: Optional[int] = None,
        overflow: Optional[Literal["reject", "drop_oldest", "block"]] = None,
        overflow_timeout: Optional[_Seconds] = None,
        ack_timeout: Optional[_Seconds] = None,
        process_expired: Optional[bool] = None,
        dedup_window: Optional[_Seconds] = None,
        dedup_window_count: Optional[int] = None,
        group_failure: Optional[Literal["block", "skip", "park"]] = None,
        retention: Optional[_Seconds] = None,
        prefetch: Optional[int] = None,
        ack_durability: Optional[Literal["lazy", "sync"]] = None,
    ) -> Queue:
        """The queue ``name``, declared if new; each option overrides the store's for it.
        ``max_bytes`` (bytes) counts the larger of the held messages' bodies plus the headers
        their senders set (as stored: each header's bytes plus a few bytes of length and type)
        and ``MIN_COUNTED_BYTES`` (1 byte) per message, so empty messages are bounded too
        (``max_bytes=1000`` holds at most 1000 messages). ``prefetch`` (messages, default
        1000; 0 and 1: none): how many a consumer takes at once with one durable
        delivery-count record. In a client process (the store owned by another process) a
        consumer prefetches into its own process: the owner lends it the messages, handed out
        there without a round trip, given back uncounted at its close and when a competing
        consumer waits with nothing ready; a client killed holding them has each count one
        failed delivery. ``retention`` (seconds or ``timedelta``; for a dead-letter queue): dead
        letters older than it are dropped, counted ``expired``, on time whether or not anyone
        receives. Age counts from a letter's dead-letter time (``dead_letter.last_failure_ms``);
        the retention applies to the letters already held when it is declared, changed, or
        declared again after a reopen (options are not stored). Messages sent to the queue
        itself keep their own TTL.
        """
    def topic(self, name: str) -> Topic: ...
    def subscribe(
        self,
        pattern: str,
        *,
        name: Optional[str] = None,
        durable: bool = False,
        shared: bool = False,
        selector: Optional[str] = None,
        redelivery: Optional[RedeliveryPolicy] = None,
        dead_letter: Optional[DeadLetterStrategy] = None,
        max_messages: Optional[int] = None,
        max_bytes: Optional[int] = None,
        ack_timeout: Optional[_Seconds] = None,
        prefetch: Optional[int] = None,
        ack_durability: Optional[Literal["lazy", "sync"]] = None,
    ) -> Queue: ...
    def unsubscribe(self, name: str) -> None: ...
    def subscriptions(self) -> list[dict[str, Any]]: ...
    def transaction(self) -> Transaction: ...
    def queue_names(self) -> list[str]: ...
    def stats(self) -> dict[str, dict[str, int]]:
        """Statistics of every queue (dead-letter queues and subscriptions included): queue
        name -> the dict ``Queue.stats()`` returns, with its keys and units: gauges in messages
        ``depth``, ``in_flight``, ``prefetched``, ``delayed``, ``messages``; ``bytes`` in bytes
        of journal records held; counters in messages since the store was opened ``enqueued``,
        ``acked``, ``redelivered``, ``dead_lettered``, ``expired``, ``discarded``, ``replayed``,
        ``replayed_out``. Raises Closed after close.
        """
    def flush(self) -> None: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def path(self) -> pathlib.Path: ...
    def role(self) -> Literal["owner", "client"]: ...
    @property
    def owner_pid(self) -> int: ...
    def disk_bytes(self) -> int: ...
    def recovery_report(self) -> dict[str, Any]: ...
    def __enter__(self) -> Store: ...
    def __exit__(
        self,
        _exc_type: Optional[type[BaseException]] = None,
        _exc: Optional[BaseException] = None,
        _tb: Optional[TracebackType] = None,
    ) -> bool: ...

def open(
    path: Union[str, bytes, os.PathLike[str], os.PathLike[bytes]],
    *,
    durability: Literal["sync", "batched", "memory"] = "sync",
    max_delay: Optional[_Seconds] = None,
    redelivery: Optional[RedeliveryPolicy] = None,
    dead_letter: Optional[DeadLetterStrategy] = None,
    max_body_bytes: Optional[int] = None,
    segment_bytes: Optional[int] = None,
    max_pending_bytes: Optional[int] = None,
    max_pending_messages: Optional[int] = None,
    block_when_window_full: bool = True,
    repair: bool = False,
    create: bool = True,
    clock: Optional[ManualClock] = None,
    open_as: Literal["any", "owner", "client"] = "any",
    connect_timeout: Optional[_Seconds] = None,
    read_only: bool = False,
) -> Store: ...
def _aio_complete(items: list[Any]) -> None: ...
def _on_callback_thread() -> bool: ...
def _close_open_stores() -> None: ...
