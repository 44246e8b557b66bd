"""Group commit: one writer thread stores whatever arrived while its previous write was in flight, in one go.

At a thousand callbacks a second, a statement, a commit (a WAL flush) and a Redis round trip per callback are
most of what acknowledging one costs. Requests hand their item to the writer and wait for its answer; the
writer takes everything queued (up to `max_batch`), stores it with one call, and answers each request. Under
light load a group is one item and costs what a direct write would; under heavy load groups grow by themselves.

The writer owns its own database connection (Django's connections are per thread). A connection lost between
two groups (PostgreSQL restarted, an idle connection cut) is replaced and the group tried once more, so a
request fails only when the database is really unavailable."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future

from django.db import DatabaseError, InterfaceError, OperationalError, connection

logger = logging.getLogger(__name__)

_STOP = object()


class GroupCommitWriter[Item, Result]:
    """Calls `store(items) -> results` (one result per item, in order) from `threads` threads (one by default), on
    groups of items. With more than one, a group can be written while the previous one waits for its commit (the
    store must then be safe to run concurrently, as two requests would be)."""

    def __init__(
        self, store: Callable[[Sequence[Item]], list[Result]], *, max_batch: int = 64, name: str, threads: int = 1
    ) -> None:
        self._store = store
        self.max_batch = max_batch
        self.name = name
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._count = max(1, threads)
        self._lock = threading.Lock()
        self.groups = 0  # groups written, and the largest one: how much grouping the load brought
        self.largest_group = 0

    def start(self) -> None:
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            while len(self._threads) < self._count:
                thread = threading.Thread(target=self._run, name=f"{self.name}-{len(self._threads)}", daemon=True)
                thread.start()
                self._threads.append(thread)

    @property
    def alive(self) -> bool:
        return len(self._threads) == self._count and all(t.is_alive() for t in self._threads)

    def submit(self, item: Item) -> Future:
        """A future for this item's result (or the exception that kept its group from being stored)."""
        future: Future = Future()
        self._queue.put((item, future))
        if not self.alive:
            self.start()
        return future

    def stop(self, timeout: float = 10) -> None:
        """Write what is queued, then end the threads (server shutdown: acknowledged means stored)."""
        threads = list(self._threads)
        for _ in threads:
            self._queue.put(_STOP)
        for thread in threads:
            thread.join(timeout)

    def _run(self) -> None:
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                group = [first]
                stopping = False
                while len(group) < self.max_batch:
                    try:
                        queued = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if queued is _STOP:
                        stopping = True
                        break
                    group.append(queued)
                self._write(group)
                if stopping:
                    return
        finally:
            _drop_connection()

    def _write(self, group: list[tuple[Item, Future]]) -> None:
        # A request that gave up waiting (and answered "retry") cancelled its future: leave its item out.
        group = [(item, future) for item, future in group if future.set_running_or_notify_cancel()]
        if not group:
            return
        items = [item for item, _future in group]
        self.groups += 1
        self.largest_group = max(self.largest_group, len(group))
        for attempt in (1, 2):
            try:
                results = self._store(items)
            except (OperationalError, InterfaceError) as exc:
                # The connection may just be stale: drop it; the retry (or the next group) opens a new one.
                # A statement that committed before the connection broke is harmless to repeat when, as
                # here, the store is idempotent.
                _drop_connection()
                if attempt == 1:
                    logger.warning("group write failed, retrying on a new connection", extra={"error": str(exc)})
                    continue
                self._fail(group, exc)
            except DatabaseError as exc:
                _drop_connection()
                self._fail(group, exc)
            except Exception as exc:  # a bug must not kill the writer: the requests get an error instead
                logger.exception("group write failed")
                self._fail(group, exc)
            else:
                for (_item, future), result in zip(group, results, strict=True):
                    future.set_result(result)
            return

    @staticmethod
    def _fail(group: list[tuple[Item, Future]], exc: BaseException) -> None:
        for _item, future in group:
            future.set_exception(exc)


def _drop_connection() -> None:
    try:
        connection.close()
    except DatabaseError:  # already broken: nothing left to close cleanly
        pass
