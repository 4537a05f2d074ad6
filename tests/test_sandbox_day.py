"""The stand-ins' heart rate through the day and workouts (sandbox/fitbit_day.py,
sandbox/google_day.py, sandbox/recordings.py), driven as clients written from each
provider's documentation drive them: python-fitbit's intraday_time_series() and a GET of the
activity log list for Fitbit (python-fitbit has no method for it: make_request), and the
google-health-api client's dataPoints lists for Google, every page; and the demo people's
days, each on their own clock."""

from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import test_sandbox_fitbit
import test_sandbox_google
from freezegun import freeze_time
from test_sandbox_fitbit import ALEX as FITBIT_ALEX
from test_sandbox_fitbit import api, assert_fitbit_error
from test_sandbox_google import bearer
from test_sandbox_sleep_heart import (
    GOOGLE_ALEX,
    METRICS,
    ROBIN,
    fitbit_tokens,
    google_tokens,
    stand_in,
)

import sandbox
from sandbox import common, recordings

SAM = "9KD3MS"
GOOGLE_SAM = "hu-8d03b6e5c1"
ACTIVITY = "https://www.googleapis.com/auth/googlehealth.activity_and_fitness.readonly"
SETTINGS = "https://www.googleapis.com/auth/googlehealth.settings.readonly"
HEART_LIST = "/v4/users/me/dataTypes/heart-rate/dataPoints"
EXERCISE_LIST = "/v4/users/me/dataTypes/exercise/dataPoints"
# 20:00 UTC: noon in Los Angeles (Alex), nine the next morning in Auckland (Sam).
NOW = "2026-12-07 20:00:00"


@pytest.fixture
def fitbit():
    return stand_in(sandbox.FitbitStandIn, test_sandbox_fitbit)


@pytest.fixture
def google():
    return stand_in(sandbox.GoogleStandIn, test_sandbox_google)


# --- What the demo people recorded ----------------------------------------------------------


def test_the_people_live_far_apart_each_on_their_own_clock():
    with freeze_time("2026-12-07 10:30:00"):  # 23:30 in Auckland, 02:30 in Los Angeles
        assert recordings.clock_of(SAM) == datetime(2026, 12, 7, 23, 30)
        assert recordings.clock_of(FITBIT_ALEX) == datetime(2026, 12, 7, 2, 30)
    with freeze_time("2026-12-07 11:30:00"):  # past midnight in Auckland
        assert recordings.clock_of(SAM).date() == date(2026, 12, 8)
        assert recordings.clock_of(FITBIT_ALEX).date() == date(2026, 12, 7)
    assert recordings.offset_of(SAM, datetime(2026, 12, 7, 12)) == timedelta(hours=13)
    assert recordings.physical(FITBIT_ALEX, datetime(2026, 12, 7, 12)) == datetime(
        2026, 12, 7, 20, tzinfo=UTC
    )


def test_three_to_five_workouts_a_week_each_with_its_length_distance_and_heart_rate():
    monday = date(2026, 11, 2)
    for person in (FITBIT_ALEX, SAM):
        for week in range(6):
            first = monday + timedelta(weeks=week)
            found = recordings.workouts_of(person, first, first + timedelta(days=6), datetime.max)
            assert 3 <= len(found) <= 5
            for workout in found:
                assert workout.kind in ("walk", "run", "ride") and workout.minutes >= 20
                assert 1 <= workout.distance_km <= 40 and 95 <= workout.average_heart_rate <= 160
    kinds = {w.kind for w in recordings.workouts_of(SAM, monday, date(2026, 12, 13), datetime.max)}
    assert kinds == {"walk", "run", "ride"}
    assert recordings.workouts_of(SAM, monday, date(2026, 12, 13), datetime.max) == (
        recordings.workouts_of(SAM, monday, date(2026, 12, 13), datetime.max)
    )


