"""The database: users and their tokens, browser sessions, and sign-ins in flight.

Nothing here knows about HTTP. The database is chosen at start-up from DATABASE_URL.
"""

import json
import logging
import math
import secrets
import weakref
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from peewee import (
    JOIN,
    SQL,
    AutoField,
    Case,
    CharField,
    DatabaseProxy,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    IntegrityError,
    Model,
    NodeList,
    PostgresqlDatabase,
    SqliteDatabase,
    TextField,
    Value,
    fn,
)

import unchanged_reads

db = DatabaseProxy()

# peewee logs every query with its parameters at DEBUG, tokens included: never let it.
logging.getLogger("peewee").setLevel(logging.INFO)

SESSION_LIFETIME = timedelta(days=14)
# A sign-in must come back within the authorization code's own life at Fitbit.
SIGN_IN_LIFETIME = timedelta(minutes=10)
# A browser that has not signed in keeps its session this long: long enough for a flash
# message or a sign-in in flight, too short for a pile of them to matter.
ANONYMOUS_SESSION_LIFETIME = timedelta(hours=1)
# How long a webhook delivery is remembered, to know it if it comes again: Google retries
# for up to 7 days (unverified), and a day more is cheap.
NOTIFICATION_MEMORY = timedelta(days=8)
# Any number, the same in every process: with a client's hash, the key of the advisory lock
# taken for counting the sign-ins it has in flight (schema.SCHEMA_LOCK is another).
SIGN_IN_LOCKS = 4001


def now():
    return datetime.now(UTC)


class MomentField(DateTimeField):
    """A moment, with its zone (UTC). SQLite keeps it as the text str() gives, which
    datetime.fromisoformat reads five times faster than peewee's list of formats does, for
    every time on every row of every page; anything else is read as peewee reads it."""

    def python_value(self, value):
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value)
            except ValueError:
                pass
        return super().python_value(value)


class BaseModel(Model):
    class Meta:
        database = db


class NeverReusedId(AutoField):
    """A row id that is never given twice, even once the row is deleted. SQLite's plain
    INTEGER PRIMARY KEY hands the id of a deleted newest row to the next one; AUTOINCREMENT
    makes it take one past every id ever used. PostgreSQL's SERIAL draws from a sequence,
    which never goes back, so it needs nothing more."""

    def ddl(self, ctx):
        ddl = super().ddl(ctx)
        if isinstance(self.model._meta.database.obj, SqliteDatabase):
            ddl = NodeList((ddl, SQL("AUTOINCREMENT")))
        return ddl


