"""Fitbit's resource server, continued: a day's heart rate through the day (intraday), and
the activity log list, in the shapes ../shared/intraday-and-exercise.md gives, from what the
demo people's trackers recorded (recordings.py), on each person's own clock.

    GET  /1/user/-/activities/heart/date/<date>/1d/<detail>.json
    GET  /1/user/-/activities/heart/date/<date>/1d/<detail>/time/<HH:mm>/<HH:mm>.json
    GET  /1/user/-/activities/heart/date/<start>/<end>/<detail>[/time/...].json  (24 h at most)
    GET  /1/user/-/activities/list.json?afterDate=|beforeDate=&sort=&limit=&offset=0

The heart rate needs `heartrate`, the list `activity`; both count against the hourly budget.
Intraday data is Fitbit's to give: a "Personal" app gets its owner's, others only once
Fitbit approves them. What an app without it gets is not documented, and two answers have
been seen, so the stand-in's `intraday` setting chooses (SANDBOX_FITBIT_INTRADAY):
`granted` (the default: the app may read it), `omitted` (a 200 without the intraday part,
as the API long answered) or `forbidden` (a 403 in Google's error shape, as reported in
2026).
"""

import re
from datetime import datetime, time, timedelta
from urllib.parse import urlencode

from werkzeug.routing import Rule

from . import recordings
from .common import OAuthError, as_json, single
from .fitbit_dates import days_asked
from .fitbit_sleep_heart import heart_day

# Each detail level: how far apart its points are, and what Fitbit calls that.
DETAILS = {
    "1sec": (timedelta(seconds=1), 1, "second"),
    "1min": (timedelta(minutes=1), 1, "minute"),
    "5min": (timedelta(minutes=5), 5, "minute"),
    "15min": (timedelta(minutes=15), 15, "minute"),
}
INTRADAY_ANSWERS = ("granted", "omitted", "forbidden")
CLOCK = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])(?::([0-5][0-9]))?")
TRACKER_EVERY = timedelta(seconds=5)  # how often the tracker reads a pulse
MOST_LOGS = 100  # a page of the activity log list
LOOK_BACK_DAYS = 366  # how far back beforeDate looks for workouts
# Fitbit's activity type ids for each kind of workout.
TYPE_IDS = {"walk": 90013, "run": 90009, "ride": 90001}
TRACKER = {
    "id": "75117592",
    "name": "Charge 6",
    "type": "tracker",
    "url": "https://www.fitbit.com/",
}
SYNCED_AFTER = timedelta(minutes=3)  # a workout reaches Fitbit a few minutes after it ends


def validation(field, message):
    return OAuthError(400, "validation", f"{field}: {message}")


def clock_time(text, field):
    matched = CLOCK.fullmatch(text)
    if matched is None:
        raise validation(field, "Invalid time; use HH:mm.")
    hours, minutes, seconds = (int(part or 0) for part in matched.groups())
    return time(hours, minutes, seconds)


