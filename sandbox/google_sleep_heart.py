"""The Google Health API's sleep and daily resting heart rate, as the Google stand-in serves
them: dataPoints.list with its filter and pages (google_lists.py), newest first, each int64
sent as a string, from what the demo people's Fitbits recorded (recordings.py).

    GET  /v4/users/me/dataTypes/sleep/dataPoints
    GET  /v4/users/me/dataTypes/daily-resting-heart-rate/dataPoints

Only a Fitbit records nights and heart rates: Robin, who never had one, has none.
"""

from datetime import timedelta

from werkzeug.routing import Rule

from . import recordings
from .common import as_json
from .google_lists import bad_filter, clauses, page

ME = "/v4/users/me"
HEALTH = "https://www.googleapis.com/auth/googlehealth."
SLEEP_SCOPES = {HEALTH + "sleep.readonly"}
HEART_SCOPES = {HEALTH + "health_metrics_and_measurements.readonly"}
SLEEP_FILTER = {"sleep.interval.start_time": "zoned", "sleep.interval.civil_end_time": "civil"}
HEART_FILTER = {"daily_resting_heart_rate.date": "date"}
LISTED_DAYS = 30  # without a lower bound, the last month
MOST_DAYS = 90
PAGE = 25  # points to a page, unless pageSize says otherwise
# The stages as Google names them; a night that could not be staged is ASLEEP and AWAKE.
STAGE_TYPES = {"deep": "DEEP", "light": "LIGHT", "rem": "REM", "wake": "AWAKE", "asleep": "ASLEEP"}


def zulu(moment):
    return f"{moment:%Y-%m-%dT%H:%M:%S}Z"


def civil(moment):
    clock = {"hours": moment.hour, "minutes": moment.minute, "seconds": moment.second}
    day = {"year": moment.year, "month": moment.month, "day": moment.day}
    return {"date": day, "time": clock}


class GoogleSleepAndHeart:
    """The endpoints of GoogleResourceServer for sleep and resting heart rate (its
    health_call checks the token, the scope, the quota and the Health profile)."""

    RULES = [
        Rule(f"{ME}/dataTypes/sleep/dataPoints", endpoint="list_sleep", methods=["GET"]),
        Rule(
            f"{ME}/dataTypes/daily-resting-heart-rate/dataPoints",
            endpoint="list_resting_heart_rate",
            methods=["GET"],
        ),
    ]

    def on_list_sleep(self, request):
        grant, person = self.health_call(request, SLEEP_SCOPES)
        key = self.stand_in.data_key(grant.user_id)
        found = clauses(request.args.get("filter", ""), SLEEP_FILTER, key)
        moment = recordings.clock_of(key)
        first = min((value for _, op, value in found if op == ">="), default=None)
        first = (first or moment - timedelta(days=LISTED_DAYS)).date() - timedelta(days=1)
        if (moment.date() - first).days > MOST_DAYS:
            raise bad_filter(f"The filter may span at most {MOST_DAYS} days.")
        nights = []
        if person["legacy"]:
            logged = self.store.nights.of(key)
            nights = recordings.nights_of(key, first, moment.date(), moment, logged)
        kept = [night for night in nights if all(holds(night, *clause) for clause in found)]
        points = [sleep_point(key, night) for night in reversed(kept)]  # newest first
        return as_json(page(request, points, PAGE))

    def on_list_resting_heart_rate(self, request):
        grant, person = self.health_call(request, HEART_SCOPES)
        key = self.stand_in.data_key(grant.user_id)
        found = clauses(request.args.get("filter", ""), HEART_FILTER, key)
        today = recordings.clock_of(key).date()  # the person's own
        first = min((day for _, op, day in found if op == ">="), default=None)
        first = first or today - timedelta(days=LISTED_DAYS)
        if (today - first).days > MOST_DAYS:
            raise bad_filter(f"The filter may span at most {MOST_DAYS} days.")
        points, day = [], today
        while person["legacy"] and day >= first:
            rate = recordings.resting_rate(person["legacy"], day, today)
            if rate is not None and all(compare(day, op, value) for _, op, value in found):
                points.append(resting_point(day, rate))
            day -= timedelta(days=1)
        return as_json(page(request, points, PAGE))


def compare(value, operator, bound):
    return value >= bound if operator == ">=" else value < bound


def holds(night, field, operator, value):
    """Whether a night meets one clause: its start, or its end on the user's clock."""
    edge = night.start if field.endswith("start_time") else night.end
    return compare(edge, operator, value)


def sleep_point(person, night):
    """A sleep data point, as the v4 discovery document shapes it."""
    number = recordings.seeded("sleep", night.start.isoformat()) % 10**12
    return {
        "name": f"users/me/dataTypes/sleep/dataPoints/{number}",
        "dataSource": {
            "platform": "FITBIT",
            "recordingMethod": "MANUAL" if night.logged else "AUTOMATICALLY_RECORDED",
        },
        "sleep": {
            "interval": interval(person, night.start, night.end),
            "type": "STAGES" if night.staged else "CLASSIC",
            "stages": [
                {
                    **interval(person, stage.start, stage.end, civil_too=False),
                    "type": STAGE_TYPES[stage.level],
                }
                for stage in night.stages
            ],
            "outOfBedSegments": [],
            "metadata": {
                "nap": not night.main,
                "stagesStatus": "SUCCEEDED" if night.staged else "REJECTED_SERVER",
                "processed": True,
                "manuallyEdited": night.logged,
            },
            "summary": summary(night),
            "createTime": zulu(recordings.physical(person, night.end)),
            "updateTime": zulu(recordings.physical(person, night.end)),
        },
    }


def interval(person, start, end, civil_too=True):
    """A session's interval, given on `person`'s clock: physical times (UTC) with their
    offsets, and the clock's own."""
    shown = {
        "startTime": zulu(recordings.physical(person, start)),
        "startUtcOffset": duration(recordings.offset_of(person, start)),
        "endTime": zulu(recordings.physical(person, end)),
        "endUtcOffset": duration(recordings.offset_of(person, end)),
    }
    if civil_too:
        shown.update(civilStartTime=civil(start), civilEndTime=civil(end))
    return shown


def duration(delta):
    """A google.protobuf.Duration as JSON: whole seconds, "-28800s"."""
    return f"{int(delta.total_seconds())}s"


def summary(night):
    """A night's minutes, each an int64 as a string, and its stages' totals."""
    return {
        "minutesInSleepPeriod": str(night.in_bed),
        "minutesAsleep": str(night.asleep),
        "minutesAwake": str(night.awake),
        "minutesToFallAsleep": str(night.falling_asleep),
        "minutesAfterWakeUp": "0",
        "stagesSummary": [
            {
                "type": STAGE_TYPES[level],
                "minutes": str(night.minutes_of(level)),
                "count": str(night.count_of(level)),
            }
            for level in night.levels()
        ],
    }


def resting_point(day, rate):
    """A daily resting heart rate point: no `name` (as a client that checked reports)."""
    return {
        "dataSource": {"platform": "FITBIT", "recordingMethod": "DERIVED"},
        "dailyRestingHeartRate": {
            "date": {"year": day.year, "month": day.month, "day": day.day},
            "beatsPerMinute": str(rate),
            "dailyRestingHeartRateMetadata": {"calculationMethod": "WITH_SLEEP"},
        },
    }
