"""oauth.py on its own: the requests it sends to Fitbit and what it makes of the answers."""

import base64
import dataclasses
import json
import re
import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from conftest import (
    ACCESS_TOKEN,
    AUTH_CODE,
    CLIENT_ID,
    CLIENT_SECRET,
    PROFILE_URL,
    REDIRECT_URI,
    REFRESH_TOKEN,
    fitbit_error,
    profile_body,
    token_body,
)
from freezegun import freeze_time
from responses import matchers

import fitbit_legacy
import oauth

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def stored_tokens(expires_at=NOW + timedelta(hours=8), refresh_token="old-refresh"):
    return oauth.Tokens(
        user_id="ABC123",
        access_token="old-access",
        refresh_token=refresh_token,
        expires_at=expires_at,
        scope="activity profile",
    )


PROFILE = oauth.ApiRequest("GET", PROFILE_URL)


class MemoryStore:
    """An oauth.TokenStore in memory for one user, with the users table's conditional
    writes (compare and swap on the access token), counting how often it is read."""

    def __init__(self, tokens):
        self.tokens = tokens
        self.lease = None  # (id, until)
        self.loads = 0
        self.lock = threading.Lock()

    def load(self, key):
        with self.lock:
            self.loads += 1
            return self.tokens

    def holds(self, tokens):
        return self.tokens is not None and self.tokens.access_token == tokens.access_token

    def take_lease(self, key, tokens, until):
        with self.lock:
            if not self.holds(tokens) or (self.lease and self.lease[1] > datetime.now(UTC)):
                return None
            self.lease = (f"lease-{self.loads}", until)
            return self.lease[0]

    def release(self, key, lease):
        with self.lock:
            if self.lease and self.lease[0] == lease:
                self.lease = None

    def replace(self, key, old, new):
        with self.lock:
            if not self.holds(old):
                return False
            self.tokens, self.lease = new, None
            return True

    def forget(self, key, dead):
        with self.lock:
            if self.tokens is None or self.tokens.refresh_token != dead.refresh_token:
                return False
            self.tokens, self.lease = None, None
            return True


# --- Step 1 ----------------------------------------------------------------------------


def test_authorize_url_carries_every_parameter_fitbit_needs(client_config):
    url = oauth.authorize_url(client_config, "the-state", "v" * 43)
    parts = urlsplit(url)
    assert (
        f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://www.fitbit.com/oauth2/authorize"
    )
    assert {k: v[0] for k, v in parse_qs(parts.query).items()} == {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": "activity profile",
        "state": "the-state",
        "code_challenge": oauth.code_challenge("v" * 43),
        "code_challenge_method": "S256",
    }


def test_code_challenge_matches_the_rfc_7636_test_vector():
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert oauth.code_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_code_verifier_is_43_to_128_unreserved_characters():
    for _ in range(100):
        assert re.fullmatch(r"[A-Za-z0-9\-._~]{43,128}", oauth.new_code_verifier())


def test_state_is_unguessable_and_never_repeats():
    states = {oauth.new_state() for _ in range(1000)}
    assert len(states) == 1000
    # 43 base64url characters carry 256 bits; security.md asks for at least 128.
    assert all(len(state) >= 43 for state in states)


# --- Step 2 ----------------------------------------------------------------------------


def test_token_request_is_exactly_what_fitbit_expects(fitbit, client_config):
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    fitbit.post(
        fitbit_legacy.TOKEN_URL,
        json=token_body(),
        match=[
            matchers.header_matcher(
                {
                    "Authorization": f"Basic {basic}",
                    "Content-Type": "application/x-www-form-urlencoded",
                }
            ),
            matchers.urlencoded_params_matcher(
                {
                    "grant_type": "authorization_code",
                    "code": AUTH_CODE,
                    "redirect_uri": REDIRECT_URI,
                    "code_verifier": "the-verifier",
                    "client_id": CLIENT_ID,
                },
                allow_blank=False,
            ),
        ],
    )
    with freeze_time(NOW):
        tokens = oauth.exchange_code(client_config, AUTH_CODE, "the-verifier")

    assert tokens.access_token == ACCESS_TOKEN
    assert tokens.refresh_token == REFRESH_TOKEN
    assert tokens.user_id == "ABC123"
    assert tokens.scope == "activity profile"
    assert tokens.expires_at == NOW + timedelta(seconds=28800)
    (call,) = fitbit.calls
    assert CLIENT_SECRET not in call.request.body  # Basic auth only, never the body
    assert call.request.req_kwargs["timeout"] == oauth.TIMEOUT


