"""OpenID Connect's ID token: the provider's signed word on who signed in, checked as OpenID
Connect Core 1.0 §3.1.3.7 says before a word of it is believed.

An ID token is a JWT: three base64url parts, a header, the claims, and a signature over the
first two. Checking it is a list of rules, each a function of its own below, in the order
the spec gives them; a rule that fails raises UntrustedAnswer with its name, which the log
shows (never the token). The signature is checked by the `cryptography` package, with a key
the provider publishes at the `jwks_uri` of its discovery document (published_keys.py keeps
them); the algorithm is pinned to RS256, so that neither `none` nor an HMAC keyed with the
public key can stand in for it.

Only Google's dialect has ID tokens: Fitbit's legacy API never spoke OpenID Connect.
"""

import base64
import binascii
import hashlib
import hmac
import json
import logging
import threading
from datetime import UTC, datetime, timedelta

import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

import oauth
from published_keys import KeysUnavailable, PublishedKeys, fetched_json

log = logging.getLogger("oauth")

ALGORITHM = "RS256"  # the one Google signs with, and the only one taken
# Clocks differ: a token may be this far past its `exp`, or this far ahead in its `iat`.
LEEWAY = timedelta(minutes=2)
# How old an `iat` may be (with the leeway): a token is used at once, or never.
MAX_AGE = timedelta(hours=1)
DISCOVERY = "/.well-known/openid-configuration"
MIN_KEY_BITS = 2048  # a shorter RSA key is not taken, whoever publishes it


def untrusted(check, client):
    return oauth.UntrustedAnswer(check, who=client.who)


# --- Reading a JWT -------------------------------------------------------------------------


def b64url_decode(text):
    """Base64url without padding (RFC 7515 §2); any other character is an error."""
    padded = text + "=" * (-len(text) % 4)
    return base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True)


def decode(token, client):
    """(header, claims, what the signature is over, the signature) of a compact JWT."""
    try:
        header, claims, signature = token.split(".")
        decoded = [json.loads(b64url_decode(part)) for part in (header, claims)]
        raw = b64url_decode(signature)
    except (ValueError, UnicodeError, binascii.Error, RecursionError):
        raise untrusted("form", client) from None
    if not all(isinstance(part, dict) for part in decoded):
        raise untrusted("form", client)
    return decoded[0], decoded[1], f"{header}.{claims}".encode("ascii"), raw


# --- The provider's keys -------------------------------------------------------------------


def jwks_keys(document):
    """{kid: RSA public key} of a JWK Set's RS256 signing keys; any other is skipped."""
    keys = {}
    listed = document.get("keys") if isinstance(document, dict) else None
    for entry in listed if isinstance(listed, list) else []:
        try:
            if entry["kty"] != "RSA" or entry.get("alg", ALGORITHM) != ALGORITHM:
                continue
            if entry.get("use", "sig") != "sig":
                continue
            n, e = (int.from_bytes(b64url_decode(entry[name]), "big") for name in ("n", "e"))
            key = rsa.RSAPublicNumbers(e, n).public_key()
            if key.key_size < MIN_KEY_BITS:
                raise ValueError(f"an RSA key of {key.key_size} bits")
            keys[str(entry["kid"])] = key
        except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as error:
            log.warning("A key of the OpenID Connect keys was skipped: %r", error)
    return keys


class ProviderKeys:
    """One app's copy of its provider's OpenID Connect keys: at client.jwks_url if set,
    else at the `jwks_uri` of the discovery document under the client's issuer; found when
    first needed, and kept (published_keys.py fetches them again as needed)."""

    def __init__(self, client):
        self.client, self.published = client, None
        self.lock = threading.Lock()

    def key(self, kid):
        """The public key with this id, or None; ProviderUnavailable if none can be had."""
        with self.lock:
            if self.published is None:
                url = self.client.jwks_url or discovered(self.client)
                what = f"{self.client.who}'s OpenID Connect keys"
                self.published = PublishedKeys(url, jwks_keys, what)
        try:
            return self.published.key(kid)
        except KeysUnavailable:
            raise oauth.ProviderUnavailable(502, "jwks", who=self.client.who) from None

    @property
    def url(self):
        return self.published.url if self.published else None


