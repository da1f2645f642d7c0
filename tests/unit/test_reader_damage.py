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
