"""The charts of the signed-in page: the geometry of their bars, lines, scales and labels,
worked out here so that the templates only draw them (templates/chart.html for the steps,
templates/panels/ for the rest). Each is 600 units wide, scaled to the screen.
"""

import math
from datetime import timedelta

from dialects import DAY_MINUTES

CHART_WIDTH, CHART_HEIGHT = 600, 150
# The tallest bar stops short of the top, and below the bars there is room for the dates.
CHART_HEADROOM, CHART_LABELS = 1.15, 22
STAGE_BAR_HEIGHT = 40


def round_down(value):
    """The largest of 1, 2 and 5 times a power of ten that is not above `value`: 8,123
    gives 5,000, a gridline worth labelling."""
    power = 10 ** (len(str(int(value))) - 1)
    return max(step * power for step in (1, 2, 5) if step * power <= value)


def step_chart(series):
    """Geometry of the steps chart: one bar per day, its height in proportion to the
    count, with headroom above the tallest, a scale of gridlines at round numbers, and room for the
    first and last dates below. The template only draws it."""
    if not series:
        return None
    top = max(steps for _, steps in series) or 1
    scale = CHART_HEIGHT / (top * CHART_HEADROOM)
    # Two to five gridlines: 8,123 at the top gives 2,000, 4,000, 6,000 and 8,000.
    step = round_down(max(top / 2, 1))
    grid = [step * n for n in range(1, int(top // step) + 1)]
    slot = CHART_WIDTH / len(series)
    bars = []
    for index, (day, steps) in enumerate(series):
        height = round(steps * scale, 2)
        bars.append(
            {
                "x": round(index * slot + slot * 0.1, 2),
                "y": round(CHART_HEIGHT - height, 2),
                "width": round(slot * 0.8, 2),
                "height": height,
                "day": day,
                "steps": steps,
            }
        )
    return {
        "bars": bars,
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "full_height": CHART_HEIGHT + CHART_LABELS,
        "top": top,
        "grid": [{"steps": steps, "y": round(CHART_HEIGHT - steps * scale, 2)} for steps in grid],
    }


def window(values, today, days):
    """((day, value or None), ...) for the `days` days up to `today`, from {day: value}."""
    first = today - timedelta(days=days - 1)
    return tuple(
        (first + timedelta(days=n), values.get(first + timedelta(days=n))) for n in range(days)
    )


def bar_chart(series, step=None):
    """Geometry of bars for ((day, value or None), ...): a day without a value is a gap, not
    a zero. The scale starts at zero, with gridlines every `step` (a round number, unless
    given) up to the highest value."""
    values = [value for _, value in series if value is not None]
    top = max(values, default=0) or 1
    scale = CHART_HEIGHT / (top * CHART_HEADROOM)
    step = step or round_down(max(top / 2, 1))
    slot = CHART_WIDTH / len(series)
    bars = [
        {
            "x": round(index * slot + slot * 0.15, 2),
            "y": round(CHART_HEIGHT - value * scale, 2),
            "width": round(slot * 0.7, 2),
            "height": round(value * scale, 2),
            "day": day,
            "value": value,
        }
        for index, (day, value) in enumerate(series)
        if value is not None
    ]
    grid = [step * n for n in range(1, int(top // step) + 1)]
    return {
        "bars": bars,
        "days": series,
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "full_height": CHART_HEIGHT + CHART_LABELS,
        "first_x": round(slot * 0.15, 2),
        "last_x": round(CHART_WIDTH - slot * 0.15, 2),
        "grid": [{"value": value, "y": round(CHART_HEIGHT - value * scale, 2)} for value in grid],
    }


def line_chart(series):
    """Geometry of a line for ((day, value or None), ...): a point a day, joined to the next
    day's, broken where a day has no value. The scale spans the values, from the gridline at
    or below the lowest to the one at or above the highest: every 5, or every 10 when that
    would make more than five lines (their labels must stay readable on a phone)."""
    values = [value for _, value in series if value is not None] or [0]
    for step in (5, 10, 20, 50):
        low = math.floor(min(values) / step) * step
        high = max(math.ceil(max(values) / step) * step, low + step)
        if (high - low) // step < 5:
            break
    scale = (CHART_HEIGHT - 20) / (high - low)  # room above the top line for its label
    slot = CHART_WIDTH / len(series)

    def y(value):
        return round(CHART_HEIGHT - (value - low) * scale, 2)

    points = [
        {"x": round(index * slot + slot / 2, 2), "y": y(value), "day": day, "value": value}
        for index, (day, value) in enumerate(series)
        if value is not None
    ]
    runs = []  # the days that follow one another, each run one line
    for n, point in enumerate(points):
        if n and points[n - 1]["day"] == point["day"] - timedelta(days=1):
            runs[-1].append(point)
        else:
            runs.append([point])
    return {
        "points": points,
        "lines": [" ".join(f"{p['x']},{p['y']}" for p in run) for run in runs if len(run) > 1],
        "days": series,
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "full_height": CHART_HEIGHT + CHART_LABELS,
        "first_x": round(slot / 2, 2),
        "last_x": round(CHART_WIDTH - slot / 2, 2),
        "grid": [{"value": value, "y": y(value)} for value in range(low, high + 1, step)],
    }


def stage_bar(night):
    """Geometry of one night as a bar of its stages, each as wide as its share of the time
    in bed, left to right in the order the night is told."""
    total = sum(minutes for _, minutes in night.stages) or 1
    segments, x = [], 0.0
    for level, minutes in night.stages:
        width = CHART_WIDTH * minutes / total
        segments.append(
            {
                "level": level,
                "minutes": minutes,
                "x": round(x, 2),
                "width": round(width, 2),
                "share": round(100 * minutes / total),
            }
        )
        x += width
    return {"segments": segments, "width": CHART_WIDTH, "height": STAGE_BAR_HEIGHT}


DRAWN_EVERY = 5  # a day's line is drawn from each five minutes' mean: 288 points at most
GAP_MINUTES = 20  # readings further apart than this are not joined: the tracker was off


def day_line(minutes, marks=(), resting=None):
    """Geometry of one day's heart rate: ((minute of the day, bpm), ...) as a line across
    the day, drawn from each DRAWN_EVERY minutes' mean and broken where the readings stop;
    `marks`, ((first minute, last minute, words), ...), shaded behind it (the workouts); and
    the resting rate as a dashed line. The scale spans the values and the resting rate, in
    steps of 20."""
    buckets = {}
    for minute, rate in minutes:
        buckets.setdefault(minute // DRAWN_EVERY, []).append(rate)
    means = [
        (slot * DRAWN_EVERY, sum(rates) / len(rates)) for slot, rates in sorted(buckets.items())
    ]
    values = [rate for _, rate in means] + ([resting] if resting else []) or [60]
    low = math.floor(min(values) / 20) * 20
    high = max(math.ceil(max(values) / 20) * 20, low + 20)
    scale = (CHART_HEIGHT - 20) / (high - low)

    def x(minute):
        return round(CHART_WIDTH * minute / DAY_MINUTES, 2)

    def y(value):
        return round(CHART_HEIGHT - (value - low) * scale, 2)

    runs = []
    for n, (minute, rate) in enumerate(means):
        point = f"{x(minute)},{y(rate)}"
        if n and minute - means[n - 1][0] <= GAP_MINUTES:
            runs[-1].append(point)
        else:
            runs.append([point])
    shaded = [
        {"x": x(first), "width": max(x(last) - x(first), 2), "words": words}
        for first, last, words in marks
    ]
    highest = max(means, key=lambda mean: mean[1]) if means else None
    return {
        "lines": [" ".join(run) for run in runs if len(run) > 1],
        "marks": shaded,
        "resting": {"value": resting, "y": y(resting)} if resting else None,
        "highest": {"minute": highest[0], "value": round(highest[1])} if highest else None,
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "full_height": CHART_HEIGHT + CHART_LABELS,
        "hours": [{"x": x(hour * 60), "label": f"{hour:02}:00"} for hour in (0, 6, 12, 18)],
        "grid": [{"value": value, "y": y(value)} for value in range(low, high + 1, 20)],
    }
