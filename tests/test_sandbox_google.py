"""The stand-in for Google, rule by rule, driven by hand-built requests (not oauth.py or
google_health.py), as a client written from Google's documentation would drive it."""

import base64
import json
import re
from datetime import date, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from freezegun import freeze_time
from werkzeug.test import Client

import sandbox.__main__
import sandbox.google_authorization as google_authorization
import sandbox.google_resources as google_resources
from sandbox import GoogleStandIn, RegisteredClient

CLIENT_ID, SECRET = "123-abc.apps.googleusercontent.com", "GOCSPX-secret-of-the-stand-in"
REDIRECT = "http://localhost:4000/auth/callback"
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"  # RFC 7636 appendix B
AUTH = "https://www.googleapis.com/auth/"
ACTIVITY = AUTH + "googlehealth.activity_and_fitness.readonly"
ALEX, CASEY = "hu-4f1e9c2a7b", "hu-c6b81d3e72"
ROLLUP = "/v4/users/me/dataTypes/steps/dataPoints:dailyRollUp"


@pytest.fixture
def google():
    stand_in = GoogleStandIn(
        [
            RegisteredClient(CLIENT_ID, SECRET, REDIRECT),
            RegisteredClient("other.apps.googleusercontent.com", "other", "http://localhost:5/cb"),
        ]
    )
    return Client(stand_in)


def basic(client_id=CLIENT_ID, secret=SECRET):
    pair = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def authorize_query(**overrides):
    query = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "scope": f"openid profile {ACTIVITY}",
        "state": "xyz",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
        "access_type": "offline",
    }
    query.update(overrides)
    return {k: v for k, v in query.items() if v is not None}


def consent(google, user=ALEX, scopes=None, decision="allow", **query):
    page = google.get(google_authorization.AUTHORIZE_PATH, query_string=authorize_query(**query))
    assert page.status_code == 200, page.get_data(as_text=True)
    text = page.get_data(as_text=True)
    request_id = re.search(r'name="request_id" value="([^"]+)"', text).group(1)
    offered = re.findall(r'name="scope" value="([^"]+)"', text)
    form = {"request_id": request_id, "user_id": user, "decision": decision}
    form["scope"] = offered if scopes is None else list(scopes)
    return google.post(google_authorization.AUTHORIZE_PATH, data=form)


def callback_query(response):
    assert response.status_code == 302
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}


def new_code(google, **kwargs):
    return callback_query(consent(google, **kwargs))["code"]


def exchange(google, code, headers=None, **overrides):
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": VERIFIER,
    }
    form.update(overrides)
    form = {k: v for k, v in form.items() if v is not None}
    return google.post(
        google_authorization.TOKEN_PATH, data=form, headers=basic() if headers is None else headers
    )


def tokens(google, **kwargs):
    response = exchange(google, new_code(google, **kwargs))
    assert response.status_code == 200, response.json
    return response.json


def refresh(google, refresh_token, headers=None):
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return google.post(
        google_authorization.TOKEN_PATH, data=form, headers=basic() if headers is None else headers
    )


def bearer(access_token):
    return {"Authorization": f"Bearer {access_token}"}


def rollup(google, access_token, start, end, window=1):
    body = {
        "range": {
            "start": {"date": {"year": start.year, "month": start.month, "day": start.day}},
            "end": {"date": {"year": end.year, "month": end.month, "day": end.day}},
        },
        "windowSizeDays": window,
    }
    return google.post(ROLLUP, json=body, headers=bearer(access_token))


# --- Authorize ---------------------------------------------------------------------------


def test_allow_sends_back_code_state_and_the_granted_scope_spelled_googles_way(google):
    query = callback_query(consent(google))
    assert query["state"] == "xyz" and query["code"]
    assert query["scope"].split() == ["openid", AUTH + "userinfo.profile", ACTIVITY]
    assert (query["iss"], query["authuser"], query["prompt"]) == (
        "http://localhost",
        "0",
        "consent",
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {"client_id": "unknown.apps.googleusercontent.com"},
        {"redirect_uri": "http://localhost:4000/auth/callback/"},
        {"redirect_uri": "HTTP://localhost:4000/auth/callback"},
        {"redirect_uri": None},
        {"response_type": "token"},
        {"scope": "openid https://www.googleapis.com/auth/drive"},
        {"code_challenge_method": "S512"},
        {"code_challenge": "too-short", "code_challenge_method": "S256"},
        {"access_type": "forever"},
        {"prompt": "none consent"},
    ],
)
def test_a_bad_authorization_request_is_a_page_never_a_redirect(google, overrides):
    response = google.get(
        google_authorization.AUTHORIZE_PATH, query_string=authorize_query(**overrides)
    )
    assert response.status_code == 400 and "Location" not in response.headers
    assert "Google stand-in" in response.get_data(as_text=True)


