"""The chart of a month of steps: the geometry of its bars, its scale and its labels, worked
out here so that the template only draws them (templates/chart.html).
"""

CHART_WIDTH, CHART_HEIGHT = 600, 150
# The tallest bar stops short of the top, and below the bars there is room for the dates.
CHART_HEADROOM, CHART_LABELS = 1.15, 22


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


# --- The application -------------------------------------------------------------------