class User(BaseModel):
    """One person, whichever provider they connected through. Fitbit's legacy Web API knows
    them by `fitbit_id`; the Google Health API by `health_user_id`, and it gives the legacy
    Fitbit id too, which is how someone who moves from one to the other stays one row."""

    # What every value sealed for this person is bound to (token_store.py), and what a
    # request in flight writes their answers under: someone who signs in after a person's
    # data was deleted must never be given that person's id.
    id = NeverReusedId()

    # Both ids are compared exactly: "ABC123" and "abc123" are two people.
    fitbit_id = CharField(unique=True, null=True)
    health_user_id = CharField(unique=True, null=True)
    # Which dialect the tokens below speak: "fitbit" or "google".
    provider = CharField(default="fitbit", constraints=[SQL("DEFAULT 'fitbit'")])
    display_name = CharField()
    # The tokens, encrypted (token_store.py, encryption.py); and the SHA-256 of each, which
    # the compare-and-swaps below compare, since the same token never encrypts the same way
    # twice. (A digest of a random token gives nothing of it away.)
    access_token = TextField(null=True)
    refresh_token = TextField(null=True)
    access_token_digest = CharField(null=True)
    refresh_token_digest = CharField(null=True)
    expires_at = MomentField(null=True)
    # Google's scopes are whole URLs: with sleep and heart rate granted, past 255 characters.
    scope = TextField(default="")
    created_at = MomentField(default=now)
    updated_at = MomentField(default=now)
    last_sync_at = MomentField(null=True)  # the last answer from the provider's API
    signed_in_at = MomentField(null=True)  # the last sign-in (or consent round)
    # What the provider's last answer said was left of the user's budget of calls.
    rate_remaining = IntegerField(null=True)
    rate_reset_at = MomentField(null=True)
    # Who is spending the refresh token right now, and until when (see oauth.ApiClient).
    refresh_lease = CharField(null=True)
    refresh_lease_until = MomentField(null=True)

    class Meta:
        table_name = "users"  # "user" is a reserved word in PostgreSQL
        # The users page lists them in this order, a page at a time: read from the index,
        # not sorted anew on every view.
        indexes = ((("created_at", "id"), False),)

    @classmethod
    def by_fitbit_id(cls, fitbit_id):
        return cls.get_or_none(cls.fitbit_id == fitbit_id)

    @classmethod
    def of(cls, person):
        """The row of a dialects.Person: the one with their Health user id, else the one
        with their Fitbit id; or None."""
        row = None
        if person.health_user_id is not None:
            row = cls.get_or_none(cls.health_user_id == person.health_user_id)
        if row is None and person.fitbit_id is not None:
            row = cls.get_or_none(cls.fitbit_id == person.fitbit_id)
        return row

    @classmethod
    def take_lease(cls, user_id, access_digest, until):
        """One conditional UPDATE, committed at once: it succeeds for exactly one worker
        while the row still holds the access token of `access_digest` (nobody has refreshed
        it yet) and nobody holds an unexpired lease."""
        lease = secrets.token_hex(16)
        free = cls.refresh_lease_until.is_null() | (cls.refresh_lease_until < now())
        holds = cls.access_token_digest == access_digest
        taken = (
            cls.update(refresh_lease=lease, refresh_lease_until=until)
            .where((cls.id == user_id) & holds & free)
            .execute()
        )
        return lease if taken == 1 else None

    @classmethod
    def release_lease(cls, user_id, lease):
        cls.update(refresh_lease=None, refresh_lease_until=None).where(
            (cls.id == user_id) & (cls.refresh_lease == lease)
        ).execute()

    @classmethod
    def replace_tokens(cls, user_id, old_access_digest, fields):
        """Compare and swap: write the new tokens' `fields` only if the row still holds the
        access token that was refreshed (of `old_access_digest`). False when another worker
        changed the row first. The access token, because Google's refresh token stays the
        same through refreshes."""
        changed = (
            cls.update(**fields)
            .where((cls.id == user_id) & (cls.access_token_digest == old_access_digest))
            .execute()
        )
        return changed == 1

    @classmethod
    def clear_tokens(cls, user_id, only_if=None):
        """Disconnected: the tokens go, and so does the data kept for this user. With
        `only_if`, a condition on the row (that it still holds the refresh token found dead),
        so that a pair another worker has just stored is never wiped. True if cleared."""
        which = cls.id == user_id
        if only_if is not None:
            which &= only_if
        with db.atomic():
            cleared = (
                cls.update(
                    access_token=None,
                    refresh_token=None,
                    access_token_digest=None,
                    refresh_token_digest=None,
                    expires_at=None,
                    refresh_lease=None,
                    refresh_lease_until=None,
                    updated_at=now(),
                )
                .where(which)
                .execute()
            )
            if cleared:
                ApiCache.delete().where(ApiCache.user == user_id).execute()
        return cleared == 1

    @property
    def connected(self):
        return self.refresh_token is not None

    @classmethod
    def page_count(cls, per_page):
        return max(1, math.ceil(USER_COUNT.scalar() / per_page))

    @classmethod
    def page_of(cls, page, per_page):
        """The users on one page of the list, as Listed records."""
        return [Listed.read(row) for row in USERS_PAGE.tuples(per_page, (page - 1) * per_page)]

    def cached_answers(self):
        """{path: ApiCache row} of this user's answers: all in one query, the first time."""
        if not hasattr(self, "_cached_answers"):
            self._cached_answers = {row.path: row for row in ANSWERS_OF(self.id)}
        return self._cached_answers

    def cached_answer(self, path):
        """The ApiCache row for `path`, or None. The paths asked for are noted, for a page
        drawn from them (paths_read)."""
        self.paths_read().add(path)
        return self.cached_answers().get(path)

    def paths_read(self):
        """The paths of the answers this instance was asked for: a page view's."""
        if not hasattr(self, "_paths_read"):
            self._paths_read = set()
        return self._paths_read

    def browser_count(self):
        """In how many browsers this user is signed in."""
        return BrowserSession.select().where(BrowserSession.user == self.id).count()

    def rename(self, name):
        """The name the provider's profile now gives, for the users page too."""
        self.display_name = name
        User.update(display_name=name).where(User.id == self.id).execute()

    def record_budget(self, remaining, reset_at):
        """Note the provider's rate-limit budget; a None leaves that part as it was."""
        if remaining is not None:
            self.rate_remaining = remaining
        if reset_at is not None:
            self.rate_reset_at = reset_at
        User.update(rate_remaining=self.rate_remaining, rate_reset_at=self.rate_reset_at).where(
            User.id == self.id
        ).execute()

    def budget_spent(self):
        """True while the provider has said no calls are left and the wait is not over."""
        return (
            self.rate_remaining == 0
            and self.rate_reset_at is not None
            and now() < self.rate_reset_at
        )


