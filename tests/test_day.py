"""The user's whole day: the Workouts panel and the Heart rate today panel, every page of a
list fetched within the budget and up to a bound, and every day cut in the user's own time
zone, in both dialects, against the stand-ins on real sockets (conftest.beside_a_stand_in).

Sam lives in Auckland and Alex in Los Angeles (sandbox/recordings.py): at 10:59 UTC it is
23:59 for Sam and 02:59 for Alex, and at 11:01 UTC Sam's day is already tomorrow.
"""

import csv
import html
import io
import json
import re
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import beside_a_stand_in
from freezegun import freeze_time
from test_end_to_end import Browser, ask_for_more

import fitbit_legacy
import google_health
import oauth
from models import ApiCache, User, db
from sandbox import recordings

PEOPLE = {  # (Alex, Sam): each stand-in's ids for them
    "fitbit": ("7QW2XR", "9KD3MS"),
    "google": ("hu-4f1e9c2a7b", "hu-8d03b6e5c1"),
}
ROBIN = "hu-2a7c5e9f04"  # at Google alone, and without a Fitbit: no workouts, no readings
DATA_KEY = {"hu-4f1e9c2a7b": "7QW2XR", "hu-8d03b6e5c1": "9KD3MS"}
DIALECTS = {"fitbit": fitbit_legacy, "google": google_health}
LIST_PATHS = {"fitbit": "/activities/list.json", "google": "/exercise/dataPoints"}
TODAY_PATHS = {"fitbit": "/heart/date/today/1d/1min.json", "google": "/heart-rate/dataPoints"}


def panel(text, name):
    found = re.search(
        rf'<section class="panel" aria-labelledby="{name}-heading">(.*?)</section>', text, re.S
    )
    assert found, name
    return html.unescape(found.group(1))


def asked(stand_in, fragment):
    """The requests the stand-in was sent whose path holds `fragment`."""
    return [path for _, path in stand_in.asked if fragment in path]


def key_of(person):
    return DATA_KEY.get(person, person)


def sign_in_with_heart_rate(browser, person):
    browser.sign_in(user=person)
    ask_for_more(browser, "heart_rate", user=person)
    return browser.page.text


# --- Workouts -------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["fitbit", "google"])
def test_workouts_of_two_weeks_each_at_the_users_own_time(tmp_path, provider):
    sam = PEOPLE[provider][1]
    with freeze_time("2026-12-07 20:00:00"), beside_a_stand_in(tmp_path, provider) as (url, _):
        text = Browser(url).sign_in(user=sam).text
        clock = recordings.clock_of("9KD3MS")  # 09:00 on the 8th, in Auckland
        expected = recordings.workouts_of(
            "9KD3MS", clock.date() - timedelta(days=13), clock.date(), clock
        )
    shown = panel(text, "workouts")
    rows = re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td><td>([^<]*)</td>", shown)
    assert len(rows) == len(expected) >= 4
    newest = expected[-1]
    assert rows[0][0] in ("Walk", "Run", "Bike")
    assert (
        rows[0][1]
        == f"{newest.start:%a} {newest.start.day} {newest.start:%b}, {newest.start:%H:%M}"
    )
    assert "by your own clock" in shown
    assert f"{newest.distance_km:.1f} km" in shown or f"{newest.distance_km - 0.05:.1f}" in shown


@pytest.mark.parametrize("provider", ["fitbit", "google"])
def test_a_workout_late_at_night_in_auckland_is_on_its_own_day(tmp_path, provider):
    """A workout at 23:30 in Auckland is 10:30 UTC: on Sam's day, not the one before or
    after it in UTC."""
    day = next(
        d
        for d in (date(2026, 11, 10) + timedelta(days=n) for n in range(60))
        if recordings.workout_on("9KD3MS", d)
        and recordings.workout_on("9KD3MS", d).start.time() == time(23, 30)
    )
    workout = recordings.workout_on("9KD3MS", day)
    moment = recordings.physical("9KD3MS", datetime.combine(day + timedelta(days=1), time(9)))
    with freeze_time(moment), beside_a_stand_in(tmp_path, provider) as (url, _):
        text = Browser(url).sign_in(user=PEOPLE[provider][1]).text
    assert f"{day:%a} {day.day} {day:%b}, 23:30" in panel(text, "workouts")
    assert workout.start.date() == day


