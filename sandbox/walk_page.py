"""The stand-ins' own page where the demo people walk, or log last night's sleep: steps
added to today, or a night put in place of the one recorded, and each app that subscribed
told of it (see StandIn.walk and StandIn.log_night in common.py). Also `python -m sandbox
walk`.

    GET, POST  /walk
    POST       /night
"""

from urllib.parse import urlencode, urlsplit

from werkzeug.routing import Rule
from werkzeug.utils import redirect

from . import recordings
from .common import OAuthError, Role, steps_on

MOST_STEPS = 100_000  # in one walk
FEWEST_HOURS, MOST_HOURS = 1, 14  # in bed, for a night logged by hand


def steps_walked(text):
    """A whole number of steps from 1 to MOST_STEPS, or None."""
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= MOST_STEPS:
        return None
    return int(text)


def hours_in_bed(text):
    """Minutes in bed from hours ("7.5"), FEWEST_HOURS to MOST_HOURS, or None."""
    try:
        hours = float(text)
    except ValueError:
        return None
    return round(hours * 60) if FEWEST_HOURS <= hours <= MOST_HOURS else None


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
    RULES = [
        Rule("/walk", endpoint="walk", methods=["GET", "POST"]),
        Rule("/night", endpoint="night", methods=["POST"]),
    ]

    def on_walk(self, request):
        if request.method == "POST":
            return self.walked(request)
        people = []
        for user_id, name in self.stand_in.people().items():
            key = self.stand_in.data_key(user_id)
            today = recordings.clock_of(key).date()  # the person's own
            walked = self.store.walks.of(key).get(today.isoformat(), 0)
            people.append((user_id, name, steps_on(key, today) + walked))
        subscribers = [
            subscriber
            for client in self.store.clients.all()
            for subscriber in self.stand_in.subscribers_of(client.client_id)
        ]
        return self.stand_in.render(
            "walk.html",
            people=people,
            subscribers=subscribers,
            walked=request.args.get("walked", "")[:200],
            most=MOST_STEPS,
            hours=(FEWEST_HOURS, MOST_HOURS),
        )

    def walked(self, request):
        user_id, people = self.person_of(request)
        steps = steps_walked(request.form.get("steps", ""))
        if steps is None:
            raise OAuthError(400, "invalid_request", f"Pick a person, and 1 to {MOST_STEPS} steps.")
        sent = self.stand_in.walk(user_id, steps)
        return self.back(request, f"{people[user_id]} walked {steps:,} steps.", sent)

    def on_night(self, request):
        user_id, people = self.person_of(request)
        minutes = hours_in_bed(request.form.get("hours", ""))
        if minutes is None:
            problem = f"Pick a person, and {FEWEST_HOURS} to {MOST_HOURS} hours in bed."
            raise OAuthError(400, "invalid_request", problem)
        sent = self.stand_in.log_night(user_id, minutes)
        said = f"{people[user_id]} logged a night of {minutes // 60} h {minutes % 60:02} min."
        return self.back(request, said, sent)

    def person_of(self, request):
        """The person a form of this page names, and everyone's names."""
        if not from_this_site(request):
            raise OAuthError(403, "invalid_request", "This form posts only from its own page.")
        user_id, people = request.form.get("person", ""), self.stand_in.people()
        if user_id not in people:
            raise OAuthError(400, "invalid_request", "Pick a person.")
        return user_id, people

    def back(self, request, said, sent):
        """Back to the walk page, saying what happened and who was told."""
        told = sum(1 for _, status in sent if status is not None and 200 <= status < 300)
        words = f"{said} Notifications sent: {len(sent)}, answered 2xx at once: {told}."
        page = request.url_root.rstrip("/") + "/walk"
        return redirect(f"{page}?{urlencode({'walked': words})}", code=303)