class ApiCache(BaseModel):
    """API answers kept per user, so a reload does not spend the user's budget of calls."""

    user = ForeignKeyField(User, on_delete="CASCADE")
    path = CharField()
    body = TextField()  # the JSON as the provider sent it (token_store.py reads and writes it)
    fetched_at = MomentField(default=now)  # when the request for this answer was sent
    # When the provider last said (by webhook) that this data changed: from then on, until
    # it is fetched again, the answer is stale however young it is.
    changed_at = MomentField(null=True)

    class Meta:
        indexes = (
            (("user", "path"), True),
            (("user", "path", "fetched_at", "changed_at"), False),  # ANSWER_STAMPS
        )

    @classmethod
    def store(cls, user, path, body, fetched_at):
        """Keep an answer's `body` (see token_store.keep_answer), as fetched at `fetched_at`.
        False, keeping nothing, when the user's row is gone: their data was deleted while
        the request was on its way. (An id is never given twice, so a row still there is
        still theirs.)"""
        fields = {cls.body: body, cls.fetched_at: fetched_at}
        # A change notified before this answer was asked for is in it, and is forgotten; one
        # notified since still makes it stale. (A view that drew the page from the answer
        # before it, while this one was on its way, sees its stamp change: ANSWER_STAMPS.)
        still_changed = Case(None, [(cls.changed_at > fetched_at, cls.changed_at)], None)
        try:
            with db.atomic():
                if not User.select().where(User.id == user.id).exists():
                    return False
                cls.insert({cls.user: user.id, cls.path: path, **fields}).on_conflict(
                    conflict_target=[cls.user, cls.path],
                    update={**fields, cls.changed_at: still_changed},
                ).execute()
                User.update(last_sync_at=now()).where(User.id == user.id).execute()
        except IntegrityError:  # deleted at this very moment, by another process
            return False
        return True

    @classmethod
    def mark_changed(cls, user_id, paths, moment):
        """The provider says this user's data behind `paths` changed at `moment`."""
        cls.update(changed_at=moment).where(
            (cls.user == user_id) & cls.path.in_(list(paths))
        ).execute()

    @property
    def changed(self):
        """Whether a change was notified after this answer's request was sent."""
        return self.changed_at is not None and self.changed_at > self.fetched_at

    def fresh(self, max_age, since=None):
        """Young enough to show again, changed by nobody since, and fetched after `since`."""
        young = now() - self.fetched_at < max_age and not self.changed
        return young and (since is None or self.fetched_at >= since)

    def claim_refetch(self, moment):
        """Of all the views that find this answer changed, across every process, the one for
        which this compare-and-swap succeeds fetches it again; True for that one."""
        claimed = (
            ApiCache.update(fetched_at=moment)
            .where((ApiCache.id == self.id) & (ApiCache.fetched_at == self.fetched_at))
            .execute()
        )
        if claimed == 1:
            self.claimed_from, self.fetched_at = self.fetched_at, moment
        return claimed == 1

    claimed_from = None  # what fetched_at was, once this view claimed the refetch

    def give_back(self):
        """The claimed fetch did not happen: the answer is stale again for the next view."""
        if self.claimed_from is None:
            return
        ApiCache.update(fetched_at=self.claimed_from).where(
            (ApiCache.id == self.id) & (ApiCache.fetched_at == self.fetched_at)
        ).execute()


