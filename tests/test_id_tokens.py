"""id_tokens.py, through the app: a Google sign-in whose ID token fails any check of OpenID
Connect Core 1.0 §3.1.3.7 stores nothing, gives the tokens back, says the answer could not
be trusted, and logs which check failed, never the token. Google is faked with `responses`,
its ID tokens signed by the tests' own key (tests/oidc.py); each refusal is a row of
docs/security.md.
"""

import base64
import json
import logging
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import oidc
import pytest
import responses
from conftest import (
    AUTH_CODE,
    CLIENT_SECRET,
    REFRESH_TOKEN,
    SECRETS,
    beside_a_stand_in,
    live_tokens,
)
from cryptography.hazmat.primitives.asymmetric import rsa
from freezegun import freeze_time
from hypothesis import given, settings
from hypothesis import strategies as st
from test_end_to_end import Browser
from test_google_health import (
    CLIENT_ID,
    GRANTED,
    IDENTITY_URL,
    REDIRECT_URI,
    STEPS_URL,
    calls_to,
    identity_answer,
    page,
    rollup_answer,
    start,
    token_answer,
)
from werkzeug.test import Client

import google_health
import id_tokens
import oauth
from fitbit_oauth_app import create_app
from models import PendingSignIn, User
from settings import Config

NOW = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
GOOGLE_ALEX = "hu-4f1e9c2a7b"


@pytest.fixture
def client_config():
    return oauth.Client(google_health, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI)


@pytest.fixture
def app(tmp_path, client_config):
    return create_app(Config(client_config, f"sqlite:///{tmp_path / 'oidc.db'}", secret_key=b"t"))


@pytest.fixture
def browser(app):
    return Client(app)


def claims(**changed):
    """The claims of a good ID token for this app's sign-in, `changed`."""
    return oidc.claims(CLIENT_ID, token_answer()["access_token"], GRANTED, **changed)


def sign_in_with(browser, google, id_token):
    """A sign-in whose token answer carries `id_token`; the callback's response."""
    query = start(browser)
    google.upsert(responses.POST, google_health.TOKEN_URL, json=token_answer(id_token=id_token))
    google.upsert(responses.GET, IDENTITY_URL, json=identity_answer())
    google.upsert(responses.POST, STEPS_URL, json=rollup_answer())
    google.upsert(responses.POST, google_health.REVOKE_URL, json={})
    return browser.get("/auth/callback", query_string={"code": AUTH_CODE, "state": query["state"]})


@pytest.fixture
def refused(browser, google, caplog):
    """sign_in_with(), and a check that the sign-in was refused by the rule `check`."""

    def refused(id_token, check):
        caplog.set_level(logging.INFO)
        caplog.clear()
        revokes = len(calls_to(google, google_health.REVOKE_URL))
        response = sign_in_with(browser, google, id_token)
        text = page(response)
        assert response.status_code == 502
        assert "answer could not be trusted" in text and "Nothing of it was stored" in text
        assert User.select().count() == 0 and PendingSignIn.select().count() == 0
        # Nothing of the answer was believed, and the tokens it brought, nobody's here
        # (the identity endpoint says whose they are, and nothing else is asked), were
        # given back.
        assert "given back" in text
        revoked = calls_to(google, google_health.REVOKE_URL)[revokes:]
        assert [call.request.body for call in revoked] == [f"token={REFRESH_TOKEN}"]
        logged = "\n".join(record.getMessage() for record in caplog.records)
        assert f"ID token was refused: {check} check failed" in logged
        for secret in (*SECRETS, id_token, id_token.split(".")[-1]):
            if len(secret) > 8:
                assert secret not in logged and secret not in text
        return response

    return refused


def b64(part):
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


# --- A good token ----------------------------------------------------------------------------


def test_a_good_id_token_signs_in_and_the_keys_are_found_once(app, google):
    for _ in range(2):  # two browsers
        response = sign_in_with(Client(app), google, oidc.signed(claims()))
        assert response.status_code == 302 and User.get().display_name == "Alex Rivera"
    # Discovery names the keys' address, and the keys are kept: one fetch of each, for both.
    assert len(calls_to(google, oidc.DISCOVERY_URL)) == 1
    assert len(calls_to(google, oidc.JWKS_URL)) == 1