def test_deny_is_access_denied_with_the_state(google):
    assert callback_query(consent(google, decision="deny")) == {
        "error": "access_denied",
        "state": "xyz",
    }


def test_unticking_a_scope_grants_the_rest_and_openid_stays(google):
    answer = tokens(google, scopes=[ACTIVITY])
    assert answer["scope"].split() == ["openid", ACTIVITY]


def test_the_consent_form_works_once(google):
    page = google.get(google_authorization.AUTHORIZE_PATH, query_string=authorize_query())
    request_id = re.search(r'name="request_id" value="([^"]+)"', page.get_data(as_text=True))
    form = {"request_id": request_id.group(1), "user_id": ALEX, "decision": "allow"}
    assert google.post(google_authorization.AUTHORIZE_PATH, data=form).status_code == 302
    assert google.post(google_authorization.AUTHORIZE_PATH, data=form).status_code == 400


# --- The token endpoint ------------------------------------------------------------------


def test_the_token_answer_is_googles_an_hour_and_no_user_id(google):
    answer = tokens(google)
    assert answer["expires_in"] == 3599 and answer["token_type"] == "Bearer"
    assert "user_id" not in answer and answer["refresh_token"].startswith("1//")
    assert answer["access_token"].startswith("ya29.")


def test_a_refresh_token_comes_only_on_the_first_or_a_forced_consent(google):
    assert "refresh_token" in tokens(google)
    assert "refresh_token" not in tokens(google)  # consented before
    assert "refresh_token" in tokens(google, prompt="consent")
    assert "refresh_token" not in tokens(google, access_type=None, prompt="consent")  # online


def test_pkce_is_optional_and_plain_is_accepted(google):
    code = new_code(google, code_challenge=None, code_challenge_method=None)
    assert exchange(google, code, code_verifier=None).status_code == 200
    code = new_code(google, code_challenge=VERIFIER, code_challenge_method="plain")
    assert exchange(google, code).status_code == 200
    code = new_code(google, code_challenge=VERIFIER, code_challenge_method=None)  # plain
    assert exchange(google, code).status_code == 200


@pytest.mark.parametrize("verifier", [None, "x" * 43, VERIFIER[:-1] + "Y"])
def test_a_wrong_or_missing_verifier_is_invalid_grant(google, verifier):
    response = exchange(google, new_code(google), code_verifier=verifier)
    assert response.status_code == 400 and response.json["error"] == "invalid_grant"


def test_a_code_works_once_and_a_replay_revokes_its_tokens(google):
    code = new_code(google)
    first = exchange(google, code).json
    replay = exchange(google, code)
    assert replay.status_code == 400 and replay.json["error"] == "invalid_grant"
    assert (
        google.get(
            google_resources.USERINFO_PATH, headers=bearer(first["access_token"])
        ).status_code
        == 401
    )
    assert refresh(google, first["refresh_token"]).status_code == 400


def test_a_wrong_redirect_uri_at_the_token_endpoint_is_refused(google):
    response = exchange(google, new_code(google), redirect_uri="http://localhost:4000/other")
    assert response.status_code == 400 and response.json["error"] == "redirect_uri_mismatch"


def test_a_code_expires_after_ten_minutes(google):
    with freeze_time("2026-11-23 12:00:00") as clock:
        code = new_code(google)
        clock.tick(timedelta(minutes=10, seconds=1))
        assert exchange(google, code).json["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "headers, extra, status, error",
    [
        ({}, {"client_id": CLIENT_ID, "client_secret": SECRET}, 200, None),  # post
        (basic(secret="wrong"), {}, 401, "invalid_client"),
        ({}, {}, 401, "invalid_client"),
        (basic(), {"client_secret": SECRET}, 400, "invalid_request"),  # two methods at once
        (basic("other.apps.googleusercontent.com", "other"), {}, 400, "invalid_grant"),
    ],
    ids=["client-secret-post", "wrong-secret", "no-client", "both-methods", "other-client"],
)
def test_client_authentication_basic_or_post(google, headers, extra, status, error):
    response = exchange(google, new_code(google), headers=headers, **extra)
    assert response.status_code == status
    assert (response.json.get("error") if error else "access_token" in response.json) == (
        error or True
    )


