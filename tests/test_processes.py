"""Several app processes sharing one database file, against one stand-in for Fitbit.

Real processes (`python fitbit_oauth_app.py`, as a reader starts it) on real sockets. The
stand-in runs in this test process, so that it can count, slow down or stall the refreshes
it is sent. Expiry is made by writing a past `expires_at` into the shared database: the
app processes cannot be put under freezegun.
"""

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from conftest import TOKEN_KEY, held, listening, url_of
from playhouse.db_url import connect
from test_end_to_end import Browser
from werkzeug.wrappers import Response

import encryption
import token_store
from database import open_database
from models import ApiCache, BrowserSession, User, db
from sandbox import FitbitStandIn, GoogleStandIn, RegisteredClient

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIENT_ID, CLIENT_SECRET = "PROC01", "processes-client-secret-SENTINEL"
ROUNDS = 20
GOOGLE_ALEX = "hu-4f1e9c2a7b"
REQUESTS_PER_PROCESS = 4
ELSEWHERE = "A message left by another writer"


class Counting:
    """A stand-in, counting refresh POSTs, each one slowed down so that the other
    requests of a round arrive while it is in flight. Clear `go` to hold refreshes until it
    is set again; with `drop_held`, a held refresh then never reaches the token store, as
    when the request died on the way."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.refreshes, self.lock = 0, threading.Lock()
        self.issued = []  # every token handed out, to look for in the app's output
        self.go = threading.Event()
        self.go.set()
        self.held = threading.Event()
        self.drop_held = False
        self.on_refresh = lambda: None
        # The token endpoint is the authorization server's: counted on its way in and out.
        server = self.authorization
        on_token, issue_tokens = server.on_token, server.issue_tokens
        server.on_token = lambda request: self.counted(request) or on_token(request)
        server.issue_tokens = lambda *args: self.noted(issue_tokens(*args))

    def counted(self, request):
        """None to go on to the token endpoint, or the answer of a refresh that was held
        and dropped."""
        if request.form.get("grant_type") == "refresh_token":
            with self.lock:
                self.refreshes += 1
            self.on_refresh()
            if not self.go.is_set():
                self.held.set()
                self.go.wait(60)
                if self.drop_held:
                    return Response(status=503)
            time.sleep(0.05)
        return None

    def noted(self, answer):
        self.issued += [answer["access_token"], *filter(None, [answer.get("refresh_token")])]
        return answer


class CountingStandIn(Counting, FitbitStandIn):
    """Fitbit's side, counted."""


class CountingGoogleStandIn(Counting, GoogleStandIn):
    """Google's side, counted."""


@contextmanager
def write_lock(database_url):
    """Hold the lock that the app's writes need, from another connection: SQLite's write
    lock, or on PostgreSQL a lock on the users table that lets reads through."""
    if database_url.startswith("sqlite"):
        locker = sqlite3.connect(urlsplit(database_url).path[1:], isolation_level=None)
        run, lock = locker.execute, "BEGIN IMMEDIATE"
    else:
        locker = connect(database_url)
        run, lock = locker.execute_sql, "BEGIN; LOCK TABLE users IN SHARE MODE"
    run(lock)
    try:
        yield
    finally:
        run("ROLLBACK")
        locker.close()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def stand_in():
    with listening() as (server,):
        yield server


class AppProcesses:
    """App processes serving on `ports`, each started with `env` (and its own port): `python
    fitbit_oauth_app.py`, or with `gunicorn_workers`, gunicorn with that many workers.
    restart() starts one again with other TOKEN_ENCRYPTION_KEYS, as an operator rolls a new
    key out one process at a time. Unpacks as (urls, processes, logs)."""

    def __init__(self, tmp_path, env, ports, gunicorn_workers=None):
        self.tmp_path, self.env, self.ports = tmp_path, env, ports
        self.gunicorn_workers = gunicorn_workers
        self.urls = [f"http://127.0.0.1:{port}" for port in ports]
        self.processes, self.logs = [None] * len(ports), []

    def __iter__(self):
        return iter((self.urls, self.processes, self.logs))

    def start(self, index, keys=None):
        port = self.ports[index]
        log = open(self.tmp_path / f"app-{port}.log", "a+")  # noqa: SIM115 (closed in stop())
        self.logs.append(log)
        command = [sys.executable, "fitbit_oauth_app.py", "--host", "127.0.0.1"]
        command += ["--port", str(port)]
        if self.gunicorn_workers:
            command = [sys.executable, "-m", "gunicorn", "--workers", str(self.gunicorn_workers)]
            command += ["--bind", f"127.0.0.1:{port}", "fitbit_oauth_app:app_from_env()"]
        env = {**self.env, "PORT": str(port)}
        if keys is not None:
            env[encryption.SETTING] = keys
        self.processes[index] = subprocess.Popen(
            command, cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT
        )

    def restart(self, index, keys):
        self.end(self.processes[index])
        self.start(index, keys)
        wait_until_serving(self.urls[index])

    def output(self):
        """What every process has printed, those started before a restart too."""
        paths = dict.fromkeys(Path(log.name) for log in self.logs)  # once each, restarted or not
        return "".join(path.read_text() for path in paths)

    @staticmethod
    def end(process):
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(10)

    def stop(self):
        for process in self.processes:
            self.end(process)
        for log in self.logs:
            log.close()