@pytest.mark.parametrize("provider", ["fitbit", "google"])
def test_no_workouts_says_so(tmp_path, provider, monkeypatch):
    monkeypatch.setattr(recordings, "workout_on", lambda person, day: None)
    with beside_a_stand_in(tmp_path, provider) as (url, _):
        text = Browser(url).sign_in(user=PEOPLE[provider][0]).text
    assert "No workouts in the last two weeks" in panel(text, "workouts")


def test_robin_without_a_fitbit_has_no_workouts_and_no_readings(tmp_path):
    with beside_a_stand_in(tmp_path, "google") as (url, _):
        text = sign_in_with_heart_rate(Browser(url), ROBIN)
    assert "No workouts in the last two weeks" in panel(text, "workouts")
    assert "No heart rate recorded yet today" in panel(text, "heart_rate_today")


# --- Heart rate today -----------------------------------------------------------------------


def a_day_with_a_morning_workout(person):
    return next(
        d
        for d in (date(2026, 11, 10) + timedelta(days=n) for n in range(60))
        if recordings.workout_on(person, d)
        and recordings.workout_on(person, d).start.hour < 15
        and recordings.made_up_night(person, d)
    )


@pytest.mark.parametrize("provider", ["fitbit", "google"])
def test_heart_rate_today_is_a_line_with_the_workouts_marked_and_the_resting_rate(
    tmp_path, provider
):
    alex = PEOPLE[provider][0]
    day = a_day_with_a_morning_workout("7QW2XR")
    workout = recordings.workout_on("7QW2XR", day)
    evening = recordings.physical("7QW2XR", datetime.combine(day, time(20)))
    with freeze_time(evening), beside_a_stand_in(tmp_path, provider) as (url, stand_in):
        browser = Browser(url)
        browser.sign_in(user=alex)
        assert asked(stand_in, TODAY_PATHS[provider]) == []  # not granted: not asked
        ask_for_more(browser, "heart_rate")
        text = browser.page.text
    shown = panel(text, "heart_rate_today")
    assert "<polyline" in shown and 'class="workout"' in shown
    assert f"{workout.name}, {workout.start:%H:%M} for {workout.minutes} min" in shown
    assert 'class="resting"' in shown and "at rest" in shown
    assert "1 workout today" in shown
    last = re.search(r"Last reading <strong>(\d+)</strong> beats a minute, at (\d\d):(\d\d)", shown)
    assert last and last.group(2) == "19"  # up to 20:00, Alex's own clock


@pytest.mark.parametrize("provider", ["fitbit", "google"])
def test_a_panel_not_granted_asks_nobody_and_one_consent_shows_both_heart_panels(
    tmp_path, provider
):
    with beside_a_stand_in(tmp_path, provider) as (url, stand_in):
        browser = Browser(url)
        first = browser.sign_in(user=PEOPLE[provider][0]).text
        assert "Show my heart rate" in panel(first, "heart_rate_today")
        assert asked(stand_in, TODAY_PATHS[provider]) == []
        ask_for_more(browser, "heart_rate_today")
        text = browser.page.text
    assert "<svg" in panel(text, "heart_rate_today") and "<svg" in panel(text, "heart_rate")


@pytest.mark.parametrize("answer", ["omitted", "forbidden"])
def test_fitbit_without_intraday_access_says_so_and_the_rest_stands(tmp_path, answer):
    with beside_a_stand_in(tmp_path, "fitbit") as (url, stand_in):
        stand_in.stand_in.intraday = answer  # the stand-in's own, behind the Holding
        text = sign_in_with_heart_rate(Browser(url), "7QW2XR")
    shown = panel(text, "heart_rate_today")
    assert "not your heart rate through the day" in shown and "<svg" not in shown
    assert "<svg" in panel(text, "heart_rate") and "<svg" in panel(text, "steps")


# --- Every page, within the budget and up to the bound --------------------------------------


