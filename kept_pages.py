"""The signed-in page, kept as it was drawn while nothing it shows has changed.

Drawing the page (step 7) reads every cached answer, opens and parses it, and renders five
panels; most views would draw it exactly as the view before did. So each process keeps the
page it drew for a browser, and serves it again while all of this still holds:

- the browser's session is the same (its form token, its trace, no message waiting), and
  so is its user (the same id, name, scope, connection and provider);
- the user's cached answers are the ones it was drawn from: the same paths, each fetched
  at the same moment, none marked changed by a webhook since (one query of an index, so
  that a change made in any process is seen here at once; on SQLite, not even that while
  the database says that nothing has changed: unchanged_reads.py);
- no answer it was drawn from has aged past FITBIT_CACHE_SECONDS (with 0, no page is
  kept), and the user's day has not ended in their own time zone;
- the request is addressed as the one it was drawn for was (the same Host, script name
  and scheme), so that a page is never served to a request that would have been refused.

A page drawn with a note (a budget spent, a shape not understood, a scope left unticked)
or a message is not kept: it says something about the moment. Nothing is shared between
browsers: a page is found by its browser's session key, and holds that browser's form
token.

A kept page is served at the door (at_the_door()), before the request is parsed, routed
and dispatched: that work was a third of a kept view's time (docs/performance.md).
"""

import threading
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import unchanged_reads
from database import connection_when_needed
from models import ANSWER_STAMPS, ApiCache, BrowserSession, db

# Pages kept per process; past this, all are dropped and drawn again as they are asked for.
MOST_PAGES = 1024
# What of a WSGI environ says where a request was sent: the page's links are drawn from it.
ADDRESS = ("HTTP_HOST", "SERVER_NAME", "SERVER_PORT", "SCRIPT_NAME", "wsgi.url_scheme")


class Kept(NamedTuple):
    holds: tuple  # what the page was drawn from (see holding()), compared on every view
    good_until: datetime  # when an answer it shows ages, or the user's day ends
    body: bytes  # the page as it is sent


class KeptPages:
    def __init__(self, cache_seconds):
        self.max_age = timedelta(seconds=cache_seconds)
        self.pages = {}  # {session key: Kept}
        self.lock = threading.Lock()

    def at_the_door(self, environ, sessions):
        """The page kept for the browser of this WSGI environ, as it is sent, if it asks for
        the signed-in page (a GET of /) and everything the page shows still holds; otherwise
        None, and the request is served in full. Nothing here is written."""
        if environ.get("REQUEST_METHOD") != "GET" or environ.get("PATH_INFO") != "/":
            return None
        if not self.pages:
            return None  # none kept in this process (yet, or with FITBIT_CACHE_SECONDS=0)
        key = sessions.key_in(environ)
        if key is None:
            return None  # no session: no connection taken for it
        try:
            # The session and the stamps, read as of one moment.
            with connection_when_needed(), unchanged_reads.one_moment(db.connection()):
                browser = BrowserSession.find(key)
                if browser is None or browser.user is None:
                    return None
                return self.view(browser, browser.user, environ).kept
        except Exception:
            return None  # a busy database, say: served in full, which says what went wrong

    def view(self, browser, user, environ):
        """A view of the signed-in page: what it is drawn from, read before anything else,
        and the page kept for this browser if all of that still holds (View.kept)."""
        address = tuple(environ.get(name) for name in ADDRESS)
        return View(self, browser, user, address, ANSWER_STAMPS.tuples(user.id))


class View:
    def __init__(self, pages, browser, user, address, stamps):
        self.pages, self.browser, self.user = pages, browser, user
        self.address, self.stamps = address, stamps
        kept = pages.pages.get(browser.key)
        fresh = kept is not None and datetime.now(UTC) < kept.good_until
        self.kept = kept.body if fresh and kept.holds == self.holding() else None

    def holding(self):
        """What a kept page depends on, as it is read on every view."""
        browser, user = self.browser, self.user
        session = (browser.key, browser.csrf_token, browser.trace, browser.flashes)
        person = (user.id, user.display_name, user.scope, user.connected, user.provider)
        return self.address, session, person, self.stamps

    def keep(self, html, day_ends, flashes, notes):
        """Keep `html`, just drawn, unless it said something of its moment (a message or a
        note), or what it was drawn from changed meanwhile (this view fetched an answer, or
        another did): until `day_ends` or its first answer ages, whichever comes first."""
        if flashes or notes or ANSWER_STAMPS.tuples(self.user.id) != self.stamps:
            return
        read = self.user.paths_read()
        moments = [
            (ApiCache.fetched_at.python_value(at), ApiCache.changed_at.python_value(changed))
            for path, at, changed in self.stamps
            if path in read
        ]
        if any(changed is not None and changed > at for at, changed in moments):
            return  # a change still to fetch: the next view must look
        good_until = min([day_ends, *(at + self.pages.max_age for at, _ in moments)])
        if good_until <= datetime.now(UTC):
            return  # drawn from an answer already too old to show again
        kept, pages = Kept(self.holding(), good_until, html.encode()), self.pages
        with pages.lock:
            if len(pages.pages) >= MOST_PAGES:
                pages.pages.clear()
            pages.pages[self.browser.key] = kept
