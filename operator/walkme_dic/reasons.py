"""Every condition reason and Event reason the operator uses, in one place (documented in README)."""

from __future__ import annotations

# Condition types (kstatus: Ready, Reconciling, Stalled; ours: Synced).
READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
SYNCED = "Synced"

# Connection
PROBED = "Probed"
SECRET_NOT_FOUND = "SecretNotFound"
SECRET_KEY_MISSING = "SecretKeyMissing"
SECRET_FORBIDDEN = "SecretForbidden"  # the operator's RBAC does not let it read the Secret
PROBE_FAILED = "ProbeFailed"
AUTHENTICATION_FAILED = "AuthenticationFailed"
HOST_KEY_REJECTED = "HostKeyRejected"  # sftp: the server's host key is not the pinned one
PROBING = "Probing"
AMBIENT_IDENTITY = "AmbientIdentity"  # Ready without a probe: each run uses its ServiceAccount's identity
AMBIENT_IDENTITY_NOT_ALLOWED = "AmbientIdentityNotAllowed"  # the admin did not allow ambient identity here
SECRET_REFUSED = "SecretRefused"  # a service-account token, or a Secret without the admin's label
EGRESS_DENIED = "EgressDenied"  # a URL or host the cluster admin's egress rules refuse (scheme, userinfo, address)
REDIRECTED = "Redirected"  # a provider answered with a redirect: never followed

# Shared
INVALID_SPEC = "InvalidSpec"
IDLE = "Idle"

# Integration
CONNECTION_NOT_FOUND = "ConnectionNotFound"
CONNECTION_NOT_READY = "ConnectionNotReady"
CONNECTION_TYPE_MISMATCH = "ConnectionTypeMismatch"
CONNECTION_REF_IMMUTABLE = "ConnectionRefImmutable"
RUN_IN_PROGRESS = "RunInProgress"
RUN_QUEUED = "RunQueued"  # a run is due but the admin's cap on concurrent runs is reached
RUN_STARTED = "RunStarted"
RUN_SUCCEEDED = "RunSucceeded"
RUN_FAILED = "RunFailed"
RUN_SKIPPED = "RunSkipped"
SUSPENDED = "Suspended"
NEVER_RUN = "NeverRun"
WAITING_FOR_SCHEDULE = "WaitingForSchedule"
JOB_LOST = "JobLost"
JOB_CREATE_FAILED = "JobCreateFailed"  # the API server refused the run's Job (quota, admission): backed off
INSIGHTS_EXPORT_NOT_CONFIGURED = "InsightsExportNotConfigured"  # an Insights dataset, no insightsExportUrl
RECONCILE_FAILED = "ReconcileFailed"  # a reconcile raised (an API write refused, an operator bug): backed off
NO_RESULT = "NoResult"
EVICTED = "Evicted"  # the node evicted the run's pod (out of ephemeral storage, node pressure)

# Integration: report history (a spec change replaced what a side points at)
SOURCE_REPLACED = "SourceReplaced"
DESTINATION_REPLACED = "DestinationReplaced"
# Inbound run results (issue 11)
EMPTY_SOURCE = "EmptySource"
PARTIALLY_APPLIED = "PartiallyApplied"
DUPLICATE_KEYS = "DuplicateKeys"
UNBALANCED_QUOTE = "UnbalancedQuote"  # a quoted CSV field ran over line ends into the rows after it
ROWS_REJECTED = "RowsRejected"  # a run that succeeded within its limits but left rows out: never a clean Synced
NOTHING_APPLIED = "NothingApplied"  # a source with rows of which none could be applied is not a success
LINES_UNACCOUNTED = "LinesUnaccounted"  # the lines or rows read do not add up to what was kept, rejected or left out
SOURCE_CHANGED = "SourceChanged"  # a file replaced or removed while a run read it: nothing sent, the next run reads it
DESTINATION_EXISTS = "DestinationExists"  # an incremental export never overwrites an earlier run's file
DESTINATION_CONFLICT = "DestinationConflict"  # an older Integration writes the same file through the same Connection
DEPRECATED_FIELD = "DeprecatedField"  # a spec field the API accepts for compatibility although it does nothing
UNEXPECTED_ANSWER = "UnexpectedAnswer"  # a provider URL answered something its API never does (HTML, not JSON)
MISSING_SCOPE = "MissingScope"  # the WalkMe token answer lists scopes without endUserUpdate:write

# Runs and errors: what a sync reports (moved here from the modules that raise them)
ERROR = "Error"
PERMANENT_ERROR = "PermanentError"
TRANSIENT_ERROR = "TransientError"
NOT_FOUND = "NotFound"
INVALID_INPUT = "InvalidInput"
INTERNAL_ERROR = "InternalError"
SOURCE_UNCHANGED = "SourceUnchanged"
TOO_MANY_REJECTED_ROWS = "TooManyRejectedRows"
DRY_RUN = "DryRun"
BAD_ENCODING = "BadEncoding"
CORRUPT_FILE = "CorruptFile"
BAD_HEADER = "BadHeader"
MISSING_COLUMN = "MissingColumn"
INVALID_REQUEST = "InvalidRequest"
INVALID_CREDENTIALS = "InvalidCredentials"
TLS_ERROR = "TLSError"
WEBHOOK_REJECTED = "WebhookRejected"
BULK_JOB_FAILED = "BulkJobFailed"
INVALID_QUERY = "InvalidQuery"
SALESFORCE_THROTTLED = "SalesforceThrottled"
AMBIGUOUS_EXTERNAL_ID = "AmbiguousExternalId"
ACCESS_DENIED = "AccessDenied"
SALESFORCE_UNAVAILABLE = "SalesforceUnavailable"
PERMISSION_DENIED = "PermissionDenied"

# Inbound change detection (issue 23): why a run sent every user (SyncResult.fullSend, status.runs[].fullSend)
FULL_SEND_NO_STATE = "NoState"  # no state yet (first run, or the last one could not be written)
FULL_SEND_STATE_UNREADABLE = "StateUnreadable"  # damaged, truncated, of another format, or the store refused it
FULL_SEND_FOREIGN_STATE = "ForeignState"  # the state names another Integration uid
FULL_SEND_MAPPING_CHANGED = "MappingChanged"  # the mapping or the WalkMe destination changed
FULL_SEND_INTERVAL = "Interval"  # fullResendInterval has passed since the last full send
FULL_SEND_REQUESTED = "Requested"  # the full-resync annotation
FULL_SEND_DISABLED = "Disabled"  # spec.changeDetection: false
