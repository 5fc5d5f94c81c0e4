"""Fires recurring runs while the control plane runs: KFP's ScheduledWorkflow controller, in-process.

A recurring run (a row of `recurring_runs`) has a trigger, KFP's Trigger message: a cron expression
with the seconds field first (robfig/cron, e.g. `*/10 * * * * *` or `0 0 * * * *`), or a periodic
interval in seconds, each with an optional start and end time. `ScheduleRunner` is one thread that
sleeps until the earliest next fire time of any enabled schedule, or until the API wakes it after a
change, fires what is due through the run controller, and goes back to sleep. There is no polling
loop: besides fire times it only wakes after `MAX_SLEEP_S` (a safety net), and every
`BLOCKED_RECHECK_S` while a schedule waits for a free concurrency slot.

Semantics follow KFP's ScheduledWorkflow (backend/src/crd/controller/scheduledworkflow/util):
- Times are reckoned from the bookmark `last_scheduled_at` (the last time fired), else from the
  trigger's start time, else from the schedule's creation; the next time is strictly after it and
  never before the start time. Past the end time nothing fires.
- Periodic: every `interval_second` from that reference (KFP's first fire is one interval after it).
- Catchup (`no_catchup` false, the default): every missed time fires, oldest first, e.g. after the
  server was down. No-catchup: only the latest missed time fires (KFP's periodic no-catchup fires
  at "now" instead, off the interval grid; the latest grid time keeps runs on the schedule).
- `max_concurrency`: no new run while that many runs of the schedule are unfinished. A long backlog
  therefore fires progressively, at most `max_concurrency` at a time, and at most
  `MAX_FIRES_PER_TICK` per schedule per pass so that one schedule cannot hold up the others.
- A schedule that cannot fire, whatever the reason (an unusable trigger or pipeline, a run the
  controller rejects), records the problem in its `error` column and is retried after
  `ERROR_RETRY_S` (or at once when the API wakes the runner); the others go on. `parse_trigger`,
  which the API validates with too, computes a first fire time, so a cron that matches no date
  (30 February) or an interval past the year 10000 is refused before it is stored.
- A fired run is named `<recurring run name>-<YYYYmmddHHMMSS of its scheduled time>` (UTC) and
  carries the schedule's experiment, namespace, service account and runtime parameters, its
  `recurring_run_id` and `scheduled_at`. (KFP names them after the Argo workflow,
  `<k8s name>-<index>-<hash>`, which says nothing to a reader; the time does.)

Crash safety: the run controller records a run in its own transaction, so the run and the bookmark
cannot be written in one. The runner creates the run first and then advances the bookmark, so a
crash between the two leaves a run whose `scheduled_at` is past the bookmark. The runs are the
record of what fired: the first time this process looks at a schedule (and again after any error
while firing) it moves the bookmark up to its runs' latest `scheduled_at`, so that time does not
fire twice. Writing the bookmark first instead would lose that time on a crash (no run, bookmark
past it), and deleting runs cannot make a time fire again either, because the bookmark only moves
forward. One process is assumed to schedule a database (one `flowdeck up` per store).

Disabling (or deleting, or archiving the experiment) stops a pass already under way, with no run
started after the API call returns. Because of the order above, the bookmark cannot be the guard
that is checked before a run is created, and no database lock can span the controller's own
transaction (SQLite has one writer), so the guard is in-process, relying on that same single
process: each firing holds a lock while it re-reads `enabled`, creates the run and advances the
bookmark with an update conditional on the row still existing and being enabled. The API calls
`wake()` after committing its change, and `wake()` waits for that lock. A firing that read
`enabled` before the change therefore finishes before the call returns, and every later one
sees the change. When the conditional update matches no row (the change landed while that run
was being created), the pass stops and the run, past the bookmark, is counted the next time the
schedule is looked at (as after a crash), so re-enabling it does not fire that time again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from croniter import croniter
from croniter.croniter import CroniterBadDateError, CroniterError
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from flowdeck.pipelines.spec import spec_document
from flowdeck.store import PipelineVersionRow, RecurringRunRow, RunRow, Store
from flowdeck.store.models import as_utc, utcnow
from flowdeck.store.store import TERMINAL_RUN_STATES

__all__ = ["RunCreator", "ScheduleError", "ScheduleRunner", "Trigger", "parse_trigger"]

log = logging.getLogger(__name__)

#: Longest sleep without a fire time or a wake-up (a safety net; changes come with a wake()).
MAX_SLEEP_S = 60.0
#: How soon a schedule waiting for a free concurrency slot looks again (runs finish without a wake()).
BLOCKED_RECHECK_S = 1.0
#: How soon a schedule whose firing failed is tried again, unless the API wakes the runner first.
ERROR_RETRY_S = 30.0
#: Most runs one schedule fires per pass; a longer catchup backlog continues in the next pass.
MAX_FIRES_PER_TICK = 10
#: Longest periodic interval (100 years); longer ones would run past the last representable time.
MAX_INTERVAL = timedelta(days=36525)

_ONE_SECOND = timedelta(seconds=1)


class ScheduleError(ValueError):
    """A recurring run that cannot fire (bad trigger, missing pipeline); one line naming the problem."""


def _parse_time(value: Any, field: str) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return as_utc(value)
    try:
        return as_utc(datetime.fromisoformat(str(value)))
    except ValueError:
        raise ScheduleError(f"{field}: {value!r} is not an RFC 3339 time") from None


def _floor_second(value: datetime) -> datetime:
    return value.replace(microsecond=0)


@dataclass(frozen=True)
class Trigger:
    """When a recurring run fires: a seconds-first cron expression or an interval, within [start, end]."""

    cron: str | None = None
    interval: timedelta | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None

    def times_after(self, after: datetime) -> Iterator[datetime]:
        """Fire times strictly after `after` (and after the start time), up to the end time, in order."""
        start = _floor_second(max(after, self.start_time) if self.start_time else after)
        for value in self._times_from(start):
            if self.end_time is not None and value > self.end_time:
                return
            yield value

    def _times_from(self, start: datetime) -> Iterator[datetime]:
        if self.cron is not None:
            times = croniter(self.cron, start, second_at_beginning=True)
            while True:
                yield times.get_next(datetime).replace(fold=0)
        interval = self.interval or _ONE_SECOND
        while True:
            start += interval
            yield start

    def next_after(self, after: datetime) -> datetime | None:
        """The first fire time strictly after `after`, or None when the schedule is over."""
        return next(self.times_after(after), None)

    def latest_until(self, after: datetime, now: datetime) -> datetime | None:
        """The latest fire time in (after, now], or None when none is due."""
        first = self.next_after(after)
        if first is None or first > now:
            return None
        horizon = min(now, self.end_time) if self.end_time is not None else now
        if self.cron is not None:
            # get_prev is strictly before its start: a second past the horizon includes the horizon.
            latest = croniter(self.cron, _floor_second(horizon) + _ONE_SECOND,
                              second_at_beginning=True).get_prev(datetime)
            return max(first, latest.replace(fold=0))
        interval = self.interval or _ONE_SECOND
        steps = (horizon - first) // interval
        return first + steps * interval

    def due(self, after: datetime, now: datetime, *, catchup: bool, limit: int) -> list[datetime]:
        """The times to fire now: with catchup the oldest `limit` missed ones, else only the latest."""
        if not catchup:
            latest = self.latest_until(after, now)
            return [latest] if latest is not None else []
        due = []
        for value in self.times_after(after):
            if value > now or len(due) >= limit:
                break
            due.append(value)
        return due


def parse_trigger(trigger: dict[str, Any] | None) -> Trigger:
    """Validate KFP's Trigger (snake_case JSON) and return it; raises `ScheduleError` naming the field."""
    if not isinstance(trigger, dict):
        raise ScheduleError("trigger: give a cron_schedule or a periodic_schedule")
    cron_schedule, periodic = trigger.get("cron_schedule"), trigger.get("periodic_schedule")
    if (cron_schedule is None) == (periodic is None):
        raise ScheduleError("trigger: give exactly one of cron_schedule and periodic_schedule")
    kind = "cron_schedule" if cron_schedule is not None else "periodic_schedule"
    schedule = cron_schedule if cron_schedule is not None else periodic
    if not isinstance(schedule, dict):
        raise ScheduleError(f"trigger.{kind}: must be an object")
    start = _parse_time(schedule.get("start_time"), f"trigger.{kind}.start_time")
    end = _parse_time(schedule.get("end_time"), f"trigger.{kind}.end_time")
    if start is not None and end is not None and end <= start:
        raise ScheduleError(f"trigger.{kind}: end_time must be after start_time")
    if kind == "cron_schedule":
        parsed = Trigger(cron=_parse_cron(schedule.get("cron")), start_time=start, end_time=end)
    else:
        parsed = Trigger(interval=_parse_interval(schedule.get("interval_second")), start_time=start, end_time=end)
    # Syntax is not enough: the runner must be able to compute fire times (a cron can match no date).
    try:
        parsed.next_after(start or utcnow())
    except CroniterBadDateError:
        raise ScheduleError(f"trigger.cron_schedule.cron: {parsed.cron!r} matches no date (like 30 February), "
                            "so it would never fire") from None
    except (OverflowError, ValueError):  # only a start time close to the year 10000 gets there
        raise ScheduleError(f"trigger.{kind}.start_time: no fire time follows it before the year 10000") from None
    return parsed