def app_env(stand_in, root, provider, credentials, redirect_uri):
    """The environment of an app process registered at `stand_in` (a class), served from
    `root`, as `credentials` (client id and secret), in `provider`'s dialect."""
    prefix = "GOOGLE" if provider == "google" else "FITBIT"
    env = {
        **os.environ,
        **stand_in.settings(root),  # FITBIT_TOKEN_URL=..., or GOOGLE_TOKEN_URL=..., and so on
        "PROVIDER": provider,
        f"{prefix}_CLIENT_ID": credentials[0],
        f"{prefix}_CLIENT_SECRET": credentials[1],
        f"{prefix}_REDIRECT_URI": redirect_uri,
        "FITBIT_CACHE_SECONDS": "0",  # every page view calls the API, so every round refreshes
    }
    env.pop("SECRET_KEY", None)  # the processes agree on the key kept in the database
    return env


@contextmanager
def app_processes(
    tmp_path,
    stand_in_server,
    database_url,
    count=2,
    gunicorn_workers=None,
    provider="fitbit",
    webhooks=False,
    keys=TOKEN_KEY,
):
    """`count` app processes on one database (AppProcesses), all registered as one client at
    the stand-in of `provider`; sign-ins come back to the first one. With `webhooks`, the
    first one is the client's subscriber, and answers are cached for a day. `keys` are
    their TOKEN_ENCRYPTION_KEYS, and this process's, which reads and edits the same rows."""
    ports = [free_port() for _ in range(count)]
    redirect_uri = f"http://127.0.0.1:{ports[0]}/auth/callback"
    root = url_of(stand_in_server)
    registered = [RegisteredClient(CLIENT_ID, CLIENT_SECRET, redirect_uri)]
    counting = CountingGoogleStandIn if provider == "google" else CountingStandIn
    stand_in_server.app = counting(registered, rate_limit=100_000)
    env = app_env(counting, root, provider, (CLIENT_ID, CLIENT_SECRET), redirect_uri)
    env |= {"DATABASE_URL": database_url, encryption.SETTING: keys}
    if webhooks:
        endpoint = f"http://127.0.0.1:{ports[0]}/webhooks/{provider}"
        subscriber = stand_in_server.app.generated_subscriber(CLIENT_ID, endpoint)
        env[counting.WEBHOOK_SECRET_SETTING] = subscriber.secret
        env["FITBIT_CACHE_SECONDS"] = "86400"
    apps = AppProcesses(tmp_path, env, ports, gunicorn_workers)
    try:
        for index in range(count):
            apps.start(index)
        for url in apps.urls:
            wait_until_serving(url)
        open_database(env["DATABASE_URL"], encryption.parse_keys(keys))
        yield apps
    finally:
        apps.stop()


def wait_until_serving(url):
    for _ in range(200):
        try:
            requests.get(url + "/static/style.css", timeout=1)
            return
        # Refused, or accepted by gunicorn's master while its workers still boot.
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.05)
    raise AssertionError(f"{url} did not start")


def sign_in(url, user="7QW2XR"):
    """The whole sign-in as a browser does it, through the app at `url`, allowing every
    scope offered; returns the browser's cookies."""
    browser = requests.Session()
    consent = browser.get(url + "/auth", timeout=10)
    request_id = re.search(r'name="request_id" value="([^"]+)"', consent.text).group(1)
    form = {"request_id": request_id, "user_id": user, "decision": "allow"}
    form["scope"] = re.findall(r'name="scope" value="([^"]+)"', consent.text)
    page = browser.post(consent.url.split("?")[0], data=form, timeout=10)
    assert page.status_code == 200 and "steps today" in page.text, page.text
    return browser.cookies


