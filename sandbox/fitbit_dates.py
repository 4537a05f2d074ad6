"""How Fitbit's time-series paths name their days: `/date/<base>/<period>.json`, a base
date (or `today`) and a period back from it, or `/date/<start>/<end>.json`."""

import calendar
from datetime import date, timedelta

from .common import OAuthError

DAY_PERIODS = {"1d": 1, "7d": 7, "30d": 30, "1w": 7}
MONTH_PERIODS = {"1m": 1, "3m": 3, "6m": 6, "1y": 12}


def days_asked(first, second, today, periods, most):
    """The days of `/date/<first>/<second>.json`: a base date (or today) and one of
    `periods`, or a start and an end date; at most `most` days, or a 400."""
    try:
        base = today if first == "today" else date.fromisoformat(first)
        if second in periods and second in DAY_PERIODS:
            start, end = base - timedelta(days=DAY_PERIODS[second] - 1), base
        elif second in periods:
            start, end = months_before(base, MONTH_PERIODS[second]) + timedelta(days=1), base
        else:  # /date/<start>/<end>.json
            start, end = base, today if second == "today" else date.fromisoformat(second)
    except (ValueError, OverflowError):  # not a date, or a period before year 1
        raise OAuthError(400, "validation", "Invalid date or period.") from None
    if start > end or (end - start).days >= most:
        raise OAuthError(400, "validation", "Invalid date range.")
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def months_before(day, months):
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))
