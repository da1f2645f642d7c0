"""Pick the connector for a Connection spec: its probe, its file store, or the record source or destination
(connectors/records.py) a run reads or writes. Imports are lazy: a sync Job loads only its SDKs, and the engine
imports no concrete client."""

from __future__ import annotations

from walkme_dic.api.connection import (
    FILE_PROVIDERS,
    ConnectionSpec,
    SalesforceProvider,
    WalkMeProvider,
    WebhookProvider,
)
from walkme_dic.api.integration import SalesforceDestination, WalkMeSource
from walkme_dic.connectors.base import Credentials, FileStore, Limits, ProbeResult
from walkme_dic.connectors.records import (
    EncodedBatch,
    KeyedDestination,
    QuerySource,
    Record,
    RecordDestination,
    RecordSource,
)


def probe(spec: ConnectionSpec, credentials: Credentials, limits: Limits) -> ProbeResult:
    """Run the provider's probe with a client built to ``limits`` (each connect and read, and the number of
    attempts); raises walkme_dic.errors.DicError subclasses on failure."""
    if spec.provider in FILE_PROVIDERS:
        return open_file_store(spec, credentials, limits).probe()
    if spec.webhook:
        from walkme_dic.connectors.webhook import WebhookClient

        return WebhookClient(spec.webhook, credentials, max_attempts=limits.attempts, timeout=limits.timeout).probe()
    if spec.salesforce:
        from walkme_dic.connectors.salesforce import SalesforceClient

        return SalesforceClient(spec.salesforce, credentials, max_attempts=limits.attempts,
                                timeout=limits.timeout).probe()
    assert spec.walkme is not None
    from walkme_dic.connectors.walkme import WalkMeClient

    return WalkMeClient(spec.walkme, credentials, max_attempts=limits.attempts, timeout=limits.timeout).probe()


def open_file_store(spec: ConnectionSpec, credentials: Credentials, limits: Limits | None = None) -> FileStore:
    """The Connection's store; ``limits`` None keeps each client's defaults (those of a run)."""
    if spec.s3:
        from walkme_dic.connectors.s3 import S3Store

        return S3Store(spec.s3, credentials, limits=limits)
    if spec.azure_blob:
        from walkme_dic.connectors.azure_blob import AzureBlobStore

        return AzureBlobStore(spec.azure_blob, credentials, limits=limits)
    if spec.gcs:
        from walkme_dic.connectors.gcs import GcsStore

        return GcsStore(spec.gcs, credentials, limits=limits)
    if spec.sftp:
        from walkme_dic.connectors.sftp import SftpStore

        return SftpStore(spec.sftp, credentials, limits=limits)
    raise ValueError(f"a {spec.provider} connection is not a file store")


def open_walkme_export(spec: WalkMeProvider, credentials: Credentials, source: WalkMeSource,
                       since: str | None) -> RecordSource:
    """What WalkMe's API serves of ``source`` (an Insights dataset or report, the activity log) from ``since``."""
    from walkme_dic.connectors.walkme import WalkMeClient

    return WalkMeClient(spec, credentials).export(source.dataset, since=since, report_id=source.report_id,
                                                  incremental=source.since == "lastRun",
                                                  lookback=source.incremental_lookback_seconds)


def open_user_attributes(spec: WalkMeProvider, credentials: Credentials,
                         integration_token: str) -> RecordDestination[EncodedBatch]:
    """WalkMe user attributes, upserted with ``integration_token``."""
    from walkme_dic.connectors.walkme import UserAttributes, WalkMeClient

    return UserAttributes(WalkMeClient(spec, credentials), integration_token)


def open_salesforce_query(spec: SalesforceProvider, credentials: Credentials) -> QuerySource:
    from walkme_dic.connectors.salesforce import SalesforceClient

    return SalesforceClient(spec, credentials)


def open_salesforce_object(spec: SalesforceProvider, credentials: Credentials, target: SalesforceDestination,
                           fields: list[str]) -> KeyedDestination:
    """``target.object``, written as ``target`` says; ``fields``: every field records may carry."""
    from walkme_dic.connectors.salesforce import SalesforceClient, SalesforceObject

    return SalesforceObject(SalesforceClient(spec, credentials), target, fields)


def open_webhook(spec: WebhookProvider, credentials: Credentials, *, run_id: str, dataset: str,
                 batch_size: int) -> RecordDestination[Record]:
    """The receiver, sent ``dataset``'s records of run ``run_id`` in batches of ``batch_size``."""
    from walkme_dic.connectors.webhook import WebhookClient, WebhookReceiver

    return WebhookReceiver(WebhookClient(spec, credentials), run_id, dataset, batch_size)
