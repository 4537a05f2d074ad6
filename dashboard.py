"""What the signed-in page shows: the user's profile, and a panel for each kind of data the
dialect reads (steps, sleep, heart rate: dialect.DATA), from the provider's API through a
cache of its answers and within the user's budget of calls. A kind the user has not granted
is asked for when they ask to see it (the panel's button, step 10 in fitbit_oauth_app.py);
its markup is drawn by pages.Pages.panel.

Each answer is kept in the ApiCache table for FITBIT_CACHE_SECONDS, so a reload does not
spend the user's budget, and a spent budget (or a 429) shows the last answer with a note.
"""

import json
import logging
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import oauth
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

log = logging.getLogger("fitbit_oauth_app")


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
        shown = {"granted": self.granted_words(user.scope)}
        profile = self.profile(user, notes)
        if profile is not None:
            shown["display_name"], shown["avatar"], shown["member_since"] = read(
                self.dialect.read_profile, profile
            )
            if shown["display_name"] != user.display_name:  # read after a sign-in without it
                user.rename(shown["display_name"])
        today = datetime.now(UTC).date()
        shown["panels"] = [self.panel(user, kind, today, notes) for kind in self.dialect.DATA]
        # A profile left unticked can be granted by signing in again: the page offers it.
        shown["ask_again"] = PROFILE_NOTE in notes
        return shown

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

    def granted_words(self, scope):
        """What the user let the app see, in words: ["your name and picture", ...]."""
        words = [PROFILE_WORDS] if self.dialect.grants(scope, "profile") else []
        return words + [
            PANELS[kind.panel].words for kind in self.dialect.DATA if kind.granted(scope)
        ]

    def panel(self, user, kind, today, notes):
        """One kind of data's panel: its words, whether the user granted it, and, when they
        did, its markup from the provider's answer (None while the budget is spent and there
        is no answer yet: a note says when)."""
        shown = {"name": kind.panel, **PANELS[kind.panel]._asdict(), "granted": False}
        # No need to ask the provider to know it would say no.
        if kind.granted(user.scope):
            try:
                text = self.api_data(user, kind.request(self.client, today), notes)
            except oauth.ScopeMissing as error:  # taken back at the provider since
                log.info("%s: %s", account(user), error)
            else:
                data = self.read_panel(user, kind, text, notes)
                shown.update(granted=True, drawn=self.draw_panel(kind.panel, data, today))
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

    def api_data(self, user, api_request, notes):
        """One API answer for this user, as the JSON text it is kept as: the cached one while
        it is fresh, else a new one.
        A webhook's change makes it stale at once; of the views that find it so, in every
        process, one fetches it and the others show what is kept. When the user's budget
        of calls is spent, the last answer (if any) stands in, with a note."""
        cached = token_store.cached_answer(user, api_request.key)
        if cached is not None and cached.fresh(timedelta(seconds=self.cache_seconds)):
            return cached.text
        asked_at = datetime.now(UTC)
        if cached is not None and cached.changed and not cached.claim_refetch(asked_at):
            return cached.text  # another view is fetching this change
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


@lru_cache(maxsize=1024)
def read(reader, text):
    """What a dialect's `reader` makes of an answer's JSON text, worked out once per answer:
    the same text always reads the same, and an answer changes only when it is fetched
    again. Keyed by the whole text, so it never mixes up two users' data. A list comes back
    as a tuple, so that the panel drawn from it can be kept by it too."""
    found = reader(json.loads(text))
    return tuple(found) if isinstance(found, list) else found
