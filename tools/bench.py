"""`make bench`: what a page of this app costs, next to a bare Werkzeug "hello" app.

Both run under the same server with the same options: gunicorn, 2 sync workers, on this
machine's loopback. (Sync workers take a connection per request, so the load is shared
evenly; a keep-alive connection stays with the worker that took it, and wrk's 16 of them
can end up on one worker.) The app runs in sandbox mode with
1,000 users in its database, one of them signed in through the stand-in. Each page is
loaded by wrk (Debian's package) when it is installed, or else by the small threaded client
below, and the results are printed as a table. Nothing here is a test: the figures depend
on the machine, and only their ratios to "hello" travel. All the servers stay up together,
and each page is loaded in short slices, each just after a slice of hello: a page's ratio is
taken against the hello right before it, so that the machine's drift (a shared machine can
lose or gain a third of its speed from one ten seconds to the next) cancels out. The table
gives the median of the rounds, and their spread; hello's own row, against the hello before
it, is the bench's own noise.

The signed-in page is measured beside its Flask peer too (tools/flask_peer.py): the same
page from the same database, as a Flask app usually serves it. With --profile, it ends with
where the signed-in page's time goes, by cProfile.

    python -m tools.bench [--seconds 1] [--rounds 7] [--connections 16] [--profile]
"""

import argparse
import io
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote_plus

import requests
from werkzeug.wrappers import Request, Response

import encryption
import middleware

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the project
SYNC = ["--worker-class", "sync"]
SEEDED_USERS = 1000
HELLO = "bare Werkzeug hello"
SIGNED_IN = "/ signed in, five panels, cached"
PEER = "the same page, Flask peer"
CONSTANT = "its bytes and headers, constant"


def pages_to_measure(cookies):
    """(name, path, session cookie) of each page that is measured: the signed-in page of a
    user who asked for every panel (sleep and heart rate; the workouts come with the steps,
    and the heart rate through the day with the resting rate), and of one who has the steps
    and workouts alone."""
    return [
        (SIGNED_IN, "/", cookies[0]),
        ("/ signed in, steps alone, cached", "/", cookies[1]),
        ("/ signed out", "/", None),
        (f"/users ({SEEDED_USERS} users, first page)", "/users", None),
    ]


@Request.application
def hello(request):
    """The baseline: the least a Werkzeug app can do per request."""
    return Response("Hello")


@Request.application
def constant(request):
    """The signed-in page's own bytes and headers, as they were last served (the file
    named by BENCH_PAGE), with no work at all: what the page's size costs by itself."""
    if not hasattr(constant, "page"):
        with open(os.environ["BENCH_PAGE"], "rb") as saved:
            constant.page = saved.read()
    return Response(constant.page, mimetype="text/html", headers=middleware.SECURITY_HEADERS)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def gunicorn(app, env, workers, log_path, options=SYNC, port=None):
    """gunicorn serving `app` (on a free port unless told); yields (base URL, seconds from
    start to the first answer)."""
    port = port or free_port()
    command = [sys.executable, "-m", "gunicorn", "--workers", str(workers), *options]
    command += ["--bind", f"127.0.0.1:{port}", app]
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "a") as log:
        started = time.monotonic()
        # The sign-in comes back to the address the browser uses, so its cookie follows.
        env = {**env, "PORT": str(port), "FITBIT_REDIRECT_URI": f"{url}/auth/callback"}
        server = subprocess.Popen(command, cwd=HERE, env=env, stdout=log, stderr=log)
        try:
            while True:
                try:
                    requests.get(url + "/", timeout=5)
                    break
                except (requests.ConnectionError, requests.Timeout):  # still starting
                    if server.poll() is not None or time.monotonic() - started > 30:
                        raise SystemExit(f"{app} did not start; see {log_path}") from None
                    time.sleep(0.01)
            yield url, time.monotonic() - started
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(20)


def sign_in(url, panels=("sleep", "heart_rate"), person="7QW2XR"):
    """Sign in as one of the stand-in's people (Alex), as a browser would, then ask for each
    of `panels` as the signed-in page's buttons do; returns the session cookie."""
    browser = requests.Session()
    page = allow(browser, browser.get(url + "/auth", timeout=10), person)
    if "steps today" not in page.text:
        raise SystemExit("The sign-in through the stand-in failed.")
    for panel in panels:
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        asked = browser.post(url + "/auth/more", data={"csrf_token": token, "panel": panel})
        page = allow(browser, asked, person)
        if "now lets this app see" not in page.text:
            raise SystemExit(f"The consent round for {panel} failed.")
    return browser.cookies["session"]


