"""dataPoints.list, as the Google stand-in serves it for any data type: its filter (AIP-160)
and its pages (AIP-158).

A filter is clauses joined by AND, each a field of the data type, >= or <, and a quoted
value: a moment with its zone (`"2026-11-14T00:00:00Z"`), a moment on the user's clock
(`"2026-11-14T00:00:00"`), or a date (`"2026-11-14"`), as the field takes. The user's clock
is their own (recordings.ZONES): a moment with its zone is read onto it.
"""

import base64
import json
import re
from datetime import UTC, date, datetime

from . import recordings
from .google_status import ApiError

CLAUSE = re.compile(r'([a-z_.]{1,80})\s*(>=|<)\s*"([0-9T:.Z+-]{10,40})"')
LARGEST_PAGE = 10000


def bad_filter(message):
    return ApiError(400, "INVALID_ARGUMENT", message, reason="INVALID_DATA_POINT_FILTER")


def clauses(text, fields, person):
    """[(field, operator, value), ...] of a filter whose fields are among `fields`, {name:
    "zoned", "civil" or "date"}: each value read as its field takes it, a moment as a naive
    datetime on the clock of `person` (whose data key it is), a date as a date."""
    found = []
    for clause in filter(None, (part.strip() for part in text.split(" AND "))):
        matched = CLAUSE.fullmatch(clause)
        if matched is None or matched.group(1) not in fields:
            raise bad_filter(f"Unsupported filter: {clause[:80]}")
        field, operator, literal = matched.groups()
        value = value_of(field, fields[field], literal)
        if fields[field] == "zoned":
            value = recordings.clock_of(person, value.replace(tzinfo=UTC))
        found.append((field, operator, value))
    return found


def value_of(field, kind, literal):
    try:
        if kind == "date":
            return date.fromisoformat(literal)
        moment = datetime.fromisoformat(literal)
    except ValueError:
        raise bad_filter(f"Invalid time in filter: {literal}") from None
    if (kind == "zoned") != (moment.tzinfo is not None):
        raise bad_filter(f"{field.rsplit('.', 1)[-1]} takes a {kind} time")
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def merged_bounds(found):
    """(from, before) of clauses that all bound the same thing, each None when unbound."""
    bounds = {">=": None, "<": None}
    for _, operator, value in found:
        bounds[operator] = value
    return bounds[">="], bounds["<"]


def page(request, points, default_size):
    """One page of `points` as dataPoints.list answers it: pageSize of them (larger sizes cut
    down), from where pageToken left off, with a nextPageToken while more are left."""
    text = request.args.get("filter", "")
    size = request.args.get("pageSize", "")
    if size and not (size.isascii() and size.isdigit()):
        raise ApiError(400, "INVALID_ARGUMENT", "pageSize must be a whole number.")
    size = min(int(size or 0) or default_size, LARGEST_PAGE)
    token = request.args.get("pageToken", "")
    offset = page_offset(token, text) if token else 0
    answer = {"dataPoints": points[offset : offset + size]}
    if offset + size < len(points):
        answer["nextPageToken"] = page_token(offset + size, text)
    return answer


def page_token(offset, text):
    return base64.urlsafe_b64encode(json.dumps([offset, text]).encode()).decode()


def page_offset(token, text):
    """Where a page token left off, for the same filter only (AIP-158)."""
    try:
        offset, sent = json.loads(base64.urlsafe_b64decode(token.encode()))
        if sent != text or not isinstance(offset, int) or offset < 0:
            raise ValueError(token)
        return offset
    except (ValueError, TypeError, UnicodeError):
        raise ApiError(400, "INVALID_ARGUMENT", "Invalid page token.") from None
