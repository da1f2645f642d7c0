"""Pick the connector for a Connection spec. Imports are lazy: a sync Job loads only its SDKs."""

from __future__ import annotations

from walkme_dic.api.connection import FILE_PROVIDERS, ConnectionSpec
from walkme_dic.connectors.base import Credentials, FileStore, Limits, ProbeResult


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