def test_a_refresh_sends_no_new_refresh_token_and_the_old_one_goes_on_working(google):
    first = tokens(google)
    again = refresh(google, first["refresh_token"]).json
    assert "refresh_token" not in again and again["access_token"] != first["access_token"]
    assert refresh(google, first["refresh_token"]).status_code == 200
    other_app = refresh(
        google, first["refresh_token"], basic("other.apps.googleusercontent.com", "other")
    )
    assert other_app.json["error"] == "invalid_grant"


def test_a_testing_apps_refresh_token_dies_after_seven_days_and_a_new_consent_brings_one(google):
    with freeze_time("2026-11-23 12:00:00") as clock:
        first = tokens(google)
        clock.tick(timedelta(days=7) - timedelta(seconds=1))
        assert refresh(google, first["refresh_token"]).status_code == 200
        clock.tick(timedelta(seconds=2))
        dead = refresh(google, first["refresh_token"])
        assert dead.status_code == 400 and dead.json["error"] == "invalid_grant"
        # Without a live refresh token, the next consent is a first one again.
        assert "refresh_token" in tokens(google)


def test_revoke_ends_the_grant_then_says_invalid_token(google):
    first = tokens(google)
    revoked = google.post(google_authorization.REVOKE_PATH, data={"token": first["refresh_token"]})
    assert revoked.status_code == 200  # no client authentication needed
    dead = refresh(google, first["refresh_token"])
    assert dead.status_code == 400 and dead.json == {
        "error": "invalid_grant",
        "error_description": "Token has been expired or revoked.",
    }
    assert (
        google.get(
            google_resources.USERINFO_PATH, headers=bearer(first["access_token"])
        ).status_code
        == 401
    )
    again = google.post(
        google_authorization.REVOKE_PATH, query_string={"token": first["refresh_token"]}
    )
    assert again.status_code == 400 and again.json["error"] == "invalid_token"


def test_include_granted_scopes_adds_the_new_scope_to_the_grant_the_user_gave(google):
    """Incremental authorization: the second consent, for sleep alone, comes back with the
    whole grant's scope, and the refresh token of the first reads sleep from then on. A
    revoke of it ends the whole grant, the new access token too."""
    sleep = AUTH + "googlehealth.sleep.readonly"
    first = tokens(google)
    back = callback_query(consent(google, scope=sleep, include_granted_scopes="true"))
    assert set(back["scope"].split()) == {"openid", AUTH + "userinfo.profile", ACTIVITY, sleep}
    second = exchange(google, back["code"]).json
    assert "refresh_token" not in second  # no forced consent: the first one goes on
    assert set(second["scope"].split()) == set(back["scope"].split())
    refreshed = refresh(google, first["refresh_token"]).json
    assert sleep in refreshed["scope"].split()
    google.post(google_authorization.REVOKE_PATH, data={"token": first["refresh_token"]})
    userinfo = google.get(google_resources.USERINFO_PATH, headers=bearer(second["access_token"]))
    assert userinfo.status_code == 401


def test_without_include_granted_scopes_the_second_consent_is_a_grant_of_its_own(google):
    sleep = AUTH + "googlehealth.sleep.readonly"
    tokens(google)
    back = callback_query(consent(google, scope=sleep))
    assert back["scope"].split() == [sleep]


@pytest.mark.parametrize("value", ["yes", "TRUE", "1"])
def test_a_bad_include_granted_scopes_is_a_page_never_a_redirect(google, value):
    page = google.get(
        google_authorization.AUTHORIZE_PATH,
        query_string=authorize_query(include_granted_scopes=value),
    )
    assert page.status_code == 400 and "include_granted_scopes" in page.get_data(as_text=True)


# --- userinfo and the Health API ----------------------------------------------------------