def fitbit_offset_time(person, moment):
    """A local time with its offset, as the activity log writes it:
    2026-12-07T18:54:51.000-08:00."""
    seconds = int(recordings.offset_of(person, moment).total_seconds())
    sign = "-" if seconds < 0 else "+"
    hours, rest = divmod(abs(seconds), 3600)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.000{sign}{hours:02}:{rest // 60:02}"


class FitbitDay:
    """The endpoints of FitbitResourceServer for a day's heart rate and the activity log
    list (its authorize_api_call checks the token, the scope and the budget)."""

    RULES = [
        Rule(
            "/1/user/-/activities/heart/date/<first>/<second>/<detail>.json",
            endpoint="heart_intraday",
            methods=["GET"],
        ),
        Rule(
            "/1/user/-/activities/heart/date/<first>/<second>/<detail>/time/<start>/<end>.json",
            endpoint="heart_intraday",
            methods=["GET"],
        ),
        Rule("/1/user/-/activities/list.json", endpoint="activity_list", methods=["GET"]),
    ]

    # --- Heart rate through the day -------------------------------------------------------

    def on_heart_intraday(self, request, first, second, detail, start=None, end=None):
        grant, headers = self.authorize_api_call(request, "heartrate")
        if detail not in DETAILS:
            raise validation("detail-level", "Invalid detail level; use 1sec, 1min, 5min or 15min.")
        person = self.stand_in.data_key(grant.user_id)
        clock = recordings.clock_of(person)
        days = days_asked(first, "1d" if second == "1d" else second, clock.date(), {"1d"}, 2)
        begins = datetime.combine(days[0], clock_time(start, "start-time") if start else time())
        if end is not None:
            ends = datetime.combine(days[-1], clock_time(end, "end-time"))
        else:
            ends = datetime.combine(days[-1], time()) + timedelta(days=1)
        if not begins < ends or ends - begins > timedelta(days=1):
            raise validation("time", "The range must end after it starts, within 24 hours.")
        if self.stand_in.intraday == "forbidden":  # as seen in 2026: Google's shape, not Fitbit's
            denied = {"code": 403, "message": "The caller does not have permission"}
            return as_json({"error": {**denied, "status": "PERMISSION_DENIED"}}, 403, headers)
        answer = {"activities-heart": [heart_day(days[0], resting(person, days[0], clock))]}
        if self.stand_in.intraday == "granted":
            answer["activities-heart-intraday"] = intraday(person, begins, min(ends, clock), detail)
        return as_json(answer, headers=headers)

    # --- The activity log list ------------------------------------------------------------

    def on_activity_list(self, request):
        grant, headers = self.authorize_api_call(request, "activity")
        args = request.args
        before, after = single(args, "beforeDate"), single(args, "afterDate")
        if (before is None) == (after is None):
            raise validation("beforeDate", "Exactly one of beforeDate and afterDate is required.")
        sort, limit, offset = (single(args, name) for name in ("sort", "limit", "offset"))
        if sort != ("asc" if after else "desc"):
            raise validation("sort", "Use asc with afterDate, and desc with beforeDate.")
        if not (limit or "").isdigit() or not 1 <= int(limit) <= MOST_LOGS:
            raise validation("limit", f"limit is required, at most {MOST_LOGS}.")
        if offset != "0":
            raise validation("offset", "Only offset=0 is supported: follow pagination.next.")
        person = self.stand_in.data_key(grant.user_id)
        clock, limit = recordings.clock_of(person), int(limit)
        bound, exact = moment_asked(after or before, "afterDate" if after else "beforeDate")
        if after:
            found = recordings.workouts_of(person, bound.date(), clock.date(), clock)
            found = [w for w in found if w.start > bound or (not exact and w.start >= bound)]
        else:
            first = bound.date() - timedelta(days=LOOK_BACK_DAYS)
            found = recordings.workouts_of(person, first, bound.date(), clock)
            found = [w for w in reversed(found) if w.start < bound]
        shown = found[:limit]
        more = len(found) > limit
        pagination = {"limit": limit, "offset": 0, "sort": sort, "previous": ""}
        pagination["afterDate" if after else "beforeDate"] = (after or before)[:19]
        pagination["next"] = ""
        if more:
            cursor = {
                "afterDate" if after else "beforeDate": f"{shown[-1].start:%Y-%m-%dT%H:%M:%S}"
            }
            query = urlencode({**cursor, "sort": sort, "limit": limit, "offset": 0})
            pagination["next"] = f"{request.url_root}1/user/-/activities/list.json?{query}"
        root = request.url_root
        activities = [activity_entry(person, workout, root) for workout in shown]
        return as_json({"activities": activities, "pagination": pagination}, headers=headers)


def resting(person, day, clock):
    return recordings.resting_rate(person, day, clock.date())


def intraday(person, begins, ends, detail):
    """The dataset of a day's heart rate from `begins` to `ends`: at 1sec, each reading the
    tracker took (every few seconds, not every second); coarser, each period's mean,
    leaving out periods with no reading."""
    step, interval, kind = DETAILS[detail]
    readings = recordings.samples(person, begins, ends, TRACKER_EVERY) if ends > begins else []
    if detail == "1sec":
        dataset = [
            {"time": f"{moment:%H:%M:%S}", "value": rate}
            for moment, rate in readings
            if recordings.seeded(person, moment.isoformat()) % 3  # not every reading kept
        ]
    else:
        periods = {}
        seconds = step.total_seconds()
        for moment, rate in readings:
            since = (moment - datetime.combine(moment.date(), time())).total_seconds()
            start = datetime.combine(moment.date(), time()) + timedelta(
                seconds=since // seconds * seconds
            )
            periods.setdefault(start, []).append(rate)
        dataset = [
            {"time": f"{start:%H:%M:%S}", "value": round(sum(rates) / len(rates))}
            for start, rates in periods.items()
        ]
    return {"dataset": dataset, "datasetInterval": interval, "datasetType": kind}


def moment_asked(text, field):
    """(a moment, whether it was given to the second) of beforeDate or afterDate: a date
    (yyyy-MM-dd, its midnight), or a time on the person's clock (yyyy-MM-ddTHH:mm:ss)."""
    try:
        if len(text) == 10:
            return datetime.fromisoformat(text), False
        return datetime.fromisoformat(text[:19]), True
    except ValueError:
        raise validation(field, "Invalid date; use yyyy-MM-dd or yyyy-MM-ddTHH:mm:ss.") from None


def activity_entry(person, workout, root):
    """One workout, as the activity log list gives it."""
    milliseconds = workout.minutes * 60_000
    end = workout.end
    entry = {
        "logId": workout.log_id,
        "activityName": workout.name,
        "activityTypeId": TYPE_IDS[workout.kind],
        "logType": "auto_detected",
        "startTime": fitbit_offset_time(person, workout.start),
        "originalStartTime": fitbit_offset_time(person, workout.start),
        "duration": milliseconds,
        "originalDuration": milliseconds,
        "activeDuration": milliseconds - 60_000 * (workout.minutes // 20),
        "calories": workout.calories,
        "distance": workout.distance_km,
        "distanceUnit": "Kilometer",
        "averageHeartRate": workout.average_heart_rate,
        "lastModified": f"{recordings.physical(person, end) + SYNCED_AFTER:%Y-%m-%dT%H:%M:%S}.000Z",
        "source": TRACKER,
        "heartRateLink": (
            f"{root}1/user/-/activities/heart/date/{workout.start:%Y-%m-%d}/"
            f"{end:%Y-%m-%d}/1sec/time/{workout.start:%H:%M:%S}/{end:%H:%M:%S}.json"
        ),
    }
    if workout.steps:
        entry["steps"] = workout.steps
    return entry
