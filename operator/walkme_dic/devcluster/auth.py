"""Opt-in TLS and authentication for the dev API, so that credentials are tested as a real cluster checks them.

Off by default (the demo and most tests talk plain HTTP with any token). With `ApiSecurity` the dev
API serves HTTPS with the given server certificate and answers 401 (a Kubernetes Status, as
kube-apiserver does) unless the request carries one of ``tokens`` as a bearer token or presents a
client certificate, signed by ``client_ca``, whose common name is in ``client_names``. Both sets are
mutable, so a test can rotate credentials while the operator runs. Not emulated: authorization (every
authenticated caller may do everything), token reviews, impersonation.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any

import aiohttp.test_utils
import aiohttp.web
import attrs

from walkme_dic.devcluster.emulator import DevKubernetes

DEV_TOKEN = "dev-cluster-token"


@dataclass
class ApiSecurity:
    """Server certificate and key, the CA that signed client certificates, and who is let in."""

    cert_path: str
    key_path: str
    ca_path: str  # signs the server certificate and the client certificates
    tokens: set[str] = field(default_factory=lambda: {DEV_TOKEN})
    client_names: set[str] = field(default_factory=set)
    refused: int = 0  # requests answered 401

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=self.ca_path)
        context.load_cert_chain(self.cert_path, self.key_path)
        context.verify_mode = ssl.CERT_OPTIONAL  # a token is enough; a certificate, when sent, must be ours
        return context

    def admits(self, request: aiohttp.web.BaseRequest) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token in self.tokens:
            return True
        peer: Any = request.transport.get_extra_info("peercert") if request.transport else None
        names = {value for rdn in (peer or {}).get("subject", ()) for key, value in rdn if key == "commonName"}
        return bool(names & self.client_names)


@attrs.define(kw_only=True)
class GuardedKubernetes(DevKubernetes):
    """The dev API behind an authentication check."""

    security: ApiSecurity | None = None

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        if self.security is not None and not self.security.admits(raw_request):
            self.security.refused += 1
            return aiohttp.web.json_response(
                {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure", "code": 401,
                 "reason": "Unauthorized", "message": "Unauthorized"}, status=401)
        return await super().__call__(raw_request)


def tls_server_class(context: ssl.SSLContext) -> type[aiohttp.test_utils.RawTestServer]:
    """kmock's server class, listening with TLS."""

    class TLSServer(aiohttp.test_utils.RawTestServer):
        async def start_server(self, loop: Any = None, **kwargs: Any) -> None:
            await super().start_server(loop=loop, ssl=context, **kwargs)

    return TLSServer