def expire(fitbit_id):
    with db.connection_context():
        past = datetime.now(UTC) - timedelta(minutes=1)
        User.update(expires_at=past).where(User.fitbit_id == fitbit_id).execute()


def stored(fitbit_id):
    with db.connection_context():
        return User.by_fitbit_id(fitbit_id)


def load_pages(urls, cookies, per_process):
    """per_process concurrent GET / to each URL, released at the same moment."""
    targets = [url for url in urls for _ in range(per_process)]
    barrier = threading.Barrier(len(targets))
    pages = [None] * len(targets)

    def visit(index, url):
        browser = requests.Session()
        browser.cookies.update(cookies)
        barrier.wait()
        pages[index] = browser.get(url + "/", timeout=30)

    threads = [threading.Thread(target=visit, args=pair) for pair in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return pages


def view_with_the_refresh_held(fitbit, url, cookies):
    """GET / in a thread of its own, for a user whose tokens are due, and wait until the
    stand-in holds its refresh. Returns the thread, and a dict that gets the page, or the
    error if the connection failed."""
    fitbit.go.clear()
    result = {}

    def view():
        try:
            result["page"] = requests.get(url + "/", cookies=cookies, timeout=90)
        except requests.RequestException as error:
            result["error"] = error

    thread = threading.Thread(target=view)
    thread.start()
    assert fitbit.held.wait(10)
    return thread, result


@pytest.mark.parametrize("provider", ["fitbit", "google"])
def test_processes_sharing_a_database_refresh_once_per_expiry_and_log_nobody_out(
    tmp_path, database_url, provider
):
    """Fitbit's refresh tokens work once, so a second POST would log the user out; Google's
    are reused, so the waiters must notice the new access token instead."""
    with (
        stand_in() as server,
        app_processes(tmp_path, server, database_url, provider=provider) as (urls, _, logs),
    ):
        cookies = sign_in(urls[0], user=GOOGLE_ALEX if provider == "google" else "7QW2XR")
        fitbit = server.app
        per_round, logouts, failed_pages = [], 0, []
        for _ in range(ROUNDS):
            expire("7QW2XR")
            before = fitbit.refreshes
            pages = load_pages(urls, cookies, REQUESTS_PER_PROCESS)
            per_round.append(fitbit.refreshes - before)
            logouts += not stored("7QW2XR").connected
            failed_pages += [
                p for p in pages if p.status_code != 200 or "steps today" not in p.text
            ]
        print(f"token POSTs per round: {per_round}; logouts: {logouts} of {ROUNDS} rounds")
        assert per_round == [1] * ROUNDS
        assert logouts == 0
        assert [(p.status_code, p.url, p.text[-600:]) for p in failed_pages] == []
        assert stored("7QW2XR").connected
        output = "".join(log.seek(0) or log.read() for log in logs)
    assert "Traceback" not in output
    assert not [token for token in fitbit.issued if token in output]
    assert CLIENT_SECRET not in output


def test_a_locked_database_gives_a_retry_page_and_spends_no_refresh_token(tmp_path, database_url):
    with stand_in() as server, app_processes(tmp_path, server, database_url) as (urls, _, _logs):
        cookies = sign_in(urls[0])
        expire("7QW2XR")
        spent_before = held(stored("7QW2XR")).refresh_token
        # Another process locks the database past the 5 s the app waits for a lock.
        with write_lock(database_url):
            page = requests.get(urls[1] + "/", cookies=cookies, timeout=30)
        assert page.status_code == 503
        assert page.headers["Retry-After"].isdigit()
        assert "The database is busy" in page.text
        assert '<a class="home"' in page.text  # the app's own layout, not a bare error
        assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
        assert page.headers["X-Content-Type-Options"] == "nosniff"
        assert page.headers["Cache-Control"] == "no-store"
        assert server.app.refreshes == 0  # the refresh token was never sent
        assert held(stored("7QW2XR")).refresh_token == spent_before
        # Once the lock is gone, the same stored refresh token still works at Fitbit.
        page = requests.get(urls[1] + "/", cookies=cookies, timeout=30)
        assert page.status_code == 200 and "steps today" in page.text
        assert server.app.refreshes == 1
        assert held(stored("7QW2XR")).refresh_token != spent_before


def test_a_database_locked_while_fitbit_answers_loses_no_refresh_token(tmp_path, database_url):
    """The worst moment: the refresh token is spent, and the database is locked by another
    process before the new pair can be written, for longer than the app waits for a lock."""
    with stand_in() as server, app_processes(tmp_path, server, database_url) as (urls, _, _logs):
        cookies = sign_in(urls[0])
        expire("7QW2XR")
        spent = held(stored("7QW2XR")).refresh_token
        locked, released = threading.Event(), threading.Event()

        def hold_the_lock():
            with write_lock(database_url):
                locked.set()
                time.sleep(7)  # past the 5 s lock wait of the first try to store
            released.set()

        holder = threading.Thread(target=hold_the_lock)
        server.app.on_refresh = lambda: (holder.start(), locked.wait(5))
        page = requests.get(urls[1] + "/", cookies=cookies, timeout=60)
        holder.join()
        assert released.is_set()
        assert page.status_code == 200 and "steps today" in page.text
        assert server.app.refreshes == 1
        assert stored("7QW2XR").connected and held(stored("7QW2XR")).refresh_token != spent


def test_another_user_signs_in_while_a_refresh_waits_on_fitbit(tmp_path, database_url):
    with stand_in() as server, app_processes(tmp_path, server, database_url) as (urls, _, _logs):
        fitbit = server.app
        alex = sign_in(urls[0])
        expire("7QW2XR")
        thread, waiting = view_with_the_refresh_held(fitbit, urls[0], alex)
        try:
            started = time.monotonic()
            sign_in(urls[1], user="9KD3MS")  # Sam, through the other process
            took = time.monotonic() - started
            assert thread.is_alive()  # Alex's refresh is still waiting on Fitbit
        finally:
            fitbit.go.set()
            thread.join()
        assert took < 3
        assert stored("9KD3MS").connected
        assert waiting["page"].status_code == 200 and "steps today" in waiting["page"].text


def test_a_worker_that_dies_mid_refresh_holds_the_others_up_only_briefly(tmp_path, database_url):
    with (
        stand_in() as server,
        app_processes(tmp_path, server, database_url) as (urls, processes, _logs),
    ):
        fitbit = server.app
        alex = sign_in(urls[0])
        expire("7QW2XR")
        fitbit.drop_held = True
        doomed, view = view_with_the_refresh_held(fitbit, urls[0], alex)
        processes[0].kill()  # the worker holding the lease dies before Fitbit answers
        processes[0].wait(10)
        doomed.join()
        assert "error" in view  # its browser saw the connection drop
        fitbit.go.set()

        started = time.monotonic()
        page = requests.get(urls[1] + "/", cookies=alex, timeout=90)
        waited = time.monotonic() - started
        assert page.status_code == 503 and page.headers["Retry-After"].isdigit()
        assert "Try again in a few seconds" in page.text
        assert waited < 14  # LEASE_POLLS of LEASE_POLL_SECONDS (10 s), and little more
        # The dead worker's lease runs out (30 s; here written as passed), and the next
        # request refreshes with the refresh token, which was never spent.
        with db.connection_context():
            gone = datetime.now(UTC) - timedelta(seconds=1)
            User.update(refresh_lease_until=gone).where(User.fitbit_id == "7QW2XR").execute()
        page = requests.get(urls[1] + "/", cookies=alex, timeout=30)
        assert page.status_code == 200 and "steps today" in page.text


def test_gunicorn_with_four_workers_refreshes_once_for_forty_requests(tmp_path, database_url):
    with (
        stand_in() as server,
        app_processes(tmp_path, server, database_url, count=1, gunicorn_workers=4) as (
            urls,
            _,
            logs,
        ),
    ):
        cookies = sign_in(urls[0])
        pids = set()
        for _ in range(3):
            expire("7QW2XR")
            before = server.app.refreshes
            pages = load_pages(urls, cookies, 40)
            assert server.app.refreshes - before == 1
            assert [page.status_code for page in pages] == [200] * 40
            assert all("steps today" in page.text for page in pages)
            assert stored("7QW2XR").connected
        output = logs[0].seek(0) or logs[0].read()
        pids = set(re.findall(r"Booting worker with pid: (\d+)", output))
    assert len(pids) == 4
    assert "Traceback" not in output


@contextmanager
def gunicorn_in_sandbox_mode(tmp_path, port, provider="fitbit"):
    """`make serve` as a newcomer runs it: gunicorn, 4 workers of 16 threads, no credentials,
    so every worker mounts the stand-ins, which keep their state in databases of their own."""
    mine = ("FITBIT_", "GOOGLE_", "SECRET_KEY", "PROVIDER")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(mine)},
        "PROVIDER": provider,
        "PORT": str(port),
        f"{provider.upper()}_REDIRECT_URI": f"http://127.0.0.1:{port}/auth/callback",
        "FITBIT_CACHE_SECONDS": "0",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
        "SANDBOX_DATABASE": str(tmp_path / "stand-in.db"),
    }
    command = [sys.executable, "-m", "gunicorn", "--workers", "4", "--worker-class", "gthread"]
    command += ["--threads", "16", "--bind", f"127.0.0.1:{port}", "fitbit_oauth_app:app_from_env()"]
    with open(tmp_path / "gunicorn.log", "a") as log:
        server = subprocess.Popen(command, cwd=HERE, env=env, stdout=log, stderr=log)
        try:
            wait_until_serving(f"http://127.0.0.1:{port}")
            open_database(env["DATABASE_URL"])
            yield
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(20)


