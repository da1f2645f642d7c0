"""The engine's own refusal (LinesUnaccounted): a read or a send whose counts do not add up is never a success.

The readers account for every line (tests/unit/test_reader_accounting_property.py); these tests drive the
engine's check with counts that a lost block, a miscounted line or a lost acknowledgement would give."""

from __future__ import annotations

import io

import pytest

from walkme_dic import reasons
from walkme_dic.api.integration import FileSettings
from walkme_dic.errors import PermanentError
from walkme_dic.sync.engine import Tally, accounted_read, accounted_send
from walkme_dic.sync.readers import LineCount, read_blocks

FILE = b'id,plan\nu1,gold\n\nu2,"two\nlines"\nu3\nu4,silver\n'  # 7 lines: header, 1 blank, 4 rows, 1 continuation


def read(body: bytes) -> tuple[LineCount, Tally, list[int]]:
    """The file through the real reader: its line count, the tally the engine keeps, the block sizes."""
    reader = read_blocks(io.BufferedReader(io.BytesIO(body)), FileSettings(path="users.csv"), ["id"])  # type: ignore[arg-type]
    tally, sizes = Tally(), []
    for block in reader:
        tally.read += block.size
        sizes.append(block.size)
        for number, reason in block.rejected:
            tally.reject(number, reason)
    return reader.lines, tally, sizes


def test_a_file_read_whole_is_accounted_for() -> None:
    lines, tally, _ = read(FILE)
    assert (lines.read, lines.header, lines.blank, lines.continued, tally.read, tally.rejected) == (7, 1, 1, 1, 4, 1)
    accounted_read("users.csv", lines, tally, kept=tally.read - tally.rejected)


def test_a_row_the_engine_did_not_count_refuses_the_run() -> None:
    lines, tally, _ = read(FILE)
    tally.read -= 1  # a block lost between the reader and the engine
    with pytest.raises(PermanentError) as refused:
        accounted_read("users.csv", lines, tally, kept=tally.read - tally.rejected)
    assert refused.value.reason == reasons.LINES_UNACCOUNTED
    assert refused.value.message.startswith("users.csv has 7 lines but 1 header, 1 blank, 3 rows and 1 "
                                            "continuation lines were read; nothing was sent")


def test_a_line_the_reader_did_not_place_refuses_the_run() -> None:
    lines, tally, _ = read(FILE)
    lines.read += 1  # a line counted where the text was split but in no row
    with pytest.raises(PermanentError) as refused:
        accounted_read("users.csv", lines, tally, kept=tally.read - tally.rejected)
    assert refused.value.reason == reasons.LINES_UNACCOUNTED and "has 8 lines" in refused.value.message


def test_a_row_neither_kept_nor_rejected_refuses_the_run() -> None:
    lines, tally, _ = read(FILE)
    with pytest.raises(PermanentError) as refused:
        accounted_read("users.csv", lines, tally, kept=tally.read - tally.rejected - 1)
    assert refused.value.reason == reasons.LINES_UNACCOUNTED
    assert refused.value.message.startswith("4 rows were read but 2 kept and 1 rejected; nothing was sent")


def test_a_query_has_no_lines_but_its_rows_are_still_counted() -> None:
    tally = Tally(read=5)
    accounted_read("the Salesforce query", None, tally, kept=5)
    with pytest.raises(PermanentError):
        accounted_read("the Salesforce query", None, tally, kept=4)


def test_a_record_walkme_neither_acknowledged_nor_refused_fails_the_send() -> None:
    tally = Tally(written=98, refused=1)
    accounted_send(99, tally)
    with pytest.raises(PermanentError) as refused:
        accounted_send(100, tally)
    assert refused.value.reason == reasons.LINES_UNACCOUNTED
    assert "100 records were sent but WalkMe acknowledged 98 and refused 1" in refused.value.message
