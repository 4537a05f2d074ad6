"""OpenID Connect at the Google stand-in: its discovery document, its signing keys and their
rotation, and the ID tokens it issues, driven by hand-built requests; then by clients
written by others from Google's documentation, unchanged: Authlib's OAuth2Session and
jwt.decode, and google-auth's id_token.verify_token, over real HTTP.
"""

import base64
import hashlib
import json
import re
import secrets
import warnings
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import authlib.deprecate  # noqa: F401 (before the catch below: it sets a filter of its own)
import pytest
import requests
from conftest import running_app
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from freezegun import freeze_time
from google.auth.transport.requests import Request as GoogleAuthRequest
from google.oauth2 import id_token as google_id_token
from test_sandbox_google import (
    ACTIVITY,
    ALEX,
    CLIENT_ID,
    REDIRECT,
    SECRET,
    bearer,
    callback_query,
    consent,
    exchange,
    refresh,
    tokens,
)
from werkzeug.test import Client

import sandbox.google_oidc as google_oidc
from sandbox import GoogleStandIn, RegisteredClient

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # authlib.jose is deprecated for joserfc, but still ships
    from authlib.integrations.requests_client import OAuth2Session
    from authlib.jose import JsonWebKey, jwt
    from authlib.oidc.core import CodeIDToken


@pytest.fixture
def google():
    return Client(GoogleStandIn([RegisteredClient(CLIENT_ID, SECRET, REDIRECT)]))


ISSUER = "http://localhost"  # the stand-in as werkzeug's test client reaches it
NOW = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)


def unpadded(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parts(token):
    header, claims, signature = token.split(".")
    return json.loads(unpadded(header)), json.loads(unpadded(claims)), unpadded(signature)


def public_key(jwk):
    n, e = (int.from_bytes(unpadded(jwk[name]), "big") for name in ("n", "e"))
    return rsa.RSAPublicNumbers(e, n).public_key()


def verifies(token, keys):
    """Whether `token`'s RS256 signature holds by the published key its header names."""
    header, _, signature = parts(token)
    key = public_key(next(k for k in keys if k["kid"] == header["kid"]))
    message = token.rsplit(".", 1)[0].encode()
    try:
        key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except Exception:
        return False
    return True


# --- Discovery and keys ----------------------------------------------------------------------


def test_discovery_names_the_stand_ins_own_endpoints_under_its_issuer(google):
    document = google.get("/.well-known/openid-configuration").json
    assert document["issuer"] == ISSUER
    assert document["jwks_uri"] == ISSUER + "/oauth2/v3/certs"
    assert document["authorization_endpoint"] == ISSUER + "/o/oauth2/v2/auth"
    assert document["token_endpoint"] == ISSUER + "/token"
    assert document["userinfo_endpoint"] == ISSUER + "/v1/userinfo"
    assert document["revocation_endpoint"] == ISSUER + "/revoke"
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]
    assert document["subject_types_supported"] == ["public"]
    assert "code" in document["response_types_supported"]
    assert document["code_challenge_methods_supported"] == ["plain", "S256"]
    assert {"openid", "email", "profile"} <= set(document["scopes_supported"])
    assert {"client_secret_basic", "client_secret_post"} <= set(
        document["token_endpoint_auth_methods_supported"]
    )
    assert {"aud", "exp", "iat", "iss", "sub", "name", "picture"} <= set(
        document["claims_supported"]
    )


def test_two_rsa_2048_signing_keys_are_published_with_cache_control(google):
    answer = google.get("/oauth2/v3/certs")
    keys = answer.json["keys"]
    assert len(keys) == 2 and len({key["kid"] for key in keys}) == 2
    for key in keys:
        assert (key["kty"], key["alg"], key["use"], key["e"]) == ("RSA", "RS256", "sig", "AQAB")
        assert public_key(key).key_size == 2048
    assert re.fullmatch(r"public, max-age=\d+", answer.headers["Cache-Control"])
    # The same keys on every fetch, until they rotate.
    assert google.get("/oauth2/v3/certs").json == answer.json