def allow(browser, consent, person):
    """Allow everything the stand-in's consent page offers, as `person`."""
    request_id = re.search(r'name="request_id" value="([^"]+)"', consent.text).group(1)
    offered = re.findall(r'name="scope" value="([^"]+)"', consent.text)
    form = {"request_id": request_id, "user_id": person, "decision": "allow", "scope": offered}
    return browser.post(consent.url.split("?")[0], data=form, timeout=10)


def seed_users(database_url, count):
    """`count` more users, connected, as if they had signed in over the past months."""
    import database
    import models

    database.open_database(database_url)
    later = datetime.now(UTC) + timedelta(hours=8)
    rows = [
        {
            "fitbit_id": f"SEED{n:04}",
            "display_name": f"Person {n}",
            "access_token": f"seed-access-{n}",
            "refresh_token": f"seed-refresh-{n}",
            "expires_at": later,
            "scope": "activity profile",
        }
        for n in range(count)
    ]
    with models.db.connection_context(), models.db.atomic():
        for start in range(0, count, 100):
            models.User.insert_many(rows[start : start + 100]).execute()


# --- Load generators ----------------------------------------------------------------------


def wrk(url, cookie, seconds, connections):
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if cookie:
        command[1:1] = ["-H", f"Cookie: session={cookie}"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"{url}: {errors.group(1)} answers were errors")

    def percentile(label):
        value, unit = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    return rate, percentile("50"), percentile("99")


def threaded_client(url, cookie, seconds, connections):
    """The fallback without wrk: `connections` threads, each with its own keep-alive
    connection, for `seconds`."""
    latencies, lock = [], threading.Lock()
    deadline = time.monotonic() + seconds

    def run():
        session = requests.Session()
        if cookie:
            session.cookies.set("session", cookie)
        mine = []
        while time.monotonic() < deadline:
            start = time.perf_counter()
            if session.get(url, timeout=10).status_code != 200:
                raise SystemExit(f"{url} answered an error")
            mine.append((time.perf_counter() - start) * 1000)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=run) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cuts = statistics.quantiles(latencies, n=100)
    return len(latencies) / seconds, cuts[49], cuts[98]


# --- The measurements -----------------------------------------------------------------------


def api_calls(stand_in_database):
    """API calls the stand-in has counted so far, for every user and hour."""
    connection = sqlite3.connect(stand_in_database)
    try:
        return connection.execute("SELECT coalesce(sum(count), 0) FROM calls").fetchone()[0]
    finally:
        connection.close()


def token_posts_per_expiry(env, work, requests_at_once=40, workers=4):
    """Expire a signed-in user's token, send `requests_at_once` page views at the same
    moment to `workers` workers, and count the refreshes the app logged. The stand-in runs
    as a server of its own here (`python -m sandbox`), as Fitbit would: mounted in the
    app's own server, its answers would queue for the same workers as the pages."""
    app_port, fitbit_port = free_port(), free_port()
    fitbit = f"http://127.0.0.1:{fitbit_port}"
    env = {
        **env,
        "DATABASE_URL": f"sqlite:///{work}/expiry.db",
        "SANDBOX_DATABASE": f"{work}/expiry-stand-in.db",
        "FITBIT_CLIENT_ID": "BENCH1",
        "FITBIT_CLIENT_SECRET": "bench-client-secret",
        "FITBIT_REDIRECT_URI": f"http://127.0.0.1:{app_port}/auth/callback",
        "FITBIT_AUTHORIZE_URL": f"{fitbit}/oauth2/authorize",
        "FITBIT_TOKEN_URL": f"{fitbit}/oauth2/token",
        "FITBIT_REVOKE_URL": f"{fitbit}/oauth2/revoke",
        "FITBIT_API_URL": fitbit,
        "FITBIT_CACHE_SECONDS": "0",  # every view calls the API, so each one needs the token
        # Real credentials (the stand-in runs on its own) need a key for the tokens.
        "TOKEN_ENCRYPTION_KEYS": encryption.new_key_text(),
    }
    command = [sys.executable, "-m", "sandbox", "--host", "127.0.0.1", "--port", str(fitbit_port)]
    log_path = f"{work}/expiry.log"
    with open(f"{work}/expiry-stand-in.log", "w") as log:
        stand_in = subprocess.Popen(command, cwd=HERE, env=env, stdout=log, stderr=log)
    app = "fitbit_oauth_app:app_from_env()"
    try:
        wait_for(f"{fitbit}/oauth2/authorize")
        with gunicorn(app, env, workers, log_path, port=app_port) as (url, _):
            cookie = sign_in(url, panels=())
            expire_the_token(env["DATABASE_URL"], env["TOKEN_ENCRYPTION_KEYS"])
            before = open(log_path).read().count("tokens refreshed")
            statuses = views_at_once(url, cookie, requests_at_once)
    finally:
        stand_in.terminate()
        stand_in.wait(10)
    refreshes = open(log_path).read().count("tokens refreshed") - before
    return refreshes, statuses.count(200)


