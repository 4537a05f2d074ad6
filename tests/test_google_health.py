"""google_health.py, and the app speaking Google's dialect, with Google faked by `responses`.

Every answer and error shape here is one that ../shared/google-health-api.md documents.
"""

import base64
import json
import logging
import re
import threading
from datetime import UTC, date, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import oidc
import pytest
import requests
from conftest import (
    ACCESS_TOKEN,
    AUTH_CODE,
    CLIENT_SECRET,
    REFRESH_TOKEN,
    SECRETS,
    held,
    running_app,
)
from freezegun import freeze_time
from responses import matchers
from test_oauth import MemoryStore
from werkzeug.test import Client

import dialects
import google_health
import oauth
import token_store
from database import open_database
from fitbit_oauth_app import create_app
from models import ApiCache, PendingSignIn, User
from settings import Config

CLIENT_ID = "123-abc.apps.googleusercontent.com"
REDIRECT_URI = "http://localhost:4000/auth/callback"
IDENTITY_URL = google_health.API_URL + google_health.IDENTITY_PATH
STEPS_URL = google_health.API_URL + google_health.STEPS_PATH
EXERCISE_URL = google_health.API_URL + google_health.DATA_TYPES + "/exercise/dataPoints"
HEALTH_ID = "hu-4f1e9c2a7b"
ACTIVITY = google_health.ACTIVITY_SCOPE
GRANTED = (
    f"openid https://www.googleapis.com/auth/userinfo.profile {ACTIVITY} "
    f"{google_health.SETTINGS_SCOPE}"
)
NOW = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)


def token_answer(claims=None, client_id=CLIENT_ID, **overrides):
    """Google's answer to a code exchange: with an ID token signed by the tests' key
    (tests/oidc.py) for its access token and scope, `claims` changed in it."""
    body = {
        "access_token": ACCESS_TOKEN,
        "expires_in": 3599,
        "refresh_token": REFRESH_TOKEN,
        "scope": GRANTED,
        "token_type": "Bearer",
    }
    body.update(overrides)
    if "id_token" not in overrides:
        scope = body["scope"] if isinstance(body.get("scope"), str) else GRANTED
        made = oidc.claims(client_id, body["access_token"], scope, **(claims or {}))
        body["id_token"] = oidc.signed(made)
    return {k: v for k, v in body.items() if v is not None}


def identity_answer(legacy="7QW2XR"):
    body = {"name": "users/me/identity", "healthUserId": HEALTH_ID}
    if legacy:
        body["legacyUserId"] = legacy
    return body


def userinfo_answer(name="Alex Rivera"):
    return {"sub": "1098", "name": name, "given_name": "Alex", "picture": "https://lh3.example/a"}


def rollup_answer(last=date(2026, 11, 15), counts=("8123", "10500", "4200")):
    """Newest first, as Google sends it: `counts[0]` is `last`'s."""
    points = []
    for n, count in enumerate(counts):
        day = last - timedelta(days=n)
        after = day + timedelta(days=1)
        points.append(
            {
                "civilStartTime": {"date": {"year": day.year, "month": day.month, "day": day.day}},
                "civilEndTime": {
                    "date": {"year": after.year, "month": after.month, "day": after.day}
                },
                "steps": {"countSum": count} if count is not None else {},
            }
        )
    return {"rollupDataPoints": points}


def rpc_status(code, status, reason=None, message="see the docs"):
    error = {"code": code, "message": message, "status": status}
    if reason:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason}]
    return {"error": error}


@pytest.fixture
def client_config():
    return oauth.Client(google_health, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI)


@pytest.fixture
def app(tmp_path, client_config):
    return create_app(
        Config(client_config, f"sqlite:///{tmp_path / 'google.db'}", secret_key=b"test")
    )


@pytest.fixture
def browser(app):
    return Client(app)


def page(response):
    return response.get_data(as_text=True)


def start(browser):
    response = browser.get("/auth")
    assert response.status_code == 302
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}


def sign_in(browser, google, scope=GRANTED, identity=None, **token_overrides):
    """The whole flow, Google answering as it documents. Returns the callback response."""
    query = start(browser)
    google.post(google_health.TOKEN_URL, json=token_answer(scope=scope, **token_overrides))
    google.get(IDENTITY_URL, json=identity or identity_answer())
    google.get(google_health.USERINFO_URL, json=userinfo_answer())
    google.post(STEPS_URL, json=rollup_answer())
    return browser.get("/auth/callback", query_string={"code": AUTH_CODE, "state": query["state"]})


def calls_to(google, url):
    return [call for call in google.calls if call.request.url.split("?")[0] == url]


# --- The authorization request and the code exchange -------------------------------------


