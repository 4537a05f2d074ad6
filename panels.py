"""The signed-in page's panels, one for each kind of data (dialects.DataKind.panel): what
each is called, what it would show and why the app asks for it only then, and the figures
its template (templates/panels/<panel>.html) draws from what a dialect read. The same in
both dialects.
"""

from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import NamedTuple

from chart import bar_chart, day_line, line_chart, stage_bar, step_chart, window
from dialects import DAY_MINUTES, WORKOUT_DAYS

SLEEP_NIGHTS = 14  # the nights the sleep panel's chart shows, this morning the last
HEART_RATE_DAYS = 30


class Panel(NamedTuple):
    title: str  # its heading
    words: str  # the data, in words: "your sleep"
    button: str  # what asks the provider for it
    why: str  # what it would show, and why it needs the user's consent, before it is granted
    figures: Callable  # (what was read, today, {beside: what was read}) -> what it draws
    # What it says when the provider keeps this data from the app, whatever the user allows.
    not_given: str = "The provider does not let this app read this."


def steps_figures(series, today, beside):
    """((day, steps), ...), oldest first, a day for each day of the month."""
    return {"chart": step_chart(series), "steps_today": series[-1][1] if series else None}


def sleep_figures(nights, today, beside):
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


def heart_rate_figures(rates, today, beside):
    """((day, beats per minute), ...), oldest first, only days with a value."""
    days = window(dict(rates), today, HEART_RATE_DAYS)
    return {
        "rate_today": days[-1][1],
        "latest": rates[-1] if rates else None,
        "chart": line_chart(days) if rates else None,
    }


def heart_rate_today_figures(day, today, beside):
    """A dialects.HeartDay, with the day's workouts (beside it, as Workouts) marked on its
    line, and the resting rate: the day's own, or today's from the resting heart rate."""
    workouts = beside.get("workouts")
    marks, midnight = [], datetime.combine(today, time())
    for workout in workouts.sessions if workouts else ():
        start, end = workout.start, workout.start + timedelta(minutes=workout.minutes)
        if end <= midnight or start.date() > today:
            continue
        first = max(int((start - midnight).total_seconds() // 60), 0)
        last = min(int((end - midnight).total_seconds() // 60), DAY_MINUTES)
        marks.append((first, last, f"{workout.kind}, {start:%H:%M} for {workout.minutes} min"))
    resting = day.resting
    rates = beside.get("heart_rate")
    if resting is None and rates and rates[-1][0] == today:
        resting = rates[-1][1]
    return {
        "chart": day_line(day.minutes, marks, resting) if day.minutes else None,
        "resting": resting,
        "workouts_today": len(marks),
        "latest": day.minutes[-1] if day.minutes else None,
    }


def workouts_figures(workouts, today, beside):
    """A dialects.Workouts, newest first, with the days of the window and how many fell in
    the last week."""
    sessions = tuple(reversed(workouts.sessions))
    week = today - timedelta(days=6)
    return {
        "sessions": sessions,
        "this_week": sum(1 for session in sessions if session.start.date() >= week),
        "first_day": today - timedelta(days=WORKOUT_DAYS - 1),  # as the dialects ask
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
    "workouts": Panel(
        "Workouts",
        "your workouts",
        "Show my workouts",
        "Your walks, runs and rides of the last two weeks. They are read with the same "
        "consent as your steps, your activity, so the app asks nothing more to show them.",
        workouts_figures,
    ),
    "heart_rate": Panel(
        "Resting heart rate",
        "your heart rate",
        "Show my heart rate",
        "Today's resting heart rate and the last 30 days. Like your sleep, it is asked for "
        "only when you want to see it.",
        heart_rate_figures,
    ),
    "heart_rate_today": Panel(
        "Heart rate today",
        "your heart rate",
        "Show my heart rate",
        "Your heart rate through today, with your workouts marked on it. It is read with the "
        "same consent as your resting heart rate: one button asks for both.",
        heart_rate_today_figures,
        "The provider gives this app your resting heart rate, but not your heart rate "
        "through the day: Fitbit gives that only to apps it has approved for it.",
    ),
}
