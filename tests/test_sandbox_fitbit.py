"""The stand-in for Fitbit, rule by rule, driven by hand-built requests (not oauth.py), as a
client written independently from Fitbit's documentation would drive it."""

import base64
import re
from datetime import date, timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from freezegun import freeze_time
from werkzeug.test import Client

import sandbox
import sandbox.__main__
import sandbox.common
import sandbox.fitbit

CLIENT_ID, SECRET = "22ABCD", "s3cr3t-of-the-sandbox-client"
REDIRECT = "http://localhost:4000/auth/callback"
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"  # RFC 7636 appendix B
ALEX = "7QW2XR"


@pytest.fixture
def stand_in():
    registered = [
        sandbox.RegisteredClient(CLIENT_ID, SECRET, REDIRECT),
        sandbox.RegisteredClient("OTHER1", "other-secret", "http://localhost:5000/cb"),
    ]
    return sandbox.FitbitStandIn(registered)


@pytest.fixture
def fitbit(stand_in):
    return Client(stand_in)


def basic(client_id=CLIENT_ID, secret=SECRET):
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def authorize_query(**overrides):
    query = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "scope": "activity profile",
        "state": "xyz",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
    }
    query.update(overrides)
    return {k: v for k, v in query.items() if v is not None}


def consent(fitbit, decision="allow", scopes=("activity", "profile"), user=ALEX, **query):
    page = fitbit.get("/oauth2/authorize", query_string=authorize_query(**query))
    assert page.status_code == 200
    request_id = re.search(r'name="request_id" value="([^"]+)"', page.get_data(as_text=True))
    form = {"request_id": request_id.group(1), "user_id": user, "decision": decision}
    return fitbit.post("/oauth2/authorize", data={**form, "scope": list(scopes)})


def new_code(fitbit, **kwargs):
    location = consent(fitbit, **kwargs).headers["Location"]
    return parse_qs(urlsplit(location).query)["code"][0]


def exchange(fitbit, code, headers=None, **overrides):
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": VERIFIER,
    }
    form.update(overrides)
    form = {k: v for k, v in form.items() if v is not None}
    return fitbit.post("/oauth2/token", data=form, headers=basic() if headers is None else headers)


def tokens(fitbit, **kwargs):
    response = exchange(fitbit, new_code(fitbit, **kwargs))
    assert response.status_code == 200
    return response.json


def refresh(fitbit, refresh_token):
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return fitbit.post("/oauth2/token", data=form, headers=basic())


def api(fitbit, path, access_token):
    return fitbit.get(path, headers={"Authorization": f"Bearer {access_token}"})


def assert_revoked(fitbit, body):
    """Neither token of a token answer works any more."""
    answer = api(fitbit, "/1/user/-/profile.json", body["access_token"])
    assert_fitbit_error(answer, 401, "invalid_token")
    assert_fitbit_error(refresh(fitbit, body["refresh_token"]), 400, "invalid_grant")


def assert_fitbit_error(response, status, error_type):
    assert response.status_code == status
    assert response.json["success"] is False
    assert response.json["errors"][0]["errorType"] == error_type


# --- The consent page -----------------------------------------------------------------


def test_consent_page_names_the_app_and_the_scopes(fitbit):
    response = fitbit.get("/oauth2/authorize", query_string=authorize_query())
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "OAuth Teaching App" in text
    assert 'value="activity"' in text and 'value="profile"' in text
    # Each scope in words, as Fitbit's own consent page puts it, not only its name.
    assert "your activity and exercise: steps" in text and "your profile: name" in text
    assert ">Allow<" in text and ">Deny<" in text
    assert response.headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize(
    "override",
    [
        {"client_id": "NOSUCH"},
        {"client_id": None},
        {"redirect_uri": "http://localhost:4000/auth/callback/"},
        {"redirect_uri": "http://evil.example/auth/callback"},
        {"redirect_uri": None},
        {"response_type": "token"},
        {"scope": "profile telepathy"},
        {"scope": None},
        {"code_challenge_method": "plain"},
        {"code_challenge_method": None},  # a challenge without a method would be "plain"
        {"code_challenge": None},  # a method without a challenge
        {"code_challenge": "too-short"},
    ],
)
def test_invalid_authorization_request_gets_an_error_page_and_no_redirect(fitbit, override):
    response = fitbit.get("/oauth2/authorize", query_string=authorize_query(**override))
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "invalid request" in response.get_data(as_text=True)


def test_repeated_parameter_is_an_invalid_request(fitbit):
    query = urlencode(authorize_query()) + "&client_id=OTHER1"
    assert fitbit.get("/oauth2/authorize?" + query).status_code == 400


