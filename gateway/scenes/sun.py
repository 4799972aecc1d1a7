"""Sunrise and sunset, computed locally (no network, no dependency) for sun-relative scene triggers.

The algorithm is NOAA's (the one behind its Solar Calculator, after Meeus, *Astronomical Algorithms*):
solar declination and equation of time from the Julian century, then the hour angle at which the sun's
upper limb touches a sea-level horizon under standard refraction. NOAA gives it as accurate to about a
minute within ±72° of latitude, which is far better than a "30 minutes after sunset" trigger needs.
We implement it (about 60 lines) rather than depend on ``astral``: astral 3.2 is the same algorithm,
costs ~20-35 ms of import and ~2.5 MB of RSS on a Pi-class budget, raises in polar day/night where we
want ``None``, and ties its day to the time zone asked for (in UTC it gives Sydney a sunrise *after*
that day's sunset); ours is pure arithmetic on UTC and the location.

"The day" of :func:`sun_times` is the *local solar date* at the location: the events around the
solar noon that falls on that calendar date in local mean time. So Sydney's sunrise on 22 December is
at about 18:41 UTC on the 21st, and Los Angeles' sunset on 1 July at about 03:08 UTC on the 2nd, just
as a local almanac lists them, whatever time zone the gateway runs in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

__all__ = ["SunEvent", "SunTimes", "next_sun_event", "sun_times"]

SunEvent = Literal["sunrise", "sunset"]

# Zenith of the sun's centre at sunrise/sunset: 90° plus 34' of standard refraction at the horizon
# plus 16' for the sun's semi-diameter (sunrise is when the upper limb appears).
_ZENITH_DEG = 90.833
_COS_ZENITH = math.cos(math.radians(_ZENITH_DEG))
# Julian date of the Unix epoch, and of J2000.0 (the epoch of NOAA's series).
_JD_UNIX_EPOCH = 2440587.5
_JD_J2000 = 2451545.0
# Each refinement recomputes declination and equation of time at the previous estimate; the estimate
# moves by minutes on the first pass and by well under a second by the third.
_REFINEMENTS = 3
# How far next_sun_event looks ahead: beyond it, in polar day or night, the caller asks again later.
_LOOKAHEAD = timedelta(days=2)
# Keeps cos(latitude) away from zero at the poles (the hour-angle formula divides by it);
# 1e-6 degrees is about 10 cm of latitude.
_MAX_ABS_LATITUDE = 90.0 - 1e-6


@dataclass(frozen=True, slots=True)
class SunTimes:
    """Sunrise and sunset of one day, as aware UTC datetimes; ``None`` where the event does not occur
    (polar day or polar night, or the first/last day of one, when only one of the two happens)."""

    sunrise: datetime | None
    sunset: datetime | None


def _check_location(latitude: float, longitude: float) -> None:
    if not -90.0 <= latitude <= 90.0:  # also rejects NaN
        raise ValueError(f"latitude must be within -90..90 degrees, not {latitude!r}")
    if not -180.0 <= longitude <= 180.0:
        raise ValueError(f"longitude must be within -180..180 degrees, not {longitude!r}")


def _declination_and_equation_of_time(epoch_s: float) -> tuple[float, float]:
    """Solar declination (radians) and equation of time (minutes) at ``epoch_s``."""
    t = (epoch_s / 86400.0 + _JD_UNIX_EPOCH - _JD_J2000) / 36525.0  # Julian centuries since J2000.0
    mean_longitude = math.radians((280.46646 + t * (36000.76983 + t * 0.0003032)) % 360.0)
    mean_anomaly = math.radians(357.52911 + t * (35999.05029 - 0.0001537 * t))
    eccentricity = 0.016708634 - t * (0.000042037 + 0.0000001267 * t)
    equation_of_centre = (
        math.sin(mean_anomaly) * (1.914602 - t * (0.004817 + 0.000014 * t))
        + math.sin(2 * mean_anomaly) * (0.019993 - 0.000101 * t)
        + math.sin(3 * mean_anomaly) * 0.000289
    )
    omega = math.radians(125.04 - 1934.136 * t)
    apparent_longitude = math.radians(
        math.degrees(mean_longitude) + equation_of_centre - 0.00569 - 0.00478 * math.sin(omega)
    )
    mean_obliquity = 23.0 + (26.0 + (21.448 - t * (46.815 + t * (0.00059 - t * 0.001813))) / 60.0) / 60.0
    obliquity = math.radians(mean_obliquity + 0.00256 * math.cos(omega))
    declination = math.asin(math.sin(obliquity) * math.sin(apparent_longitude))
    y = math.tan(obliquity / 2.0) ** 2
    equation_of_time = 4.0 * math.degrees(
        y * math.sin(2 * mean_longitude)
        - 2 * eccentricity * math.sin(mean_anomaly)
        + 4 * eccentricity * y * math.sin(mean_anomaly) * math.cos(2 * mean_longitude)
        - 0.5 * y * y * math.sin(4 * mean_longitude)
        - 1.25 * eccentricity * eccentricity * math.sin(2 * mean_anomaly)
    )
    return declination, equation_of_time


def _event_epoch(day: date, latitude: float, longitude: float, rising: bool) -> float | None:
    """Epoch seconds of the sunrise (``rising``) or sunset of ``day``, or None if it does not happen."""
    midnight_utc = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
    lat = math.radians(max(-_MAX_ABS_LATITUDE, min(_MAX_ABS_LATITUDE, latitude)))
    # First estimate: local mean noon (4 minutes of time per degree of longitude).
    minutes = 720.0 - 4.0 * longitude
    for _ in range(_REFINEMENTS):
        declination, equation_of_time = _declination_and_equation_of_time(midnight_utc + minutes * 60.0)
        cos_hour_angle = (_COS_ZENITH - math.sin(lat) * math.sin(declination)) / (math.cos(lat) * math.cos(declination))
        if not -1.0 <= cos_hour_angle <= 1.0:
            return None  # >1: the sun stays below the horizon (polar night); <-1: above (polar day)
        hour_angle_deg = math.degrees(math.acos(cos_hour_angle))
        solar_noon = 720.0 - 4.0 * longitude - equation_of_time
        minutes = solar_noon - 4.0 * hour_angle_deg if rising else solar_noon + 4.0 * hour_angle_deg
    return midnight_utc + minutes * 60.0


def _as_datetime(epoch_s: float | None) -> datetime | None:
    if epoch_s is None:
        return None
    # Whole seconds: the algorithm is good to a minute, and round numbers keep traces and replays tidy.
    return datetime.fromtimestamp(round(epoch_s), UTC)


def sun_times(day: date, latitude: float, longitude: float) -> SunTimes:
    """Sunrise and sunset at (``latitude``, ``longitude``) degrees (north and east positive) on ``day``.

    ``day`` is the local solar date (see the module docstring); the results are aware UTC datetimes,
    ``None`` when the event does not occur that day. Raises ValueError only for an impossible location.
    """
    _check_location(latitude, longitude)
    return SunTimes(
        sunrise=_as_datetime(_event_epoch(day, latitude, longitude, rising=True)),
        sunset=_as_datetime(_event_epoch(day, latitude, longitude, rising=False)),
    )


def next_sun_event(
    after: datetime, event: SunEvent, offset_s: float, latitude: float, longitude: float
) -> datetime | None:
    """The first ``event`` + ``offset_s`` seconds strictly after ``after``, as an aware UTC datetime.

    Looks at most two days ahead of ``after``; returns None when there is no such event in that span
    (polar day or night), and the caller asks again later (e.g. at the end of that span).
    ``after`` must be aware (a naive datetime is ambiguous and raises ValueError); ``offset_s`` may be
    negative ("30 minutes before sunset").
    """
    if after.tzinfo is None or after.utcoffset() is None:
        raise ValueError("next_sun_event needs an aware datetime")
    if event not in ("sunrise", "sunset"):
        raise ValueError(f"event must be 'sunrise' or 'sunset', not {event!r}")
    if not math.isfinite(offset_s):
        raise ValueError(f"offset_s must be finite, not {offset_s!r}")
    _check_location(latitude, longitude)
    after_utc = after.astimezone(UTC)
    horizon = after_utc + _LOOKAHEAD
    offset = timedelta(seconds=offset_s)
    # The local solar date of `after`, widened by a day each side (events sit up to ~half a day from
    # local noon) and by however many days the offset spans.
    solar_date = (after_utc + timedelta(seconds=240.0 * longitude)).date()
    spread_days = math.ceil(abs(offset_s) / 86400.0)
    first = solar_date - timedelta(days=1 + spread_days)
    last = solar_date + timedelta(days=_LOOKAHEAD.days + 1 + spread_days)
    rising = event == "sunrise"
    day = first
    while day <= last:
        at = _as_datetime(_event_epoch(day, latitude, longitude, rising))
        if at is not None:
            candidate = at + offset
            if candidate > horizon:
                return None  # events only get later from here
            if candidate > after_utc:
                return candidate
        day += timedelta(days=1)
    return None
