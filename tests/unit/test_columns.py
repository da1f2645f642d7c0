"""Column-by-column mapping gives what row-by-row mapping gives: the same records, byte for byte, and the
same refusals with the same reasons — for whole classes of cell values, not only the common shapes."""

from __future__ import annotations

import csv
import io
import random
from typing import Any

import orjson
import pytest

from walkme_dic.api.integration import FileSettings, Mapping
from walkme_dic.sync.columns import ESCAPED, ColumnPlan, map_block, tabulate
from walkme_dic.sync.mapping import Mapper, RowError
from walkme_dic.sync.readers import BLOCK_ROWS, Block, Rejected, read_blocks
from walkme_dic.sync.writers import RecordEncoder

# cell values of each kind: the common shapes first, then everything a users file can hold instead
CELLS = {
    "string": ["gold", " padded ", "", "   ", "Zoë", "名前", 'quote " and \\ backslash', "tab\there", "line\nbreak",
               "\u2028", "😀", "0", "null", "\x1f", "\x7f", "\\", '"', "2024-01-01\n2024-01-02"],
    "number": ["7", "0", "007", " 42 ", "123456789012345", "1234567890123456", "99999999999999999999", "-3",
               "+3", "2.50", "1e3", "1E400", "nan", "inf", "", " ", "x", "١٢٣", "²", "1_000", "0x10", "12,5"],
    "date": ["2024-01-31", " 2024-02-29 ", "2023-02-29", "2024-13-01", "2024-1-01", "20240101", "2024-01-31T10:00:00Z",
             "2024-01-31T23:30:00-05:00", "", "yesterday", "\uff12\uff10\uff12\uff14-01-01", "2024/01/31",
             "2024-01-01\n2024-01-02", "2024-01-01\n"],
    "boolean": ["true", "false", "TRUE", " No ", "y", "t", "0", "1", "", "maybe", "truthy", "İ"],
    "timestamp": ["2026-11-20T10:00:00Z", "2026-11-20T23:30:00-05:00", " 2026-11-20T10:00:00.5Z ", "2026-11-20",
                  "2026-11-20 10:00:00", "", "x", "2026-13-01T00:00:00Z", "\uff12026-11-20T10:00:00Z"],
}
KEYS = ["u1", " u2 ", "", "  ", "ü", "u\"1", "1", "00"]


def mapper_for(kinds: list[str], *, active: bool, copy_key: bool, as_is: bool = False, trim: bool = False) -> Mapper:
    fields = [{"source": f"c{i}", "destination": f"p{i}", "type": kind, "trim": trim and i % 2 == 0}
              for i, kind in enumerate(kinds)]
    mapping = {"key": {"source": "id", "destination": "external_id" if copy_key else "uuid"}, "fields": fields}
    if active:
        mapping["activeField"] = "active"
    return Mapper(Mapping.model_validate(mapping), "uuid", as_is=as_is)


def header_for(mapper: Mapper, rng: random.Random) -> list[str]:
    columns = [*mapper.required_columns(), "unmapped"]
    rng.shuffle(columns)
    return columns


def random_row(header: list[str], kinds: dict[str, str], rng: random.Random, common: float) -> list[str]:
    """A row whose cells are mostly of the common shape (``common``) and otherwise anything of CELLS."""
    cells = []
    for column in header:
        if column == "id":
            choices = KEYS
        elif column == "active":
            choices = CELLS["boolean"]
        else:
            choices = CELLS[kinds.get(column, "string")]
        cells.append(choices[0] if rng.random() < common else rng.choice(choices))
    return cells


def row_by_row(mapper: Mapper, header: list[str], rows: list[list[str]]) -> list[tuple[int, Any]]:
    """(position, encoded record or RowError message) for each row, the way Mapper.map alone sees them."""
    out: list[tuple[int, Any]] = []
    for position, cells in enumerate(rows):
        try:
            out.append((position, orjson.dumps(mapper.map(dict(zip(header, cells, strict=True))))))
        except RowError as error:
            out.append((position, str(error)))
    return out


def lines(records: bytes) -> list[bytes]:
    """The records of a mapped block, each of which ends in a newline."""
    assert not records or records.endswith(b"\n")
    return records.split(b"\n")[:-1]


def by_block(mapped: Any) -> list[tuple[int, Any]]:
    """(position, record or reason) of a block numbered from 0."""
    records = list(zip(mapped.numbers, lines(mapped.records), strict=True))
    return sorted(records + [tuple(refusal) for refusal in mapped.refused])


