"""What the demo people's trackers recorded, beside their steps (common.steps_on): their
nights, with stages, and their resting heart rate. Both stand-ins answer from here, each in
its provider's shape, so that a person's data is the same at Fitbit and at Google.

Everything is made up from the person's id and the date, so every read gives the same
answer: nights of 5 to 9 hours in bed, stages in the shares a sleep lab would find, now and
then a nap, a night the tracker could not stage, or a night it was not worn; and a resting
heart rate between 50 and 75 that drifts slowly, with a few days of too little wear. The
people's clock is UTC. A night logged on the walk page (store/webhooks.py) replaces the one
made up for that morning.
"""

import hashlib
import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

# The shares of a night in bed, each a range (the rest is light sleep).
DEEP, REM, WAKE = (0.12, 0.20), (0.18, 0.25), (0.06, 0.12)
CYCLE_MINUTES = 90


def seeded(*parts):
    """A repeatable number for these parts: the same person and day, the same night."""
    text = ":".join(str(part) for part in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8])


def share(seed, bounds):
    low, high = bounds
    return low + (seed % 1000) / 1000 * (high - low)


@dataclass(frozen=True)
class Stage:
    start: datetime
    end: datetime
    level: str  # "deep", "light", "rem", "wake"; or "asleep", "wake" for an unstaged night

    @property
    def minutes(self):
        return int((self.end - self.start).total_seconds() // 60)


@dataclass(frozen=True)
class Night:
    """One sleep: the main one of a night, or a nap. `day` is the date it ended on."""

    day: date
    stages: tuple  # Stage, ..., in order, from going to bed to getting up
    main: bool = True
    staged: bool = True
    logged: bool = False  # entered by hand, not detected

    @property
    def start(self):
        return self.stages[0].start

    @property
    def end(self):
        return self.stages[-1].end

    @property
    def in_bed(self):
        return int((self.end - self.start).total_seconds() // 60)

    @property
    def falling_asleep(self):
        """Minutes awake in bed before the first sleep."""
        return self.stages[0].minutes if self.stages[0].level == "wake" else 0

    @property
    def awake(self):
        return sum(stage.minutes for stage in self.stages if stage.level == "wake")

    @property
    def asleep(self):
        return self.in_bed - self.awake

    def minutes_of(self, level):
        return sum(stage.minutes for stage in self.stages if stage.level == level)

    def count_of(self, level):
        return sum(1 for stage in self.stages if stage.level == level)

    def levels(self):
        """The levels this night is told in, in the order a provider lists them."""
        return ("deep", "light", "rem", "wake") if self.staged else ("asleep", "wake")


def cycles(start, minutes, seed, staged):
    """The stages of `minutes` in bed from `start`: a few minutes awake, then cycles of about
    90 minutes (light, deep, light, REM), with a moment awake between some of them."""
    deep, rem, wake = (
        share(seed >> shift, bounds) for shift, bounds in ((0, DEEP), (12, REM), (24, WAKE))
    )
    falling_asleep = 5 + seed % 15
    count = max(1, round((minutes - falling_asleep) / CYCLE_MINUTES))
    cycle = (minutes - falling_asleep) / count
    # Each cycle: light, deep (more of it early in the night), light, REM (more of it late),
    # and the wake share spread over the cycles.
    plan = [("wake", falling_asleep)]
    for n in range(count):
        early = (count - n) / count
        deep_part = cycle * deep * 2 * early / (1 + 1 / count)
        rem_part = cycle * rem * 2 * (1 - early + 1 / count) / (1 + 1 / count)
        wake_part = max(cycle * wake - (falling_asleep / count), 0)
        light_part = cycle - deep_part - rem_part - wake_part
        plan += [
            ("light", light_part / 2),
            ("deep", deep_part),
            ("light", light_part / 2),
            ("rem", rem_part),
            ("wake", wake_part),
        ]
    stages, moment, elapsed = [], start, 0.0
    for level, length in plan:
        elapsed += length
        end = start + timedelta(minutes=round(elapsed))
        if end <= moment:
            continue
        if not staged:
            level = "wake" if level == "wake" else "asleep"
        if stages and stages[-1].level == level:
            moment = stages.pop().start
        stages.append(Stage(moment, end, level))
        moment = end
    return tuple(stages)


def made_up_night(person, day):
    """The main sleep that ended on the morning of `day`, or None for a night not worn."""
    seed = seeded(person, "night", day.isoformat())
    if seed % 12 == 0:
        return None
    bedtime = datetime.combine(day - timedelta(days=1), time(22, 0)) + timedelta(
        minutes=(seed >> 8) % 150
    )
    minutes = 300 + (seed >> 16) % 240  # 5 to 9 hours in bed
    staged = (seed >> 32) % 9 != 0
    return Night(day, cycles(bedtime, minutes, seed >> 40, staged), staged=staged)


def made_up_nap(person, day):
    """An afternoon nap on one day in seven: too short to stage."""
    seed = seeded(person, "nap", day.isoformat())
    if seed % 7:
        return None
    start = datetime.combine(day, time(13, 30)) + timedelta(minutes=seed % 60)
    stages = cycles(start, 25 + (seed >> 8) % 40, seed >> 16, staged=False)
    return Night(day, stages, main=False, staged=False)


def logged_night(day, minutes):
    """A night entered by hand: `minutes` in bed, ending at 07:00 on `day`."""
    end = datetime.combine(day, time(7, 0))
    seed = seeded("logged", day.isoformat(), minutes)
    return Night(day, cycles(end - timedelta(minutes=minutes), minutes, seed, True), logged=True)


def nights_of(person, first, last, now, logged):
    """The person's sleeps that ended from `first` to `last` (dates) and before `now`,
    oldest first; `logged` is {ISO date: minutes in bed} of nights entered by hand."""
    found, day = [], first
    while day <= last:
        night = (
            logged_night(day, logged[day.isoformat()])
            if day.isoformat() in logged
            else made_up_night(person, day)
        )
        found += [sleep for sleep in (night, made_up_nap(person, day)) if sleep is not None]
        day += timedelta(days=1)
    return [sleep for sleep in found if sleep.end <= now]


def resting_rate(person, day, today):
    """The person's resting heart rate on `day`, in beats per minute, or None: a day of too
    little wear, or one still to come. Today's is known once it has begun."""
    if day > today:
        return None
    seed = seeded(person, "heart", day.isoformat())
    if seed % 10 == 0:
        return None
    base = 52 + seeded(person, "heart") % 12
    drift = 5 * math.sin(day.toordinal() / 9)  # a slow swing over weeks
    return max(50, min(75, round(base + drift + (seed >> 8) % 5 - 2)))