def _parse_cron(value: Any) -> str:
    field = "trigger.cron_schedule.cron"
    if not isinstance(value, str) or not value.strip():
        raise ScheduleError(f"{field}: missing (6 fields, seconds first, e.g. '0 0 * * * *')")
    expression = " ".join(value.split())
    fields = len(expression.split(" "))
    if not expression.startswith("@") and fields != 6:
        raise ScheduleError(f"{field}: {value!r} has {fields} fields; a KFP cron has 6, seconds first "
                            "(e.g. '0 0 * * * *' is every hour)")
    try:
        croniter(expression, datetime(2000, 1, 1, tzinfo=timezone.utc), second_at_beginning=True)
    except (CroniterError, ValueError, KeyError) as exc:
        raise ScheduleError(f"{field}: {value!r} is not a valid cron expression ({exc})") from None
    return expression


def _parse_interval(value: Any) -> timedelta:
    field = "trigger.periodic_schedule.interval_second"
    try:
        seconds = int(value)  # int64 arrives as a JSON string
    except (TypeError, ValueError):
        raise ScheduleError(f"{field}: {value!r} is not a whole number of seconds") from None
    if seconds < 1:
        raise ScheduleError(f"{field}: must be at least 1, got {seconds}")
    if seconds > MAX_INTERVAL.total_seconds():
        raise ScheduleError(f"{field}: must be at most {MAX_INTERVAL.total_seconds():.0f} (100 years), got {seconds}")
    return timedelta(seconds=seconds)