def discovered(client):
    """The `jwks_uri` of the discovery document under client.issuer; the document must name
    that same issuer (Discovery 1.0 §4.3), or a server could pass off another's keys."""
    try:
        document = fetched_json(client.issuer + DISCOVERY)
        if not isinstance(document, dict) or document.get("issuer") != client.issuer:
            raise ValueError("a discovery document for another issuer")
        if not isinstance(document.get("jwks_uri"), str):
            raise ValueError("a discovery document without a jwks_uri")
    except (requests.RequestException, ValueError) as error:
        log.warning("%s's discovery document could not be read: %s", client.who, error)
        raise oauth.ProviderUnavailable(502, "discovery", who=client.who) from None
    return document["jwks_uri"]


# --- The checks, in the order of OpenID Connect Core 1.0 §3.1.3.7 --------------------------


def check(client, keys, tokens, nonce):
    """The claims of tokens.id_token, every rule below held, `keys` the provider's
    (ProviderKeys): a dict with the token's header and claims, the id of the key that
    checked it and where it was published. Raises oauth.UntrustedAnswer, naming the rule
    that failed."""
    header, claims, signed, signature = decode(tokens.id_token, client)
    check_algorithm(header, client)
    key = check_signature(keys, header, signed, signature, client)
    check_issuer(claims, client)
    check_audience(claims, client)
    check_authorized_party(claims, client)
    check_times(claims, client)
    check_nonce(claims, nonce, client)
    check_at_hash(claims, tokens.access_token, client)
    return {
        "header": header,
        "claims": claims,
        "key": key,
        "keys": keys.url,
        "signature": tokens.id_token.rsplit(".", 1)[-1],
    }


def check_algorithm(header, client):
    """§3.1.3.7 item 7: the algorithm is the one agreed, RS256; `none`, and an HMAC keyed
    with the public key (the old confusion attack), are refused before any key is used."""
    if header.get("alg") != ALGORITHM:
        raise untrusted("alg", client)


def check_signature(keys, header, signed, signature, client):
    """Item 6: the signature holds, by a key the provider publishes under the header's
    `kid` (an unknown one fetches the keys again, at most once a minute). The key's id."""
    kid = header.get("kid")
    key = keys.key(kid) if isinstance(kid, str) else None
    if key is None:
        raise untrusted("kid", client)
    try:
        key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise untrusted("signature", client) from None
    return kid


def check_issuer(claims, client):
    """Item 2: `iss` is the provider this sign-in went to (Google spells its own two ways)."""
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or issuer not in client.dialect.issuers(client.issuer):
        raise untrusted("iss", client)


def check_audience(claims, client):
    """Item 3: `aud` is, or holds, this app's client id, and no audience this app does not
    trust: it trusts only itself, so a token also meant for another client is refused."""
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if not audiences or any(entry != client.client_id for entry in audiences):
        raise untrusted("aud", client)


def check_authorized_party(claims, client):
    """Items 4 and 5: `azp`, when present (and it must be, for several audiences), is this
    app's client id."""
    audience = claims.get("aud")
    several = isinstance(audience, list) and len(audience) > 1
    if ("azp" in claims or several) and claims.get("azp") != client.client_id:
        raise untrusted("azp", client)


def check_times(claims, client):
    """Items 9 and 10: `exp` not passed and `iat` not ahead, each with a small leeway for
    clocks that differ; and `iat` recent."""
    moment = datetime.now(UTC)
    try:
        expires, issued = (datetime.fromtimestamp(claims[name], UTC) for name in ("exp", "iat"))
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        raise untrusted("exp", client) from None
    if moment > expires + LEEWAY:
        raise untrusted("exp", client)
    if issued > moment + LEEWAY or issued < moment - MAX_AGE - LEEWAY:
        raise untrusted("iat", client)


def check_nonce(claims, nonce, client):
    """Item 11: `nonce` is the one this browser's sign-in sent, and it works once (the
    sign-in that holds it is used up): a token from another sign-in, or replayed, fails."""
    sent = claims.get("nonce")
    if (
        not isinstance(sent, str)
        or not nonce
        or not hmac.compare_digest(sent.encode(), nonce.encode())
    ):
        raise untrusted("nonce", client)


def check_at_hash(claims, access_token, client):
    """§3.1.3.8: `at_hash`, when present, is of the access token that came with the token:
    an ID token cannot be paired with another answer's access token."""
    if "at_hash" not in claims:
        return
    if not access_token.isascii():  # RFC 6749 A.12: an access token is printable ASCII
        raise untrusted("at_hash", client)
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    expected = base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")
    if not isinstance(claims["at_hash"], str) or not hmac.compare_digest(
        claims["at_hash"].encode(), expected.encode()
    ):
        raise untrusted("at_hash", client)