@pytest.mark.parametrize("issuer", ["https://accounts.google.com", "accounts.google.com"])
def test_both_of_googles_spellings_of_its_issuer_are_taken(browser, google, issuer):
    assert sign_in_with(browser, google, oidc.signed(claims(iss=issuer))).status_code == 302
    assert User.select().count() == 1


def test_a_list_of_audiences_of_this_app_alone_is_taken(browser, google):
    assert sign_in_with(browser, google, oidc.signed(claims(aud=[CLIENT_ID]))).status_code == 302


def test_an_id_token_just_expired_is_taken_within_the_clock_leeway(browser, google):
    with freeze_time(NOW):
        moment = int(NOW.timestamp())
        token = oidc.signed(claims(iat=moment - 3660, exp=moment - 60))
        assert sign_in_with(browser, google, token).status_code == 302


def test_a_jwks_url_setting_is_used_instead_of_discovery(tmp_path, google):
    client = oauth.Client(
        google_health, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, jwks_url="https://keys.example/k"
    )
    google.get("https://keys.example/k", json={"keys": [oidc.jwk()]})
    app = create_app(Config(client, f"sqlite:///{tmp_path / 'k.db'}", secret_key=b"t"))
    assert sign_in_with(Client(app), google, oidc.signed(claims())).status_code == 302
    assert calls_to(google, oidc.DISCOVERY_URL) == [] and calls_to(google, oidc.JWKS_URL) == []


def test_a_rotated_key_is_fetched_again_and_taken(app, google):
    with freeze_time(NOW) as clock:
        assert sign_in_with(Client(app), google, oidc.signed(claims())).status_code == 302
        clock.tick(timedelta(minutes=2))
        google.replace(
            responses.GET,
            oidc.JWKS_URL,
            json={"keys": [oidc.jwk(oidc.OTHER_KEY, "new"), oidc.jwk()]},
        )
        token = oidc.signed(claims(), key=oidc.OTHER_KEY, kid="new")
        assert sign_in_with(Client(app), google, token).status_code == 302
    assert len(calls_to(google, oidc.JWKS_URL)) == 2


# --- Each refusal ----------------------------------------------------------------------------


def test_an_id_token_with_alg_none_is_refused(refused):
    refused(oidc.signed(claims(), alg="none"), "alg")


def test_an_id_token_signed_hs256_with_the_public_key_as_its_secret_is_refused(refused):
    refused(oidc.signed(claims(), alg="HS256"), "alg")


def test_an_id_token_by_a_key_not_published_is_refused_after_one_refetch(app, google, refused):
    with freeze_time(NOW) as clock:
        assert sign_in_with(Client(app), google, oidc.signed(claims())).status_code == 302
        User.delete().execute()
        clock.tick(timedelta(minutes=2))
        forged = oidc.signed(claims(), key=oidc.OTHER_KEY, kid="not-published")
        refused(forged, "kid")
        assert len(calls_to(google, oidc.JWKS_URL)) == 2  # fetched again, once
        clock.tick(timedelta(seconds=20))
        refused(forged, "kid")
        assert len(calls_to(google, oidc.JWKS_URL)) == 2  # not again within the minute


def test_an_id_token_signed_by_another_key_under_a_published_key_id_is_refused(refused):
    refused(oidc.signed(claims(), key=oidc.OTHER_KEY), "signature")


def test_an_id_token_whose_signature_is_over_other_claims_is_refused(refused):
    header, _, signature = oidc.signed(claims(sub="somebody-else")).split(".")
    refused(f"{header}.{b64(claims())}.{signature}", "signature")


def test_an_id_token_from_another_issuer_is_refused(refused):
    refused(oidc.signed(claims(iss="https://evil.example")), "iss")


def test_an_id_token_for_another_audience_is_refused(refused):
    refused(oidc.signed(claims(aud="other.apps.googleusercontent.com", azp=None)), "aud")


def test_an_id_token_authorized_for_another_party_is_refused(refused):
    refused(oidc.signed(claims(azp="other.apps.googleusercontent.com")), "azp")


