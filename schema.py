"""The schema's version, and its upgrades: which tables a database has, how far it has been
upgraded, and what each version adds to the one before.

database.open_database() calls upgrade_schema() at every start: a new database gets every
table, an older one is brought up to SCHEMA_VERSION in place, keeping every row, one
process at a time.
"""

import re

from peewee import (
    CharField,
    DateTimeField,
    IntegerField,
    OperationalError,
    PostgresqlDatabase,
    SqliteDatabase,
    TextField,
)
from playhouse.migrate import PostgresqlMigrator, SchemaMigrator, SqliteMigrator, migrate

import token_store
from models import (
    ApiCache,
    BaseModel,
    BrowserSession,
    Notification,
    PendingSignIn,
    SharedSecret,
    TraceEntry,
    User,
    db,
)


class SchemaVersion(BaseModel):
    """How far this database has been upgraded: one row, its version a key of MIGRATIONS."""

    id = IntegerField(primary_key=True)  # always 1
    version = IntegerField()

    class Meta:
        table_name = "schema_version"


MODELS = [
    User,
    BrowserSession,
    PendingSignIn,
    ApiCache,
    TraceEntry,
    Notification,
    SharedSecret,
    SchemaVersion,
]


def _leases_and_pruning(migrator):
    added = [
        migrator.add_column("users", "refresh_lease", User.refresh_lease),
        migrator.add_column("users", "refresh_lease_until", User.refresh_lease_until),
        migrator.add_column("pendingsignin", "client", PendingSignIn.client),
        migrator.add_column("browsersession", "trace", BrowserSession.trace),
        migrator.add_index("pendingsignin", ("created_at",)),
        migrator.add_index("browsersession", ("created_at",)),
    ]
    # The first release made PostgreSQL's datetime columns TIMESTAMP, without a time zone.
    zoned = []
    if isinstance(migrator, PostgresqlMigrator):
        for model in (User, ApiCache, BrowserSession, PendingSignIn):  # TraceEntry is new
            for field in model._meta.sorted_fields:
                table, column = model._meta.table_name, field.column_name
                # Columns of later versions are added with the zone already.
                if isinstance(field, DateTimeField) and (table, column) not in LATER_COLUMNS:
                    zoned.append(migrator.alter_column_type(table, column, field))
    return added + zoned


def _two_providers(migrator):
    # A Google Health user has a Health user id, and a Fitbit id only if they had a Fitbit
    # account; every row of the first releases was a Fitbit user.
    return [
        migrator.drop_not_null("users", "fitbit_id"),
        # Unique, with the index named as a new database names it.
        migrator.add_column("users", "health_user_id", CharField(null=True)),
        migrator.sql("CREATE UNIQUE INDEX user_health_user_id ON users (health_user_id)"),
        migrator.add_column("users", "provider", User.provider, allow_not_null=True),
    ]


# Columns that versions after 2 add, which the upgrade to version 2 must leave alone.
LATER_COLUMNS = {("apicache", "changed_at"), ("users", "signed_in_at")}


def _webhooks(migrator):
    # The Notification table is new, so it is created with the others that are missing.
    return [migrator.add_column("apicache", "changed_at", ApiCache.changed_at)]


def _users_in_order(migrator):
    # Named as a new database names it.
    return [migrator.sql("CREATE INDEX user_created_at_id ON users (created_at, id)")]


def _consent_rounds(migrator):
    return [
        migrator.add_column("pendingsignin", "user_id", PendingSignIn.user),
        migrator.add_column("pendingsignin", "panel", PendingSignIn.panel),
        migrator.alter_column_type("users", "scope", TextField(default="")),
    ]


def _nonces(migrator):
    return [migrator.add_column("pendingsignin", "nonce", PendingSignIn.nonce)]


def _sealed_at_rest(migrator):
    # The rows' tokens and answers, in plain text until now, are sealed once the columns
    # are there (SEAL_AFTER, below).
    return [
        migrator.add_column("users", "access_token_digest", User.access_token_digest),
        migrator.add_column("users", "refresh_token_digest", User.refresh_token_digest),
    ]


def _sign_in_times(migrator):
    return [migrator.add_column("users", "signed_in_at", User.signed_in_at)]


