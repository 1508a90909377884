"""ISO weeks (``2026-W49``): the unit of QA review, so that every week's sample, review and report line up."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


class BadWeek(ValueError):
    """A week that is not ``YYYY-Www``; the message shows the form expected."""


def parse_week(text: str) -> tuple[date, date]:
    """The Monday and the Sunday of ISO week ``text`` (``2026-W49``)."""
    match = _WEEK.match(text.strip())
    if not match:
        raise BadWeek(f"week {text!r} is not an ISO week: write it as YYYY-Www, e.g. 2026-W49")
    try:
        monday = date.fromisocalendar(int(match[1]), int(match[2]), 1)
    except ValueError as error:
        raise BadWeek(f"week {text!r} does not exist ({error})") from error
    return monday, monday + timedelta(days=6)


def week_of(day: date | datetime) -> str:
    """The ISO week a day (or a moment) falls in."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def previous_week(week: str) -> str:
    """The ISO week before ``week``."""
    monday, _ = parse_week(week)
    return week_of(monday - timedelta(days=7))


def in_week(started_at: str, week: str) -> bool:
    """Whether an ISO timestamp (a call's ``started_at``) falls in ``week``."""
    return week_of(datetime.fromisoformat(started_at)) == week