def test_authorize_url_asks_for_a_refresh_token_and_consent(client_config):
    url = oauth.authorize_url(client_config, "the-state", "v" * 43)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == google_health.AUTHORIZE_URL
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query == {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": f"openid profile {ACTIVITY} {google_health.SETTINGS_SCOPE}",
        "state": "the-state",
        "code_challenge": oauth.code_challenge("v" * 43),
        "code_challenge_method": "S256",
        "access_type": "offline",
        "prompt": "consent",
    }
    # Holding a refresh token for the user, the app does not make them consent again.
    again = parse_qs(urlsplit(oauth.authorize_url(client_config, "s", "v" * 43, True)).query)
    assert again["access_type"] == ["offline"] and "prompt" not in again


def test_code_exchange_is_basic_auth_and_exactly_the_documented_form(google, client_config):
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    google.post(
        google_health.TOKEN_URL,
        json=token_answer(),
        match=[
            matchers.header_matcher({"Authorization": f"Basic {basic}"}),
            matchers.urlencoded_params_matcher(
                {
                    "grant_type": "authorization_code",
                    "code": AUTH_CODE,
                    "redirect_uri": REDIRECT_URI,
                    "code_verifier": "v" * 43,
                }
            ),
        ],
    )
    tokens = oauth.exchange_code(client_config, AUTH_CODE, "v" * 43)
    assert (tokens.user_id, tokens.refresh_token, tokens.scope) == (None, REFRESH_TOKEN, GRANTED)
    assert CLIENT_SECRET not in google.calls[0].request.body


def test_a_code_exchange_without_a_refresh_token_is_accepted(google, client_config):
    google.post(google_health.TOKEN_URL, json=token_answer(refresh_token=None))
    assert oauth.exchange_code(client_config, AUTH_CODE, "v" * 43).refresh_token is None


def test_a_refresh_keeps_the_refresh_token_google_did_not_resend(google, client_config):
    google.post(
        google_health.TOKEN_URL,
        json=token_answer(access_token="ya29.new", refresh_token=None),
        match=[
            matchers.urlencoded_params_matcher(
                {"grant_type": "refresh_token", "refresh_token": REFRESH_TOKEN}
            )
        ],
    )
    stale = oauth.Tokens(None, ACCESS_TOKEN, REFRESH_TOKEN, NOW, GRANTED)
    new = oauth.refresh(client_config, stale)
    assert (new.access_token, new.refresh_token) == ("ya29.new", REFRESH_TOKEN)


# --- Who the user is -------------------------------------------------------------------


def checked(scope=GRANTED, **changed):
    """What id_tokens.check() gives for a token of `scope`: its claims, as the tests' key
    signs them."""
    return {"claims": oidc.claims(CLIENT_ID, ACCESS_TOKEN, scope, **changed)}


def test_identify_asks_the_identity_endpoint_and_reads_the_name_from_the_id_token(
    google, client_config
):
    google.get(
        IDENTITY_URL,
        json=identity_answer(),
        match=[matchers.header_matcher({"Authorization": f"Bearer {ACCESS_TOKEN}"})],
    )
    tokens = oauth.Tokens(None, ACCESS_TOKEN, REFRESH_TOKEN, NOW, GRANTED)
    person = google_health.identify(client_config, tokens, checked())
    assert (person.provider, person.fitbit_id, person.health_user_id, person.name) == (
        "google",
        "7QW2XR",
        HEALTH_ID,
        "Alex Rivera",
    )
    # Kept as userinfo's answer would be, so that the first page need not ask it.
    body, _ = person.answers["/v1/userinfo"]
    assert body == {
        "sub": oidc.SUB,
        "name": "Alex Rivera",
        "given_name": "Alex",
        "family_name": "Rivera",
        "picture": "https://lh3.example/a",
    }
    assert len(calls_to(google, google_health.USERINFO_URL)) == 0


def test_a_profile_granted_but_not_in_the_id_token_leaves_the_name_to_userinfo(
    google, client_config
):
    google.get(IDENTITY_URL, json=identity_answer())
    tokens = oauth.Tokens(None, ACCESS_TOKEN, REFRESH_TOKEN, NOW, GRANTED)
    person = google_health.identify(
        client_config, tokens, checked(name=None, given_name=None, picture=None)
    )
    assert person.name is None and person.answers == {}  # the first page asks userinfo


@pytest.mark.parametrize("profile", ["profile", "https://www.googleapis.com/auth/userinfo.profile"])
def test_profile_is_recognised_however_google_spells_it(profile):
    assert google_health.grants(f"openid {profile} {ACTIVITY}", "profile")
    assert not google_health.grants(f"openid {ACTIVITY}", "profile")


def test_without_profile_the_user_is_known_by_their_fitbit_id(google, client_config):
    google.get(IDENTITY_URL, json=identity_answer())
    tokens = oauth.Tokens(None, ACCESS_TOKEN, REFRESH_TOKEN, NOW, f"openid {ACTIVITY}")
    person = google_health.identify(client_config, tokens, checked(f"openid {ACTIVITY}"))
    assert person.name == "7QW2XR" and person.answers == {}
    assert len(calls_to(google, google_health.USERINFO_URL)) == 0