def kept(user_id, path_part):
    """The answer kept for the user whose request path holds `path_part`, as JSON."""
    import token_store

    with db.connection_context():
        user = User.get_by_id(user_id)
        [path] = [p for p in user.cached_answers() if path_part in p]
        return json.loads(token_store.cached_answer(user, path).text)


def test_google_heart_rate_every_page_to_the_end_kept_a_minute_at_a_time(tmp_path):
    evening = recordings.physical("7QW2XR", datetime(2026, 12, 7, 21))
    with freeze_time(evening), beside_a_stand_in(tmp_path, "google") as (url, stand_in):
        sign_in_with_heart_rate(Browser(url), PEOPLE["google"][0])
        pages = asked(stand_in, "/heart-rate/dataPoints")
        with db.connection_context():
            user_id = User.get().id
        found = kept(user_id, "/heart-rate/dataPoints")
    # A reading every five seconds while worn: more than one page of 10,000.
    assert len(pages) >= 2 and found["pages"] == len(pages) and found["stopped"] == ""
    minutes = [minute for minute, _ in found["minutes"]]
    assert minutes == sorted(minutes) and minutes[-1] == 20 * 60 + 59
    assert len(minutes) <= 24 * 60  # a minute's mean each, not the readings


@pytest.mark.parametrize("provider", ["fitbit", "google"])
def test_the_workouts_list_is_followed_page_by_page(tmp_path, provider, monkeypatch):
    dialect = DIALECTS[provider]
    size = "ACTIVITY_PAGE" if provider == "fitbit" else "EXERCISE_PAGE"
    monkeypatch.setattr(dialect, size, 2)  # two workouts to a page: several pages
    with (
        freeze_time("2026-12-07 20:00:00"),
        beside_a_stand_in(tmp_path, provider) as (
            url,
            stand_in,
        ),
    ):
        text = Browser(url).sign_in(user=PEOPLE[provider][0]).text
        pages = asked(stand_in, LIST_PATHS[provider])
    rows = re.findall(r"<tr><td>", panel(text, "workouts"))
    assert len(pages) >= 3 and len(rows) >= 2 * (len(pages) - 1)
    assert "left out" not in panel(text, "workouts")


def bound(monkeypatch, dialect, name, most):
    """The dialect with the list of panel `name` fetched to `most` pages at most."""
    kind = next(kind for kind in dialect.DATA if kind.panel == name)
    bounded = replace(kind, pages=replace(kind.pages, most=most))
    monkeypatch.setattr(dialect, "DATA", tuple(bounded if k is kind else k for k in dialect.DATA))


@pytest.mark.parametrize("provider", ["fitbit", "google"])
def test_at_the_bound_the_workouts_say_what_they_left_out(tmp_path, provider, monkeypatch):
    dialect = DIALECTS[provider]
    monkeypatch.setattr(dialect, "ACTIVITY_PAGE" if provider == "fitbit" else "EXERCISE_PAGE", 1)
    bound(monkeypatch, dialect, "workouts", 2)
    with freeze_time("2026-12-07 20:00:00"), beside_a_stand_in(tmp_path, provider) as (url, s):
        text = Browser(url).sign_in(user=PEOPLE[provider][0]).text
        pages = asked(s, LIST_PATHS[provider])
    shown = panel(text, "workouts")
    assert len(pages) == 2 and len(re.findall(r"<tr><td>", shown)) == 2
    assert "Older workouts are left out" in shown and "longer than the pages" in shown


def test_at_the_bound_googles_heart_rate_today_shows_the_latest_part(tmp_path, monkeypatch):
    """Google's list is newest first: two pages of 1,000 readings (five seconds apart) are
    the last three hours or so, drawn, with a word that the rest was left."""
    monkeypatch.setattr(google_health, "HEART_RATE_PAGE", 1000)
    bound(monkeypatch, google_health, "heart_rate_today", 2)
    evening = recordings.physical("7QW2XR", datetime(2026, 12, 7, 21))
    with freeze_time(evening), beside_a_stand_in(tmp_path, "google") as (url, stand_in):
        text = sign_in_with_heart_rate(Browser(url), PEOPLE["google"][0])
        pages = asked(stand_in, "/heart-rate/dataPoints")
    shown = panel(text, "heart_rate_today")
    assert len(pages) == 2 and "<polyline" in shown
    assert "Only part of today's readings were fetched" in shown
    assert "Last reading" in shown and ", at 20:59" in shown