class BrowserSession(BaseModel):
    """One browser. The cookie holds a random id; only its keyed hash is stored here, so a
    copy of the database does not let anyone sign in as the users in it."""

    key = CharField(primary_key=True)
    csrf_token = CharField()
    user = ForeignKeyField(User, null=True, on_delete="CASCADE")
    flashes = TextField(default="[]")
    created_at = MomentField(default=now, index=True)
    # The id of this browser's trace (TraceEntry), from its last sign-in on.
    trace = CharField(null=True)

    @classmethod
    def find(cls, key):
        """The session and its user: the one query of every page, its SQL written once."""
        found = SESSION_BY_KEY.pairs(User, key)
        if not found:
            return None
        session, user = found[0]
        if session.created_at <= now() - SESSION_LIFETIME:
            return None  # too old to sign anyone in (prune() deletes it)
        session.user = user
        return session

    def add_flash(self, message, link=None):
        """A message for the next page; `link` is an optional (address, words) after it."""
        flash = {"text": message, "link": list(link) if link else None}
        self.flashes = json.dumps([*json.loads(self.flashes), flash])
        self.save()

    def pop_flashes(self):
        """Each message is shown once. (The first release kept them as plain strings.)"""
        messages = json.loads(self.flashes)
        if messages:
            self.flashes = "[]"
            self.save()
        return [{"text": m, "link": None} if isinstance(m, str) else m for m in messages]


class PendingSignIn(BaseModel):
    """A sign-in that has gone to Fitbit and not yet come back: at most one per browser."""

    session = ForeignKeyField(BrowserSession, unique=True, on_delete="CASCADE")
    state = CharField()
    code_verifier = CharField()
    # OpenID Connect's nonce, sent with the authorization request: the ID token must carry it.
    nonce = CharField(null=True)
    created_at = MomentField(default=now, index=True)
    # A keyed hash of the address it came from, to cap the sign-ins one client can start.
    client = CharField(null=True, index=True)
    # A consent round for one kind of data more (step 10): whose, and which panel. It must
    # come back as that same user.
    user = ForeignKeyField(User, null=True, on_delete="CASCADE")
    panel = CharField(null=True)

    @classmethod
    def lock_address(cls, client):
        """Within a transaction, wait for any other that counts this client's sign-ins, so
        that counting and adding happen one at a time. SQLite's transactions already take
        the write lock first (BEGIN IMMEDIATE); PostgreSQL's take an advisory lock."""
        if isinstance(db.obj, PostgresqlDatabase):
            lock = "SELECT pg_advisory_xact_lock(%s, hashtext(%s))"
            db.execute_sql(lock, (SIGN_IN_LOCKS, client))

    @classmethod
    def in_flight_from(cls, client):
        fresh = cls.created_at > now() - SIGN_IN_LIFETIME
        return cls.select().where((cls.client == client) & fresh).count()

    @property
    def expired(self):
        return now() > self.created_at + SIGN_IN_LIFETIME

    def consume(self):
        """Delete this sign-in; True for the one request that actually deleted it, so a
        callback replayed at the same moment cannot use it twice."""
        return PendingSignIn.delete().where(PendingSignIn.id == self.id).execute() == 1


class Prepared:
    """A SELECT whose SQL peewee writes once per database, then run with new values in the
    same order (Model.raw). For the queries of every page view, writing the SQL costs more
    than running it: on SQLite, 0.6 ms of the 0.8 that finding a session took."""

    def __init__(self, model, query, unchanged=False):
        self.model, self.query = model, query  # `query()`: the SELECT, with sample values
        # On SQLite, answered again while the database is unchanged (unchanged_reads.py).
        self.unchanged = unchanged
        self.sql = weakref.WeakKeyDictionary()  # {database: its SQL}
        self.fields = {}  # {SQL: the field of each column it selects}

    def __call__(self, *values):
        """The rows, as the model's instances: each column made into its Python value by
        its field, as peewee does, with the columns matched to the fields once per SQL
        rather than on every run."""
        sql = self.written()
        cursor = db.execute_sql(sql, values)
        if sql not in self.fields:
            by_column = self.model._meta.columns
            self.fields[sql] = [by_column[name] for name, *_ in cursor.description]
        return [made(self.model, self.fields[sql], row) for row in cursor]

    def pairs(self, other, *values):
        """The rows of a SELECT of this model's columns and then `other`'s (a LEFT JOIN), as
        (instance, instance of `other` or None when the join found none), each made from
        what the same row made before if it was read lately (made_again())."""
        mine, theirs = self.model._meta.sorted_fields, other._meta.sorted_fields
        cut = len(mine)
        return [
            (made_again(self.model, mine, row[:cut]), made_again(other, theirs, row[cut:]))
            for row in self.tuples(*values)
        ]

    def scalar(self, *values):
        """The one value of a one-row, one-column SELECT, such as a count."""
        return db.execute_sql(self.written(), values).fetchone()[0]

    def tuples(self, *values):
        """The rows as the database gives them, for a caller that reads its own columns: a
        tuple of them, or for a query made `unchanged`, those read before for the same
        values if the database has not changed since."""
        sql = self.written()
        if not self.unchanged:
            return tuple(db.execute_sql(sql, values))
        return unchanged_reads.rows(
            db.connection(), sql, values, lambda: db.execute_sql(sql, values)
        )

    def written(self):
        database = db.obj
        if database not in self.sql:
            self.sql[database] = self.query().sql()[0]
        return self.sql[database]