@pytest.mark.parametrize(
    "scope",
    ["openid profile", f"openid {google_health.HEALTH_SCOPES}location.readonly", ""],
)
def test_without_a_health_scope_the_user_cannot_be_identified(google, client_config, scope):
    tokens = oauth.Tokens(None, ACCESS_TOKEN, REFRESH_TOKEN, NOW, scope)
    with pytest.raises(oauth.Unidentified):
        google_health.identify(client_config, tokens, checked(scope))
    assert len(google.calls) == 0


@pytest.mark.parametrize(
    "identity",
    [
        {"name": "users/me/identity"},
        {"healthUserId": ""},
        {"healthUserId": "x" * 64},
        {"healthUserId": "has spaces"},
        {"healthUserId": HEALTH_ID, "legacyUserId": "<b>"},
        {"healthUserId": HEALTH_ID, "legacyUserId": 7},
    ],
)
def test_a_malformed_identity_is_refused(google, client_config, identity):
    google.get(IDENTITY_URL, json=identity)
    tokens = oauth.Tokens(None, ACCESS_TOKEN, REFRESH_TOKEN, NOW, GRANTED)
    with pytest.raises(oauth.BadResponse):
        google_health.identify(client_config, tokens, checked())


# --- Errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, body, expected, error_type",
    [
        (401, rpc_status(401, "UNAUTHENTICATED"), oauth.TokenRejected, "UNAUTHENTICATED"),
        (
            403,
            rpc_status(403, "PERMISSION_DENIED", "ACCESS_TOKEN_SCOPE_INSUFFICIENT"),
            oauth.ScopeMissing,
            "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
        ),
        (
            400,
            rpc_status(400, "FAILED_PRECONDITION", "ACCOUNT_NOT_LINKED"),
            oauth.ProviderError,
            "ACCOUNT_NOT_LINKED",
        ),
        (403, rpc_status(403, "PERMISSION_DENIED"), oauth.ProviderError, "PERMISSION_DENIED"),
        (429, rpc_status(429, "RESOURCE_EXHAUSTED"), oauth.RateLimited, "RESOURCE_EXHAUSTED"),
        (500, rpc_status(500, "INTERNAL"), oauth.ProviderUnavailable, "INTERNAL"),
        (503, rpc_status(503, "UNAVAILABLE"), oauth.ProviderUnavailable, "UNAVAILABLE"),
        (400, {"error": "invalid_grant"}, oauth.ProviderError, "invalid_grant"),
        (401, {"error": "invalid_client"}, oauth.ProviderError, "invalid_client"),
        (502, "<html>bad gateway</html>", oauth.ProviderUnavailable, "unknown"),
        (400, {"error": {"details": "not a list"}}, oauth.ProviderError, "unknown"),
    ],
)
def test_each_documented_error_becomes_the_apps_exception(status, body, expected, error_type):
    response = fake_response(status, body)
    error = google_health.error_from_response(response)
    assert type(error) is expected and error.error_type == error_type
    assert "see the docs" not in str(error)  # Google's own words never reach the text


def fake_response(status, body, headers=None):
    response = requests.Response()
    response.status_code = status
    response._content = (body if isinstance(body, str) else json.dumps(body)).encode()
    response.headers.update(headers or {})
    return response


def test_a_401_with_only_the_www_authenticate_challenge_is_a_rejected_token():
    challenge = 'Bearer realm="https://accounts.google.com/", error="invalid_token"'
    response = fake_response(401, "", {"WWW-Authenticate": challenge})
    assert isinstance(google_health.error_from_response(response), oauth.TokenRejected)


def test_quota_errors_wait_a_minute_or_what_retry_after_says():
    with freeze_time(NOW):
        plain = google_health.error_from_response(fake_response(429, {}))
        told = google_health.error_from_response(fake_response(429, {}, {"Retry-After": "120"}))
        absurd = google_health.error_from_response(
            fake_response(429, {}, {"Retry-After": "9" * 30})
        )
    assert plain.reset_at == NOW + timedelta(minutes=1)
    assert told.reset_at == NOW + timedelta(minutes=2)
    assert absurd.reset_at == NOW + timedelta(minutes=1)


def test_an_expired_access_token_is_refreshed_once_and_the_call_retried(google, client_config):
    store = MemoryStore(oauth.Tokens(None, "ya29.old", REFRESH_TOKEN, NOW + timedelta(hours=1), ""))
    google.post(
        STEPS_URL,
        status=401,
        json=rpc_status(401, "UNAUTHENTICATED"),
        match=[matchers.header_matcher({"Authorization": "Bearer ya29.old"})],
    )
    google.post(
        google_health.TOKEN_URL, json=token_answer(access_token="ya29.new", refresh_token=None)
    )
    google.post(
        STEPS_URL,
        json=rollup_answer(),
        match=[matchers.header_matcher({"Authorization": "Bearer ya29.new"})],
    )
    with freeze_time(NOW):
        request = google_health.steps_request(client_config, NOW.date())
        body, _ = oauth.ApiClient(client_config, store, "k").call(request)
    assert google_health.read_steps(body)[-1] == (date(2026, 11, 15), 8123)
    assert (store.tokens.access_token, store.tokens.refresh_token) == ("ya29.new", REFRESH_TOKEN)
    assert len(calls_to(google, google_health.TOKEN_URL)) == 1


