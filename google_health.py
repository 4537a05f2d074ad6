"""The Google Health API, Fitbit's successor, on Google's OAuth 2.0: what is Google's own,
beside the OAuth 2.0 steps in oauth.py.

The same shape as fitbit_legacy.py, so the two can be read side by side:

    endpoints and scopes       the URLs below, SCOPES
    authorize parameters       authorize_parameters(), code_exchange_parameters()
    who the user is            identify(), issuers(): the ID token, checked, and the
                               Health API's identity endpoint
    error shapes               error_from_response(), revoked()
    where the data lives       profile_request(), read_profile(); the user's time zone,
                               zone_request(), read_zone(); DATA: steps, workouts, sleep,
                               heart rate and today's heart rate, each a request and a reader
    webhooks                   verify_subscriber(), read_webhook(), subscription_requests()

Where Google's documentation leaves a detail open (how a granted scope is spelled, whether
an idle day is sent as 0 or left out), the code takes either.
"""

import hmac
import json
import logging
import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode

import id_tokens
import oauth
import webhook_keys
from dialects import (
    DAY_MINUTES,
    HEART_RATES,
    MAX_CALORIES,
    MAX_DAILY_STEPS,
    MAX_NAME,
    MAX_WORKOUT_KM,
    MAX_WORKOUT_MINUTES,
    PULSE_RATES,
    VERIFIED,
    WORKOUT_DAYS,
    Change,
    DataKind,
    HeartDay,
    Night,
    Paging,
    Person,
    Refused,
    Workout,
    Workouts,
    time_zone,
)

log = logging.getLogger("oauth")

KEY = "google"  # as kept in the users table
NAME = "Google Health"
TITLE = "the Google Health API"
AUTHORIZE_URL = "https://accounts.google.com/o/oauth2/v2/auth"
TOKEN_URL = "https://oauth2.googleapis.com/token"
REVOKE_URL = "https://oauth2.googleapis.com/revoke"
API_URL = "https://health.googleapis.com"  # the root: the paths below start with /v4/
USERINFO_URL = "https://openidconnect.googleapis.com/v1/userinfo"
# What Google's callback carries as `iss` (RFC 9207), its OpenID Connect issuer; its ID
# tokens spell it either way, and Google asks clients to take both.
ISSUER = "https://accounts.google.com"
GOOGLE_ISSUERS = frozenset({ISSUER, "accounts.google.com"})
JWKS_URL = ""  # found through the discovery document under the issuer (id_tokens.py)
GOOGLE_SCOPES = "https://www.googleapis.com/auth/"
HEALTH_SCOPES = GOOGLE_SCOPES + "googlehealth."
ACTIVITY_SCOPE = HEALTH_SCOPES + "activity_and_fitness.readonly"
# The user's time zone, which every panel cuts its days by.
SETTINGS_SCOPE = HEALTH_SCOPES + "settings.readonly"
# openid and profile: an ID token, which says who signed in and gives their name and picture;
# the activity scope for the steps and workouts; the settings for the user's time zone.
SCOPES = f"openid profile {ACTIVITY_SCOPE} {SETTINGS_SCOPE}"
IDENTITY_PATH = "/v4/users/me/identity"
DATA_TYPES = "/v4/users/me/dataTypes"
STEPS_PATH = DATA_TYPES + "/steps/dataPoints:dailyRollUp"
SETTINGS_PATH = "/v4/users/me/settings"
# dataPoints.list's largest pages, and how many the app asks for at most: a day of heart rate
# at a reading a second is nine pages; two weeks of workouts, one.
HEART_RATE_PAGE, HEART_RATE_PAGES = 10000, 10
EXERCISE_PAGE, EXERCISE_PAGES = 25, 4
SLEEP_NIGHTS = 14
HEART_RATE_DAYS = 30
# What every token answer has: no user_id, and a refresh token only after a consent.
TOKEN_FIELDS = ("access_token",)
REVOKE_WITH_AUTH = False  # Google's revoke endpoint takes the token alone
RATE_LIMIT_NOTE = "Google Health's limit of 300 requests a minute is used up"
SITE_FOR_REVOKING = "https://myaccount.google.com/connections"
RATE_LIMIT_HEADERS = {}  # none documented
# No rate-limit headers are documented: after a 429, wait this long unless told otherwise.
QUOTA_PAUSE = timedelta(minutes=1)
DAYS_SHOWN = 30
# Both of Google Health's user ids: 1 to 63 letters, digits and hyphens.
USER_ID = re.compile(r"[A-Za-z0-9-]{1,63}")

