"""OpenID Connect at the Google stand-in, as ../shared/google-health-api.md ("OpenID Connect:
discovery, keys and the ID token") describes Google's: the discovery document, the keys
that sign ID tokens, and the ID token itself, which a code exchange answers with when
`openid` was granted (with the `nonce` the authorization request sent), and a refresh too
(without one).

    GET  /.well-known/openid-configuration
    GET  /oauth2/v3/certs

An ID token is a JWT signed RS256 by the newest of two published RSA 2048 keys, which
`GoogleStandIn.rotate_id_token_key` rotates, as Google does now and then.
"""

import base64
import hashlib
import json

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from werkzeug.routing import Rule

from .common import as_json, now

DISCOVERY_PATH = "/.well-known/openid-configuration"
CERTS_PATH = "/oauth2/v3/certs"
ID_TOKEN_LIFETIME = 3600
KEYS_MAX_AGE = 6 * 3600  # how long a client may keep the keys, as Cache-Control says
AUTH = "https://www.googleapis.com/auth/"
CLAIMS = ["aud", "email", "email_verified", "exp", "family_name", "given_name", "iat", "iss"]
CLAIMS += ["name", "picture", "sub"]


def new_rsa_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def number(value):
    """A JWK number: big-endian bytes, no leading zeros, base64url (RFC 7518 6.3.1)."""
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def jwk(kid, pem):
    """The public half of a key, as a JWK."""
    public = serialization.load_pem_private_key(pem.encode(), None).public_key().public_numbers()
    return {
        "kty": "RSA",
        "alg": "RS256",
        "use": "sig",
        "kid": kid,
        "n": number(public.n),
        "e": number(public.e),
    }


def at_hash(access_token):
    """OpenID Connect Core 3.1.3.6: the left half of the SHA-256 of the access token."""
    return b64url(hashlib.sha256(access_token.encode("ascii")).digest()[:16])


def signed(kid, pem, claims):
    """A JWT of `claims`, signed RS256 with the key `kid`."""
    header = {"alg": "RS256", "kid": kid, "typ": "JWT"}
    parts = [b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)]
    key = serialization.load_pem_private_key(pem.encode(), None)
    signature = key.sign(".".join(parts).encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return ".".join([*parts, b64url(signature)])


def id_token_claims(issuer, grant, person, access_token, nonce, picture):
    """What an ID token says of `person`, for the scopes of `grant`."""
    moment = int(now().timestamp())
    claims = {
        "iss": issuer,
        "azp": grant.client_id,
        "aud": grant.client_id,
        "sub": person["sub"],
        "iat": moment,
        "exp": moment + ID_TOKEN_LIFETIME,
        "at_hash": at_hash(access_token),
    }
    if nonce:
        claims["nonce"] = nonce
    granted = grant.scope.split()
    if AUTH + "userinfo.profile" in granted:
        family = person["fullName"].split()[-1]
        claims.update(name=person["fullName"], given_name=person["given"], family_name=family)
        claims["picture"] = picture
    if AUTH + "userinfo.email" in granted:
        claims.update(email=person["email"], email_verified=True)
    return claims


class GoogleOpenIdConnect:
    """The OpenID Provider's endpoints of GoogleAuthorizationServer, and its ID tokens."""

    RULES = [
        Rule(DISCOVERY_PATH, endpoint="discovery", methods=["GET"]),
        Rule(CERTS_PATH, endpoint="certs", methods=["GET"]),
    ]

    def on_discovery(self, request):
        """Discovery 1.0: `issuer` is the address this document is served under, less the
        /.well-known/... that follows it."""
        from .google_authorization import AUTHORIZE_PATH, REVOKE_PATH, TOKEN_PATH
        from .google_resources import USERINFO_PATH

        issuer = request.url_root.rstrip("/")
        return as_json(
            {
                "issuer": issuer,
                "authorization_endpoint": issuer + AUTHORIZE_PATH,
                "token_endpoint": issuer + TOKEN_PATH,
                "userinfo_endpoint": issuer + USERINFO_PATH,
                "revocation_endpoint": issuer + REVOKE_PATH,
                "jwks_uri": issuer + CERTS_PATH,
                "response_types_supported": ["code", "token", "id_token", "code id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "email", "profile"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "client_secret_basic",
                ],
                "claims_supported": sorted(CLAIMS),
                "code_challenge_methods_supported": ["plain", "S256"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
            }
        )

    def on_certs(self, request):
        keys = self.store.id_token_keys.published(new_rsa_key)
        answer = as_json({"keys": [jwk(kid, pem) for kid, pem in reversed(keys)]})
        answer.headers["Cache-Control"] = f"public, max-age={KEYS_MAX_AGE}"
        return answer

    def id_token(self, request, grant, person, access_token, nonce=None):
        """The ID token of a token answer, signed by the newest published key."""
        kid, pem = self.store.id_token_keys.published(new_rsa_key)[-1]
        issuer = request.url_root.rstrip("/")
        picture = f"{request.url_root}avatars/{grant.user_id}.svg"
        claims = id_token_claims(issuer, grant, person, access_token, nonce, picture)
        return signed(kid, pem, claims)