def test_allow_redirects_back_with_code_and_state(fitbit):
    response = consent(fitbit)
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = parse_qs(location.query)
    assert query["state"] == ["xyz"] and len(query["code"][0]) >= 32


def test_deny_redirects_back_with_access_denied_and_state(fitbit):
    response = consent(fitbit, decision="deny")
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query == {"error": ["access_denied"], "state": ["xyz"]}


def test_consent_form_works_once(fitbit):
    page = fitbit.get("/oauth2/authorize", query_string=authorize_query())
    request_id = re.search(r'name="request_id" value="([^"]+)"', page.get_data(as_text=True))
    form = {"request_id": request_id.group(1), "user_id": ALEX, "decision": "allow"}
    form["scope"] = ["profile"]
    assert fitbit.post("/oauth2/authorize", data=form).status_code == 302
    assert fitbit.post("/oauth2/authorize", data=form).status_code == 400
    assert (
        fitbit.post("/oauth2/authorize", data={**form, "request_id": "forged"}).status_code == 400
    )


def test_user_may_grant_fewer_scopes_than_asked(fitbit):
    assert tokens(fitbit, scopes=["profile"])["scope"] == "profile"


# --- The token endpoint -----------------------------------------------------------------


def test_code_exchange_answers_with_fitbits_fields(fitbit):
    response = exchange(fitbit, new_code(fitbit))
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json
    assert set(body) == {
        "access_token",
        "expires_in",
        "refresh_token",
        "scope",
        "token_type",
        "user_id",
    }
    assert (body["expires_in"], body["token_type"], body["user_id"]) == (28800, "Bearer", ALEX)
    assert body["scope"] == "activity profile"


def test_expires_in_is_configurable():
    stand_in = sandbox.FitbitStandIn([sandbox.RegisteredClient(CLIENT_ID, SECRET, REDIRECT)], 120)
    assert tokens(Client(stand_in))["expires_in"] == 120


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic(secret="wrong"),
        basic(client_id="NOSUCH"),
        basic(client_id="OTHER1", secret=SECRET),
        {"Authorization": "Basic not-base64!"},
        {"Authorization": "Bearer " + base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()},
    ],
    ids=["none", "wrong-secret", "unknown-client", "other-client", "garbage", "not-basic"],
)
def test_client_must_authenticate_with_basic(fitbit, headers):
    assert_fitbit_error(exchange(fitbit, new_code(fitbit), headers=headers), 401, "invalid_client")


def test_client_secret_in_the_body_is_refused(fitbit):
    response = exchange(fitbit, new_code(fitbit), client_secret=SECRET, client_id=CLIENT_ID)
    assert_fitbit_error(response, 401, "invalid_client")


def test_code_works_once(fitbit):
    code = new_code(fitbit)
    assert exchange(fitbit, code).status_code == 200
    assert_fitbit_error(exchange(fitbit, code), 400, "invalid_grant")


@pytest.mark.parametrize(
    "override",
    [
        {"redirect_uri": "http://localhost:4000/other"},
        {"code_verifier": "x" * 43},
        {"code_verifier": CHALLENGE},  # the challenge itself: what "plain" would send
        {"code_verifier": "short"},
    ],
    ids=["wrong-redirect-uri", "wrong-verifier", "challenge-as-verifier", "short-verifier"],
)
def test_code_is_bound_to_redirect_uri_and_verifier(fitbit, override):
    code = new_code(fitbit)
    assert_fitbit_error(exchange(fitbit, code, **override), 400, "invalid_grant")
    # A failed attempt uses the code up: it cannot be tried again with the right values.
    assert_fitbit_error(exchange(fitbit, code), 400, "invalid_grant")


def test_code_is_bound_to_the_client(fitbit):
    code = new_code(fitbit)
    response = exchange(fitbit, code, headers=basic("OTHER1", "other-secret"))
    assert_fitbit_error(response, 400, "invalid_grant")


@pytest.mark.parametrize("missing", ["code", "redirect_uri"])
def test_missing_parameter_is_an_invalid_request(fitbit, missing):
    response = exchange(fitbit, **{"code": new_code(fitbit), missing: None})
    assert_fitbit_error(response, 400, "invalid_request")


def test_a_code_issued_with_a_challenge_needs_its_verifier(fitbit):
    response = exchange(fitbit, new_code(fitbit), code_verifier=None)
    assert_fitbit_error(response, 400, "invalid_grant")