@pytest.mark.parametrize("azp", [CLIENT_ID, None])
def test_an_id_token_also_for_an_audience_this_app_does_not_trust_is_refused(refused, azp):
    """OpenID Connect Core 3.1.3.7 item 3: this app trusts itself alone, so a token meant
    for another client as well is refused, whoever it names as the authorized party."""
    token = oidc.signed(claims(aud=[CLIENT_ID, "other.apps.googleusercontent.com"], azp=azp))
    refused(token, "aud")


# Claims of a type no issuer sends: each a refusal by its own rule, never a 500.
WRONG_TYPES = [
    ("iss", [oidc.ISSUER], "iss"),
    ("iss", {"iss": oidc.ISSUER}, "iss"),
    ("aud", {"aud": CLIENT_ID}, "aud"),
    ("aud", [[CLIENT_ID]], "aud"),
    ("aud", [], "aud"),
    ("azp", [CLIENT_ID], "azp"),
    ("exp", "tomorrow", "exp"),
    ("exp", 1e400, "exp"),
    ("iat", [1], "exp"),
    ("nonce", [oidc.NONCE], "nonce"),
    ("at_hash", 12, "at_hash"),
]


@pytest.mark.parametrize("claim, value, check", WRONG_TYPES)
def test_a_claim_of_the_wrong_type_is_a_refusal_by_its_rule(refused, claim, value, check):
    refused(oidc.signed(claims(**{claim: value})), check)


def test_an_access_token_that_is_not_ascii_fails_the_at_hash_check(browser, google):
    query = start(browser)
    access = "ya29.clé-non-ascii"
    token = oidc.signed(oidc.claims(CLIENT_ID, access, GRANTED))
    answer = token_answer(access_token=access, id_token=token)
    google.upsert(responses.POST, google_health.TOKEN_URL, json=answer)
    google.upsert(responses.POST, google_health.REVOKE_URL, json={})
    response = browser.get(
        "/auth/callback", query_string={"code": AUTH_CODE, "state": query["state"]}
    )
    assert response.status_code == 502 and "could not be trusted" in page(response)
    assert User.select().count() == 0


@pytest.mark.parametrize(
    "keyset", [{"keys": None}, {"keys": "k"}, {"keys": [None, 1, "k", []]}, {"keys": {}}, [], "k"]
)
def test_a_keyset_of_any_other_shape_holds_no_key(refused, google, keyset):
    google.replace(responses.GET, oidc.JWKS_URL, json=keyset)
    refused(oidc.signed(claims()), "kid")


def test_an_expired_id_token_is_refused(refused):
    with freeze_time(NOW):
        moment = int(NOW.timestamp())
        refused(oidc.signed(claims(iat=moment - 3780, exp=moment - 180)), "exp")


def test_an_id_token_issued_in_the_future_is_refused(refused):
    with freeze_time(NOW):
        moment = int(NOW.timestamp())
        refused(oidc.signed(claims(iat=moment + 300, exp=moment + 3900)), "iat")


def test_an_id_token_issued_over_an_hour_ago_is_refused(refused):
    with freeze_time(NOW):
        moment = int(NOW.timestamp())
        refused(oidc.signed(claims(iat=moment - 3900, exp=moment + 600)), "iat")


def test_an_id_token_without_a_nonce_is_refused(refused):
    refused(oidc.signed(claims(nonce=None)), "nonce")


def test_an_id_token_with_another_nonce_is_refused(refused):
    refused(oidc.signed(claims(nonce="a-nonce-this-sign-in-never-sent")), "nonce")


def test_an_id_token_whose_nonce_was_used_by_an_earlier_sign_in_is_refused(
    app, google, refused, monkeypatch
):
    # Each sign-in its own nonce, as outside the tests.
    nonces = iter(["first-sign-in-nonce", "second-sign-in-nonce"])
    monkeypatch.setattr(oauth, "new_nonce", lambda: next(nonces))
    first = oidc.signed(claims(nonce="first-sign-in-nonce"))
    assert sign_in_with(Client(app), google, first).status_code == 302
    User.delete().execute()
    refused(first, "nonce")  # the first sign-in's token, replayed into the second


def test_an_id_token_for_another_access_token_is_refused(refused):
    refused(oidc.signed(claims(at_hash=oidc.at_hash("another-access-token"))), "at_hash")