def test_a_heart_rate_low_asleep_up_on_waking_and_at_its_peak_in_a_workout():
    day = next(
        d
        for d in (date(2026, 11, 20) + timedelta(days=n) for n in range(30))
        if recordings.workout_on(SAM, d)
        and recordings.made_up_night(SAM, d)
        and recordings.workout_on(SAM, d).start.hour < 22
    )
    night, workout = recordings.made_up_night(SAM, day), recordings.workout_on(SAM, day)
    asleep = recordings.heart_rate_at(SAM, night.start + (night.end - night.start) / 2)
    awake = recordings.heart_rate_at(SAM, datetime.combine(day, time(10, 0)))
    peak = recordings.heart_rate_at(SAM, workout.start + (workout.end - workout.start) / 2)
    if workout.start <= datetime.combine(day, time(10)) < workout.end:
        awake = recordings.heart_rate_at(SAM, workout.end + timedelta(hours=1))
    assert asleep < awake < peak
    assert peak >= workout.average_heart_rate


def test_a_workouts_steps_are_among_the_days():
    day = next(
        d
        for d in (date(2026, 11, 20) + timedelta(days=n) for n in range(30))
        if recordings.workout_on(SAM, d) and recordings.workout_on(SAM, d).steps
    )
    with freeze_time(datetime.combine(day + timedelta(days=2), time(12))):
        walked = recordings.workout_on(SAM, day).steps
        assert common.steps_on(SAM, day) >= 3500 + walked
        assert recordings.workout_steps(SAM, day, datetime.max) == walked


# --- Fitbit: the intraday heart rate --------------------------------------------------------


def intraday(fitbit, access, base="today", detail="1min", start=None, end=None):
    """As python-fitbit's intraday_time_series('activities/heart', ...) builds its URL."""
    path = f"/1/user/-/activities/heart/date/{base}/1d/{detail}"
    if start is not None:
        path += f"/time/{start:%H:%M}/{end:%H:%M}"
    return api(fitbit, path + ".json", access)


@freeze_time(NOW)
def test_a_day_of_heart_rate_as_python_fitbit_asks_for_it(fitbit):
    access = fitbit_tokens(fitbit, ["activity", "heartrate"])["access_token"]
    answer = intraday(fitbit, access)
    assert answer.status_code == 200 and answer.headers["Fitbit-Rate-Limit-Limit"] == "150"
    [day] = answer.json["activities-heart"]
    assert day["dateTime"] == "2026-12-07"  # Alex's today, in Los Angeles
    assert "restingHeartRate" in day["value"] or day["value"]["heartRateZones"]
    found = answer.json["activities-heart-intraday"]
    assert (found["datasetInterval"], found["datasetType"]) == (1, "minute")
    times = [point["time"] for point in found["dataset"]]
    assert times == sorted(times) and times[-1] <= "12:00:00"  # nothing of the afternoon yet
    assert all(isinstance(point["value"], int) for point in found["dataset"])


@freeze_time(NOW)
@pytest.mark.parametrize("detail, interval, kind", [("15min", 15, "minute"), ("5min", 5, "minute")])
def test_coarser_details_are_each_periods_mean(fitbit, detail, interval, kind):
    access = fitbit_tokens(fitbit, ["heartrate"])["access_token"]
    found = intraday(fitbit, access, detail=detail).json["activities-heart-intraday"]
    assert (found["datasetInterval"], found["datasetType"]) == (interval, kind)
    minutes = [int(p["time"][:2]) * 60 + int(p["time"][3:5]) for p in found["dataset"]]
    assert all(minute % interval == 0 for minute in minutes)


@freeze_time(NOW)
def test_a_time_range_and_one_second_readings(fitbit):
    access = fitbit_tokens(fitbit, ["heartrate"])["access_token"]
    answer = intraday(fitbit, access, "2026-12-06", "1sec", time(8, 45), time(9, 15))
    found = answer.json["activities-heart-intraday"]
    assert found["datasetType"] == "second"
    times = [point["time"] for point in found["dataset"]]
    assert times and "08:45:00" <= times[0] and times[-1] < "09:15:00"
    gaps = {
        (datetime.strptime(b, "%H:%M:%S") - datetime.strptime(a, "%H:%M:%S")).seconds
        for a, b in zip(times, times[1:], strict=False)
    }
    assert min(gaps) >= 5 and len(gaps) > 1  # a reading every few seconds, not each second