KIND_SETS = [["string"], ["number"], ["date"], ["boolean"], ["timestamp"], ["string", "number", "date", "boolean"],
             ["number", "number", "date"], ["string", "string"], []]


@pytest.mark.parametrize("kinds", KIND_SETS, ids=lambda kinds: "+".join(kinds) or "key-only")
@pytest.mark.parametrize("active", [True, False], ids=["active", "no-active"])
@pytest.mark.parametrize("copy_key", [True, False], ids=["key-copied", "key-is-id"])
@pytest.mark.parametrize("common", [1.0, 0.97, 0.5, 0.0], ids=lambda c: f"common-{c}")
def test_a_block_maps_as_its_rows_would_one_by_one(kinds: list[str], active: bool, copy_key: bool,
                                                    common: float) -> None:
    rng = random.Random(f"{kinds}{active}{copy_key}{common}")
    mapper = mapper_for(kinds, active=active, copy_key=copy_key)
    header = header_for(mapper, rng)
    assert ColumnPlan.fitting(mapper, header) is not None, "the column path must be the one under test"
    types = {f"c{i}": kind for i, kind in enumerate(kinds)}
    for _ in range(5):
        rows = [random_row(header, types, rng, common) for _ in range(rng.choice([1, 7, 300]))]
        mapped = map_block(mapper, Block(header, list(range(len(rows))), rows, []))
        assert by_block(mapped) == row_by_row(mapper, header, rows)
        assert [orjson.loads(record)["uuid"] for record in lines(mapped.records)] == mapped.keys


def test_every_cell_value_of_every_kind_maps_alike() -> None:
    """Each listed value alone in a column of otherwise common values (the column path's fallback per value)."""
    for kind, values in CELLS.items():
        mapper = mapper_for([kind], active=True, copy_key=False)
        header = ["id", "c0", "active"]
        for value in values:
            rows = [["u1", CELLS[kind][0], "true"], ["u2", value, "true"], ["u3", CELLS[kind][0], value
                    if kind == "boolean" else "false"]]
            mapped = map_block(mapper, Block(header, [0, 1, 2], rows, []))
            assert by_block(mapped) == row_by_row(mapper, header, rows), (kind, value)


def test_a_mapping_the_columns_cannot_hold_goes_row_by_row() -> None:
    """A destination named twice once the user id property is added, or a dotted column: Mapper.map decides."""
    clash = Mapper(Mapping.model_validate({"key": {"source": "id", "destination": "external_id"},
                                           "fields": [{"source": "plan", "destination": "uuid"}]}), "uuid")
    dotted = Mapper(Mapping.model_validate({"key": {"source": "id", "destination": "uuid"},
                                            "fields": [{"source": "account.plan", "destination": "plan"}]}), "uuid")
    for mapper, header in ((clash, ["id", "plan"]), (dotted, ["id", "account"])):
        assert ColumnPlan.fitting(mapper, header) is None
        rows = [["u1", "gold"], ["", "x"]]
        assert by_block(map_block(mapper, Block(header, [0, 1], rows, []))) == row_by_row(mapper, header, rows)


OBJECT_VALUES = [7, 0, -2, 2.5, 1e300, 2**60, True, False, None, {"a": 1}, [1, 2], "", " x ", "7", "2024-01-31",
                 "true", "\u00e9"]


def random_object(mapper: Mapper, kinds: list[str], rng: random.Random, common: float) -> dict[str, Any]:
    """A JSON object as a JSON-lines file, a query or the WalkMe export gives them: keys missing or null,
    values of any JSON type."""
    row: dict[str, Any] = {}
    for column in mapper.required_columns():
        if rng.random() < 0.05:
            continue  # missing altogether
        kind = {"id": "string", "active": "boolean"}.get(column) or kinds[int(column[1:])]
        row[column] = CELLS[kind][0] if rng.random() < common else rng.choice(OBJECT_VALUES + CELLS[kind])
    return row


def table_row_by_row(mapper: Mapper, rows: list[dict[str, Any]]) -> list[tuple[int, Any]]:
    out: list[tuple[int, Any]] = []
    for position, values in enumerate(rows):
        try:
            record = mapper.map(values)
        except RowError as error:
            out.append((position, str(error)))
            continue
        out.append((position, tuple(record.get(column) for column in mapper.columns())))
    return out