def test_every_outbound_request_has_a_timeout(fitbit, client_config):
    fitbit.post(fitbit_legacy.TOKEN_URL, json=token_body())
    fitbit.get(PROFILE_URL, json=profile_body())
    fitbit.post(fitbit_legacy.REVOKE_URL, json={})
    oauth.exchange_code(client_config, AUTH_CODE, "the-verifier")
    oauth.api_call(client_config, PROFILE, ACCESS_TOKEN)
    oauth.revoke(client_config, REFRESH_TOKEN)
    assert [call.request.req_kwargs["timeout"] for call in fitbit.calls] == [oauth.TIMEOUT] * 3


def test_token_request_does_not_follow_a_redirect(fitbit, client_config):
    fitbit.post(
        fitbit_legacy.TOKEN_URL, status=307, headers={"Location": "https://evil.example/token"}
    )
    with pytest.raises(oauth.ProviderError):
        oauth.exchange_code(client_config, AUTH_CODE, "v")
    assert len(fitbit.calls) == 1


@pytest.mark.parametrize(
    "failure",
    [requests.ConnectTimeout(), requests.ReadTimeout(), requests.ConnectionError()],
)
def test_token_request_failure_is_unavailable_and_not_retried(fitbit, client_config, failure):
    fitbit.post(fitbit_legacy.TOKEN_URL, body=failure)
    with pytest.raises(oauth.ProviderUnavailable):
        oauth.exchange_code(client_config, AUTH_CODE, "v")
    assert len(fitbit.calls) == 1


def test_granted_scope_may_differ_from_the_requested_one(fitbit, client_config):
    fitbit.post(fitbit_legacy.TOKEN_URL, json=token_body(scope="profile"))
    assert oauth.exchange_code(client_config, AUTH_CODE, "v").scope == "profile"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"body": "<html><body>Bad gateway</body></html>", "content_type": "text/html"},
        {"body": '{"access_token": "abc"', "content_type": "application/json"},
        {"json": [token_body()]},
        {"json": token_body(access_token=None)},
        {"json": {k: v for k, v in token_body().items() if k != "access_token"}},
        {"json": {k: v for k, v in token_body().items() if k != "refresh_token"}},
        {"json": {k: v for k, v in token_body().items() if k != "user_id"}},
        {"json": token_body(access_token="")},
        {"json": token_body(token_type="mac")},
        {"json": {k: v for k, v in token_body().items() if k != "token_type"}},
        {"json": {k: v for k, v in token_body().items() if k != "expires_in"}},
        {"json": token_body(expires_in="28800")},
        {"json": token_body(expires_in=True)},
        {"json": token_body(expires_in=0)},
        {"json": token_body(expires_in=-5)},
        {"json": token_body(scope=["activity"])},
        {"json": token_body(expires_in=1e300)},
        {"body": json.dumps(token_body()).replace("28800", "NaN")},
        {"body": json.dumps(token_body()).replace("28800", "Infinity")},
    ],
    ids=[
        "html",
        "malformed-json",
        "json-array",
        "access-token-null",
        "no-access-token",
        "no-refresh-token",
        "no-user-id",
        "empty-access-token",
        "token-type-mac",
        "no-token-type",
        "no-expires-in",
        "expires-in-string",
        "expires-in-bool",
        "expires-in-zero",
        "expires-in-negative",
        "scope-not-string",
        "expires-in-huge",
        "expires-in-nan",
        "expires-in-infinity",
    ],
)
def test_malformed_token_response_is_rejected(fitbit, client_config, kwargs):
    fitbit.post(fitbit_legacy.TOKEN_URL, **kwargs)
    with pytest.raises(oauth.BadResponse):
        oauth.exchange_code(client_config, AUTH_CODE, "v")


def test_token_type_is_compared_case_insensitively(fitbit, client_config):
    fitbit.post(fitbit_legacy.TOKEN_URL, json=token_body(token_type="bearer"))
    assert oauth.exchange_code(client_config, AUTH_CODE, "v").access_token == ACCESS_TOKEN


# --- Fitbit's errors -------------------------------------------------------------------


def test_tokens_never_show_their_secrets_in_repr():
    tokens = stored_tokens()
    assert "old-access" not in repr(tokens) and "old-refresh" not in repr(tokens)
    assert CLIENT_SECRET not in repr(
        oauth.Client(fitbit_legacy, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI)
    )


