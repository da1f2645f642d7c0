"""Whole classes of JSON-lines files through the real engine (issue 21, item 7, beside the CSV reader's
property in tests/unit/test_reader_accounting_property.py): random lines — objects with text, numbers,
booleans and nulls, blank lines, lines that are not JSON, JSON that is not an object, objects without a key —
imported from moto's S3 into the fake WalkMe. Every line is accounted for (linesRead = blank + rows), the
damaged lines are exactly the rejected ones, and the stored users are what json.loads makes of the good lines
(the last line of a key wins; an empty value keeps nothing, as emptyValues: keep says)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.walkme import FakeWalkMe
from tests.fixtures.servers import s3_client
from tests.fixtures.walkme import WALKME_TOKEN
from tests.reliability.test_rejected_report import run

TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=10)
VALUE = st.none() | TEXT | TEXT.map(lambda text: f" {text}\t") | st.integers(-(2**40), 2**40) | st.booleans()
GOOD = st.fixed_dictionaries({"id": st.from_regex(r"\Au[0-9]{1,3}\Z"), "name": VALUE})
LINE = st.one_of(
    GOOD.map(lambda record: ("good", json.dumps(record, ensure_ascii=False))),
    st.just(("blank", "")),
    st.sampled_from(['{"id": "u1", "name": ', "not json", '{"id": "u2",, }', "{'id': 'u3'}"]).map(
        lambda text: ("broken", text)),
    st.sampled_from(["[1, 2]", '"text"', "7", "null"]).map(lambda text: ("broken", text)),
    st.just(("broken", '{"name": "no key"}')),
)


def expected_users(lines: list[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """What json.loads makes of the good lines: the last line of each key; a null or empty name is no value,
    a number or boolean the text WalkMe stores for a String property."""
    users: dict[str, dict[str, Any]] = {}
    for kind, text in lines:
        if kind != "good":
            continue
        record = json.loads(text)
        name = record["name"]
        if isinstance(name, bool):
            name = "true" if name else "false"
        elif isinstance(name, int):
            name = str(name)
        elif isinstance(name, str):
            name = name.strip() or None
        users[record["id"]] = {} if name is None else {"name": name}
    return users


def test_every_line_of_a_random_file_is_accounted_for_and_the_good_ones_stored(
        moto_server: str, bucket: str, walkme: FakeWalkMe) -> None:
    connection = {"s3": {"bucket": bucket, "region": "us-east-1", "endpointUrl": moto_server, "prefix": "dic/"}}

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(LINE, min_size=1, max_size=25))
    def check(lines: list[tuple[str, str]]) -> None:
        walkme.attributes.clear()
        token = f"{WALKME_TOKEN}"
        body = "".join(f"{text}\n" for _, text in lines).encode()
        s3_client(moto_server).put_object(Bucket=bucket, Key="dic/people.csv", Body=body)
        result = run(walkme, connection, {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"},
                     source={"file": {"path": "people.csv", "format": "jsonl"}}, maxRejectedPercent=100,
                     mapping={"key": {"source": "id", "destination": "uuid"},
                              "fields": [{"source": "name", "destination": "name"}]})
        broken = [number for number, (kind, _) in enumerate(lines, start=1) if kind == "broken"]
        blank = sum(kind == "blank" for kind, _ in lines)
        rows = len(lines) - blank
        if not rows:
            assert result.result == "Succeeded" and result.rows_read == 0, result
            return
        assert (result.lines_read, result.blank_lines, result.rows_read) == (len(lines), blank, rows), result
        assert result.rows_rejected == len(broken), result
        assert result.rows_written + result.rows_rejected + result.duplicate_keys == rows, result
        if broken and len(broken) == rows:
            assert (result.result, result.reason) == ("Failed", "NothingApplied"), result
            return
        assert result.result == "Succeeded", result
        assert sorted(r.row for r in result.rejected) == broken[:len(result.rejected)]
        assert walkme.users(token) == expected_users(lines)

    check()