def test_a_rotation_signs_with_a_new_key_and_retires_the_oldest(google):
    before = [key["kid"] for key in google.get("/oauth2/v3/certs").json["keys"]]
    signer = parts(tokens(google)["id_token"])[0]["kid"]
    assert signer == before[0]  # the newest, listed first
    new = google.application.rotate_id_token_key()
    after = [key["kid"] for key in google.get("/oauth2/v3/certs").json["keys"]]
    assert after == [new, before[0]]  # the newest first; the oldest no longer published
    token = tokens(google)["id_token"]
    assert parts(token)[0]["kid"] == new
    assert verifies(token, google.get("/oauth2/v3/certs").json["keys"])


# --- The ID token ----------------------------------------------------------------------------


def test_the_code_exchange_answers_an_id_token_with_googles_claims(google):
    with freeze_time(NOW):
        answer = tokens(google, nonce="n-0S6_WzA2Mj")
        header, claims, _ = parts(answer["id_token"])
        userinfo = google.get("/v1/userinfo", headers=bearer(answer["access_token"])).json
    assert (header["alg"], header["typ"]) == ("RS256", "JWT")
    assert verifies(answer["id_token"], google.get("/oauth2/v3/certs").json["keys"])
    moment = int(NOW.timestamp())
    digest = hashlib.sha256(answer["access_token"].encode()).digest()[:16]
    assert claims == {
        "iss": ISSUER,
        "azp": CLIENT_ID,
        "aud": CLIENT_ID,
        "sub": userinfo["sub"],  # the same person, by the same id
        "iat": moment,
        "exp": moment + 3600,
        "at_hash": base64.urlsafe_b64encode(digest).rstrip(b"=").decode(),
        "nonce": "n-0S6_WzA2Mj",
        "name": "Alex Rivera",
        "given_name": "Alex",
        "family_name": "Rivera",
        "picture": "http://localhost/avatars/hu-4f1e9c2a7b.svg",
    }
    assert claims["sub"] != ALEX  # the Google account's id, not the Health user id


def test_the_email_comes_only_with_the_email_scope_and_no_nonce_unless_sent(google):
    claims = parts(tokens(google, scope=f"openid email {ACTIVITY}")["id_token"])[1]
    assert claims["email"] == "alex.rivera@example.com" and claims["email_verified"] is True
    assert "name" not in claims and "picture" not in claims and "nonce" not in claims
    plain = parts(tokens(google)["id_token"])[1]
    assert "email" not in plain


def test_without_openid_there_is_no_id_token(google):
    assert "id_token" not in tokens(google, scope=f"profile {ACTIVITY}")


def test_a_refresh_answers_a_new_id_token_without_the_nonce(google):
    first = tokens(google, nonce="n-0S6_WzA2Mj")
    again = refresh(google, first["refresh_token"]).json
    claims = parts(again["id_token"])[1]
    before = parts(first["id_token"])[1]
    assert "nonce" not in claims
    assert [claims[k] for k in ("iss", "sub", "aud", "azp")] == [
        before[k] for k in ("iss", "sub", "aud", "azp")
    ]
    assert claims["at_hash"] != before["at_hash"]  # of the new access token


def test_userinfo_is_served_at_googles_second_address_too(google):
    access = tokens(google)["access_token"]
    first = google.get("/v1/userinfo", headers=bearer(access))
    second = google.get("/oauth2/v3/userinfo", headers=bearer(access))
    assert first.status_code == second.status_code == 200 and first.json == second.json


def test_a_code_sent_back_with_a_nonce_keeps_it_for_that_code_only(google):
    one = callback_query(consent(google, nonce="first"))["code"]
    two = callback_query(consent(google, nonce="second"))["code"]
    assert parts(exchange(google, two).json["id_token"])[1]["nonce"] == "second"
    assert parts(exchange(google, one).json["id_token"])[1]["nonce"] == "first"


# --- Clients written by others ---------------------------------------------------------------


