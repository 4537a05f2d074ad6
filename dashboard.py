"""What the signed-in page shows: the user's profile and steps from the provider's API,
through a cache of its answers and within the user's budget of calls, with a note for
each scope the user did not grant; and the chart of the steps (drawn by pages.Pages.chart).

Each answer is kept in the ApiCache table for FITBIT_CACHE_SECONDS, so a reload does not
spend the user's budget, and a spent budget (or a 429) shows the last answer with a note.
"""

import json
import logging
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import oauth
from models import ApiCache
from pages import in_words
from providers import account, dialect_of

# What each part of the page lets the app see, in words, for the line that says what the
# user allowed on the consent page.
GRANTED_WORDS = {"profile": "your name and picture", "activity": "your steps"}
# What the page leaves out when the user did not grant a scope on the consent page.
MISSING_SCOPE_NOTES = {
    "profile": "You did not allow access to your profile, so your name and picture are not "
    "shown. Connect again and allow profile to see them.",
    "activity": "You did not allow access to your activity, so your steps are not shown. "
    "Connect again and allow activity to see them.",
}

log = logging.getLogger("fitbit_oauth_app")


class Dashboard:
    """The signed-in page's data, for the provider the app talks to. API calls go through
    oauth.ApiClient, which refreshes the tokens in `tokens` when they are due."""

    def __init__(self, client, tokens, cache_seconds, draw_chart):
        self.client = client
        self.draw_chart = draw_chart  # ((day, steps), ...) to the chart's markup
        self.dialect = client.dialect
        self.tokens = tokens
        self.cache_seconds = cache_seconds

    def show(self, user, notes):
        """Step 7: what the signed-in page shows, beside `notes` for the user: the profile
        and the steps, each if its scope was granted (users can untick scopes on the
        consent page)."""
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
        shown = {
            "granted": [
                words
                for need, words in GRANTED_WORDS.items()
                if self.dialect.grants(user.scope, need)
            ]
        }
        request = self.dialect.profile_request(self.client)
        profile = self.granted_data(user, "profile", request, notes)
        if profile is not None:
            shown["display_name"], shown["avatar"], shown["member_since"] = read(
                self.dialect.read_profile, profile
            )
            if shown["display_name"] != user.display_name:  # read after a sign-in without it
                user.rename(shown["display_name"])
        request = self.dialect.steps_request(self.client, datetime.now(UTC).date())
        steps = self.granted_data(user, "activity", request, notes)
        if steps is not None:
            series = read(self.dialect.read_steps, steps)
            shown["steps_today"] = series[-1][1] if series else None
            shown["chart"] = self.draw_chart(tuple(series))
        # A scope left unticked can be granted by signing in again: the page offers it.
        shown["ask_again"] = any(note in MISSING_SCOPE_NOTES.values() for note in notes)
        return shown

    def granted_data(self, user, need, api_request, notes):
        """api_data() for a request that needs a scope, or None and a note without it."""
        # No need to ask the provider to know it would say no.
        if self.dialect.grants(user.scope, need):
            try:
                return self.api_data(user, api_request, notes)
            except oauth.ScopeMissing as error:
                log.info("%s: %s", account(user), error)
        notes.append(MISSING_SCOPE_NOTES[need])
        return None

    def api_data(self, user, api_request, notes):
        """One API answer for this user, as the JSON text it is kept as: the cached one while
        it is fresh, else a new one.
        A webhook's change makes it stale at once; of the views that find it so, in every
        process, one fetches it and the others show what is kept. When the user's budget
        of calls is spent, the last answer (if any) stands in, with a note."""
        cached = user.cached_answer(api_request.key)
        if cached is not None and cached.fresh(timedelta(seconds=self.cache_seconds)):
            return cached.body
        asked_at = datetime.now(UTC)
        if cached is not None and cached.changed and not cached.claim_refetch(asked_at):
            return cached.body  # another view is fetching this change right now
        if not user.budget_spent():
            try:
                api = oauth.ApiClient(self.client, self.tokens, user.id, account(user))
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
        return cached.body if cached is not None else None

    @staticmethod
    def give_back(cached):
        """A claimed fetch that did not happen: the change waits for the next view."""
        if cached is not None:
            cached.give_back()

    def keep_answer(self, user, key, data, headers, asked_at=None):
        """Every API answer: note the budget it reports, and cache what it says, as of
        `asked_at`, when it was asked for. Returns its JSON text, as kept."""
        user.record_budget(*self.dialect.rate_budget(headers))
        return ApiCache.store(user, key, data, asked_at)


@lru_cache(maxsize=1024)
def read(reader, text):
    """What a dialect's `reader` makes of an answer's JSON text, worked out once per answer:
    the same text always reads the same, and an answer changes only when it is fetched
    again. Keyed by the whole text, so it never mixes up two users' data."""
    return reader(json.loads(text))
