"""HTTP source authentication: every mode with good, bad and missing credentials."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from collector.auth import AuthError, HmacAuth, JwtAuth, NoAuth, TokenAuth, load_ed25519_public_key


def raw_public_key(private: Ed25519PrivateKey) -> str:
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return base64.b64encode(raw).decode()


def status_of(call: object) -> int:
    assert callable(call)
    with pytest.raises(AuthError) as info:
        call()
    return info.value.status


def test_no_auth_accepts_anything() -> None:
    NoAuth().before_body({})
    NoAuth().after_body({}, b"x")


def test_bearer_token() -> None:
    auth = TokenAuth(["s3cret", "next-s3cret"])
    auth.before_body({"authorization": "Bearer s3cret"})
    auth.before_body({"authorization": "bearer next-s3cret"})
    assert status_of(lambda: auth.before_body({})) == 401
    assert status_of(lambda: auth.before_body({"authorization": "Basic czNjcmV0"})) == 401
    assert status_of(lambda: auth.before_body({"authorization": "Bearer wrong"})) == 403


def test_token_in_a_named_header() -> None:
    auth = TokenAuth(["s3cret"], header="X-Api-Key")
    auth.before_body({"x-api-key": "s3cret"})
    assert status_of(lambda: auth.before_body({"authorization": "Bearer s3cret"})) == 401
    assert status_of(lambda: auth.before_body({"x-api-key": "s3cre"})) == 403


def test_github_style_hmac_with_rotation() -> None:
    body = b'{"zen": "Keep it logically awesome."}'
    old, new = "old-secret", "new-secret"
    auth = HmacAuth([new, old])
    for secret in (old, new):
        signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers = {"x-hub-signature-256": signature}
        auth.before_body(headers)
        auth.after_body(headers, body)
    good = "sha256=" + hmac.new(new.encode(), body, hashlib.sha256).hexdigest()
    assert status_of(lambda: auth.before_body({})) == 401
    assert status_of(lambda: auth.after_body({"x-hub-signature-256": good}, body + b" ")) == 403
    assert status_of(lambda: auth.after_body({"x-hub-signature-256": good[7:]}, body)) == 403
    upper = {"x-hub-signature-256": "sha256=" + good[7:].upper()}  # hex digits in any case
    auth.after_body(upper, body)


def test_hmac_with_custom_header_prefix_and_base64() -> None:
    body = b"payload"
    auth = HmacAuth(["k"], header="X-Signature", prefix="", encoding="base64")
    signature = base64.b64encode(hmac.new(b"k", body, hashlib.sha256).digest()).decode()
    auth.after_body({"x-signature": signature}, body)
    assert status_of(lambda: auth.after_body({"x-signature": signature}, b"other")) == 403


def test_ed25519_jwt_as_clustercockpit_uses() -> None:
    private = Ed25519PrivateKey.generate()
    auth = JwtAuth([raw_public_key(private)])
    now = int(time.time())
    token = jwt.encode({"sub": "cc-metric-collector", "exp": now + 60}, private, algorithm="EdDSA")
    auth.before_body({"authorization": f"Bearer {token}"})
    auth.before_body({"x-auth-token": token})
    expired = jwt.encode({"exp": now - 120}, private, algorithm="EdDSA")
    early = jwt.encode({"nbf": now + 600}, private, algorithm="EdDSA")
    forged = jwt.encode({"sub": "x"}, Ed25519PrivateKey.generate(), algorithm="EdDSA")
    hs256 = jwt.encode({"sub": "x"}, "a-shared-secret-of-at-least-32-bytes", algorithm="HS256")
    assert status_of(lambda: auth.before_body({})) == 401
    for bad in (expired, early, forged, hs256, "not-a-jwt"):
        assert status_of(lambda bad=bad: auth.before_body({"x-auth-token": bad})) == 403


def test_jwt_claims_as_cc_backend_issues_them_and_what_a_refusal_names() -> None:
    private = Ed25519PrivateKey.generate()
    auth = JwtAuth([raw_public_key(private)])
    now = int(time.time())
    # cc-backend's ProvideJWT: sub, roles and iat; exp only with a max age. Roles are not checked,
    # as cc-event-store does not.
    issued = jwt.encode({"sub": "admin", "roles": ["api"], "iat": now}, private, algorithm="EdDSA")
    auth.before_body({"authorization": f"Bearer {issued}"})
    # The issuer's clock may run a little ahead of ours, or behind: a minute either way is fine.
    for claims in ({"iat": now + 30}, {"nbf": now + 30}, {"exp": now - 30}):
        auth.before_body({"x-auth-token": jwt.encode(claims, private, algorithm="EdDSA")})
    for claim in ("iat", "nbf"):
        early = jwt.encode({claim: now + 600}, private, algorithm="EdDSA")
        with pytest.raises(AuthError) as refused:
            auth.before_body({"x-auth-token": early})
        assert refused.value.detail == f"invalid token: not valid yet ({claim} is in the future)"


def test_jwt_key_rotation_accepts_any_configured_key() -> None:
    first, second = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    auth = JwtAuth([raw_public_key(first), raw_public_key(second)])
    auth.before_body({"x-auth-token": jwt.encode({}, second, algorithm="EdDSA")})


def test_public_key_must_be_raw_32_bytes_base64() -> None:
    with pytest.raises(ValueError, match="expected 32 bytes"):
        load_ed25519_public_key(base64.b64encode(b"short").decode())
    with pytest.raises(ValueError, match="not base64"):
        load_ed25519_public_key("!!!")
