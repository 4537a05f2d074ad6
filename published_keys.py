"""Keys a provider publishes at a URL to check its signatures with (Google's webhook keyset,
its OpenID Connect keys): fetched with a timeout and kept in this process, fetched again for
a key id not seen yet, at most once a minute, and when an hour old, so that a key the
provider retires stops counting. Every process keeps its own copy, which needs nothing
shared: the keys are public.
"""

import logging
import threading
from datetime import UTC, datetime, timedelta

import requests

log = logging.getLogger("webhooks")

TIMEOUT = (3, 5)
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
            response = requests.get(self.url, timeout=TIMEOUT, allow_redirects=False)
            response.raise_for_status()
            keys = self.read(response.json())
        except (requests.RequestException, ValueError) as error:
            # The keys kept stay in use: a failed fetch never forgets them.
            log.warning("%s could not be fetched: %s", self.what, error)
            return
        self.keys, self.fetched_at = keys, moment
