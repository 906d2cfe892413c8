"""The mock API's OAuth 2.0 side: a token endpoint and bearer-token checks.

``POST /oauth/token`` serves the client-credentials grant (HTTP Basic or form
credentials) and the refresh-token grant with *rotating* refresh tokens: each
is good for one use. Access tokens expire after ``token_ttl`` seconds. The
endpoint can be made to fail (``failure = "500"`` or ``"timeout"``) to test
clients against an identity provider that is down.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import threading
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qs, unquote

import anyio

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["TokenIssuer"]

Failure = Literal["500", "timeout"] | None


_BEARER = "Bearer"  # the token type RFC 6750 defines


class TokenIssuer:
    """Private. Issues and checks tokens; thread-safe (stats are read from tests)."""

    def __init__(
        self, *, client_id: str, client_secret: str, ttl: float, clock: Callable[[], float]
    ) -> None:
        self.client_id = client_id
        self._secret = client_secret
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._access: dict[str, float] = {}
        self._refresh: set[str] = set()
        self._serial = itertools.count(1)
        self.issued = 0
        self.refresh_reuse = 0
        self.failure: Failure = None

    def is_valid(self, authorization: str | None) -> bool:
        token = (authorization or "").removeprefix("Bearer ").strip()
        with self._lock:
            expires = self._access.get(token)
            return expires is not None and self._clock() < expires

    async def answer(self, body: bytes, authorization: str | None) -> tuple[int, dict[str, object]]:
        """The token endpoint: (status, JSON body)."""
        if self.failure == "timeout":
            await anyio.sleep(2.0)  # past any sane token timeout in the tests
        if self.failure == "500":
            return 500, {"error": "server_error", "error_description": "identity provider down"}
        form = {k: v[0] for k, v in parse_qs(body.decode(errors="replace")).items()}
        grant = form.get("grant_type")
        with self._lock:
            if grant == "client_credentials":
                if not self._client_ok(form, authorization):
                    return 401, {"error": "invalid_client"}
            elif grant == "refresh_token":
                presented = form.get("refresh_token", "")
                if presented not in self._refresh:
                    self.refresh_reuse += 1
                    return 400, {"error": "invalid_grant"}
                self._refresh.discard(presented)  # rotation: one use each
            else:
                return 400, {"error": "unsupported_grant_type"}
            return 200, self._issue()

    def _client_ok(self, form: dict[str, str], authorization: str | None) -> bool:
        if authorization and authorization.startswith("Basic "):
            try:
                pair = base64.b64decode(authorization[6:]).decode()
            except (binascii.Error, UnicodeDecodeError):
                return False
            client_id, _, secret = pair.partition(":")
            return (unquote(client_id), unquote(secret)) == (self.client_id, self._secret)
        return (form.get("client_id"), form.get("client_secret")) == (
            self.client_id,
            self._secret,
        )

    def _issue(self) -> dict[str, object]:
        serial = next(self._serial)
        access, refresh = f"mock-access-{serial}", f"mock-refresh-{serial}"
        self._access[access] = self._clock() + self.ttl
        self._refresh.add(refresh)
        self.issued += 1
        return {
            "access_token": access,
            "token_type": _BEARER,
            "expires_in": self.ttl,
            "refresh_token": refresh,
        }

    def grant_refresh_token(self) -> str:
        """A valid refresh token to start a refresh-token flow with (tests)."""
        with self._lock:
            token = f"mock-refresh-seed-{next(self._serial)}"
            self._refresh.add(token)
            return token