def test_pages_are_counted_against_fitbits_budget_before_they_are_asked_for(tmp_path, monkeypatch):
    """With the hour's budget of 12 calls, a list of a workout a page stops while calls are
    left for the other panels, at the sign-in and again at the next view: a long list never
    spends the page's budget."""
    monkeypatch.setattr(fitbit_legacy, "ACTIVITY_PAGE", 1)
    with (
        freeze_time("2026-12-07 20:00:00"),
        beside_a_stand_in(tmp_path, "fitbit") as (
            url,
            stand_in,
        ),
    ):
        stand_in.stand_in.rate_limit = 12
        browser = Browser(url)
        first = browser.sign_in(user="7QW2XR").text
        at_sign_in = len(asked(stand_in, LIST_PATHS["fitbit"]))
        with db.connection_context():
            ApiCache.update(fetched_at=datetime(2026, 12, 1, tzinfo=UTC)).execute()  # all stale
            remaining = User.get().rate_remaining
        text = browser.get("/").text
        at_view = len(asked(stand_in, LIST_PATHS["fitbit"])) - at_sign_in
        clock = recordings.clock_of("7QW2XR")
        workouts = recordings.workouts_of(
            "7QW2XR", clock.date() - timedelta(days=13), clock.date(), clock
        )
    assert 1 <= at_sign_in < len(workouts) and at_view == 1
    assert remaining == len(fitbit_legacy.DATA) + 1  # what the page keeps back
    for page in (first, text):
        assert "to keep calls for the rest of this page" in panel(page, "workouts")
        assert "<svg" in panel(page, "steps")  # the steps got their call
    assert "429" not in text


@pytest.mark.parametrize("provider", ["fitbit", "google"])
def test_a_cached_view_makes_no_call_at_all(tmp_path, provider):
    with beside_a_stand_in(tmp_path, provider, FITBIT_CACHE_SECONDS="3600") as (url, stand_in):
        browser = Browser(url)
        sign_in_with_heart_rate(browser, PEOPLE[provider][0])
        before = len(stand_in.asked)
        browser.get("/")
        browser.get("/")
        assert len(stand_in.asked) == before


# What a sign-in, each consent round and a cached view ask of the provider's API, in order
# (the token endpoint and the data, not the consent pages the browser is shown).
CALLS = {
    "fitbit": {
        "sign-in": [
            "POST /oauth2/token",
            "GET /1/user/-/profile.json",
            "GET /1/user/-/activities/steps/date/today/1m.json",
            "GET /1/user/-/activities/list.json",  # the workouts' first and only page
        ],
        "heart_rate": [
            "POST /oauth2/token",
            "GET /1/user/-/profile.json",
            "GET /1/user/-/activities/heart/date/today/30d.json",
            "GET /1/user/-/activities/heart/date/today/1d/1min.json",
        ],
        "sleep": [
            "POST /oauth2/token",
            "GET /1/user/-/profile.json",
            "GET /1.2/user/-/sleep/date/2026-11-24/2026-12-07.json",
        ],
    },
    "google": {
        "sign-in": [
            "POST /token",
            "GET /v4/users/me/identity",
            "GET /v4/users/me/settings",  # the user's time zone
            "POST /v4/users/me/dataTypes/steps/dataPoints:dailyRollUp",
            "GET /v4/users/me/dataTypes/exercise/dataPoints",
        ],
        "heart_rate": [
            "POST /token",
            "GET /v4/users/me/identity",
            "GET /v4/users/me/dataTypes/daily-resting-heart-rate/dataPoints",
            "GET /v4/users/me/dataTypes/heart-rate/dataPoints",  # today's, in one page
        ],
        "sleep": [
            "POST /token",
            "GET /v4/users/me/identity",
            "GET /v4/users/me/dataTypes/sleep/dataPoints",
        ],
    },
}


