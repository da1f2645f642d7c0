"""pydantic models of the CRDs: the single source of truth for schema, validation and docs."""

from walkme_dic.api.common import API_VERSION, CATEGORY, GROUP, VERSION, Condition
from walkme_dic.api.connection import ConnectionSpec, ConnectionStatus
from walkme_dic.api.integration import IntegrationSpec, IntegrationStatus, RunRecord
from walkme_dic.api.run import SyncRequest, SyncResult

__all__ = [
    "API_VERSION",
    "CATEGORY",
    "GROUP",
    "VERSION",
    "Condition",
    "ConnectionSpec",
    "ConnectionStatus",
    "IntegrationSpec",
    "IntegrationStatus",
    "RunRecord",
    "SyncRequest",
    "SyncResult",
]
