"""Inbound change detection (issue 23): a run sends WalkMe only the users that are new or changed.

WalkMe cannot be read back, so the run keeps its own record of what it sent: per user a 64-bit digest of
the key and a 64-bit digest of exactly the bytes that were sent for it (the mapped record, after the
empty-value policy). A user whose record digest equals the recorded one for its key is unchanged and is
left out of the send; every other user (new, changed, deactivated — ``active=false`` is a change like any
other) is sent. Decisions, and why:

* **Where**: ``walkme-dic/state/<Integration uid>/sent.bin`` on the Integration's own file Connection (the
  inbound source), beside ``walkme-dic/rejected/``: it needs no other Connection, volume or grant than
  write on that prefix, it lives as long as the data it describes, and the uid keeps two Integrations over
  one bucket apart (a re-created Integration has a new uid: it starts with a full send). ~16 bytes a user
  (160 MB for 10M users). A Salesforce source has no store: change detection is off there (its
  ``since: lastRun`` reads only changed records already).
* **No PII in clear**: digests only — salted BLAKE2b (a random 16-byte salt per state, kept in its header,
  so equal keys of two Integrations have different digests). Whoever can read the state can read the
  source file beside it, so the salt is no secret; it only keeps precomputed tables useless.
* **Tied to the Integration and its mapping**: the header holds the format version, the uid and a
  fingerprint of the mapping and the WalkMe destination (userIdProperty, the integration token Secret, the
  API URL); another uid (ForeignState), another fingerprint (MappingChanged), a missing (NoState) or damaged
  object (StateUnreadable: bad magic, version, length or checksum) means a full send, said in the result.
* **Healing**: a full send also every ``spec.fullResendInterval`` since the last one (its time is in the
  header: Interval) and when the full-resync annotation asks (Requested).
* **Replaced atomically, only after a run whose sends all succeeded**: the new state is the old one with
  every user WalkMe acknowledged this run put in (users absent from this file stay: they stay in WalkMe
  too, and ``usersKept`` counts them); rows WalkMe refused keep their old digest, so they are sent again.
  It is written through the store's atomic writer (multipart upload, block list, temporary file renamed:
  nothing visible until it commits). A failed or partly applied run, and a dry run, leave the old state.
  A store that refuses the write costs the next run a full send, not this run: its message says so.
* **Off**: ``spec.changeDetection: false`` sends everything and replaces an existing state with an empty
  one, so that turning it on again starts with a full send (the state would miss what was sent meanwhile).
* **Flat memory**: this run's (key digest, record digest, spool index) triples go to disk in sorted runs
  cut into bins by the key digest's top 8 bits (as sync/keys.py does for the duplicate check); the old
  state, copied locally while its checksum is verified, is sorted by key digest, so its bins are slices.
  Both are compared and merged a partition of bins at a time (:func:`walkme_dic.sync.keys.bin_ranges`; at
  most 2^16 entries, or one bin), with numpy: memory holds one partition and a bit per user (the send
  mask), whatever the number of users. The new state is uploaded a 5 MiB part at a time, one on the wire
  (``part_size``: the writer holds that part and the one read next, no copy of them). Measured
  (bench/change_detection.py, bench/results.json): 124 MB at 10M users (221 MB with the store's 16 MiB
  parts, up to four of them held, a 256k-entry partition and a byte per user).
* Two keys whose 64-bit digests collide (about once in 3·10^5 states of 10M users) are taken for one user
  by the comparison: one of them may be sent although unchanged, never left out although changed (a
  record digest must match too).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from walkme_dic import reasons
from walkme_dic.api.common import parse_duration
from walkme_dic.api.run import SyncRequest
from walkme_dic.connectors.base import FileStore
from walkme_dic.errors import DicError, NotFoundError
from walkme_dic.sync.keys import BINS, bin_ranges

if TYPE_CHECKING:
    import numpy as np

PREFIX = "walkme-dic/state"
FORMAT = 1
MAGIC = b"WMDICSNT"
HEAD = struct.Struct("<8sII")  # magic, format, length of the JSON header that follows
ENTRY = 16  # bytes of one user: key digest, record digest (unsigned 64-bit, little-endian)
CHECKSUM = 16  # BLAKE2b of everything before it
RUN = 1 << 17  # triples sorted in memory at a time (3 MiB of them)
PARTITION = 1 << 16  # entries (old and new together) compared in memory at a time, unless one bin holds more
STATE_PART = 5 * 1024 * 1024  # bytes of each part the store's writer holds while the state uploads
CHUNK = 1 << 20  # bytes copied at a time
COUNT_CHUNK = 1 << 16  # entries of the old state counted into bins at a time (1 MiB of them)


def state_path(uid: str) -> str:
    return f"{PREFIX}/{uid}/sent.bin"


def mapping_fingerprint(request: SyncRequest) -> str:
    """What the sent bytes depend on besides the row: the mapping and the WalkMe destination."""
    spec = request.spec
    walkme = request.walkme_connection.walkme if request.walkme_connection else None
    basis = {"mapping": spec.mapping.to_wire(),
             "destination": spec.destination.walkme.to_wire() if spec.destination.walkme else None,
             "apiUrl": walkme.api_url if walkme else None}
    return hashlib.blake2b(json.dumps(basis, sort_keys=True).encode(), digest_size=16).hexdigest()


def digests(items: list[bytes], salt: bytes, person: bytes) -> np.ndarray:
    """A salted 64-bit BLAKE2b of each item: copies of one hasher that has the salt and the personalisation
    already (220 ns an item, against 400 for a new hasher an item, whose keyword arguments are parsed each
    time, though that one is a C call with no Python frame)."""
    import numpy as np

    copy = hashlib.blake2b(digest_size=8, salt=salt, person=person).copy
    out = []
    for item in items:
        hasher = copy()
        hasher.update(item)
        out.append(hasher.digest())
    return np.frombuffer(b"".join(out), dtype="<u8")


@dataclass
class Counts:
    """What the comparison found among this run's users (the last row of each key)."""

    new: int = 0
    changed: int = 0
    unchanged: int = 0
    kept: int = 0  # users of the previous state not in this file