@pytest.mark.parametrize("kinds", KIND_SETS, ids=lambda kinds: "+".join(kinds) or "key-only")
@pytest.mark.parametrize("common", [1.0, 0.9, 0.0], ids=lambda c: f"common-{c}")
def test_objects_map_and_tabulate_as_one_by_one(kinds: list[str], common: float) -> None:
    """Blocks of objects, for inbound (JSON records) and for an outbound CSV (rows of Mapper.columns())."""
    rng = random.Random(f"{kinds}{common}")
    for active, copy_key in ((True, False), (False, True), (False, False)):
        mapper = mapper_for(kinds, active=active, copy_key=copy_key)
        rows = [random_object(mapper, kinds, rng, common) for _ in range(300)]
        block = Block(None, list(range(len(rows))), rows, [])
        assert ColumnPlan.fitting(mapper, None) is not None
        assert by_block(map_block(mapper, block)) == row_by_row_objects(mapper, rows)
        table = tabulate(mapper, block)
        positions = [p for p, out in table_row_by_row(mapper, rows) if isinstance(out, tuple)]
        table_rows = list(zip(*table.columns, strict=True))
        assert sorted(list(zip(positions, table_rows, strict=True)) + [tuple(r) for r in table.refused]) == \
            table_row_by_row(mapper, rows)


@pytest.mark.parametrize("kinds", KIND_SETS, ids=lambda kinds: "+".join(kinds) or "key-only")
@pytest.mark.parametrize("common", [1.0, 0.9, 0.0], ids=lambda c: f"common-{c}")
def test_an_export_to_a_file_tabulates_values_as_they_are_as_one_by_one(kinds: list[str], common: float) -> None:
    """Outbound to a file (Mapper as_is: untrimmed text unless a field says trim, "" apart from null, exact
    numbers), for CSV cells and for objects: the columns hold what Mapper.map gives row by row."""
    rng = random.Random(f"as-is{kinds}{common}")
    for copy_key, trim in ((True, False), (False, False), (False, True)):
        mapper = mapper_for(kinds, active=False, copy_key=copy_key, as_is=True, trim=trim)
        header = header_for(mapper, rng)
        types = {f"c{i}": kind for i, kind in enumerate(kinds)}
        cells = [random_row(header, types, rng, common) for _ in range(300)]
        objects = [random_object(mapper, kinds, rng, common) for _ in range(300)]
        for block, rows in ((Block(header, list(range(300)), cells, []),
                             [dict(zip(header, row, strict=True)) for row in cells]),
                            (Block(None, list(range(300)), objects, []), objects)):
            table = tabulate(mapper, block)
            positions = [p for p, out in table_row_by_row(mapper, rows) if isinstance(out, tuple)]
            table_rows = list(zip(*table.columns, strict=True))
            assert sorted(list(zip(positions, table_rows, strict=True)) + [tuple(r) for r in table.refused]) == \
                table_row_by_row(mapper, rows)


def row_by_row_objects(mapper: Mapper, rows: list[dict[str, Any]]) -> list[tuple[int, Any]]:
    out: list[tuple[int, Any]] = []
    for position, values in enumerate(rows):
        try:
            out.append((position, orjson.dumps(mapper.map(values))))
        except RowError as error:
            out.append((position, str(error)))
    return out


def test_objects_are_mapped_column_by_column_too() -> None:
    mapper = mapper_for(["number"], active=False, copy_key=False)
    objects = [{"id": "u1", "c0": 3}, {"id": "u2", "c0": "x"}, {"id": "u3", "c0": None}]
    mapped = map_block(mapper, Block(None, [1, 2, 3], objects, []))
    assert mapped.numbers == [1, 3] and mapped.records == b'{"uuid":"u1","p0":3}\n{"uuid":"u3"}\n'
    assert mapped.refused == [Rejected(2, "column 'c0': 'x' is not a number")]


def csv_bytes(lines: list[str]) -> io.BufferedReader:
    return io.BufferedReader(io.BytesIO(("id,name\n" + "".join(lines)).encode()))


