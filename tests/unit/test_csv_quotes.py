"""A quote that opens a CSV field and never closes where a row ends cannot swallow the rows after it.

Before (issue 21): an unbalanced quote in row 5 of 1,000 rows read as one rejected row and a Succeeded
run; rows 6-1000 were never read or counted. Now the reader names the line the quote opened on and the
run stops before anything is sent; a damaged row that takes one line is still one rejected row.
"""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from walkme_dic import reasons
from walkme_dic.api.integration import FileSettings
from walkme_dic.errors import PermanentError
from walkme_dic.sync import readers
from walkme_dic.sync.readers import Block, read_blocks

HEADER = "id,name\n"


def rows_of(text: str) -> list[Block]:
    return list(read_blocks(io.BufferedReader(io.BytesIO(text.encode())), FileSettings(path="x.csv"), ["id"]))


def refusal(text: str) -> str:
    with pytest.raises(PermanentError) as error:
        rows_of(text)
    assert error.value.reason == reasons.UNBALANCED_QUOTE
    return error.value.message


def users(first: int, last: int) -> str:
    return "".join(f"u{i},n{i}\n" for i in range(first, last + 1))


def test_a_quote_open_to_the_end_of_the_file_names_its_line() -> None:
    message = refusal(HEADER + users(1, 4) + 'u5,"bad\n' + users(6, 1000))
    assert message.startswith("line 6 of the file opens a quoted field") and "lines 6-1001" in message
    assert "nothing was imported" in message


def test_a_quote_closed_by_a_later_quoted_field_names_its_line() -> None:
    later = users(6, 1000).replace("u800,n800", 'u800,"n800"')
    assert "lines 6-801" in refusal(HEADER + users(1, 4) + 'u5,"bad\n' + later)


def test_a_quote_that_closes_into_a_ragged_row_names_its_line() -> None:
    later = users(6, 1000).replace("u800,n800", 'u800,",n800"')  # closes before a delimiter: one long row
    assert "lines 6-801" in refusal(HEADER + users(1, 4) + 'u5,"bad\n' + later)


def test_a_stray_quote_closed_by_another_far_below_is_refused_naming_its_line() -> None:
    """A quote opened by mistake on row 5 and closed by a second mistake at the end of row 800's last field reads
    as one valid row of two fields: before the row-span limit, rows 6-800 were one cell of row 5."""
    later = users(6, 1000).replace("u800,n800", 'u800,n800"')
    message = refusal(HEADER + users(1, 4) + 'u5,"bad\n' + later)
    assert message.startswith("line 6 of the file opens a quoted field that spans lines 6-801, more than the "
                              f"{readers.MAX_ROW_LINES} lines a row may span"), message


def test_a_cell_over_as_many_lines_as_a_row_may_span_is_a_value() -> None:
    cell = "\n".join(f"part {i}" for i in range(readers.MAX_ROW_LINES))
    blocks = rows_of(HEADER + users(1, 2) + f'u3,"{cell}"\n' + users(4, 5))
    assert [cells[1] for block in blocks for cells in block.rows][2] == cell
    assert [n for block in blocks for n in block.numbers] == [2, 3, 4, 4 + readers.MAX_ROW_LINES,
                                                             5 + readers.MAX_ROW_LINES]


def test_quoted_line_ends_in_a_whole_row_are_a_value() -> None:
    blocks = rows_of(HEADER + users(1, 4) + 'u5,"12 Main St\r\nSpringfield\nUSA"\n' + users(6, 10))
    rows = [cells for block in blocks for cells in block.rows]
    assert len(rows) == 10 and rows[4] == ["u5", "12 Main St\r\nSpringfield\nUSA"]
    assert [n for block in blocks for n in block.numbers] == [2, 3, 4, 5, 6, 9, 10, 11, 12, 13], "start lines"


def test_a_damaged_last_line_is_one_rejected_row() -> None:
    [block] = rows_of(HEADER + users(1, 4) + 'u5,"gold,3,true\n')
    assert len(block.rows) == 4 and [(r.number, r.reason) for r in block.rejected] == \
        [(6, "malformed CSV: unexpected end of data")]


CELLS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


def written(rows: list[list[str]]) -> str:
    out = io.StringIO(newline="")
    csv.writer(out).writerows([["id", "name"], *rows])  # "\r\n" ends rows, so a lone \r or \n gets quoted
    return out.getvalue()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.from_regex(r"\Au[0-9]{1,4}\Z"), CELLS), min_size=1, max_size=40))
def test_every_row_a_csv_writer_wrote_is_read_back(rows: list[tuple[str, str]]) -> None:
    """Quotes, delimiters and line ends of every kind inside values: nothing lost, nothing merged."""
    wanted = [[key, name] for key, name in rows]
    read = [cells for block in rows_of(written(wanted)) for cells in block.rows]
    assert read == [cells for cells in wanted if cells != [""]]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.from_regex(r"\Au[0-9]{1,4}\Z"), st.from_regex(r"\A[a-z ]{0,8}\Z")), min_size=2,
                max_size=40), st.data())
def test_a_stray_quote_is_never_a_success_that_lost_rows(rows: list[tuple[str, str]], data: st.DataObject) -> None:
    """A careless exporter's stray quote at the start of one value, in a file with no other quotes: either the
    reader refuses the file naming the quote's line, or (on the last line) exactly that row is rejected."""
    damaged = data.draw(st.integers(0, len(rows) - 1))
    lines = [f"{key},{name}\n" for key, name in rows]
    lines[damaged] = lines[damaged].replace(",", ',"', 1)
    text = HEADER + "".join(lines)
    if damaged < len(rows) - 1:
        assert refusal(text).startswith(f"line {damaged + 2} of the file")
    else:
        blocks = rows_of(text)
        assert [cells for b in blocks for cells in b.rows] == [[k, n] for k, n in rows[:-1]]
        assert [r.number for b in blocks for r in b.rejected] == [len(rows) + 1], "its line: the header is line 1"