def test_threads_needing_a_refresh_make_one_token_post(google, client_config):
    """Google's refresh token stays the same, so the others must notice the new access
    token, not a new refresh token, or each would refresh again after the first."""
    threads_count = 8
    store = MemoryStore(oauth.Tokens(None, "ya29.old", REFRESH_TOKEN, NOW, GRANTED))

    def token_endpoint(request):
        # Held until every thread has read the expiring tokens.
        for _ in range(10_000):
            if store.loads >= threads_count:
                break
            threading.Event().wait(0.001)
        return 200, {}, json.dumps(token_answer(access_token="ya29.new", refresh_token=None))

    google.add_callback("POST", google_health.TOKEN_URL, callback=token_endpoint)
    google.get(google_health.USERINFO_URL, json=userinfo_answer())
    request = google_health.profile_request(client_config)
    errors = []

    def view():
        try:
            oauth.ApiClient(client_config, store, "k").call(request)
        except Exception as error:  # surfaced by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=view) for _ in range(threads_count)]
    with freeze_time(NOW):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert len(calls_to(google, google_health.TOKEN_URL)) == 1
    bearers = {c.request.headers["Authorization"] for c in calls_to(google, request.url)}
    assert bearers == {"Bearer ya29.new"}
    assert store.tokens.refresh_token == REFRESH_TOKEN


def test_revoke_sends_the_token_alone_and_takes_an_already_dead_one_as_done(google, client_config):
    google.post(
        google_health.REVOKE_URL,
        json={},
        match=[matchers.urlencoded_params_matcher({"token": REFRESH_TOKEN})],
    )
    oauth.revoke(client_config, REFRESH_TOKEN)
    assert "Authorization" not in google.calls[0].request.headers
    google.replace("POST", google_health.REVOKE_URL, status=400, json={"error": "invalid_token"})
    oauth.revoke(client_config, REFRESH_TOKEN)  # already dead: what was wanted
    google.replace("POST", google_health.REVOKE_URL, status=400, json={"error": "invalid_request"})
    with pytest.raises(oauth.ProviderError):
        oauth.revoke(client_config, REFRESH_TOKEN)


# --- The daily roll-up -----------------------------------------------------------------


def test_the_roll_up_asks_for_the_thirty_days_to_today_as_the_doc_shows(client_config):
    request = google_health.steps_request(client_config, date(2026, 11, 15))
    assert (request.method, request.url) == ("POST", STEPS_URL)
    assert request.json == {
        "range": {
            "start": {"date": {"year": 2026, "month": 10, "day": 17}},
            "end": {"date": {"year": 2026, "month": 11, "day": 16}},
        },
        "windowSizeDays": 1,
    }


def test_roll_up_points_become_days_oldest_first_with_zeros_filled_in():
    answer = rollup_answer(counts=("8123", None, "4200", "0"))
    del answer["rollupDataPoints"][2]  # a day left out altogether
    assert google_health.read_steps(answer) == [
        (date(2026, 11, 12), 0),
        (date(2026, 11, 13), 0),
        (date(2026, 11, 14), 0),
        (date(2026, 11, 15), 8123),
    ]
    assert google_health.read_steps({}) == []  # proto3 leaves an empty list out


@pytest.mark.parametrize(
    "answer",
    [
        {"rollupDataPoints": "none"},
        rollup_answer(counts=("-5",)),
        rollup_answer(counts=("8.5",)),
        rollup_answer(counts=(True,)),
        {"rollupDataPoints": [{"civilStartTime": {"date": {"year": 2026, "month": 13, "day": 1}}}]},
        {"rollupDataPoints": [{"steps": {"countSum": "5"}}]},
        {"rollupDataPoints": ["x"]},
    ],
)
def test_an_unreadable_roll_up_is_a_bad_response(answer):
    with pytest.raises(oauth.BadResponse):
        google_health.read_steps(answer)


def test_an_absurd_count_is_capped():
    assert google_health.read_steps(rollup_answer(counts=("9" * 25,)))[0][1] == 1_000_000


# --- The app in Google's dialect ---------------------------------------------------------


def test_sign_in_stores_a_google_user_and_shows_the_greeting_and_chart(browser, google):
    with freeze_time(NOW):
        response = sign_in(browser, google)
        assert response.status_code == 302 and response.headers["Location"] == "/"
        home = page(browser.get("/"))
    assert "You are signed in with Google Health." in home
    assert "Hello, Alex Rivera" in home and "8,123" in home and "steps today" in home
    user = User.get()
    assert (user.provider, user.fitbit_id, user.health_user_id) == ("google", "7QW2XR", HEALTH_ID)
    assert held(user).refresh_token == REFRESH_TOKEN
    # The name and picture came in the ID token: userinfo was never asked, and the first
    # page asked only for the steps.
    assert len(calls_to(google, google_health.USERINFO_URL)) == 0
    assert len(calls_to(google, STEPS_URL)) == 1
    for secret in SECRETS:
        assert secret not in home


