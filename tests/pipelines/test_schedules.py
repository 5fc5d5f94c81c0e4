"""Recurring runs: when they are due (cron seconds-first, periodic, start/end, catchup) and the runner
that fires them against a real store, with a recording double of the run controller."""

import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from kfp import dsl
from sqlalchemy import delete, select, update

from flowdeck.config import Settings
from flowdeck.pipelines.controller import RunController
from flowdeck.pipelines.errors import PipelineError
from flowdeck.pipelines.schedules import (
    BLOCKED_RECHECK_S,
    MAX_FIRES_PER_TICK,
    MAX_INTERVAL,
    MAX_SLEEP_S,
    ScheduleError,
    ScheduleRunner,
    parse_trigger,
)
from flowdeck.pipelines.spec import load_pipeline
from flowdeck.store import PipelineRow, PipelineVersionRow, RecurringRunRow, RunRow, Store, open_store
from flowdeck.store.catalog import Experiments
from helpers import wait_for

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
SPEC = {"pipelineInfo": {"name": "tiny"}, "root": {"dag": {"tasks": {}}}, "schemaVersion": "2.1.0"}


@dsl.component
def echo(n: int) -> int:
    return n


@dsl.pipeline(name="scheduled-echo")
def scheduled_echo(n: int = 1) -> int:
    return echo(n=n).output


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def cron(expr: str, **times: str) -> dict[str, Any]:
    return {"cron_schedule": {"cron": expr, **times}}


def every(seconds: int | str, **times: str) -> dict[str, Any]:
    return {"periodic_schedule": {"interval_second": seconds, **times}}