def test_userinfo_names_the_user_only_with_profile_and_the_email_only_with_email(google):
    """`sub` is the Google account's id, the same at both of userinfo's addresses, and not
    the Health user id."""
    sub = google_resources.PEOPLE[ALEX]["sub"]
    access = tokens(google)["access_token"]
    for path in (google_resources.USERINFO_PATH, "/oauth2/v3/userinfo"):
        with_profile = google.get(path, headers=bearer(access)).json
        assert with_profile["sub"] == sub and with_profile["name"] == "Alex Rivera"
        assert with_profile["picture"].startswith("http") and "email" not in with_profile
    without = tokens(google, scopes=[ACTIVITY], prompt="consent")
    info = google.get(google_resources.USERINFO_PATH, headers=bearer(without["access_token"])).json
    assert info == {"sub": sub}
    asked = f"openid email {ACTIVITY}"
    with_email = tokens(google, scope=asked, prompt="consent")["access_token"]
    info = google.get(google_resources.USERINFO_PATH, headers=bearer(with_email)).json
    assert info == {"sub": sub, "email": "alex.rivera@example.com", "email_verified": True}


def test_identity_gives_both_ids_and_only_a_fitbit_user_has_a_legacy_one(google):
    access = tokens(google)["access_token"]
    identity = google.get("/v4/users/me/identity", headers=bearer(access)).json
    assert identity == {
        "name": "users/me/identity",
        "healthUserId": ALEX,
        "legacyUserId": "7QW2XR",
    }
    robin = tokens(google, user="hu-2a7c5e9f04")["access_token"]
    assert "legacyUserId" not in google.get("/v4/users/me/identity", headers=bearer(robin)).json


def test_an_expired_or_unknown_token_is_unauthenticated_with_a_challenge(google):
    with freeze_time("2026-11-23 12:00:00") as clock:
        access = tokens(google)["access_token"]
        clock.tick(timedelta(seconds=3600))
        expired = google.get("/v4/users/me/identity", headers=bearer(access))
    assert expired.status_code == 401
    assert expired.json["error"]["status"] == "UNAUTHENTICATED"
    assert 'error="invalid_token"' in expired.headers["WWW-Authenticate"]
    assert access not in expired.get_data(as_text=True)
    assert google.get("/v4/users/me/identity").status_code == 401


def test_a_missing_scope_is_permission_denied_with_its_reason(google):
    access = tokens(google)["access_token"]
    response = google.get("/v4/users/me/profile", headers=bearer(access))
    assert response.status_code == 403
    error = response.json["error"]
    assert error["status"] == "PERMISSION_DENIED"
    assert error["details"][0]["reason"] == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"
    no_health = tokens(google, scopes=["openid", AUTH + "userinfo.profile"], prompt="consent")
    assert (
        google.get("/v4/users/me/identity", headers=bearer(no_health["access_token"])).status_code
        == 403
    )


def test_an_account_without_a_health_profile_is_failed_precondition(google):
    access = tokens(google, user=CASEY)["access_token"]
    response = google.get("/v4/users/me/identity", headers=bearer(access))
    assert response.status_code == 400
    assert response.json["error"]["status"] == "FAILED_PRECONDITION"
    assert response.json["error"]["details"][0]["reason"] == "ACCOUNT_NOT_LINKED"
    # Google's own message, word for word: some clients match on it.
    assert response.json["error"]["message"] == "The account is not linked to Google Health."


def test_the_roll_up_is_newest_first_with_counts_as_strings(google):
    with freeze_time("2026-11-15 18:00:00"):
        access = tokens(google)["access_token"]
        response = rollup(google, access, date(2026, 10, 17), date(2026, 11, 16))
    points = response.json["rollupDataPoints"]
    assert len(points) == 30
    assert points[0]["civilStartTime"] == {"date": {"year": 2026, "month": 11, "day": 15}}
    assert points[0]["civilEndTime"] == {"date": {"year": 2026, "month": 11, "day": 16}}
    assert points[-1]["civilStartTime"] == {"date": {"year": 2026, "month": 10, "day": 17}}
    assert all(isinstance(p["steps"]["countSum"], str) for p in points)


def test_the_roll_up_stops_at_today(google):
    with freeze_time("2026-11-15 18:00:00"):
        access = tokens(google)["access_token"]
        points = rollup(google, access, date(2026, 11, 10), date(2026, 11, 30)).json
    assert len(points["rollupDataPoints"]) == 6


@pytest.mark.parametrize(
    "start, end, window",
    [
        (date(2026, 11, 15), date(2026, 11, 15), 1),  # end is exclusive: an empty range
        (date(2026, 11, 15), date(2026, 11, 1), 1),
        (date(2026, 1, 1), date(2026, 4, 2), 1),  # 91 days
        (date(2026, 11, 1), date(2026, 11, 15), 0),
    ],
)
def test_a_bad_range_is_invalid_argument(google, start, end, window):
    access = tokens(google)["access_token"]
    response = rollup(google, access, start, end, window)
    assert response.status_code == 400 and response.json["error"]["status"] == "INVALID_ARGUMENT"


