"""Scenarios the S3 and Azure writers share now that parts upload in the background
(connectors/background.py), driven through a FaultProxy that holds or fails the part uploads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tests.fakes.faultproxy import FaultProxy
from walkme_dic.connectors.background import IN_FLIGHT
from walkme_dic.connectors.base import AtomicWriter


def numbered_parts(count: int, size: int) -> list[bytes]:
    """``count`` parts of ``size`` bytes (a multiple of 8), each filled with its own number: a part stored at
    another's place shows in the content."""
    return [f"{number:07d}\n".encode() * (size // 8) for number in range(count)]


def wait_until(condition: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


class WritingThread(threading.Thread):
    """Writes each part with a write() call of its own; ``accepted`` counts the calls that returned."""

    def __init__(self, writer: AtomicWriter, parts: list[bytes]) -> None:
        super().__init__(daemon=True)
        self.writer, self.parts = writer, parts
        self.accepted = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for part in self.parts:
                self.writer.write(part)
                self.accepted += 1
        except BaseException as error:  # handed to the test's thread
            self.error = error


def write_until_it_fails(writer: AtomicWriter) -> None:
    """Small writes (they fill no part) until one raises: only an earlier part's outcome can fail them."""
    for _ in range(200):
        writer.write(b"x")
        time.sleep(0.05)


def writes_stop_at_the_bound(writer: AtomicWriter, proxy: FaultProxy, gate: threading.Event,
                             parts: list[bytes], bound: int = IN_FLIGHT) -> None:
    """With every part upload held by the proxy, write() accepts exactly ``bound`` parts and then waits (the
    writer holds no more parts than that, plus the one in hand); once the uploads go through, all are written."""
    writing = WritingThread(writer, parts)
    writing.start()
    wait_until(lambda: proxy.holding == bound)
    time.sleep(0.5)  # room for a writer without a bound to go on
    assert (writing.accepted, proxy.holding) == (bound, bound)
    gate.set()
    writing.join(60)
    assert writing.error is None and writing.accepted == len(parts)


def abort_waits_for_parts_on_the_wire(writer: AtomicWriter, proxy: FaultProxy, gate: threading.Event,
                                      parts: list[bytes]) -> None:
    """write() hands IN_FLIGHT parts over and returns while they upload; abort() sends nothing (S3: no
    AbortMultipartUpload that a part could overtake) and does not return until they are answered."""
    for part in parts[:IN_FLIGHT]:
        writer.write(part)
    wait_until(lambda: proxy.holding == IN_FLIGHT)
    requests = len(proxy.seen)
    aborting = threading.Thread(target=writer.abort, daemon=True)
    aborting.start()
    time.sleep(0.5)
    assert aborting.is_alive(), "abort() returned while parts were still uploading"
    assert proxy.seen[requests:] == [], "abort() sent requests while parts were still uploading"
    gate.set()
    aborting.join(60)
    assert not aborting.is_alive() and proxy.holding == 0