# ------------------------------------------------------------------------------------- due times
class TestTrigger:
    def test_cron_has_the_seconds_field_first(self) -> None:
        per_second = parse_trigger(cron("*/1 * * * * *"))
        assert per_second.due(T0, s(3), catchup=True, limit=10) == [s(1), s(2), s(3)]
        hourly = parse_trigger(cron("0 0 * * * *"))
        assert hourly.next_after(T0) == T0 + timedelta(hours=1)
        assert parse_trigger(cron("15 */5 * * * *")).next_after(T0) == s(15)
        assert parse_trigger(cron("@hourly")).next_after(T0) == T0 + timedelta(hours=1)

    @pytest.mark.parametrize(("expr", "message"), [
        ("0 * * * *", "has 5 fields; a KFP cron has 6, seconds first"),
        ("0 0 0 * * * 2030", "has 7 fields"),
        ("0 0 * * * nope", "is not a valid cron expression"),
        ("61 * * * * *", "is not a valid cron expression"),
        ("", "trigger.cron_schedule.cron: missing"),
        ("0 0 0 30 2 *", "'0 0 0 30 2 *' matches no date (like 30 February), so it would never fire"),
        ("0 0 0 31 4 *", "matches no date"),
    ])
    def test_bad_cron_is_rejected_naming_the_field(self, expr: str, message: str) -> None:
        with pytest.raises(ScheduleError, match="trigger.cron_schedule.cron") as info:
            parse_trigger(cron(expr))
        assert message in str(info.value)

    def test_a_cron_matching_a_rare_date_is_accepted(self) -> None:
        assert parse_trigger(cron("0 0 0 29 2 *")).next_after(T0) == datetime(2032, 2, 29, tzinfo=timezone.utc)

    def test_periodic_counts_whole_intervals_and_takes_int64_as_a_string(self) -> None:
        trigger = parse_trigger(every("60"))
        assert trigger.due(T0, s(59), catchup=True, limit=10) == []
        assert trigger.due(T0, s(185), catchup=True, limit=10) == [s(60), s(120), s(180)]
        assert trigger.next_after(s(180)) == s(240)

    @pytest.mark.parametrize(("trigger", "message"), [
        ({}, "exactly one of cron_schedule and periodic_schedule"),
        ({**cron("* * * * * *"), **every(5)}, "exactly one of"),
        (every(0), "interval_second: must be at least 1"),
        (every("ten"), "interval_second: 'ten' is not a whole number"),
        (every(5, start_time="yesterday"), "periodic_schedule.start_time: 'yesterday' is not an RFC 3339"),
        (None, "trigger: give a cron_schedule or a periodic_schedule"),
        (every(300000000000), "interval_second: must be at most 3155760000 (100 years), got 300000000000"),
        (every("99999999999999999999"), "interval_second: must be at most 3155760000"),
        (every(1, start_time="9999-12-31T23:59:59Z"),
         "periodic_schedule.start_time: no fire time follows it before the year 10000"),
        (cron("0 0 0 1 1 *", start_time="9999-06-01T00:00:00Z"), "cron_schedule.start_time: no fire time follows"),
        (every(5, start_time="2030-01-02T00:00:00Z", end_time="2030-01-02T00:00:00Z"),
         "trigger.periodic_schedule: end_time must be after start_time"),
    ])
    def test_bad_trigger_is_rejected_naming_the_field(self, trigger: Any, message: str) -> None:
        with pytest.raises(ScheduleError) as info:
            parse_trigger(trigger)
        assert message in str(info.value)

    def test_start_and_end_time_bound_the_schedule(self) -> None:
        trigger = parse_trigger(cron("*/10 * * * * *", start_time="2030-01-01T12:00:25Z",
                                     end_time="2030-01-01T12:01:00.000000001Z"))
        assert trigger.due(T0, s(25), catchup=True, limit=10) == []
        assert trigger.due(T0, s(90), catchup=True, limit=10) == [s(30), s(40), s(50), s(60)]
        assert trigger.next_after(s(60)) is None
        assert trigger.due(T0, s(90), catchup=False, limit=10) == [s(60)]

        periodic = parse_trigger(every(30, start_time="2030-01-01T12:00:10+00:00", end_time="2030-01-01T12:01:40Z"))
        assert periodic.due(T0, s(1000), catchup=True, limit=10) == [s(40), s(70), s(100)]

    def test_catchup_fires_every_missed_time_oldest_first_and_bounded(self) -> None:
        trigger = parse_trigger(cron("*/1 * * * * *"))
        day_later = s(86400)
        assert trigger.due(T0, day_later, catchup=True, limit=3) == [s(1), s(2), s(3)]
        assert trigger.due(T0, s(10.7), catchup=True, limit=100) == [s(i) for i in range(1, 11)]

    def test_no_catchup_fires_only_the_latest_missed_time(self) -> None:
        assert parse_trigger(cron("*/1 * * * * *")).due(T0, s(86400.5), catchup=False, limit=1) == [s(86400)]
        assert parse_trigger(cron("0 */7 * * * *")).due(T0, s(3599), catchup=False, limit=1) == [s(3360)]
        assert parse_trigger(every(60)).due(T0, s(3659), catchup=False, limit=1) == [s(3600)]
        assert parse_trigger(every(60)).due(T0, s(59), catchup=False, limit=1) == []


