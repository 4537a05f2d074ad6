"""The signed-in page's panels for sleep and resting heart rate (dashboard.py, panels.py,
chart.py, templates/panels/), in both dialects, with each provider faked by `responses`:
each state (not granted, granted, empty, data, a night without stages, days without a
value), and the rules the steps follow (the cache, the budget, a webhook's change)."""

import re
from datetime import UTC, date, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import oidc
import pytest
from conftest import (
    PROFILE_URL,
    STEPS_URL,
    fitbit_error,
    held,
    profile_body,
    start_sign_in,
    steps_body,
    token_body,
)
from freezegun import freeze_time
from test_google_health import (
    IDENTITY_URL,
    identity_answer,
    rollup_answer,
    rpc_status,
    token_answer,
    userinfo_answer,
)
from test_google_health import STEPS_URL as GOOGLE_STEPS_URL
from werkzeug.test import Client

import fitbit_legacy
import google_health
import oauth
from fitbit_oauth_app import create_app
from models import ApiCache, PendingSignIn, User
from settings import Config

TODAY = date(2026, 11, 23)
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
FITBIT_SLEEP = f"{fitbit_legacy.API_URL}/1.2/user/-/sleep/date/2026-11-10/2026-11-23.json"
FITBIT_HEART = fitbit_legacy.API_URL + fitbit_legacy.HEART_RATE_PATH
GOOGLE_LISTS = google_health.API_URL + google_health.DATA_TYPES
GOOGLE_SLEEP = GOOGLE_LISTS + "/sleep/dataPoints"
GOOGLE_HEART = GOOGLE_LISTS + "/daily-resting-heart-rate/dataPoints"
GOOGLE_SCOPE = {
    "sleep": google_health.SLEEP.scope,
    "heart_rate": google_health.HEART_RATE.scope,
}


# --- Answers, as each provider's documentation shapes them ------------------------------------


def fitbit_night(day, asleep=420, in_bed=460, staged=True, main=True):
    awake = in_bed - asleep
    if staged:
        deep, rem = asleep // 6, asleep // 5
        summary = {
            "deep": {"count": 4, "minutes": deep, "thirtyDayAvgMinutes": deep},
            "light": {"count": 9, "minutes": asleep - deep - rem, "thirtyDayAvgMinutes": 200},
            "rem": {"count": 5, "minutes": rem, "thirtyDayAvgMinutes": rem},
            "wake": {"count": 6, "minutes": awake, "thirtyDayAvgMinutes": awake},
        }
    else:
        summary = {
            "asleep": {"count": 1, "minutes": asleep},
            "restless": {"count": 0, "minutes": 0},
            "awake": {"count": 2, "minutes": awake},
        }
    return {
        "dateOfSleep": day.isoformat(),
        "isMainSleep": main,
        "type": "stages" if staged else "classic",
        "minutesAsleep": asleep,
        "minutesAwake": awake,
        "timeInBed": in_bed,
        "levels": {"summary": summary, "data": [], "shortData": []},
    }


def fitbit_sleep(*nights):
    return {"sleep": list(nights), "summary": {"totalSleepRecords": len(nights)}}


def fitbit_heart(rates):
    """{day: rate or None}: a None day has no restingHeartRate at all, as Fitbit sends it."""
    days = []
    for day, rate in sorted(rates.items()):
        value = {"customHeartRateZones": [], "heartRateZones": []}
        if rate is not None:
            value["restingHeartRate"] = rate
        days.append({"dateTime": day.isoformat(), "value": value})
    return {"activities-heart": days}