@pytest.mark.parametrize(
    "provider, person, name",
    [
        ("fitbit", "7QW2XR", "Fitbit user 7QW2XR"),
        ("google", GOOGLE_ALEX, f"Google Health user {GOOGLE_ALEX}"),
    ],
)
def test_the_stand_in_under_gunicorn_is_one_provider_for_all_workers_and_restarts(
    tmp_path, provider, person, name
):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with gunicorn_in_sandbox_mode(tmp_path, port, provider):
        # A code minted by one worker is redeemed through whichever worker gets the POST.
        cookies = sign_in(url, user=person)
        expire("7QW2XR")
        # Kept below the threads of one worker (16): in sandbox mode each page view holds a
        # thread while its calls to the stand-in, in this same server, need another.
        pages = load_pages([url], cookies, 10)
        assert [page.status_code for page in pages] == [200] * 10
        assert all("steps today" in page.text for page in pages)
    with gunicorn_in_sandbox_mode(tmp_path, port, provider):  # a restart: nobody is forgotten
        page = requests.get(url + "/", cookies=cookies, timeout=30)
        assert page.status_code == 200 and "steps today" in page.text
    output = (tmp_path / "gunicorn.log").read_text()
    assert output.count("Booting worker with pid") == 8
    assert output.count(f"{name}: signed in") == 1
    assert output.count(f"{name}: tokens refreshed") == 1
    assert "Traceback" not in output and "Connect again" not in page.text