# --- The app's settings for this provider ----------------------------------------------

SETTINGS_PREFIX = "GOOGLE"
# The environment variable behind each of oauth.Client's fields; one left unset is ours.
# The scopes are fixed: the identity endpoint needs a Health scope.
SETTINGS = {
    "client_id": "GOOGLE_CLIENT_ID",
    "client_secret": "GOOGLE_CLIENT_SECRET",
    "redirect_uri": "GOOGLE_REDIRECT_URI",
    "authorize_url": "GOOGLE_AUTHORIZE_URL",
    "token_url": "GOOGLE_TOKEN_URL",
    "revoke_url": "GOOGLE_REVOKE_URL",
    "api_url": "GOOGLE_HEALTH_API_URL",
    "userinfo_url": "GOOGLE_USERINFO_URL",
    "issuer": "GOOGLE_ISSUER",
    "jwks_url": "GOOGLE_JWKS_URL",
}
# The webhook's settings (settings.WebhookSettings): the whole Authorization value given to
# Google when the endpoint was registered, and where Google publishes its signing keys.
WEBHOOK_SETTINGS = {"secret": "GOOGLE_WEBHOOK_SECRET", "keyset_url": "GOOGLE_WEBHOOK_KEYSET_URL"}
WEBHOOK_DEFAULTS = {"keyset_url": webhook_keys.KEYSET_URL}
# Where the client id and secret come from, for the page that says one is missing (HTML).
REGISTRATION_HINT = 'Copy both from your "Web server" OAuth client in the Google Cloud console'


# --- Scopes ----------------------------------------------------------------------------

# What the user's name needs, by meaning: Google may grant `profile` and spell it
# .../auth/userinfo.profile. (Each kind of data names its own scope: DATA, below.)
NEEDS = {"profile": {"profile", GOOGLE_SCOPES + "userinfo.profile"}, "zone": {SETTINGS_SCOPE}}


def grants(scope, need):
    """True if the granted `scope` string covers `need`: "profile", or "identity" (the
    identity endpoint takes any Health read scope but location)."""
    granted = set(scope.split())
    if need == "identity":
        return any(
            name.startswith(HEALTH_SCOPES)
            and name.endswith(".readonly")
            and name != HEALTH_SCOPES + "location.readonly"
            for name in granted
        )
    return bool(NEEDS[need] & granted)


# --- The authorization request and the code exchange -----------------------------------


def authorize_parameters(holds_refresh_token, more=False, nonce=None):
    """access_type=offline, or Google sends no refresh token at all. And it sends one only
    on a consent: the first one, or one forced with prompt=consent, asked for whenever the
    app holds no refresh token for this user. A consent round for one scope more (step 10)
    adds include_granted_scopes, so that the new grant joins the old one. The `nonce` comes
    back inside the ID token (OpenID Connect Core 3.1.2.1)."""
    extra = {"access_type": "offline", "nonce": nonce} if nonce else {"access_type": "offline"}
    if not holds_refresh_token:
        extra["prompt"] = "consent"
    if more:
        extra["include_granted_scopes"] = "true"
    return extra


def more_scope(granted, kind):
    """Step 10: Google's incremental authorization asks for the one scope more, and
    include_granted_scopes keeps the rest. `openid` is asked for again (granted already, so
    the page asks nothing of it) so that the answer surely carries an ID token to check."""
    return f"openid {kind.scope}"


def code_exchange_parameters(client):
    return {}  # Basic authentication says who the client is


# --- Who the user is -------------------------------------------------------------------


def checked_id_token(client, keys, tokens, nonce):
    """Step 5, first: Google's signed word on who signed in, checked before anything else
    is believed (id_tokens.py). `openid` is always asked for, so an answer without an ID
    token is refused too."""
    if tokens.id_token is None:
        raise oauth.UntrustedAnswer("id_token", who=NAME)
    return id_tokens.check(client, keys, tokens, nonce)


