"""`make reencrypt`: seal every token and cached answer again with the newest key of
TOKEN_ENCRYPTION_KEYS, and say how many rows changed.

To rotate the key: put a new one first in TOKEN_ENCRYPTION_KEYS (`python encryption.py`
makes one), keeping the old ones after it; restart the app; run this; then drop the old
keys. Each row is swapped only if it still holds what was read, so it is safe while the
app serves, and a second run changes nothing.

    python -m tools.reencrypt   (DATABASE_URL and TOKEN_ENCRYPTION_KEYS from the environment)
"""

import argparse
import os
import sys

import encryption
import token_store
from database import forget_what_was_deleted, open_database, sqlite_file
from models import db
from settings import Config


def main(environ=os.environ, argv=()):
    argparse.ArgumentParser(
        description="Seal every token and cached answer again with the newest key of "
        "TOKEN_ENCRYPTION_KEYS, and say how many rows changed.",
        epilog="DATABASE_URL and TOKEN_ENCRYPTION_KEYS are read from the environment.",
    ).parse_args(argv)
    database_url = environ.get("DATABASE_URL") or Config.database_url
    # Opening a SQLite file that is not there would make an empty one, and a key for it.
    path = sqlite_file(database_url)
    if path is not None and not os.path.exists(path):
        raise SystemExit(f"No database at {path} (DATABASE_URL): nothing to seal again.")
    text = environ.get(encryption.SETTING, "")
    keys = encryption.parse_keys(text) if text.strip() else ()
    open_database(database_url, keys)  # refuses to start without every key in use
    keyring = encryption.keyring()
    with db.connection_context():
        changed = token_store.reseal()
        forget_what_was_deleted()  # the values sealed by older keys, out of SQLite's log too
        left = {kid: n for kid, n in token_store.key_ids_in_use().items() if kid != keyring.newest}
    print(f"{changed} rows sealed again with key {keyring.newest} ({keyring.where}).")
    if left:
        # Rows another process wrote with an older key meanwhile (one not restarted yet).
        print(f"Still sealed by older keys: {left}. Run this again once every process has them.")
    return changed


if __name__ == "__main__":
    main(argv=sys.argv[1:])
