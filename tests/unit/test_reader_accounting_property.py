"""Whole classes of damaged files, generated (issue 21, item 7): every line is accounted for, and the rows kept
are exactly what Python's csv module reads from the undamaged rows alone.

Files are made of rows csv.writer wrote (values with delimiters, quotes, line ends, control characters), in
utf-8, utf-16 or latin-1, with or without a byte-order mark, CRLF and LF mixed, and damage between them:
blank lines, ragged rows and at most one stray quote. A stray quote is drawn only into files whose values hold
no quote: a quote opened by mistake and closed by a quote a later value holds can read as a valid row, which
no reader can tell from an intended one (see sync/readers.py). The reader either refuses the file naming the
stray quote's line, or rejects exactly the damaged rows and keeps the others.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from walkme_dic import reasons
from walkme_dic.api.integration import FileSettings
from walkme_dic.errors import PermanentError
from walkme_dic.sync.readers import read_blocks

KEYS = st.from_regex(r"\Au[0-9]{1,4}\Z")
PLAIN = st.text(st.sampled_from("abcé xyz"), max_size=8)
WILD = st.text(st.sampled_from('abé ,"\n\r\x01\x7f\t'), max_size=8)


@dataclass
class File:
    text: str
    kept: list[list[str]]  # what csv reads from the undamaged rows alone
    rejected: list[int]  # lines of the ragged rows
    stray: int | None  # the line of the stray quote
    last_line: int


@st.composite
def files(draw: st.DrawFn) -> File:
    quotes_inside = draw(st.booleans())
    stray_at = None if quotes_inside else draw(st.none() | st.integers(0, 30))
    parts, clean, rejected, line = ["id,name\n"], [], [], 2
    stray = None
    for index in range(draw(st.integers(0, 30))):
        kind = draw(st.sampled_from(["row", "row", "row", "blank", "ragged"]))
        ending = draw(st.sampled_from(["\n", "\r\n"]))
        if index == stray_at:
            parts.append(f'{draw(KEYS)},"{draw(PLAIN)}{ending}')
            stray = line
            line += 1
        elif kind == "blank":
            parts.append(ending)
            line += 1
        elif kind == "ragged":
            parts.append(f"{draw(KEYS)}{ending}")
            rejected.append(line)
            line += 1
        else:
            out = io.StringIO(newline="")  # with "\r\n" ending rows it quotes a lone "\r" too (with "\n" it does not)
            csv.writer(out, lineterminator="\r\n").writerow([draw(KEYS), draw(WILD if quotes_inside else PLAIN)])
            written = out.getvalue().removesuffix("\r\n") + ending
            parts.append(written)
            clean.append(written)
            line += len(io.StringIO(written, newline="").readlines())
    kept = list(csv.reader(io.StringIO("".join(clean), newline=""), strict=True))
    return File("".join(parts), kept, rejected, stray, line - 1)


@settings(max_examples=150, deadline=None)
@given(files(), st.sampled_from(["utf-8", "utf-16", "latin-1"]), st.booleans())
def test_every_line_is_accounted_for_and_the_rows_kept_are_the_undamaged_ones(file: File, encoding: str,
                                                                              bom: bool) -> None:
    body = (("\ufeff" if bom and encoding != "latin-1" else "") + file.text).encode(encoding)  # latin-1 has no BOM
    reader = read_blocks(io.BufferedReader(io.BytesIO(body)), FileSettings(path="x.csv", encoding=encoding), ["id"])
    stray_rejected = file.stray is not None and file.stray == file.last_line  # the last line: one malformed row
    if file.stray is not None and not stray_rejected:
        with pytest.raises(PermanentError) as error:
            list(reader)
        assert error.value.reason == reasons.UNBALANCED_QUOTE
        assert error.value.message.startswith(f"line {file.stray} of the file opens a quoted field"), error.value
        return
    blocks = list(reader)
    assert [row for block in blocks for row in block.rows] == file.kept
    rejected = sorted(r.number for block in blocks for r in block.rejected)
    assert rejected == sorted(file.rejected + ([file.stray] if stray_rejected else []))  # type: ignore[list-item]
    lines = reader.lines
    assert lines.read == len(io.StringIO(file.text, newline="").readlines())
    assert lines.unaccounted == 0, lines
    assert lines.rows == len(file.kept) + len(rejected)
