"""Sending notifications, as both providers do: to each app's subscriber, once it has
passed the provider's handshake, and again with backoff when a delivery fails.

Each stand-in says what its handshake is and what its deliveries carry (fitbit.py,
google.py); this is the sending.
"""

import logging
import threading
import time

import requests

# Seconds before each retry of a failed delivery: four more tries over 15 seconds. (Fitbit
# and Google retry for longer, hours or days; a stand-in need not.)
RETRY_DELAYS = (1, 2, 4, 8)
TIMEOUT = 5  # Fitbit allowed its subscribers 5 seconds

log = logging.getLogger("sandbox")


def call(method, url, body=None, headers=None, params=None):
    """The status of one request to a subscriber, or None when it could not be reached."""
    try:
        answer = requests.request(
            method,
            url,
            data=body,
            headers=headers,
            params=params,
            timeout=TIMEOUT,
            allow_redirects=False,
        )
    except requests.RequestException as error:
        log.warning("A notification to %s failed: %s", url, error)
        return None
    return answer.status_code


def delivered(status):
    return status is not None and 200 <= status < 300


class Notifier:
    """Delivers a stand-in's notifications. `send(method, url, body, headers, params)`
    gives a status (or None), and `sleep` waits: both can be replaced, to watch the
    retries."""

    def __init__(self, send=call, sleep=time.sleep):
        self.send, self.sleep = send, sleep
        self.threads = []  # the deliveries still being retried

    def deliver(self, url, body, headers, retry_in_background=True):
        """The status of the first try. When it fails, the retries follow with backoff: in
        a thread of their own, or here, before returning the last status."""
        status = self.send("POST", url, body, headers)
        if delivered(status):
            return status
        if not retry_in_background:
            return self.retry(url, body, headers)
        thread = threading.Thread(target=self.retry, args=(url, body, headers), daemon=True)
        self.threads.append(thread)
        thread.start()
        return status

    def retry(self, url, body, headers):
        status = None
        for attempt, delay in enumerate(RETRY_DELAYS, start=2):
            self.sleep(delay)
            status = self.send("POST", url, body, headers)
            log.info("Notification to %s, try %d: %s", url, attempt, status)
            if delivered(status):
                return status
        log.warning("A notification to %s was given up after %d tries", url, attempt)
        return status

    def wait(self):
        """Until every retry under way has ended (for tests and the command line)."""
        for thread in self.threads:
            thread.join()
        self.threads = []
