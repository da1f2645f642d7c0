"""Google's OAuth token endpoint for service-account keys (JWT bearer grant, RFC 7523) on 127.0.0.1.

google-auth signs a JWT with the key's private_key and POSTs it to the key's token_uri; this fake
verifies the signature against the public keys it was given and answers with an access token, or
400 invalid_grant like Google does for a key it does not know.
"""

from __future__ import annotations

import uuid

from aiohttp import web
from google.auth import exceptions, jwt

from walkme_dic_dev.httpserver import BackgroundServer

GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
AUDIENCE = "https://oauth2.googleapis.com/token"  # google-auth signs for Google's endpoint whatever token_uri is


class FakeGoogleToken(BackgroundServer):
    thread_name = "fake-google-token"

    def __init__(self) -> None:
        super().__init__()
        self.public_keys: dict[str, str] = {}  # client_email -> PEM public key
        self.issued: list[str] = []

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/token", self._token)
        return app

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != GRANT:
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        try:
            claims = jwt.decode(str(form.get("assertion", "")), certs=self.public_keys, audience=AUDIENCE)
        except (ValueError, exceptions.GoogleAuthError):
            return web.json_response({"error": "invalid_grant", "error_description": "Invalid JWT Signature."},
                                     status=400)
        token = f"ya29.{uuid.uuid4().hex}"
        self.issued.append(str(claims["iss"]))
        return web.json_response({"access_token": token, "token_type": "Bearer", "expires_in": 3600})