def test_a_client_without_pkce_signs_in_as_fitbit_allowed(fitbit):
    """As python-fitbit 0.3.1 does it: no code_challenge, no code_verifier."""
    code = new_code(fitbit, code_challenge=None, code_challenge_method=None)
    response = exchange(fitbit, code, code_verifier=None)
    assert response.status_code == 200
    assert response.json["user_id"] == ALEX


def test_unknown_grant_type_is_refused(fitbit):
    response = fitbit.post("/oauth2/token", data={"grant_type": "password"}, headers=basic())
    assert_fitbit_error(response, 400, "unsupported_grant_type")


@pytest.mark.parametrize("minutes, status", [("09:59", 200), ("10:01", 400)])
def test_code_lives_ten_minutes(fitbit, minutes, status):
    with freeze_time("2026-11-23 12:00:00"):
        code = new_code(fitbit)
    with freeze_time(f"2026-11-23 12:{minutes}"):
        assert exchange(fitbit, code).status_code == status


def test_refresh_rotates_the_pair_and_the_old_refresh_token_dies(fitbit):
    first = tokens(fitbit)
    response = refresh(fitbit, first["refresh_token"])
    assert response.status_code == 200
    second = response.json
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert (second["user_id"], second["scope"]) == (ALEX, "activity profile")
    assert_fitbit_error(refresh(fitbit, first["refresh_token"]), 400, "invalid_grant")
    assert refresh(fitbit, second["refresh_token"]).status_code == 200


def test_refresh_token_is_bound_to_the_client(fitbit):
    body = tokens(fitbit)
    form = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
    response = fitbit.post("/oauth2/token", data=form, headers=basic("OTHER1", "other-secret"))
    assert_fitbit_error(response, 400, "invalid_grant")


# --- Revoke ---------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["access_token", "refresh_token"])
def test_revoke_ends_all_of_the_users_tokens(fitbit, which):
    first, second = tokens(fitbit), tokens(fitbit)
    sam = tokens(fitbit, user="9KD3MS")
    response = fitbit.post("/oauth2/revoke", data={"token": first[which]}, headers=basic())
    assert (response.status_code, response.json) == (200, {})
    for body in (first, second):
        assert_revoked(fitbit, body)
    assert api(fitbit, "/1/user/-/profile.json", sam["access_token"]).status_code == 200


def test_revoke_needs_client_authentication(fitbit):
    body = tokens(fitbit)
    response = fitbit.post("/oauth2/revoke", data={"token": body["access_token"]})
    assert_fitbit_error(response, 401, "invalid_client")
    assert api(fitbit, "/1/user/-/profile.json", body["access_token"]).status_code == 200


def test_revoking_an_unknown_token_is_not_an_error(fitbit):
    response = fitbit.post("/oauth2/revoke", data={"token": "never-issued"}, headers=basic())
    assert response.status_code == 200


# --- The Web API ----------------------------------------------------------------------


def test_profile_needs_a_bearer_token(fitbit):
    assert_fitbit_error(fitbit.get("/1/user/-/profile.json"), 401, "invalid_client")
    assert_fitbit_error(api(fitbit, "/1/user/-/profile.json", "made-up"), 401, "invalid_token")


def test_profile_of_the_signed_in_user(fitbit):
    response = api(fitbit, "/1/user/-/profile.json", tokens(fitbit)["access_token"])
    user = response.json["user"]
    assert (user["encodedId"], user["displayName"], user["memberSince"]) == (
        ALEX,
        "Alex R.",
        "2016-03-14",
    )
    assert fitbit.get(urlsplit(user["avatar"]).path).mimetype == "image/svg+xml"


def test_expired_access_token_is_refused_as_expired(fitbit):
    with freeze_time("2026-11-23 08:00:00"):
        access = tokens(fitbit)["access_token"]
    with freeze_time("2026-11-23 15:59:59"):
        assert api(fitbit, "/1/user/-/profile.json", access).status_code == 200
    with freeze_time("2026-11-23 16:00:00"):
        assert_fitbit_error(api(fitbit, "/1/user/-/profile.json", access), 401, "expired_token")


def test_call_without_the_scope_is_insufficient_scope(fitbit):
    access = tokens(fitbit, scopes=["profile"])["access_token"]
    path = "/1/user/-/activities/steps/date/today/1m.json"
    assert_fitbit_error(api(fitbit, path, access), 403, "insufficient_scope")


@freeze_time("2026-11-23 18:00:00")
def test_steps_for_the_last_month_as_fitbit_sends_them(fitbit):
    access = tokens(fitbit)["access_token"]
    series = api(fitbit, "/1/user/-/activities/steps/date/today/1m.json", access).json[
        "activities-steps"
    ]
    assert series[0]["dateTime"] == "2026-10-24" and series[-1]["dateTime"] == "2026-11-23"
    assert len(series) == 31
    assert all(isinstance(day["value"], str) and int(day["value"]) > 0 for day in series)
    again = api(fitbit, "/1/user/-/activities/steps/date/2026-11-23/1m.json", access).json
    assert again["activities-steps"] == series  # deterministic, and "today" is the date