def made(model, fields, values):
    """An instance of `model` from a row's `values` for its `fields`, each made into its
    Python value, as peewee makes one (Model.__init__, a field at a time, costs more than
    the query); None for the empty side of a LEFT JOIN, whose primary key is NULL."""
    data = {
        field.name: field.python_value(value) for field, value in zip(fields, values, strict=True)
    }
    if data[model._meta.primary_key.name] is None:
        return None
    return instance_of(model, data)


def instance_of(model, data):
    instance = model.__new__(model)
    instance.__data__, instance._dirty, instance.__rel__ = data, set(), {}
    return instance


# The Python values of the rows that Prepared.pairs read lately, by each row as the database
# gave it. The session query's row comes back the same on every page a browser loads, and
# making its 25 columns into values again costs more than the query. The key is the whole
# row, every column of it, so a row changed in any way, in any process, is made anew; and
# each instance is given a copy of its own to change. (No token is kept here but as the
# database keeps it, encrypted.)
MOST_ROWS_MADE = 2048
made_rows = {}  # {(model, the row's values): {field name: Python value}}


def made_again(model, fields, values):
    """made(), for a row read lately with every value the same: from what was made then."""
    key = (model, values)
    data = made_rows.get(key)
    if data is not None:
        return instance_of(model, dict(data))
    instance = made(model, fields, values)
    if instance is not None:
        if len(made_rows) >= MOST_ROWS_MADE:
            made_rows.clear()
        made_rows[key] = dict(instance.__data__)
    return instance


SESSION_BY_KEY = Prepared(
    BrowserSession,
    lambda: (
        BrowserSession.select(BrowserSession, User)
        .join(User, JOIN.LEFT_OUTER, on=(BrowserSession.user == User.id))
        .where(BrowserSession.key == "")
    ),
    unchanged=True,
)
ANSWERS_OF = Prepared(ApiCache, lambda: ApiCache.select().where(ApiCache.user == 0))
# When each of a user's answers was fetched, and marked changed: what a kept page was drawn
# from (kept_pages.py), read on every view of it, from an index alone (the bodies, tens of
# kilobytes, are never read for it). Every answer kept changes its row's stamp: a new
# fetched_at, or, for a fetch claimed under a change, the change forgotten (ApiCache.store).
ANSWER_STAMPS = Prepared(
    ApiCache,
    lambda: (
        ApiCache.select(ApiCache.path, ApiCache.fetched_at, ApiCache.changed_at)
        .where(ApiCache.user == 0)
        .order_by(ApiCache.path)
    ),
    unchanged=True,
)
# COUNT(*), not COUNT(id): SQLite counts a table's rows from its b-tree only for the first,
# ten times faster than reading each row's id.
USER_COUNT = Prepared(User, lambda: User.select(fn.COUNT(SQL("*"))))


class Listed(NamedTuple):
    """A user as the users page lists them: never a token, only whether there is one. A
    plain record: 50 model instances would cost more than the query that fills them."""

    display_name: str
    provider: str
    fitbit_id: str | None
    health_user_id: str | None
    connected: bool
    expires_at: datetime | None
    last_sync_at: datetime | None

    @classmethod
    def read(cls, row):
        """A row of USERS_PAGE, its columns in this order; its times read as the users
        table's fields read them (SQLite keeps them as text)."""
        name, provider, fitbit_id, health_user_id, connected, expires_at, last_sync_at = row
        moment = User.expires_at.python_value
        # bool(): SQLite says 0 or 1.
        return cls(
            name,
            provider,
            fitbit_id,
            health_user_id,
            bool(connected),
            moment(expires_at),
            moment(last_sync_at),
        )