def wait_for(url, seconds=20):
    """Until something answers at `url` (any status): a server just started."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            requests.get(url, timeout=1)
            return
        except (requests.ConnectionError, requests.Timeout):
            if time.monotonic() > deadline:
                raise SystemExit(f"Nothing answered at {url}.") from None
            time.sleep(0.05)


def expire_the_token(database_url, keys):
    """Alex's access token, made a minute past its expiry."""
    import database
    import models

    database.open_database(database_url, encryption.parse_keys(keys))
    with models.db.connection_context():
        past = datetime.now(UTC) - timedelta(minutes=1)
        alex = models.User.fitbit_id == "7QW2XR"
        models.User.update(expires_at=past).where(alex).execute()


def views_at_once(url, cookie, count):
    """The status of each of `count` views of the signed-in page sent at the same moment."""
    barrier, statuses = threading.Barrier(count), []

    def view():
        barrier.wait()
        answer = requests.get(url + "/", cookies={"session": cookie}, timeout=60)
        statuses.append(answer.status_code)

    threads = [threading.Thread(target=view) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def calls_per_views(url, cookie, stand_in_database, views):
    """The API calls that `views` views of the signed-in page make, one after another."""
    before = api_calls(stand_in_database)
    browser = requests.Session()
    browser.cookies.set("session", cookie)
    for _ in range(views):
        browser.get(url + "/", timeout=10)
    return api_calls(stand_in_database) - before


def walk_to_webhook(url, cookie, stand_in_database, walks=20):
    """Webhooks: the median milliseconds of `walks` walks at the stand-in's page, each one
    answered only once the app has answered the signed notification with its 204 (after
    one uncounted walk, which makes the handshake); and the API calls of the one view after
    each walk."""
    walk, form = url + "/sandbox/walk", {"person": "7QW2XR", "steps": "100"}
    requests.post(walk, data=form, timeout=30)
    calls_per_views(url, cookie, stand_in_database, 1)
    times, calls = [], []
    for _ in range(walks):
        started = time.perf_counter()
        answer = requests.post(walk, data=form, allow_redirects=False, timeout=30)
        times.append(time.perf_counter() - started)
        if "answered 2xx at once: 1" not in unquote_plus(answer.headers.get("Location", "")):
            raise SystemExit("The app did not answer the stand-in's notification with a 2xx.")
        calls.append(calls_per_views(url, cookie, stand_in_database, 1))
    return statistics.median(times) * 1000, calls


def in_process(env, url):
    """The app and its Flask peer as gunicorn would call them, in this process, on the
    database of the servers above (once they have gone): {name: WSGI app}."""
    import fitbit_oauth_app
    from settings import config_from_env
    from tools import flask_peer

    port = int(url.rsplit(":", 1)[1])
    app_env = {**env, "PORT": str(port), "FITBIT_REDIRECT_URI": f"{url}/auth/callback"}
    config = config_from_env(app_env, port)
    return {"app": fitbit_oauth_app.create_app(config), "peer": flask_peer.create(config)}


def view(app, url, path, cookie):
    """One request of `path` to `app`, in process: the CPU seconds it took, and its body."""
    from werkzeug.test import EnvironBuilder

    headers = {"Cookie": f"session={cookie}"} if cookie else {}
    environ = EnvironBuilder(path=path, base_url=url, headers=headers).get_environ()
    started = time.process_time()
    body = b"".join(app(environ, lambda status, headers, exc_info=None: None))
    return time.process_time() - started, body


def cpu_per_request(apps, url, pages, batches=10, count=300):
    """The CPU milliseconds each page costs, measured in this process: the pages take
    turns, `batches` times `count` requests each, and each page's figure is the median of
    its batches, so that a moment when the machine was busy elsewhere moves no figure.
    `pages` are (name, path, cookie, which of `apps`)."""

    def spent(app, path, cookie, count):
        total = 0.0
        for _ in range(count):
            seconds, body = view(app, url, path, cookie)
            total += seconds
        # The signed-in page must really be one: a lapsed cookie would measure the other.
        assert cookie is None or b"Hello, " in body, path
        return total / count * 1000

    for _, path, cookie, which in pages:
        spent(apps[which], path, cookie, 100)  # every cache warmed up, uncounted
    costs = {name: [] for name, *_ in pages}
    for _ in range(batches):
        for name, path, cookie, which in pages:
            costs[name].append(spent(apps[which], path, cookie, count))
    return {name: statistics.median(figures) for name, figures in costs.items()}


def profile(app, url, cookie, views=2000, lines=15):
    """Where the signed-in page's time goes: `views` views of it under cProfile, in process,
    as text: the project's own functions by the time spent in them and in what they call,
    then the functions of any module that spent the most in themselves. (cProfile adds a
    cost to every call it counts, so code of many small calls looks dearer than it is.)"""
    import cProfile
    import pstats

    from werkzeug.test import EnvironBuilder

    for _ in range(100):
        assert b"Hello, " in view(app, url, "/", cookie)[1]  # every cache warmed up
    headers = {"Cookie": f"session={cookie}"}
    environ = EnvironBuilder(path="/", base_url=url, headers=headers).get_environ()
    environs = [dict(environ) for _ in range(views)]  # built before, and not profiled

    def start_response(status, headers, exc_info=None):
        pass

    profiler = cProfile.Profile()
    profiler.enable()
    for each in environs:
        b"".join(app(each, start_response))
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    own = "|".join(name[:-3] for name in sorted(os.listdir(HERE)) if name.endswith(".py"))
    stats.sort_stats("cumulative").print_stats(rf"^({own})\.py", lines)
    stats.sort_stats("tottime").print_stats(lines)
    return out.getvalue()


def arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=1, help="per slice (default 1)")
    parser.add_argument("--rounds", type=int, default=7, help="of every page (default 7)")
    parser.add_argument("--connections", type=int, default=16, help="at once (default 16)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument(
        "--profile", action="store_true", help="and where the signed-in page's time goes"
    )
    return parser.parse_args(argv)


