"""What the signed-in page shows: the user's profile, and a panel for each kind of data the
dialect reads (steps, workouts, sleep, heart rate, heart rate today: dialect.DATA), from the
provider's API through a cache of its answers and within the user's budget of calls. A kind
the user has not granted is asked for when they ask to see it (the panel's button, step 10
in fitbit_oauth_app.py); its markup is drawn by pages.Pages.draw_panel.

Each answer is kept in the ApiCache table for FITBIT_CACHE_SECONDS, so a reload does not
spend the user's budget, and a spent budget (or a 429) shows the last answer with a note.
A list that comes a page at a time (dialects.Paging) is fetched to its end, up to its bound,
each page counted against the budget before it is asked for, and kept as one answer
(paging.py).

Every day on the page is the user's own: cut in the time zone the provider gives for them
(Fitbit's profile, Google's settings), not in UTC, and not in this server's.
"""

import json
import logging
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from typing import NamedTuple

import oauth
import paging
import token_store
from pages import in_words
from panels import PANELS
from providers import account, dialect_of

# What the name and picture let the app see, for the line that says what the user allowed.
PROFILE_WORDS = "your name and picture"
# What the page leaves out when the user did not grant the profile on the consent page.
PROFILE_NOTE = (
    "You did not allow access to your profile, so your name and picture are not shown. "
    "Connect again and allow profile to see them."
)

# What a note says when the user's time zone cannot be had.
ZONE_NOTE = "Your days are cut at midnight UTC: {who} did not give this app your time zone{why}."

log = logging.getLogger("fitbit_oauth_app")


class Reading(NamedTuple):
    """One kind of data, as a view found it: whether its scope was granted, and what the
    dialect read from its answer (None without one)."""

    granted: bool
    data: object = None
    given: bool = True  # False: the provider keeps it from this app (oauth.NotAllowed)


