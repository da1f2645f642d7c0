"""Damaged files name where the damage is: the line and the byte of the file (issue 21, item 5).

Before: a bad byte in row 500 of a utf-8 file failed the run with "byte 596 of a read block", a place in
a buffer nobody can find in the file.
"""

from __future__ import annotations

import gzip
import io

import pytest

from walkme_dic.api.integration import FileSettings
from walkme_dic.errors import PermanentError
from walkme_dic.sync import readers
from walkme_dic.sync.readers import Block, read_blocks

TEXT = "id,name\n" + "".join(f"u{i},Zoë {i}\r\n" if i % 7 else f'u{i},"Zoë\n{i}"\n' for i in range(1, 1001))


def read(data: bytes, **file: str) -> list[Block]:
    return list(read_blocks(io.BufferedReader(io.BytesIO(data)), FileSettings(path="x", **file), ["id"]))


def refusal(data: bytes, **file: str) -> PermanentError:
    with pytest.raises(PermanentError) as error:
        read(data, **file)
    return error.value


def damaged(encoding: str, line: int, bad: bytes, text: str = TEXT) -> tuple[bytes, int]:
    """``text`` in ``encoding`` with ``bad`` after the first comma of physical line ``line``; and its offset."""
    lines = text.splitlines(keepends=True)  # the quoted line ends split too: physical lines
    assert "," in lines[line - 1]
    before = "".join(lines[:line - 1]) + lines[line - 1].split(",")[0] + ","
    offset = len(before.encode(encoding))
    body = text.encode(encoding)
    return body[:offset] + bad + body[offset:], offset


@pytest.mark.parametrize("chunk", [3, 64, readers.TEXT_CHUNK], ids=["3-byte chunks", "64-byte chunks", "64 KiB"])
@pytest.mark.parametrize(("encoding", "bad", "why"), [
    ("utf-8", b"\xe9", "invalid continuation byte (0xe9)"),
    ("utf-8", b"\xff", "invalid start byte (0xff)"),
    ("utf-16-le", b"\x00\xdc", "illegal encoding (0x00 0xdc)"),
    ("shift_jis", b"\xff", "illegal multibyte sequence (0xff)"),
])
def test_a_bad_byte_names_its_line_and_its_offset_in_the_file(
        monkeypatch: pytest.MonkeyPatch, chunk: int, encoding: str, bad: bytes, why: str) -> None:
    monkeypatch.setattr(readers, "TEXT_CHUNK", chunk)
    text = TEXT.replace("Zoë", "Zoe") if encoding == "shift_jis" else TEXT  # ë is not in shift_jis
    body, offset = damaged(encoding, 573, bad, text)
    error = refusal(body, encoding=encoding)
    assert error.reason == "BadEncoding"
    assert error.message.startswith(f"line 573 (byte {offset} of the file, counted from 0) is not valid {encoding}: "
                                    f"{why}; nothing was imported"), error.message
    assert "source.file.encoding" in error.message


def test_a_bad_byte_in_a_gzip_file_is_placed_in_the_uncompressed_file() -> None:
    body, offset = damaged("utf-8", 40, b"\xff")
    message = refusal(gzip.compress(body)).message
    assert message.startswith(f"line 40 (byte {offset} of the uncompressed file, counted from 0)"), message


def test_a_file_cut_inside_a_character_names_the_last_line() -> None:
    body = TEXT.encode() + "u1001,Zoë".encode()[:-1]
    message = refusal(body).message
    assert message.startswith(f"line 1144 (byte {len(body) - 1} of the file") and "unexpected end of data" in message


def test_a_bad_byte_right_after_a_line_end_is_on_the_next_line() -> None:
    body = b"id,name\r\nu1,a\r\n\xffu2,b\n"
    assert refusal(body).message.startswith("line 3 (byte 15 of the file")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"])
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_byte_order_mark_is_dropped_in_every_unicode_encoding(encoding: str, fmt: str) -> None:
    """Before: utf-16-le with a BOM failed with MissingColumn "found: \\ufeffid"."""
    text = "id,name\nu1,Zoë\nu2,日本\n" if fmt == "csv" else '{"id":"u1","name":"Zoë"}\n{"id":"u2","name":"日本"}\n'
    body = ("" if encoding in ("utf-16", "utf-32") else "\ufeff").encode(encoding) + text.encode(encoding)
    blocks = read(body, encoding=encoding, format=fmt)
    rows = [row if fmt == "csv" else [row["id"], row["name"]] for block in blocks for row in block.rows]
    assert rows == [["u1", "Zoë"], ["u2", "日本"]]
    assert fmt == "jsonl" or blocks[0].header == ["id", "name"]


def test_a_second_byte_order_mark_is_named_visibly_in_the_header_message() -> None:
    error = refusal(("\ufeff\ufeffid,name\nu1,a\n").encode("utf-16-le"), encoding="utf-16-le")
    assert error.reason == "MissingColumn"
    assert "(found: '\\ufeffid' (holds U+FEFF ZERO WIDTH NO-BREAK SPACE), name)" in error.message, error.message


@pytest.mark.parametrize(("header", "says"), [
    ("id\u200b,name", "'id\\u200b' (holds U+200B ZERO WIDTH SPACE)"),
    ("i\x01d;name", "'i\\x01d;name' (holds U+0001 CONTROL CHARACTER) — is the delimiter right?"),
])
def test_invisible_characters_in_header_names_are_shown(header: str, says: str) -> None:
    error = refusal(f"{header}\nu1,a\n".encode())
    assert error.reason == "MissingColumn" and says in error.message, error.message


def test_a_column_twice_with_an_invisible_difference_is_named_visibly() -> None:
    error = refusal("id,name,name\u00a0\nu1,a,b\n".encode())  # a no-break space is stripped: the same name
    assert error.reason == "BadHeader" and "column 'name' appears twice" in error.message, error.message
    error = refusal(b"id,\x7fname,\x7fname\nu1,a,b\n")
    assert "column '\\x7fname' (holds U+007F CONTROL CHARACTER) appears twice" in error.message, error.message