def api_calls(stand_in):
    with stand_in.store.db.transaction() as sql:
        return sql.execute("SELECT coalesce(sum(count), 0) FROM calls").fetchone()[0]


@pytest.mark.parametrize("provider", ["fitbit", "google"])
def test_a_notification_to_one_process_costs_one_fetch_across_both(
    tmp_path, database_url, provider
):
    """The stand-in notifies the first process; then eight views at once, four on each
    process, find the cached answers stale. Exactly one of them fetches each again: at
    Fitbit the steps and the workouts (its `activities` collection is both), at Google the
    steps alone (its data type)."""
    user = GOOGLE_ALEX if provider == "google" else "7QW2XR"
    stale = 1 if provider == "google" else 2
    with (
        stand_in() as server,
        app_processes(tmp_path, server, database_url, provider=provider, webhooks=True) as (
            urls,
            _,
            _,
        ),
    ):
        cookies = sign_in(urls[0], user=user)
        fitbit = server.app
        calls = api_calls(fitbit)
        for page in load_pages(urls, cookies, per_process=2):
            assert page.status_code == 200
        assert api_calls(fitbit) == calls  # cached, and unchanged: no call at all
        before = {
            re.search(r"<strong>([0-9,]+)</strong> steps today", p.text).group(1)
            for p in load_pages(urls, cookies, per_process=1)
        }
        assert fitbit.walk(user, 2500, retry_in_background=False) == [
            (f"{urls[0]}/webhooks/{provider}", 204)
        ]
        pages = load_pages(urls, cookies, per_process=4)
        assert api_calls(fitbit) == calls + stale
        after = {
            re.search(r"<strong>([0-9,]+)</strong> steps today", p.text).group(1)
            for p in load_pages(urls, cookies, per_process=1)
        }
        assert after.isdisjoint(before) and len(after) == 1
        assert all(page.status_code == 200 for page in pages)
        assert api_calls(fitbit) == calls + stale