def in_slices(args, load, hello, pages):
    """Every page of `pages` ((name, URL, cookie), hello among them) loaded `args.rounds`
    times, each time a slice just after a slice of hello: [{name: measure()}, ...]."""

    def measure(url, cookie):
        """A slice of hello, then one of the page: the page's requests/s, p50 and p99, and
        its requests/s against that hello's."""
        before = load(hello + "/", None, args.seconds, args.connections)[0]
        rate, p50, p99 = load(url, cookie, args.seconds, args.connections)
        return rate, p50, p99, rate / before

    for _, page, who in pages:  # not counted: every worker booted, every cache warm
        load(page, who, 2, args.connections)
    return [{name: measure(page, who) for name, page, who in pages} for _ in range(args.rounds)]


def main(argv=None):
    args = arguments(argv)
    load = wrk if shutil.which("wrk") else threaded_client
    generator = "wrk" if load is wrk else "the built-in threaded client (no wrk found)"

    work = tempfile.mkdtemp(prefix="fitbit-bench-")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("FITBIT_", "SECRET_KEY"))},
        "DATABASE_URL": f"sqlite:///{work}/app.db",
        "SANDBOX_DATABASE": f"{work}/stand-in.db",
        "FITBIT_CACHE_SECONDS": "3600",  # the signed-in page is measured with cached data
    }

    app, peer = "fitbit_oauth_app:app_from_env()", "tools.flask_peer:app_from_env()"
    with (
        gunicorn("tools.bench:hello", env, args.workers, f"{work}/hello.log") as (
            hello,
            hello_start,
        ),
        gunicorn(app, env, args.workers, f"{work}/app.log") as (url, app_start),
    ):
        cookies = sign_in(url), sign_in(url, panels=(), person="9KD3MS")
        cookie = cookies[0]
        seed_users(env["DATABASE_URL"], SEEDED_USERS - 2)
        calls_per_100 = calls_per_views(url, cookie, env["SANDBOX_DATABASE"], 100)
        # The peer serves the page the app has just shown, from the same database.
        with open(f"{work}/page.html", "wb") as saved:
            saved.write(requests.get(url, cookies={"session": cookie}, timeout=10).content)
        fixed = {**env, "BENCH_PAGE": f"{work}/page.html"}
        with (
            gunicorn(peer, env, args.workers, f"{work}/peer.log") as (peer_url, _),
            gunicorn("tools.bench:constant", fixed, args.workers, f"{work}/constant.log") as (
                constant_url,
                _,
            ),
        ):
            pages = [(name, url + path, who) for name, path, who in pages_to_measure(cookies)]
            pages.insert(0, (HELLO, hello + "/", None))
            pages.insert(2, (CONSTANT, constant_url + "/", None))
            pages.insert(3, (PEER, peer_url + "/", cookie))
            rounds = in_slices(args, load, hello, pages)
        walk_ms, calls_per_change = walk_to_webhook(url, cookie, env["SANDBOX_DATABASE"])
    apps = in_process(env, url)
    measured = [(*page, "app") for page in pages_to_measure(cookies)]
    measured.insert(1, (PEER, "/", cookie, "peer"))
    cpu = cpu_per_request(apps, url, measured)
    profiled = profile(apps["app"], url, cookie) if args.profile else None
    refreshes, answered = token_posts_per_expiry(env, work)  # on a database of its own

    report(args, generator, rounds, cpu)
    measured_once = calls_per_100, walk_ms, calls_per_change, refreshes, answered
    report_the_rest(rounds, cpu, measured_once, (app_start, hello_start))
    if profiled is not None:
        print(f"\nWhere 2000 views of the signed-in page spend their time, in process:\n{profiled}")