def identify(client, tokens, id_token):
    """Step 5: who signed in. The ID token, checked, gives the name and picture when
    `profile` was granted, so userinfo need not be asked. Only the Health API's identity
    endpoint gives the Health user id, and for a Fitbit account its legacy Fitbit id,
    which is what the users table keys on."""
    if not grants(tokens.scope, "identity"):
        # No Health scope that the identity endpoint accepts was granted.
        raise oauth.Unidentified(403, "no_health_scope", who=NAME)
    health_user_id, legacy_id = identity(client, tokens)
    person = Person(KEY, legacy_id, health_user_id, legacy_id or health_user_id)
    if not grants(tokens.scope, "profile"):
        return person
    # The claims userinfo would answer with, kept as its answer: the first page reads them.
    claims = id_token["claims"]
    profile = {name: claims[name] for name in PROFILE_CLAIMS if name in claims}
    if "name" not in profile and "given_name" not in profile:
        # Granted, yet not in the token (unverified whether Google ever leaves them out): the
        # name kept from before stands, and the first page asks userinfo.
        return replace(person, name=None)
    answer = {profile_request(client).key: (profile, {})}
    return replace(person, name=read_profile(profile)[0], answers=answer)


def identity(client, tokens):
    """(Health user id, legacy Fitbit id or None) of the tokens' user, from the Health API's
    identity endpoint."""
    request = oauth.ApiRequest("GET", client.api_url + IDENTITY_PATH)
    answer, _ = oauth.api_call(client, request, tokens.access_token)
    health_user_id = answer.get("healthUserId")
    legacy_id = answer.get("legacyUserId")
    if not isinstance(health_user_id, str) or not USER_ID.fullmatch(health_user_id):
        raise oauth.BadResponse("healthUserId missing", who=NAME)
    if legacy_id is not None and not (isinstance(legacy_id, str) and USER_ID.fullmatch(legacy_id)):
        raise oauth.BadResponse("legacyUserId malformed", who=NAME)
    return health_user_id, legacy_id


def owner(client, tokens):
    """Whose tokens these are, by the identity endpoint alone, nothing of their ID token
    believed: only to know whether handing them back could end a grant this app keeps
    (sign_ins.py). None when it cannot say."""
    if not grants(tokens.scope, "identity"):
        return None
    try:
        health_user_id, legacy_id = identity(client, tokens)
    except oauth.ProviderError as error:
        if error.error_type == "ACCOUNT_NOT_LINKED":
            # A Google account without a Health profile: nobody this app could keep.
            return Person(KEY, None, None, None)
        return None
    return Person(KEY, legacy_id, health_user_id, None)


def issuers(issuer):
    """The `iss` an ID token may carry: Google's own in either spelling, or another issuer
    (the stand-in) exactly as set."""
    return GOOGLE_ISSUERS if issuer == ISSUER else frozenset({issuer})


# --- Errors ----------------------------------------------------------------------------


def error_from_response(response):
    """Two shapes. The OAuth endpoints answer as RFC 6749 5.2 says, {"error": "invalid_grant",
    ...}; the Health API with a google.rpc.Status, {"error": {"code", "message", "status",
    "details": [{"reason", ...}]}}, whose ErrorInfo reason is the more precise name."""
    status = response.status_code
    error = (oauth.json_body(response) or {}).get("error")
    error_type = "unknown"
    if isinstance(error, str):
        error_type = error[:64]
    elif isinstance(error, dict):
        details = error.get("details") if isinstance(error.get("details"), list) else []
        reasons = [
            detail["reason"]
            for detail in details
            if isinstance(detail, dict) and isinstance(detail.get("reason"), str)
        ]
        name = reasons[0] if reasons else error.get("status")
        if isinstance(name, str) and name:
            error_type = name[:64]
    challenge = response.headers.get("WWW-Authenticate", "")

    if status == 429 or error_type == "RESOURCE_EXHAUSTED":
        return oauth.RateLimited(status, error_type, quota_reset(response), who=NAME)
    if status >= 500:
        return oauth.ProviderUnavailable(status, error_type, who=NAME)
    if status == 401 and (error_type == "UNAUTHENTICATED" or "invalid_token" in challenge):
        return oauth.TokenRejected(status, error_type, who=NAME)
    if status == 403 and (
        error_type == "ACCESS_TOKEN_SCOPE_INSUFFICIENT" or "insufficient_scope" in challenge
    ):
        return oauth.ScopeMissing(status, error_type, who=NAME)
    return oauth.ProviderError(status, error_type, who=NAME)