@pytest.mark.parametrize(
    "token",
    ["not-a-jwt", "a.b.c", f"{b64([1])}.{b64({})}.c2ln", "e30.e30.%%%", "e30.e30.e30.e30"],
)
def test_an_id_token_that_is_not_a_jwt_is_refused(refused, token):
    refused(token, "form")


def test_a_token_answer_without_an_id_token_is_refused(browser, google, caplog):
    caplog.set_level(logging.WARNING)
    query = start(browser)
    google.post(google_health.TOKEN_URL, json=token_answer(id_token=None))
    google.get(IDENTITY_URL, json=identity_answer())  # whose they are: nobody's here
    google.post(google_health.REVOKE_URL, json={})
    response = browser.get(
        "/auth/callback", query_string={"code": AUTH_CODE, "state": query["state"]}
    )
    assert response.status_code == 502 and User.select().count() == 0
    assert "id_token check failed" in caplog.text
    assert len(calls_to(google, google_health.REVOKE_URL)) == 1


def test_keys_that_cannot_be_had_stop_the_sign_in_and_nothing_is_stored(browser, google):
    google.replace(responses.GET, oidc.DISCOVERY_URL, status=503)
    response = sign_in_with(browser, google, oidc.signed(claims()))
    assert response.status_code == 502 and "did not answer" in page(response)
    assert User.select().count() == 0
    # Asked only whose the tokens are: nobody's here, so they went back.
    assert len(calls_to(google, IDENTITY_URL)) == 1
    assert len(calls_to(google, google_health.REVOKE_URL)) == 1


def test_a_discovery_document_for_another_issuer_is_not_followed(browser, google):
    google.replace(
        responses.GET,
        oidc.DISCOVERY_URL,
        json={"issuer": "https://evil.example", "jwks_uri": "https://evil.example/keys"},
    )
    response = sign_in_with(browser, google, oidc.signed(claims()))
    assert response.status_code == 502 and User.select().count() == 0
    assert calls_to(google, "https://evil.example/keys") == []


def test_a_consent_round_checks_its_id_token_too(app, google):
    browser = Client(app)
    assert sign_in_with(browser, google, oidc.signed(claims())).status_code == 302
    before = User.get().scope
    home = page(browser.get("/"))
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', home).group(1)
    asked = browser.post("/auth/more", data={"csrf_token": csrf, "panel": "sleep"})
    query = {k: v[0] for k, v in parse_qs(urlsplit(asked.headers["Location"]).query).items()}
    assert query["nonce"] == oidc.NONCE  # a round sends one too
    scope = f"{GRANTED} {google_health.SLEEP.scope}"
    forged = oidc.signed(oidc.claims(CLIENT_ID, "round-access", scope, nonce="another"))
    google.upsert(
        responses.POST,
        google_health.TOKEN_URL,
        json=token_answer(scope=scope, access_token="round-access", id_token=forged),
    )
    response = browser.get("/auth/callback", query_string={"code": "c", "state": query["state"]})
    assert response.status_code == 502 and "could not be trusted" in page(response)
    assert User.get().scope == before  # the round widened nothing


def test_every_sign_in_sends_a_nonce_of_its_own(app):
    nonces = []
    for _ in range(3):
        browser = Client(app)
        query = start(browser)
        nonces.append(query["nonce"])
        assert len(query["nonce"]) >= 43  # 32 random bytes
        assert (
            PendingSignIn.select().order_by(PendingSignIn.id.desc()).get().nonce == query["nonce"]
        )
    assert len(set(nonces)) == 3


def test_a_published_rsa_key_shorter_than_2048_bits_is_not_taken(refused, google):
    short = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    google.replace(responses.GET, oidc.JWKS_URL, json={"keys": [oidc.jwk(short, "short")]})
    refused(oidc.signed(claims(), key=short, kid="short"), "kid")


