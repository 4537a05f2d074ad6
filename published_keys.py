"""Keys a provider publishes at a URL to check its signatures with (Google's webhook keyset,
its OpenID Connect keys): fetched with a timeout and kept in this process, fetched again for
a key id not seen yet, at most once a minute, and when an hour old, so that a key the
provider retires stops counting. Every process keeps its own copy, which needs nothing
shared: the keys are public.
"""

import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta

import requests

log = logging.getLogger("webhooks")

TIMEOUT = (3, 5)
# A fetch as a whole, not each read: requests' timeout counts one read at a time, and a
# server that sends a byte every few seconds would hold the sign-ins waiting on its keys
# for ever. Keys are a few KB; anything past this is not a keyset.
FETCH_SECONDS = 10
MAX_BYTES = 256 * 1024
# An unknown key id fetches the keys again, but not more often than this; and keys are
# fetched again when they are this old, so that a key the provider retires stops counting.
REFETCH_AFTER = timedelta(minutes=1)
KEYSET_MAX_AGE = timedelta(hours=1)


class KeysUnavailable(Exception):
    """No keys at all: none kept, and fetching them failed. Nothing can be verified."""


class PublishedKeys:
    """The keys published at `url`, as `read` makes them of its JSON ({key id: key}); `what`
    names them in the log."""

    def __init__(self, url, read, what):
        self.url, self.read, self.what = url, read, what
        self.keys, self.fetched_at, self.tried_at = None, None, None
        self.lock = threading.Lock()

    def key(self, key_id):
        """The key with this id, or None. An unknown id fetches the keys again, at most
        once a minute; keys an hour old are fetched again too."""
        with self.lock:
            moment = datetime.now(UTC)
            stale = self.keys is None or moment - self.fetched_at >= KEYSET_MAX_AGE
            if stale or key_id not in self.keys:
                if self.tried_at is None or moment - self.tried_at >= REFETCH_AFTER:
                    self.fetch(moment)
            if self.keys is None:
                raise KeysUnavailable(self.url)
            return self.keys.get(key_id)

    def fetch(self, moment):
        self.tried_at = moment
        try:
            keys = self.read(fetched_json(self.url))
        except (requests.RequestException, ValueError) as error:
            # The keys kept stay in use: a failed fetch never forgets them.
            log.warning("%s could not be fetched: %s", self.what, error)
            return
        self.keys, self.fetched_at = keys, moment


class TooSlowOrLarge(requests.RequestException):
    """An answer that took longer than FETCH_SECONDS in all, or held more than MAX_BYTES."""


def fetched_json(url):
    """The JSON document at `url`, fetched as a whole within FETCH_SECONDS and MAX_BYTES;
    requests.RequestException (TooSlowOrLarge among them) or ValueError otherwise. Read a
    piece at a time as it arrives, without decompressing (a compressed answer's size says
    nothing of what it holds), checking the clock between pieces."""
    deadline = time.monotonic() + FETCH_SECONDS
    headers = {"Accept-Encoding": "identity"}
    with requests.get(
        url, headers=headers, timeout=TIMEOUT, allow_redirects=False, stream=True
    ) as response:
        response.raise_for_status()
        body = bytearray()
        while piece := response.raw.read1(16384, decode_content=False):
            body += piece
            if len(body) > MAX_BYTES:
                raise TooSlowOrLarge(f"more than {MAX_BYTES} bytes")
            if time.monotonic() > deadline:
                raise TooSlowOrLarge(f"more than {FETCH_SECONDS} s")
    return json.loads(body)