def allow(url):
    """The stand-in's consent page at `url`, allowed as its first person with every scope
    offered: where it sends the browser back."""
    page = requests.get(url, timeout=10)
    assert page.status_code == 200, page.text
    form = {
        "request_id": re.search(r'name="request_id" value="([^"]+)"', page.text).group(1),
        "user_id": re.search(r'name="user_id" value="([^"]+)"', page.text).group(1),
        "decision": "allow",
        "scope": re.findall(r'name="scope" value="([^"]+)"', page.text),
    }
    back = requests.post(url.split("?")[0], data=form, allow_redirects=False, timeout=10)
    assert back.status_code == 302
    return back.headers["Location"]


@pytest.fixture
def stand_in(tmp_path):
    """The Google stand-in over real HTTP (in the app's process, as `make run` serves it):
    its issuer, and the client id and secret it made for the app."""
    with running_app(tmp_path, provider="google") as (_, config):
        yield config.client


def test_authlib_signs_in_with_discovery_a_nonce_and_pkce_and_checks_the_id_token(stand_in):
    issuer = stand_in.issuer
    document = requests.get(issuer + "/.well-known/openid-configuration", timeout=10).json()
    session = OAuth2Session(
        stand_in.client_id,
        stand_in.client_secret,
        scope=f"openid profile {ACTIVITY}",
        redirect_uri=stand_in.redirect_uri,
        code_challenge_method="S256",
    )
    verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
    url, state = session.create_authorization_url(
        document["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    back = allow(url)
    assert parse_qs(urlsplit(back).query)["state"] == [state]
    token = session.fetch_token(
        document["token_endpoint"], authorization_response=back, code_verifier=verifier
    )
    keys = JsonWebKey.import_key_set(requests.get(document["jwks_uri"], timeout=10).json())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        claims = jwt.decode(
            token["id_token"],
            keys,
            claims_cls=CodeIDToken,
            claims_options={"iss": {"values": [issuer]}},
            claims_params={
                "nonce": nonce,
                "client_id": stand_in.client_id,
                "access_token": token["access_token"],
            },
        )
        claims.validate()  # iss, aud, azp, exp, iat, nonce and at_hash, Authlib's way
    assert claims["name"] == "Alex Rivera" and claims["aud"] == stand_in.client_id
    userinfo = session.get(document["userinfo_endpoint"], timeout=10).json()
    assert userinfo["sub"] == claims["sub"]


def test_google_auths_verify_token_takes_the_stand_ins_id_token(stand_in):
    issuer = stand_in.issuer
    document = requests.get(issuer + "/.well-known/openid-configuration", timeout=10).json()
    query = {
        "response_type": "code",
        "client_id": stand_in.client_id,
        "redirect_uri": stand_in.redirect_uri,
        "scope": f"openid profile {ACTIVITY}",
        "state": "s",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
        "nonce": "n-7",
    }
    back = allow(document["authorization_endpoint"] + "?" + requests.compat.urlencode(query))
    code = parse_qs(urlsplit(back).query)["code"][0]
    answer = requests.post(
        document["token_endpoint"],
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": stand_in.redirect_uri,
            "code_verifier": "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            "client_id": stand_in.client_id,
            "client_secret": stand_in.client_secret,
        },
        timeout=10,
    ).json()
    claims = google_id_token.verify_token(
        answer["id_token"],
        GoogleAuthRequest(),
        audience=stand_in.client_id,
        certs_url=document["jwks_uri"],
    )
    assert claims["iss"] == issuer and claims["nonce"] == "n-7"
    assert claims["given_name"] == "Alex"
    # And a token for another app is refused by it.
    with pytest.raises(Exception, match="[Aa]udience"):
        google_id_token.verify_token(
            answer["id_token"],
            GoogleAuthRequest(),
            audience="other.apps.googleusercontent.com",
            certs_url=document["jwks_uri"],
        )


def test_the_stand_ins_signature_is_what_rfc_7515_says(google):
    # The JWK's numbers are big-endian and unpadded: a key a client imports as published
    # checks a token as issued.
    keys = google.get("/oauth2/v3/certs").json["keys"]
    for key in keys:
        assert not unpadded(key["n"]).startswith(b"\0")
    token = tokens(google)["id_token"]
    assert verifies(token, keys)
    tampered = token.rsplit(".", 1)[0] + "." + google_oidc.b64url(b"\0" * 256)
    assert not verifies(tampered, keys)