def test_a_sign_in_without_any_health_scope_stores_nothing_and_says_why(browser, google):
    google.post(google_health.REVOKE_URL, json={})
    query = start(browser)
    google.post(google_health.TOKEN_URL, json=token_answer(scope="openid profile"))
    response = browser.get(
        "/auth/callback", query_string={"code": AUTH_CODE, "state": query["state"]}
    )
    assert response.status_code == 403
    assert "No health data allowed" in page(response) and "Nothing was stored" in page(response)
    assert User.select().count() == 0
    assert len(calls_to(google, IDENTITY_URL)) == 0
    # Without a Health scope nothing can say whose the tokens are, and at Google a revoke
    # would end the whole grant, maybe one in use here: they are dropped, not revoked.
    # (They read no health data.)
    assert calls_to(google, google_health.REVOKE_URL) == []


def test_without_a_refresh_token_anywhere_the_browser_is_asked_to_consent_again(browser, google):
    google.post(google_health.REVOKE_URL, json={})
    response = sign_in(browser, google, refresh_token=None)
    assert response.status_code == 302 and User.select().count() == 0
    home = page(browser.get("/"))
    assert "did not send the token this app needs" in home and "Hello" not in home
    assert start(browser)["prompt"] == "consent"


def test_a_returning_user_is_not_asked_to_consent_and_keeps_their_refresh_token(browser, google):
    sign_in(browser, google)
    query = start(browser)  # still signed in, with a refresh token: no forced consent
    assert "prompt" not in query and query["access_type"] == "offline"
    google.replace(
        "POST",
        google_health.TOKEN_URL,
        json=token_answer(access_token="ya29.b", refresh_token=None),
    )
    browser.get("/auth/callback", query_string={"code": AUTH_CODE, "state": query["state"]})
    user = User.get()
    assert (held(user).access_token, held(user).refresh_token) == ("ya29.b", REFRESH_TOKEN)


def test_an_account_without_a_health_profile_is_explained(browser, google):
    query = start(browser)
    google.post(google_health.TOKEN_URL, json=token_answer())
    google.get(
        IDENTITY_URL, status=400, json=rpc_status(400, "FAILED_PRECONDITION", "ACCOUNT_NOT_LINKED")
    )
    response = browser.get(
        "/auth/callback", query_string={"code": AUTH_CODE, "state": query["state"]}
    )
    assert response.status_code == 400 and "No Google Health profile" in page(response)
    assert User.select().count() == 0


def test_the_tokens_of_an_account_without_a_health_profile_are_handed_back(browser, google):
    """Found by the state machine of tests/test_lifecycle.py: they were left live at Google.
    An account without a Health profile can be nobody's here."""
    google.post(google_health.REVOKE_URL, json={})
    query = start(browser)
    google.post(google_health.TOKEN_URL, json=token_answer())
    google.get(
        IDENTITY_URL, status=400, json=rpc_status(400, "FAILED_PRECONDITION", "ACCOUNT_NOT_LINKED")
    )
    browser.get("/auth/callback", query_string={"code": AUTH_CODE, "state": query["state"]})
    revoked = calls_to(google, google_health.REVOKE_URL)
    assert [call.request.body for call in revoked] == [f"token={REFRESH_TOKEN}"]


def test_a_quota_error_shows_the_last_data_with_a_note(browser, google, monkeypatch):
    with freeze_time(NOW) as clock:
        sign_in(browser, google)
        browser.get("/")
        google.replace("POST", STEPS_URL, status=429, json=rpc_status(429, "RESOURCE_EXHAUSTED"))
        clock.tick(timedelta(minutes=6))  # past the cache
        home = page(browser.get("/"))
        assert "8,123" in home
        assert "limit of 300 requests a minute is used up" in home
        calls = len(calls_to(google, STEPS_URL))
        page(browser.get("/"))  # within the minute, Google is not asked again
        assert len(calls_to(google, STEPS_URL)) == calls


def test_a_sign_in_whose_identity_call_finds_the_quota_spent_says_when_to_try_again(
    browser, google
):
    """Without the identity there is nobody to sign in. The page says when to come back; the
    tokens are not revoked, since a spent quota means this user's grant is in use here, and a
    revoke could end it."""
    with freeze_time(NOW):
        query = start(browser)
        google.post(google_health.TOKEN_URL, json=token_answer())
        google.get(
            IDENTITY_URL,
            status=429,
            json=rpc_status(429, "RESOURCE_EXHAUSTED"),
            headers={"Retry-After": "40"},
        )
        google.post(google_health.REVOKE_URL, json={})
        response = browser.get(
            "/auth/callback", query_string={"code": AUTH_CODE, "state": query["state"]}
        )
    assert response.status_code == 429 and response.headers["Retry-After"] == "40"
    assert "Try again at 12:00 UTC (in 40 seconds)" in page(response)
    assert User.select().count() == 0 and PendingSignIn.select().count() == 0
    assert calls_to(google, google_health.REVOKE_URL) == []
    assert calls_to(google, google_health.USERINFO_URL) == []