def _ids_never_reused(migrator):
    """SQLite gave the id of a deleted newest user to the next person to sign in, and every
    value sealed for a user is bound to their id (models.NeverReusedId). Its users table is
    rebuilt with AUTOINCREMENT the way SQLite's own documentation changes a table: a new
    one made from the old one's SQL, the rows copied, the old one dropped and the new one
    renamed, its indexes made again (foreign keys are off meanwhile: upgrade_schema()). An
    id deleted before this upgrade, if it was the newest, may still be given once more.
    PostgreSQL's sequence never went back: nothing to do."""
    if not isinstance(migrator, SqliteMigrator):
        return []
    table = User._meta.table_name
    made = "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL AND type = ?"
    (sql,) = db.execute_sql(made, (table, "table")).fetchone()
    indexes = [row[0] for row in db.execute_sql(made, (table, "index"))]
    rebuilt, found = re.subn(
        r'^CREATE TABLE "users" \("id" INTEGER NOT NULL PRIMARY KEY',
        'CREATE TABLE "users_rebuilt" ("id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT',
        sql,
    )
    if not found:
        raise OperationalError(f"the users table is not as any release made it: {sql[:80]}")
    return [
        migrator.sql(rebuilt),
        migrator.sql('INSERT INTO "users_rebuilt" SELECT * FROM "users"'),
        migrator.sql('DROP TABLE "users"'),
        migrator.sql('ALTER TABLE "users_rebuilt" RENAME TO "users"'),
        *(migrator.sql(index) for index in indexes),
    ]


def _answer_stamps(migrator):
    # Named as a new database names it (models.ANSWER_STAMPS reads it alone).
    return [
        migrator.sql(
            "CREATE INDEX apicache_user_id_path_fetched_at_changed_at "
            "ON apicache (user_id, path, fetched_at, changed_at)"
        )
    ]


# Any number, the same in every process: the key of the advisory lock taken for upgrades
# (models.SIGN_IN_LOCKS is the one for counting sign-ins).
SCHEMA_LOCK = 4000
# What each version adds to the one before. Version 1 is the schema of the first release,
# which recorded no version: a database with a users table and no version row is at 1.
MIGRATIONS = {
    2: _leases_and_pruning,
    3: _two_providers,
    4: _webhooks,
    5: _users_in_order,
    6: _consent_rounds,
    7: _nonces,
    8: _sealed_at_rest,
    9: _sign_in_times,
    10: _ids_never_reused,
    11: _answer_stamps,
}
SCHEMA_VERSION = max(MIGRATIONS)
# The version after whose columns the values kept in plain text before it are sealed.
SEAL_AFTER = 8


def upgrade_schema(database):
    """Create the tables of a new database, or bring an older one up to SCHEMA_VERSION in
    place, keeping every row: all in one transaction, one process at a time. How many rows
    it sealed (encryption.py) that were kept in plain text before."""
    if not isinstance(database, SqliteDatabase):
        return _upgrade(database)
    # SQLite changes a column by copying its table and dropping the old one; with foreign
    # keys on, that drop would delete every session and cached answer of every user. The
    # switch only works outside a transaction, and the check after it proves nothing broke.
    database.pragma("foreign_keys", 0)
    try:
        sealed = _upgrade(database)
        if database.execute_sql("PRAGMA foreign_key_check").fetchall():
            raise OperationalError("the schema upgrade broke a foreign key")
    finally:
        database.pragma("foreign_keys", 1)
    return sealed


def _upgrade(database):
    with db.atomic():
        if isinstance(database, PostgresqlDatabase):
            # Two processes running CREATE TABLE IF NOT EXISTS at the same moment can both
            # try to create the table, so they take turns. SQLite's BEGIN IMMEDIATE already
            # makes them.
            db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        existing = db.table_exists(User._meta.table_name)
        # Only tables that are missing: the columns and indexes of existing ones are the
        # migrations' work (SQLite would even index a missing column as a string constant).
        db.create_tables([m for m in MODELS if not m.table_exists()])
        SchemaVersion.insert(
            id=1, version=1 if existing else SCHEMA_VERSION
        ).on_conflict_ignore().execute()
        version = SchemaVersion.get().version
        migrator = SchemaMigrator.from_database(database)
        sealed = 0
        for step in range(version + 1, SCHEMA_VERSION + 1):
            migrate(*MIGRATIONS[step](migrator))
            if step == SEAL_AFTER:
                sealed = token_store.reseal()
        SchemaVersion.update(version=SCHEMA_VERSION).execute()
    return sealed
