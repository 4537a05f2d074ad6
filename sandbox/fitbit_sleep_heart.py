"""Fitbit's resource server, continued: the sleep log and the resting heart rate, in the
shapes ../shared/fitbit-api.md gives, from what the demo people's trackers recorded
(recordings.py).

    GET  /1/user/-/activities/heart/date/<date>/<period>.json     (or <start>/<end>)
    GET  /1.2/user/-/sleep/date/<start>/<end>.json

Each needs its own scope (`heartrate`, `sleep`): without it, Fitbit's 403
`insufficient_scope`. Both count against the same hourly budget as the other endpoints.
"""

from werkzeug.routing import Rule

from . import recordings
from .common import as_json
from .fitbit_dates import days_asked

HEART_PERIODS = {"1d", "7d", "30d", "1w", "1m"}
MOST_HEART_DAYS = 366  # a year
MOST_SLEEP_DAYS = 100
# Fitbit's names for a night's levels: a night without stages says "awake", not "wake".
CLASSIC_LEVELS = {"asleep": "asleep", "wake": "awake"}


def fitbit_time(moment):
    """The user's local time, as Fitbit writes it: on their clock, with no offset."""
    return f"{moment:%Y-%m-%dT%H:%M:%S}.000"


class FitbitSleepAndHeart:
    """The endpoints of FitbitResourceServer for sleep and heart rate (its authorize_api_call
    checks the token, the scope and the budget)."""

    RULES = [
        Rule(
            "/1/user/-/activities/heart/date/<first>/<second>.json",
            endpoint="heart",
            methods=["GET"],
        ),
        Rule("/1.2/user/-/sleep/date/<first>/<second>.json", endpoint="sleep", methods=["GET"]),
    ]

    def on_heart(self, request, first, second):
        grant, headers = self.authorize_api_call(request, "heartrate")
        person = self.stand_in.data_key(grant.user_id)
        today = recordings.clock_of(person).date()  # "today" is the person's own
        days = days_asked(first, second, today, HEART_PERIODS, MOST_HEART_DAYS)
        series = [heart_day(day, recordings.resting_rate(person, day, today)) for day in days]
        return as_json({"activities-heart": series}, headers=headers)

    def on_sleep(self, request, first, second):
        grant, headers = self.authorize_api_call(request, "sleep")
        person = self.stand_in.data_key(grant.user_id)
        moment = recordings.clock_of(person)
        days = days_asked(first, second, moment.date(), set(), MOST_SLEEP_DAYS)
        logged = self.store.nights.of(person)
        nights = recordings.nights_of(person, days[0], days[-1], moment, logged)
        records = [sleep_record(night) for night in reversed(nights)]  # newest first
        summary = {
            "totalMinutesAsleep": sum(night.asleep for night in nights if night.main),
            "totalSleepRecords": len(records),
            "totalTimeInBed": sum(night.in_bed for night in nights if night.main),
        }
        return as_json({"sleep": records, "summary": summary}, headers=headers)


def heart_day(day, resting):
    """A day of /activities/heart: its heart rate zones, and its resting rate when the day had
    enough wear (Fitbit leaves the field out otherwise)."""
    value = {"customHeartRateZones": [], "heartRateZones": zones(day, resting or 60)}
    if resting is not None:
        value["restingHeartRate"] = resting
    return {"dateTime": day.isoformat(), "value": value}


def zones(day, resting):
    """Fitbit's four default zones, with minutes made up for the day."""
    seed = recordings.seeded("zones", day.isoformat(), resting)
    bounds = [("Out of Range", 30, 94), ("Fat Burn", 94, 131), ("Cardio", 131, 159)]
    bounds.append(("Peak", 159, 220))
    minutes = [1100 + seed % 300, 40 + (seed >> 10) % 120, (seed >> 20) % 40, (seed >> 30) % 8]
    return [
        {
            "name": name,
            "min": low,
            "max": high,
            "minutes": spent,
            "caloriesOut": round(spent * (1.1 + n * 0.8), 1),
        }
        for n, ((name, low, high), spent) in enumerate(zip(bounds, minutes, strict=True))
    ]


def sleep_record(night):
    """One night as /1.2/.../sleep gives it: `stages` with deep, light, REM and wake, or
    `classic` (asleep, restless, awake) when the tracker could not stage it."""
    names = {level: level for level in night.levels()} if night.staged else CLASSIC_LEVELS
    summary = {
        names[level]: {"count": night.count_of(level), "minutes": night.minutes_of(level)}
        for level in night.levels()
    }
    if night.staged:
        for entry in summary.values():
            entry["thirtyDayAvgMinutes"] = round(entry["minutes"] * 0.95)
    else:
        summary["restless"] = {"count": 0, "minutes": 0}
    return {
        "dateOfSleep": night.day.isoformat(),
        "logId": recordings.seeded("log", night.start.isoformat()) % 10**11,
        "startTime": fitbit_time(night.start),
        "endTime": fitbit_time(night.end),
        "duration": night.in_bed * 60_000,
        "efficiency": round(100 * night.asleep / night.in_bed),
        "isMainSleep": night.main,
        "logType": "manual" if night.logged else "auto_detected",
        "type": "stages" if night.staged else "classic",
        "minutesAsleep": night.asleep,
        "minutesAwake": night.awake,
        "minutesToFallAsleep": night.falling_asleep,
        "minutesAfterWakeup": 0,
        "timeInBed": night.in_bed,
        "infoCode": 0 if night.staged else 2,
        "levels": {
            "summary": summary,
            "data": [
                {
                    "dateTime": fitbit_time(stage.start),
                    "level": names[stage.level],
                    "seconds": stage.minutes * 60,
                }
                for stage in night.stages
            ],
            "shortData": [],
        },
    }