class OldState:
    """The previous state, copied to a local temporary file (its checksum verified on the way)."""

    def __init__(self, file: IO[bytes], header: dict[str, Any], offset: int, count: int) -> None:
        import numpy as np

        self.file, self.header, self.offset, self.count = file, header, offset, count
        self.salt = bytes.fromhex(header["salt"])
        self.bins = np.zeros(BINS + 1, dtype=np.int64)  # where each bin starts (entries), then the count
        sizes = np.zeros(BINS, dtype=np.int64)
        for start in range(0, count, COUNT_CHUNK):
            keys = self.slice(start, min(count, start + COUNT_CHUNK))[0]
            sizes += np.bincount((keys >> np.uint64(56)).astype(np.int64), minlength=BINS)
        self.bins[1:] = np.cumsum(sizes)

    def slice(self, first: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """(key digests, record digests) of entries ``first`` … ``end - 1``."""
        import numpy as np

        data = os.pread(self.file.fileno(), (end - first) * ENTRY, self.offset + first * ENTRY)
        pairs = np.frombuffer(data, dtype="<u8").reshape(-1, 2)
        return pairs[:, 0], pairs[:, 1]

    def bin_slice(self, first: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        return self.slice(int(self.bins[first]), int(self.bins[end]))


def read_state(store: FileStore, path: str, file: IO[bytes]) -> tuple[OldState | None, str, str]:
    """(the state, "", "") or (None, a full-send reason, why) — copied to ``file`` as it is read."""
    try:
        stream = store.open_read(path)
    except NotFoundError:
        return None, reasons.FULL_SEND_NO_STATE, f"no state at {store.describe(path)} yet"
    except DicError as error:
        return None, reasons.FULL_SEND_STATE_UNREADABLE, f"{store.describe(path)} could not be read: {error.message}"
    checksum = hashlib.blake2b(digest_size=CHECKSUM)
    size = 0
    try:
        with stream:
            while chunk := stream.read(CHUNK):
                file.write(chunk)
                size += len(chunk)
    except (DicError, OSError) as error:
        message = error.message if isinstance(error, DicError) else str(error)
        return None, reasons.FULL_SEND_STATE_UNREADABLE, f"{store.describe(path)} could not be read: {message}"
    file.flush()
    unreadable = (None, reasons.FULL_SEND_STATE_UNREADABLE, f"{store.describe(path)} is damaged")
    if size < HEAD.size + CHECKSUM:
        return unreadable
    magic, version, length = HEAD.unpack(os.pread(file.fileno(), HEAD.size, 0))
    if magic != MAGIC or version != FORMAT or HEAD.size + length + CHECKSUM > size:
        return unreadable
    offset = HEAD.size + length
    for start in range(0, size - CHECKSUM, CHUNK):
        checksum.update(os.pread(file.fileno(), min(CHUNK, size - CHECKSUM - start), start))
    if checksum.digest() != os.pread(file.fileno(), CHECKSUM, size - CHECKSUM):
        return unreadable
    try:
        header = json.loads(os.pread(file.fileno(), length, HEAD.size))
        count, salt = int(header["users"]), bytes.fromhex(header["salt"])
    except (ValueError, KeyError, TypeError):
        return unreadable
    if (size - CHECKSUM - offset) != count * ENTRY or len(salt) != 16:
        return unreadable
    return OldState(file, header, offset, count), "", ""


class RunDigests:
    """This run's (key digest, record digest, spool index) triples, in sorted runs binned by key digest."""

    def __init__(self, salt: bytes) -> None:
        self.salt = salt
        self.file = tempfile.TemporaryFile(prefix="walkme-dic-digests-")  # noqa: SIM115 - closed by close()
        self.pending: list[np.ndarray] = []
        self.pending_count = 0
        self.next_index = 0
        self.runs: list[tuple[int, int, np.ndarray]] = []  # (byte offset, count, cuts per bin) of each run

    def close(self) -> None:
        self.file.close()

    def add(self, keys: list[bytes], records: list[bytes]) -> None:
        """The keys and encoded records of the next records spooled, in spool order."""
        import numpy as np

        count = len(keys)
        block = np.empty((count, 3), dtype="<u8")
        block[:, 0] = digests(keys, self.salt, b"walkme-dic key")
        block[:, 1] = digests(records, self.salt, b"walkme-dic rec")
        block[:, 2] = np.arange(self.next_index, self.next_index + count, dtype="<u8")
        self.next_index += count
        self.pending.append(block)
        self.pending_count += count
        if self.pending_count >= RUN:
            self._spill()

    def _spill(self) -> None:
        import numpy as np

        if not self.pending:
            return
        run = np.concatenate(self.pending)
        run = run[np.argsort(run[:, 0], kind="stable")]
        edges = (np.arange(1, BINS, dtype=np.uint64) << np.uint64(56))
        cuts = np.concatenate(([0], np.searchsorted(run[:, 0], edges), [len(run)]))
        self.file.seek(0, 2)
        self.runs.append((self.file.tell(), len(run), cuts))
        self.file.write(run.tobytes())
        self.pending, self.pending_count = [], 0

    def bin_sizes(self) -> list[int]:
        import numpy as np

        self._spill()
        self.file.flush()
        sizes = np.zeros(BINS, dtype=np.int64)
        for _, _, cuts in self.runs:
            sizes += np.diff(cuts)
        return [int(size) for size in sizes]

    def bins(self, first: int, end: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(key digests, record digests, spool indexes) of bins ``first`` … ``end - 1``, sorted by key digest,
        the last record of each key digest only (the last row wins, as in the spool)."""
        import numpy as np

        parts = [np.frombuffer(os.pread(self.file.fileno(), int(cuts[end] - cuts[first]) * 24,
                                        offset + int(cuts[first]) * 24), dtype="<u8").reshape(-1, 3)
                 for offset, _, cuts in self.runs]
        triples = np.concatenate(parts) if parts else np.empty((0, 3), dtype="<u8")
        triples = triples[np.lexsort((triples[:, 2], triples[:, 0]))]
        last = np.ones(len(triples), dtype=bool)
        last[:-1] = triples[1:, 0] != triples[:-1, 0]
        triples = triples[last]
        return triples[:, 0], triples[:, 1], triples[:, 2]


def _matched(old_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positions in ``old_keys`` (sorted), whether each of ``keys`` is there)."""
    import numpy as np

    positions = np.searchsorted(old_keys, keys)
    found = positions < len(old_keys)
    found[found] = old_keys[positions[found]] == keys[found]
    return positions, found


class SendMask:
    """A bit per record spooled (1: send), 1.25 MB for 10M users; a slice of it is a byte per record."""

    def __init__(self, records: int) -> None:
        import numpy as np

        self.bits = np.full(-(-records // 8), 0xFF, dtype=np.uint8)

    def clear(self, indexes: np.ndarray) -> None:
        """Records ``indexes`` are not sent."""
        import numpy as np

        indexes = indexes.astype(np.int64)
        np.bitwise_and.at(self.bits, indexes >> 3, ~(np.left_shift(1, indexes & 7)).astype(np.uint8))

    def __getitem__(self, window: slice) -> bytes:
        """A byte (0 or 1) per record of ``window`` (start and stop given, step 1)."""
        import numpy as np

        start, stop = window.start, window.stop
        first = start >> 3
        bits = np.unpackbits(self.bits[first:-(-stop // 8)], bitorder="little")
        return bits[start - (first << 3):stop - (first << 3)].tobytes()


class ChangeDetector:
    """One run's change detection: what the previous state says, which users to send, the new state."""

    def __init__(self, store: FileStore, request: SyncRequest, now: float) -> None:
        self.store, self.request, self.now = store, request, now
        self.path = state_path(request.integration.uid)
        self.fingerprint = mapping_fingerprint(request)
        self.local = tempfile.TemporaryFile(prefix="walkme-dic-state-")  # noqa: SIM115 - closed by close()
        self.old, reason, message = read_state(store, self.path, self.local)
        if self.old is not None:
            reason, message = self._usable(self.old)
        self.full_send, self.why = reason or None, message
        if self.old is not None and reason in (reasons.FULL_SEND_FOREIGN_STATE, reasons.FULL_SEND_STATE_UNREADABLE):
            self.old = None
        self.salt = self.old.salt if self.old is not None else os.urandom(16)
        self.digests = RunDigests(self.salt)
        self.counts = Counts()

    def _usable(self, old: OldState) -> tuple[str, str]:
        """("", "") when ``old`` can be compared with, else the full-send reason and why."""
        header, spec = old.header, self.request.spec
        if header.get("integration") != self.request.integration.uid:
            return reasons.FULL_SEND_FOREIGN_STATE, (f"{self.store.describe(self.path)} belongs to another "
                                                     f"Integration (uid {header.get('integration')})")
        if not header.get("mapping"):
            return reasons.FULL_SEND_NO_STATE, "change detection was off for the last run"
        if header.get("mapping") != self.fingerprint:
            return reasons.FULL_SEND_MAPPING_CHANGED, "the mapping or the WalkMe destination changed since the " \
                                                      "last run"
        if self.request.state.full_send:
            return reasons.FULL_SEND_REQUESTED, "the full-resync annotation asked for it"
        since = self.now - float(header.get("fullSendAt", 0))
        if since >= parse_duration(spec.full_resend_interval).total_seconds():
            return reasons.FULL_SEND_INTERVAL, (f"the last full send was {since / 3600:.1f} h ago "
                                                f"(fullResendInterval {spec.full_resend_interval})")
        return "", ""

    def close(self) -> None:
        self.local.close()
        self.digests.close()

    def add(self, keys: list[str], records: bytes) -> None:
        """The next block spooled: its keys and its records (each one's JSON and a newline)."""
        if keys:
            self.digests.add([key.encode("utf-8", "surrogatepass") for key in keys], records.split(b"\n")[:-1])

    def _partitions(self) -> Iterator[tuple[int, int]]:
        sizes = self.digests.bin_sizes()
        if self.old is not None:
            sizes = [size + int(self.old.bins[b + 1] - self.old.bins[b]) for b, size in enumerate(sizes)]
        return bin_ranges(sizes, PARTITION)

    def compare(self, records: int) -> SendMask | None:
        """Count new, changed, unchanged and kept users; the send mask over the ``records`` spooled (1: send)
        unless this is a full send (None: send them all)."""
        keep = None if self.full_send else SendMask(records)
        for first, end in self._partitions():
            keys, values, indexes = self.digests.bins(first, end)
            if self.old is None:
                self.counts.new += len(keys)
                continue
            old_keys, old_values = self.old.bin_slice(first, end)
            positions, found = _matched(old_keys, keys)
            same = found.copy()
            same[found] = old_values[positions[found]] == values[found]
            unchanged = int(same.sum())
            self.counts.unchanged += unchanged
            self.counts.new += len(keys) - int(found.sum())
            self.counts.changed += int(found.sum()) - unchanged
            self.counts.kept += len(old_keys) - int(found.sum())
            if keep is not None:
                keep.clear(indexes[same])
        return keep

    def publish(self, refused: list[int]) -> str:
        """Replace the state by the old one with every user sent and acknowledged this run; "" or why not."""
        import numpy as np

        refused_indexes = np.array(sorted(refused), dtype="<u8")
        header = {"format": FORMAT, "integration": self.request.integration.uid, "mapping": self.fingerprint,
                  "salt": self.salt.hex(),
                  "fullSendAt": self.now if self.full_send or self.old is None else self.old.header["fullSendAt"]}
        with tempfile.TemporaryFile(prefix="walkme-dic-state-new-") as body:
            count = 0
            for first, end in self._partitions():
                keys, values, indexes = self.digests.bins(first, end)
                if len(refused_indexes):
                    sent = ~np.isin(indexes, refused_indexes)
                    keys, values = keys[sent], values[sent]
                if self.old is not None:
                    old_keys, old_values = self.old.bin_slice(first, end)
                    replaced = _matched(keys, old_keys)[1]
                    keys = np.concatenate((old_keys[~replaced], keys))
                    values = np.concatenate((old_values[~replaced], values))
                    order = np.argsort(keys, kind="stable")
                    keys, values = keys[order], values[order]
                pairs = np.empty((len(keys), 2), dtype="<u8")
                pairs[:, 0], pairs[:, 1] = keys, values
                body.write(pairs.tobytes())
                count += len(keys)
            header["users"] = count
            return write_state(self.store, self.path, header, body)



def clear_state(store: FileStore, request: SyncRequest) -> str:
    """With change detection off: an empty state in place of an existing one, so that turning it on again
    starts with a full send; "" or why not."""
    path = state_path(request.integration.uid)
    try:
        store.stat(path)
    except NotFoundError:
        return ""
    except DicError as error:
        return f"the change detection state {store.describe(path)} could not be read: {error.message}"
    header = {"format": FORMAT, "integration": request.integration.uid, "mapping": "", "users": 0,
              "salt": os.urandom(16).hex(), "fullSendAt": 0}
    with tempfile.TemporaryFile() as body:
        return write_state(store, path, header, body)


def write_state(store: FileStore, path: str, header: dict[str, Any], body: IO[bytes]) -> str:
    """The header, ``body`` (the entries) and the checksum, through the store's atomic writer; "" or why not.
    Written a part at a time (STATE_PART bytes but the last), so that the writer hands each on as it is: it holds
    the part on the wire and the one read next, no copy of them."""
    text = json.dumps(header, sort_keys=True).encode()
    head = HEAD.pack(MAGIC, FORMAT, len(text)) + text
    checksum = hashlib.blake2b(digest_size=CHECKSUM)
    size = body.seek(0, os.SEEK_END)
    body.seek(0)
    try:
        writer = store.open_write(path, part_size=STATE_PART)
        try:
            piece = head + body.read(max(STATE_PART - len(head), 0))
            while True:
                checksum.update(piece)
                if body.tell() >= size:
                    writer.write(piece + checksum.digest())
                    break
                writer.write(piece)
                piece = body.read(STATE_PART)
            writer.commit()
        except BaseException:
            writer.abort()
            raise
    except DicError as error:
        return (f"the change detection state could not be written to {store.describe(path)} ({error.message}): "
                "the next run sends every user")
    return ""