@pytest.mark.parametrize("provider", ["fitbit", "google"])
def test_the_calls_of_a_sign_in_of_each_consent_round_and_of_a_cached_view(tmp_path, provider):
    """A call for who the user is and one for each panel granted (every page of a list,
    here one), and none for a view while the answers are young."""
    alex, made = PEOPLE[provider][0], {}
    api = re.compile(r"^(POST /(oauth2/)?token|\w+ /(1|1\.2|v4)/)")
    with (
        freeze_time("2026-12-07 20:00:00", tick=True),
        beside_a_stand_in(tmp_path, provider, FITBIT_CACHE_SECONDS="3600") as (url, stand_in),
    ):
        browser, seen = Browser(url), 0

        def since(step):
            nonlocal seen
            made[step] = [f"{m} {p}" for m, p in stand_in.asked[seen:] if api.match(f"{m} {p}")]
            seen = len(stand_in.asked)

        browser.sign_in(user=alex)
        since("sign-in")
        for panel_name in ("heart_rate", "sleep"):
            ask_for_more(browser, panel_name, user=alex)
            since(panel_name)
        for _ in range(3):
            browser.get("/")
        since("views")
    assert made == {**CALLS[provider], "views": []}


def test_a_google_notification_of_a_workout_refetches_the_workouts_alone(tmp_path):
    alex = PEOPLE["google"][0]
    with beside_a_stand_in(tmp_path, "google", webhooks=True, FITBIT_CACHE_SECONDS="86400") as (
        url,
        stand_in,
    ):
        browser = Browser(url)
        sign_in_with_heart_rate(browser, alex)
        before = list(stand_in.asked)
        moment = datetime.now().astimezone()
        sent = stand_in.notify(alex, "exercise", moment - timedelta(hours=1), moment, False)
        assert [status for _, status in sent] == [204]
        browser.get("/")
        browser.get("/")
        new = [path for _, path in stand_in.asked[len(before) :] if "/v4/users/me/" in path]
    assert new == ["/v4/users/me/dataTypes/exercise/dataPoints"]


API = "https://api.fitbit.com"


@pytest.mark.parametrize(
    "following",
    [
        "https://elsewhere.example/1/user/-/activities/list.json?offset=100",
        "http://api.fitbit.com/1/user/-/activities/list.json?offset=100",  # not TLS
        "https://api.fitbit.com.elsewhere.example/1/user/-/activities/list.json?offset=100",
        "https://api.fitbit.com/1/user/-/profile.json?offset=100",  # another path
        "",
        None,
        ["https://api.fitbit.com/1/user/-/activities/list.json?offset=100"],
    ],
)
def test_fitbits_next_page_is_followed_only_to_the_same_api_and_list(following):
    """The Bearer token goes with the next page: a pagination.next elsewhere ends the list."""
    client = oauth.Client(fitbit_legacy, "id", "secret", "https://app.example/cb", api_url=API)
    first = fitbit_legacy.workouts_request(client, date(2026, 12, 7))
    body = {"activities": [], "pagination": {"next": following}}
    assert fitbit_legacy.next_workouts(client, first, body) is None
    same = "https://api.fitbit.com/1/user/-/activities/list.json?afterDate=2026-11-24&offset=100"
    body["pagination"]["next"] = same
    assert fitbit_legacy.next_workouts(client, first, body).url == same


def test_googles_next_page_is_the_apps_own_request_with_the_token_alone():
    """A nextPageToken is a value, never a URL or more parameters: the next page is the
    first request, to the same API and list, with only pageToken added (or replaced)."""
    client = oauth.Client(google_health, "id", "secret", "https://app.example/cb")
    first = google_health.workouts_request(client, date(2026, 12, 7))
    token = "abc&pageSize=1&filter=x#https://elsewhere.example/"
    second = google_health.next_page(client, first, {"nextPageToken": token})
    assert second.url.startswith(first.url + "&pageToken=")
    assert parse_qs(urlsplit(second.url).query)["pageToken"] == [token]
    assert parse_qs(urlsplit(second.url).query)["pageSize"] == [str(google_health.EXERCISE_PAGE)]
    third = google_health.next_page(client, second, {"nextPageToken": "next"})
    assert third.url == first.url + "&pageToken=next"
    for end in ({}, {"nextPageToken": ""}, {"nextPageToken": 7}, {"nextPageToken": "x" * 4096}):
        assert google_health.next_page(client, first, end) is None


