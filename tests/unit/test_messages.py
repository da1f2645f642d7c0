"""Status messages read like a person wrote them: the field first, no library wording, no repeated reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from tests.unit.test_integration_plan import inbound_spec
from walkme_dic.api.connection import ConnectionSpec
from walkme_dic.api.integration import IntegrationSpec
from walkme_dic.conditions import set_condition
from walkme_dic.errors import validation_message, without_reason
from walkme_dic.sync import command as sync_command

NOW = datetime(2026, 11, 26, 11, 0, tzinfo=UTC)


def integration_message(**changes: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        IntegrationSpec.model_validate(inbound_spec(**changes))
    return validation_message(caught.value)


def connection_message(spec: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        ConnectionSpec.model_validate(spec)
    return validation_message(caught.value)


@pytest.mark.parametrize(("changes", "starts"), [
    ({"schedule": "every day"}, "spec.schedule: "),                      # field validator (ValueError)
    ({"timeZone": "Mars/Olympus"}, "spec.timeZone: "),                   # field validator
    ({"direction": "Sideways"}, "spec.direction: "),                     # enum (pydantic's own message)
    ({"runHistoryLimit": "many"}, "spec.runHistoryLimit: "),             # type error
    ({"mapping": {"key": {"source": "id", "destination": "uuid"},
                  "fields": [{"source": "a", "destination": "b", "type": "colour"}]}},
     "spec.mapping.fields[0].type: "),                                   # list index
    ({"direction": "Outbound"}, "spec.source: "),                        # model validator naming its field
])
def test_integration_spec_messages_name_the_field_without_library_wording(
    changes: dict[str, Any], starts: str,
) -> None:
    message = integration_message(**changes)
    assert message.startswith(starts), message
    assert "Value error" not in message and "Assertion failed" not in message
    assert "spec.spec" not in message and ": :" not in message
    field = starts.rstrip(": ").rsplit(".", 1)[-1]
    assert not message[len(starts):].startswith(f"{field}: "), f"the field is named twice: {message}"


def test_a_missing_field_is_named() -> None:
    spec = {k: v for k, v in inbound_spec().items() if k != "connectionRef"}
    with pytest.raises(ValidationError) as caught:
        IntegrationSpec.model_validate(spec)
    assert validation_message(caught.value) == "spec.connectionRef: Field required"


@pytest.mark.parametrize("spec", [
    {},                                                                               # no provider
    {"s3": {"bucket": "b-1", "region": "r"}, "walkme": {"auth": {"secretRef": {"name": "w"}}}},  # two
    {"salesforce": {"auth": {"secretRef": {"name": "sf"}}}},                         # nested model validator
])
def test_connection_spec_messages_say_spec_once(spec: dict[str, Any]) -> None:
    message = connection_message(spec)
    assert message.startswith("spec"), message
    assert message.count("spec") == 1, message
    assert "salesforce: salesforce" not in message
    assert "Value error" not in message


@pytest.mark.parametrize(("reason", "message", "expected"), [
    ("NotFound", "NotFound: bucket 'x' does not exist", "bucket 'x' does not exist"),
    ("NotFound", "NotFound: NotFound: bucket 'x' does not exist", "bucket 'x' does not exist"),
    ("NotFound", "bucket 'x' does not exist", "bucket 'x' does not exist"),
    ("NotFound", "NotFoundError: the SDK said so", "NotFoundError: the SDK said so"),  # a different word stays
    ("RunFailed", "AuthenticationFailed: bad key", "AuthenticationFailed: bad key"),  # another reason is news
    ("Idle", "", ""),
])
def test_without_reason(reason: str, message: str, expected: str) -> None:
    assert without_reason(reason, message) == expected


def test_conditions_never_repeat_their_reason() -> None:
    [condition] = set_condition([], "Synced", "False", "NotFound", "NotFound: bucket 'x' does not exist",
                                generation=1, now=NOW)
    assert (condition.reason, condition.message) == ("NotFound", "bucket 'x' does not exist")


def test_an_invalid_sync_request_fails_the_run_with_the_field_not_pydantic_text(tmp_path: Path) -> None:
    request, result = tmp_path / "request.json", tmp_path / "result.json"
    request.write_text(json.dumps({"runId": "users-1-g1"}))
    assert sync_command.main(["--request", str(request), "--result", str(result)]) == 2
    message = json.loads(result.read_text())["message"]
    assert message.startswith("the sync request is missing or invalid: request.integration: Field required")
    assert "errors.pydantic.dev" not in message and "validation error" not in message