@freeze_time(NOW)
@pytest.mark.parametrize(
    "path",
    [
        "/1/user/-/activities/heart/date/today/1d/2min.json",
        "/1/user/-/activities/heart/date/today/1d/1min/time/25:00/26:00.json",
        "/1/user/-/activities/heart/date/today/1d/1min/time/10:00/09:00.json",
        "/1/user/-/activities/heart/date/2026-12-01/2026-12-04/1min.json",
        "/1/user/-/activities/heart/date/yesterday/1d/1min.json",
    ],
    ids=["detail", "time", "backwards", "past-24-hours", "date"],
)
def test_a_bad_intraday_request_is_a_validation_error(fitbit, path):
    access = fitbit_tokens(fitbit, ["heartrate"])["access_token"]
    assert_fitbit_error(api(fitbit, path, access), 400, "validation")


@freeze_time(NOW)
def test_intraday_needs_the_heartrate_scope(fitbit):
    access = fitbit_tokens(fitbit, ["activity"])["access_token"]
    assert_fitbit_error(intraday(fitbit, access), 403, "insufficient_scope")


@freeze_time(NOW)
def test_an_app_without_intraday_access_gets_what_the_setting_says(fitbit):
    """Not documented: two answers have been seen, and the stand-in's setting picks one."""
    access = fitbit_tokens(fitbit, ["heartrate"])["access_token"]
    stand_in = fitbit.application
    stand_in.intraday = "omitted"
    omitted = intraday(fitbit, access)
    assert omitted.status_code == 200 and "activities-heart-intraday" not in omitted.json
    assert omitted.json["activities-heart"][0]["dateTime"] == "2026-12-07"
    stand_in.intraday = "forbidden"
    forbidden = intraday(fitbit, access)
    assert forbidden.status_code == 403
    assert forbidden.json["error"]["status"] == "PERMISSION_DENIED"


@freeze_time("2026-12-07 11:30:00")
def test_today_is_each_persons_own(fitbit):
    sam = fitbit_tokens(fitbit, ["heartrate"], user=SAM)["access_token"]
    alex = fitbit_tokens(fitbit, ["heartrate"])["access_token"]
    assert intraday(fitbit, sam).json["activities-heart"][0]["dateTime"] == "2026-12-08"
    assert intraday(fitbit, alex).json["activities-heart"][0]["dateTime"] == "2026-12-07"


# --- Fitbit: the activity log list ----------------------------------------------------------


def activity_list(fitbit, access, **query):
    """A GET of the activity log list, as python-fitbit's make_request() would send it."""
    return api(fitbit, f"/1/user/-/activities/list.json?{urlencode(query)}", access)


def follow(fitbit, access, answer):
    """Every page, by pagination.next: [the entries of each page]."""
    pages = [answer.json["activities"]]
    while answer.json["pagination"]["next"]:
        following = urlsplit(answer.json["pagination"]["next"])
        answer = api(fitbit, f"{following.path}?{following.query}", access)
        assert answer.status_code == 200
        pages.append(answer.json["activities"])
    return pages


@freeze_time(NOW)
def test_the_activity_log_comes_a_page_at_a_time_by_pagination_next(fitbit):
    access = fitbit_tokens(fitbit, ["activity"])["access_token"]
    query = {"afterDate": "2026-11-01", "sort": "asc", "limit": 2, "offset": 0}
    first = activity_list(fitbit, access, **query)
    assert first.status_code == 200 and first.headers["Fitbit-Rate-Limit-Limit"] == "150"
    pagination = first.json["pagination"]
    assert (pagination["limit"], pagination["offset"], pagination["previous"]) == (2, 0, "")
    following = parse_qs(urlsplit(pagination["next"]).query)
    assert following["sort"] == ["asc"] and following["offset"] == ["0"]
    pages = follow(fitbit, access, first)
    entries = [entry for page in pages for entry in page]
    assert all(len(page) <= 2 for page in pages) and len(pages) >= 6
    starts = [entry["startTime"] for entry in entries]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)  # none twice
    expected = recordings.workouts_of(
        FITBIT_ALEX, date(2026, 11, 1), date(2026, 12, 7), datetime(2026, 12, 7, 12)
    )
    assert [entry["logId"] for entry in entries] == [w.log_id for w in expected]
    entry = entries[0]
    assert entry["startTime"].endswith("-08:00")  # Los Angeles, with its offset
    assert entry["duration"] == expected[0].minutes * 60_000
    assert entry["distanceUnit"] == "Kilometer" and isinstance(entry["averageHeartRate"], int)
    assert entry["lastModified"].endswith("Z")