@freeze_time("2026-11-23 18:00:00")
@pytest.mark.parametrize(
    "path, days",
    [
        ("2026-11-23/1d", 1),
        ("2026-11-23/7d", 7),
        ("2026-11-20/1w", 7),
        ("2026-11-23/30d", 30),
        ("2026-11-01/2026-11-10", 10),
    ],
)
def test_steps_periods_and_ranges(fitbit, path, days):
    access = tokens(fitbit)["access_token"]
    response = api(fitbit, f"/1/user/-/activities/steps/date/{path}.json", access)
    assert len(response.json["activities-steps"]) == days


@pytest.mark.parametrize(
    "path",
    [
        "today/2m",
        "yesterday/1m",
        "2026-11-10/2026-11-01",
        "0001-01-01/7d",  # a week back from the first day there is
        "0001-01-01/1y",
        "0001-01-01/9999-12-31",
    ],
)
def test_bad_steps_request_is_a_validation_error(fitbit, path):
    access = tokens(fitbit)["access_token"]
    response = api(fitbit, f"/1/user/-/activities/steps/date/{path}.json", access)
    assert_fitbit_error(response, 400, "validation")


def test_steps_differ_by_person_and_day():
    with freeze_time("2026-11-23 12:00:00"):
        alex = [sandbox.common.steps_on(ALEX, date(2026, 11, d)) for d in range(1, 22)]
        sam = [sandbox.common.steps_on("9KD3MS", date(2026, 11, d)) for d in range(1, 22)]
    assert alex != sam and len(set(alex)) > 15


def test_rate_limit_is_150_calls_per_user_per_hour(fitbit):
    with freeze_time("2026-11-23 12:15:00"):
        alex = tokens(fitbit)["access_token"]
        sam = tokens(fitbit, user="9KD3MS")["access_token"]
        first = api(fitbit, "/1/user/-/profile.json", alex)
        assert first.headers["Fitbit-Rate-Limit-Limit"] == "150"
        assert first.headers["Fitbit-Rate-Limit-Remaining"] == "149"
        assert first.headers["Fitbit-Rate-Limit-Reset"] == "2700"
        for _ in range(149):
            last = api(fitbit, "/1/user/-/profile.json", alex)
        assert (last.status_code, last.headers["Fitbit-Rate-Limit-Remaining"]) == (200, "0")
        over = api(fitbit, "/1/user/-/profile.json", alex)
        assert_fitbit_error(over, 429, "system")
        assert over.headers["Fitbit-Rate-Limit-Reset"] == "2700"
        assert api(fitbit, "/1/user/-/profile.json", sam).status_code == 200  # per user
    with freeze_time("2026-11-23 13:00:00"):
        assert api(fitbit, "/1/user/-/profile.json", alex).status_code == 200  # a new hour


def test_an_app_name_with_fitbit_in_it_is_refused():
    with pytest.raises(ValueError):
        sandbox.RegisteredClient(CLIENT_ID, SECRET, REDIRECT, name="My Fitbit Dashboard")


def test_client_id_in_the_body_must_match_the_header(fitbit):
    response = exchange(fitbit, new_code(fitbit), client_id="OTHER1")
    assert_fitbit_error(response, 401, "invalid_client")
    assert exchange(fitbit, new_code(fitbit), client_id=CLIENT_ID).status_code == 200


def test_unknown_path_and_method_answer_in_fitbits_shape(fitbit):
    assert_fitbit_error(fitbit.get("/1/user/-/sleep.json"), 404, "not_found")
    assert_fitbit_error(fitbit.get("/oauth2/token"), 405, "invalid_request")


def test_the_redirect_mismatch_page_shows_both_uris(fitbit):
    sent = "http://localhost:4107/auth/callback"
    response = fitbit.get("/oauth2/authorize", query_string=authorize_query(redirect_uri=sent))
    text = response.get_data(as_text=True)
    assert response.status_code == 400
    assert sent in text and REDIRECT in text


