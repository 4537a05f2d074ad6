"""The stand-ins' sleep and resting heart rate (sandbox/fitbit_sleep_heart.py,
sandbox/google_sleep_heart.py, sandbox/recordings.py), driven by hand-built requests as
clients written from each provider's documentation drive them: python-fitbit 0.3.1 for
Fitbit, and the google-health-api client (0.10.0) for Google, whose models each answer must
fill."""

from datetime import date, datetime

import pytest
import test_sandbox_fitbit
import test_sandbox_google
from freezegun import freeze_time
from test_sandbox_fitbit import ALEX as FITBIT_ALEX
from test_sandbox_fitbit import api, assert_fitbit_error
from test_sandbox_google import AUTH, bearer
from werkzeug.test import Client

import sandbox
from sandbox import recordings

NOW = "2026-11-23 18:00:00"
HEALTH = AUTH + "googlehealth."
SLEEP, METRICS = HEALTH + "sleep.readonly", HEALTH + "health_metrics_and_measurements.readonly"
GOOGLE_ALEX, ROBIN = "hu-4f1e9c2a7b", "hu-2a7c5e9f04"
SLEEP_LIST = "/v4/users/me/dataTypes/sleep/dataPoints"
HEART_LIST = "/v4/users/me/dataTypes/daily-resting-heart-rate/dataPoints"


def stand_in(kind, tests):
    """A test client of a new stand-in of `kind`, with the client of `tests` registered."""
    registered = sandbox.RegisteredClient(tests.CLIENT_ID, tests.SECRET, tests.REDIRECT)
    return Client(kind([registered]))


@pytest.fixture
def fitbit():
    return stand_in(sandbox.FitbitStandIn, test_sandbox_fitbit)


@pytest.fixture
def google():
    return stand_in(sandbox.GoogleStandIn, test_sandbox_google)


def fitbit_tokens(fitbit, scopes, user=FITBIT_ALEX):
    """Tokens for `user` at the Fitbit stand-in, asked for and granted `scopes`."""
    return test_sandbox_fitbit.tokens(fitbit, scopes=scopes, scope=" ".join(scopes), user=user)


def google_tokens(google, scopes, user="hu-4f1e9c2a7b"):
    """Tokens for `user` at the Google stand-in, asked for and granted `scopes`."""
    asked = f"openid {' '.join(scopes)}"
    return test_sandbox_google.tokens(google, user=user, scopes=scopes, scope=asked)


# --- What the demo people recorded ----------------------------------------------------------


def test_nights_look_like_a_persons_and_are_the_same_on_every_read():
    now = datetime(2026, 11, 23, 18, 0)
    nights = recordings.nights_of(FITBIT_ALEX, date(2026, 8, 1), date(2026, 11, 23), now, {})
    assert nights == recordings.nights_of(
        FITBIT_ALEX, date(2026, 8, 1), date(2026, 11, 23), now, {}
    )
    main = [night for night in nights if night.main]
    assert all(300 <= night.in_bed <= 540 for night in main)  # 5 to 9 hours in bed
    staged = [night for night in main if night.staged]
    for level, (low, high) in (("deep", (0.10, 0.22)), ("rem", (0.15, 0.27))):
        assert all(low <= night.minutes_of(level) / night.in_bed <= high for night in staged)
    assert all(0.04 <= night.awake / night.in_bed <= 0.14 for night in main)
    days = {night.day for night in main}
    assert 0 < 115 - len(days) < 25  # a few nights not worn
    assert any(not night.staged for night in main)  # the odd night without stages
    assert any(not night.main for night in nights)  # the odd nap
    unstaged = [night for night in nights if not night.staged]
    assert all({stage.level for stage in night.stages} <= {"asleep", "wake"} for night in unstaged)
    # Each night's stages follow one another, from going to bed to getting up.
    for night in nights:
        assert all(a.end == b.start for a, b in zip(night.stages, night.stages[1:], strict=False))


