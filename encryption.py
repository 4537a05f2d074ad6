"""Encryption at rest: a user's access and refresh tokens, and the provider's answers cached
for them, are written to the database encrypted (token_store.py seals and opens them), so
that a copied backup or a stolen disk gives nobody's health data away.

AES-256-GCM, from `cryptography`: authenticated encryption, so that a value changed by one
bit does not open at all; and with the row it belongs to as associated data ("users.
refresh_token:42"), so that a value moved to another user's row, or to another column, does
not open either. (Fernet is authenticated too, but has no associated data.) Each value has
a random 96-bit nonce of its own.

A sealed value is text, "v1:<key id>:<nonce, ciphertext and tag, base64url>". The key id is
the first 8 hex digits of the key's SHA-256: it says which key opens the value, and which
values the newest key has not sealed yet, without opening anything.

The keys come from TOKEN_ENCRYPTION_KEYS: base64url keys of 32 bytes, separated by commas,
newest first. New values are sealed with the first; a value opens with whichever key sealed
it, so a key is rotated by putting a new one first, running `make reencrypt`, then dropping
the old one. Without the setting (sandbox mode), a key is made once and kept in a file
(key_in_file(); database.key_file_for() says where). `.venv/bin/python encryption.py` prints
a new key.
"""

import argparse
import base64
import binascii
import hashlib
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SETTING = "TOKEN_ENCRYPTION_KEYS"
MAKE_A_KEY = ".venv/bin/python encryption.py"  # the command that prints a new key
VERSION = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12


class Unreadable(Exception):
    """A sealed value that the key which sealed it does not open: changed, or moved from
    another row or column. It is worth nothing to anyone."""


class KeyNotHeld(Exception):
    """A sealed value whose key this process does not hold: not tampered with, but sealed by
    a key that another process has already, as while a new key is rolled out one process at
    a time. It is left as it is, and the request asked to be tried again. `kid` names the
    key, for the log."""

    def __init__(self, kid):
        super().__init__(f"no key {kid} here")
        self.kid = kid


def key_id(key):
    return hashlib.sha256(key).hexdigest()[:8]


def new_key_text():
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).rstrip(b"=").decode()


def parse_keys(text, where=SETTING):
    """The keys of a setting's text, newest first; SystemExit naming `where` for a bad one."""
    keys = []
    for part in text.replace(",", " ").split():
        try:
            key = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        except (ValueError, binascii.Error):
            key = b""
        if len(key) != KEY_BYTES:
            raise SystemExit(
                f"{where}: each key must be {KEY_BYTES} bytes in base64url (make one with "
                f"`{MAKE_A_KEY}`)."
            )
        keys.append(key)
    if not keys:
        raise SystemExit(f"{where} holds no key (make one with `{MAKE_A_KEY}`).")
    return tuple(keys)


class Keyring:
    """The keys values are sealed and opened with: the first seals, any opens its own."""

    def __init__(self, keys, where=SETTING):
        self.where = where  # the setting, or the file, the keys came from: for messages
        self.ciphers = {key_id(key): AESGCM(key) for key in keys}
        self.newest = key_id(keys[0])

    def seal(self, text, context):
        """`text`, encrypted and bound to `context` (the row and column it is for)."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self.ciphers[self.newest].encrypt(nonce, text.encode(), context.encode())
        packed = base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode("ascii")
        return f"{VERSION}:{self.newest}:{packed}"

    def open(self, value, context):
        """The text sealed in `value` for `context`. KeyNotHeld if it was sealed by a key
        this keyring lacks; Unreadable if the key that sealed it does not open it."""
        version, kid, packed = sealed_parts(value)
        if version != VERSION:
            raise Unreadable(kid)
        if kid not in self.ciphers:
            raise KeyNotHeld(kid)
        try:
            data = base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4))
            nonce, sealed = data[:NONCE_BYTES], data[NONCE_BYTES:]
            return self.ciphers[kid].decrypt(nonce, sealed, context.encode()).decode()
        except (InvalidTag, ValueError, binascii.Error, UnicodeError):
            raise Unreadable(kid) from None

    def sealed_by_newest(self, value):
        return value.startswith(f"{VERSION}:{self.newest}:")

    def holds(self, kid):
        return kid in self.ciphers


def sealed_parts(value):
    """(version, key id, rest) of a sealed value; ("", "", value) for one that is not."""
    parts = value.split(":", 2)
    return tuple(parts) if len(parts) == 3 else ("", "", value)


def is_sealed(value):
    return value.startswith(VERSION + ":")


# --- The keys in use ---------------------------------------------------------------------------

_in_use = None


def use(keyring):
    global _in_use
    _in_use = keyring


def keyring():
    if _in_use is None:
        raise RuntimeError("No encryption keys: open the database first (database.py).")
    return _in_use


def key_in_file(path):
    """The keyring of the key kept in the file at `path`, made by the first process that
    needs it (only its owner may read it); with `path` None, a key in memory."""
    if path is None:
        return Keyring([secrets.token_bytes(KEY_BYTES)], "a key in memory")
    if not os.path.exists(path):
        # Written whole to a file of its own, then linked into place: a process starting
        # beside this one finds no key or the whole key, never half of one.
        draft = f"{path}.{secrets.token_hex(4)}.draft"
        descriptor = os.open(draft, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(new_key_text() + "\n")
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another process made it first: that one is the key
        finally:
            os.unlink(draft)
    with open(path) as file:
        text = file.read()
    return Keyring(parse_keys(text, where=path), where=path)


def main(argv=None):
    argparse.ArgumentParser(
        description="Print a new key for TOKEN_ENCRYPTION_KEYS: 32 random bytes, base64url.",
        epilog="To rotate keys, put the new one in TOKEN_ENCRYPTION_KEYS as docs/operations.md "
        "says, then run `make reencrypt`.",
    ).parse_args(argv)
    print(new_key_text())


if __name__ == "__main__":
    main()