class Dashboard:
    """The signed-in page's data, for the provider the app talks to. API calls go through
    oauth.ApiClient, which refreshes the tokens in `tokens` when they are due."""

    def __init__(self, client, tokens, cache_seconds, draw_panel):
        self.client = client
        self.draw_panel = draw_panel  # (panel, what was read, today) to the panel's markup
        self.dialect = client.dialect
        self.tokens = tokens
        self.cache_seconds = cache_seconds

    def show(self, user, notes):
        """Step 7: what the signed-in page shows, beside `notes` for the user: the profile,
        if its scope was granted (users can untick scopes on the consent page), and a panel
        for each kind of data."""
        if not user.connected:
            return {}
        if dialect_of(user) is not self.dialect:
            # Moving to Google Health: the old tokens speak the other dialect. The user is
            # asked to connect again, not made to (Google's migration guide says: nudge).
            notes.append(
                f"You connected through {dialect_of(user).TITLE}, and this app now uses "
                f"{self.dialect.TITLE}. Connect again to see your data."
            )
            return {"ask_again": True}
        shown = {"granted": granted_words(self.dialect, user.scope)}
        profile = self.profile(user, notes)
        if profile is not None:
            shown["display_name"], shown["avatar"], shown["member_since"] = read(
                self.dialect.read_profile, profile
            )
            if shown["display_name"] != user.display_name:  # read after a sign-in without it
                user.rename(shown["display_name"])
        zone = self.zone(user, profile, notes)
        today = datetime.now(zone).date()
        began = datetime.combine(today, time(), zone)  # an answer from before is yesterday's
        shown["day_ends"] = datetime.combine(today + timedelta(days=1), time(), zone)
        readings = {
            kind.panel: self.reading(user, kind, today, began, notes) for kind in self.dialect.DATA
        }
        shown["panels"] = [self.panel(kind, readings, today) for kind in self.dialect.DATA]
        # A profile left unticked can be granted by signing in again: the page offers it.
        shown["ask_again"] = PROFILE_NOTE in notes
        return shown

    def zone(self, user, profile, notes):
        """The user's time zone, as the provider gives it (dialect.read_zone): from the
        profile's answer when it holds it (Fitbit), else from its own (Google's settings).
        UTC, with a note, when it cannot be had."""
        dialect, why = self.dialect, ""
        if dialect.grants(user.scope, "zone"):
            request = dialect.zone_request(self.client)
            text = profile if request.key == dialect.profile_request(self.client).key else None
            try:
                text = text or self.api_data(user, request, notes)
            except oauth.ScopeMissing:
                text = None
            found = zone_in(dialect, user, text)
            if found is not None:
                return found
        else:
            why = ": it was not allowed on the consent page"
        note = ZONE_NOTE.format(who=dialect.NAME, why=why)
        if note not in notes:
            notes.append(note)
        return UTC

    def profile(self, user, notes):
        """The profile's answer (api_data()), or None and a note without its scope."""
        # No need to ask the provider to know it would say no.
        if self.dialect.grants(user.scope, "profile"):
            try:
                return self.api_data(user, self.dialect.profile_request(self.client), notes)
            except oauth.ScopeMissing as error:  # taken back at the provider since
                log.info("%s: %s", account(user), error)
        notes.append(PROFILE_NOTE)
        return None

    def reading(self, user, kind, today, began, notes):
        """One kind of data, for its panel: not granted, or what was read of its answer
        (None while the budget is spent and there is no answer yet: a note says when). An
        answer fetched before the user's day `began` is asked for again, however young."""
        # No need to ask the provider to know it would say no.
        if not kind.granted(user.scope):
            return Reading(False)
        try:
            api_request = kind.request(self.client, today)
            text = self.api_data(user, api_request, notes, kind.pages, since=began)
        except oauth.ScopeMissing as error:  # taken back at the provider since
            log.info("%s: %s", account(user), error)
            return Reading(False)
        except oauth.NotAllowed as error:  # the provider keeps it from this app
            log.info("%s: %s", account(user), error)
            return Reading(True, given=False)
        return Reading(True, self.read_panel(user, kind, text, notes))

    def panel(self, kind, readings, today):
        """One kind of data's panel: its words, whether the user granted it, and, when they
        did, its markup, drawn with what it sits beside (kind.beside)."""
        shown = {"name": kind.panel, **PANELS[kind.panel]._asdict(), "granted": False}
        reading = readings[kind.panel]
        if reading.granted and not reading.given:
            shown.update(granted=True, withheld=True)
        elif reading.granted:
            beside = tuple((name, readings[name].data) for name in kind.beside)
            shown.update(
                granted=True, drawn=self.draw_panel(kind.panel, reading.data, today, beside)
            )
        return shown

    def read_panel(self, user, kind, text, notes):
        """What the dialect reads from a panel's answer; None, with a note, for one it cannot
        read: the rest of the page is shown all the same."""
        if text is None:
            return None
        try:
            return read(kind.read, text)
        except oauth.BadResponse as error:
            log.warning("%s: %s", account(user), error)
            words = PANELS[kind.panel].words
            notes.append(f"{self.dialect.NAME} sent {words} in a shape this app cannot read.")
            return None

    def api_data(self, user, api_request, notes, pages=None, since=None):
        """One API answer for this user, as the JSON text it is kept as: the cached one while
        it is fresh, else a new one (with `pages`, a dialects.Paging, every page of a list,
        kept as one answer: paging.every_page); with `since`, one fetched before it is stale.
        A webhook's change makes it stale at once; of the views that find it so, in every
        process, one fetches it and the others show what is kept. When the user's budget
        of calls is spent, the last answer (if any) stands in, with a note."""
        cached = token_store.cached_answer(user, api_request.key)
        if cached is not None and cached.fresh(timedelta(seconds=self.cache_seconds), since):
            return cached.text
        asked_at = datetime.now(UTC)
        if cached is not None and cached.changed and not cached.claim_refetch(asked_at):
            return cached.text  # another view is fetching this change
        if not user.budget_spent():
            try:
                api = oauth.ApiClient(self.client, self.tokens, user.id, account(user))
                if pages is not None:
                    data = paging.every_page(self.client, user, api, api_request, pages)
                    headers = {}
                else:
                    data, headers = api.call(api_request)
            except oauth.RateLimited as error:
                log.warning("%s: %s", account(user), error)
                user.record_budget(0, error.reset_at)
            except BaseException:
                self.give_back(cached)
                raise
            else:
                return self.keep_answer(user, api_request.key, data, headers, asked_at)
        self.give_back(cached)
        note = (
            f"{self.dialect.RATE_LIMIT_NOTE}: fresh data comes after "
            f"{user.rate_reset_at:%H:%M} UTC ({in_words(user.rate_reset_at)})."
        )
        if note not in notes:
            notes.append(note)
        return cached.text if cached is not None else None

    @staticmethod
    def give_back(cached):
        """A claimed fetch that did not happen: the change waits for the next view."""
        if cached is not None:
            cached.give_back()

    def keep_answer(self, user, key, data, headers, asked_at=None):
        """Every API answer: note the budget it reports, and cache what it says, as of
        `asked_at`, when it was asked for. Returns its JSON text, as kept."""
        user.record_budget(*self.dialect.rate_budget(headers))
        return token_store.keep_answer(user, key, data, asked_at)


def granted_words(dialect, scope):
    """What the user let the app see, in words: ["your name and picture", ...]. Two panels
    may read one kind (the heart rate, at rest and through the day): each kind is named
    once."""
    words = [PROFILE_WORDS] if dialect.grants(scope, "profile") else []
    words += [PANELS[kind.panel].words for kind in dialect.DATA if kind.granted(scope)]
    return list(dict.fromkeys(words))


def kept_today(client, user):
    """The user's today, by the time zone in the answer kept for it, with no call to the
    provider; by UTC when none is kept (webhooks.py marks the answers of that day stale)."""
    dialect = client.dialect
    zone = None
    if dialect.grants(user.scope, "zone"):
        cached = token_store.cached_answer(user, dialect.zone_request(client).key)
        zone = zone_in(dialect, user, cached.text if cached is not None else None)
    return datetime.now(zone or UTC).date()


def zone_in(dialect, user, text):
    """The time zone in an answer's JSON `text` (dialect.read_zone); None for no answer, an
    answer that names none, or one this app cannot read."""
    if text is None:
        return None
    try:
        return read(dialect.read_zone, text)
    except (oauth.BadResponse, ValueError, TypeError, AttributeError):
        log.warning("%s: a time zone this app cannot read", account(user))
        return None


@lru_cache(maxsize=1024)
def read(reader, text):
    """What a dialect's `reader` makes of an answer's JSON text, worked out once per answer:
    the same text always reads the same, and an answer changes only when it is fetched
    again. Keyed by the whole text, so it never mixes up two users' data. A list comes back
    as a tuple, so that the panel drawn from it can be kept by it too."""
    found = reader(json.loads(text))
    return tuple(found) if isinstance(found, list) else found