def test_tokens_revoked_before_their_first_use_cancel_a_google_sign_in(browser, google):
    """The code was redeemed twice, and Google revoked what it issued: the identity call
    finds the new access token dead. Not a failure of Google's: nothing is stored, and the
    page asks for a new sign-in."""
    query = start(browser)
    google.post(google_health.TOKEN_URL, json=token_answer())
    challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    google.get(IDENTITY_URL, status=401, json=rpc_status(401, "UNAUTHENTICATED"), headers=challenge)
    response = browser.get(
        "/auth/callback", query_string={"code": AUTH_CODE, "state": query["state"]}
    )
    assert response.status_code == 400 and "Sign-in cancelled" in page(response)
    assert User.select().count() == 0
    assert calls_to(google, google_health.USERINFO_URL) == []


def test_a_returning_user_whose_userinfo_fails_keeps_the_name_kept_before(browser, google):
    sign_in(browser, google)
    assert User.get().display_name == "Alex Rivera"
    google.replace("GET", google_health.USERINFO_URL, status=503, json=rpc_status(503, "X"))
    assert sign_in(browser, google).status_code == 302
    assert User.get().display_name == "Alex Rivera"


def test_a_scope_google_refuses_gives_a_note_not_an_error(browser, google):
    with freeze_time(NOW) as clock:
        sign_in(browser, google)
        google.replace(
            "POST",
            STEPS_URL,
            status=403,
            json=rpc_status(403, "PERMISSION_DENIED", "ACCESS_TOKEN_SCOPE_INSUFFICIENT"),
        )
        clock.tick(timedelta(minutes=6))
        response = browser.get("/")
    assert response.status_code == 200
    # The scope was granted, as far as the app knew: the line says so, and the steps panel
    # asks for what Google refused.
    assert "your name and picture, your steps and your workouts." in page(response)
    assert "Show my steps" in page(response) and "<svg" not in page(response)


def test_a_dead_grant_asks_to_connect_again(browser, google):
    with freeze_time(NOW) as clock:
        sign_in(browser, google)
        google.replace(
            "POST",
            google_health.TOKEN_URL,
            status=400,
            json={
                "error": "invalid_grant",
                "error_description": "Token has been expired or revoked.",
            },
        )
        clock.tick(timedelta(hours=2))
        home = page(browser.get("/"))
    assert "Google Health no longer accepts this app" in home and "Connect again" in home
    assert not User.get().connected and ApiCache.select().count() == 0
    assert "Token has been expired" not in home


def test_disconnect_revokes_at_google(browser, google):
    sign_in(browser, google)
    google.post(google_health.REVOKE_URL, json={})
    token = re.search(r'name="csrf_token" value="([^"]+)"', page(browser.get("/"))).group(1)
    browser.post("/auth/revoke", data={"csrf_token": token})
    assert "Disconnected. Google Health has revoked" in page(browser.get("/"))
    assert calls_to(google, google_health.REVOKE_URL)[0].request.body == f"token={REFRESH_TOKEN}"
    assert not User.get().connected


def test_state_and_pkce_hold_in_googles_dialect_too(app, browser, google):
    query = start(browser)
    other = Client(app)
    start(other)
    # The callback from another browser, with this one's state, gets nowhere.
    response = other.get(
        "/auth/callback", query_string={"code": AUTH_CODE, "state": query["state"]}
    )
    assert response.status_code == 400 and len(google.calls) == 0
    assert query["code_challenge"] == oauth.code_challenge(
        PendingSignIn.get(PendingSignIn.state == query["state"]).code_verifier
    )
    sign_in(browser, google)
    replayed = {"code": AUTH_CODE, "state": query["state"]}
    assert Client(app).get("/auth/callback", query_string=replayed).status_code == 400
    # The browser that signed in is sent home, with nothing exchanged.
    again = browser.get("/auth/callback", query_string=replayed)
    assert again.status_code == 302 and again.headers["Location"] == "/"
    assert "already signed in with Google Health" in page(browser.get("/"))
    assert len(calls_to(google, google_health.TOKEN_URL)) == 1


def test_the_log_of_a_google_sign_in_names_the_user_and_no_secret(browser, google, caplog):
    caplog.set_level(logging.DEBUG)
    sign_in(browser, google)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert f"Google Health user {HEALTH_ID}: signed in" in logged
    for secret in SECRETS:
        assert secret not in logged


# --- Configuration ---------------------------------------------------------------------