def test_resting_heart_rates_drift_slowly_with_gaps_and_never_tomorrow():
    today = date(2026, 11, 23)
    rates = [
        recordings.resting_rate(FITBIT_ALEX, date.fromordinal(n), today)
        for n in range(today.toordinal() - 90, today.toordinal() + 1)
    ]
    values = [rate for rate in rates if rate is not None]
    assert 50 <= min(values) and max(values) <= 75
    assert 0 < rates.count(None) < 20
    steps = [abs(a - b) for a, b in zip(values, values[1:], strict=False)]
    assert max(steps) <= 6  # a drift, not a jump
    assert recordings.resting_rate(FITBIT_ALEX, date(2026, 11, 24), today) is None


# --- Fitbit ---------------------------------------------------------------------------------


@freeze_time(NOW)
def test_fitbit_resting_heart_rate_as_python_fitbit_asks_for_it(fitbit):
    """python-fitbit's time_series('activities/heart', period='30d') GETs this path."""
    access = fitbit_tokens(fitbit, scopes=["activity", "heartrate"])["access_token"]
    answer = api(fitbit, "/1/user/-/activities/heart/date/today/30d.json", access)
    assert answer.status_code == 200 and answer.headers["Fitbit-Rate-Limit-Limit"] == "150"
    days = answer.json["activities-heart"]
    assert [day["dateTime"] for day in (days[0], days[-1])] == ["2026-10-25", "2026-11-23"]
    assert len(days) == 30
    for day in days:
        value = day["value"]
        assert [zone["name"] for zone in value["heartRateZones"]] == [
            "Out of Range",
            "Fat Burn",
            "Cardio",
            "Peak",
        ]
        expected = recordings.resting_rate(
            FITBIT_ALEX, date.fromisoformat(day["dateTime"]), date(2026, 11, 23)
        )
        assert value.get("restingHeartRate") == expected  # left out on a day of too little wear
    assert any("restingHeartRate" not in day["value"] for day in days)


@freeze_time(NOW)
@pytest.mark.parametrize(
    "path, days",
    [
        ("today/1d", 1),
        ("2026-11-23/7d", 7),
        ("2026-11-23/1w", 7),
        ("today/1m", 31),
        ("2026-01-01/2026-11-23", 327),
    ],
)
def test_fitbit_heart_rate_periods_and_ranges(fitbit, path, days):
    access = fitbit_tokens(fitbit, scopes=["heartrate"])["access_token"]
    answer = api(fitbit, f"/1/user/-/activities/heart/date/{path}.json", access)
    assert len(answer.json["activities-heart"]) == days


@freeze_time(NOW)
@pytest.mark.parametrize("path", ["today/3m", "today/1y", "2025-01-01/2026-11-23", "x/1d"])
def test_fitbit_heart_rate_takes_no_longer_period_than_a_year(fitbit, path):
    access = fitbit_tokens(fitbit, scopes=["heartrate"])["access_token"]
    answer = api(fitbit, f"/1/user/-/activities/heart/date/{path}.json", access)
    assert_fitbit_error(answer, 400, "validation")


@freeze_time(NOW)
def test_fitbit_sleep_range_as_the_1_2_api_sends_it(fitbit):
    access = fitbit_tokens(fitbit, scopes=["sleep"])["access_token"]
    answer = api(fitbit, "/1.2/user/-/sleep/date/2026-11-10/2026-11-23.json", access)
    assert answer.status_code == 200
    records = answer.json["sleep"]
    days = [record["dateOfSleep"] for record in records]
    assert days == sorted(days, reverse=True) and "2026-11-23" in days  # last night is there
    for record in records:
        assert record["timeInBed"] == record["minutesAsleep"] + record["minutesAwake"]
        assert record["duration"] == record["timeInBed"] * 60_000
        assert len(record["startTime"]) == 23 and "+" not in record["startTime"]  # no offset
        summary = record["levels"]["summary"]
        if record["type"] == "stages":
            assert set(summary) == {"deep", "light", "rem", "wake"}
            assert sum(level["minutes"] for level in summary.values()) == record["timeInBed"]
        else:
            assert set(summary) == {"asleep", "restless", "awake"}
        levels = {entry["level"] for entry in record["levels"]["data"]}
        assert levels <= set(summary)
    assert any(not record["isMainSleep"] for record in records) or len(records) < 14
    totals = answer.json["summary"]
    assert totals["totalSleepRecords"] == len(records)