# The pages for failures of Google's own, by error type: (status, title, message).
ERROR_PAGES = {
    "no_health_scope": (
        403,
        "No health data allowed",
        "You did not allow this app to read any of your health data, so Google Health "
        "cannot say who you are. Nothing was stored. Sign in again and allow access to "
        "your activity.",
    ),
    "ACCOUNT_NOT_LINKED": (
        400,
        "No Google Health profile",
        "This Google account has no Google Health profile: no Fitbit account is linked "
        "to it. Link one in the Fitbit app, or sign in with another Google account.",
    ),
    "PERMISSION_DENIED": (
        403,
        "Google Health refused access",
        "Google Health did not let this app read your data. If you moved your Fitbit "
        "account to Google, sign in with that Google account, then try again.",
    ),
}


def error_page(error):
    """(status, title, message) for a failure of Google's own, or None for the app's
    usual page."""
    return ERROR_PAGES.get(error.error_type)


def revoked(response):
    """200; and 400 invalid_token for a token already dead, which is what was wanted."""
    if response.status_code == 200:
        return True
    return response.status_code == 400 and error_from_response(response).error_type == (
        "invalid_token"
    )


def quota_reset(response):
    # A Retry-After in seconds is believed up to an hour; otherwise, a minute's pause.
    value = response.headers.get("Retry-After", "")
    seconds = int(value) if value.isascii() and value.isdigit() and len(value) < 5 else None
    pause = timedelta(seconds=min(seconds, 3600)) if seconds else QUOTA_PAUSE
    return datetime.now(UTC) + pause


def rate_budget(headers):
    """Google documents no rate-limit headers: nothing to note until a 429 comes."""
    return None, None


# --- Where the data lives --------------------------------------------------------------


# What the ID token says of the user that userinfo would say too.
PROFILE_CLAIMS = ("sub", "name", "given_name", "family_name", "picture")


def profile_request(client):
    return oauth.ApiRequest("GET", client.userinfo_url)


def read_profile(body):
    """(name, picture URL or None, None) from OpenID Connect's userinfo. Google Health's own
    profile has no name or picture, and the member-since date is not asked for."""
    name = "Google Health user"
    for key in ("name", "given_name"):
        if isinstance(body.get(key), str) and body[key].strip():
            name = body[key].strip()[:MAX_NAME]
            break
    picture = body.get("picture")
    if not isinstance(picture, str) or not picture.startswith(("https://", "http://")):
        picture = None
    return name, picture, None


def civil(day):
    # A CivilTime date: plain numbers, so never a leading zero.
    return {"date": {"year": day.year, "month": day.month, "day": day.day}}


def zone_request(client):
    """Where the user's time zone is: the Health API's settings."""
    return oauth.ApiRequest("GET", client.api_url + SETTINGS_PATH)


def read_zone(body):
    """The settings' `timeZone` (IANA), else their `utcOffset` ("-28800s"); None if neither."""
    if not isinstance(body, dict):
        return None
    offset = body.get("utcOffset")
    seconds = offset[:-1] if isinstance(offset, str) and offset.endswith("s") else ""
    delta = None
    if seconds.lstrip("-").isdigit() and len(seconds) <= 6:
        delta = timedelta(seconds=int(seconds))
    return time_zone(body.get("timeZone"), delta)


def steps_request(client, today):
    """The daily roll-up of steps, DAYS_SHOWN days up to and including `today`, the user's
    own: the range's end is exclusive. Days follow the user's own clock at Google."""
    first, after = today - timedelta(days=DAYS_SHOWN - 1), today + timedelta(days=1)
    body = {"range": {"start": civil(first), "end": civil(after)}, "windowSizeDays": 1}
    return oauth.ApiRequest("POST", client.api_url + STEPS_PATH, json=body)