def test_a_failing_userinfo_does_not_stop_the_sign_in(browser, google):
    # An ID token without the name, though profile was granted: the page asks userinfo.
    query = start(browser)
    nameless = {"name": None, "given_name": None, "family_name": None, "picture": None}
    google.post(google_health.TOKEN_URL, json=token_answer(claims=nameless))
    google.get(IDENTITY_URL, json=identity_answer())
    google.get(google_health.USERINFO_URL, status=503, json=rpc_status(503, "UNAVAILABLE"))
    google.post(STEPS_URL, json=rollup_answer())
    response = browser.get(
        "/auth/callback", query_string={"code": AUTH_CODE, "state": query["state"]}
    )
    assert response.status_code == 302
    assert User.get().display_name == "7QW2XR"  # the Fitbit id stands in for the name


# --- docs/security.md in Google's dialect ---------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "code=abc",
        "state={state}",
        "code=a&code=b&state={state}",
        "code=" + "a" * 513 + "&state={state}",
        "code=%FF&state={state}",
        "code=abc&state=%C3%A9{state}",
        "code=a%00b&state={state}",
    ],
)
def test_bad_callback_input_is_a_400_without_a_token_request_in_googles_dialect(
    browser, google, query
):
    state = start(browser)["state"]
    response = browser.get("/auth/callback?" + query.replace("{state}", state))
    assert response.status_code == 400 and len(google.calls) == 0


def test_the_callback_tolerates_googles_extra_parameters(browser, google):
    query = start(browser)
    google.post(google_health.TOKEN_URL, json=token_answer())
    google.get(IDENTITY_URL, json=identity_answer())
    google.get(google_health.USERINFO_URL, json=userinfo_answer())
    extra = {
        "scope": GRANTED,
        "authuser": "0",
        "prompt": "consent",
        "iss": "https://accounts.google.com",
    }
    response = browser.get(
        "/auth/callback", query_string={"code": AUTH_CODE, "state": query["state"], **extra}
    )
    assert response.status_code == 302 and User.select().count() == 1
    # The code leaves the address bar, and no page keeps it.
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"


def test_access_denied_in_googles_dialect_says_so_and_shows_no_description(browser, google):
    state = start(browser)["state"]
    response = browser.get(
        "/auth/callback",
        query_string={
            "error": "access_denied",
            "error_description": "<b>words</b>",
            "state": state,
        },
    )
    assert response.status_code == 302 and len(google.calls) == 0
    home = page(browser.get("/"))
    assert "You chose not to connect your Google Health account" in home
    assert "words" not in home
    again = browser.get("/auth/callback", query_string={"code": AUTH_CODE, "state": state})
    assert again.status_code == 400  # the sign-in is used up


def test_a_google_sign_in_expires_after_ten_minutes(browser, google):
    with freeze_time(NOW) as clock:
        state = start(browser)["state"]
        clock.tick(timedelta(minutes=10, seconds=1))
        response = browser.get("/auth/callback", query_string={"code": AUTH_CODE, "state": state})
    assert response.status_code == 400 and len(google.calls) == 0


def test_the_redirect_uri_ignores_the_host_header_in_googles_dialect(browser):
    response = browser.get("/auth", headers={"Host": "evil.example"})
    assert parse_qs(urlsplit(response.headers["Location"]).query)["redirect_uri"] == [REDIRECT_URI]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"body": "<html>Bad gateway</html>", "content_type": "text/html"},
        {"body": '{"access_token": "abc"', "content_type": "application/json"},
        {"json": [token_answer()]},
        {"json": token_answer(access_token="")},
        {"json": {k: v for k, v in token_answer().items() if k != "access_token"}},
        {"json": token_answer(refresh_token="")},
        {"json": token_answer(token_type="mac")},
        {"json": token_answer(expires_in="3599")},
        {"json": token_answer(expires_in=0)},
        {"json": token_answer(expires_in=1e300)},
        {"json": token_answer(scope=["openid"])},
    ],
)
def test_a_malformed_google_token_answer_stores_nothing(browser, google, kwargs):
    query = start(browser)
    google.post(google_health.TOKEN_URL, **kwargs)
    response = browser.get(
        "/auth/callback", query_string={"code": AUTH_CODE, "state": query["state"]}
    )
    assert response.status_code == 502 and "Unexpected answer from Google Health" in page(response)
    assert User.select().count() == 0 and len(google.calls) == 1


@pytest.mark.parametrize(
    "kwargs, title",
    [
        ({"body": requests.ConnectionError()}, "Google Health is unavailable"),
        (
            {"status": 503, "json": {"error": "temporarily_unavailable"}},
            "Google Health is unavailable",
        ),
        ({"status": 401, "json": {"error": "invalid_client"}}, "did not recognise this app"),
        ({"status": 400, "json": {"error": "invalid_grant"}}, "Sign-in expired"),
    ],
)
def test_google_token_endpoint_failures_give_a_clear_page_and_no_retry(
    browser, google, kwargs, title
):
    query = start(browser)
    google.post(google_health.TOKEN_URL, **kwargs)
    response = browser.get(
        "/auth/callback", query_string={"code": AUTH_CODE, "state": query["state"]}
    )
    assert response.status_code in (400, 502) and title in page(response)
    assert len(calls_to(google, google_health.TOKEN_URL)) == 1
    if "recognise" in title:
        assert "Check GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET." in page(response)