@freeze_time(NOW)
@pytest.mark.parametrize(
    "path, status, error",
    [
        ("/1.2/user/-/sleep/date/2026-08-01/2026-11-23.json", 400, "validation"),  # 115 days
        ("/1.2/user/-/sleep/date/2026-11-23/2026-11-10.json", 400, "validation"),
        ("/1/user/-/activities/heart/date/today/30d.json", 403, "insufficient_scope"),
    ],
)
def test_fitbit_refuses_what_fitbit_refuses(fitbit, path, status, error):
    access = fitbit_tokens(fitbit, scopes=["sleep"])["access_token"]
    assert_fitbit_error(api(fitbit, path, access), status, error)


@freeze_time(NOW)
def test_fitbit_sleep_without_its_scope_is_insufficient_scope(fitbit):
    access = fitbit_tokens(fitbit, scopes=["activity", "heartrate"])["access_token"]
    path = "/1.2/user/-/sleep/date/2026-11-10/2026-11-23.json"
    assert_fitbit_error(api(fitbit, path, access), 403, "insufficient_scope")


@freeze_time(NOW)
def test_fitbit_sleep_and_heart_count_against_the_same_budget(fitbit):
    access = fitbit_tokens(fitbit, scopes=["activity", "heartrate", "sleep"])["access_token"]
    remaining = [
        api(fitbit, path, access).headers["Fitbit-Rate-Limit-Remaining"]
        for path in (
            "/1/user/-/activities/steps/date/today/1m.json",
            "/1/user/-/activities/heart/date/today/30d.json",
            "/1.2/user/-/sleep/date/2026-11-10/2026-11-23.json",
        )
    ]
    assert remaining == ["149", "148", "147"]


# --- Google ---------------------------------------------------------------------------------


def listed(google, path, access, **query):
    return google.get(path, query_string=query, headers=bearer(access))


def assert_a_client_model_reads(point, field, required):
    """What the google-health-api client's models need to read a point (they need Python
    3.14, so the test checks their required fields instead of installing them):
    DataPoint.from_api_dict takes the payload under the type's field; each required field of
    its dataclass must be there, with the JSON type it declares."""
    payload = point[field]
    for path, kind in required.items():
        value = payload
        for key in path.split("."):
            value = value[key]
        assert isinstance(value, kind), (path, value)


SLEEP_REQUIRED = {
    "interval.startTime": str,
    "interval.endTime": str,
}
STAGE_REQUIRED = ("startTime", "endTime", "startUtcOffset", "endUtcOffset", "type")


@freeze_time(NOW)
def test_google_sleep_newest_first_with_minutes_as_strings(google):
    access = google_tokens(google, scopes=[SLEEP])["access_token"]
    since = 'sleep.interval.civil_end_time >= "2026-11-10T00:00:00"'
    answer = listed(google, SLEEP_LIST, access, filter=since, pageSize="50")
    assert answer.status_code == 200
    points = answer.json["dataPoints"]
    starts = [point["sleep"]["interval"]["startTime"] for point in points]
    assert starts == sorted(starts, reverse=True)
    assert points[0]["sleep"]["interval"]["civilEndTime"]["date"] == {
        "year": 2026,
        "month": 11,
        "day": 23,
    }
    for point in points:
        assert_a_client_model_reads(point, "sleep", SLEEP_REQUIRED)
        sleep = point["sleep"]
        assert all(set(STAGE_REQUIRED) <= set(stage) for stage in sleep["stages"])
        summary = sleep["summary"]
        assert all(isinstance(summary[key], str) for key in ("minutesAsleep", "minutesAwake"))
        kinds = {entry["type"] for entry in summary["stagesSummary"]}
        assert kinds in ({"DEEP", "LIGHT", "REM", "AWAKE"}, {"ASLEEP", "AWAKE"})
        assert (sleep["type"] == "STAGES") == (kinds == {"DEEP", "LIGHT", "REM", "AWAKE"})
        in_bed = int(summary["minutesInSleepPeriod"])
        assert in_bed == int(summary["minutesAsleep"]) + int(summary["minutesAwake"])
    assert any(point["sleep"]["metadata"]["nap"] for point in points)


