"""One test of a user's whole life in the app: a state machine (hypothesis) that drives two
real app processes on one database, and a stand-in in this process, through what people
and operators do, in any order: sign-ins of several people in several browsers, consent
rounds (allowed, denied, unticked, as another account), access tokens running out, webhook
deliveries, a new encryption key rolled out one process at a time, sign-out, Disconnect,
Delete, signing in again, and a provider that fails. After every step it checks:

- no browser sees another person's name or ids, on its page or in its download;
- after Disconnect or Delete, no live token of that person's is left at the stand-in
  (unless the stand-in was down when they asked: then it could not be told);
- nobody's tokens are forgotten but by their own Disconnect or Delete;
- no 500, and no 5xx but a provider's failure while it fails; no traceback in either
  process's log; no row id given twice; nothing of a deleted person in any table.

`make test` runs a few short lives per dialect, the same ones each time; `make fuzz` runs
LIFE_EXAMPLES lives of LIFE_STEPS steps, from FUZZ_SEED, and says how to replay them.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from conftest import BESIDE_CLIENT, Holding, listening, live_tokens, url_of
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from test_my_data import everything_of
from test_processes import HERE, AppProcesses, app_env, free_port, wait_until_serving

import encryption
import sandbox
from database import open_database
from models import BrowserSession, User, db
from sandbox.fitbit_resources import DEMO_USERS
from sandbox.google_resources import PEOPLE as GOOGLE_PEOPLE

EXAMPLES = int(os.environ.get("LIFE_EXAMPLES") or 8)
STEPS = int(os.environ.get("LIFE_STEPS") or 30)
# `make fuzz` picks a seed and prints it; `make test` runs the same lives every time.
SEED = os.environ.get("FUZZ_SEED")
BROWSERS = 3
PANELS = ["sleep", "heart_rate"]

# Each stand-in's people: {id: (name on the page, the ids a page or download may show)}.
PEOPLE = {
    "fitbit": {person: (DEMO_USERS[person]["displayName"], (person,)) for person in DEMO_USERS},
    "google": {
        person: (about["fullName"], (person, *filter(None, [about["legacy"]])))
        for person, about in GOOGLE_PEOPLE.items()
    },
}
NOT_LINKED = "hu-c6b81d3e72"  # Casey: a Google account without a Health profile
PERSON = st.integers(0, 3)  # which of the stand-in's people (Life.pick)


class Browser:
    """One browser: its cookies, whom the model says it is signed in as, and its session's
    CSRF token as its last page gave it."""

    def __init__(self):
        self.http = requests.Session()
        self.who = None
        self.csrf = None

    def note(self, page):
        found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        if found:
            self.csrf = found.group(1)
        return page


class Life(RuleBasedStateMachine):
    """A whole life, of the app with the stand-in for PROVIDER."""

    PROVIDER = None

    def __init__(self):
        super().__init__()
        self.stack = ExitStack()
        self.folder = Path(tempfile.mkdtemp(prefix="life-"))
        self.stack.callback(shutil.rmtree, self.folder, ignore_errors=True)
        try:
            self.start()
        except BaseException:
            self.stack.close()
            raise

    def start(self):
        (server,) = self.stack.enter_context(listening())
        ports = [free_port() for _ in range(2)]
        redirect_uri = f"http://127.0.0.1:{ports[0]}/auth/callback"
        kind = sandbox.STAND_INS[self.PROVIDER]
        registered = sandbox.RegisteredClient(*BESIDE_CLIENT, redirect_uri)
        self.stand_in = Holding(kind([registered], None, 100_000, str(self.folder / "stand-in.db")))
        server.app = self.stand_in
        # A delivery the app refuses (while the provider fails) is tried again at once: the
        # backoff's real seconds would be all this test spends its time on.
        self.stand_in.notifier.sleep = lambda seconds: None
        self.database_url = f"sqlite:///{self.folder / 'life.db'}"
        self.keys = [encryption.new_key_text()]  # every key ever used, newest first
        self.rings = [list(self.keys), list(self.keys)]  # each process's, newest first
        self.rotating = None  # the new key, while one is rolled out
        env = app_env(kind, url_of(server), self.PROVIDER, BESIDE_CLIENT, redirect_uri)
        subscriber = self.stand_in.generated_subscriber(
            BESIDE_CLIENT[0], f"http://127.0.0.1:{ports[0]}/webhooks/{self.PROVIDER}"
        )
        env[kind.WEBHOOK_SECRET_SETTING] = subscriber.secret
        env |= {"DATABASE_URL": self.database_url, "FITBIT_CACHE_SECONDS": "86400"}
        env[encryption.SETTING] = self.keys[0]
        self.apps = AppProcesses(self.folder, env, ports)
        self.stack.callback(self.apps.stop)
        for index in range(2):
            self.apps.start(index)
        for url in self.apps.urls:
            wait_until_serving(url)
        open_database(self.database_url, encryption.parse_keys(",".join(self.keys)))
        self.browsers = [Browser() for _ in range(BROWSERS)]
        self.people = PEOPLE[self.PROVIDER]
        self.connected = dict.fromkeys(self.people, False)
        self.unrevoked = set()  # asked to disconnect while the stand-in was down
        self.ids_seen = {}  # {row id: person}, every row ever seen
        self.deleted = []  # what each Delete deleted: (person, row id, values)
        self.failing = False

    def teardown(self):
        self.stack.close()

    # --- Helpers ---------------------------------------------------------------------------

    def url(self, index=0):
        return self.apps.urls[index]

    def checked(self, page, what):
        """A page, after the checks every page must pass."""
        if page.status_code == 500 or (page.status_code >= 500 and not self.failing):
            raise AssertionError(f"{what}: {page.status_code} {page.text[-300:]}")
        return page

    def names_not_shown(self, text, who, what):
        for person, (name, ids) in self.people.items():
            if person == who:
                continue
            others = [value for value in (name, *ids) if value in text]
            own = self.people[who][1] if who else ()
            others = [value for value in others if value not in own]
            assert others == [], f"{what} shows {person}'s {others}"

    def row_of(self, person):
        column = User.fitbit_id if self.PROVIDER == "fitbit" else User.health_user_id
        with db.connection_context():
            return User.get_or_none(column == person)

    def consent(self, browser, start, person, decision="allow", drop_last=False):
        """From a page that sends the browser to the stand-in's consent page (`start`, a
        response), the consent as `person`: the page the app comes back to."""
        consent = start
        request_id = re.search(r'name="request_id" value="([^"]+)"', consent.text).group(1)
        offered = re.findall(r'name="scope" value="([^"]+)"', consent.text)
        scopes = offered[:-1] if drop_last else offered
        form = {"request_id": request_id, "user_id": person, "decision": decision}
        page = browser.http.post(consent.url.split("?")[0], data={**form, "scope": scopes})
        return browser.note(self.checked(page, f"the consent of {person}"))

    # --- What people do ----------------------------------------------------------------------

    @initialize(b=st.integers(0, BROWSERS - 1), person=PERSON)
    def someone_signs_in_first(self, b, person):
        self.sign_in(b, person)

    @precondition(lambda self: not self.failing)
    @rule(b=st.integers(0, BROWSERS - 1), person=PERSON)
    def sign_in(self, b, person):
        person = self.pick(person)
        browser = self.browsers[b]
        start = self.checked(browser.http.get(self.url() + "/auth", timeout=30), "/auth")
        if "would like to access your data" not in start.text:
            return  # too many sign-ins from this address: fine, and said so
        page = self.consent(browser, start, person)
        if self.PROVIDER == "google" and person == NOT_LINKED:
            assert "No Google Health profile" in page.text
            return
        name = self.people[person][0]
        assert f"Hello, {name}" in page.text, page.text[-500:]
        self.signed_in(browser, person)

    def signed_in_browsers(self, connected=False):
        return [
            browser
            for browser in self.browsers
            if browser.who and browser.csrf and (self.connected[browser.who] or not connected)
        ]

    def one_of(self, browsers, number):
        return browsers[number % len(browsers)]

    def pick(self, number):
        """The person numbered so of this stand-in's (Google's four, or Fitbit's two)."""
        people = sorted(self.people)
        return people[number % len(people)]

    def signed_in(self, browser, person):
        browser.who = person
        self.connected[person] = True
        row = self.row_of(person)
        assert self.ids_seen.get(row.id, person) == person, f"row id {row.id} given twice"
        self.ids_seen[row.id] = person

    @precondition(lambda self: not self.failing)
    @rule(b=st.integers(0, BROWSERS - 1))
    def sign_in_denied(self, b):
        browser = self.browsers[b]
        start = self.checked(browser.http.get(self.url() + "/auth", timeout=30), "/auth")
        if "would like to access your data" in start.text:
            person = sorted(self.people)[0]
            assert "You chose not to connect" in self.consent(browser, start, person, "deny").text

    @precondition(lambda self: not self.failing and self.signed_in_browsers(connected=True))
    @rule(
        b=st.integers(0, BROWSERS - 1),
        panel=st.sampled_from(PANELS),
        how=st.sampled_from(["allow", "deny", "untick", "another"]),
        other=PERSON,
    )
    def consent_round(self, b, panel, how, other):
        browser = self.one_of(self.signed_in_browsers(connected=True), b)
        form = {"csrf_token": browser.csrf, "panel": panel}
        start = self.checked(browser.http.post(self.url() + "/auth/more", data=form), "more")
        if "would like to access your data" not in start.text:
            return  # granted already: back home
        if how == "another":
            other = self.pick(other)
            if other == browser.who:
                return
            page = self.consent(browser, start, other)
            assert "another" in page.text or "No Google Health profile" in page.text
        elif how == "deny":
            assert "You chose not to show" in self.consent(browser, start, browser.who, "deny").text
        elif how == "untick":
            page = self.consent(browser, start, browser.who, drop_last=True)
            assert "You did not allow access" in page.text
        else:
            assert "now lets this app see" in self.consent(browser, start, browser.who).text

    @rule(b=st.integers(0, BROWSERS - 1), at=st.integers(0, 1))
    def view(self, b, at):
        browser = self.browsers[b]
        page = browser.note(self.checked(browser.http.get(self.url(at) + "/"), "the home page"))
        self.names_not_shown(page.text, browser.who, "the home page")
        if page.status_code != 200:
            return
        if browser.who is None:
            assert "Hello, " not in page.text
            return
        assert f"Hello, {self.people[browser.who][0]}" in page.text
        assert ('action="/auth/revoke"' in page.text) == self.connected[browser.who]

    @rule(b=st.integers(0, BROWSERS - 1), at=st.integers(0, 1))
    def download(self, b, at):
        browser = self.browsers[b]
        answer = self.checked(browser.http.get(self.url(at) + "/my-data"), "Download my data")
        if browser.who is None:
            assert answer.status_code == 403
            return
        assert answer.status_code == 200
        assert json.loads(answer.text)["profile"]["name"] == self.people[browser.who][0]
        self.names_not_shown(answer.text, browser.who, "Download my data")

    @precondition(lambda self: self.signed_in_browsers())
    @rule(b=st.integers(0, BROWSERS - 1))
    def sign_out(self, b):
        browser = self.one_of(self.signed_in_browsers(), b)
        page = browser.http.post(self.url() + "/logout", data={"csrf_token": browser.csrf})
        assert "You are signed out." in browser.note(self.checked(page, "sign-out")).text
        browser.who = None

    @precondition(lambda self: self.signed_in_browsers(connected=True))
    @rule(b=st.integers(0, BROWSERS - 1))
    def disconnect(self, b):
        browser = self.one_of(self.signed_in_browsers(connected=True), b)
        who = browser.who
        page = browser.http.post(self.url() + "/auth/revoke", data={"csrf_token": browser.csrf})
        assert "Disconnected" in browser.note(self.checked(page, "Disconnect")).text
        self.forgotten(who)

    def forgotten(self, who):
        """`who` asked for their grant back: from now on nothing of it may be live at the
        stand-in, unless the stand-in could not be asked. (Asked to delete their data once
        disconnected, the app holds no token to revoke with: as it was, it stays.)"""
        if self.connected[who]:
            if self.failing:
                self.unrevoked.add(who)
            else:
                self.unrevoked.discard(who)
        self.connected[who] = False

    @precondition(lambda self: self.signed_in_browsers())
    @rule(b=st.integers(0, BROWSERS - 1))
    def delete(self, b):
        browser = self.one_of(self.signed_in_browsers(), b)
        who = browser.who
        row = self.row_of(who)
        with db.connection_context():
            sessions = BrowserSession.select().where(BrowserSession.user == row.id)
            values = [session.trace for session in sessions if session.trace]
            values += [value[12:72] for value in (row.access_token, row.refresh_token) if value]
        confirm = browser.note(self.checked(browser.http.get(self.url() + "/my-data/delete"), "?"))
        form = {"csrf_token": browser.csrf}
        page = self.checked(browser.http.post(self.url() + "/my-data/delete", data=form), "Delete")
        assert "Your data is deleted" in browser.note(page).text, confirm.text[-300:]
        self.deleted.append((who, row.id, values))
        self.forgotten(who)
        for other in self.browsers:
            if other.who == who:
                other.who = None

    # --- What the provider, time and the stand-in's people do ---------------------------

    def unexpired(self):
        """The people connected whose access token has not run out yet."""
        moment = datetime.now(UTC)
        return [
            person
            for person, on in self.connected.items()
            if on and self.row_of(person).expires_at > moment
        ]

    @precondition(lambda self: self.unexpired())
    @rule(person=PERSON)
    def access_token_runs_out(self, person):
        person = self.one_of(self.unexpired(), person)
        past = datetime.now(UTC) - timedelta(minutes=1)
        with db.connection_context():
            column = User.fitbit_id if self.PROVIDER == "fitbit" else User.health_user_id
            User.update(expires_at=past).where(column == person).execute()
        with self.stand_in.store.db.transaction() as sql:
            sql.execute(
                "UPDATE access_tokens SET expires_at = ? WHERE grant_id IN "
                "(SELECT grant_id FROM grants WHERE user_id = ?)",
                (past.timestamp(), person),
            )

    @precondition(lambda self: any(self.connected.values()))
    @rule(person=PERSON, steps=st.integers(1, 5000))
    def walk(self, person, steps):
        """Someone connected walks; the stand-in notifies the first process of it."""
        walker = self.one_of([p for p, on in self.connected.items() if on], person)
        for _, status in self.stand_in.walk(walker, steps, retry_in_background=False):
            allowed = (204, 503) if self.failing else (204,)
            assert status in allowed, f"a webhook delivery answered {status}"

    @precondition(lambda self: not self.failing)
    @rule()
    def provider_fails(self):
        self.failing = self.stand_in.failing = True

    @precondition(lambda self: self.failing)
    @rule()
    def provider_recovers(self):
        self.failing = self.stand_in.failing = False

    # --- What the operator does: a new key, rolled out one process at a time -------------

    def restart(self, index):
        self.apps.restart(index, ",".join(self.rings[index]))

    @precondition(lambda self: self.rotating is None)
    @rule()
    def new_key_made(self):
        self.rotating = encryption.new_key_text()
        self.keys.insert(0, self.rotating)
        encryption.use(encryption.Keyring(encryption.parse_keys(",".join(self.keys))))

    @precondition(lambda self: self.rotating and any(self.rotating not in r for r in self.rings))
    @rule(index=st.integers(0, 1))
    def new_key_added_last(self, index):
        if self.rotating not in self.rings[index]:
            self.rings[index].append(self.rotating)
            self.restart(index)

    @precondition(lambda self: self.rotating and all(self.rotating in r for r in self.rings))
    @rule(index=st.integers(0, 1))
    def new_key_put_first(self, index):
        ring = self.rings[index]
        if ring[0] != self.rotating:
            ring.remove(self.rotating)
            ring.insert(0, self.rotating)
            self.restart(index)

    @precondition(lambda self: self.rotating and all(r[0] == self.rotating for r in self.rings))
    @rule(index=st.integers(0, 1))
    def reencrypted_and_old_key_dropped(self, index):
        environ = {**os.environ, "DATABASE_URL": self.database_url}
        environ[encryption.SETTING] = ",".join(self.rings[index])
        done = subprocess.run(
            [sys.executable, "-m", "tools.reencrypt"],
            cwd=HERE,
            env=environ,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        if "Still sealed by older keys" in done.stdout:
            return  # a page was seen meanwhile: run again later
        for which in range(2):
            self.rings[which] = [self.rotating]
            self.restart(which)
        self.rotating = None

    # --- After every step ------------------------------------------------------------------

    @invariant()
    def nobody_forgotten_and_no_id_given_twice(self):
        if not hasattr(self, "apps"):
            return
        with db.connection_context():
            rows = list(User.select())
        ids = {row.id for row in rows}
        gone = {row_id for _, row_id, _ in self.deleted}
        assert ids.isdisjoint(gone), f"row ids given again: {ids & gone}"
        for person, connected in self.connected.items():
            row = self.row_of(person)
            assert (row is not None and row.connected) == connected, f"{person}'s tokens"

    @invariant()
    def no_live_token_of_someone_who_gave_it_back(self):
        if not hasattr(self, "apps"):
            return
        for person, connected in self.connected.items():
            if not connected and person not in self.unrevoked:
                assert live_tokens(self.stand_in, person) == [], f"{person}'s tokens are live"

    @invariant()
    def nothing_left_of_the_deleted(self):
        if not hasattr(self, "apps"):
            return
        for person, row_id, values in self.deleted:
            name, ids = self.people[person]
            here = self.row_of(person) is not None  # signed in again since
            found = everything_of(values if here else [*values, name, *ids], row_id)
            assert found == [], f"{person}'s deleted data is still there: {found[:3]}"

    @invariant()
    def no_traceback(self):
        if hasattr(self, "apps"):
            assert "Traceback" not in self.apps.output()


class FitbitLife(Life):
    PROVIDER = "fitbit"


class GoogleLife(Life):
    PROVIDER = "google"


LIFE_SETTINGS = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    derandomize=SEED is None,  # else `--hypothesis-seed` (make fuzz) picks the lives
    suppress_health_check=list(HealthCheck),
    database=None if SEED is None else settings.default.database,
)


@pytest.mark.parametrize("life", [FitbitLife, GoogleLife], ids=["fitbit", "google"])
def test_a_users_whole_life_keeps_every_promise(life, capsys):
    started = time.monotonic()
    run_state_machine_as_test(life, settings=LIFE_SETTINGS)
    if SEED is not None:  # `make fuzz`: what was run, and how to run it again
        with capsys.disabled():
            print(
                f"\n{life.PROVIDER}: {EXAMPLES} lives of up to {STEPS} steps in "
                f"{time.monotonic() - started:.0f} s; again: make fuzz FUZZ_SEED={SEED}"
            )
