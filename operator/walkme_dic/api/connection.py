"""The Connection resource: how to reach one provider, credentials by reference only."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from walkme_dic.api.common import (
    ApiModel,
    Condition,
    Duration,
    SecretKeySelector,
    SecretReference,
    StatusModel,
)

ProviderName = Literal["s3", "azureBlob", "salesforce", "walkme", "gcs", "webhook", "sftp"]
PROVIDERS: tuple[ProviderName, ...] = ("s3", "azureBlob", "salesforce", "walkme", "gcs", "webhook", "sftp")
FILE_PROVIDERS: tuple[ProviderName, ...] = ("s3", "azureBlob", "gcs", "sftp")
EXPORT_FILE_PROVIDERS: tuple[ProviderName, ...] = ("s3", "azureBlob", "gcs", "sftp")  # where WalkMe's DIC writes

# Keys each provider reads from its Secret. A tuple inside the list means "any one of these sets".
S3_SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
S3_OPTIONAL_SECRET_KEYS = ("AWS_SESSION_TOKEN",)
SALESFORCE_SECRET_KEY_SETS = (("clientId", "clientSecret"), ("clientId", "username", "password"),
                              ("clientId", "username", "privateKey"))
SALESFORCE_OPTIONAL_SECRET_KEYS = ("refreshToken", "securityToken", "clientId", "clientSecret", "privateKey")
WALKME_SECRET_KEYS = ("clientId", "clientSecret")
SFTP_SECRET_KEY_SETS = (("password",), ("privateKey",))
SFTP_KNOWN_HOSTS_KEY = "knownHosts"
WEBHOOK_SIGNING_KEY = "signingSecret"
WEBHOOK_CA_KEY = "ca.crt"
# URLs a tenant writes: no whitespace or control characters anywhere, no user name or password (an "@" before
# the path). Which hosts and schemes the operator then connects to is the admin's (walkme_dic.egress).
HTTP_URL = r"^https?://[^\s/?#@\\]+([/?#][^\s]*)?$"
HTTPS_URL = r"^https://[^\s/?#@\\]+([/?#][^\s]*)?$"
# A DNS name or an IP address: never an option ("-oProxyCommand=..."), a user ("u@h") or a path.
HOST = r"^([A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?|[0-9A-Fa-f:.]+)$"


class S3Auth(ApiModel):
    """How to authenticate to S3. Empty means the default AWS credential chain (IRSA, instance profile)."""

    secret_ref: SecretReference | None = Field(
        default=None,
        description="Secret with keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and optionally "
        "AWS_SESSION_TOKEN). Leave out to use the default AWS credential chain.",
    )


class S3Provider(ApiModel):
    """An S3 bucket, or a bucket in an S3-compatible store."""

    bucket: str = Field(min_length=3, max_length=63, description="Bucket name.")
    region: str = Field(min_length=1, description="AWS region of the bucket, e.g. eu-west-1.")
    endpoint_url: str | None = Field(
        default=None, pattern=HTTP_URL,
        description="Endpoint of an S3-compatible store (MinIO, Ceph). Leave out for AWS.",
    )
    prefix: str = Field(default="", description="Key prefix every path of this connection lives under.")
    auth: S3Auth = Field(default_factory=S3Auth, description="Credentials; empty uses the default chain.")


class AzureBlobAuth(ApiModel):
    """How to authenticate to Azure Blob Storage: a Secret or workload identity, exactly one."""

    secret_ref: SecretKeySelector | None = Field(
        default=None,
        description="Secret key holding a storage connection string or a SAS token.",
    )
    workload_identity: dict[str, str] | None = Field(
        default=None,
        description="Use Azure workload identity (DefaultAzureCredential) of the sync Job's ServiceAccount.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> AzureBlobAuth:
        chosen = [n for n in ("secretRef", "workloadIdentity") if getattr(self, _snake(n)) is not None]
        if len(chosen) != 1:
            raise ValueError("auth: set exactly one of secretRef or workloadIdentity")
        return self


class AzureBlobProvider(ApiModel):
    """A container in an Azure Storage account."""

    account_url: str = Field(
        pattern=HTTP_URL,
        description="Blob service URL, e.g. https://myaccount.blob.core.windows.net.",
    )
    container: str = Field(min_length=3, max_length=63, description="Container name.")
    prefix: str = Field(default="", description="Blob name prefix every path of this connection lives under.")
    auth: AzureBlobAuth = Field(description="Credentials: secretRef or workloadIdentity.")


class GcsAuth(ApiModel):
    """How to authenticate to Google Cloud Storage. Empty means Application Default Credentials."""

    secret_ref: SecretKeySelector | None = Field(
        default=None,
        description="Secret key holding a service-account JSON key. Leave out to use Application Default "
        "Credentials (GKE workload identity, a metadata server, GOOGLE_APPLICATION_CREDENTIALS).",
    )
    anonymous: bool = Field(
        default=False,
        description="Send no credentials at all; only with endpointUrl (an emulator such as fake-gcs-server).",
    )

    @model_validator(mode="after")
    def _one_way(self) -> GcsAuth:
        if self.anonymous and self.secret_ref is not None:
            raise ValueError("auth: set secretRef or anonymous, not both")
        return self


class GcsProvider(ApiModel):
    """A Google Cloud Storage bucket (or an emulator's)."""

    bucket: str = Field(min_length=3, max_length=222, description="Bucket name.")
    prefix: str = Field(default="", description="Object name prefix every path of this connection lives under.")
    endpoint_url: str | None = Field(
        default=None, pattern=HTTP_URL,
        description="Storage API endpoint of an emulator, e.g. http://gcs-emulator:9023. Leave out for Google.",
    )
    auth: GcsAuth = Field(default_factory=GcsAuth, description="Credentials; empty uses Application Default "
                          "Credentials.")

    @model_validator(mode="after")
    def _anonymous_needs_emulator(self) -> GcsProvider:
        if self.auth.anonymous and not self.endpoint_url:
            raise ValueError("gcs.auth.anonymous: only allowed with endpointUrl (an emulator); Google Cloud "
                             "Storage needs a service-account key or Application Default Credentials")
        return self


class SecretAuth(ApiModel):
    """Credentials from a Secret in the same namespace."""

    secret_ref: SecretReference = Field(description="Secret holding the credentials.")


class SalesforceProvider(ApiModel):
    """A Salesforce org reached over the REST and Bulk 2.0 APIs."""

    instance_url: str | None = Field(
        default=None, pattern=HTTP_URL,
        description="My Domain URL of the org, e.g. https://acme.my.salesforce.com.",
    )
    login_url: str | None = Field(
        default=None, pattern=HTTP_URL,
        description="OAuth login host: https://login.salesforce.com (production) or "
        "https://test.salesforce.com (sandbox), or a My Domain URL. Defaults to instanceUrl. The JWT bearer "
        "flow signs for this host (a My Domain host: login, or test for *.sandbox.my.salesforce.com).",
    )
    api_version: str = Field(default="62.0", pattern=r"^\d+\.\d$", description="REST API version, e.g. 62.0.")
    auth: SecretAuth = Field(
        description="Secret with the connected app's clientId and: clientSecret (client credentials flow); "
        "username and privateKey, the PEM key of the app's certificate (JWT bearer flow); clientSecret and "
        "refreshToken (refresh token flow); or clientSecret, username, password and securityToken (password flow).",
    )

    @model_validator(mode="after")
    def _some_url(self) -> SalesforceProvider:
        if not (self.instance_url or self.login_url):
            raise ValueError("salesforce: set instanceUrl or loginUrl")
        return self


INSIGHTS_EXPORT_NEEDED = (
    "dataset {dataset} reads an Insights export endpoint WalkMe does not publish: set spec.walkme.insightsExportUrl "
    "on the WalkMe Connection to a service of your own that serves it (docs/walkme-api.md, part B), or read what "
    "WalkMe does publish: its own export files (dataset exportFiles) or its activity log (dataset activityLog)")


class WalkMeProvider(ApiModel):
    """A WalkMe account reached over the WalkMe public API."""

    api_url: str = Field(
        default="https://api.walkme.com", pattern=HTTP_URL,
        description="WalkMe API base URL for the account's region.",
    )
    auth: SecretAuth = Field(description="Secret with the API key's clientId and clientSecret.")
    insights_export_url: str | None = Field(
        default=None, pattern=HTTP_URL,
        description="Base URL of an Insights export endpoint, which WalkMe does not publish: a service of your own "
        "that answers GET /public/v1/insights/export/{dataset} and /public/v1/insights/reports/{id}/rows as "
        "docs/walkme-api.md part B describes, and is sent the access token this Connection's API key gets. Only "
        "Integrations reading dataset users, events, sessions or report use it, and they wait (Ready=False, "
        "InsightsExportNotConfigured) while it is unset. WalkMe's own sources (exportFiles, activityLog) and inbound "
        "runs never need it.",
    )
    max_in_flight: int = Field(
        default=4, ge=1, le=16,
        description="Requests sent to WalkMe at once while an inbound run sends (100 users each). WalkMe publishes "
        "no rate limit, so the default is conservative; lower it if WalkMe answers 429, raise it for large imports.",
    )


class SftpProvider(ApiModel):
    """A folder on an SFTP server (OpenSSH and compatible), its host key pinned."""

    host: str = Field(min_length=1, max_length=253, pattern=HOST,
                      description="Host name or IP address of the SFTP server.")
    port: int = Field(default=22, ge=1, le=65535, description="TCP port of the SSH server.")
    username: str = Field(min_length=1, max_length=255, pattern=r"^[^\s:@]+$", description="User to log in as.")
    path: str = Field(
        default="", pattern=r"^[^\x00]*$",
        description="Folder every path of this connection lives under: absolute (/upload) or relative to the "
        "user's login folder (upload). Empty means the login folder.",
    )
    host_keys: list[str] | None = Field(
        default=None, min_length=1,
        description="The server's host keys as known_hosts lines (ssh-keyscan -p PORT HOST prints them). Leave out "
        "to read them from the Secret key knownHosts. An unknown or changed host key is refused, never accepted.",
    )
    auth: SecretAuth = Field(
        description="Secret with password, or privateKey (RSA, ECDSA or Ed25519, OpenSSH or PEM format; "
        "passphrase if it is encrypted); optionally knownHosts.",
    )

    @field_validator("host_keys")
    @classmethod
    def _known_hosts_lines(cls, lines: list[str] | None) -> list[str] | None:
        for number, line in enumerate(lines or [], start=1):
            if len(line.split()) < 3 or line.lstrip().startswith("@"):
                raise ValueError(f"hostKeys[{number - 1}]: not a known_hosts line (want 'HOST KEYTYPE BASE64', "
                                 "as ssh-keyscan prints it; @cert-authority and @revoked lines are not supported)")
        return lines


class WebhookProvider(ApiModel):
    """An HTTPS endpoint that receives WalkMe data as signed JSON batches (outbound only)."""

    url: str = Field(pattern=HTTPS_URL, description="HTTPS URL the batches are POSTed to.")
    auth: SecretAuth = Field(
        description=f"Secret with key {WEBHOOK_SIGNING_KEY} (the HMAC-SHA256 signing secret) and optionally "
        f"{WEBHOOK_CA_KEY} (PEM CA bundle the receiver's certificate is verified against, instead of the "
        "system CAs).",
    )
    timeout_seconds: float = Field(default=30, ge=1, le=300, description="Timeout of one POST.")


class ConnectionSpec(ApiModel):
    """How to reach one system. Exactly one provider block is set."""

    s3: S3Provider | None = Field(default=None, description="An AWS S3 (or S3-compatible) bucket.")
    azure_blob: AzureBlobProvider | None = Field(default=None, description="An Azure Blob Storage container.")
    salesforce: SalesforceProvider | None = Field(default=None, description="A Salesforce org.")
    walkme: WalkMeProvider | None = Field(default=None, description="The WalkMe account itself.")
    sftp: SftpProvider | None = Field(default=None, description="A folder on an SFTP server.")
    gcs: GcsProvider | None = Field(default=None, description="A Google Cloud Storage bucket.")
    webhook: WebhookProvider | None = Field(default=None, description="An HTTPS endpoint receiving signed "
                                            "JSON batches (outbound only).")
    probe_interval: Duration = Field(
        default="10m", description="How often the operator re-checks that the provider is reachable.",
    )

    @model_validator(mode="after")
    def _exactly_one_provider(self) -> ConnectionSpec:
        chosen = self.providers_set()
        if len(chosen) != 1:
            found = ", ".join(chosen) or "none"
            raise ValueError(
                f"spec: set exactly one provider block of {', '.join(PROVIDERS)} (found: {found})"
            )
        return self

    def providers_set(self) -> list[ProviderName]:
        return [name for name in PROVIDERS if getattr(self, _snake(name)) is not None]

    @property
    def provider(self) -> ProviderName:
        return self.providers_set()[0]

    @property
    def secret_name(self) -> str | None:
        """Name of the Secret this connection reads, if any."""
        block = getattr(self, _snake(self.provider))
        ref = getattr(block.auth, "secret_ref", None)
        return ref.name if ref is not None else None


class ConnectionStatus(StatusModel):
    """What the operator last saw of this connection."""

    observed_generation: int | None = Field(default=None, description="Generation last reconciled.")
    provider: ProviderName | None = Field(default=None, description="Which provider block is set.")
    conditions: list[Condition] = Field(default_factory=list, description="Ready, Reconciling, Stalled.")
    last_probe_time: str | None = Field(
        default=None, description="When the provider was last probed.", json_schema_extra={"format": "date-time"},
    )
    secret_version: str | None = Field(
        default=None, description="resourceVersion of the Secret the last probe used.",
    )
    message: str | None = Field(default=None, description="Result of the last probe, for humans.")


def _snake(camel: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in camel)
