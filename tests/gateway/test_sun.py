"""gateway.scenes.sun: sunrise/sunset against published times, polar day/night, offsets, day boundaries."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from gateway.scenes.sun import SunTimes, next_sun_event, sun_times

TOLERANCE = timedelta(minutes=2)

LONDON = (51.5074, -0.1278)
NEW_YORK = (40.7128, -74.0060)
SYDNEY = (-33.8688, 151.2093)
OSLO = (59.9139, 10.7522)
LOS_ANGELES = (34.0522, -118.2437)
TROMSO = (69.6492, 18.9553)
MCMURDO = (-77.8500, 166.6667)
CUPERTINO = (37 + 24 / 60, -(121 + 55 / 60))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# Published times, converted from the local time they were given in to UTC.
PUBLISHED = [
    # CBS New York, "Winter solstice 2023": sunrise 7:16 a.m., sunset 4:31 p.m. EST (UTC-5).
    pytest.param(date(2023, 12, 21), NEW_YORK, utc(2023, 12, 21, 12, 16), utc(2023, 12, 21, 21, 31), id="new-york"),
    # 10play / The Project, 2023-12-22: Sydney sunrise 5.41am, sunset 8.06pm AEDT (UTC+11). The sunrise
    # of the local 22nd is on the 21st in UTC: the "day" is the local solar date.
    pytest.param(date(2023, 12, 22), SYDNEY, utc(2023, 12, 21, 18, 41), utc(2023, 12, 22, 9, 6), id="sydney"),
    # timeanddate.com (cited in a public test suite): Oslo 2010-12-24 09:19 / 15:13 CET (UTC+1).
    pytest.param(date(2010, 12, 24), OSLO, utc(2010, 12, 24, 8, 19), utc(2010, 12, 24, 14, 13), id="oslo"),
    # diamondgeezer (London, Houses of Parliament 51.5N 0.125W), 2025-06-21: 04:42:38 / 21:22:06 BST (UTC+1).
    pytest.param(
        date(2025, 6, 21), (51.5, -0.125), utc(2025, 6, 21, 3, 42, 38), utc(2025, 6, 21, 20, 22, 6), id="london"
    ),
    # LA Times 1995-06-22 (Griffith Observatory): solstice sunrise 5:42 a.m., sunset 8:08 p.m. PDT (UTC-7);
    # the sunset of local 21 June is on the 22nd in UTC.
    pytest.param(date(1995, 6, 21), LOS_ANGELES, utc(1995, 6, 21, 12, 42), utc(1995, 6, 22, 3, 8), id="los-angeles"),
    # U.S. Naval Observatory table for W121 55, N37 24 (Cupertino), 2008, zone 8h west (PST).
    pytest.param(date(2008, 1, 1), CUPERTINO, utc(2008, 1, 1, 15, 22), utc(2008, 1, 2, 1, 0), id="usno-january"),
    pytest.param(date(2008, 6, 1), CUPERTINO, utc(2008, 6, 1, 12, 48), utc(2008, 6, 2, 3, 23), id="usno-june"),
]


@pytest.mark.parametrize(("day", "location", "sunrise", "sunset"), PUBLISHED)
def test_matches_published_times(day: date, location: tuple[float, float], sunrise: datetime, sunset: datetime) -> None:
    times = sun_times(day, *location)
    assert times.sunrise is not None and times.sunset is not None
    assert abs(times.sunrise - sunrise) <= TOLERANCE, times.sunrise
    assert abs(times.sunset - sunset) <= TOLERANCE, times.sunset


def test_results_are_aware_utc_whole_seconds() -> None:
    times = sun_times(date(2024, 3, 20), *LONDON)
    for at in (times.sunrise, times.sunset):
        assert at is not None
        assert at.tzinfo is UTC
        assert at.microsecond == 0


@pytest.mark.parametrize(
    ("day", "location"),
    [
        # Polar night in Tromsø: 25 Nov - 17 Jan (Lonely Planet); midnight sun 20 May - 22 Jul.
        pytest.param(date(2024, 12, 21), TROMSO, id="tromso-polar-night"),
        pytest.param(date(2024, 1, 10), TROMSO, id="tromso-polar-night-january"),
        pytest.param(date(2024, 6, 21), TROMSO, id="tromso-midnight-sun"),
        pytest.param(date(2024, 6, 21), MCMURDO, id="antarctic-winter"),
        pytest.param(date(2024, 12, 21), MCMURDO, id="antarctic-summer"),
        pytest.param(date(2024, 6, 21), (90.0, 0.0), id="north-pole"),
        pytest.param(date(2024, 6, 21), (-90.0, 0.0), id="south-pole"),
    ],
)
def test_polar_day_and_night_give_none(day: date, location: tuple[float, float]) -> None:
    assert sun_times(day, *location) == SunTimes(sunrise=None, sunset=None)


def test_sun_returns_to_tromso_in_late_january() -> None:
    # "On January 21, the inhabitants of Tromsø celebrate the day of the sun" (visitnorway.com).
    times = sun_times(date(2024, 1, 21), *TROMSO)
    assert times.sunrise is not None and times.sunset is not None
    assert timedelta(minutes=30) < times.sunset - times.sunrise < timedelta(hours=4)


@pytest.mark.parametrize("location", [LONDON, SYDNEY, LOS_ANGELES, TROMSO, MCMURDO, (0.0, 180.0), (0.0, -180.0)])
def test_events_sit_around_local_solar_noon_of_the_day(location: tuple[float, float]) -> None:
    latitude, longitude = location
    day = date(2024, 1, 1)
    for _ in range(0, 366, 7):
        times = sun_times(day, latitude, longitude)
        local_noon = datetime(day.year, day.month, day.day, 12, tzinfo=UTC) - timedelta(hours=longitude / 15)
        for at in (times.sunrise, times.sunset):
            if at is not None:
                assert abs(at - local_noon) < timedelta(hours=12, minutes=20), (day, at)
        if times.sunrise is not None and times.sunset is not None:
            assert times.sunrise < times.sunset
        day += timedelta(days=7)


@pytest.mark.parametrize(("latitude", "longitude"), [(91.0, 0.0), (-90.5, 0.0), (0.0, 180.5), (float("nan"), 0.0)])
def test_impossible_location_raises(latitude: float, longitude: float) -> None:
    with pytest.raises(ValueError, match="itude"):
        sun_times(date(2024, 1, 1), latitude, longitude)


# ------------------------------------------------------------------ next_sun_event


def test_next_sunrise_later_today_then_tomorrow() -> None:
    today = sun_times(date(2024, 6, 21), *LONDON).sunrise
    tomorrow = sun_times(date(2024, 6, 22), *LONDON).sunrise
    assert today is not None and tomorrow is not None
    assert next_sun_event(utc(2024, 6, 21, 0, 0), "sunrise", 0, *LONDON) == today
    # Strictly after: at the very moment of sunrise, the next one is tomorrow's.
    assert next_sun_event(today, "sunrise", 0, *LONDON) == tomorrow
    assert next_sun_event(today - timedelta(seconds=1), "sunrise", 0, *LONDON) == today


def test_negative_offset_already_passed_moves_to_tomorrow() -> None:
    sunset_today = sun_times(date(2024, 6, 21), *LONDON).sunset
    sunset_tomorrow = sun_times(date(2024, 6, 22), *LONDON).sunset
    assert sunset_today is not None and sunset_tomorrow is not None
    half_hour = timedelta(minutes=30)
    before = sunset_today - half_hour - timedelta(minutes=1)
    assert next_sun_event(before, "sunset", -1800, *LONDON) == sunset_today - half_hour
    # 20:00 UTC is after today's "sunset - 30 min" (19:51) though before the sunset itself.
    assert next_sun_event(utc(2024, 6, 21, 20, 0), "sunset", -1800, *LONDON) == sunset_tomorrow - half_hour


def test_positive_offset_crossing_midnight_utc() -> None:
    # LA's sunset of local 1 July is at ~03:08 UTC on the 2nd; +2 h lands at ~05:08 UTC.
    sunset = sun_times(date(2024, 7, 1), *LOS_ANGELES).sunset
    assert sunset is not None
    assert next_sun_event(utc(2024, 7, 1, 20, 0), "sunset", 7200, *LOS_ANGELES) == sunset + timedelta(hours=2)


def test_sunrise_on_the_previous_utc_day_is_found() -> None:
    # Sydney's sunrise of local 22 December is at ~18:41 UTC on the 21st.
    sunrise = sun_times(date(2023, 12, 22), *SYDNEY).sunrise
    assert sunrise is not None and sunrise.date() == date(2023, 12, 21)
    assert next_sun_event(utc(2023, 12, 21, 12, 0), "sunrise", 0, *SYDNEY) == sunrise


def test_offset_larger_than_a_day() -> None:
    sunrise = sun_times(date(2024, 3, 1), *LONDON).sunrise
    assert sunrise is not None
    assert next_sun_event(utc(2024, 3, 1, 12, 0), "sunrise", 86400 + 60, *LONDON) == sunrise + timedelta(
        days=1, seconds=60
    )


def test_aware_non_utc_input_gives_the_same_instant() -> None:
    tokyo = timezone(timedelta(hours=9))
    at_utc = next_sun_event(utc(2024, 6, 21, 0, 0), "sunset", 0, *LONDON)
    at_tokyo = next_sun_event(datetime(2024, 6, 21, 9, 0, tzinfo=tokyo), "sunset", 0, *LONDON)
    assert at_utc == at_tokyo
    assert at_tokyo is not None and at_tokyo.tzinfo is UTC


def test_polar_night_and_day_give_none() -> None:
    assert next_sun_event(utc(2024, 12, 10, 12, 0), "sunrise", 0, *TROMSO) is None
    assert next_sun_event(utc(2024, 6, 21, 12, 0), "sunset", 0, *TROMSO) is None


def test_lookahead_is_two_days() -> None:
    first = sun_times(date(2024, 1, 15), *TROMSO).sunrise
    assert first is not None and sun_times(date(2024, 1, 14), *TROMSO).sunrise is None
    # From two days before, the first sunrise after the polar night is found...
    assert next_sun_event(first - timedelta(days=1, hours=23), "sunrise", 0, *TROMSO) == first
    # ...from just over two days before it is out of reach: None, and the caller asks again later.
    assert next_sun_event(first - timedelta(days=2, minutes=1), "sunrise", 0, *TROMSO) is None
    assert next_sun_event(first - timedelta(days=4), "sunrise", 0, *TROMSO) is None


def test_naive_datetime_and_bad_event_are_rejected() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_sun_event(datetime(2024, 1, 1, 12, 0), "sunrise", 0, *LONDON)
    with pytest.raises(ValueError, match="event"):
        next_sun_event(utc(2024, 1, 1), "noon", 0, *LONDON)  # type: ignore[arg-type]