# --- Refresh ---------------------------------------------------------------------------


def refresh_answer(**overrides):
    return token_body(access_token="new-access", refresh_token="new-refresh", **overrides)


def test_refresh_sends_the_refresh_token_and_rotates_the_pair(fitbit, client_config):
    store = MemoryStore(stored_tokens(expires_at=NOW))
    fitbit.post(
        fitbit_legacy.TOKEN_URL,
        json=refresh_answer(),
        match=[
            matchers.urlencoded_params_matcher(
                {"grant_type": "refresh_token", "refresh_token": "old-refresh"}
            )
        ],
    )
    fitbit.get(PROFILE_URL, json=profile_body())
    with freeze_time(NOW):
        oauth.ApiClient(client_config, store, "ABC123").call(PROFILE)
    assert store.tokens.access_token == "new-access"
    assert store.tokens.refresh_token == "new-refresh"
    assert store.tokens.expires_at == NOW + timedelta(seconds=28800)
    assert fitbit.calls[1].request.headers["Authorization"] == "Bearer new-access"


def test_a_pair_bought_while_the_user_disconnected_is_handed_back(fitbit, client_config):
    """The user disconnects (the row's tokens are taken) while a refresh is at the token
    endpoint: nobody holds the new pair it brings, so it is revoked, not left live."""
    store = MemoryStore(stored_tokens(expires_at=NOW))

    def disconnected_meanwhile(request):
        store.tokens = None  # token_store.take_tokens, in another request
        return 200, {}, json.dumps(refresh_answer())

    fitbit.add_callback("POST", fitbit_legacy.TOKEN_URL, callback=disconnected_meanwhile)
    fitbit.post(
        fitbit_legacy.REVOKE_URL,
        json={},
        match=[matchers.urlencoded_params_matcher({"token": "new-refresh"})],
    )
    with freeze_time(NOW), pytest.raises(oauth.ReconnectNeeded):
        oauth.ApiClient(client_config, store, "ABC123").call(PROFILE)
    assert [call.request.url for call in fitbit.calls][-1] == fitbit_legacy.REVOKE_URL
    assert store.tokens is None


def test_new_pair_is_stored_before_it_is_used(fitbit, client_config):
    store = MemoryStore(stored_tokens(expires_at=NOW))
    fitbit.post(fitbit_legacy.TOKEN_URL, json=refresh_answer())
    seen_in_store = []

    def profile(request):
        seen_in_store.append(store.tokens.access_token)
        return 200, {}, '{"user": {"displayName": "Alex"}}'

    fitbit.add_callback("GET", PROFILE_URL, callback=profile)
    with freeze_time(NOW):
        oauth.ApiClient(client_config, store, "ABC123").call(PROFILE)
    assert seen_in_store == ["new-access"]


def test_refresh_without_a_new_refresh_token_keeps_the_old_one(fitbit, client_config):
    store = MemoryStore(stored_tokens(expires_at=NOW))
    body = {k: v for k, v in refresh_answer().items() if k != "refresh_token"}
    fitbit.post(fitbit_legacy.TOKEN_URL, json=body)
    fitbit.get(PROFILE_URL, json=profile_body())
    with freeze_time(NOW):
        oauth.ApiClient(client_config, store, "ABC123").call(PROFILE)
    assert store.tokens.access_token == "new-access"
    assert store.tokens.refresh_token == "old-refresh"


def test_refresh_for_another_user_id_is_rejected(fitbit, client_config):
    store = MemoryStore(stored_tokens(expires_at=NOW))
    fitbit.post(fitbit_legacy.TOKEN_URL, json=refresh_answer(user_id="XYZ999"))
    with freeze_time(NOW), pytest.raises(oauth.BadResponse):
        oauth.ApiClient(client_config, store, "ABC123").call(PROFILE)
    assert store.tokens.refresh_token == "old-refresh"


@pytest.mark.parametrize(
    "now, refreshes",
    [
        (NOW - oauth.REFRESH_LEEWAY - timedelta(seconds=1), 0),
        (NOW - oauth.REFRESH_LEEWAY, 1),
    ],
    ids=["one-second-before-the-leeway", "at-the-leeway"],
)
def test_tokens_are_refreshed_ahead_of_expiry(fitbit, client_config, now, refreshes):
    store = MemoryStore(stored_tokens(expires_at=NOW))
    fitbit.post(fitbit_legacy.TOKEN_URL, json=refresh_answer())
    fitbit.get(PROFILE_URL, json=profile_body())
    with freeze_time(now):
        oauth.ApiClient(client_config, store, "ABC123").call(PROFILE)
    assert len([c for c in fitbit.calls if c.request.url == fitbit_legacy.TOKEN_URL]) == refreshes


