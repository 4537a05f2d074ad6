"""Google's OpenID Connect, faked for the tests that fake Google with `responses`: a signing
key of the tests' own, its discovery document and JWK Set, and ID tokens signed with it,
well-formed or forged one way or another.

Written from OpenID Connect Core 1.0 and RFC 7515/7518, apart from the stand-in's own
(sandbox/google_oidc.py), so that a mistake in one does not hide a mistake in the other.
"""

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

import google_health

ISSUER = google_health.ISSUER
DISCOVERY_URL = ISSUER + "/.well-known/openid-configuration"
JWKS_URL = "https://www.googleapis.com/oauth2/v3/certs"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KID = "test-key-1"
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
# What oauth.new_nonce() gives while Google is faked (the `google` fixture pins it), so that
# a token answer made up front can carry it.
NONCE = "test-nonce-SENTINEL-5b7e"
SUB = "104892750612347789016"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def big_endian(number):
    return number.to_bytes((number.bit_length() + 7) // 8, "big")


def jwk(key=KEY, kid=KID):
    numbers = key.public_key().public_numbers()
    n, e = (
        value.to_bytes((value.bit_length() + 7) // 8, "big") for value in (numbers.n, numbers.e)
    )
    return {
        "kty": "RSA",
        "alg": "RS256",
        "use": "sig",
        "kid": kid,
        "n": b64url(n),
        "e": b64url(e),
    }


def serve_keys(mock, keys=None):
    """Google's discovery document and its keys, on a responses mock."""
    mock.get(DISCOVERY_URL, json={"issuer": ISSUER, "jwks_uri": JWKS_URL})
    mock.get(
        JWKS_URL,
        json={"keys": keys if keys is not None else [jwk()]},
        headers={"Cache-Control": "public, max-age=21600"},
    )


def at_hash(access_token):
    return b64url(hashlib.sha256(access_token.encode()).digest()[:16])


def claims(client_id, access_token, scope, nonce=NONCE, **changed):
    """The claims Google gives for `scope`, issued now; `changed` replaces any (None
    leaves one out)."""
    moment = int(datetime.now(UTC).timestamp())
    made = {
        "iss": ISSUER,
        "azp": client_id,
        "aud": client_id,
        "sub": SUB,
        "iat": moment,
        "exp": moment + 3600,
        "at_hash": at_hash(access_token),
        "nonce": nonce,
    }
    if set(scope.split()) & {"profile", "https://www.googleapis.com/auth/userinfo.profile"}:
        made.update(
            name="Alex Rivera",
            given_name="Alex",
            family_name="Rivera",
            picture="https://lh3.example/a",
        )
    made.update(changed)
    return {name: value for name, value in made.items() if value is not None}


def signed(claims, key=KEY, kid=KID, alg="RS256", header=None):
    """A compact JWT of `claims`: RS256 with `key`; `alg` "none" unsigned; "HS256" with the
    public key's PEM as the HMAC secret (the old confusion attack)."""
    header = header or {"alg": alg, "kid": kid, "typ": "JWT"}
    parts = [b64url(json.dumps(part).encode()) for part in (header, claims)]
    message = ".".join(parts).encode()
    if alg == "none":
        signature = b""
    elif alg == "HS256":
        public = KEY.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        signature = hmac.new(public, message, hashlib.sha256).digest()
    else:
        signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return ".".join([*parts, b64url(signature)])
