"""What the app holds about a user, given back or taken away when they ask: Download my data
(one JSON file, and each kind of data as CSV, from what is kept here, with no call to the
provider), and Delete my data (the grant revoked at the provider and Fitbit's subscriptions
deleted, then every row of the user's gone, in one transaction).

Neither ever gives out a token: a download holds what the tokens bought, not the tokens.
"""

import csv
import io
import json
import logging
from datetime import UTC, datetime

import database
import disconnect
import oauth
import token_store
from dashboard import read
from models import ApiCache, BrowserSession, TraceEntry, User, db
from providers import account, dialect_of

log = logging.getLogger("fitbit_oauth_app")


class MyData:
    """A user's data, for the app talking to `client`; `webhooks` deletes Fitbit's
    subscriptions."""

    def __init__(self, client, webhooks):
        self.client, self.webhooks = client, webhooks
        self.dialect = client.dialect
        self.kinds = {kind.panel: kind for kind in self.dialect.DATA}

    # --- Download -----------------------------------------------------------------------

    def export(self, user):
        """Everything kept about `user`, as one JSON document (a dict)."""
        answers = self.cached_answers(user)
        return {
            "exported_at": moment(datetime.now(UTC)),
            "profile": {
                "name": user.display_name,
                "provider": dialect_of(user).NAME,
                "fitbit_user_id": user.fitbit_id,
                "google_health_user_id": user.health_user_id,
            },
            "connected": user.connected,
            "granted_scopes": user.scope.split(),
            "times": {
                "first_signed_in": moment(user.created_at),
                "last_signed_in": moment(user.signed_in_at),
                "tokens_last_changed": moment(user.updated_at),
                "last_fetched_from_the_provider": moment(user.last_sync_at),
            },
            "data": {
                kind: {"fetched_at": moment(cached.fetched_at), "rows": self.rows(kind, cached)}
                for kind, cached in answers.items()
                if kind in self.kinds
            },
            # The provider's answers as they came, each with when it was asked for.
            "answers_kept": [
                {"path": cached.path, "fetched_at": moment(cached.fetched_at), "answer": answer}
                for cached in answers.values()
                if (answer := parsed(cached.text)) is not None
            ],
        }

    def csv_of(self, user, panel):
        """One kind of data's rows as CSV text: a header, then a line per day."""
        cached = self.cached_answers(user).get(panel)
        rows = self.rows(panel, cached) if cached is not None else []
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS[panel], lineterminator="\r\n")
        writer.writeheader()
        for row in rows:
            stages = row.pop("stages", {})
            writer.writerow({**row, **stages})
        return out.getvalue()

    def cached_answers(self, user):
        """{panel, or the path for the profile's: the ApiCache row, opened}, from the cache
        alone. An answer is matched to its kind by the request that kind made on the day
        it was fetched (Fitbit's sleep path names its dates)."""
        found = {}
        for path in list(user.cached_answers()):
            cached = token_store.cached_answer(user, path)
            if cached is None:
                continue
            day = cached.fetched_at.date()
            kinds = [k for k in self.kinds.values() if k.request(self.client, day).key == path]
            found[kinds[0].panel if kinds else path] = cached
        return found

    def rows(self, panel, cached):
        """What the dialect reads from a kind's answer, as plain rows."""
        try:
            read_out = read(self.kinds[panel].read, cached.text)
        except oauth.BadResponse:
            return []
        items = ITEMS.get(panel, lambda found: found)(read_out)
        return [ROWS[panel](item) for item in items or ()]

    # --- Delete -------------------------------------------------------------------------

    def delete(self, user):
        """Everything of `user`'s goes: first the grant at the provider, and Fitbit's
        subscriptions, while the tokens still work; then, in one transaction, their row,
        cached answers, traces and every browser session signed in as them. The words that
        say how it went: the data is deleted here whatever the provider says."""
        provider, revoked = dialect_of(user), None
        if user.connected and provider is self.dialect:
            self.webhooks.unsubscribe(user)  # may refresh the tokens: they are taken after
        tokens = token_store.take_tokens(user.id)  # no process refreshes them from now on
        if tokens is not None and provider is self.dialect:
            revoked = disconnect.revoke(self.client, tokens, account(user))
        with db.atomic():
            sessions = BrowserSession.select().where(BrowserSession.user == user.id)
            traces = [s.trace for s in sessions if s.trace]
            TraceEntry.delete().where(TraceEntry.trace.in_(traces)).execute()
            # Sessions, sign-ins in flight and cached answers go with the row (ON DELETE
            # CASCADE), and are deleted by name all the same.
            BrowserSession.delete().where(BrowserSession.user == user.id).execute()
            ApiCache.delete().where(ApiCache.user == user.id).execute()
            User.delete().where(User.id == user.id).execute()
        database.forget_what_was_deleted()
        log.info("%s: deleted at the user's request", account(user))
        site = provider.SITE_FOR_REVOKING
        if revoked:
            return f"Your data is deleted, and {provider.NAME} has revoked this app's access."
        if revoked is None and not user.connected:
            return "Your data is deleted."
        return (
            f"Your data is deleted here, but {provider.NAME} did not confirm that it revoked "
            f"this app's access: you can revoke it yourself at {site}."
        )


def moment(value):
    return value.astimezone(UTC).isoformat() if value is not None else None


def parsed(text):
    try:
        return json.loads(text)
    except ValueError:
        return None


def night(row):
    return {
        "date": row.day.isoformat(),
        "minutes_asleep": row.asleep,
        "minutes_in_bed": row.in_bed,
        # A night without stages has "asleep", the same as minutes_asleep, and "awake".
        "stages": {f"minutes_{level}": m for level, m in row.stages if level != "asleep"},
    }


def workout(session):
    return {
        "start": session.start.isoformat(timespec="minutes"),  # the user's own clock
        "kind": session.kind,
        "minutes": session.minutes,
        "km": session.km,
        "average_heart_rate": session.heart_rate,
        "calories": session.calories,
    }


# Where a kind's reading keeps its rows, when it is not a sequence of them itself.
ITEMS = {
    "workouts": lambda found: found.sessions,
    "heart_rate_today": lambda found: found.minutes,
}
# Each kind's rows, and their columns in CSV.
ROWS = {
    "steps": lambda day: {"date": day[0].isoformat(), "steps": day[1]},
    "sleep": night,
    "heart_rate": lambda day: {"date": day[0].isoformat(), "resting_heart_rate": day[1]},
    "workouts": workout,
    "heart_rate_today": lambda minute: {
        "time": f"{minute[0] // 60:02}:{minute[0] % 60:02}",  # the user's own clock
        "beats_per_minute": minute[1],
    },
}
CSV_COLUMNS = {
    "steps": ["date", "steps"],
    "sleep": ["date", "minutes_asleep", "minutes_in_bed"]
    + [f"minutes_{level}" for level in ("deep", "light", "rem", "awake")],
    "heart_rate": ["date", "resting_heart_rate"],
    "workouts": ["start", "kind", "minutes", "km", "average_heart_rate", "calories"],
    "heart_rate_today": ["time", "beats_per_minute"],
}