def test_expired_token_answer_refreshes_once_and_retries_once(fitbit, client_config):
    store = MemoryStore(stored_tokens())
    fitbit.get(
        PROFILE_URL,
        status=401,
        json=fitbit_error("expired_token"),
        match=[matchers.header_matcher({"Authorization": "Bearer old-access"})],
    )
    fitbit.get(
        PROFILE_URL,
        json=profile_body("Sam"),
        match=[matchers.header_matcher({"Authorization": "Bearer new-access"})],
    )
    fitbit.post(fitbit_legacy.TOKEN_URL, json=refresh_answer())
    with freeze_time(NOW):
        body, _ = oauth.ApiClient(client_config, store, "ABC123").call(PROFILE)
    assert body["user"]["displayName"] == "Sam"
    assert [c.request.method for c in fitbit.calls] == ["GET", "POST", "GET"]


def test_a_second_expired_token_answer_is_an_error(fitbit, client_config):
    store = MemoryStore(stored_tokens())
    fitbit.get(PROFILE_URL, status=401, json=fitbit_error("expired_token"))
    fitbit.post(fitbit_legacy.TOKEN_URL, json=refresh_answer())
    with freeze_time(NOW), pytest.raises(oauth.ProviderError) as raised:
        oauth.ApiClient(client_config, store, "ABC123").call(PROFILE)
    assert raised.value.error_type == "expired_token"
    assert [c.request.method for c in fitbit.calls] == ["GET", "POST", "GET"]


def test_invalid_token_after_a_revoke_at_fitbit_asks_to_reconnect(fitbit, client_config):
    store = MemoryStore(stored_tokens())
    fitbit.get(PROFILE_URL, status=401, json=fitbit_error("invalid_token"))
    fitbit.post(fitbit_legacy.TOKEN_URL, status=400, json=fitbit_error("invalid_grant"))
    with freeze_time(NOW), pytest.raises(oauth.ReconnectNeeded):
        oauth.ApiClient(client_config, store, "ABC123").call(PROFILE)
    assert [c.request.method for c in fitbit.calls] == ["GET", "POST"]
    assert store.tokens is None


def test_insufficient_scope_is_not_retried(fitbit, client_config):
    store = MemoryStore(stored_tokens())
    fitbit.get(PROFILE_URL, status=403, json=fitbit_error("insufficient_scope"))
    with freeze_time(NOW), pytest.raises(oauth.ProviderError):
        oauth.ApiClient(client_config, store, "ABC123").call(PROFILE)
    assert len(fitbit.calls) == 1


def test_dead_refresh_token_clears_the_tokens(fitbit, client_config):
    store = MemoryStore(stored_tokens(expires_at=NOW))
    fitbit.post(fitbit_legacy.TOKEN_URL, status=400, json=fitbit_error("invalid_grant"))
    with freeze_time(NOW), pytest.raises(oauth.ReconnectNeeded):
        oauth.ApiClient(client_config, store, "ABC123").call(PROFILE)
    assert store.tokens is None


def test_invalid_grant_after_another_worker_rotated_uses_its_pair(fitbit, client_config):
    store = MemoryStore(stored_tokens(expires_at=NOW))
    rotated = stored_tokens(expires_at=NOW + timedelta(hours=8), refresh_token="their-refresh")

    def token_endpoint(request):
        # Another process spent the same refresh token a moment earlier and stored its pair.
        store.tokens = rotated
        return 400, {}, '{"errors": [{"errorType": "invalid_grant"}], "success": false}'

    fitbit.add_callback("POST", fitbit_legacy.TOKEN_URL, callback=token_endpoint)
    fitbit.get(PROFILE_URL, json=profile_body())
    with freeze_time(NOW):
        oauth.ApiClient(client_config, store, "ABC123").call(PROFILE)
    assert store.tokens is rotated


