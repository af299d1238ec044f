"""Date parts for the ``date`` and ``currentdate`` tests (RFC 5260 §4.2, §5).

Pure module.
"""

from __future__ import annotations

import email.utils
import re
from datetime import UTC, datetime, timedelta, timezone

_ZONE = re.compile(r"^([+-])([0-9]{2})([0-9]{2})$")


def parse_zone(text: str) -> timezone | None:
    """``+HHMM`` / ``-HHMM`` (RFC 5260 §4.1); None when malformed."""
    m = _ZONE.match(text)
    if not m or int(m.group(3)) > 59:
        return None
    minutes = int(m.group(2)) * 60 + int(m.group(3))
    return timezone(timedelta(minutes=-minutes if m.group(1) == "-" else minutes))


def header_date(value: str) -> datetime | None:
    """The date of a header field value; for ``Received:`` the part after the last ``;``."""
    if ";" in value:
        value = value.rsplit(";", 1)[1]
    try:
        d = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if d is None:
        return None
    return d if d.tzinfo is not None else d.replace(tzinfo=UTC)


def zone_text(d: datetime) -> str:
    off = d.utcoffset() or timedelta(0)
    minutes = int(off.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return f"{sign}{minutes // 60:02d}{minutes % 60:02d}"


def date_part(d: datetime, part: str) -> str:
    part = part.lower()
    if part == "year":
        return f"{d.year:04d}"
    if part == "month":
        return f"{d.month:02d}"
    if part == "day":
        return f"{d.day:02d}"
    if part == "date":
        return f"{d.year:04d}-{d.month:02d}-{d.day:02d}"
    if part == "julian":  # Modified Julian Day: days since 1858-11-17
        return str((d.date() - datetime(1858, 11, 17).date()).days)
    if part == "hour":
        return f"{d.hour:02d}"
    if part == "minute":
        return f"{d.minute:02d}"
    if part == "second":
        return f"{d.second:02d}"
    if part == "time":
        return f"{d.hour:02d}:{d.minute:02d}:{d.second:02d}"
    if part == "iso8601":
        z = zone_text(d)
        return f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}{z[:3]}:{z[3:]}"
    if part == "std11":
        return email.utils.format_datetime(d)
    if part == "zone":
        return zone_text(d)
    if part == "weekday":
        return str((d.weekday() + 1) % 7)  # 0 is Sunday
    return ""