class OneKey:
    """id_tokens.ProviderKeys as the check sees it: the tests' key, under its id."""

    url = oidc.JWKS_URL

    def key(self, kid):
        return oidc.KEY.public_key() if kid == oidc.KID else None


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(
    changed=st.dictionaries(
        st.sampled_from(["iss", "aud", "azp", "exp", "iat", "nonce", "at_hash", "sub", "name"]),
        JSON,
    ),
    header=st.dictionaries(st.sampled_from(["alg", "kid", "typ"]), JSON),
)
def test_any_claims_and_header_are_taken_or_refused_never_an_error(changed, header):
    client = oauth.Client(google_health, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI)
    access = token_answer()["access_token"]
    made = {**claims(), **changed}
    token = oidc.signed(made, header={"alg": "RS256", "kid": oidc.KID, **header})
    tokens = oauth.Tokens(None, access, None, datetime.now(UTC), GRANTED, id_token=token)
    try:
        checked = id_tokens.check(client, OneKey(), tokens, oidc.NONCE)
    except oauth.UntrustedAnswer:
        return
    # Taken: then every rule held, whatever else came along.
    assert checked["claims"]["aud"] in (CLIENT_ID, [CLIENT_ID])
    assert checked["claims"]["nonce"] == oidc.NONCE


# --- A refusal never ends the grant the app keeps -------------------------------------------


def test_a_refused_sign_in_of_someone_connected_here_revokes_nothing(app, google, monkeypatch):
    """Alex is connected in one browser; a sign-in in another meets a clock that is off.
    At Google a revoke ends the whole grant, the first browser's with it: so the refused
    tokens are dropped, not revoked, and Alex stays connected."""
    first = Client(app)
    assert sign_in_with(first, google, oidc.signed(claims())).status_code == 302
    kept = User.get()
    skewed = oidc.signed(claims(iat=int(datetime.now(UTC).timestamp()) + 600))
    response = sign_in_with(Client(app), google, skewed)
    assert response.status_code == 502
    assert "the access you gave this app before is kept" in page(response)
    assert calls_to(google, google_health.REVOKE_URL) == []
    assert User.get().connected and User.get().refresh_token == kept.refresh_token
    assert "Hello, Alex Rivera" in page(first.get("/"))


def test_a_consent_round_whose_id_token_is_refused_revokes_nothing(app, google):
    browser = Client(app)
    assert sign_in_with(browser, google, oidc.signed(claims())).status_code == 302
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page(browser.get("/"))).group(1)
    asked = browser.post("/auth/more", data={"csrf_token": csrf, "panel": "sleep"})
    query = {k: v[0] for k, v in parse_qs(urlsplit(asked.headers["Location"]).query).items()}
    google.replace(responses.GET, IDENTITY_URL, status=503)  # whose they are, unknown
    stale = oidc.signed(claims(exp=int(datetime.now(UTC).timestamp()) - 600))
    google.upsert(responses.POST, google_health.TOKEN_URL, json=token_answer(id_token=stale))
    response = browser.get("/auth/callback", query_string={"code": "c", "state": query["state"]})
    assert response.status_code == 502 and "kept as it was" in page(response)
    assert calls_to(google, google_health.REVOKE_URL) == []
    assert User.get().connected


def test_a_refusal_with_nobody_connected_here_gives_the_tokens_back(app, google):
    """Sam was here once, and disconnected: the refused tokens are nobody's grant here."""
    assert sign_in_with(Client(app), google, oidc.signed(claims())).status_code == 302
    User.update(access_token=None, refresh_token=None).execute()
    response = sign_in_with(Client(app), google, oidc.signed(claims(nonce="another")))
    assert response.status_code == 502 and "given back" in page(response)
    assert len(calls_to(google, google_health.REVOKE_URL)) == 1


def test_at_the_stand_in_a_refused_second_sign_in_leaves_the_grant_in_use_live(
    tmp_path, monkeypatch
):
    """Against Google's stand-in, whose revoke ends every token the person gave the app:
    a second sign-in whose ID token fails (a clock that is off, here made so) leaves the
    first browser's grant working."""
    with beside_a_stand_in(tmp_path, "google") as (url, stand_in):
        first = Browser(url)
        assert "Hello, Alex Rivera" in first.sign_in(user=GOOGLE_ALEX).text
        monkeypatch.setattr(id_tokens, "check_times", lambda c, client: _skewed(client))
        refused = Browser(url).sign_in(user=GOOGLE_ALEX)
        assert refused.status_code == 502 and "kept as it was" in refused.text
        monkeypatch.undo()
        assert live_tokens(stand_in, GOOGLE_ALEX)
        assert "steps today" in first.get("/").text


def _skewed(client):
    raise id_tokens.untrusted("iat", client)