def test_blocks_number_rows_across_blank_ragged_and_malformed_lines() -> None:
    """Numbers (the line a row starts on, the header being line 1) run on across block boundaries; a malformed
    row mid-block keeps the rows read before it."""
    lines = [f"u{i},n{i}\n" for i in range(1, BLOCK_ROWS * 2 + 500)]
    lines[10] = "\n"  # line 12, blank: counted, not numbered
    lines[20] = "u21\n"  # line 22, ragged
    lines[BLOCK_ROWS + 30] = 'u,"x"y\n'  # malformed quoting, in the second block
    blocks = list(read_blocks(csv_bytes(lines), FileSettings(path="x.csv"), ["id"]))
    numbers = [n for block in blocks for n in block.numbers]
    rejected = [r for block in blocks for r in block.rejected]
    assert [r.number for r in rejected] == [22, BLOCK_ROWS + 32]
    assert rejected[0].reason == "has 1 fields, the header has 2" and "malformed CSV" in rejected[1].reason
    assert len(numbers) + len(rejected) == len(lines) - 1
    assert sorted(numbers + [r.number for r in rejected]) == [n for n in range(2, len(lines) + 2) if n != 12]
    names = {n: cells[1] for block in blocks for n, cells in zip(block.numbers, block.rows, strict=True)}
    assert names[11] == "n10" and names[13] == "n12", "the row after the blank line is on line 13"


def test_dotted_paths_into_objects_map_as_one_by_one() -> None:
    """A Salesforce relationship field (Account.Industry): nested objects, a literal dotted key, missing levels."""
    mapper = Mapper(Mapping.model_validate({"key": {"source": "Id", "destination": "uuid"},
                                            "fields": [{"source": "Account.Industry", "destination": "industry"}]}),
                    "uuid")
    rows = [{"Id": "1", "Account": {"Industry": "Retail"}}, {"Id": "2", "Account.Industry": "Flat"},
            {"Id": "3", "Account": None}, {"Id": "4", "Account": "not an object"}, {"Id": "5"}]
    mapped = map_block(mapper, Block(None, list(range(5)), rows, []))
    assert by_block(mapped) == row_by_row_objects(mapper, rows)
    assert lines(mapped.records)[:2] == [b'{"uuid":"1","industry":"Retail"}', b'{"uuid":"2","industry":"Flat"}']


CSV_CELLS = ["plain", "", None, "with,comma", 'with "quote"', "line\nbreak", "carriage\rreturn", " spaced ",
             "semi;colon", "tab\there", "pipe|bar", "é", 7, 2.5, True, 0]


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
@pytest.mark.parametrize("width", [1, 2, 4])
def test_csv_columns_are_written_as_the_csv_writer_writes_their_rows(delimiter: str, width: int) -> None:
    """The encoder's join of plain text cells and the csv writer agree on every class of cell."""
    rng = random.Random(f"{delimiter}{width}")
    for plain in (1.0, 0.95, 0.0):
        for _ in range(20):
            rows = [tuple(("v" if rng.random() < plain else rng.choice(CSV_CELLS)) for _ in range(width))
                    for _ in range(rng.choice([0, 1, 50]))]
            columns = [list(column) for column in zip(*rows, strict=True)] or [[] for _ in range(width)]
            assert encoded(columns, delimiter) == written_by_csv(rows, delimiter), rows


def encoded(columns: list[list[Any]], delimiter: str) -> bytes:
    sink = Sink()
    names = [f"c{i}" for i in range(len(columns))]
    encoder = RecordEncoder(sink, FileSettings(path="x.csv", delimiter=delimiter), names, gzip_output=False)
    encoder.add_columns(columns)
    encoder.finish()
    return b"".join(sink.chunks).split(b"\n", 1)[1]  # without the header line


class Sink:
    """Where the encoder's chunks go (the AtomicWriter's write; committing is not this test's business)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.chunks.append(data)
        return len(data)

    def commit(self) -> None:
        raise AssertionError("not committed here")

    def abort(self) -> None:
        raise AssertionError("not aborted here")


def written_by_csv(rows: list[tuple[Any, ...]], delimiter: str) -> bytes:
    """The csv writer's rows, booleans as JSON writes them (the encoder's one rule beyond the writer's)."""
    text = io.StringIO()
    csv.writer(text, delimiter=delimiter, lineterminator="\n").writerows(
        [("true" if cell else "false") if type(cell) is bool else cell for cell in row] for row in rows)
    return text.getvalue().encode()


def test_text_written_as_it_is_is_exactly_what_orjson_does_not_escape() -> None:
    """The one-text records put a string between quotes unless ESCAPED finds a character in it: that must be
    every character orjson escapes and no other (the whole Basic Multilingual Plane, then every 97th code
    point above it; surrogates cannot be encoded at all)."""
    points = [*range(0xD800), *range(0xE000, 0x10000), *range(0x10000, 0x110000, 97)]
    for point in points:
        character = chr(point)
        as_it_is = orjson.dumps(character) == b'"' + character.encode() + b'"'
        assert (ESCAPED.search(character) is None) is as_it_is, hex(point)