def test_stale_consents_codes_and_counts_are_dropped(stand_in, fitbit):
    with freeze_time("2026-11-23 12:00:00"):
        access = tokens(fitbit)["access_token"]
        api(fitbit, "/1/user/-/profile.json", access)
        consent(fitbit)  # a code that is never redeemed
    store = stand_in.store
    assert (store.count("codes"), store.count("calls"), store.count("grants")) == (2, 1, 2)
    with freeze_time("2026-11-23 13:00:00"):
        fitbit.get("/oauth2/authorize", query_string=authorize_query())
    assert (store.count("codes"), store.count("calls")) == (0, 0)
    assert store.count("grants") == 1  # the one whose tokens are still held
    assert store.count("consents") == 1  # only the page just shown


def test_stale_entries_go_a_batch_at_a_time(stand_in, fitbit):
    with freeze_time("2026-11-23 12:00:00"):
        for _ in range(2 * sandbox.fitbit.PRUNE_BATCH + 10):
            fitbit.get("/oauth2/authorize", query_string=authorize_query())
    assert stand_in.store.count("consents") == 2 * sandbox.fitbit.PRUNE_BATCH + 10
    left = []
    with freeze_time("2026-11-23 12:11:00"):
        for _ in range(3):
            fitbit.get("/no-such-path")
            left.append(stand_in.store.count("consents"))
    assert left == [sandbox.fitbit.PRUNE_BATCH + 10, 10, 0]


def test_expired_access_tokens_are_forgotten_after_a_day(stand_in, fitbit):
    with freeze_time("2026-11-23 12:00:00") as clock:
        access = tokens(fitbit)["access_token"]
        clock.tick(timedelta(hours=9))
        assert_fitbit_error(api(fitbit, "/1/user/-/profile.json", access), 401, "expired_token")
        clock.tick(sandbox.fitbit.EXPIRED_TOKEN_MEMORY)
        assert_fitbit_error(api(fitbit, "/1/user/-/profile.json", access), 401, "invalid_token")
    assert stand_in.store.count("access_tokens") == 0


def test_a_replayed_code_revokes_the_tokens_issued_from_it(fitbit):
    code = new_code(fitbit)
    first = exchange(fitbit, code).json
    other = tokens(fitbit)  # the same person's other grant is left alone
    assert_fitbit_error(exchange(fitbit, code), 400, "invalid_grant")
    assert_revoked(fitbit, first)
    assert api(fitbit, "/1/user/-/profile.json", other["access_token"]).status_code == 200


def test_tokens_refreshed_from_a_replayed_code_are_revoked_too(fitbit):
    code = new_code(fitbit)
    rotated = refresh(fitbit, exchange(fitbit, code).json["refresh_token"]).json
    exchange(fitbit, code)
    assert_revoked(fitbit, rotated)


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/oauth2/authorize"),  # the HTML error page
        ("GET", "/1/user/-/profile.json"),  # a JSON error
        ("POST", "/oauth2/token"),
        ("GET", "/avatars/7QW2XR.svg"),
        ("GET", "/no-such-path"),
    ],
)
def test_every_answer_carries_the_security_headers(fitbit, method, path):
    headers = fitbit.open(path, method=method).headers
    assert headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-store"


def test_a_huge_form_is_refused(fitbit):
    form = {
        "grant_type": "refresh_token",
        "refresh_token": "x" * (sandbox.common.MAX_BODY_BYTES + 1),
    }
    response = fitbit.post("/oauth2/token", data=form, headers=basic())
    assert_fitbit_error(response, 413, "invalid_request")


def test_a_bug_in_the_stand_in_is_a_json_500_in_fitbits_shape(stand_in, fitbit, monkeypatch):
    def broken(request):
        raise RuntimeError("a bug")

    monkeypatch.setattr(stand_in.resources, "on_profile", broken)
    assert_fitbit_error(api(fitbit, "/1/user/-/profile.json", "x"), 500, "system")


def test_a_host_no_machine_can_have_is_a_400_in_fitbits_shape(fitbit):
    host = {"Host": "a" * 64 + ".example"}
    assert_fitbit_error(fitbit.get("/1/user/-/profile.json", headers=host), 400, "invalid_request")
    assert_fitbit_error(fitbit.post("/oauth2/token", headers=host), 400, "invalid_request")


def test_allow_with_every_scope_unticked_asks_again_instead_of_denying(fitbit):
    again = consent(fitbit, scopes=())
    assert again.status_code == 200  # the consent page again, not a redirect to the app
    assert "Tick at least one, or click Deny." in again.get_data(as_text=True)
    request_id = re.search(r'name="request_id" value="([^"]+)"', again.get_data(as_text=True))
    form = {"request_id": request_id.group(1), "user_id": ALEX, "decision": "allow"}
    answer = fitbit.post("/oauth2/authorize", data={**form, "scope": ["activity"]})
    assert answer.status_code == 302
    assert "code" in parse_qs(urlsplit(answer.headers["Location"]).query)