def report_the_rest(rounds, cpu, measured_once, starts):
    """The lines under the table: against the peer, the calls, webhooks, refreshes, starts."""
    calls_per_100, walk_ms, calls_per_change, refreshes, answered = measured_once
    against_peer = [run[SIGNED_IN][3] / run[PEER][3] for run in rounds]
    print(
        f"- the signed-in page against the Flask peer's: {statistics.median(against_peer):.2f}"
        f" times its requests/s ({min(against_peer):.2f}–{max(against_peer):.2f}),"
        f" {cpu[PEER] / cpu[SIGNED_IN]:.2f} times less CPU"
    )
    print(f"- Fitbit API calls per 100 signed-in page views: {calls_per_100}")
    print(
        f"- webhooks: a walk at the stand-in to the app's 204, median of 20: {walk_ms:.1f} ms;"
        f" API calls of the view after each: {sorted(set(calls_per_change))}"
    )
    print(
        f"- token POSTs for one expiry, 40 requests at once on 4 workers: {refreshes}"
        f" ({answered} of 40 pages answered 200)"
    )
    print(f"- process start to first answer: app {starts[0]:.2f} s, hello {starts[1]:.2f} s")


def report(args, generator, rounds, cpu):
    """The table of pages, each against the slice of hello just before it, and the CPU each
    costs in process: the median of the rounds, and the lowest and highest ratio."""
    print(f"\ngunicorn --workers {args.workers} {' '.join(SYNC)}; load: {generator},")
    print(
        f"{args.connections} connections, {args.rounds} rounds of a {args.seconds} s slice of"
        f" each page after one of hello; {os.cpu_count()} cores\n"
    )
    print("| page | requests/s | p50 ms | p99 ms | of hello | range | CPU ms per request |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in rounds[0]:
        rate, p50, p99 = (statistics.median(run[name][n] for run in rounds) for n in range(3))
        ratios = [run[name][3] for run in rounds]
        spread = f"{min(ratios):.2f}–{max(ratios):.2f}"
        spent = f"{cpu[name]:.3f}" if name in cpu else ""
        print(
            f"| {name} | {rate:,.0f} | {p50:.2f} | {p99:.2f} | {statistics.median(ratios):.2f} "
            f"| {spread} | {spent} |"
        )
    print()


if __name__ == "__main__":
    main()