# The users page's columns (see Listed), oldest first; LIMIT and OFFSET as values.
USERS_PAGE = Prepared(
    User,
    lambda: (
        User.select(
            User.display_name,
            User.provider,
            User.fitbit_id,
            User.health_user_id,
            User.refresh_token.is_null(False),
            User.expires_at,
            User.last_sync_at,
        )
        .order_by(User.created_at, User.id)
        .paginate(1, 50)
    ),
)


def prune(most=None):
    """Delete sessions and sign-ins that can no longer be used: all of them, or at most
    `most` of each kind, for a request that must not do unbounded work."""
    moment = now()
    unused = [
        (PendingSignIn, PendingSignIn.created_at < moment - SIGN_IN_LIFETIME),
        (TraceEntry, TraceEntry.created_at < moment - SESSION_LIFETIME),
        (Notification, Notification.received_at < moment - NOTIFICATION_MEMORY),
        (BrowserSession, BrowserSession.created_at < moment - SESSION_LIFETIME),
        (
            BrowserSession,
            BrowserSession.user.is_null()
            & (BrowserSession.created_at < moment - ANONYMOUS_SESSION_LIFETIME)
            & BrowserSession.key.not_in(PendingSignIn.select(PendingSignIn.session)),
        ),
        # A trace that no session shows any more: its sign-in went nowhere and its browser's
        # session is gone, or its browser signed out.
        (
            TraceEntry,
            TraceEntry.trace.not_in(
                BrowserSession.select(BrowserSession.trace).where(
                    BrowserSession.trace.is_null(False)
                )
            ),
        ),
    ]
    for model, condition in unused:
        key = model._meta.primary_key
        model.delete().where(key.in_(model.select(key).where(condition).limit(most))).execute()


class TraceEntry(BaseModel):
    """One step of a browser's trace, masked before it is stored (see tracing.py)."""

    trace = CharField(index=True)
    title = CharField()
    # What the step shows, as JSON: parts of the provider's answers, so it is sealed
    # (token_store.keep_step reads and writes it).
    body = TextField()
    created_at = MomentField(default=now, index=True)

    KEPT = 40  # a trace keeps its last few dozen steps

    @classmethod
    def add(cls, trace, title, body):
        """A step for the trace, kept only while a browser session still shows it: one
        signed out, or deleted with its user's data, gets nothing more from a request that
        was still on its way."""
        shown = BrowserSession.select(
            Value(trace), Value(title), Value(body), Value(cls.created_at.db_value(now()))
        ).where(BrowserSession.trace == trace)
        columns = [cls.trace, cls.title, cls.body, cls.created_at]
        if not cls.insert_from(shown.limit(1), columns).as_rowcount().execute():
            return
        kept = cls.select(cls.id).where(cls.trace == trace).order_by(cls.id.desc()).limit(cls.KEPT)
        cls.delete().where((cls.trace == trace) & cls.id.not_in(kept)).execute()


class Notification(BaseModel):
    """A webhook delivery whose changes were applied, in the same transaction: once one is
    answered 204, nothing of it can be lost. Google's are kept by the digest of their body,
    so that a delivery sent again is known and changes nothing; Fitbit's repeat for good
    reason (each sync of the same day looks the same), so they are kept without one."""

    provider = CharField()
    digest = CharField(null=True, unique=True)
    items = IntegerField()  # how many changes it named
    received_at = MomentField(default=now, index=True)

    @classmethod
    def record(cls, provider, digest, items):
        """Record a delivery, within the transaction that applies it; False, with nothing
        recorded, for a digest seen before. (Two copies at once: the unique digest makes
        the second transaction fail with an IntegrityError.)"""
        if digest is not None and cls.select().where(cls.digest == digest).exists():
            return False
        cls.create(provider=provider, digest=digest, items=items)
        return True


class SharedSecret(BaseModel):
    """Random values made once and shared by every process that uses this database."""

    name = CharField(primary_key=True)
    value = CharField()

    class Meta:
        table_name = "shared_secret"


def shared_secret(name):
    """The secret called `name`, made by whichever process asks first."""
    SharedSecret.insert(name=name, value=secrets.token_hex(32)).on_conflict_ignore().execute()
    return SharedSecret.get_by_id(name).value.encode()