@freeze_time(NOW)
def test_before_a_date_newest_first(fitbit):
    access = fitbit_tokens(fitbit, ["activity"])["access_token"]
    query = {"beforeDate": "2026-12-01", "sort": "desc", "limit": 100, "offset": 0}
    entries = activity_list(fitbit, access, **query).json["activities"]
    starts = [entry["startTime"] for entry in entries]
    assert starts == sorted(starts, reverse=True) and starts[0] < "2026-12-01"


@freeze_time(NOW)
@pytest.mark.parametrize(
    "query",
    [
        {"sort": "asc", "limit": 10, "offset": 0},
        {"afterDate": "2026-11-01", "beforeDate": "2026-12-01", "sort": "asc", "limit": 10},
        {"afterDate": "2026-11-01", "sort": "desc", "limit": 10, "offset": 0},
        {"afterDate": "2026-11-01", "sort": "asc", "limit": 101, "offset": 0},
        {"afterDate": "2026-11-01", "sort": "asc", "limit": 10, "offset": 10},
        {"afterDate": "1 Nov", "sort": "asc", "limit": 10, "offset": 0},
    ],
    ids=["no-date", "both-dates", "wrong-sort", "limit", "offset", "date"],
)
def test_a_bad_activity_log_request_is_a_validation_error(fitbit, query):
    access = fitbit_tokens(fitbit, ["activity"])["access_token"]
    assert_fitbit_error(activity_list(fitbit, access, **query), 400, "validation")


@freeze_time(NOW)
def test_the_activity_log_needs_the_activity_scope_and_counts_against_the_budget(fitbit):
    access = fitbit_tokens(fitbit, ["heartrate"])["access_token"]
    query = {"afterDate": "2026-11-01", "sort": "asc", "limit": 10, "offset": 0}
    assert_fitbit_error(activity_list(fitbit, access, **query), 403, "insufficient_scope")
    allowed = fitbit_tokens(fitbit, ["activity"])["access_token"]
    left = activity_list(fitbit, allowed, **query).headers["Fitbit-Rate-Limit-Remaining"]
    again = activity_list(fitbit, allowed, **query).headers["Fitbit-Rate-Limit-Remaining"]
    assert int(again) == int(left) - 1


# --- Google: heart rate and exercise --------------------------------------------------------


def civil_day(day):
    after = day + timedelta(days=1)
    return (
        f'heart_rate.sample_time.civil_time >= "{day}T00:00:00" AND '
        f'heart_rate.sample_time.civil_time < "{after}T00:00:00"'
    )


def every_page(google, access, path, **query):
    """As the google-health-api client lists a data type: page after page, by
    nextPageToken, to the end. [each page's answer]."""
    pages = []
    while True:
        answer = google.get(path, query_string=query, headers=bearer(access))
        assert answer.status_code == 200, answer.json
        pages.append(answer.json)
        if "nextPageToken" not in answer.json:
            return pages
        query["pageToken"] = answer.json["nextPageToken"]


@freeze_time(NOW)
def test_a_day_of_heart_rate_every_page_newest_first(google):
    access = google_tokens(google, [METRICS])["access_token"]
    pages = every_page(
        google, access, HEART_LIST, filter=civil_day(date(2026, 12, 6)), pageSize=10000
    )
    assert len(pages) == 2  # a reading every five seconds: more than a page of 10,000
    points = [point for page in pages for point in page["dataPoints"]]
    times = [point["heartRate"]["sampleTime"]["physicalTime"] for point in points]
    assert times == sorted(times, reverse=True) and len(set(times)) == len(times)
    point = points[0]
    assert "name" not in point  # heart-rate points are not identifiable
    sample = point["heartRate"]["sampleTime"]
    assert sample["utcOffset"] == "-28800s" and sample["civilTime"]["date"]["day"] == 6
    physical = datetime.fromisoformat(sample["physicalTime"].replace("Z", "+00:00"))
    clock = sample["civilTime"]["time"]
    assert (physical - timedelta(hours=8)).hour == clock.get("hours", 0)
    assert isinstance(point["heartRate"]["beatsPerMinute"], str)


