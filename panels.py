"""The signed-in page's panels, one for each kind of data (dialects.DataKind.panel): what
each is called, what it would show and why the app asks for it only then, and the figures
its template (templates/panels/<panel>.html) draws from what a dialect read. The same in
both dialects.
"""

from collections.abc import Callable
from typing import NamedTuple

from chart import bar_chart, line_chart, stage_bar, step_chart, window

SLEEP_NIGHTS = 14  # the nights the sleep panel's chart shows, this morning the last
HEART_RATE_DAYS = 30


class Panel(NamedTuple):
    title: str  # its heading
    words: str  # the data, in words: "your sleep"
    button: str  # what asks the provider for it
    why: str  # what it would show, and why it needs the user's consent, before it is granted
    figures: Callable  # (what was read, today) -> what the template draws


def steps_figures(series, today):
    """((day, steps), ...), oldest first, a day for each day of the month."""
    return {"chart": step_chart(series), "steps_today": series[-1][1] if series else None}


def sleep_figures(nights, today):
    """(dialects.Night, ...), oldest first: the last one, and the hours asleep of each of
    the last two weeks' mornings (a night not recorded is a gap)."""
    hours = {night.day: round(night.asleep / 60, 1) for night in nights}
    last = nights[-1] if nights else None
    return {
        "last": last,
        "bar": stage_bar(last) if last else None,
        "nights": bar_chart(window(hours, today, SLEEP_NIGHTS), step=2),
        "asleep": {night.day: night.asleep for night in nights},
    }


def heart_rate_figures(rates, today):
    """((day, beats per minute), ...), oldest first, only days with a value."""
    days = window(dict(rates), today, HEART_RATE_DAYS)
    return {
        "rate_today": days[-1][1],
        "latest": rates[-1] if rates else None,
        "chart": line_chart(days) if rates else None,
    }


PANELS = {
    "steps": Panel(
        "Steps",
        "your steps",
        "Show my steps",
        "Your steps of each day of the last month, as a chart. The app needs your consent to "
        "read your activity.",
        steps_figures,
    ),
    "sleep": Panel(
        "Sleep",
        "your sleep",
        "Show my sleep",
        "Last night's sleep, its stages, and two weeks of nights. Your sleep is yours to "
        "share: the app asks for it only now, when you want to see it, and reads nothing you "
        "have not chosen to show.",
        sleep_figures,
    ),
    "heart_rate": Panel(
        "Resting heart rate",
        "your heart rate",
        "Show my heart rate",
        "Today's resting heart rate and the last 30 days. Like your sleep, it is asked for "
        "only when you want to see it.",
        heart_rate_figures,
    ),
}
