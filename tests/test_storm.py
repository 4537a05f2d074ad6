"""A storm: hostile requests by the thousand at the app and both stand-ins on a real socket,
real sign-ins among them, while two browsers stay signed in and keep using the app.

`make test` sends a small storm (FUZZ_REQUESTS, 800 requests per dialect); `make fuzz` the
full one, 12,000 per dialect. FUZZ_SEED picks every request, so a storm can be sent again;
only the order in which its threads' requests arrive differs from one run to the next.

The storm comes from many addresses at once (Linux answers on all of 127.0.0.0/8), a share
of it from one busy address that runs into the cap on sign-ins in flight. Whatever arrives:
- no answer is a 5xx, and nothing logs a traceback;
- the two signed-in browsers stay signed in and connected, checked after every batch;
- every real sign-in that allows what the app needs ends signed in, even once the person's
  budget of calls at the provider is spent; where the provider refuses the one call that
  says who the user is (Google's identity), the page says when to try again;
- an hour after the storm, the next batch of starts, refused or not, leaves no row past
  its lifetime.
"""

import logging
import math
import os
import random
import re
import sqlite3
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests
from conftest import running_app
from freezegun import freeze_time
from requests.adapters import HTTPAdapter
from test_properties import EVERY_ROUTE

import models
import sessions
from models import BrowserSession, PendingSignIn, TraceEntry

REQUESTS = int(os.environ.get("FUZZ_REQUESTS") or 800)
SEED = int(os.environ.get("FUZZ_SEED") or 2026)
THREADS = 8
PLANS_PER_BATCH = 100  # the signed-in browsers are looked at after each batch
# The people of each stand-in, and the two of them whose browsers stay signed in.
PEOPLE = {
    "fitbit": ["7QW2XR", "9KD3MS"],
    "google": ["hu-4f1e9c2a7b", "hu-8d03b6e5c1", "hu-2a7c5e9f04", "hu-c6b81d3e72"],
}
SIGNED_IN = {"fitbit": ["7QW2XR", "9KD3MS"], "google": ["hu-4f1e9c2a7b", "hu-2a7c5e9f04"]}
NOT_LINKED = "hu-c6b81d3e72"  # Casey: a Google account without a Health profile
# Each stand-in's budget of calls per person: (its file, the period it counts, its limit).
BUDGETS = {
    "fitbit": ("stand-in.db", "%Y%m%d%H", 150),
    "google": ("stand-in-google.db", "%Y%m%d%H%M", 300),
}
TOKEN_PATHS = {"fitbit": "/sandbox/oauth2/token", "google": "/sandbox/google/token"}
REVOKE_PATHS = {"fitbit": "/sandbox/oauth2/revoke", "google": "/sandbox/google/revoke"}
BUSY_ADDRESS = "127.1.0.1"
ODD = list("abcXYZ019-._~%&=+;?/\\ \"'<>é\x00\x7f") + ["%FF", "%C3%A9", "%2F", "%00"]
NAMES = ["code", "state", "error", "error_description", "page", "csrf_token", "scope", "iss"]
TYPES = [
    "application/x-www-form-urlencoded",
    "application/json",
    "text/plain",
    "multipart/form-data; boundary=x",
    "application/x-www-form-urlencoded; charset=bogus",
]


class FromAddress(HTTPAdapter):
    """Connections from one loopback address of many, so the app sees many clients."""

    def __init__(self, address):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


class Browser:
    """A browser at one address: its own cookies, nothing followed unless asked."""

    def __init__(self, storm, address):
        self.storm, self.http = storm, requests.Session()
        self.http.mount("http://", FromAddress(address))

    def send(self, method, path, **kwargs):
        kwargs.setdefault("allow_redirects", False)
        response = self.http.request(method, self.storm.url + path, timeout=60, **kwargs)
        self.storm.sent(method, path.split("?")[0], response)
        return response

    def start(self):
        """GET /auth: the consent page's URL, or None when the start was refused (429)."""
        started = self.send("GET", "/auth")
        return started.headers["Location"] if started.status_code == 302 else None


def junk(rng, size=30):
    return "".join(rng.choice(ODD) for _ in range(rng.randrange(size)))


