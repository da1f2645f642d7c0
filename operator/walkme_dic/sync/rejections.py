"""Every rejected row of a run, kept where the user can fetch it after the Pod is gone (issue 21, item 6).

Status keeps the first rejections; the rest used to live only in the Job's log. A run now writes each
rejection as it is found to a temporary file (so a million of them cost disk, not memory) and, at the end,
publishes it as ``walkme-dic/rejected/INTEGRATION/RUN.csv`` on the run's file Connection — the source of
an inbound run, the destination of an outbound file export — where whoever reads that bucket, container or
folder can fetch it; ``status.runs[].rejectedReport`` names it. Why there: it needs no other Connection or
grant, and the rows' origin is where they are fixed. It holds the line (files) or record number and the
reason, never a cell value. A store that refuses the write (a read-only inbound grant) costs the report,
not the run: the run's message says so. Kept until deleted: a lifecycle rule on ``walkme-dic/rejected/``
expires them.
"""

from __future__ import annotations

import contextlib
import csv
import tempfile
from collections.abc import Iterator
from typing import IO

from walkme_dic.api.run import SyncRequest, SyncResult
from walkme_dic.connectors.base import FileStore
from walkme_dic.errors import DicError

PREFIX = "walkme-dic/rejected"


@contextlib.contextmanager
def rejection_log(store: FileStore | None, unit: str) -> Iterator[RejectionLog | None]:
    """A log of every rejection when there is a ``store`` to publish it to (none for a dry run)."""
    if store is None:
        yield None
        return
    with tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as file:
        yield RejectionLog(file, unit)


class RejectionLog:
    """The rejections of one run, in the order found, in ``file`` (a temporary file the caller closes)."""

    def __init__(self, file: IO[str], unit: str) -> None:
        self.file = file
        self.writer = csv.writer(self.file, lineterminator="\n")
        self.writer.writerow((unit, "reason"))
        self.count = 0

    def add(self, row: int, reason: str) -> None:
        self.writer.writerow((row, reason))
        self.count += 1

    def publish(self, store: FileStore, integration: str, run_id: str) -> tuple[str | None, str]:
        """Write the list to ``store``: (where it is, "") or (None, why it could not be written)."""
        path = f"{PREFIX}/{integration}/{run_id}.csv"
        self.file.seek(0)
        try:
            writer = store.open_write(path, content_type="text/csv; charset=utf-8")
            try:
                while chunk := self.file.read(1024 * 1024):
                    writer.write(chunk.encode())
                writer.commit()
            except BaseException:
                writer.abort()
                raise
        except DicError as error:
            return None, (f"the list of all {self.count} rejected rows could not be written to "
                          f"{store.describe(path)}: {error.message}")
        return store.describe(path), ""


def published(result: SyncResult, log: RejectionLog | None, store: FileStore | None,
              request: SyncRequest) -> SyncResult:
    """``result`` naming where the list of all its rejected rows is, or why it could not be written."""
    if log is None or store is None or not log.count:
        return result
    where, problem = log.publish(store, request.integration.name, request.run_id)
    if where is not None:
        return result.model_copy(update={"rejected_report": where})
    return result.model_copy(update={"message": f"{result.message}; {problem}" if result.message else problem})