def test_dates_as_strings_with_leading_zeros_are_refused(google):
    access = tokens(google)["access_token"]
    body = {
        "range": {
            "start": {"date": {"year": 2026, "month": "09", "day": 1}},
            "end": {"date": {"year": 2026, "month": 10, "day": 1}},
        }
    }
    response = google.post(ROLLUP, json=body, headers=bearer(access))
    assert response.status_code == 400


def test_three_hundred_calls_a_minute_then_resource_exhausted(google):
    stand_in = google.application
    stand_in.rate_limit = 3
    with freeze_time("2026-11-23 12:00:10") as clock:
        access = tokens(google)["access_token"]
        answers = [google.get("/v4/users/me/identity", headers=bearer(access)) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert answers[-1].json["error"]["status"] == "RESOURCE_EXHAUSTED"
        clock.tick(timedelta(minutes=1))
        assert google.get("/v4/users/me/identity", headers=bearer(access)).status_code == 200


def test_unknown_paths_and_failures_answer_as_google_rpc_status(google, monkeypatch):
    missing = google.get("/v4/users/me/nothing")
    assert missing.status_code == 404 and missing.json["error"]["status"] == "NOT_FOUND"

    def broken(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(google_resources.GoogleResourceServer, "on_identity", broken)
    access = tokens(google)["access_token"]
    failed = google.get("/v4/users/me/identity", headers=bearer(access))
    assert failed.status_code == 500 and failed.json["error"]["status"] == "INTERNAL"


def test_run_alone_with_an_unknown_provider_says_so(monkeypatch, capsys):
    monkeypatch.setenv("PROVIDER", "garmin")
    with pytest.raises(SystemExit):
        sandbox.__main__.main([])
    assert "PROVIDER='garmin' is not known" in capsys.readouterr().err


def test_a_host_no_machine_can_have_is_a_400_invalid_argument(google):
    host = {"Host": "a" * 64 + ".example"}
    for response in (
        google.get("/v4/users/me/identity", headers=host),
        google.post(google_authorization.TOKEN_PATH, headers=host),
    ):
        assert response.status_code == 400
        assert response.json["error"]["status"] == "INVALID_ARGUMENT"


@pytest.mark.parametrize(
    "body",
    [
        {"range": {"start": {"date": {"year": 10**19, "month": 1, "day": 1}}, "end": {}}},
        {"range": {"start": {"date": {"year": 2**31, "month": 1, "day": 1}}, "end": {}}},
        "[" * 20_000 + "]" * 20_000,  # deeper than Python's JSON parser goes, under 64 KiB
    ],
    ids=["twenty-digit year", "year of 2**31", "deep nesting"],
)
def test_an_absurd_roll_up_body_is_invalid_argument_not_a_500(google, body):
    access = tokens(google)["access_token"]
    headers = {**bearer(access), "Content-Type": "application/json"}
    data = body if isinstance(body, str) else json.dumps(body)
    response = google.post(ROLLUP, data=data, headers=headers)
    assert response.status_code == 400
    assert response.json["error"]["status"] == "INVALID_ARGUMENT"


def test_a_same_day_range_with_times_is_that_day(google):
    """CivilDateTime's time is honoured: 00:00:00 to 23:59:59 is one day, as at Google."""
    day = {"year": 2026, "month": 11, "day": 14}
    with freeze_time("2026-11-15 18:00:00"):
        access = tokens(google)["access_token"]
        whole_day = rollup(google, access, date(2026, 11, 14), date(2026, 11, 15)).json
        body = {
            "range": {
                "start": {"date": day, "time": {"hours": 0, "minutes": 0, "seconds": 0}},
                "end": {"date": day, "time": {"hours": 23, "minutes": 59, "seconds": 59}},
            },
            "windowSizeDays": 1,
        }
        timed = google.post(ROLLUP, json=body, headers=bearer(access))
    assert timed.status_code == 200
    (point,) = timed.json["rollupDataPoints"]
    assert point["civilStartTime"] == {"date": day}
    assert point["civilEndTime"] == {
        "date": day,
        "time": {"hours": 23, "minutes": 59, "seconds": 59},
    }
    assert point["steps"] == whole_day["rollupDataPoints"][0]["steps"]


@pytest.mark.parametrize(
    "clock", [{"hours": 24}, {"hours": "9"}, {"minutes": 60}, {"hours": True}, "noon"]
)
def test_a_time_no_clock_shows_is_invalid_argument(google, clock):
    day = {"year": 2026, "month": 11, "day": 14}
    access = tokens(google)["access_token"]
    body = {"range": {"start": {"date": day, "time": clock}, "end": {"date": day}}}
    response = google.post(ROLLUP, json=body, headers=bearer(access))
    assert response.status_code == 400 and response.json["error"]["status"] == "INVALID_ARGUMENT"


LIST = "/v4/users/me/dataTypes/steps/dataPoints"
# Alex's 14 November, in Los Angeles (UTC-8): its hours, in UTC.
ONE_DAY = (
    'steps.interval.start_time >= "2026-11-14T08:00:00Z" AND '
    'steps.interval.start_time < "2026-11-15T08:00:00Z"'
)


def listed(google, access, **query):
    return google.get(LIST, query_string=query, headers=bearer(access))


def test_the_list_of_a_day_adds_up_to_its_roll_up(google):
    with freeze_time("2026-11-15 18:00:00"):
        access = tokens(google)["access_token"]
        day = rollup(google, access, date(2026, 11, 14), date(2026, 11, 15)).json
        answer = listed(google, access, filter=ONE_DAY).json
    points = answer["dataPoints"]
    assert "nextPageToken" not in answer and len(points) == 24
    assert all(isinstance(point["steps"]["count"], str) for point in points)
    total = sum(int(point["steps"]["count"]) for point in points)
    assert str(total) == day["rollupDataPoints"][0]["steps"]["countSum"]
    first = points[0]["steps"]["interval"]
    assert (first["startTime"], first["endTime"]) == (
        "2026-11-14T08:00:00Z",
        "2026-11-14T09:00:00Z",
    )
    assert (first["startUtcOffset"], first["endUtcOffset"]) == ("-28800s", "-28800s")
    assert first["civilStartTime"] == {"date": {"year": 2026, "month": 11, "day": 14}}


def test_a_civil_filter_lists_the_same_points_on_the_users_clock(google):
    civil = (
        'steps.interval.civil_start_time >= "2026-11-14T00:00:00" AND '
        'steps.interval.civil_start_time < "2026-11-15T00:00:00"'
    )
    with freeze_time("2026-11-15 18:00:00"):
        access = tokens(google)["access_token"]
        assert (
            listed(google, access, filter=civil).json == listed(google, access, filter=ONE_DAY).json
        )


def test_the_list_comes_a_page_at_a_time(google):
    with freeze_time("2026-11-15 18:00:00"):
        access = tokens(google)["access_token"]
        pages, query = [], {"filter": ONE_DAY, "pageSize": "10"}
        while True:
            answer = listed(google, access, **query).json
            pages.append(len(answer["dataPoints"]))
            if "nextPageToken" not in answer:
                break
            query["pageToken"] = answer["nextPageToken"]
        # A page token is good for the same filter only.
        other = listed(google, access, pageToken=query["pageToken"], filter="")
    assert pages == [10, 10, 4]
    assert other.status_code == 400 and other.json["error"]["status"] == "INVALID_ARGUMENT"


@pytest.mark.parametrize(
    "text",
    [
        'steps.interval.start_time > "2026-11-14T00:00:00Z"',  # only >= and <
        'steps.interval.start_time = "2026-11-14T00:00:00Z"',
        'steps.interval.start_time >= "2026-11-14T00:00:00Z" OR steps.interval.start_time < "x"',
        'active-minutes.interval.start_time >= "2026-11-14T00:00:00Z"',  # kebab case
        'steps.interval.start_time >= "2026-11-14T00:00:00"',  # a physical time needs its zone
        'steps.interval.civil_start_time >= "2026-11-14T00:00:00Z"',  # a civil one has none
        'steps.interval.start_time >= "2026-02-30T00:00:00Z"',
    ],
)
def test_a_filter_google_would_refuse_is_invalid_data_point_filter(google, text):
    access = tokens(google)["access_token"]
    response = listed(google, access, filter=text)
    assert response.status_code == 400
    assert response.json["error"]["details"][0]["reason"] == "INVALID_DATA_POINT_FILTER"
