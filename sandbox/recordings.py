"""What the demo people's trackers recorded, beside their steps (common.steps_on): their
nights, with stages, their resting heart rate, their heart rate through the day, and their
workouts. Both stand-ins answer from here, each in its provider's shape, so that a person's
data is the same at Fitbit and at Google.

Everything is made up from the person's id and the date, so every read gives the same
answer: nights of 5 to 9 hours in bed, stages in the shares a sleep lab would find, now and
then a nap, a night the tracker could not stage, or a night it was not worn; a resting
heart rate between 50 and 75 that drifts slowly, with a few days of too little wear; a
heart rate that is low asleep, rises on waking and peaks in each workout; and three to five
workouts a week (walks, runs, rides). A night logged on the walk page (store/webhooks.py)
replaces the one made up for that morning.

Each person lives in a time zone of their own (ZONES), and their tracker keeps their own
clock: every time here is on it, as a naive datetime, and each stand-in says where that
clock stands against UTC as its provider does.
"""

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# Where each person lives, by the Fitbit id their data is kept under: far apart, so that a
# day begins at a different moment for each.
ZONES = {
    "7QW2XR": "America/Los_Angeles",  # Alex
    "9KD3MS": "Pacific/Auckland",  # Sam
    "hu-2a7c5e9f04": "Europe/London",  # Robin, who never had a Fitbit: by the Health user id
    "hu-c6b81d3e72": "Asia/Singapore",  # Casey
}

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


# --- Their clocks -----------------------------------------------------------------------------


def zone_of(person):
    return ZoneInfo(ZONES.get(person, "UTC"))


def clock_of(person, moment=None):
    """What the person's own clock says at `moment` (now, unless given), as a naive time."""
    moment = moment or datetime.now(UTC)
    return moment.astimezone(zone_of(person)).replace(tzinfo=None)


def physical(person, local):
    """The moment, in UTC, when the person's clock said `local`."""
    return local.replace(tzinfo=zone_of(person)).astimezone(UTC)


def offset_of(person, local):
    """How far the person's clock was ahead of UTC when it said `local`."""
    return local.replace(tzinfo=zone_of(person)).utcoffset()


# --- Workouts ---------------------------------------------------------------------------------

# Each kind: (its name, speed in km/h, steps a minute, calories a minute, average heart rate).
KINDS = {
    "walk": ("Walk", 5.2, 110, 5, (98, 112)),
    "run": ("Run", 10.5, 165, 11, (138, 158)),
    "ride": ("Bike", 21.0, 0, 8, (122, 142)),
}
MINUTES = {"walk": (30, 70), "run": (25, 55), "ride": (45, 100)}


@dataclass(frozen=True)
class Workout:
    """One exercise session, on the person's clock."""

    log_id: int
    kind: str  # "walk", "run" or "ride"
    start: datetime
    minutes: int
    average_heart_rate: int

    @property
    def end(self):
        return self.start + timedelta(minutes=self.minutes)

    @property
    def name(self):
        return KINDS[self.kind][0]

    @property
    def distance_km(self):
        return round(KINDS[self.kind][1] * self.minutes / 60, 2)

    @property
    def steps(self):
        return KINDS[self.kind][2] * self.minutes

    @property
    def calories(self):
        return KINDS[self.kind][3] * self.minutes


def workout_days(person, day):
    """Whether the person works out on `day`: three to five days of each ISO week."""
    year, week, weekday = day.isocalendar()
    seed = seeded(person, "week", year, week)
    count = 3 + seed % 3
    chosen = sorted(range(1, 8), key=lambda n: seeded(person, "weekday", year, week, n))[:count]
    return weekday in chosen


def workout_on(person, day):
    """The person's workout on `day`, or None: a walk, a run or a ride, some time between
    half past six in the morning and eight at night."""
    if not workout_days(person, day):
        return None
    seed = seeded(person, "workout", day.isoformat())
    kind = ("walk", "run", "ride")[seed % 3]
    low, high = MINUTES[kind]
    minutes = low + (seed >> 4) % (high - low)
    start = datetime.combine(day, time(6, 30)) + timedelta(minutes=(seed >> 12) % 810)
    if (seed >> 24) % 8 == 0:  # now and then, late: half past eleven at night
        start = datetime.combine(day, time(23, 30))
        minutes = min(minutes, 25)
    low_rate, high_rate = KINDS[kind][4]
    rate = low_rate + (seed >> 32) % (high_rate - low_rate)
    return Workout(seed % 10**10, kind, start, minutes, rate)


def workouts_of(person, first, last, now):
    """The person's workouts that began on `first` to `last` (dates) and were over by `now`
    (all on their clock), oldest first."""
    found, day = [], first
    while day <= last:
        workout = workout_on(person, day)
        if workout is not None and workout.end <= now:
            found.append(workout)
        day += timedelta(days=1)
    return found


def workout_steps(person, day, now):
    """The steps of the person's workouts on `day` that were over by `now`."""
    workout = workout_on(person, day)
    return workout.steps if workout is not None and workout.end <= now else 0


# --- Heart rate through the day ---------------------------------------------------------------


class Day:
    """What shapes one day of the person's heart rate: their resting rate, the night that
    ended that morning, and the workouts that touch it. Worked out once per day, so that a
    day of samples costs little more than their arithmetic."""

    def __init__(self, person, day):
        self.day = day
        self.resting = resting_rate(person, day, day) or 60
        self.night = made_up_night(person, day)
        candidates = (workout_on(person, day), workout_on(person, day - timedelta(days=1)))
        self.workouts = [workout for workout in candidates if workout is not None]
        self.seed = seeded(person, "pulse", day.isoformat())

    def rate(self, moment):
        """The heart rate at `moment`, or None when the tracker was not worn (a night it
        was not, up to eight in the morning)."""
        if self.night is None and moment.time() < time(8):
            return None
        second = moment.hour * 3600 + moment.minute * 60 + moment.second
        wiggle = (second * 2654435761 + self.seed) % 7 - 3
        for workout in self.workouts:
            if workout.start <= moment < workout.end:
                through = (moment - workout.start) / (workout.end - workout.start)
                lift = math.sin(math.pi * through)  # up to its peak halfway, and down again
                peak = workout.average_heart_rate - self.resting + 8
                return round(self.resting + 10 + peak * lift) + wiggle
        if self.night is not None and self.night.start <= moment < self.night.end:
            return self.resting - 4 + wiggle // 2
        if moment.time() >= time(23) or moment.time() < time(7):
            return self.resting + 2 + wiggle // 2
        return self.resting + 14 + (self.seed >> (moment.hour % 48)) % 10 + wiggle


def heart_rate_at(person, moment):
    """The person's heart rate at `moment` on their clock, in beats per minute; None when
    the tracker was not worn. Low asleep, up on waking, at its peak halfway through a
    workout."""
    return Day(person, moment.date()).rate(moment)


def samples(person, first, before, every):
    """[(moment, bpm)] of the person's heart rate from `first` to `before` (their clock),
    one each `every`, leaving out the moments it was not worn."""
    found, moment, days = [], first, {}
    while moment < before:
        day = days.get(moment.date()) or days.setdefault(moment.date(), Day(person, moment.date()))
        rate = day.rate(moment)
        if rate is not None:
            found.append((moment, rate))
        moment += every
    return found