def read_steps(body):
    """[(date, steps), ...], oldest first. Google sends them newest first, each countSum an
    int64 as a string; a zero may be left out altogether, as proto3's JSON leaves defaults."""
    points = body.get("rollupDataPoints", []) if isinstance(body, dict) else None
    if not isinstance(points, list):
        raise oauth.BadResponse("rollupDataPoints is not a list", who=NAME)
    days = {}
    for point in points:
        try:
            start = point["civilStartTime"]["date"]
            day = date(start["year"], start["month"], start["day"])
            value = (point.get("steps") or {}).get("countSum", "0")
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise ValueError(value)
            steps = int(value)
            if steps < 0:
                raise ValueError(value)
        except (TypeError, KeyError, ValueError, AttributeError, OverflowError):
            raise oauth.BadResponse("unreadable step count", who=NAME) from None
        days[day] = min(steps, MAX_DAILY_STEPS)
    # A day left out is a day with no steps: the chart draws one bar for every day.
    if days:
        first, last = min(days), max(days)
        for offset in range((last - first).days + 1):
            days.setdefault(first + timedelta(days=offset), 0)
    return sorted(days.items())


def listed(client, data_type, text, size):
    """dataPoints.list of one data type: the points whose filter `text` holds, newest
    first, `size` to a page (a list that goes on has a nextPageToken: next_page())."""
    query = urlencode({"filter": text, "pageSize": size})
    return oauth.ApiRequest("GET", f"{client.api_url}{DATA_TYPES}/{data_type}/dataPoints?{query}")


def sleep_request(client, today):
    """The sleeps that ended from SLEEP_NIGHTS mornings ago on, by the user's own clock."""
    first = today - timedelta(days=SLEEP_NIGHTS - 1)
    return listed(client, "sleep", f'sleep.interval.civil_end_time >= "{first}T00:00:00"', 50)


def read_sleep(body):
    """(Night, ...), oldest first: each morning's main sleep (naps, `metadata.nap`, left
    out; of two main sleeps, the longer), by the day its interval ends on the user's clock.
    Minutes come as int64 strings. A night without stages (unverified how Google marks it:
    `type` CLASSIC is seen, and ASLEEP stages) has asleep and awake only."""
    points = points_of(body)
    nights = {}
    for point in points:
        try:
            sleep = point["sleep"]
            if (sleep.get("metadata") or {}).get("nap"):
                continue
            summary = sleep["summary"]
            asleep, in_bed = (
                int64(summary[key]) for key in ("minutesAsleep", "minutesInSleepPeriod")
            )
            found = {
                entry["type"]: int64(entry["minutes"]) for entry in summary.get("stagesSummary", [])
            }
            if {"DEEP", "LIGHT", "REM"} <= set(found):
                stages = tuple((level.lower(), found[level]) for level in ("DEEP", "LIGHT", "REM"))
                stages += (("awake", found.get("AWAKE", in_bed - asleep)),)
            else:
                stages = (("asleep", asleep), ("awake", in_bed - asleep))
            end = sleep["interval"]["civilEndTime"]["date"]
            day = date(end["year"], end["month"], end["day"])
        except (TypeError, KeyError, ValueError, AttributeError, OverflowError):
            raise oauth.BadResponse("unreadable sleep", who=NAME) from None
        if asleep > in_bed:
            raise oauth.BadResponse("more asleep than in bed", who=NAME)
        if day not in nights or in_bed > nights[day].in_bed:
            nights[day] = Night(day, asleep, in_bed, stages)
    return tuple(sorted(nights.values()))


def points_of(body):
    """The dataPoints of a list's answer; proto3's JSON leaves out an empty list."""
    points = body.get("dataPoints", []) if isinstance(body, dict) else None
    if not isinstance(points, list):
        raise oauth.BadResponse("dataPoints is not a list", who=NAME)
    return points