class RunCreator(Protocol):
    """What the runner needs of the run controller (`RunController.create_run`)."""

    def create_run(self, *, pipeline_spec: dict[str, Any], parameters: dict[str, Any] | None = None,
                   display_name: str | None = None, namespace: str = "", experiment_id: str | None = None,
                   pipeline_id: str | None = None, pipeline_version_id: str | None = None,
                   recurring_run_id: str | None = None, scheduled_at: datetime | None = None,
                   service_account: str | None = None) -> str: ...


@dataclass
class _Schedule:
    """The columns of a recurring run that deciding what is due needs (not its pipeline)."""

    id: str
    display_name: str
    trigger: dict[str, Any]
    no_catchup: bool
    max_concurrency: int
    last_scheduled_at: datetime | None
    created_at: datetime
    error: str | None


class ScheduleRunner:
    """The service that fires recurring runs; `wake()` after any change to a recurring run."""

    def __init__(self, store: Store, runs: RunCreator, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.runs = runs
        self.clock = clock
        self._cond = threading.Condition()
        self._woken = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        #: Schedules whose bookmark this process has checked against their runs (see the module doc).
        self._verified: set[str] = set()
        #: Schedules whose last firing failed: id -> when to try again.
        self._retry_at: dict[str, datetime] = {}
        #: Held while one schedule fires; `wake()` waits for it (see "Disabling" in the module doc).
        self._firing = threading.Lock()

    # -- service -----------------------------------------------------------------------------------
    def start(self) -> None:
        with self._cond:
            self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="flowdeck-schedules", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def wake(self) -> None:
        """Look at every schedule again now; call it after committing any change to a recurring run.

        It returns once no firing that may have read the schedule before the change is under way, so
        a schedule disabled or deleted before this call starts no run after it returns.
        """
        with self._cond:
            self._woken = True
            self._retry_at.clear()
            self._cond.notify_all()
        with self._firing:
            pass

    def _loop(self) -> None:
        while True:
            try:
                delay = self.fire_due()
            except Exception:  # e.g. the database is unreachable: keep the service alive, try later
                log.exception("the schedule runner failed; trying again in %.0f s", ERROR_RETRY_S)
                delay = ERROR_RETRY_S
            with self._cond:
                if not self._stopping and not self._woken:
                    self._cond.wait(min(delay, MAX_SLEEP_S))
                if self._stopping:
                    return
                self._woken = False

    # -- one pass ----------------------------------------------------------------------------------
    def fire_due(self, now: datetime | None = None) -> float:
        """Fire every enabled schedule's due times; return the seconds until the next pass is needed."""
        now = as_utc(now) if now is not None else self.clock()
        schedules = self._enabled_schedules()
        active = self._active_runs([s.id for s in schedules])
        delay = MAX_SLEEP_S
        for schedule in schedules:
            delay = min(delay, self._fire_schedule(schedule, active.get(schedule.id, 0), now))
        return max(delay, 0.0)

    def _fire_schedule(self, schedule: _Schedule, active: int, now: datetime) -> float:
        """Fire one schedule; whatever goes wrong is recorded on its row and retried later, not raised."""
        with self._cond:
            retry_at = self._retry_at.get(schedule.id)
        if retry_at is not None and retry_at > now:
            return (retry_at - now).total_seconds()
        try:
            return self._fire_due_times(schedule, active, now)
        except Exception as exc:
            self._verified.discard(schedule.id)  # a run may exist past the bookmark: check again
            if not isinstance(exc, ScheduleError):
                log.exception("recurring run %s could not fire", schedule.id)
            self._record_error(schedule, _one_line(exc))
            return self._retry_later(schedule, now)

    def _fire_due_times(self, schedule: _Schedule, active: int, now: datetime) -> float:
        trigger = parse_trigger(schedule.trigger)
        after = self._bookmark(schedule, trigger)
        free = max(schedule.max_concurrency, 1) - active
        due = trigger.due(after, now, catchup=not schedule.no_catchup, limit=min(free, MAX_FIRES_PER_TICK))
        if due and free > 0:
            if not self._fire(schedule, due):
                return MAX_SLEEP_S  # disabled or deleted meanwhile: nothing more to fire
            after, active = due[-1], active + len(due)
        following = trigger.next_after(after)
        if following is None:
            return MAX_SLEEP_S  # the schedule is over
        if following > now:
            return (following - now).total_seconds()
        # More is due (a catchup backlog): go on now if a slot is free, else look again soon.
        return 0.0 if active < max(schedule.max_concurrency, 1) else BLOCKED_RECHECK_S

    def _fire(self, schedule: _Schedule, times: list[datetime]) -> bool:
        """Create one run per scheduled time, advancing the bookmark after each.

        Returns False, having stopped, when the schedule is disabled or deleted (see the module doc).
        """
        loaded = self._pipeline(schedule.id)
        if loaded is None:
            return False
        row, pipeline_spec = loaded
        parameters = (row.runtime_config or {}).get("parameters") or None
        for scheduled_at in times:
            with self._firing:
                if not self._enabled(schedule.id):
                    return False
                self.runs.create_run(
                    pipeline_spec=pipeline_spec, parameters=parameters,
                    display_name=f"{row.display_name}-{scheduled_at:%Y%m%d%H%M%S}", namespace=row.namespace or "",
                    experiment_id=row.experiment_id, pipeline_id=row.pipeline_id,
                    pipeline_version_id=row.pipeline_version_id, recurring_run_id=row.id,
                    scheduled_at=scheduled_at, service_account=row.service_account,
                )
                if not self._advance_bookmark(schedule.id, scheduled_at, while_enabled=True):
                    self._verified.discard(schedule.id)  # that run is past the bookmark: count it if re-enabled
                    return False
        if schedule.error is not None:
            with self.store.engine.begin() as conn:
                conn.execute(update(RecurringRunRow).where(RecurringRunRow.id == schedule.id).values(error=None))
        return True

    def _retry_later(self, schedule: _Schedule, now: datetime) -> float:
        with self._cond:
            self._retry_at[schedule.id] = now + timedelta(seconds=ERROR_RETRY_S)
        return ERROR_RETRY_S

    # -- store -------------------------------------------------------------------------------------
    def _enabled_schedules(self) -> list[_Schedule]:
        columns = (RecurringRunRow.id, RecurringRunRow.display_name, RecurringRunRow.trigger,
                   RecurringRunRow.no_catchup, RecurringRunRow.max_concurrency,
                   RecurringRunRow.last_scheduled_at, RecurringRunRow.created_at, RecurringRunRow.error)
        query = select(*columns).where(RecurringRunRow.enabled.is_(True)).order_by(RecurringRunRow.created_at)
        with self.store.engine.connect() as conn:
            return [_Schedule(*row) for row in conn.execute(query)]

    def _active_runs(self, schedule_ids: list[str]) -> dict[str, int]:
        """Unfinished runs per schedule."""
        if not schedule_ids:
            return {}
        query = (
            select(RunRow.recurring_run_id, func.count())
            .where(RunRow.recurring_run_id.in_(schedule_ids), RunRow.state.not_in(TERMINAL_RUN_STATES))
            .group_by(RunRow.recurring_run_id)
        )
        with self.store.engine.connect() as conn:
            return {schedule_id: count for schedule_id, count in conn.execute(query)}

    def _bookmark(self, schedule: _Schedule, trigger: Trigger) -> datetime:
        """The time to reckon from: the last time fired, else the start time, else the creation time."""
        bookmark = as_utc(schedule.last_scheduled_at)
        if schedule.id not in self._verified:
            query = select(func.max(RunRow.scheduled_at)).where(RunRow.recurring_run_id == schedule.id)
            with self.store.engine.connect() as conn:
                fired = as_utc(conn.execute(query).scalar())
            if fired is not None and (bookmark is None or fired > bookmark):
                log.info("recurring run %s: a run for %s exists past the bookmark; not firing it again",
                         schedule.id, fired.isoformat())
                self._advance_bookmark(schedule.id, fired)
                bookmark = fired
            self._verified.add(schedule.id)
        if bookmark is not None:
            return bookmark
        return trigger.start_time or _floor_second(as_utc(schedule.created_at))

    def _advance_bookmark(self, schedule_id: str, scheduled_at: datetime, *, while_enabled: bool = False) -> bool:
        """Move the bookmark forward to `scheduled_at` (never back), only while enabled if asked.

        Returns False when no row matched: the schedule is gone, disabled (`while_enabled`), or its
        bookmark is already there.
        """
        query = update(RecurringRunRow).where(
            RecurringRunRow.id == schedule_id,
            or_(RecurringRunRow.last_scheduled_at.is_(None), RecurringRunRow.last_scheduled_at < scheduled_at),
        ).values(last_scheduled_at=scheduled_at)
        if while_enabled:
            query = query.where(RecurringRunRow.enabled.is_(True))
        with self.store.engine.begin() as conn:
            return conn.execute(query).rowcount == 1

    def _enabled(self, schedule_id: str) -> bool:
        """Whether the schedule still exists and is enabled, as committed now."""
        with self.store.engine.connect() as conn:
            return bool(conn.execute(select(RecurringRunRow.enabled).where(RecurringRunRow.id == schedule_id)).scalar())

    def _pipeline(self, schedule_id: str) -> tuple[RecurringRunRow, dict[str, Any]] | None:
        """The recurring run and the pipeline spec to run (inline, or its pipeline version's); None once deleted."""
        with Session(self.store.engine, expire_on_commit=False) as session:
            row = session.get(RecurringRunRow, schedule_id)
            if row is None:
                return None
            spec, platform = row.pipeline_spec, row.platform_spec
            if not spec:
                if not row.pipeline_version_id:
                    raise ScheduleError("the recurring run names no pipeline (pipeline_spec or "
                                        "pipeline_version_reference)")
                version = session.get(PipelineVersionRow, row.pipeline_version_id)
                if version is None:
                    raise ScheduleError(f"pipeline version {row.pipeline_version_id} does not exist "
                                        "(it was deleted?)")
                spec, platform = version.pipeline_spec, version.platform_spec
        return row, spec_document(spec, platform)

    def _record_error(self, schedule: _Schedule, message: str) -> None:
        if message == schedule.error:
            return
        log.warning("recurring run %s: %s", schedule.id, message)
        with self.store.engine.begin() as conn:
            conn.execute(update(RecurringRunRow).where(RecurringRunRow.id == schedule.id).values(error=message))
        schedule.error = message


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__

