"""The contract between the operator and a sync run (`walkme-dic sync`).

The operator writes a :class:`SyncRequest` as JSON for the run; the run writes a
:class:`SyncResult` as JSON to the termination-message path (kept under 4 KiB).
Credentials never travel in either: they are files in a directory, one folder per role
(``external/``, ``walkme/``, ``integration-token/``, ``exports/``), one file per Secret key.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import Field

from walkme_dic.api.common import ApiModel
from walkme_dic.api.connection import ConnectionSpec
from walkme_dic.api.integration import ExportedFile, IntegrationSpec

TERMINATION_MESSAGE_LIMIT = 4096
CREDENTIAL_ROLES = ("external", "walkme", "integration-token", "exports")
SyncOutcome = Literal["Succeeded", "Failed", "Skipped"]
REQUEST_ENV = "WALKME_DIC_REQUEST"  # the SyncRequest JSON, set on the Job's container
# Exit codes of `walkme-dic sync`. Only a retryable failure (or a pod that died) costs a retry of the Job's
# backoffLimit; the others end the Job at once through its podFailurePolicy.
EXIT_RETRYABLE, EXIT_INVALID_REQUEST, EXIT_PERMANENT = 1, 2, 3


class IntegrationIdentity(ApiModel):
    """Which Integration a run belongs to."""

    namespace: str
    name: str
    uid: str = ""
    generation: int = 0


class SyncState(ApiModel):
    """Cursor state carried from the previous successful run."""

    watermark: str | None = None
    source_fingerprint: str | None = None
    full_send: bool = Field(default=False, description="Inbound change detection: send every user (the "
                            "full-resync annotation asked, and no run has done it yet).")
    exported_files: list[ExportedFile] = Field(default_factory=list, description="exportFiles: the files read "
                                               "before that were modified at or after the watermark.")


class SyncRequest(ApiModel):
    """Everything a run needs except credentials."""

    integration: IntegrationIdentity
    run_id: str = Field(min_length=1)
    slot: str | None = Field(default=None, description="Schedule slot (RFC 3339) the run is for, if scheduled.")
    spec: IntegrationSpec
    connection: ConnectionSpec
    walkme_connection: ConnectionSpec | None = Field(default=None, description="The WalkMe account Connection; "
                                                     "none for exportFiles without walkmeConnectionRef.")
    export_connection: ConnectionSpec | None = Field(default=None, description="exportFiles: the Connection of the "
                                                     "bucket WalkMe exports into.")
    state: SyncState = Field(default_factory=SyncState)
    force: bool = Field(default=False, description="Run even when the source fingerprint is unchanged.")

    def connections(self) -> list[tuple[str, ConnectionSpec]]:
        """The run's Connections, each with the name a message gives it."""
        named = (("connection", self.connection), ("walkMeConnection", self.walkme_connection),
                 ("exportConnection", self.export_connection))
        return [(field, spec) for field, spec in named if spec is not None]


class RejectedRow(ApiModel):
    """A row that failed validation or was refused by the destination."""

    row: int = Field(description="The line of the file the row starts on (a CSV header is line 1, blank lines "
                     "count); a query's or export's record number, from 1.")
    reason: str


class DuplicateRow(ApiModel):
    """A row left out because a later row of the source has the same key (the last row wins)."""

    row: int = Field(description="The line (a query's or export's record number) of the row left out, numbered as "
                     "in `rejected`.")
    replaced_by: int = Field(description="The later row with the same key.")


class SyncResult(ApiModel):
    """What a run did. Counts are always complete; only `rejected` samples are truncated."""

    result: SyncOutcome
    reason: str = Field(description="CamelCase reason, e.g. Synced, SourceUnchanged, TooManyRejectedRows.")
    message: str = ""
    rows_read: int = 0
    lines_read: int | None = Field(default=None, description="Inbound from a file: its physical lines, the header "
                                   "and blank lines included. linesRead = header (1 for CSV) + blankLines + "
                                   "continuationLines + rowsRead.")
    blank_lines: int | None = Field(default=None, description="Inbound from a file: blank lines (counted, not rows).")
    continuation_lines: int | None = Field(default=None, description="Inbound from a file: lines after the first of "
                                           "rows whose quoted cells hold line ends (a row over 3 lines adds 2).")
    rows_written: int = 0
    rows_rejected: int = 0
    bytes: int = 0
    dry_run: bool = False
    destination: str | None = Field(default=None, description="Where data landed (object key, blob, sObject).")
    watermark: str | None = None
    source_fingerprint: str | None = None
    exported_files: list[ExportedFile] | None = Field(default=None, description="exportFiles: the files read so far "
                                                      "that were modified at or after the new watermark.")
    rejected: list[RejectedRow] = Field(default_factory=list, description="First rejected rows.")
    rejected_report: str | None = Field(default=None, description="Where every rejected row of the run is listed "
                                        "(sync/rejections.py), when the store took it.")
    sent: int | None = Field(default=None, description="Inbound with change detection: users sent (new or changed, "
                             "or all of them on a full send); a dry run: that would be sent.")
    new_users: int | None = Field(default=None, description="Inbound with change detection: of the users sent, those "
                                  "the state did not know.")
    unchanged: int | None = Field(default=None, description="Inbound with change detection: users left out because "
                                  "WalkMe was sent exactly this record before.")
    users_kept: int | None = Field(default=None, description="Inbound with change detection: users this Integration "
                                   "sent before that are not in this file (WalkMe keeps them: inbound never deletes).")
    full_send: str | None = Field(default=None, description="Inbound: why every user was sent (NoState, "
                                  "StateUnreadable, ForeignState, MappingChanged, Interval, Requested, Disabled).")
    duplicate_keys: int = Field(default=0, description="Rows left out because a later row has their key (the last "
                                "wins): inbound, and outbound to Salesforce.")
    duplicates: list[DuplicateRow] = Field(default_factory=list, description="First rows left out as duplicates.")
    retryable: bool = Field(default=False, description="Failed with a fault that may pass (throttling, 5xx, a "
                            "dropped connection, an unexpected error): the Job runs another pod, up to "
                            "spec.job.backoffLimit. Any other failure ends the Job at once.")

    def to_termination_message(self) -> str:
        """Serialize within the termination-message limit, dropping rejected samples and trimming text."""
        result = self.model_copy(deep=True)
        text = json.dumps(result.to_wire(), separators=(",", ":"))
        while len(text.encode()) > TERMINATION_MESSAGE_LIMIT and (result.rejected or result.duplicates):
            result.rejected = result.rejected[: len(result.rejected) // 2]
            result.duplicates = result.duplicates[: len(result.duplicates) // 2]
            text = json.dumps(result.to_wire(), separators=(",", ":"))
        if len(text.encode()) > TERMINATION_MESSAGE_LIMIT:
            result.message = result.message[:1000]
            text = json.dumps(result.to_wire(), separators=(",", ":"))
        return text