def test_concurrent_requests_make_exactly_one_refresh(fitbit, client_config):
    threads_count = 8
    store = MemoryStore(stored_tokens(expires_at=NOW))

    def token_endpoint(request):
        # Hold the refresh until every thread has read the expiring tokens, so that
        # without the lease each of them would be here too.
        for _ in range(10_000):
            if store.loads >= threads_count:
                break
            threading.Event().wait(0.001)
        return 200, {}, json.dumps(refresh_answer())

    fitbit.add_callback("POST", fitbit_legacy.TOKEN_URL, callback=token_endpoint)
    fitbit.get(PROFILE_URL, json=profile_body())
    used, errors = [], []

    def one_request():
        try:
            oauth.ApiClient(client_config, store, "ABC123").call(PROFILE)
            used.append(store.tokens.access_token)
        except Exception as error:  # surfaced by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=one_request) for _ in range(threads_count)]
    with freeze_time(NOW):  # freezegun is not thread-safe: freeze once, around them all
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert len([c for c in fitbit.calls if c.request.url == fitbit_legacy.TOKEN_URL]) == 1
    assert used == ["new-access"] * threads_count
    profile_tokens = {c.request.headers["Authorization"] for c in fitbit.calls[1:]}
    assert profile_tokens == {"Bearer new-access"}


def test_a_refresh_under_another_workers_lease_waits_and_uses_its_pair(fitbit, client_config):
    # No token endpoint is registered: a POST from this worker would fail the test.
    store = MemoryStore(stored_tokens(expires_at=NOW))
    store.lease = ("another worker's", NOW + oauth.REFRESH_LEASE)
    theirs = dataclasses.replace(
        stored_tokens(expires_at=NOW + timedelta(hours=8), refresh_token="their-refresh"),
        access_token="their-access",
    )
    fitbit.get(PROFILE_URL, json=profile_body())

    def other_worker_finishes():
        while store.loads < 3:  # this worker has looked, and is waiting
            threading.Event().wait(0.001)
        store.replace("ABC123", store.tokens, theirs)

    finisher = threading.Thread(target=other_worker_finishes)
    with freeze_time(NOW):
        finisher.start()
        oauth.ApiClient(client_config, store, "ABC123").call(PROFILE)
    finisher.join()
    assert [c.request.method for c in fitbit.calls] == ["GET"]
    assert fitbit.calls[0].request.headers["Authorization"] == "Bearer their-access"
    assert store.tokens is theirs


def test_a_lease_left_by_a_dead_worker_holds_refreshes_up_until_it_runs_out(
    fitbit, client_config, monkeypatch
):
    monkeypatch.setattr(oauth, "LEASE_POLLS", 3)
    store = MemoryStore(stored_tokens(expires_at=NOW))
    store.lease = ("a dead worker's", NOW + oauth.REFRESH_LEASE)
    fitbit.post(fitbit_legacy.TOKEN_URL, json=refresh_answer())
    fitbit.get(PROFILE_URL, json=profile_body())
    api = oauth.ApiClient(client_config, store, "ABC123")
    with freeze_time(NOW) as clock:
        with pytest.raises(oauth.RefreshBusy):
            api.call(PROFILE)
        assert len(fitbit.calls) == 0 and store.tokens.refresh_token == "old-refresh"
        clock.tick(oauth.REFRESH_LEASE + timedelta(seconds=1))
        api.call(PROFILE)
    assert store.tokens.refresh_token == "new-refresh"
    assert len([c for c in fitbit.calls if c.request.url == fitbit_legacy.TOKEN_URL]) == 1


def test_a_refresh_that_fails_gives_the_lease_back(fitbit, client_config):
    store = MemoryStore(stored_tokens(expires_at=NOW))
    fitbit.post(fitbit_legacy.TOKEN_URL, status=503, json=fitbit_error("system"))
    with freeze_time(NOW), pytest.raises(oauth.ProviderUnavailable):
        oauth.ApiClient(client_config, store, "ABC123").call(PROFILE)
    assert store.lease is None  # the next request may try at once
    assert store.tokens.refresh_token == "old-refresh"


# --- Revoke ----------------------------------------------------------------------------


def test_revoke_posts_the_token_with_basic_auth(fitbit, client_config):
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    fitbit.post(
        fitbit_legacy.REVOKE_URL,
        json={},
        match=[
            matchers.header_matcher({"Authorization": f"Basic {basic}"}),
            matchers.urlencoded_params_matcher({"token": REFRESH_TOKEN}),
        ],
    )
    oauth.revoke(client_config, REFRESH_TOKEN)
    assert len(fitbit.calls) == 1