@freeze_time(NOW)
def test_google_sleep_filters_on_the_start_or_the_civil_end_and_pages(google):
    access = google_tokens(google, scopes=[SLEEP])["access_token"]
    by_end = listed(
        google,
        SLEEP_LIST,
        access,
        filter='sleep.interval.civil_end_time >= "2026-11-20T00:00:00" AND '
        'sleep.interval.civil_end_time < "2026-11-22T00:00:00"',
    ).json["dataPoints"]
    ends = {point["sleep"]["interval"]["endTime"][:10] for point in by_end}
    assert ends <= {"2026-11-20", "2026-11-21"} and ends
    by_start = listed(
        google, SLEEP_LIST, access, filter='sleep.interval.start_time >= "2026-11-22T12:00:00Z"'
    ).json["dataPoints"]
    assert all(
        point["sleep"]["interval"]["startTime"] >= "2026-11-22T12:00:00Z" for point in by_start
    )
    first = listed(google, SLEEP_LIST, access, pageSize="3")
    assert len(first.json["dataPoints"]) == 3
    rest = listed(google, SLEEP_LIST, access, pageSize="3", pageToken=first.json["nextPageToken"])
    assert rest.json["dataPoints"][0] != first.json["dataPoints"][0]


@freeze_time(NOW)
@pytest.mark.parametrize(
    "text",
    [
        'sleep.interval.civil_end_time >= "2026-11-20T00:00:00Z"',  # a civil field, a zone
        'sleep.interval.start_time >= "2026-11-20T00:00:00"',  # a zoned field, no zone
        'sleep.interval.end_time >= "2026-11-20T00:00:00Z"',
        'steps.interval.start_time >= "2026-11-20T00:00:00Z"',
        'sleep.interval.civil_end_time >= "2026-01-01T00:00:00"',  # over 90 days
    ],
)
def test_google_sleep_refuses_a_filter_google_would_refuse(google, text):
    access = google_tokens(google, scopes=[SLEEP])["access_token"]
    answer = listed(google, SLEEP_LIST, access, filter=text)
    assert answer.status_code == 400
    assert answer.json["error"]["details"][0]["reason"] == "INVALID_DATA_POINT_FILTER"


@freeze_time(NOW)
def test_google_resting_heart_rate_a_point_a_day_newest_first_without_a_name(google):
    access = google_tokens(google, scopes=[METRICS])["access_token"]
    answer = listed(
        google, HEART_LIST, access, filter='daily_resting_heart_rate.date >= "2026-10-25"'
    )
    points = answer.json["dataPoints"]
    days = [date(**point["dailyRestingHeartRate"]["date"]) for point in points]
    assert days == sorted(days, reverse=True) and days[0] == date(2026, 11, 23)
    assert len(days) < 30  # the days of too little wear have no point at all
    for point in points:
        assert "name" not in point
        assert_a_client_model_reads(point, "dailyRestingHeartRate", {"beatsPerMinute": str})
        rate = point["dailyRestingHeartRate"]
        assert rate["beatsPerMinute"] == str(
            recordings.resting_rate("7QW2XR", date(**rate["date"]), date(2026, 11, 23))
        )  # the same heart as at the Fitbit stand-in
        assert set(rate["date"]) == {"year", "month", "day"}


@freeze_time(NOW)
@pytest.mark.parametrize("path, scope", [(SLEEP_LIST, METRICS), (HEART_LIST, SLEEP)])
def test_google_without_the_scope_is_permission_denied(google, path, scope):
    access = google_tokens(google, scopes=[scope])["access_token"]
    answer = listed(google, path, access)
    assert answer.status_code == 403 and answer.json["error"]["status"] == "PERMISSION_DENIED"
    assert answer.json["error"]["details"][0]["reason"] == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"


@freeze_time(NOW)
@pytest.mark.parametrize("path, scope", [(SLEEP_LIST, SLEEP), (HEART_LIST, METRICS)])
def test_robin_never_had_a_fitbit_and_has_no_nights_or_heart_rates(google, path, scope):
    access = google_tokens(google, user=ROBIN, scopes=[scope])["access_token"]
    assert listed(google, path, access).json["dataPoints"] == []