def test_keys_rotated_while_two_processes_refresh_lose_no_token(tmp_path, database_url):
    """The rotation as docs/operations.md gives it: the processes run with a new key first and the
    old one after it, every value still sealed by the old one; `python -m tools.reencrypt` runs
    while they refresh, round after round; then the new key alone opens everything, and
    nobody was logged out."""
    old, new = TOKEN_KEY, encryption.new_key_text()

    def reencrypt(keys):
        env = {**os.environ, "DATABASE_URL": database_url, encryption.SETTING: keys}
        command = [sys.executable, "-m", "tools.reencrypt"]
        return subprocess.Popen(command, cwd=HERE, env=env, stdout=subprocess.PIPE, text=True)

    def rows_sealed(run):
        out, _ = run.communicate(timeout=60)
        assert run.returncode == 0, out
        return int(out.split()[0])

    with (
        stand_in() as server,
        app_processes(tmp_path, server, database_url, keys=f"{new},{old}") as (urls, _, logs),
    ):
        cookies = sign_in(urls[0])
        assert rows_sealed(reencrypt(f"{old},{new}")) >= 1  # as before the rotation
        fitbit, per_round, logouts, changed = server.app, [], 0, []
        for _ in range(ROUNDS // 2):
            expire("7QW2XR")
            before = fitbit.refreshes
            run = reencrypt(f"{new},{old}")
            pages = load_pages(urls, cookies, REQUESTS_PER_PROCESS)
            changed.append(rows_sealed(run))
            per_round.append(fitbit.refreshes - before)
            logouts += not stored("7QW2XR").connected
            assert [p.status_code for p in pages if "steps today" not in p.text] == []
        output = "".join(log.seek(0) or log.read() for log in logs)
    print(f"token POSTs per round: {per_round}; rows sealed again per run: {changed}")
    assert per_round == [1] * (ROUNDS // 2) and logouts == 0
    assert changed[0] >= 1  # the first run found the old key's rows
    assert "Traceback" not in output
    open_database(database_url, encryption.parse_keys(new))  # the new key alone
    with db.connection_context():
        new_id = encryption.key_id(encryption.parse_keys(new)[0])
        assert set(token_store.key_ids_in_use()) == {new_id}
        assert held(User.by_fitbit_id("7QW2XR")).access_token in fitbit.issued


def answers_of(fitbit_id):
    """{path: sealed body} of the user's cached answers, as the rows hold them."""
    with db.connection_context():
        user = User.by_fitbit_id(fitbit_id)
        return {row.path: row.body for row in ApiCache.select().where(ApiCache.user == user)}


def make_answers_stale(fitbit_id):
    with db.connection_context():
        user = User.by_fitbit_id(fitbit_id)
        past = datetime.now(UTC) - timedelta(days=2)
        ApiCache.update(fetched_at=past).where(ApiCache.user == user).execute()


@pytest.mark.parametrize("provider", ["fitbit", "google"])
def test_a_key_rolled_out_one_process_at_a_time_loses_no_token_and_no_answer(
    tmp_path, database_url, provider
):
    """The order docs/operations.md warns against: one process is given the new key first, while
    the other still has the old one alone. The first seals with the new key; the second
    leaves what it cannot open as it is, asks the browser to try again (503, Retry-After)
    and logs the key it lacks; given the key too, it shows the same user, still connected,
    from the same answers."""
    old, new = TOKEN_KEY, encryption.new_key_text()
    person = GOOGLE_ALEX if provider == "google" else "7QW2XR"
    with (
        stand_in() as server,
        app_processes(tmp_path, server, database_url, provider=provider, webhooks=True) as apps,
    ):
        urls, fitbit = apps.urls, server.app
        cookies = sign_in(urls[0], user=person)
        apps.restart(0, f"{new},{old}")
        open_database(database_url, encryption.parse_keys(f"{new},{old}"))  # this process too
        expire("7QW2XR")
        make_answers_stale("7QW2XR")
        refreshes = fitbit.refreshes
        page = requests.get(urls[0] + "/", cookies=cookies, timeout=30)
        assert page.status_code == 200 and "steps today" in page.text
        assert fitbit.refreshes == refreshes + 1  # sealed the new pair with the new key
        tokens, answers = held(stored("7QW2XR")), answers_of("7QW2XR")
        new_id = encryption.key_id(encryption.parse_keys(new)[0])
        assert all(body.startswith(f"v1:{new_id}:") for body in answers.values())

        behind = requests.get(urls[1] + "/", cookies=cookies, timeout=30)
        assert behind.status_code == 503 and behind.headers["Retry-After"].isdigit()
        assert "Try again in a few seconds" in behind.text
        assert held(stored("7QW2XR")) == tokens and answers_of("7QW2XR") == answers
        assert f"A value sealed by key {new_id}, which this process lacks" in apps.output()

        apps.restart(1, f"{new},{old}")
        page = requests.get(urls[1] + "/", cookies=cookies, timeout=30)
        assert page.status_code == 200 and "steps today" in page.text
        assert stored("7QW2XR").connected and held(stored("7QW2XR")) == tokens
        assert answers_of("7QW2XR") == answers  # fresh, and read as they were
        assert fitbit.refreshes == refreshes + 1
    assert "Traceback" not in apps.output()


def test_a_key_rolled_out_in_the_documented_order_never_asks_anyone_to_wait(tmp_path, database_url):
    """The safe order: the new key is added second to every process (each can then open
    what it will seal), then put first, one process at a time; `make reencrypt`; then the
    old key is dropped. No page on the way is anything but the user's own."""
    old, new = TOKEN_KEY, encryption.new_key_text()
    with (
        stand_in() as server,
        app_processes(tmp_path, server, database_url, webhooks=True) as apps,
    ):
        cookies = sign_in(apps.urls[0])
        seen = []

        def view_both():
            for url in apps.urls:
                page = requests.get(url + "/", cookies=cookies, timeout=30)
                seen.append((page.status_code, "steps today" in page.text))

        steps = [(0, f"{old},{new}"), (1, f"{old},{new}"), (0, f"{new},{old}"), (1, f"{new},{old}")]
        for index, keys in steps:
            apps.restart(index, keys)
            open_database(database_url, encryption.parse_keys(f"{new},{old}"))
            expire("7QW2XR")
            make_answers_stale("7QW2XR")
            view_both()
        environ = {**os.environ, "DATABASE_URL": database_url, encryption.SETTING: f"{new},{old}"}
        sealed = subprocess.run(
            [sys.executable, "-m", "tools.reencrypt"],
            cwd=HERE,
            env=environ,
            capture_output=True,
            text=True,
        )
        assert sealed.returncode == 0, sealed.stderr
        for index in (0, 1):
            apps.restart(index, new)
        view_both()
        assert seen == [(200, True)] * len(seen) and len(seen) == 10
        assert stored("7QW2XR").connected
    assert "Traceback" not in apps.output()


@pytest.mark.parametrize("provider", ["fitbit", "google"])
def test_a_page_kept_in_one_process_shows_at_once_what_another_writer_changed(
    tmp_path, database_url, provider
):
    """The laptop's page is kept by the second process, unchanged view after view, answered
    on SQLite with no query but the database's change counter (unchanged_reads.py). Then
    another writer changes something on it: this test process leaves a message in the
    sessions, and the phone, on the first process, disconnects and then deletes the user's
    data. Each change shows on the laptop's next view, at once."""
    user = GOOGLE_ALEX if provider == "google" else "7QW2XR"
    with (
        stand_in() as server,
        app_processes(tmp_path, server, database_url, provider=provider, webhooks=True) as (
            urls,
            _,
            _,
        ),
    ):
        laptop, phone = sign_in(urls[0], user=user), Browser(urls[0])
        phone.http.cookies.update(sign_in(urls[0], user=user))

        def laptop_view():
            return requests.get(urls[1] + "/", cookies=laptop, timeout=10).text

        kept = laptop_view()
        assert laptop_view() == kept and "Hello, " in kept
        with db.connection_context():
            BrowserSession.update(flashes=json.dumps([{"text": ELSEWHERE, "link": None}])).execute()
        assert ELSEWHERE in laptop_view()
        assert "This app no longer has access" not in laptop_view()
        phone.get("/")
        assert phone.submit("/auth/revoke").status_code == 200
        assert "This app no longer has access" in laptop_view()
        assert "Your data is deleted" in phone.submit("/my-data/delete").text
        gone = laptop_view()
        assert "Hello, " not in gone and 'href="/auth"' in gone
