"""Pick the connector for a Connection spec. Imports are lazy: a sync Job loads only its SDKs."""

from __future__ import annotations

from walkme_dic.api.connection import FILE_PROVIDERS, ConnectionSpec
from walkme_dic.connectors.base import Credentials, FileStore, ProbeResult


def probe(spec: ConnectionSpec, credentials: Credentials) -> ProbeResult:
    """Run the provider's probe; raises walkme_dic.errors.DicError subclasses on failure."""
    if spec.provider in FILE_PROVIDERS:
        return open_file_store(spec, credentials).probe()
    if spec.webhook:
        from walkme_dic.connectors.webhook import WebhookClient

        return WebhookClient(spec.webhook, credentials).probe()
    if spec.salesforce:
        from walkme_dic.connectors.salesforce import SalesforceClient

        return SalesforceClient(spec.salesforce, credentials).probe()
    assert spec.walkme is not None
    from walkme_dic.connectors.walkme import WalkMeClient

    return WalkMeClient(spec.walkme, credentials).probe()


def open_file_store(spec: ConnectionSpec, credentials: Credentials) -> FileStore:
    if spec.s3:
        from walkme_dic.connectors.s3 import S3Store

        return S3Store(spec.s3, credentials)
    if spec.azure_blob:
        from walkme_dic.connectors.azure_blob import AzureBlobStore

        return AzureBlobStore(spec.azure_blob, credentials)
    if spec.gcs:
        from walkme_dic.connectors.gcs import GcsStore

        return GcsStore(spec.gcs, credentials)
    if spec.sftp:
        from walkme_dic.connectors.sftp import SftpStore

        return SftpStore(spec.sftp, credentials)
    raise ValueError(f"a {spec.provider} connection is not a file store")
