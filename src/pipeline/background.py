"""Work beside the models: an iterator run ahead in a thread (`ahead`), so decoding, colour conversion and encoding
overlap the forward passes instead of waiting between them. PyAV, OpenCV and numpy release the GIL in their heavy
calls, so a thread is enough; a bounded queue keeps memory to a few frames."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()
POLL_S = 0.1  # how often a blocked producer or consumer looks whether the other side has gone


class _Failed:
    def __init__(self, err: BaseException) -> None:
        self.err = err


def ahead(source: Iterable[T], depth: int = 8, name: str = "ahead") -> Iterator[T]:
    """The items of `source`, produced in a thread up to `depth` ahead of the consumer. The source's exception is
    raised in the consumer at the point it happened; closing the returned generator (or an exception in the
    consumer) stops the thread after the item it is producing, and the source is closed in that thread."""
    items: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def produce() -> None:
        it = None
        try:
            it = iter(source)
            for item in it:
                if not _put(items, item, stop):
                    return
            _put(items, _DONE, stop)
        except BaseException as err:  # noqa: BLE001 - handed to the consumer, which raises it
            _put(items, _Failed(err), stop)
        finally:
            close = getattr(it, "close", None)  # a generator's cleanup runs in its own thread
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.err
            yield item
    finally:
        stop.set()
        thread.join()


def _put(q: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Put, waiting for room, unless the consumer has stopped (then False)."""
    while not stop.is_set():
        try:
            q.put(item, timeout=POLL_S)
            return True
        except queue.Full:
            continue
    return False