def junk_pairs(rng, state="s"):
    pairs = []
    for _ in range(rng.randrange(6)):
        name = rng.choice(NAMES) if rng.random() < 0.7 else junk(rng, 10)
        value = state if rng.random() < 0.2 else junk(rng)
        pairs.append(f"{quote(name, safe='%')}={quote(value, safe='%')}")
    return "&".join(pairs)


def every_character_escaped(text):
    return "".join(f"%{byte:02X}" for byte in text.encode())


class Storm:
    """One dialect's storm: the app on a real socket, the stand-ins mounted in it."""

    def __init__(self, url, config, dialect, seed, folder):
        self.url, self.config, self.dialect = url, config, dialect
        self.folder = folder  # where the stand-ins keep their files
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.count, self.statuses = 0, Counter()
        self.failures, self.outcomes = [], Counter()
        self.callbacks = []  # (browser, path) of real callbacks already sent, to replay

    def sent(self, method, path, response):
        with self.lock:
            self.count += 1
            self.statuses[response.status_code // 100 * 100] += 1
            if response.status_code >= 500:
                self.failures.append(f"{response.status_code} for {method} {path}")

    def counted(self, outcome):
        with self.lock:
            self.outcomes[outcome] += 1

    def fail(self, what):
        with self.lock:
            self.failures.append(what)

    def browser(self, rng):
        """A new browser, from the busy address one time in seven."""
        busy = rng.random() < 1 / 7
        address = BUSY_ADDRESS if busy else f"127.1.{rng.randrange(1, 40)}.{rng.randrange(256)}"
        return Browser(self, address)

    def plans(self, count):
        kinds = [
            (self.junk_request, 45),
            (self.real_sign_in, 15),
            (self.forged_callback, 15),
            (self.replayed_callback, 10),
            (self.stand_in_token_request, 15),
        ]
        weights = [weight for _, weight in kinds]
        chosen = self.rng.choices([kind for kind, _ in kinds], weights, k=count)
        return [(kind, self.rng.getrandbits(64)) for kind in chosen]

    # --- What the storm sends -----------------------------------------------------------

    def junk_request(self, rng):
        """Anything at any route: odd paths, queries, bodies, cookies and hosts."""
        method, path = rng.choice(EVERY_ROUTE)
        headers = {"Content-Type": rng.choice(TYPES)}
        if rng.random() < 0.1:
            headers["Host"] = rng.choice(["a..b", "x:99999", "a" * 300, junk(rng, 12).lstrip()])
        browser = self.browser(rng)
        if rng.random() < 0.3:
            browser.http.cookies.set("session", junk(rng, 50).encode("ascii", "replace").decode())
        body = rng.randbytes(rng.randrange(300)) if rng.random() < 0.5 else junk_pairs(rng)
        suffix = quote(junk(rng, 12), safe="%/") if rng.random() < 0.3 else ""
        browser.send(method, f"{path}{suffix}?{junk_pairs(rng)}", data=body, headers=headers)

    def forged_callback(self, rng):
        """A sign-in started, then a callback with a state or code it never had."""
        browser, other = self.browser(rng), self.browser(rng)
        mine, theirs = browser.start(), other.start()
        if mine is None or theirs is None:
            return
        their_state = parse_qs(urlsplit(theirs).query)["state"][0]
        state = rng.choice([their_state, junk(rng), "", every_character_escaped(their_state)])
        query = rng.choice(
            [
                f"code={junk(rng)}&state={state}",
                f"state={state}",
                f"code=a&code=b&state={state}",
                f"error=access_denied&error_description=%3Cb%3E&state={state}",
                f"code=real-looking&state={state}&iss=https://evil.example",
            ]
        )
        browser.send("GET", f"/auth/callback?{query}")

    def replayed_callback(self, rng):
        """A real callback sent again: by the browser that sent it, or by another."""
        with self.lock:
            if not self.callbacks:
                return
            owner, path = rng.choice(self.callbacks)
        browser = owner if rng.random() < 0.5 else self.browser(rng)
        answer = browser.send("GET", path)
        if answer.status_code not in (302, 400):
            self.fail(f"a replayed callback answered {answer.status_code}")

    def stand_in_token_request(self, rng):
        """Token and revoke requests at the stand-in, with the app's own credentials or
        wrong ones, for codes and tokens that are not the app's."""
        client = self.config.client
        secret = client.client_secret if rng.random() < 0.5 else junk(rng)
        auth = (client.client_id, secret)
        if rng.random() < 0.2:
            form = {"token": rng.choice([junk(rng), "ya29." + junk(rng, 40)])}
            self.browser(rng).send("POST", REVOKE_PATHS[self.dialect], data=form, auth=auth)
            return
        grant = rng.choice(["authorization_code", "refresh_token", junk(rng, 8)])
        form = {"grant_type": grant, "code": junk(rng), "refresh_token": junk(rng)}
        form |= {"redirect_uri": client.redirect_uri, "code_verifier": "v" * 43}
        self.browser(rng).send("POST", TOKEN_PATHS[self.dialect], data=form, auth=auth)

    def real_sign_in(self, rng):
        """The whole flow as a person of the stand-in, through its consent page: Allow
        (most of the time) with some of the scopes, or Deny; the state sent back, now and
        then, with every character percent-encoded."""
        browser = self.browser(rng)
        consent_url = browser.start()
        if consent_url is None:
            return self.counted("start refused for the address's cap")
        consent = browser.http.get(consent_url, timeout=60)
        self.sent("GET", urlsplit(consent_url).path, consent)
        request_id = re.search(r'name="request_id" value="([^"]+)"', consent.text).group(1)
        offered = re.findall(r'name="scope" value="([^"]+)"', consent.text)
        person = rng.choice(PEOPLE[self.dialect])
        allow = rng.random() < 0.9
        scopes = offered if rng.random() < 0.7 else rng.sample(offered, rng.randrange(1, 3))
        form = {"request_id": request_id, "user_id": person, "scope": scopes}
        form["decision"] = "allow" if allow else "deny"
        back = browser.send("POST", consent_url[len(self.url) :].split("?")[0], data=form)
        if back.status_code != 302:
            return self.fail(f"the consent page answered {back.status_code}, not a redirect")
        path = back.headers["Location"][len(self.url) :]
        if rng.random() < 0.3:
            state = parse_qs(urlsplit(path).query)["state"][0]
            path = path.replace(f"state={quote(state)}", f"state={every_character_escaped(state)}")
        spent = self.budget_spent(person)
        answer = browser.send("GET", path)
        with self.lock:
            self.callbacks.append((browser, path))
        self.judge(browser, answer, person, scopes if allow else None, spent)

    def budget_spent(self, person):
        """Whether the stand-in has counted all the calls it allows `person` this hour (this
        minute at Google), so that the sign-in's next call will be refused with a 429."""
        name, period, limit = BUDGETS[self.dialect]
        with sqlite3.connect(self.folder / name) as counts:
            used = counts.execute(
                "SELECT coalesce(max(count), 0) FROM calls WHERE user_id = ? AND hour = ?",
                (person, datetime.now(UTC).strftime(period)),
            ).fetchone()[0]
        return used >= limit

    def judge(self, browser, answer, person, scopes, spent):
        """Whether a real sign-in ended where it must; counted by how it ended."""
        page = browser.send("GET", "/") if answer.status_code == 302 else answer
        text = page.text
        if scopes is None:
            ended, expected = "denied", "You chose not to connect" in text
        elif self.dialect == "google" and not any("googlehealth" in s for s in scopes):
            ended, expected = "no Health scope", "No health data allowed" in text
        elif self.dialect == "google" and person == NOT_LINKED:
            # Or cancelled: another sign-in of Casey's handed its tokens back at that moment,
            # and at Google a revoke ends every token of the person's.
            ended = "no Health profile"
            expected = "No Google Health profile" in text or "Sign-in cancelled" in text
        elif answer.status_code == 429:
            # Only the call that says who the user is may stop a sign-in for the quota.
            ended = "quota spent at the identity call"
            expected = self.dialect == "google" and "Try again at" in text
        else:
            ended = "signed in with the budget spent" if spent else "signed in"
            expected = "Hello, " in text and 'action="/auth/revoke"' in text
        self.counted(ended)
        if not expected:
            self.fail(f"a sign-in as {person} ended on {page.status_code} ({ended})")


def keep_using(storm, browser, who):
    """One signed-in browser looks at its pages: still signed in, and still connected."""
    home = browser.send("GET", "/")
    if "Hello, " not in home.text or 'action="/auth/revoke"' not in home.text:
        storm.fail(f"{who}'s browser was signed out or disconnected")
    for path in ("/trace", "/users"):
        if browser.send("GET", path).status_code != 200:
            storm.fail(f"{who}'s {path} failed")


class Tracebacks(logging.Handler):
    """Every record that carries an exception or an error: what somebody would see."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.seen = []

    def emit(self, record):
        self.seen.append(self.format(record))


def sign_in_as(storm, address, person):
    browser = Browser(storm, address)
    consent_url = browser.start()
    consent = browser.http.get(consent_url, timeout=60)
    request_id = re.search(r'name="request_id" value="([^"]+)"', consent.text).group(1)
    scopes = re.findall(r'name="scope" value="([^"]+)"', consent.text)
    form = {"request_id": request_id, "user_id": person, "scope": scopes, "decision": "allow"}
    page = browser.http.post(consent_url.split("?")[0], data=form, timeout=60)
    assert "Hello, " in page.text
    return browser


def unusable_rows(moment):
    """What is past its lifetime: sign-ins in flight too long, sessions of nobody kept past
    an hour, and trace rows that no session still in use shows."""
    anonymous_and_old = BrowserSession.user.is_null() & (
        BrowserSession.created_at < moment - models.ANONYMOUS_SESSION_LIFETIME
    )
    shown = BrowserSession.select(BrowserSession.trace).where(
        BrowserSession.trace.is_null(False) & ~anonymous_and_old
    )
    too_long = PendingSignIn.created_at < moment - models.SIGN_IN_LIFETIME
    return {
        "sign-ins": PendingSignIn.select().where(too_long).count(),
        "anonymous sessions": BrowserSession.select().where(anonymous_and_old).count(),
        "trace rows": TraceEntry.select().where(TraceEntry.trace.not_in(shown)).count(),
    }


@pytest.mark.parametrize("dialect", ["fitbit", "google"])
def test_a_storm_harms_nobody_and_leaves_nothing_behind(tmp_path, dialect, capsys):
    started = time.monotonic()
    tracebacks = Tracebacks()
    logging.getLogger().addHandler(tracebacks)
    quiet = logging.getLogger("werkzeug")  # one access-log line per request: thousands
    level, quiet.level = quiet.level, logging.WARNING
    try:
        with running_app(tmp_path, provider=dialect) as (url, config):
            storm = Storm(url, config, dialect, SEED, tmp_path)
            people = SIGNED_IN[dialect]
            kept = [sign_in_as(storm, f"127.0.0.{2 + n}", p) for n, p in enumerate(people)]
            with ThreadPoolExecutor(THREADS) as pool:
                while storm.count < REQUESTS:
                    plans = storm.plans(PLANS_PER_BATCH)
                    list(pool.map(lambda plan: plan[0](random.Random(plan[1])), plans))
                    for browser, who in zip(kept, people, strict=True):
                        keep_using(storm, browser, who)
            left = after_the_storm(storm)
    finally:
        logging.getLogger().removeHandler(tracebacks)
        quiet.level = level
    with capsys.disabled():
        if "FUZZ_REQUESTS" in os.environ:  # `make fuzz`: what the storm sent, and how it ended
            seconds, answers = time.monotonic() - started, dict(sorted(storm.statuses.items()))
            print(
                f"\n{dialect}: seed {SEED}, {storm.count:,} requests in {seconds:.0f} s; "
                f"answers {answers}; real sign-ins: {dict(storm.outcomes)}; rows left: {left}"
            )
    assert storm.failures == [], f"seed {SEED}: {storm.failures[:20]}"
    assert tracebacks.seen == [], tracebacks.seen[:3]
    assert left == {"sign-ins": 0, "anonymous sessions": 0, "trace rows": 0}


def after_the_storm(storm):
    """An hour and a minute later, starts from the busy address (most of them refused for
    its cap) until, by the batch each one clears, the storm's rows must all be gone."""
    later = datetime.now(UTC) + models.ANONYMOUS_SESSION_LIFETIME + timedelta(minutes=1)
    with freeze_time(later):
        leftovers = max(unusable_rows(later).values())
        starts = math.ceil(leftovers / sessions.PRUNE_BATCH) + 1
        fresh = (Browser(storm, BUSY_ADDRESS) for _ in range(max(starts, 25)))
        refused = sum(browser.start() is None for browser in fresh)
        assert refused > 0  # the cap was reached: refused starts clear rows too
        return unusable_rows(later)
