"""Request authentication for HTTP sources: none, static token, HMAC of the body, Ed25519 JWT.

Checks run in two steps so nothing is parsed before auth passes: `before_body()` sees only
the headers (token and JWT reject there, before the body is read); `after_body()` sees the raw
bytes (HMAC signs them). Missing credentials are 401, wrong ones 403.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Literal, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


class AuthError(Exception):
    def __init__(self, status: Literal[401, 403], detail: str) -> None:
        self.status = status
        self.detail = detail
        super().__init__(detail)


class Authenticator(Protocol):
    def before_body(self, headers: Mapping[str, str]) -> None:
        """Raise AuthError when the headers alone show the request is not allowed."""
        ...

    def after_body(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raise AuthError when the raw body does not match its credentials."""
        ...


class NoAuth:
    def before_body(self, headers: Mapping[str, str]) -> None:
        return None

    def after_body(self, headers: Mapping[str, str], body: bytes) -> None:
        return None


class TokenAuth:
    """A static token in `Authorization: Bearer <token>` or in a named header as is."""

    def __init__(self, tokens: Sequence[str], header: str = "authorization") -> None:
        if not tokens or not all(tokens):
            raise ValueError("token auth needs a non-empty token")
        self._tokens = [t.encode() for t in tokens]
        self.header = header.lower()

    def before_body(self, headers: Mapping[str, str]) -> None:
        if self.header == "authorization":
            presented = _bearer(headers)
            if presented is None:
                raise AuthError(401, "missing credentials: send 'Authorization: Bearer <token>'")
        else:
            presented = headers.get(self.header)
            if not presented:
                raise AuthError(401, f"missing credentials: send header {self.header!r}")
        if not _matches_any(presented.encode(), self._tokens):
            raise AuthError(403, "invalid token")

    def after_body(self, headers: Mapping[str, str], body: bytes) -> None:
        return None


class HmacAuth:
    """HMAC-SHA256 of the raw body, e.g. GitHub's `X-Hub-Signature-256: sha256=<hex>`.

    Several secrets may be valid at once, for rotation.
    """

    def __init__(
        self,
        secrets: Sequence[str],
        header: str = "x-hub-signature-256",
        prefix: str = "sha256=",
        encoding: Literal["hex", "base64"] = "hex",
    ) -> None:
        if not secrets or not all(secrets):
            raise ValueError("hmac auth needs at least one non-empty secret")
        self._secrets = [s.encode() for s in secrets]
        self.header = header.lower()
        self.prefix = prefix
        self.encoding = encoding

    def before_body(self, headers: Mapping[str, str]) -> None:
        if not headers.get(self.header):
            raise AuthError(401, f"missing signature: send header {self.header!r}")

    def after_body(self, headers: Mapping[str, str], body: bytes) -> None:
        value = headers.get(self.header, "")
        if not value.startswith(self.prefix):
            raise AuthError(
                403, f"invalid signature: {self.header} must start with {self.prefix!r}"
            )
        presented = value[len(self.prefix) :].strip()
        if self.encoding == "hex":
            presented = presented.lower()  # hex digits are case-insensitive
        expected = [self.sign(body, secret) for secret in self._secrets]
        if not _matches_any(presented.encode(), [e.encode() for e in expected]):
            raise AuthError(403, "invalid signature: the body does not match its HMAC-SHA256")

    def sign(self, body: bytes, secret: bytes) -> str:
        digest = hmac.new(secret, body, hashlib.sha256).digest()
        return digest.hex() if self.encoding == "hex" else base64.b64encode(digest).decode()


class JwtAuth:
    """An Ed25519-signed JWT (alg EdDSA) as ClusterCockpit issues them.

    The token comes in `Authorization: Bearer` or `X-Auth-Token`; `exp`, `nbf` and `iat` are
    enforced when present (as golang-jwt does for cc-event-store), give or take LEEWAY_S for
    the clocks of the issuer and this host; `sub` and `roles` are not checked. Public keys are
    base64 of the raw 32 bytes; several may be valid.
    """

    # A token cc-backend issued a second ago on a host whose clock runs ahead is not "from the
    # future"; NTP keeps clocks far closer than this.
    LEEWAY_S = 60

    def __init__(self, public_keys: Sequence[str]) -> None:
        if not public_keys:
            raise ValueError("jwt auth needs at least one public key")
        self._keys = [load_ed25519_public_key(k) for k in public_keys]

    def before_body(self, headers: Mapping[str, str]) -> None:
        token = _bearer(headers) or headers.get("x-auth-token")
        if not token:
            raise AuthError(
                401, "missing credentials: send 'Authorization: Bearer <jwt>' or 'X-Auth-Token'"
            )
        problem = "invalid token"
        for key in self._keys:
            try:
                jwt.decode(
                    token,
                    key,
                    algorithms=["EdDSA"],
                    options={"verify_aud": False},
                    leeway=self.LEEWAY_S,
                )
                return
            except jwt.ExpiredSignatureError:
                raise AuthError(403, "invalid token: expired (exp is in the past)") from None
            except jwt.ImmatureSignatureError as exc:
                claim = "iat" if "(iat)" in str(exc) else "nbf"  # PyJWT names the claim so
                raise AuthError(
                    403, f"invalid token: not valid yet ({claim} is in the future)"
                ) from None
            except jwt.InvalidSignatureError:
                problem = "invalid token: signature does not match any configured key"
            except jwt.InvalidTokenError as exc:
                raise AuthError(403, f"invalid token: {exc}") from None
        raise AuthError(403, problem)

    def after_body(self, headers: Mapping[str, str], body: bytes) -> None:
        return None


def load_ed25519_public_key(encoded: str) -> Ed25519PublicKey:
    """A public key given as base64 (standard or URL-safe) of its raw 32 bytes."""
    text = encoded.strip().replace("-", "+").replace("_", "/")  # URL-safe alphabet too
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("public key: not base64") from None
    if len(raw) != 32:
        raise ValueError(f"public key: expected 32 bytes (raw Ed25519), got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def _bearer(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, credentials = value.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


def _matches_any(presented: bytes, candidates: Sequence[bytes]) -> bool:
    # Compare against every candidate, so timing reveals neither the token nor which matched.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(presented, candidate)
    return matched
