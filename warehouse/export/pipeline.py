"""Two threads beside the export's own, so that its three stages overlap on the machine's cores: DuckDB
reading the next chunk (`read_ahead`), Python laying out and counting the tokens of this one (the caller),
and DuckDB encoding and the file writing the one before (`InOrder`). DuckDB, pyarrow's compute, hashlib
and file writes let go of the GIL while they work, so the stages run side by side; a chunk is read ahead
only when there is room for it and at most two slices wait to be written, so memory holds a chunk and two
slices more than a single thread would, never more."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")
_END = object()


class _Failed:
    def __init__(self, exc: BaseException):
        self.exc = exc


def read_ahead(items: Iterator[T], ahead: int = 1) -> Iterator[T]:
    """`items` in order, the next `ahead` of them made in a thread while the caller works on this one (never
    more: the thread starts an item only when there is room for it). An exception in the thread is raised
    here, at the item it stopped at; a caller that stops early stops the thread (after the item it is making)."""
    made: queue.Queue = queue.Queue()
    room = threading.Semaphore(ahead)
    stop = threading.Event()

    def produce() -> None:
        try:
            while room.acquire() and not stop.is_set():
                item = next(items, _END)
                made.put(item)
                if item is _END:
                    return
        except BaseException as exc:  # handed to the caller, who raises it
            made.put(_Failed(exc))

    thread = threading.Thread(target=produce, name="export-read-ahead", daemon=True)
    thread.start()
    try:
        while (item := made.get()) is not _END:
            if isinstance(item, _Failed):
                raise item.exc
            room.release()
            yield item
    finally:
        stop.set()
        room.release()  # a thread waiting for room wakes up, sees the stop and ends
        thread.join()


class InOrder:
    """Runs the calls given to `submit` one after the other in a thread, in the order given; at most `ahead`
    wait. The first exception stops it: `submit` and `close` raise it."""

    def __init__(self, ahead: int = 2):
        self._calls: queue.Queue = queue.Queue(maxsize=ahead)
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="export-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (call := self._calls.get()) is not _END:
            if self._failed is None:
                try:
                    call()
                except BaseException as exc:  # raised in the caller's thread by submit or close
                    self._failed = exc

    def submit(self, call: Callable[[], object]) -> None:
        self._raise_failure()
        self._calls.put(call)

    def close(self) -> None:
        """Wait for every call submitted; raise the first exception of any."""
        if self._thread.is_alive():
            self._calls.put(_END)
            self._thread.join()
        self._raise_failure()

    def cancel(self) -> None:
        """Stop: the calls still waiting are dropped, the one running finishes; no exception is raised."""
        while True:
            try:
                self._calls.get_nowait()
            except queue.Empty:
                break
        if self._thread.is_alive():
            self._calls.put(_END)
            self._thread.join()

    def _raise_failure(self) -> None:
        if self._failed is not None:
            raise self._failed
