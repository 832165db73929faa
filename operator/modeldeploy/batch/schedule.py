"""spec.schedule: when the next run of a scheduled BatchPrediction is due, as a CronJob
reads its schedule (five fields, or @hourly, @daily, ...; spec.timeZone an IANA name).
https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#schedule-syntax
"""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, croniter

# A CronJob's macros; croniter knows most, not all of them under these names.
_MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
           "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
# At most this many missed times are walked through to find the last one (as CronJob, which
# gives up after 100 missed schedules).
MAX_MISSED = 100


def problem(schedule: str, zone: str | None) -> str | None:
    """Why the schedule cannot be used, or None."""
    expression = _MACROS.get(schedule.strip(), schedule.strip())
    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        return f"{schedule!r} is not a cron schedule (five fields: minute hour day-of-month month day-of-week, or @hourly, @daily, ...)"
    if zone:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            return f"{zone!r} is not an IANA time zone (e.g. Europe/Berlin)"
    return None


def _iterator(schedule: str, zone: str | None, after: float) -> croniter:
    tz = ZoneInfo(zone) if zone else timezone.utc
    try:
        return croniter(_MACROS.get(schedule.strip(), schedule.strip()), datetime.fromtimestamp(after, tz))
    except CroniterBadCronError as err:  # problem() refused it first
        raise ValueError(str(err)) from None


def next_time(schedule: str, zone: str | None, after: float) -> float:
    """The first schedule time strictly after ``after`` (epoch seconds)."""
    return float(_iterator(schedule, zone, after).get_next(float))


def due(schedule: str, zone: str | None, last: float, now: float) -> float | None:
    """The latest schedule time in (last, now], or None when none is due: missed times
    before it are not run (a run for each would only pile up)."""
    it = _iterator(schedule, zone, last)
    found = None
    for _ in range(MAX_MISSED):
        candidate = float(it.get_next(float))
        if candidate > now:
            break
        found = candidate
    else:
        found = float(_iterator(schedule, zone, now).get_prev(float))
    return found