def test_a_second_unauthenticated_answer_is_an_error(google, client_config):
    store = MemoryStore(oauth.Tokens(None, "ya29.old", REFRESH_TOKEN, NOW + timedelta(hours=1), ""))
    google.post(STEPS_URL, status=401, json=rpc_status(401, "UNAUTHENTICATED"))
    google.post(
        google_health.TOKEN_URL, json=token_answer(access_token="ya29.new", refresh_token=None)
    )
    with freeze_time(NOW), pytest.raises(oauth.TokenRejected):
        oauth.ApiClient(client_config, store, "k").call(
            google_health.steps_request(client_config, NOW.date())
        )
    assert (
        len(calls_to(google, google_health.TOKEN_URL)) == 1
        and len(calls_to(google, STEPS_URL)) == 2
    )


def test_health_user_ids_are_compared_exactly(tmp_path):
    open_database(f"sqlite:///{tmp_path / 'ids.db'}")
    tokens = oauth.Tokens(None, "a", "r", NOW, GRANTED)
    upper = token_store.sign_in(dialects.Person("google", None, "hu-ABC", "Upper"), tokens)
    lower = token_store.sign_in(dialects.Person("google", None, "hu-abc", "Lower"), tokens)
    assert upper.id != lower.id and User.select().count() == 2


def test_sessions_csrf_and_headers_are_the_same_in_googles_dialect(app, browser, google):
    response = browser.get("/auth")
    cookie = response.headers["Set-Cookie"]
    for attribute in ("HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="):
        assert attribute in cookie
    sign_in(browser, google)
    google.post(google_health.REVOKE_URL, json={})
    refused = browser.post("/auth/revoke", data={"csrf_token": "forged"})
    assert (
        refused.status_code == 403
        and User.get().connected
        and len(calls_to(google, google_health.REVOKE_URL)) == 0
    )
    for path in ("/", "/users", "/trace", "/nowhere"):
        headers = browser.get(path).headers
        assert headers["Content-Security-Policy"].startswith("default-src 'self'")
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Cache-Control"] == "no-store"


def test_the_google_stand_in_answers_carry_the_security_headers(tmp_path):
    import requests

    with running_app(tmp_path, provider="google") as (url, _):
        answers = [
            requests.get(url + "/sandbox/google/o/oauth2/v2/auth?client_id=x", timeout=10),
            requests.get(url + "/sandbox/google/v4/users/me/identity", timeout=10),
            requests.post(url + "/sandbox/google/token", timeout=10),
            requests.get(url + "/sandbox/google/avatars/hu-4f1e9c2a7b.svg", timeout=10),
        ]
    assert [a.status_code for a in answers] == [400, 401, 400, 200]
    for answer in answers:
        assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["Cache-Control"] == "no-store"


def test_tokens_of_the_other_dialect_are_never_sent(app, browser, google):
    """Alex connected through the legacy Fitbit API; the app now speaks Google's dialect."""
    sign_in(browser, google)
    fitbit_tokens = oauth.Tokens("7QW2XR", "fitbit-access", "fitbit-refresh", NOW, "activity")
    User.update(
        provider="fitbit", access_token="fitbit-access", refresh_token="fitbit-refresh"
    ).execute()
    ApiCache.delete().execute()
    before = len(google.calls)
    home = page(browser.get("/"))
    assert "You connected through the legacy Fitbit Web API" in home
    assert 'href="/auth">Connect again' in home
    # The lines under the buttons name Fitbit, whose tokens these are, not Google Health.
    assert "The app keeps its access to your data at Fitbit." in home
    assert "Your Fitbit tokens here are deleted." in home
    assert "Google Health revokes" not in home
    token = re.search(r'name="csrf_token" value="([^"]+)"', home).group(1)
    browser.post("/auth/revoke", data={"csrf_token": token})
    after = page(browser.get("/"))
    assert "https://www.fitbit.com/settings/applications" in after  # where to revoke it
    assert len(google.calls) == before  # neither the page nor Disconnect sent them anywhere
    assert not User.get().connected and fitbit_tokens.refresh_token not in after


@pytest.mark.parametrize(
    "iss",
    ["https://accounts.google.com/", "https://attacker.example", "http://accounts.google.com"],
)
def test_a_callback_from_another_issuer_is_refused_before_any_token_request(browser, google, iss):
    """RFC 9207's defence against mix-up: the code of another authorization server's answer
    is never sent to Google's token endpoint, nor anyone else's."""
    query = start(browser)
    response = browser.get(
        "/auth/callback", query_string={"code": AUTH_CODE, "state": query["state"], "iss": iss}
    )
    assert response.status_code == 400
    assert f"says it came from {iss}, not from Google Health" in page(response)
    assert len(google.calls) == 0 and User.select().count() == 0
