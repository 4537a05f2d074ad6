"""Fitbit's legacy Web API: what is Fitbit's own, beside the OAuth 2.0 steps in oauth.py.

Fitbit shut this API and its OAuth endpoints down in November 2026; the app still speaks
it, to its built-in stand-in, so that it can be read side by side with google_health.py,
which has the same shape:

    endpoints and scopes       the URLs below, SCOPES
    authorize parameters       authorize_parameters(), code_exchange_parameters()
    who the user is            identify()
    error shapes               error_from_response(), revoked()
    where the data lives       profile_request(), read_profile(); the user's time zone,
                               zone_request(), read_zone(); DATA: steps, workouts, sleep,
                               heart rate and today's heart rate, each a request and a reader
    webhooks                   verify_subscriber(), read_webhook(), subscription_requests()
"""

import base64
import hashlib
import hmac
import json
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode, urlsplit

import oauth
from dialects import (
    DAY_MINUTES,
    HEART_RATES,
    MAX_CALORIES,
    MAX_DAILY_STEPS,
    MAX_NAME,
    MAX_WORKOUT_KM,
    MAX_WORKOUT_MINUTES,
    PULSE_RATES,
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

KEY = "fitbit"  # as kept in the users table
NAME = "Fitbit"
TITLE = "the legacy Fitbit Web API"
AUTHORIZE_URL = "https://www.fitbit.com/oauth2/authorize"
TOKEN_URL = "https://api.fitbit.com/oauth2/token"
REVOKE_URL = "https://api.fitbit.com/oauth2/revoke"
API_URL = "https://api.fitbit.com"
USERINFO_URL = ""  # the profile lives in the Web API itself
ISSUER = ""  # Fitbit names no issuer (RFC 9207): a callback that carries one is refused
JWKS_URL = ""  # nor speaks OpenID Connect: its answers carry no ID token
SCOPES = "activity profile"
PROFILE_PATH = "/1/user/-/profile.json"
STEPS_PATH = "/1/user/-/activities/steps/date/today/1m.json"
HEART_RATE_PATH = "/1/user/-/activities/heart/date/today/30d.json"
# Today's heart rate, a point a minute: intraday data, which Fitbit gives only to apps it
# has approved (a "Personal" app, for its owner's own).
HEART_RATE_TODAY_PATH = "/1/user/-/activities/heart/date/today/1d/1min.json"
ACTIVITY_LIST_PATH = "/1/user/-/activities/list.json"
ACTIVITY_PAGE = 100  # the list's largest page
ACTIVITY_PAGES = 5  # pages at most: 500 workouts, far more than two weeks hold
KM_PER = {"Kilometer": 1.0, "Mile": 1.609344, "Meter": 0.001}
SLEEP_PATH = "/1.2/user/-/sleep/date"  # then /<start>/<end>.json
SLEEP_NIGHTS = 14
STAGES = ("deep", "light", "rem", "wake")  # a staged night's levels, as Fitbit names them
# What every token answer has.
TOKEN_FIELDS = ("access_token", "refresh_token", "user_id")
REVOKE_WITH_AUTH = True  # the revoke endpoint wants the client's credentials
# Fitbit's budget is 150 calls an hour; a larger figure in its headers is a broken answer.
MAX_RATE_BUDGET = 100_000
RATE_LIMIT_NOTE = "Fitbit's limit of 150 requests an hour is used up"
SITE_FOR_REVOKING = "https://www.fitbit.com/settings/applications"
# The headers that tell the budget, with what each says (for the trace).
RATE_LIMIT_HEADERS = {
    "Fitbit-Rate-Limit-Limit": "Calls this app may make for this user in an hour.",
    "Fitbit-Rate-Limit-Remaining": "Calls left this hour; the app notes it on the user.",
    "Fitbit-Rate-Limit-Reset": "Seconds until the budget refills, at the top of the hour.",
}

# --- The app's settings for this provider ----------------------------------------------

SETTINGS_PREFIX = "FITBIT"
# The environment variable behind each of oauth.Client's fields; one left unset is ours.
SETTINGS = {
    "client_id": "FITBIT_CLIENT_ID",
    "client_secret": "FITBIT_CLIENT_SECRET",
    "redirect_uri": "FITBIT_REDIRECT_URI",
    "scopes": "FITBIT_SCOPES",
    "authorize_url": "FITBIT_AUTHORIZE_URL",
    "token_url": "FITBIT_TOKEN_URL",
    "revoke_url": "FITBIT_REVOKE_URL",
    "api_url": "FITBIT_API_URL",
}
# The webhook's settings (settings.WebhookSettings): the verification code entered with the
# subscriber at dev.fitbit.com, and the subscriber's id, needed only when there are several.
WEBHOOK_SETTINGS = {
    "secret": "FITBIT_SUBSCRIBER_VERIFICATION_CODE",
    "subscriber_id": "FITBIT_SUBSCRIBER_ID",
}
WEBHOOK_DEFAULTS = {}
# Where the client id and secret come from, for the page that says one is missing (HTML).
REGISTRATION_HINT = (
    'Copy both from your app at <a href="https://dev.fitbit.com/apps">dev.fitbit.com/apps</a> '
    "(type <strong>Server</strong>)"
)


# --- Scopes ----------------------------------------------------------------------------

# What the user's name needs, by meaning. Fitbit spells a scope one way only. (Each kind
# of data names its own scope: DATA, below.)
NEEDS = {"profile": {"profile"}, "zone": {"profile"}}  # the time zone is in the profile


def grants(scope, need):
    """True if the granted `scope` string covers `need` ("profile")."""
    return bool(NEEDS[need] & set(scope.split()))


def more_scope(granted, kind):
    """Step 10: Fitbit has no incremental authorization, so a consent round asks again for
    every scope the user holds, and the one more."""
    return " ".join(dict.fromkeys([*granted.split(), kind.scope]))


# --- The authorization request and the code exchange -----------------------------------


def authorize_parameters(holds_refresh_token, more=False, nonce=None):
    """Nothing beyond RFC 6749 and 7636: Fitbit always hands out a refresh token, every
    consent is a whole one, and without OpenID Connect there is no nonce to send."""
    return {}


def code_exchange_parameters(client):
    # As in Fitbit's own examples, beside Basic authentication; never the secret.
    return {"client_id": client.client_id}


# --- Who the user is -------------------------------------------------------------------


def checked_id_token(client, keys, tokens, nonce):
    return None  # no OpenID Connect, so no ID token


def identify(client, tokens, id_token=None):
    """Step 5: Fitbit's token answer names the user (`user_id`); the profile gives their
    name, if the user let the app read it. (No ID token: Fitbit's word is the token
    answer itself, over TLS.)"""
    if not tokens.user_id:
        raise oauth.BadResponse("user_id missing", who=NAME)
    if not grants(tokens.scope, "profile"):
        return Person(KEY, tokens.user_id, None, tokens.user_id)
    request = profile_request(client)
    try:
        body, headers = oauth.api_call(client, request, tokens.access_token)
    except oauth.RateLimited as error:
        # The user's hour of calls is spent (by this app, in another browser): the token
        # answer has said who they are, so they are signed in, and the name waits.
        return Person(KEY, tokens.user_id, None, None, spent_until=error.reset_at)
    name = read_profile(body)[0]
    return Person(KEY, tokens.user_id, None, name, {request.key: (body, headers)})


def owner(client, tokens):
    """Whose tokens these are: the token answer names them."""
    return Person(KEY, tokens.user_id, None, None) if tokens.user_id else None


def issuers(issuer):
    return frozenset()  # no ID tokens, so no issuer of them


# --- Errors ----------------------------------------------------------------------------


def error_from_response(response):
    """Fitbit's error shape, for the OAuth endpoints and the Web API alike:
    {"errors": [{"errorType": ..., "message": ...}], "success": false}."""
    status = response.status_code
    error_type = "unknown"
    errors = (oauth.json_body(response) or {}).get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        if isinstance(errors[0].get("errorType"), str):
            error_type = errors[0]["errorType"][:64]

    if status == 410:
        return oauth.ApiRetired(status, error_type, who=NAME)
    if status == 429:
        return oauth.RateLimited(status, error_type, rate_limit_reset(response), who=NAME)
    if status >= 500:
        return oauth.ProviderUnavailable(status, error_type, who=NAME)
    if status == 401 and error_type in ("expired_token", "invalid_token"):
        return oauth.TokenRejected(status, error_type, who=NAME)
    if status == 403 and error_type == "insufficient_scope":
        return oauth.ScopeMissing(status, error_type, who=NAME)
    if status == 403:
        # What Fitbit keeps from an app it has not approved (intraday data): seen as its own
        # insufficient_permissions, and in 2026 as Google's PERMISSION_DENIED, with no
        # `errors` at all.
        return oauth.NotAllowed(status, error_type, who=NAME)
    return oauth.ProviderError(status, error_type, who=NAME)


def error_page(error):
    """(status, title, message) for a failure of Fitbit's own, or None for the app's
    usual page."""
    if isinstance(error, oauth.ApiRetired):
        message = (
            "Fitbit shut down its legacy Web API in autumn 2026, so this app cannot reach it. "
            "Start the app with PROVIDER=google to use its successor, the Google Health API, "
            "or without FITBIT_CLIENT_ID to use the built-in stand-in."
        )
        return 502, "Fitbit retired this API", message
    return None


def revoked(response):
    """Fitbit answers 200 to a revoke, even for a token it no longer knows (RFC 7009 2.2)."""
    return response.status_code == 200


def rate_limit_reset(response):
    # Without Fitbit-Rate-Limit-Reset, the budget refills at the top of the hour.
    _, reset_at = rate_budget(response.headers)
    now = datetime.now(UTC)
    return reset_at or now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def rate_budget(headers):
    """(calls left this hour, when the budget refills) from Fitbit-Rate-Limit-* headers,
    each None when absent. Fitbit-Rate-Limit-Reset counts seconds; Retry-After has been
    reported wrong, so it is not used."""

    def number(name, cap):
        # Untrusted figures, capped before they are kept: twenty digits would not even fit
        # in the database's integer column.
        value = headers.get(name, "")
        if not (value.isascii() and value.isdigit()):
            return None
        return cap if len(value) > len(str(cap)) else min(int(value), cap)

    remaining = number("Fitbit-Rate-Limit-Remaining", MAX_RATE_BUDGET)
    # The budget refills every hour: a larger figure is an error, not a reason to wait.
    reset = number("Fitbit-Rate-Limit-Reset", 3600)
    if reset is None:
        return remaining, None
    return remaining, datetime.now(UTC) + timedelta(seconds=reset)


# --- Where the data lives --------------------------------------------------------------


def profile_request(client):
    return oauth.ApiRequest("GET", client.api_url + PROFILE_PATH)


def read_profile(body):
    """(name, avatar URL or None, member-since date or None) from /1/user/-/profile.json."""
    user = body.get("user") if isinstance(body, dict) else None
    if not isinstance(user, dict):
        raise oauth.BadResponse("profile has no user", who=NAME)
    name = "Fitbit user"
    for key in ("displayName", "fullName"):
        if isinstance(user.get(key), str) and user[key].strip():
            name = user[key].strip()[:MAX_NAME]
            break
    avatar = user.get("avatar150") or user.get("avatar")
    if not isinstance(avatar, str) or not avatar.startswith(("https://", "http://")):
        avatar = None  # only web addresses become an <img src>
    try:
        member_since = date.fromisoformat(user.get("memberSince"))
    except (TypeError, ValueError):
        member_since = None
    return name, avatar, member_since


def zone_request(client):
    """Where the user's time zone is: their profile, so it costs no call of its own."""
    return profile_request(client)


def read_zone(body):
    """The profile's `timezone` (IANA), else its `offsetFromUTCMillis`; None if neither."""
    user = body.get("user") if isinstance(body, dict) else None
    if not isinstance(user, dict):
        return None
    millis = user.get("offsetFromUTCMillis")
    offset = None
    if isinstance(millis, int) and not isinstance(millis, bool) and abs(millis) < 86_400_000:
        offset = timedelta(milliseconds=millis)
    return time_zone(user.get("timezone"), offset)


def steps_request(client, today):
    """The last month of daily steps, ending on the user's own today (Fitbit knows their
    time zone)."""
    return oauth.ApiRequest("GET", client.api_url + STEPS_PATH)


def read_steps(body):
    """[(date, steps), ...], oldest first. Fitbit sends each value as a string ("8123"), but
    nothing promises it always will: numbers are taken too."""
    series = body.get("activities-steps") if isinstance(body, dict) else None
    if not isinstance(series, list):
        raise oauth.BadResponse("no activities-steps", who=NAME)
    days = []
    for entry in series:
        try:
            value = entry["value"]
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise ValueError(value)
            steps = int(float(value))
            if steps < 0:
                raise ValueError(value)
            days.append((date.fromisoformat(entry["dateTime"]), min(steps, MAX_DAILY_STEPS)))
        except (TypeError, KeyError, ValueError, OverflowError):
            raise oauth.BadResponse("unreadable step count", who=NAME) from None
    return sorted(days)


def sleep_request(client, today):
    """The sleep log of the last SLEEP_NIGHTS mornings, `today` (UTC here) the last."""
    first = today - timedelta(days=SLEEP_NIGHTS - 1)
    return oauth.ApiRequest("GET", f"{client.api_url}{SLEEP_PATH}/{first}/{today}.json")


def read_sleep(body):
    """(Night, ...), oldest first: each morning's main sleep (naps are left out; of two
    main sleeps, the longer). A `classic` night, which Fitbit could not stage, has asleep
    and awake only. Fitbit promises no order, and its minutes are numbers."""
    records = body.get("sleep") if isinstance(body, dict) else None
    if not isinstance(records, list):
        raise oauth.BadResponse("no sleep log", who=NAME)
    nights = {}
    for record in records:
        try:
            if not record.get("isMainSleep", True):
                continue
            asleep, in_bed = (minutes(record[key]) for key in ("minutesAsleep", "timeInBed"))
            summary = record.get("levels", {}).get("summary", {})
            if record.get("type") == "stages":
                stages = tuple((level, minutes(summary[level]["minutes"])) for level in STAGES)
                stages = stages[:3] + (("awake", stages[3][1]),)  # Fitbit says "wake"
            else:
                stages = (("asleep", asleep), ("awake", in_bed - asleep))
            night = Night(date.fromisoformat(record["dateOfSleep"]), asleep, in_bed, stages)
        except (TypeError, KeyError, ValueError, AttributeError):
            raise oauth.BadResponse("unreadable sleep log", who=NAME) from None
        if night.asleep > night.in_bed:
            raise oauth.BadResponse("more asleep than in bed", who=NAME)
        if night.day not in nights or night.in_bed > nights[night.day].in_bed:
            nights[night.day] = night
    return tuple(sorted(nights.values()))


def minutes(value):
    """A count of minutes: a whole number from 0 to a day's worth."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= DAY_MINUTES:
        raise ValueError(value)
    return value


def heart_rate_request(client, today):
    """The last 30 days of heart rate zones and resting rates, ending on the user's today."""
    return oauth.ApiRequest("GET", client.api_url + HEART_RATE_PATH)


def read_heart_rate(body):
    """((date, beats per minute), ...), oldest first, for the days that have a resting rate:
    a day of too little wear has none. Usually a number in `value.restingHeartRate`; an old
    answer had the value itself as a string ("64.2"): both are taken."""
    days = body.get("activities-heart") if isinstance(body, dict) else None
    if not isinstance(days, list):
        raise oauth.BadResponse("no activities-heart", who=NAME)
    rates = []
    for entry in days:
        try:
            value = entry["value"]
            rate = value.get("restingHeartRate") if isinstance(value, dict) else value
            if rate is None:
                continue
            if isinstance(rate, bool) or not isinstance(rate, int | float | str):
                raise ValueError(rate)
            beats = round(float(rate))
            if beats not in HEART_RATES:
                raise ValueError(rate)
            rates.append((date.fromisoformat(entry["dateTime"]), beats))
        except (TypeError, KeyError, ValueError, AttributeError, OverflowError):
            raise oauth.BadResponse("unreadable heart rate", who=NAME) from None
    return tuple(sorted(rates))


def heart_rate_today_request(client, today):
    """Today's heart rate, a point a minute (`today`: Fitbit knows the user's own)."""
    return oauth.ApiRequest("GET", client.api_url + HEART_RATE_TODAY_PATH)


def read_heart_rate_today(body):
    """dialects.HeartDay of the intraday answer: ((minute of the day, bpm), ...) from
    `activities-heart-intraday.dataset` (times on the user's clock, minutes without a reading
    left out), and the day's resting rate. An app Fitbit has not approved gets the answer
    without its intraday part: then `available` is False."""
    days = body.get("activities-heart") if isinstance(body, dict) else None
    if not isinstance(days, list):
        raise oauth.BadResponse("no activities-heart", who=NAME)
    resting = read_heart_rate({"activities-heart": days[:1]})
    resting = resting[0][1] if resting else None
    intraday = body.get("activities-heart-intraday")
    if intraday is None:
        return HeartDay((), resting, available=False)
    try:
        minutes = []
        for point in intraday["dataset"]:
            hours, mins, _ = (int(part) for part in point["time"].split(":"))
            value = point["value"]
            if isinstance(value, bool) or not isinstance(value, int) or value not in PULSE_RATES:
                raise ValueError(value)
            if not (0 <= hours < 24 and 0 <= mins < 60):
                raise ValueError(point["time"])
            minutes.append((hours * 60 + mins, value))
    except (TypeError, KeyError, ValueError, AttributeError):
        raise oauth.BadResponse("unreadable intraday heart rate", who=NAME) from None
    return HeartDay(tuple(sorted(dict(minutes).items())), resting)


def workouts_request(client, today):
    """The activity log of the last WORKOUT_DAYS days, oldest first: `afterDate` and its
    `sort`, a page of ACTIVITY_PAGE, and `offset=0`, the only one Fitbit takes (the next
    page is at `pagination.next`)."""
    first = today - timedelta(days=WORKOUT_DAYS - 1)
    query = {"afterDate": first.isoformat(), "sort": "asc", "limit": ACTIVITY_PAGE, "offset": 0}
    return oauth.ApiRequest("GET", f"{client.api_url}{ACTIVITY_LIST_PATH}?{urlencode(query)}")


def next_workouts(client, request, body):
    """The page after `body`: its `pagination.next`, followed only to the same API and path,
    since the Bearer token goes with it; None at the end."""
    pagination = body.get("pagination") if isinstance(body, dict) else None
    following = pagination.get("next") if isinstance(pagination, dict) else None
    if not isinstance(following, str) or not following:
        return None
    api, there = urlsplit(client.api_url), urlsplit(following)
    if (there.scheme, there.netloc) != (api.scheme, api.netloc):
        return None  # another host: never sent the token
    if there.path != urlsplit(request.url).path:
        return None
    return oauth.ApiRequest("GET", following)


def kept_workouts(bodies, stopped):
    """What is kept of the list's pages: their activities, and how the paging ended."""
    activities = []
    for body in bodies:
        listed = body.get("activities") if isinstance(body, dict) else None
        if not isinstance(listed, list):
            raise oauth.BadResponse("no activities", who=NAME)
        activities += listed
    return {"activities": activities, "pages": len(bodies), "stopped": stopped}


def read_workouts(body):
    """dialects.Workouts of what was kept of the activity log list: each entry's name, its
    start on the user's clock (Fitbit writes it with its offset), its duration (ms), and its
    distance, average heart rate and calories when given."""
    entries = body.get("activities") if isinstance(body, dict) else None
    if not isinstance(entries, list):
        raise oauth.BadResponse("no activities", who=NAME)
    sessions = []
    for entry in entries:
        try:
            start = datetime.fromisoformat(entry["startTime"]).replace(tzinfo=None)
            minutes = round(entry["duration"] / 60_000)
            if isinstance(entry["duration"], bool) or not 0 <= minutes <= MAX_WORKOUT_MINUTES:
                raise ValueError(entry["duration"])
            name = entry.get("activityName")
            name = name.strip()[:40] if isinstance(name, str) and name.strip() else "Workout"
            km = distance(entry)
            rate = entry.get("averageHeartRate")
            rate = rate if isinstance(rate, int) and rate in PULSE_RATES else None
            calories = entry.get("calories")
            if not (isinstance(calories, int) and 0 <= calories <= MAX_CALORIES):
                calories = None
        except (TypeError, KeyError, ValueError, AttributeError, OverflowError):
            raise oauth.BadResponse("unreadable activity log", who=NAME) from None
        sessions.append(Workout(name, start, minutes, km, rate, calories))
    stopped = body.get("stopped") if isinstance(body.get("stopped"), str) else ""
    return Workouts(tuple(sorted(sessions, key=lambda w: w.start)), not stopped, stopped)


def distance(entry):
    """The distance of an entry in km, or None when it has none (a workout in a gym)."""
    value, unit = entry.get("distance"), entry.get("distanceUnit", "Kilometer")
    if isinstance(value, bool) or not isinstance(value, int | float) or unit not in KM_PER:
        return None
    km = value * KM_PER[unit]
    return round(km, 2) if 0 <= km <= MAX_WORKOUT_KM else None


# Each kind of data the signed-in page shows (dialects.DataKind): steps and workouts, read
# with `activity`, asked for at sign-in; sleep, asked for when the user asks to see it; and
# the resting heart rate and the heart rate of today, both read with `heartrate`, asked for
# together when the user asks to see either. All but sleep change in the `activities`
# collection of Fitbit's webhooks.
STEPS = DataKind("steps", "activity", steps_request, read_steps, ("activities",))
WORKOUTS = DataKind(
    "workouts",
    "activity",
    workouts_request,
    read_workouts,
    ("activities",),
    pages=Paging(next_workouts, ACTIVITY_PAGES, kept_workouts),
)
SLEEP = DataKind("sleep", "sleep", sleep_request, read_sleep, ("sleep",))
HEART_RATE = DataKind(
    "heart_rate", "heartrate", heart_rate_request, read_heart_rate, ("activities",)
)
HEART_RATE_TODAY = DataKind(
    "heart_rate_today",
    "heartrate",
    heart_rate_today_request,
    read_heart_rate_today,
    ("activities",),
    beside=("workouts",),
)
DATA = (STEPS, WORKOUTS, SLEEP, HEART_RATE, HEART_RATE_TODAY)


# --- Webhooks: Fitbit's subscriptions ---------------------------------------------------

WEBHOOK_METHODS = ("GET", "POST")  # the verify handshake, and the deliveries
WEBHOOK_USER_FIELD = "fitbit_id"  # a delivery's ownerId is the user's Fitbit id
# Each of the same day's syncs sends the same body again: each one is a change.
DEDUPE_DELIVERIES = False
# Beside the collections of the data it shows, this app subscribes each user to the
# revocation, which Fitbit sends only to a subscription for it or for every collection.
REVOCATION = "userRevokedAccess"
WEBHOOK_HEADERS = {
    "X-Fitbit-Signature": "Base64 of HMAC-SHA1 over the raw body, keyed with the client "
    "secret and '&': checked before anything is read.",
}


def verify_subscriber(code, settings):
    """Fitbit's check, when the subscriber is added: ?verify=<the code> must get 204, and
    any other code 404. Compared in constant time."""
    return hmac.compare_digest(code.encode(), settings.secret.encode())


def signature(client_secret, body):
    """What X-Fitbit-Signature must be for `body`."""
    digest = hmac.new(f"{client_secret}&".encode(), body, hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def read_webhook(client, settings, keys, headers, body):
    """A delivery: a JSON array of {collectionType, date, ownerId, ownerType,
    subscriptionId}, signed with the client secret. A wrong signature gets 404, as Fitbit
    expects of an endpoint that did not ask for it."""
    sent = headers.get("X-Fitbit-Signature", "")
    if not hmac.compare_digest(sent.encode(), signature(client.client_secret, body).encode()):
        raise Refused(404, "The X-Fitbit-Signature does not match.")
    try:
        items = json.loads(body)
    except (ValueError, RecursionError):
        raise Refused(400, "The body is not JSON.") from None
    if not isinstance(items, list):
        raise Refused(400, "The body is not a JSON array.")
    changes = []
    for item in items:
        owner = item.get("ownerId") if isinstance(item, dict) else None
        collection = item.get("collectionType") if isinstance(item, dict) else None
        if not isinstance(owner, str) or not isinstance(collection, str):
            raise Refused(400, "Each item needs an ownerId and a collectionType.")
        day = item.get("date") if isinstance(item.get("date"), str) else ""
        revoked = collection == "userRevokedAccess"
        changes.append(Change(owner, collection, day[:10], revoked))
    return changes


def subscription_requests(client, settings, user, method, kinds):
    """The API requests that subscribe `user` (POST) or unsubscribe them (DELETE): one per
    collection of `kinds`, and one to the revocation, each with an id of the app's choosing,
    unique per user."""
    headers = {"X-Fitbit-Subscriber-Id": settings.subscriber_id} if settings.subscriber_id else None
    collections = dict.fromkeys([*(kind.webhook_types[0] for kind in kinds), REVOCATION])
    return [
        oauth.ApiRequest(
            method,
            f"{client.api_url}/1/user/-/{collection}/apiSubscriptions/{user.id}-{collection}.json",
            headers=headers,
        )
        for collection in collections
    ]