# ------------------------------------------------------------- runner and store (`store`: tests/conftest.py)
class FakeController:
    """Records create_run calls and writes the PENDING run rows the real controller would."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.calls: list[dict[str, Any]] = []
        #: Wall-clock time of each call.
        self.called_at: list[datetime] = []
        self.fail_with: Exception | None = None
        #: Called once the run is recorded, before create_run returns (e.g. an API call landing meanwhile).
        self.after_create: Callable[[], None] | None = None
        self.lock = threading.Lock()

    def create_run(self, **kwargs: Any) -> str:
        if self.fail_with is not None:
            raise self.fail_with
        run_id = uuid.uuid4().hex
        self.store.create_run(
            id=run_id, pipeline_name="tiny", display_name=kwargs["display_name"], state="PENDING",
            pipeline_spec=kwargs["pipeline_spec"], recurring_run_id=kwargs["recurring_run_id"],
            scheduled_at=kwargs["scheduled_at"], namespace=kwargs["namespace"],
            experiment_id=kwargs["experiment_id"], origin="server",
        )
        with self.lock:
            self.calls.append(kwargs)
            self.called_at.append(datetime.now(timezone.utc))
        if self.after_create is not None:
            self.after_create()
        return run_id

    def scheduled(self) -> list[datetime]:
        with self.lock:
            return [call["scheduled_at"] for call in self.calls]


@pytest.fixture
def controller(store: Store) -> FakeController:
    return FakeController(store)


@pytest.fixture
def runner(store: Store, controller: FakeController) -> ScheduleRunner:
    return ScheduleRunner(store, controller, clock=lambda: T0)


def add_schedule(store: Store, **values: Any) -> str:
    values = {
        "id": uuid.uuid4().hex, "display_name": "nightly", "trigger": cron("*/1 * * * * *"),
        "pipeline_spec": SPEC, "runtime_config": {"parameters": {"n": 3}}, "created_at": T0,
        "updated_at": T0, "max_concurrency": 10, **values,
    }
    with store.engine.begin() as conn:
        conn.execute(RecurringRunRow.__table__.insert(), [values])
    return values["id"]


def schedule_row(store: Store, schedule_id: str) -> Any:
    with store.engine.connect() as conn:
        return conn.execute(select(RecurringRunRow.__table__).where(RecurringRunRow.id == schedule_id)).one()


def set_schedule(store: Store, schedule_id: str, **values: Any) -> None:
    with store.engine.begin() as conn:
        conn.execute(update(RecurringRunRow).where(RecurringRunRow.id == schedule_id).values(**values))


def delete_schedule(store: Store, schedule_id: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(delete(RecurringRunRow).where(RecurringRunRow.id == schedule_id))


def finish_runs(store: Store) -> None:
    with store.engine.begin() as conn:
        conn.execute(update(RunRow).values(state="SUCCEEDED"))


class TestRunner:
    def test_fires_each_due_time_once_with_the_schedule_s_settings(
            self, store: Store, controller: FakeController, runner: ScheduleRunner) -> None:
        schedule_id = add_schedule(store, namespace="team-a", experiment_id="exp-1", service_account="robot",
                                   platform_spec={"platforms": {"kubernetes": {}}})
        assert runner.fire_due(s(2.5)) == pytest.approx(0.5)
        assert controller.scheduled() == [s(1), s(2)]
        call = controller.calls[0]
        assert call["display_name"] == "nightly-20300101120001"
        assert call["recurring_run_id"] == schedule_id
        assert call["parameters"] == {"n": 3}
        assert (call["namespace"], call["experiment_id"], call["service_account"]) == ("team-a", "exp-1", "robot")
        assert call["pipeline_spec"] == {"pipeline_spec": SPEC, "platform_spec": {"platforms": {"kubernetes": {}}}}
        assert schedule_row(store, schedule_id).last_scheduled_at == s(2)

        runner.fire_due(s(2.9))
        assert controller.scheduled() == [s(1), s(2)]
        # A new runner (a restarted server) goes on from the bookmark.
        ScheduleRunner(store, controller).fire_due(s(3))
        assert controller.scheduled() == [s(1), s(2), s(3)]

    def test_periodic_schedule_fires_an_interval_after_creation(
            self, store: Store, controller: FakeController, runner: ScheduleRunner) -> None:
        add_schedule(store, trigger=every("60"), created_at=s(0.4))
        assert runner.fire_due(s(59)) == pytest.approx(1.0)
        assert controller.calls == []
        assert runner.fire_due(s(60)) == pytest.approx(60.0)
        assert controller.scheduled() == [s(60)]

    def test_max_concurrency_waits_for_a_run_to_finish(
            self, store: Store, controller: FakeController, runner: ScheduleRunner) -> None:
        add_schedule(store, max_concurrency=1)
        assert runner.fire_due(s(5)) == BLOCKED_RECHECK_S
        assert controller.scheduled() == [s(1)]
        assert runner.fire_due(s(6)) == BLOCKED_RECHECK_S
        assert controller.scheduled() == [s(1)]
        finish_runs(store)
        runner.fire_due(s(6))
        assert controller.scheduled() == [s(1), s(2)]

    def test_catchup_after_an_outage_fires_progressively(
            self, store: Store, controller: FakeController, runner: ScheduleRunner) -> None:
        add_schedule(store, max_concurrency=50, last_scheduled_at=T0)
        day_later = s(86400)
        assert runner.fire_due(day_later) == 0.0  # more is due and slots are free: go on at once
        assert controller.scheduled() == [s(i) for i in range(1, MAX_FIRES_PER_TICK + 1)]
        for _ in range(4):
            runner.fire_due(day_later)
        assert len(controller.calls) == 50
        assert runner.fire_due(day_later) == BLOCKED_RECHECK_S  # 50 unfinished: wait
        assert len(controller.calls) == 50
        finish_runs(store)
        runner.fire_due(day_later)
        assert controller.scheduled()[-1] == s(60)

    def test_no_catchup_after_an_outage_fires_the_latest_time_only(
            self, store: Store, controller: FakeController, runner: ScheduleRunner) -> None:
        schedule_id = add_schedule(store, no_catchup=True, last_scheduled_at=T0)
        assert runner.fire_due(s(86400.25)) == pytest.approx(0.75)
        assert controller.scheduled() == [s(86400)]
        assert schedule_row(store, schedule_id).last_scheduled_at == s(86400)

    def test_disabled_and_finished_schedules_fire_nothing(
            self, store: Store, controller: FakeController, runner: ScheduleRunner) -> None:
        disabled = add_schedule(store, enabled=False)
        add_schedule(store, trigger=cron("*/1 * * * * *", end_time="2030-01-01T11:00:00Z"))
        assert runner.fire_due(s(10)) == MAX_SLEEP_S
        assert controller.calls == []
        set_schedule(store, disabled, enabled=True, no_catchup=True)
        runner.fire_due(s(10))
        assert controller.scheduled() == [s(10)]

    def test_pipeline_version_reference_runs_that_version(
            self, store: Store, controller: FakeController, runner: ScheduleRunner) -> None:
        with store.engine.begin() as conn:
            conn.execute(PipelineRow.__table__.insert(), [{"id": "p1", "name": "p", "display_name": "p"}])
            conn.execute(PipelineVersionRow.__table__.insert(),
                         [{"id": "v1", "pipeline_id": "p1", "name": "v", "display_name": "v", "pipeline_spec": SPEC}])
        add_schedule(store, pipeline_spec=None, pipeline_id="p1", pipeline_version_id="v1")
        runner.fire_due(s(1))
        assert controller.calls[0]["pipeline_spec"] == SPEC
        assert (controller.calls[0]["pipeline_id"], controller.calls[0]["pipeline_version_id"]) == ("p1", "v1")

    def test_a_broken_schedule_records_its_error_and_the_others_fire(
            self, store: Store, controller: FakeController, runner: ScheduleRunner) -> None:
        missing = add_schedule(store, display_name="gone", pipeline_spec=None, pipeline_version_id="nope")
        bad_cron = add_schedule(store, display_name="bad", trigger=cron("* * * * *"))
        good = add_schedule(store, display_name="good")
        runner.fire_due(s(1))
        assert [call["recurring_run_id"] for call in controller.calls] == [good]
        assert schedule_row(store, missing).error == "pipeline version nope does not exist (it was deleted?)"
        assert schedule_row(store, missing).last_scheduled_at is None
        assert "has 5 fields" in schedule_row(store, bad_cron).error

        # The API fixes the schedule and wakes the runner: it fires what was missed and clears the error.
        set_schedule(store, missing, pipeline_spec=SPEC)
        runner.wake()
        runner.fire_due(s(2))
        fired = [call["scheduled_at"] for call in controller.calls if call["recurring_run_id"] == missing]
        assert fired == [s(1), s(2)]
        assert schedule_row(store, missing).error is None

    def test_a_schedule_whose_times_cannot_be_computed_does_not_stop_the_others(
            self, store: Store, controller: FakeController, runner: ScheduleRunner) -> None:
        """Rows stored before the API computed fire times, and a bookmark whose next time is past year 9999."""
        feb30 = add_schedule(store, display_name="feb30", trigger=cron("0 0 0 30 2 *"))
        huge = add_schedule(store, display_name="huge", trigger=every(300000000000))
        far = add_schedule(store, display_name="far", trigger=every(int(MAX_INTERVAL.total_seconds())),
                           last_scheduled_at=datetime(9950, 1, 1, tzinfo=timezone.utc))
        good = add_schedule(store, display_name="good")
        assert runner.fire_due(s(2)) == pytest.approx(1.0)
        assert [call["recurring_run_id"] for call in controller.calls] == [good, good]
        assert "matches no date" in schedule_row(store, feb30).error
        assert "must be at most 3155760000" in schedule_row(store, huge).error
        assert schedule_row(store, far).error == "date value out of range"
        runner.fire_due(s(3))  # the broken ones back off; the good one goes on
        assert [call["recurring_run_id"] for call in controller.calls] == [good, good, good]

    @pytest.mark.parametrize("change", ["disable", "delete", "archive the experiment"])
    def test_a_change_landing_during_a_pass_stops_it_after_the_run_in_flight(
            self, store: Store, controller: FakeController, runner: ScheduleRunner, change: str) -> None:
        experiment = Experiments(store).create(display_name="exp")
        schedule_id = add_schedule(store, experiment_id=experiment.id)
        apply_change = {
            "disable": lambda: set_schedule(store, schedule_id, enabled=False),
            "delete": lambda: delete_schedule(store, schedule_id),
            "archive the experiment": lambda: Experiments(store).archive(experiment.id),
        }[change]
        controller.after_create = lambda: apply_change() if len(controller.calls) == 2 else None
        assert runner.fire_due(s(5)) == MAX_SLEEP_S
        assert controller.scheduled() == [s(1), s(2)]  # five were due
        if change == "delete":
            return
        assert schedule_row(store, schedule_id).error is None
        # Enabled again, it does not fire s(2) twice although the bookmark never reached it.
        assert schedule_row(store, schedule_id).last_scheduled_at == s(1)
        set_schedule(store, schedule_id, enabled=True)
        runner.wake()
        runner.fire_due(s(5))
        assert controller.scheduled() == [s(1), s(2), s(3), s(4), s(5)]

    def test_nothing_fires_after_the_disable_call_returns(self, store: Store, controller: FakeController) -> None:
        schedule_id = add_schedule(store)
        in_flight, release = threading.Event(), threading.Event()

        def hold_the_first_run() -> None:
            if len(controller.calls) == 1:
                in_flight.set()
                release.wait(10)

        controller.after_create = hold_the_first_run
        runner = ScheduleRunner(store, controller, clock=lambda: s(5))
        firing = threading.Thread(target=runner.fire_due)
        firing.start()
        assert in_flight.wait(10)
        returned = threading.Event()

        def disable() -> None:  # what the API's :disable does
            set_schedule(store, schedule_id, enabled=False)
            runner.wake()
            returned.set()

        threading.Thread(target=disable).start()
        assert not returned.wait(0.3)  # the call waits for the run being created...
        release.set()
        assert returned.wait(10)
        fired = controller.scheduled()
        firing.join(10)
        assert fired == [s(1)]
        assert controller.scheduled() == fired  # ...and nothing starts after it returned

    def test_a_rejected_run_keeps_the_bookmark_and_is_retried_later(
            self, store: Store, controller: FakeController, runner: ScheduleRunner) -> None:
        schedule_id = add_schedule(store)
        controller.fail_with = PipelineError("unknown parameter 'n'\nmore detail")
        assert runner.fire_due(s(1)) == 30.0
        assert schedule_row(store, schedule_id).error == "unknown parameter 'n'"
        assert schedule_row(store, schedule_id).last_scheduled_at is None
        controller.fail_with = None
        runner.fire_due(s(2))  # still backing off
        assert controller.calls == []
        runner.fire_due(s(31))
        assert controller.scheduled()[:2] == [s(1), s(2)]

    def test_a_time_whose_run_exists_past_the_bookmark_does_not_fire_again(
            self, store: Store, controller: FakeController) -> None:
        """A crash after the run was recorded but before the bookmark moved."""
        schedule_id = add_schedule(store, last_scheduled_at=s(1))
        controller.create_run(pipeline_spec=SPEC, display_name="nightly-20300101120002", namespace="",
                              experiment_id=None, recurring_run_id=schedule_id, scheduled_at=s(2))
        controller.calls.clear()
        ScheduleRunner(store, controller).fire_due(s(3))
        assert controller.scheduled() == [s(3)]

    def test_deleting_runs_does_not_make_times_fire_again(
            self, store: Store, controller: FakeController, runner: ScheduleRunner) -> None:
        schedule_id = add_schedule(store)
        runner.fire_due(s(2))
        with store.engine.begin() as conn:
            conn.execute(RunRow.__table__.delete())
        ScheduleRunner(store, controller).fire_due(s(2))
        assert controller.scheduled() == [s(1), s(2)]
        assert schedule_row(store, schedule_id).last_scheduled_at == s(2)


class TestService:
    def test_fires_every_second_in_real_time_and_stops_when_disabled(
            self, store: Store, controller: FakeController) -> None:
        schedule_id = add_schedule(store, created_at=datetime.now(timezone.utc), no_catchup=True)
        runner = ScheduleRunner(store, controller)
        runner.start()
        try:
            assert wait_for(lambda: len(controller.calls) >= 3, timeout=6)
            times = controller.scheduled()[:3]
            assert [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)] == [1.0, 1.0]
            # Each fired close to its time: the thread sleeps until it, it does not poll.
            lags = [(fired - due).total_seconds()
                    for fired, due in zip(controller.called_at[1:3], times[1:], strict=True)]
            assert all(0 <= lag < 0.5 for lag in lags), lags
            set_schedule(store, schedule_id, enabled=False)
            runner.wake()
            fired = len(controller.calls)
            time.sleep(1.5)
            assert len(controller.calls) == fired
        finally:
            started = time.monotonic()
            runner.stop()
            assert time.monotonic() - started < 1.0

    def test_wake_picks_up_a_new_schedule_at_once(self, store: Store, controller: FakeController) -> None:
        runner = ScheduleRunner(store, controller)
        runner.start()
        try:
            time.sleep(0.2)  # the runner found nothing and sleeps for MAX_SLEEP_S
            add_schedule(store, trigger=every(1), created_at=datetime.now(timezone.utc) - timedelta(seconds=1.5),
                         no_catchup=True)
            runner.wake()
            assert wait_for(lambda: len(controller.calls) >= 1, timeout=1.0)
        finally:
            runner.stop()


def test_the_run_controller_executes_a_per_second_schedule_until_it_is_disabled(settings: Settings) -> None:
    store = open_store(settings.resolved_database_url)
    controller = RunController(store, settings)
    runner = ScheduleRunner(store, controller)
    schedule_id = add_schedule(store, pipeline_spec=load_pipeline(scheduled_echo).spec, no_catchup=True,
                               runtime_config={"parameters": {"n": 7}}, created_at=datetime.now(timezone.utc))

    def runs() -> list[RunRow]:
        return [run for run in store.list_runs(limit=100) if run.recurring_run_id == schedule_id]

    controller.start()
    runner.start()
    try:
        assert wait_for(lambda: sum(run.state == "SUCCEEDED" for run in runs()) >= 2, timeout=30)
        set_schedule(store, schedule_id, enabled=False)
        runner.wake()
        fired = runs()
        time.sleep(2.0)
        assert len(runs()) == len(fired)
        assert wait_for(lambda: all(run.state == "SUCCEEDED" for run in runs()), timeout=30)
        done = runs()
        assert len({run.scheduled_at for run in done}) == len(done)
        assert all(run.display_name == f"nightly-{run.scheduled_at:%Y%m%d%H%M%S}" for run in done)
        assert all(run.arguments == {"n": 7} for run in done)
    finally:
        runner.stop()
        controller.stop()
        store.close()