def google_night(day, asleep=420, in_bed=460, staged=True, nap=False):
    kinds = (
        ("DEEP", asleep // 6),
        ("LIGHT", asleep - asleep // 6 - asleep // 5),
        ("REM", asleep // 5),
        ("AWAKE", in_bed - asleep),
    )
    if not staged:
        kinds = (("ASLEEP", asleep), ("AWAKE", in_bed - asleep))
    civil = {"date": {"year": day.year, "month": day.month, "day": day.day}}
    return {
        "sleep": {
            "interval": {"startTime": "x", "endTime": "y", "civilEndTime": civil},
            "type": "STAGES" if staged else "CLASSIC",
            "metadata": {"nap": nap},
            "summary": {
                "minutesAsleep": str(asleep),
                "minutesInSleepPeriod": str(in_bed),
                "minutesAwake": str(in_bed - asleep),
                "stagesSummary": [
                    {"type": kind, "minutes": str(minutes), "count": "3"} for kind, minutes in kinds
                ],
            },
        }
    }


def google_heart(rates):
    """{day: rate}, newest first; a day without a value has no point."""
    return {
        "dataPoints": [
            {
                "dailyRestingHeartRate": {
                    "date": {"year": day.year, "month": day.month, "day": day.day},
                    "beatsPerMinute": str(rate),
                }
            }
            for day, rate in sorted(rates.items(), reverse=True)
            if rate is not None
        ]
    }


# --- Each dialect, signed in with some of the scopes -----------------------------------------


class Dialect:
    """What both dialects' tests do alike: the app, its answers, and the calls made."""

    def __init__(self, dialect, client_id, tmp_path, mock):
        client = oauth.Client(
            dialect, client_id, "secret-SENTINEL", "http://localhost:4000/auth/callback"
        )
        self.app = create_app(Config(client, f"sqlite:///{tmp_path / 'p.db'}", secret_key=b"k"))
        self.browser, self.mock = Client(self.app), mock

    def answers(self, sleep=None, heart=None):
        if sleep is not None:
            self.mock.upsert("GET", self.sleep_url, json=sleep)
        if heart is not None:
            self.mock.upsert("GET", self.heart_url, json=self.heart(heart))

    def calls(self, url):
        return [call for call in self.mock.calls if call.request.url.split("?")[0] == url]


class Fitbit(Dialect):
    key, sleep_url, heart_url = "fitbit", FITBIT_SLEEP, FITBIT_HEART
    today_url = fitbit_legacy.API_URL + fitbit_legacy.HEART_RATE_TODAY_PATH
    night, sleep_answer = staticmethod(fitbit_night), staticmethod(fitbit_sleep)
    heart = staticmethod(fitbit_heart)
    no_sleep = {"sleep": []}

    def __init__(self, tmp_path, mock):
        super().__init__(fitbit_legacy, "23TEST", tmp_path, mock)

    def sign_in(self, *panels):
        scope = " ".join(
            [
                "activity",
                "profile",
                *({"sleep": "sleep", "heart_rate": "heartrate"}[p] for p in panels),
            ]
        )
        query = start_sign_in(self.browser)
        self.mock.upsert("POST", fitbit_legacy.TOKEN_URL, json=token_body(scope=scope))
        self.mock.upsert("GET", PROFILE_URL, json=profile_body())
        self.mock.upsert("GET", STEPS_URL, json=steps_body())
        answer = self.browser.get(
            "/auth/callback", query_string={"code": "c", "state": query["state"]}
        )
        assert answer.status_code == 302


class Google(Dialect):
    key, sleep_url, heart_url = "google", GOOGLE_SLEEP, GOOGLE_HEART
    today_url = GOOGLE_LISTS + "/heart-rate/dataPoints"
    CLIENT_ID = "1-a.apps.googleusercontent.com"
    night, no_sleep = staticmethod(google_night), {}
    heart = staticmethod(google_heart)

    def __init__(self, tmp_path, mock):
        super().__init__(google_health, self.CLIENT_ID, tmp_path, mock)

    @staticmethod
    def sleep_answer(*nights):
        return {"dataPoints": list(reversed(nights))}

    def sign_in(self, *panels):
        granted = [token_answer()["scope"], *(GOOGLE_SCOPE[p] for p in panels)]
        query = start_sign_in(self.browser)
        answer = token_answer(scope=" ".join(granted), client_id=self.CLIENT_ID)
        self.mock.upsert("POST", google_health.TOKEN_URL, json=answer)
        self.mock.upsert("GET", IDENTITY_URL, json=identity_answer())
        self.mock.upsert("GET", google_health.USERINFO_URL, json=userinfo_answer())
        self.mock.upsert("POST", GOOGLE_STEPS_URL, json=rollup_answer())
        answer = self.browser.get(
            "/auth/callback", query_string={"code": "c", "state": query["state"]}
        )
        assert answer.status_code == 302


@pytest.fixture(params=[Fitbit, Google], ids=["fitbit", "google"])
def provider(request, tmp_path, fitbit, monkeypatch):
    # Google's ID tokens: its keys on the same mock, and the nonce they carry (tests/oidc.py).
    oidc.serve_keys(fitbit)
    monkeypatch.setattr(oauth, "new_nonce", lambda: oidc.NONCE)
    with freeze_time(NOW):
        yield request.param(tmp_path, fitbit)


def home(provider):
    response = provider.browser.get("/")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def panel(text, name):
    """The markup of one panel of the page."""
    found = re.search(
        rf'<section class="panel" aria-labelledby="{name}-heading">(.*?)</section>', text, re.S
    )
    assert found, name
    return found.group(1)


def last_week(rate=58):
    return {TODAY - timedelta(days=n): rate + n % 3 for n in range(7)}


# --- Not granted ----------------------------------------------------------------------------


def test_a_panel_not_granted_says_what_it_would_show_and_asks_no_provider(provider):
    provider.sign_in()
    text = home(provider)
    sleep, heart = panel(text, "sleep"), panel(text, "heart_rate")
    assert "its stages, and two weeks of nights" in sleep
    assert "Show my sleep" in sleep and 'name="panel" value="sleep"' in sleep
    assert "Show my heart rate" in heart and "<svg" not in sleep + heart
    assert 'name="csrf_token"' in sleep  # a POST with the form's token
    assert provider.calls(provider.sleep_url) == provider.calls(provider.heart_url) == []
    assert provider.calls(provider.today_url) == []  # read with the heart rate's scope
    assert "Show my heart rate" in panel(text, "heart_rate_today")
    assert (
        "You allowed this app to see your name and picture, your steps and your workouts." in text
    )


# --- Granted: data, empty, no stages, gaps --------------------------------------------------


def test_sleep_shows_last_night_its_stages_and_two_weeks_of_nights(provider):
    provider.sign_in("sleep")
    nights = [provider.night(TODAY - timedelta(days=n), asleep=400 + n) for n in (5, 2, 1, 0)]
    provider.answers(sleep=provider.sleep_answer(*nights))
    shown = panel(home(provider), "sleep")
    assert "<strong>6 h 40 min</strong> asleep, 7 h 40 min in bed" in shown
    assert "last night" in shown
    for stage in ("Deep", "Light", "REM", "Awake"):
        assert f"{stage}: " in shown
    bars = re.findall(r"<rect x=[^>]*><title>([^<]+)</title>", shown)
    assert bars == [
        "Wed 18 Nov: 6 h 45 min asleep",
        "Sat 21 Nov: 6 h 42 min asleep",
        "Sun 22 Nov: 6 h 41 min asleep",
        "Mon 23 Nov: 6 h 40 min asleep",
    ]
    assert "Show my sleep" not in shown


def test_a_nap_is_not_last_night(provider):
    provider.sign_in("sleep")
    night = provider.night(TODAY, asleep=410)
    if provider.key == "fitbit":
        nap = fitbit_night(TODAY, asleep=30, in_bed=40, staged=False, main=False)
    else:
        nap = google_night(TODAY, asleep=30, in_bed=40, staged=False, nap=True)
    provider.answers(sleep=provider.sleep_answer(night, nap))
    assert "<strong>6 h 50 min</strong> asleep" in panel(home(provider), "sleep")


def test_a_night_without_stages_shows_asleep_and_awake_only(provider):
    provider.sign_in("sleep")
    provider.answers(sleep=provider.sleep_answer(provider.night(TODAY, staged=False)))
    shown = panel(home(provider), "sleep")
    assert "Asleep: 7 h 00 min" in shown and "Awake: 40 min" in shown
    assert "Deep" not in shown and "asleep and awake only" in shown


def test_no_sleep_recorded_yet_says_so(provider):
    provider.sign_in("sleep")
    provider.answers(sleep=provider.no_sleep)
    shown = panel(home(provider), "sleep")
    assert "No sleep recorded yet" in shown and "<svg" not in shown


def test_resting_heart_rate_today_and_thirty_days_with_gaps_not_zeros(provider):
    provider.sign_in("heart_rate")
    rates = {**last_week(), TODAY - timedelta(days=3): None, TODAY - timedelta(days=20): 71}
    provider.answers(heart=rates)
    shown = panel(home(provider), "heart_rate")
    assert "<strong>58</strong> beats a minute at rest today" in shown
    points = re.findall(r"<circle [^>]*><title>([^<]+)</title>", shown)
    assert len(points) == 7 and "Fri 20 Nov: 58" not in points  # the gap has no point
    assert "Tue 3 Nov: 71" in points
    # Three runs of days in a row: 20 November alone, then two broken by the gap.
    assert len(re.findall(r"<polyline ", shown)) == 2
    labels = re.findall(r'class="grid-label"[^>]*>(\d+)', shown)
    assert labels and all(int(label) % 5 == 0 for label in labels)
    assert ">no value<" in shown  # in the table of numbers too


def test_the_heart_rate_is_named_once_where_two_panels_read_it(provider):
    """Heart rate today and Resting heart rate come with the one scope: the sentence of
    what the user allowed says "your heart rate" once, not once a panel."""
    provider.sign_in("sleep", "heart_rate")
    provider.answers(sleep=provider.no_sleep, heart=last_week())
    text = home(provider)
    allowed = re.search(r"You allowed this app to see ([^<]+)\.</p>", text).group(1)
    assert allowed == (
        "your name and picture, your steps, your workouts, your sleep and your heart rate"
    )


def test_no_resting_rate_today_shows_the_last_one(provider):
    provider.sign_in("heart_rate")
    provider.answers(heart={TODAY - timedelta(days=2): 61})
    shown = panel(home(provider), "heart_rate")
    assert "No resting rate yet today; the last, on Sat 21 Nov, was <strong>61</strong>" in shown


def test_no_heart_rate_recorded_says_so(provider):
    provider.sign_in("heart_rate")
    provider.answers(heart={})
    assert "No resting heart rate recorded" in panel(home(provider), "heart_rate")


def test_an_answer_the_app_cannot_read_is_a_note_and_the_rest_of_the_page_stands(provider):
    provider.sign_in("sleep", "heart_rate")
    provider.answers(sleep={"sleep": "broken", "dataPoints": "broken"}, heart=last_week())
    text = home(provider)
    assert "sent your sleep in a shape this app cannot read" in text
    assert "<strong>58</strong> beats a minute" in panel(text, "heart_rate")


# --- The rules the steps follow -----------------------------------------------------------------


def test_one_call_per_panel_then_none_while_cached(provider):
    provider.sign_in("sleep", "heart_rate")
    provider.answers(sleep=provider.sleep_answer(provider.night(TODAY)), heart=last_week())
    home(provider)  # the one with the flash
    first = home(provider)
    for _ in range(5):
        assert home(provider) == first
    assert len(provider.calls(provider.sleep_url)) == len(provider.calls(provider.heart_url)) == 1


def test_a_scope_taken_back_at_the_provider_asks_again(provider):
    provider.sign_in("sleep")
    if provider.key == "fitbit":
        provider.mock.upsert(
            "GET", FITBIT_SLEEP, status=403, json=fitbit_error("insufficient_scope")
        )
    else:
        refused = rpc_status(403, "PERMISSION_DENIED", "ACCESS_TOKEN_SCOPE_INSUFFICIENT")
        provider.mock.upsert("GET", GOOGLE_SLEEP, status=403, json=refused)
    assert "Show my sleep" in panel(home(provider), "sleep")


def test_a_spent_budget_shows_each_panels_last_answer_with_one_note(provider):
    provider.sign_in("sleep", "heart_rate")
    provider.answers(sleep=provider.sleep_answer(provider.night(TODAY)), heart=last_week())
    home(provider)
    if provider.key == "fitbit":
        refused = {
            "status": 429,
            "json": fitbit_error("system"),
            "headers": {"Fitbit-Rate-Limit-Reset": "600"},
        }
    else:
        refused = {"status": 429, "json": rpc_status(429, "RESOURCE_EXHAUSTED")}
    for url in (provider.sleep_url, provider.heart_url):
        provider.mock.upsert("GET", url, **refused)
    with freeze_time(NOW + timedelta(minutes=6)):  # past the cache's five minutes
        text = home(provider)
    assert text.count("is used up") == 1
    assert "<strong>7 h 00 min</strong> asleep" in text and "<strong>58</strong>" in text


def test_the_sleep_request_asks_for_two_weeks_as_each_provider_documents(provider):
    provider.sign_in("sleep")
    provider.answers(sleep=provider.no_sleep)
    home(provider)
    [call] = provider.calls(provider.sleep_url)
    if provider.key == "fitbit":
        assert call.request.url == FITBIT_SLEEP
    else:
        query = parse_qs(urlsplit(call.request.url).query)
        assert query == {
            "filter": ['sleep.interval.civil_end_time >= "2026-11-10T00:00:00"'],
            "pageSize": ["50"],
        }


def test_the_page_from_the_caches_is_the_page_drawn_anew(provider):
    import dashboard

    provider.sign_in("sleep", "heart_rate")
    provider.answers(sleep=provider.sleep_answer(provider.night(TODAY)), heart=last_week())
    home(provider)  # the one with the flash
    warm = home(provider)
    dashboard.read.cache_clear()
    provider.app.pages.panel.cache_clear()
    assert home(provider) == warm
    # The profile, steps, workouts, sleep, heart rate and today's, and at Google the
    # settings (the time zone), which at Fitbit is in the profile.
    assert ApiCache.select().count() == (7 if provider.key == "google" else 6)


# --- Step 10: asking for one kind of data more ---------------------------------------------


def ask_for(provider, name):
    """Press a panel's button: POST /auth/more with the page's CSRF token. The query of the
    authorization request it redirects to."""
    text = home(provider)
    token = re.search(r'name="csrf_token" value="([^"]+)"', text).group(1)
    answer = provider.browser.post("/auth/more", data={"csrf_token": token, "panel": name})
    assert answer.status_code == 302
    return {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}


def come_back(provider, query, scope, who=None, refresh_token=None, **params):
    """The provider's answer to the round: its token answer grants `scope`, for `who` (the
    signed-in person unless given). Returns the callback's response."""
    if provider.key == "fitbit":
        body = token_body(scope=scope, access_token="round-access", refresh_token="round-refresh")
        body["user_id"] = who or body["user_id"]
        provider.mock.upsert("POST", fitbit_legacy.TOKEN_URL, json=body)
    else:
        body = token_answer(
            scope=scope,
            access_token="round-access",
            refresh_token=refresh_token,
            client_id=provider.CLIENT_ID,
        )
        provider.mock.upsert("POST", google_health.TOKEN_URL, json=body)
        identity = identity_answer() if who is None else {"healthUserId": who}
        provider.mock.upsert("GET", IDENTITY_URL, json=identity)
    provider.mock.upsert("POST", provider.revoke_url, json={})
    return provider.browser.get(
        "/auth/callback", query_string={"code": "round-code", "state": query["state"], **params}
    )


Fitbit.revoke_url, Google.revoke_url = fitbit_legacy.REVOKE_URL, google_health.REVOKE_URL


def token_requests(provider):
    url = fitbit_legacy.TOKEN_URL if provider.key == "fitbit" else google_health.TOKEN_URL
    return [call.request for call in provider.mock.calls if call.request.url == url]


def test_show_my_sleep_asks_for_that_scope_alone_with_state_and_pkce(provider):
    provider.sign_in()
    first = User.get().scope
    query = ask_for(provider, "sleep")
    pending = PendingSignIn.get()
    assert len(query["state"]) >= 43 and query["code_challenge_method"] == "S256"
    if provider.key == "fitbit":  # no incremental authorization: every scope held, and one more
        assert query["scope"] == f"{first} sleep" and "include_granted_scopes" not in query
    else:
        # Sleep alone, and openid again (held already), so that an ID token comes back.
        assert query["scope"] == f"openid {google_health.SLEEP.scope}"
        assert query["nonce"] == oidc.NONCE and pending.nonce == oidc.NONCE
        assert query["include_granted_scopes"] == "true" and query["access_type"] == "offline"
        assert "prompt" not in query  # the app holds a refresh token: no forced consent
    assert (pending.user_id, pending.panel) == (User.get().id, "sleep")


def test_a_granted_round_widens_the_same_row_and_the_panel_shows(provider):
    provider.sign_in()
    before = User.get()
    query = ask_for(provider, "sleep")
    widened = f"{before.scope} {GOOGLE_SCOPE['sleep'] if provider.key == 'google' else 'sleep'}"
    back = come_back(provider, query, widened)
    assert back.status_code == 302 and back.headers["Location"] == "/"
    after = User.get()
    assert (User.select().count(), after.id) == (1, before.id)
    assert after.scope == widened and held(after).access_token == "round-access"
    # Google's answer had no refresh token: the one it gave at sign-in goes on.
    kept = "round-refresh" if provider.key == "fitbit" else held(before).refresh_token
    assert held(after).refresh_token == kept
    provider.answers(sleep=provider.sleep_answer(provider.night(TODAY)))
    text = home(provider)
    assert "now lets this app see your sleep" in text
    assert "<strong>7 h 00 min</strong> asleep" in panel(text, "sleep")
    [request] = token_requests(provider)[1:]
    verifier = parse_qs(request.body)["code_verifier"][0]
    assert oauth.code_challenge(verifier) == query["code_challenge"]


def test_the_new_scope_unticked_changes_nothing(provider):
    provider.sign_in()
    before = User.get()
    back = come_back(provider, ask_for(provider, "sleep"), before.scope)
    assert back.status_code == 302
    after = User.get()
    assert (after.scope, held(after).access_token, held(after).refresh_token) == (
        before.scope,
        held(before).access_token,
        held(before).refresh_token,
    )
    text = home(provider)
    assert "You did not allow access to your sleep, so it is not shown" in text
    assert "Show my sleep" in panel(text, "sleep") and "<svg" in panel(text, "steps")
    revokes = [call for call in provider.mock.calls if call.request.url == provider.revoke_url]
    assert revokes == []  # Fitbit's revoke would end the pair still in use


def test_deny_comes_back_with_a_note_and_no_token_request(provider):
    provider.sign_in()
    before = User.get()
    query = ask_for(provider, "heart_rate")
    back = provider.browser.get(
        "/auth/callback", query_string={"error": "access_denied", "state": query["state"]}
    )
    assert back.status_code == 302
    assert len(token_requests(provider)) == 1  # the sign-in's alone
    assert User.get().scope == before.scope
    assert "You chose not to show your heart rate." in home(provider)


@pytest.mark.parametrize("connected_here", [False, True], ids=["stranger", "another-user"])
def test_a_round_that_comes_back_as_another_account_is_refused(provider, connected_here):
    provider.sign_in()
    before = User.get()
    other = "OTHER1" if provider.key == "fitbit" else "hu-0therone"
    if connected_here:
        ids = {"fitbit_id": other} if provider.key == "fitbit" else {"health_user_id": other}
        User.create(display_name="Other", provider=provider.key, refresh_token="theirs", **ids)
    query = ask_for(provider, "sleep")
    scope = f"{before.scope} {GOOGLE_SCOPE['sleep'] if provider.key == 'google' else 'sleep'}"
    back = come_back(provider, query, scope, who=other, refresh_token="stranger-refresh")
    assert back.status_code == 302
    assert held(User.get_by_id(before.id)).access_token == held(before).access_token
    assert User.get_by_id(before.id).scope == before.scope
    assert User.select().count() == (2 if connected_here else 1)
    assert "as another" in home(provider)
    revokes = [call for call in provider.mock.calls if call.request.url == provider.revoke_url]
    # A stranger's tokens go back; another user's grant, in use here, is left alone.
    assert len(revokes) == (0 if connected_here else 1)


def test_a_round_with_a_forged_or_replayed_state_makes_no_token_request(provider):
    provider.sign_in()
    query = ask_for(provider, "sleep")
    forged = provider.browser.get("/auth/callback", query_string={"code": "x", "state": "forged"})
    assert forged.status_code == 302  # signed in already: home, nothing exchanged
    assert len(token_requests(provider)) == 1
    come_back(provider, query, User.get().scope + " x")
    come_back(provider, query, User.get().scope + " x")  # the same again
    assert len(token_requests(provider)) == 2


def test_more_is_a_post_with_the_forms_token_from_a_signed_in_user(provider):
    provider.sign_in()
    token = re.search(r'name="csrf_token" value="([^"]+)"', home(provider)).group(1)
    post = provider.browser.post
    assert provider.browser.get("/auth/more").status_code == 405
    assert post("/auth/more", data={"panel": "sleep"}).status_code == 403
    assert post("/auth/more", data={"csrf_token": token, "panel": "weight"}).status_code == 400
    granted = post("/auth/more", data={"csrf_token": token, "panel": "steps"})
    assert granted.status_code == 302 and granted.headers["Location"] == "/"  # nothing to ask
    stranger = Client(provider.app)
    assert stranger.post("/auth/more", data={"panel": "sleep"}).status_code == 403
    assert PendingSignIn.select().count() == 0


def test_the_trace_shows_the_second_round_each_row_explained(provider):
    provider.sign_in()
    before = User.get().scope
    query = ask_for(provider, "sleep")
    come_back(
        provider,
        query,
        f"{before} {GOOGLE_SCOPE['sleep'] if provider.key == 'google' else 'sleep'}",
    )
    trace = provider.browser.get("/trace").get_data(as_text=True)
    assert "A second consent round, for your sleep" in trace
    assert "What the consent round changed" in trace and "scope before" in trace
    if provider.key == "google":
        assert "include_granted_scopes" in trace and "adds to the grant" in trace
    assert trace.index("A second consent round") < trace.index("What the consent round changed")
