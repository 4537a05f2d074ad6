"""Google's resource servers: OpenID Connect's userinfo and the Google Health API
endpoints the app reads, with Bearer tokens, scopes and the per-minute budget.

    GET  /v1/userinfo, /oauth2/v3/userinfo    name and picture (OpenID Connect)
    GET  /v4/users/me/identity            the Health user id and the legacy Fitbit id
    GET  /v4/users/me/profile, /settings
    POST /v4/users/me/dataTypes/steps/dataPoints:dailyRollUp
    GET  /v4/users/me/dataTypes/steps/dataPoints      the raw points: filter, pageToken
    GET  /googlehealthapi/webhooks/webhooks_public_keyset.json    the webhook keyset

Sleep and daily resting heart rate are in google_sleep_heart.py. Other data types, and
`reconcile`, are not modelled: they answer 404.

Health API errors are google.rpc.Status objects (`ApiError`).
"""

from datetime import date, datetime, time, timedelta

from werkzeug.routing import Rule

from . import google_webhooks, recordings
from .common import Role, as_json, avatar, now, steps_on
from .google_day import GoogleDay
from .google_lists import bad_filter, clauses, merged_bounds, page
from .google_sleep_heart import GoogleSleepAndHeart, duration, interval
from .google_status import ApiError

USERINFO_PATH = "/v1/userinfo"
ME = "/v4/users/me"
AUTH = "https://www.googleapis.com/auth/"
HEALTH = AUTH + "googlehealth."
RATE_LIMIT = 300  # Health API requests per user per minute
MAX_RANGE_DAYS = 90  # for steps
BEARER_CHALLENGE = 'Bearer realm="https://accounts.google.com/", error="invalid_token"'
# Which scopes let a token read each part of the Health API.
IDENTITY_SCOPES = {
    HEALTH + name + ".readonly"
    for name in (
        "activity_and_fitness",
        "health_metrics_and_measurements",
        "sleep",
        "profile",
        "settings",
    )
}
STEPS_SCOPES = {
    HEALTH + name + ".readonly"
    for name in ("activity_and_fitness", "health_metrics_and_measurements", "location", "sleep")
}

# The people to sign in as, by Health user id. The first two are the Fitbit stand-in's users,
# with their legacy ids, so a move from Fitbit to Google can be tried; Robin joined after
# the move and has no Fitbit id; Casey's Google account has no Health profile at all.
PEOPLE = {
    "hu-4f1e9c2a7b": {
        "fullName": "Alex Rivera",
        "given": "Alex",
        "legacy": "7QW2XR",
        "sub": "104892750612347789016",
        "email": "alex.rivera@example.com",
    },
    "hu-8d03b6e5c1": {
        "fullName": "Sam Kowalski",
        "given": "Sam",
        "legacy": "9KD3MS",
        "sub": "117230598814663021457",
        "email": "sam.kowalski@example.com",
    },
    "hu-2a7c5e9f04": {
        "fullName": "Robin Osei",
        "given": "Robin",
        "legacy": None,
        "sub": "109935507226178853042",
        "email": "robin.osei@example.com",
    },
    "hu-c6b81d3e72": {
        "fullName": "Casey Ng",
        "given": "Casey",
        "legacy": None,
        "linked": False,
        "note": "no Google Health profile",
        "sub": "112047839210554698703",
        "email": "casey.ng@example.com",
    },
}


def whole_numbers(value, names, defaults=None):
    """The fields of a CivilTime message: plain numbers (no leading zeros, no strings)."""
    parts = [value.get(name, (defaults or {}).get(name)) for name in names]
    if any(isinstance(part, bool) or not isinstance(part, int) for part in parts):
        raise TypeError(parts)
    return parts