def int64(value):
    """An int64 as Google's JSON sends it, a string (a number is taken too), 0 to a day's
    minutes."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(value)
    number = int(value)
    if not 0 <= number <= DAY_MINUTES:
        raise ValueError(value)
    return number


def heart_rate_request(client, today):
    """The daily resting heart rates of the last HEART_RATE_DAYS days."""
    first = today - timedelta(days=HEART_RATE_DAYS - 1)
    text = f'daily_resting_heart_rate.date >= "{first}"'
    return listed(client, "daily-resting-heart-rate", text, HEART_RATE_DAYS + 1)


def read_heart_rate(body):
    """((date, beats per minute), ...), oldest first: one point a day, only for days with
    enough wear, each beatsPerMinute an int64 string."""
    rates = {}
    for point in points_of(body):
        try:
            rate = point["dailyRestingHeartRate"]
            day = date(rate["date"]["year"], rate["date"]["month"], rate["date"]["day"])
            value = rate["beatsPerMinute"]
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise ValueError(value)
            beats = int(value)
            if beats not in HEART_RATES:
                raise ValueError(value)
        except (TypeError, KeyError, ValueError, AttributeError, OverflowError):
            raise oauth.BadResponse("unreadable heart rate", who=NAME) from None
        rates[day] = beats
    return tuple(sorted(rates.items()))


def next_page(client, request, body):
    """The page after `body`: the same list again with its nextPageToken (AIP-158); None at
    the end, when there is none (proto3 leaves out an empty one)."""
    token = body.get("nextPageToken") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token or len(token) > 2048:
        return None
    base = request.url.split("&pageToken=")[0]
    return oauth.ApiRequest("GET", f"{base}&{urlencode({'pageToken': token})}")


def heart_rate_today_request(client, today):
    """Today's heart rate, every reading, by the user's own clock: the largest pages."""
    after = today + timedelta(days=1)
    text = (
        f'heart_rate.sample_time.civil_time >= "{today}T00:00:00" AND '
        f'heart_rate.sample_time.civil_time < "{after}T00:00:00"'
    )
    return listed(client, "heart-rate", text, HEART_RATE_PAGE)


def kept_heart_rate(bodies, stopped):
    """What is kept of a day's readings, a few thousand to a page: each minute's mean, by
    its minute of the day on the user's clock, and how the paging ended. (The points'
    civil times are the user's clock.)"""
    minutes = {}
    for body in bodies:
        for point in points_of(body):
            try:
                sample = point["heartRate"]
                clock = sample["sampleTime"]["civilTime"].get("time", {})
                minute = clock.get("hours", 0) * 60 + clock.get("minutes", 0)
                value = sample["beatsPerMinute"]
                if isinstance(value, bool) or not isinstance(value, str | int):
                    raise ValueError(value)
                beats = int(value)
                if beats not in PULSE_RATES or not 0 <= minute < DAY_MINUTES:
                    raise ValueError(value)
            except (TypeError, KeyError, ValueError, AttributeError):
                raise oauth.BadResponse("unreadable heart rate", who=NAME) from None
            minutes.setdefault(minute, []).append(beats)
    means = [[minute, round(sum(rates) / len(rates))] for minute, rates in sorted(minutes.items())]
    return {"minutes": means, "pages": len(bodies), "stopped": stopped}


def read_heart_rate_today(body):
    """dialects.HeartDay of what was kept: ((minute of the day, bpm), ...). The resting rate
    is the resting heart rate's own data type, drawn beside it."""
    try:
        minutes = tuple((int(minute), int(beats)) for minute, beats in body["minutes"])
    except (TypeError, KeyError, ValueError):
        raise oauth.BadResponse("unreadable heart rate", who=NAME) from None
    stopped = body.get("stopped") if isinstance(body.get("stopped"), str) else ""
    return HeartDay(minutes, None, True, not stopped, stopped)


def workouts_request(client, today):
    """The workouts of the last WORKOUT_DAYS days, newest first, by the user's own clock."""
    first = today - timedelta(days=WORKOUT_DAYS - 1)
    text = f'exercise.interval.civil_start_time >= "{first}T00:00:00"'
    return listed(client, "exercise", text, EXERCISE_PAGE)


def kept_workouts(bodies, stopped):
    """What is kept of the list's pages: their points, and how the paging ended."""
    found = [point for body in bodies for point in points_of(body)]
    return {"dataPoints": found, "pages": len(bodies), "stopped": stopped}