# --- Days are the user's own ------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["fitbit", "google"])
@pytest.mark.parametrize(
    "moment, alexs_day, sams_day",
    [
        ("2026-12-07 10:59:00", 7, 7),  # 23:59 in Auckland
        ("2026-12-07 11:01:00", 7, 8),  # 00:01 in Auckland
        ("2026-12-08 07:59:00", 7, 8),  # 23:59 in Los Angeles
        ("2026-12-08 08:01:00", 8, 8),  # 00:01 in Los Angeles
    ],
)
def test_each_persons_today_turns_at_their_own_midnight(
    tmp_path, provider, moment, alexs_day, sams_day
):
    alex, sam = PEOPLE[provider]
    with freeze_time(moment), beside_a_stand_in(tmp_path, provider) as (url, _):
        alexs = Browser(url).sign_in(user=alex).text
        sams = Browser(url).sign_in(user=sam).text
    for text, day in ((alexs, alexs_day), (sams, sams_day)):
        steps = panel(text, "steps")
        last = re.findall(r"<title>(\w+ \d+ \w+): [\d,]+ steps</title>", steps)[-1]
        assert last.split()[1] == str(day), (provider, last)
        # The workouts' two weeks end on each one's own today, so begin 13 days before it.
        first = date(2026, 12, day) - timedelta(days=13)
        assert f"since {first:%a} {first.day} {first:%b}" in panel(text, "workouts")


def test_without_the_time_zone_the_days_are_utcs_and_the_page_says_so(tmp_path):
    with beside_a_stand_in(tmp_path, "google") as (url, _):
        settings_unticked = ["openid", "profile", google_health.ACTIVITY_SCOPE]
        text = Browser(url).sign_in(user=PEOPLE["google"][1], scopes=settings_unticked).text
    assert "Your days are cut at midnight UTC" in html.unescape(text)


# --- Download, and the trace ------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["fitbit", "google"])
def test_download_holds_the_workouts_and_the_days_heart_rate_as_json_and_csv(tmp_path, provider):
    with freeze_time("2026-12-07 20:00:00"), beside_a_stand_in(tmp_path, provider) as (url, _):
        browser = Browser(url)
        sign_in_with_heart_rate(browser, PEOPLE[provider][0])
        alexs_minute = recordings.clock_of("7QW2XR") - timedelta(minutes=1)  # 11:59 in LA
        export = browser.get("/my-data").json()
        workouts = browser.get("/my-data/workouts.csv")
        day = browser.get("/my-data/heart_rate_today.csv")
    rows = export["data"]["workouts"]["rows"]
    assert rows and set(rows[0]) == {
        "start",
        "kind",
        "minutes",
        "km",
        "average_heart_rate",
        "calories",
    }
    today = export["data"]["heart_rate_today"]["rows"]
    assert today and today[-1]["time"] == f"{alexs_minute:%H:%M}" == "11:59"
    listed = list(csv.DictReader(io.StringIO(workouts.text)))
    assert len(listed) == len(rows) and listed[-1]["start"] == rows[-1]["start"]
    minutes = list(csv.DictReader(io.StringIO(day.text)))
    assert minutes and all(re.fullmatch(r"\d\d:\d\d", m["time"]) for m in minutes)


def test_the_trace_shows_each_page_with_its_token(tmp_path):
    evening = recordings.physical("7QW2XR", datetime(2026, 12, 7, 21))
    with freeze_time(evening), beside_a_stand_in(tmp_path, "google") as (url, _):
        browser = Browser(url)
        sign_in_with_heart_rate(browser, PEOPLE["google"][0])
        trace = html.unescape(browser.get("/trace").text)
    assert trace.count("An API call: /v4/users/me/dataTypes/heart-rate/dataPoints") >= 2
    assert "nextPageToken" in trace and "pageToken" in trace
    assert "the app asks again with this as pageToken" in trace