def civil_moment(value):
    """A CivilDateTime {"date": {...}, "time"?: {...}}: no time is midnight, on the user's
    own clock (their settings say where it stands)."""
    try:
        day = date(*whole_numbers(value["date"], ("year", "month", "day")))
        clock = value.get("time", {})
        zero = {"hours": 0, "minutes": 0, "seconds": 0, "nanos": 0}
        hours, minutes, seconds, nanos = whole_numbers(clock, tuple(zero), zero)
        return datetime.combine(day, time(hours, minutes, seconds, nanos // 1000))
    except (TypeError, KeyError, ValueError, OverflowError, AttributeError):
        # A year of 2**31 overflows; a time of 25 o'clock is a ValueError.
        raise ApiError(400, "INVALID_ARGUMENT", "Invalid civil date in range.") from None


def civil(moment):
    """A CivilDateTime, with its time only when it is not midnight."""
    shown = {"date": {"year": moment.year, "month": moment.month, "day": moment.day}}
    if isinstance(moment, datetime) and moment.time() != time():
        shown["time"] = {"hours": moment.hour, "minutes": moment.minute, "seconds": moment.second}
    return shown


# --- dataPoints.list for steps ------------------------------------------------------------

# The fields its filter may name: the interval's start, physical or on the user's clock.
STEPS_FILTER = {"steps.interval.start_time": "zoned", "steps.interval.civil_start_time": "civil"}
LISTED_DAYS = 30  # without a lower bound, the last month
STEPS_PAGE = 1440  # points to a page, unless pageSize says otherwise


def hourly_steps(who, start, before, moment, walked):
    """The raw data points: each day's steps (and those `walked`, {day: steps}) spread over
    its hours, up to `moment`."""
    points, day = [], start.date()
    while datetime.combine(day, time()) < before and day <= moment.date():
        hours = 24 if day < moment.date() else moment.hour + 1
        total = steps_on(who, day) + walked.get(day.isoformat(), 0)
        for hour in range(hours):
            begins = datetime.combine(day, time(hour))
            count = total // hours + (total % hours if hour == hours - 1 else 0)
            if start <= begins < before and count:
                points.append(steps_point(who, begins, count))
        day += timedelta(days=1)
    return points


def steps_point(who, begins, count):
    """An hour's steps; `begins` on the person's clock."""
    ends = begins + timedelta(hours=1)
    shown = interval(who, begins, ends, civil_too=False)
    shown.update(civilStartTime=civil(begins), civilEndTime=civil(ends))
    return {
        "name": f"users/me/dataTypes/steps/dataPoints/{begins:%Y%m%d%H}",
        "steps": {"interval": shown, "count": str(count)},  # an int64, as a string
    }


class GoogleResourceServer(GoogleSleepAndHeart, GoogleDay, Role):
    RULES = [
        *GoogleSleepAndHeart.RULES,
        *GoogleDay.RULES,
        Rule(USERINFO_PATH, endpoint="userinfo", methods=["GET"]),
        Rule("/oauth2/v3/userinfo", endpoint="userinfo", methods=["GET"]),  # its other address
        Rule(f"{ME}/identity", endpoint="identity", methods=["GET"]),
        Rule(f"{ME}/profile", endpoint="profile", methods=["GET"]),
        Rule(f"{ME}/settings", endpoint="settings", methods=["GET"]),
        Rule(f"{ME}/dataTypes/steps/dataPoints:dailyRollUp", endpoint="steps", methods=["POST"]),
        Rule(f"{ME}/dataTypes/steps/dataPoints", endpoint="list_steps", methods=["GET"]),
        Rule("/avatars/<user_id>.svg", endpoint="avatar", methods=["GET"]),
        Rule(google_webhooks.KEYSET_PATH, endpoint="keyset", methods=["GET"]),
    ]

    def on_keyset(self, request):
        """The public keys of the webhook signatures, as www.gstatic.com serves them."""
        self.stand_in.signing_key()  # there is always one to publish
        return as_json(google_webhooks.keyset(self.store.signing_keys.all()))

    def bearer_grant(self, request):
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        access = (
            self.store.grants.access_token(token) if scheme.lower() == "bearer" and token else None
        )
        if access is None or now() >= access.expires_at:
            raise ApiError(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access "
                "token, login cookie or other valid authentication credential.",
                headers={"WWW-Authenticate": BEARER_CHALLENGE},
            )
        return access.grant

    def on_userinfo(self, request):
        """OpenID Connect's userinfo: `sub` is the Google account's id (the ID token's),
        not the Health user id; the name and picture with `profile`, the email with `email`."""
        grant = self.bearer_grant(request)
        person = PEOPLE[grant.user_id]
        info = {"sub": person["sub"]}
        granted = grant.scope.split()
        if AUTH + "userinfo.profile" in granted:
            info.update(
                name=person["fullName"],
                given_name=person["given"],
                family_name=person["fullName"].split()[-1],
                picture=f"{request.url_root}avatars/{grant.user_id}.svg",
            )
        if AUTH + "userinfo.email" in granted:
            info.update(email=person["email"], email_verified=True)
        return as_json(info)

    def health_call(self, request, scopes):
        """Bearer token, then scope, then the per-minute budget, then a linked profile."""
        grant = self.bearer_grant(request)
        if not scopes & set(grant.scope.split()):
            raise ApiError(
                403,
                "PERMISSION_DENIED",
                "Request had insufficient authentication scopes.",
                reason="ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'},
            )
        minute = now().strftime("%Y%m%d%H%M")
        if self.store.calls.add(grant.client_id, grant.user_id, minute) > self.stand_in.rate_limit:
            raise ApiError(
                429, "RESOURCE_EXHAUSTED", "Quota exceeded.", reason="RATE_LIMIT_EXCEEDED"
            )
        person = PEOPLE[grant.user_id]
        if person.get("linked") is False:
            raise ApiError(
                400,
                "FAILED_PRECONDITION",
                "The account is not linked to Google Health.",  # Google's words: clients match
                reason="ACCOUNT_NOT_LINKED",
            )
        return grant, person

    def on_identity(self, request):
        grant, person = self.health_call(request, IDENTITY_SCOPES)
        identity = {"name": "users/me/identity", "healthUserId": grant.user_id}
        if person["legacy"]:
            identity["legacyUserId"] = person["legacy"]
        return as_json(identity)

    def on_profile(self, request):
        grant, _ = self.health_call(request, {HEALTH + "profile.readonly"})
        return as_json(
            {
                "name": "users/me/profile",
                "age": 34,
                "membershipStartDate": civil(date(2016, 3, 14))["date"],
            }
        )

    def on_settings(self, request):
        """Where the person lives: the zone their days are cut by."""
        grant, _ = self.health_call(request, {HEALTH + "settings.readonly"})
        key = self.stand_in.data_key(grant.user_id)
        offset = recordings.offset_of(key, recordings.clock_of(key))
        zone = recordings.zone_of(key).key
        return as_json(
            {"name": "users/me/settings", "timeZone": zone, "utcOffset": duration(offset)}
        )

    def on_steps(self, request):
        grant, person = self.health_call(request, STEPS_SCOPES)
        try:
            body = request.get_json(silent=True)
        except RecursionError:  # JSON nested deeper than Python's parser goes
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("range"), dict):
            raise ApiError(400, "INVALID_ARGUMENT", "range is required.")
        start, end = (civil_moment(body["range"].get(edge)) for edge in ("start", "end"))
        window = body.get("windowSizeDays", 1)
        if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= 90:
            raise ApiError(400, "INVALID_ARGUMENT", "windowSizeDays must be 1 to 90.")
        if end <= start:
            raise ApiError(400, "INVALID_ARGUMENT", "range.end must be after range.start.")
        if (end - start).days > MAX_RANGE_DAYS:
            raise ApiError(400, "INVALID_ARGUMENT", "The range may span at most 90 days.")
        who = self.stand_in.data_key(grant.user_id)
        today = recordings.clock_of(who).date()  # the person's own
        walked = self.store.walks.of(who)
        points = []
        first = start
        while first < end and first.date() <= today:
            # Windows of whole days from the start; the end is exclusive, and may be a time.
            after = min(datetime.combine(first.date() + timedelta(days=window), time()), end)
            last = (after - timedelta(microseconds=1)).date()
            days = [first.date() + timedelta(days=n) for n in range((last - first.date()).days + 1)]
            total = sum(steps_on(who, day) + walked.get(day.isoformat(), 0) for day in days)
            # proto3's JSON leaves out a zero int64, and with it an empty message's field.
            points.append(
                {
                    "civilStartTime": civil(first),
                    "civilEndTime": civil(after),
                    "steps": {"countSum": str(total)} if total else {},
                }
            )
            first = after
        return as_json({"rollupDataPoints": points[::-1]})  # newest first

    def on_list_steps(self, request):
        """dataPoints.list: the raw points, oldest first, a page at a time."""
        grant, person = self.health_call(request, STEPS_SCOPES)
        text = request.args.get("filter", "")
        who = self.stand_in.data_key(grant.user_id)
        start, before = merged_bounds(clauses(text, STEPS_FILTER, who))
        moment = recordings.clock_of(who)
        before = min(before or moment, moment + timedelta(hours=1))
        start = start or datetime.combine(before.date() - timedelta(days=LISTED_DAYS), time())
        if (before - start).days > MAX_RANGE_DAYS:
            raise bad_filter("The filter may span at most 90 days.")
        points = hourly_steps(who, start, before, moment, self.store.walks.of(who))
        return as_json(page(request, points, STEPS_PAGE))

    def on_avatar(self, request, user_id):
        return avatar(PEOPLE.get(user_id), "#1a73e8")
