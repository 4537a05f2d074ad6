"""The Google Health API's heart rate through the day and its workouts, as the Google
stand-in serves them: dataPoints.list with its filter and pages (google_lists.py), newest
first, each int64 sent as a string, from what the demo people's Fitbits recorded
(recordings.py), on each person's own clock.

    GET  /v4/users/me/dataTypes/heart-rate/dataPoints   (pageSize up to 10,000)
    GET  /v4/users/me/dataTypes/exercise/dataPoints     (pageSize up to 25)

A heart-rate point is one reading (every five seconds here, while the tracker is worn), with
no `name`; an exercise point is one session, with its summary. Only a Fitbit records them:
Robin, who never had one, has none.
"""

from datetime import datetime, time, timedelta

from werkzeug.routing import Rule

from . import recordings
from .common import as_json
from .google_lists import bad_filter, clauses, merged_bounds, page
from .google_sleep_heart import HEALTH, HEART_SCOPES, ME, duration, interval, zulu
from .google_status import ApiError

EXERCISE_SCOPES = {HEALTH + "activity_and_fitness.readonly"}
HEART_FILTER = {
    "heart_rate.sample_time.physical_time": "zoned",
    "heart_rate.sample_time.civil_time": "civil",
}
EXERCISE_FILTER = {"exercise.interval.civil_start_time": "civil"}
HEART_PAGE = 1440  # points to a page unless pageSize says otherwise; at most 10,000
EXERCISE_PAGE, LARGEST_EXERCISE_PAGE = 25, 25
MOST_HEART_DAYS = 14  # unverified for list: the roll-ups' limit for heart rate
EXERCISE_DAYS = 30  # without a lower bound, the last month
MOST_EXERCISE_DAYS = 90
EVERY = timedelta(seconds=5)  # a reading every five seconds while the tracker is worn
# Google's names for each kind of workout, and the name it shows.
EXERCISE_TYPES = {
    "walk": ("WALKING", "Walk"),
    "run": ("RUNNING", "Run"),
    "ride": ("BIKING", "Bike"),
}
DEVICE = {"formFactor": "WATCH", "displayName": "Pixel Watch 4"}


def civil_clock(moment):
    """A CivilDateTime with its time: proto3 leaves out a zero, so midnight is `"time": {}`."""
    clock = {"hours": moment.hour, "minutes": moment.minute, "seconds": moment.second}
    day = {"year": moment.year, "month": moment.month, "day": moment.day}
    return {"date": day, "time": {name: value for name, value in clock.items() if value}}


class GoogleDay:
    """The endpoints of GoogleResourceServer for heart rate through the day and workouts
    (its health_call checks the token, the scope, the quota and the Health profile)."""

    RULES = [
        Rule(f"{ME}/dataTypes/heart-rate/dataPoints", endpoint="list_heart_rate", methods=["GET"]),
        Rule(f"{ME}/dataTypes/exercise/dataPoints", endpoint="list_exercise", methods=["GET"]),
    ]

    def on_list_heart_rate(self, request):
        grant, person = self.health_call(request, HEART_SCOPES)
        key = self.stand_in.data_key(grant.user_id)
        first, before = merged_bounds(clauses(request.args.get("filter", ""), HEART_FILTER, key))
        clock = recordings.clock_of(key)
        before = min(before or clock, clock)
        first = first or datetime.combine(before.date(), time())  # without one, today so far
        if before - first > timedelta(days=MOST_HEART_DAYS):
            raise bad_filter(f"The filter may span at most {MOST_HEART_DAYS} days.")
        readings = recordings.samples(key, first, before, EVERY) if person["legacy"] else []
        readings.reverse()  # newest first
        # A page of the readings, and only that page made into points: a day holds thousands.
        answer = page(request, readings, HEART_PAGE)
        answer["dataPoints"] = [heart_point(key, *reading) for reading in answer["dataPoints"]]
        if not answer["dataPoints"]:
            del answer["dataPoints"]  # proto3 leaves out an empty list
        return as_json(answer)

    def on_list_exercise(self, request):
        grant, person = self.health_call(request, EXERCISE_SCOPES)
        size = request.args.get("pageSize", "")
        if size.isdigit() and int(size) > LARGEST_EXERCISE_PAGE:
            raise ApiError(
                400, "INVALID_ARGUMENT", f"pageSize may be at most {LARGEST_EXERCISE_PAGE}."
            )
        key = self.stand_in.data_key(grant.user_id)
        found = clauses(request.args.get("filter", ""), EXERCISE_FILTER, key)
        first, before = merged_bounds(found)
        clock = recordings.clock_of(key)
        first = first or datetime.combine(clock.date() - timedelta(days=EXERCISE_DAYS), time())
        if (clock - first).days > MOST_EXERCISE_DAYS:
            raise bad_filter(f"The filter may span at most {MOST_EXERCISE_DAYS} days.")
        workouts = []
        if person["legacy"]:
            workouts = recordings.workouts_of(key, first.date(), clock.date(), clock)
        kept = [w for w in workouts if w.start >= first and (before is None or w.start < before)]
        points = [exercise_point(grant.user_id, key, w) for w in reversed(kept)]  # newest first
        return as_json(page(request, points, EXERCISE_PAGE))


def heart_point(person, moment, rate):
    """One reading, as the v4 discovery document shapes a heart-rate point."""
    return {
        "dataSource": {
            "recordingMethod": "PASSIVELY_MEASURED",
            "device": DEVICE,
            "platform": "FITBIT",
        },
        "heartRate": {
            "sampleTime": {
                "physicalTime": zulu(recordings.physical(person, moment)),
                "utcOffset": duration(recordings.offset_of(person, moment)),
                "civilTime": civil_clock(moment),
            },
            "beatsPerMinute": str(rate),
        },
    }


def exercise_point(health_user_id, person, workout):
    """One workout, as an exercise session point: no civil times (as seen), the elapsed time
    is its interval's, and activeDuration leaves out the pauses."""
    kind, shown = EXERCISE_TYPES[workout.kind]
    active = timedelta(minutes=workout.minutes - workout.minutes // 20)
    summary = {
        "caloriesKcal": float(workout.calories),
        "distanceMillimeters": workout.distance_km * 1_000_000,
        "averageHeartRateBeatsPerMinute": str(workout.average_heart_rate),
        "activeZoneMinutes": str(workout.minutes // 2),
    }
    if workout.steps:
        summary["steps"] = str(workout.steps)
    started, ended = (recordings.physical(person, edge) for edge in (workout.start, workout.end))
    return {
        "name": f"users/{health_user_id}/dataTypes/exercise/dataPoints/{workout.log_id}",
        "dataSource": {
            "recordingMethod": "ACTIVELY_MEASURED",
            "device": DEVICE,
            "platform": "FITBIT",
        },
        "exercise": {
            "interval": interval(person, workout.start, workout.end, civil_too=False),
            "exerciseType": kind,
            "displayName": shown,
            "activeDuration": duration(active),
            "exerciseMetadata": {},
            "metricsSummary": summary,
            "exerciseEvents": [
                event(person, workout.start, started, "START"),
                event(person, workout.end, ended, "STOP"),
            ],
            "createTime": zulu(ended + timedelta(minutes=2)),
            "updateTime": zulu(ended + timedelta(minutes=3)),
        },
    }


def event(person, local, physical, kind):
    offset = duration(recordings.offset_of(person, local))
    return {"eventTime": zulu(physical), "eventUtcOffset": offset, "exerciseEventType": kind}