def read_workouts(body):
    """dialects.Workouts of what was kept: each session's kind in Google's words (its
    `displayName`), its start on the user's clock (the physical start and its offset), its
    length (the interval: Google gives no duration), and its distance, average heart rate
    and calories when given."""
    sessions = []
    for point in points_of(body):
        try:
            session = point["exercise"]
            interval = session["interval"]
            began, end = (moment(interval[edge]) for edge in ("startTime", "endTime"))
            start = began + seconds_of(interval.get("startUtcOffset", "0s"))  # on their clock
            minutes = round((end - began).total_seconds() / 60)
            if not 0 <= minutes <= MAX_WORKOUT_MINUTES:
                raise ValueError(minutes)
            name = session.get("displayName") or session.get("exerciseType", "Workout")
            name = name.strip()[:40].replace("_", " ").capitalize() if name.isupper() else name
            summary = session.get("metricsSummary") or {}
            km = summary.get("distanceMillimeters")
            km = round(km / 1_000_000, 2) if isinstance(km, int | float) else None
            km = km if km is not None and 0 <= km <= MAX_WORKOUT_KM else None
            rate = summary.get("averageHeartRateBeatsPerMinute")
            rate = int(rate) if isinstance(rate, str) and rate.isdigit() else None
            rate = rate if rate in PULSE_RATES else None
            calories = summary.get("caloriesKcal")
            calories = round(calories) if isinstance(calories, int | float) else None
            calories = calories if calories is not None and 0 <= calories <= MAX_CALORIES else None
        except (TypeError, KeyError, ValueError, AttributeError, OverflowError):
            raise oauth.BadResponse("unreadable exercise", who=NAME) from None
        sessions.append(Workout(name[:40], start, minutes, km, rate, calories))
    stopped = body.get("stopped") if isinstance(body.get("stopped"), str) else ""
    return Workouts(tuple(sorted(sessions, key=lambda w: w.start)), not stopped, stopped)


def moment(text):
    """A protobuf Timestamp ("2026-12-07T18:54:51Z"), as a naive UTC datetime."""
    if not isinstance(text, str):
        raise ValueError(text)
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).replace(tzinfo=None)


def seconds_of(text):
    """A protobuf Duration ("-28800s") as a timedelta."""
    if not isinstance(text, str) or not text.endswith("s"):
        raise ValueError(text)
    return timedelta(seconds=float(text[:-1]))


# Each kind of data the signed-in page shows (dialects.DataKind): steps and workouts, asked
# for at sign-in (steps readable under any of four Health scopes); sleep, asked for when the
# user asks to see it; and the resting heart rate and today's heart rate, both read with the
# health metrics scope, asked for together when the user asks to see either. Each is named
# by its data type in webhook deliveries.
STEPS = DataKind(
    "steps",
    ACTIVITY_SCOPE,
    steps_request,
    read_steps,
    ("steps",),
    frozenset(
        HEALTH_SCOPES + name + ".readonly"
        for name in ("health_metrics_and_measurements", "location", "sleep")
    ),
)
WORKOUTS = DataKind(
    "workouts",
    ACTIVITY_SCOPE,
    workouts_request,
    read_workouts,
    ("exercise",),
    pages=Paging(next_page, EXERCISE_PAGES, kept_workouts),
)
SLEEP = DataKind("sleep", HEALTH_SCOPES + "sleep.readonly", sleep_request, read_sleep, ("sleep",))
HEART_RATE = DataKind(
    "heart_rate",
    HEALTH_SCOPES + "health_metrics_and_measurements.readonly",
    heart_rate_request,
    read_heart_rate,
    ("daily-resting-heart-rate",),
)
HEART_RATE_TODAY = DataKind(
    "heart_rate_today",
    HEALTH_SCOPES + "health_metrics_and_measurements.readonly",
    heart_rate_today_request,
    read_heart_rate_today,
    ("heart-rate",),
    pages=Paging(next_page, HEART_RATE_PAGES, kept_heart_rate),
    beside=("workouts", "heart_rate"),
)
DATA = (STEPS, WORKOUTS, SLEEP, HEART_RATE, HEART_RATE_TODAY)


# --- Webhooks: a subscriber per Cloud project -------------------------------------------