@freeze_time(NOW)
def test_a_page_larger_than_the_largest_is_cut_to_it(google):
    access = google_tokens(google, [METRICS])["access_token"]
    answer = google.get(
        HEART_LIST,
        query_string={"filter": civil_day(date(2026, 12, 6)), "pageSize": 50000},
        headers=bearer(access),
    )
    assert len(answer.json["dataPoints"]) == 10000


@freeze_time(NOW)
def test_heart_rate_needs_its_scope_and_robin_has_none(google):
    access = google_tokens(google, [ACTIVITY])["access_token"]
    refused = google.get(HEART_LIST, headers=bearer(access))
    assert refused.status_code == 403 and refused.json["error"]["status"] == "PERMISSION_DENIED"
    robin = google_tokens(google, [METRICS], user=ROBIN)["access_token"]
    assert google.get(HEART_LIST, headers=bearer(robin)).json == {}


@freeze_time(NOW)
def test_a_heart_rate_filter_over_two_weeks_is_refused(google):
    access = google_tokens(google, [METRICS])["access_token"]
    text = (
        'heart_rate.sample_time.civil_time >= "2026-11-01T00:00:00" AND '
        'heart_rate.sample_time.civil_time < "2026-12-01T00:00:00"'
    )
    answer = google.get(HEART_LIST, query_string={"filter": text}, headers=bearer(access))
    assert answer.status_code == 400 and answer.json["error"]["status"] == "INVALID_ARGUMENT"


@freeze_time(NOW)
def test_workouts_a_page_of_25_at_most_with_what_the_clients_models_read(google):
    access = google_tokens(google, [ACTIVITY])["access_token"]
    text = 'exercise.interval.civil_start_time >= "2026-10-01T00:00:00"'
    pages = every_page(google, access, EXERCISE_LIST, filter=text, pageSize=25)
    points = [point for page in pages for point in page["dataPoints"]]
    assert len(pages) >= 2 and all(len(page["dataPoints"]) <= 25 for page in pages)
    starts = [point["exercise"]["interval"]["startTime"] for point in points]
    assert starts == sorted(starts, reverse=True)
    point = points[0]
    assert point["name"].startswith(f"users/{GOOGLE_ALEX}/dataTypes/exercise/dataPoints/")
    session = point["exercise"]
    assert session["exerciseType"] in ("WALKING", "RUNNING", "BIKING")
    assert session["activeDuration"].endswith("s") and session["interval"]["startUtcOffset"]
    summary = session["metricsSummary"]
    assert isinstance(summary["averageHeartRateBeatsPerMinute"], str)
    assert isinstance(summary["caloriesKcal"], float) and summary["distanceMillimeters"] > 0
    too_many = google.get(EXERCISE_LIST, query_string={"pageSize": 26}, headers=bearer(access))
    assert too_many.status_code == 400


@freeze_time(NOW)
def test_the_settings_say_where_each_person_lives(google):
    sam = google_tokens(google, [SETTINGS], user=GOOGLE_SAM)["access_token"]
    settings = google.get("/v4/users/me/settings", headers=bearer(sam)).json
    assert (settings["timeZone"], settings["utcOffset"]) == ("Pacific/Auckland", "46800s")


@freeze_time(NOW)
def test_the_lists_count_against_the_per_minute_quota(google):
    google.application.rate_limit = 3
    access = google_tokens(google, [METRICS])["access_token"]
    for _ in range(3):
        assert google.get(HEART_LIST, headers=bearer(access)).status_code == 200
    refused = google.get(HEART_LIST, headers=bearer(access))
    assert refused.status_code == 429 and refused.json["error"]["status"] == "RESOURCE_EXHAUSTED"
