"""What a provider's dialect is: the interface that fitbit_legacy.py and google_health.py
both implement, the Person their identify() returns, and the limits on the data they read.

oauth.py does the steps of OAuth 2.0 that every provider shares, and asks the client's
dialect for the rest. A dialect is a module with the names below; providers.PROVIDERS lists
them, and tests/test_dialects.py checks that each has every one.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import NamedTuple, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# A day's steps beyond this is a broken answer, kept capped.
MAX_DAILY_STEPS = 1_000_000
# A name longer than this is cut to it (the users table holds 255 characters).
MAX_NAME = 100
# A night is at most a day long; a resting heart rate outside these is a broken answer.
DAY_MINUTES = 24 * 60
HEART_RATES = range(20, 251)
# A heart rate at any moment (in a workout too), and a workout's length, distance and
# calories: beyond these, a broken answer.
PULSE_RATES = range(20, 301)
MAX_WORKOUT_MINUTES = 24 * 60
MAX_WORKOUT_KM = 1000
MAX_CALORIES = 50_000
# The days the workouts panel lists, today the last.
WORKOUT_DAYS = 14


@dataclass(frozen=True)
class Person:
    """Who signed in, as the dialect's identify() found out. Fitbit gives its user id;
    Google gives a Health user id and, for people who had a Fitbit account, that account's
    id too (`fitbit_id`), which is what links the two. `name` is None when the profile was
    granted but could not be read now: the name kept from before stands. `answers` are the
    API answers read on the way, {key: (body, headers)}, so that the first page need not ask
    again; `spent_until`, when the user's budget of calls ran out on the way, is when it
    comes back."""

    provider: str
    fitbit_id: str | None
    health_user_id: str | None
    name: str | None
    answers: dict = field(default_factory=dict)
    spent_until: datetime | None = None


@dataclass(frozen=True)
class Paging:
    """A list that comes a page at a time: how to ask for the page after one answer (None
    at the end), how many pages to ask for at most, and what to keep of the pages
    (`kept(bodies, complete)`: one JSON document, which the kind's `read` reads)."""

    next_request: Callable  # (client, request, body) -> oauth.ApiRequest | None
    most: int
    kept: Callable


@dataclass(frozen=True)
class DataKind:
    """One kind of the user's data, as one dialect reaches it: where it is, which scope reads
    it, how an answer is read, and how a webhook delivery names it. The signed-in page shows
    each in a panel of its own, drawn by templates/panels/<panel>.html from what `read`
    makes of an answer. One more kind (weight, say) is one more of these in each dialect,
    one more template, and its words and figures in panels.PANELS."""

    panel: str  # "steps", "workouts", "sleep", ...: the panel, and its template
    scope: str  # what the app asks for, when the user asks to see it
    request: Callable  # (client, today) -> the oauth.ApiRequest that reads it
    read: Callable  # an answer's JSON -> what the panel shows, hashable
    webhook_types: tuple = ()  # the names a delivery gives it; the first, Fitbit's collection
    also_granted_by: frozenset = frozenset()  # other scopes that read it too
    pages: Paging | None = None  # for a list that comes a page at a time
    # Other kinds whose reading this panel draws beside its own (by their panel): the heart
    # rate of today marks the day's workouts, and the resting rate.
    beside: tuple = ()

    def granted(self, scope):
        """Whether the granted `scope` string lets the app read this kind of data."""
        granted = set(scope.split())
        return self.scope in granted or bool(self.also_granted_by & granted)


class Workout(NamedTuple):
    """One exercise session, as both dialects read it: what kind ("Walk", in the provider's
    words), when it started on the user's clock, how long it lasted, and the distance (km)
    and average heart rate, each None when not given."""

    kind: str
    start: datetime
    minutes: int
    km: float | None
    heart_rate: int | None
    calories: int | None


class Workouts(NamedTuple):
    """The workouts panel's reading: the sessions, oldest first, and whether every page of
    the list was fetched (`complete`); when not, why (`stopped`: "pages" for the bound,
    "budget" to keep calls for the rest of the page)."""

    sessions: tuple
    complete: bool = True
    stopped: str = ""


class HeartDay(NamedTuple):
    """Today's heart rate through the day, as both dialects read it: ((minute of the day,
    beats a minute), ...), the resting rate when the answer gives it, whether the provider
    gave the day's readings at all (Fitbit gives them only to apps it approves), and, as for
    Workouts, whether every page came."""

    minutes: tuple
    resting: int | None = None
    available: bool = True
    complete: bool = True
    stopped: str = ""


def time_zone(name, offset):
    """The user's time zone, as a provider gives it: its IANA `name` ("Pacific/Auckland"),
    else a fixed `offset` from UTC (a timedelta) for the moment; None when neither can be
    read. A name that is not one of the database's is no zone."""
    if isinstance(name, str) and 0 < len(name) <= 64:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    if isinstance(offset, timedelta) and abs(offset) <= timedelta(hours=14):
        return timezone(offset)
    return None


class Night(NamedTuple):
    """One night's main sleep, as both dialects read it: the morning it ended, minutes
    asleep and in bed, and its stages ((level, minutes), ...): deep, light, rem and awake,
    or asleep and awake for a night the tracker could not stage."""

    day: date
    asleep: int
    in_bed: int
    stages: tuple


@dataclass(frozen=True)
class Change:
    """One item of a webhook delivery: whose data changed (the provider's own id for them), which
    data, and when, as the provider put it."""

    user_id: str
    data_type: str  # in the provider's words: "activities", "steps", "userRevokedAccess"
    when: str = ""
    revoked: bool = False  # the user took the app's access back at the provider


class Refused(Exception):
    """A webhook delivery that is not taken: its status, and why (for the log, and the
    sender)."""

    def __init__(self, status, reason):
        super().__init__(reason)
        self.status, self.reason = status, reason


VERIFIED = "verified"  # what read_webhook() returns for Google's handshake


class Dialect(Protocol):
    """The names a dialect module has. In the order a sign-in needs them:"""

    # Who it is: the key kept in the users table, and its name on the pages and in logs.
    KEY: str
    NAME: str
    TITLE: str  # "the Google Health API": for sentences
    # The app's settings for it (settings.py): their prefix, and the variable behind each
    # of oauth.Client's fields; and where a developer finds the client id and secret (HTML).
    SETTINGS_PREFIX: str
    SETTINGS: dict
    REGISTRATION_HINT: str
    # Endpoints and scopes: the defaults of oauth.Client.
    AUTHORIZE_URL: str
    TOKEN_URL: str
    REVOKE_URL: str
    API_URL: str
    USERINFO_URL: str
    ISSUER: str  # what its callback's `iss` must be (RFC 9207); "" if it names none
    JWKS_URL: str  # where its ID tokens' keys are, if not found by discovery
    SCOPES: str
    # Which fields every token answer has, and whether revoking wants client credentials.
    TOKEN_FIELDS: tuple
    REVOKE_WITH_AUTH: bool
    # Its limits on API calls: the note the page shows, and the headers that report them.
    RATE_LIMIT_NOTE: str
    RATE_LIMIT_HEADERS: dict  # each header that reports them, with what it says
    SITE_FOR_REVOKING: str  # where a user revokes the app themselves

    # The kinds of data the signed-in page shows (DataKind), steps first: the first sign-in
    # asks for SCOPES, and each other kind is asked for when the user asks to see it.
    DATA: tuple

    def grants(self, scope: str, need: str) -> bool:
        """Whether the granted `scope` lets the app read the user's name ("profile")."""

    def authorize_parameters(self, holds_refresh_token: bool, more: bool, nonce: str) -> dict:
        """Step 2: what the authorization request adds to RFC 6749's and RFC 7636's; `more`
        for a consent round that asks for one kind of data more (step 10). OpenID Connect's
        `nonce`, for a dialect that speaks it."""

    def more_scope(self, granted: str, kind: DataKind) -> str:
        """Step 10: the `scope` of a consent round for `kind`, the user holding `granted`."""

    def code_exchange_parameters(self, client) -> dict:
        """Step 4: what the code exchange's form adds to RFC 6749's."""

    def checked_id_token(self, client, keys, tokens, nonce: str) -> dict | None:
        """Step 5, first: the ID token of the token answer, checked with the provider's
        `keys` (id_tokens.ProviderKeys) against the `nonce` this sign-in sent
        (id_tokens.check); None for a dialect without OpenID Connect."""

    def identify(self, client, tokens, id_token: dict | None) -> Person:
        """Step 5: who the new tokens belong to, with what their ID token said."""

    def owner(self, client, tokens) -> Person | None:
        """Whose `tokens` are, believing nothing else of their answer, or None if it cannot
        say: whether handing back tokens that will not be kept could end a grant that is."""

    def issuers(self, issuer: str) -> frozenset:
        """The `iss` an ID token may carry, the client's issuer being `issuer`."""

    def profile_request(self, client):
        """Step 7: the oauth.ApiRequest for the user's name and picture."""

    def read_profile(self, body) -> tuple:
        """(name, picture URL or None, member-since date or None) from its answer."""

    def rate_budget(self, headers) -> tuple:
        """Step 7: (calls left, when the budget refills) from an answer's headers, each or
        None."""

    def error_from_response(self, response) -> Exception:
        """The provider's error answer as an oauth.ProviderError (or a subclass)."""

    def error_page(self, error) -> tuple | None:
        """(status, title, message) for a failure of its own; None for the usual page."""

    def revoked(self, response) -> bool:
        """Step 9: whether the provider's answer to a revoke means the grant is gone."""

    # Webhooks (webhooks.py): the settings, as settings.WebhookSettings fields; the
    # endpoint's methods; which User column a delivery's user id is; whether a delivery
    # sent again byte for byte is the same one; and the headers the trace shows. (Which
    # data a delivery names is each DataKind's webhook_types.)
    WEBHOOK_SETTINGS: dict
    WEBHOOK_DEFAULTS: dict
    WEBHOOK_METHODS: tuple
    WEBHOOK_USER_FIELD: str
    DEDUPE_DELIVERIES: bool
    WEBHOOK_HEADERS: dict

    def verify_subscriber(self, code: str, settings) -> bool:
        """Fitbit's handshake, a GET with ?verify=: whether the code is the one set."""

    def read_webhook(self, client, settings, keys, headers, body: bytes) -> list | str:
        """A delivery's changes ([Change, ...]), or VERIFIED for Google's handshake; raises
        Refused, or published_keys.KeysUnavailable when Google's keys cannot be had."""

    def subscription_requests(self, client, settings, user, method: str, kinds: tuple) -> list:
        """The oauth.ApiRequests that subscribe a user to the changes of `kinds` of data,
        after sign-in (POST), or unsubscribe them (DELETE); none where a whole project is
        subscribed (Google)."""