WEBHOOK_METHODS = ("POST",)  # the handshake and the deliveries alike
WEBHOOK_USER_FIELD = "health_user_id"
# Google retries a delivery it thinks failed, and its body carries no delivery id: the
# same bytes again are the same delivery.
DEDUPE_DELIVERIES = True
# The signature's header, as Google's page spells it and as one other reference does
# (unverified which is current): either is taken.
SIGNATURE_HEADERS = ("X-HEALTHAPI-SIGNATURE", "GOOGLE-HEALTH-API-SIGNATURE")
WEBHOOK_HEADERS = {
    "Authorization": "The secret given to Google when the endpoint was registered, the whole "
    "value: a wrong one is refused.",
    "X-HEALTHAPI-SIGNATURE": "Tink's ECDSA P-256 signature of the raw body, by a key of the "
    "keyset Google publishes: checked before anything is read.",
    "GOOGLE-HEALTH-API-SIGNATURE": "The same signature, under the other name it is documented by.",
}
# Each way a delivery's item gives its interval: [(field, its start, its end)].
INTERVALS = (
    ("civilTimeInterval", "start", "end"),
    ("civilIso8601TimeInterval", "startTime", "endTime"),
    ("physicalTimeInterval", "startTime", "endTime"),
)


def verify_subscriber(code, settings):
    return False  # Google's handshake is a POST (read_webhook)


def read_webhook(client, settings, keys, headers, body):
    """Google's handshake ({"type": "verification"}, 201 with the secret and 401 without),
    or a delivery: signed, always; with the secret, when it is sent at all (one report
    says only the handshake carries it, so a missing one is logged and a wrong one
    refused)."""
    sent = headers.get("Authorization")
    if sent is not None and not hmac.compare_digest(sent.encode(), settings.secret.encode()):
        raise Refused(403, "The Authorization header is not the registered secret.")
    message = parsed(body)
    if isinstance(message, dict) and message.get("type") == "verification":
        if sent is None:
            raise Refused(401, "The verification carries no Authorization header.")
        return VERIFIED
    signature = next((headers[name] for name in SIGNATURE_HEADERS if name in headers), "")
    try:
        webhook_keys.verify(keys, signature, body)
    except webhook_keys.SignatureRefused as refused:
        raise Refused(401, f"The signature does not hold: {refused}.") from None
    if sent is None:
        log.warning("A signed webhook delivery came without its Authorization header")
    return changes_in(message)


def parsed(body):
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def changes_in(message):
    """The items of a delivery, in either documented shape: {"data": {...}} (or a list
    there), or a JSON array of items. Unknown fields are ignored."""
    if isinstance(message, dict) and "data" in message:
        items = message["data"] if isinstance(message["data"], list) else [message["data"]]
    elif isinstance(message, list):
        items = [item.get("data", item) if isinstance(item, dict) else item for item in message]
    else:
        raise Refused(400, "The body is not a notification: no data, and not an array.")
    changes = []
    for item in items:
        user = item.get("healthUserId") if isinstance(item, dict) else None
        data_type = item.get("dataType") if isinstance(item, dict) else None
        if (
            not isinstance(user, str)
            or not USER_ID.fullmatch(user)
            or not isinstance(data_type, str)
        ):
            raise Refused(400, "Each item needs a healthUserId and a dataType.")
        # "steps", or as a resource name, "dataTypes/steps" (unverified which is sent).
        data_type = data_type.rsplit("/", 1)[-1].lower()
        operation = item.get("operation") if isinstance(item.get("operation"), str) else "UPSERT"
        changes.append(Change(user, data_type, f"{operation[:16]} {interval_of(item)}".strip()))
    return changes


def interval_of(item):
    """The interval an item names, in words, whichever of its three names it comes under,
    alone or in a list `intervals`; "" when none can be read."""
    listed = item.get("intervals")
    for candidate in [item, *(listed if isinstance(listed, list) else [])]:
        for name, start, end in INTERVALS:
            interval = candidate.get(name) if isinstance(candidate, dict) else None
            if isinstance(interval, dict):
                edges = (moment_in_words(interval.get(edge)) for edge in (start, end))
                return " to ".join(edges)
    return ""


def moment_in_words(value):
    """An ISO string as it is, or a CivilDateTime as yyyy-mm-dd hh:mm."""
    if isinstance(value, str):
        return value[:40]
    try:
        day, clock = value["date"], value.get("time", {})
        moment = f"{day['year']:04}-{day['month']:02}-{day['day']:02}"
        if clock:
            moment += f" {clock.get('hours', 0):02}:{clock.get('minutes', 0):02}"
        return moment
    except (TypeError, KeyError, ValueError):
        return "?"


def subscription_requests(client, settings, user, method, kinds):
    return []  # Google subscribes users per Cloud project, with AUTOMATIC (see docs/webhooks.md)
