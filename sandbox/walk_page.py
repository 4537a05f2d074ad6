"""The stand-ins' own page where the demo people walk: steps added to today, and each app
that subscribed told of it (see StandIn.walk in common.py). Also `python -m sandbox walk`.

    GET, POST  /walk
"""

from urllib.parse import urlencode, urlsplit

from werkzeug.routing import Rule
from werkzeug.utils import redirect

from .common import OAuthError, Role, now, steps_on

MOST_STEPS = 100_000  # in one walk


def steps_walked(text):
    """A whole number of steps from 1 to MOST_STEPS, or None."""
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= MOST_STEPS:
        return None
    return int(text)


def from_this_site(request):
    """Only this page's own form may make someone walk, not a page elsewhere. Browsers say
    where a request comes from in Sec-Fetch-Site; with this page's no-referrer policy their
    Origin is "null", so it counts only when it names a site."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("Origin", "null")
    return origin == "null" or urlsplit(origin).netloc == request.host


class WalkPage(Role):
    RULES = [Rule("/walk", endpoint="walk", methods=["GET", "POST"])]

    def on_walk(self, request):
        if request.method == "POST":
            return self.walked(request)
        today = now().date()
        people = []
        for user_id, name in self.stand_in.people().items():
            key = self.stand_in.data_key(user_id)
            walked = self.store.walks.of(key).get(today.isoformat(), 0)
            people.append((user_id, name, steps_on(key, today, today) + walked))
        subscribers = [
            subscriber
            for client in self.store.clients.all()
            if (subscriber := self.store.subscribers.get(client.client_id)) is not None
        ]
        return self.stand_in.render(
            "walk.html",
            people=people,
            subscribers=subscribers,
            walked=request.args.get("walked", "")[:200],
            most=MOST_STEPS,
        )

    def walked(self, request):
        if not from_this_site(request):
            raise OAuthError(403, "invalid_request", "This form posts only from its own page.")
        user_id = request.form.get("person", "")
        people = self.stand_in.people()
        steps = steps_walked(request.form.get("steps", ""))
        if user_id not in people or steps is None:
            raise OAuthError(400, "invalid_request", f"Pick a person, and 1 to {MOST_STEPS} steps.")
        sent = self.stand_in.walk(user_id, steps)
        told = sum(1 for _, status in sent if status is not None and 200 <= status < 300)
        words = (
            f"{people[user_id]} walked {steps:,} steps. Notifications sent: {len(sent)}, "
            f"answered 2xx at once: {told}."
        )
        return redirect(f"{request.base_url}?{urlencode({'walked': words})}", code=303)
