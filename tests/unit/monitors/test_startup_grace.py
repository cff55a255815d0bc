"""A monitor applied with its strategy finds no data until Prometheus scrapes the new pods: that
is no finding (spec.startupGrace), and nothing else is hidden by it (stratops.monitors.decide)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cases import example
from stratops.models.monitor import IncidentClass, MonitorSpec, MonitorStatus
from stratops.monitors.decide import MonitorDecision, decide
from stratops.monitors.evaluate import STARTING_NOTE, Evaluation, evaluate
from stratops.monitors.prometheus import Series, SourceUnreachable

T0 = datetime(2026, 12, 7, 9, tzinfo=UTC)
NO_DATA = Evaluation(None, False, True, 0, "stale: no data for 'q'", no_data=True)
UNREACHABLE = Evaluation(None, False, True, 0, "stale: connection refused", unreachable=True)
BAD_BASELINE = Evaluation(None, False, True, 0, "stale: baseline ConfigMap b key k not found")
CLEAR = Evaluation(10.0, False, False, 0, "value 10")
BREACH = Evaluation(5000.0, True, False, 1, "value 5000 > 1000")


def _spec(grace: str = "2m") -> MonitorSpec:
    doc = example("monitors/06-infra-queue-backlog.yaml")["spec"]
    return MonitorSpec.model_validate({**doc, "startupGrace": grace})


def _ready(at: datetime | None) -> dict:
    if at is None:
        return {"conditions": [{"type": "Ready", "status": "False", "reason": "RolloutInProgress"}]}
    return {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": at.isoformat()}]}


def _decide(ev: Evaluation, strategy: dict, now: datetime, prev: MonitorStatus | None = None, grace: str = "2m"):
    return decide("desk", "backlog", 1, _spec(grace), prev or MonitorStatus(), ev, strategy, now)


def _quiet(d: MonitorDecision) -> bool:
    return d.incident is None and d.alert is None and d.status.stale_expected is True


def test_no_data_from_a_strategy_not_yet_ready_or_ready_within_the_grace_is_expected():
    for strategy in (_ready(None), {}, _ready(T0 - timedelta(seconds=30))):
        d = _decide(NO_DATA, strategy, T0)
        assert _quiet(d), strategy
        assert d.status.detail.startswith(STARTING_NOTE) and d.status.first_data is None
        assert d.status.finding is None and d.status.stale is True


def test_past_the_grace_no_data_is_a_stale_finding_once():
    strategy, prev, opened = _ready(T0), MonitorStatus(), []
    for seconds in range(0, 240, 5):
        d = _decide(NO_DATA, strategy, T0 + timedelta(seconds=seconds), prev)
        if d.incident is not None:
            opened.append(seconds)
            assert d.incident.class_ == IncidentClass.stale_data and d.alert is not None
            d.status.incident = d.incident.name
        else:
            assert (seconds < 120) == bool(d.status.stale_expected), seconds
        prev = d.status
    assert opened == [120]


def test_data_once_then_none_is_a_finding_at_once_even_within_the_grace():
    strategy = _ready(T0)
    first = _decide(CLEAR, strategy, T0 + timedelta(seconds=10))
    assert first.status.first_data == T0 + timedelta(seconds=10)
    gone = _decide(NO_DATA, strategy, T0 + timedelta(seconds=15), first.status)
    assert gone.incident is not None and gone.alert is not None and not gone.status.stale_expected
    assert gone.status.first_data == first.status.first_data, "kept: the grace never applies again"


@pytest.mark.parametrize("ev", [UNREACHABLE, BAD_BASELINE], ids=["unreachable", "bad-baseline"])
def test_an_unreachable_source_or_a_bad_baseline_is_a_finding_at_once(ev):
    d = _decide(ev, _ready(None), T0)
    assert d.incident is not None and d.alert is not None and not d.status.stale_expected


def test_a_breach_on_data_within_the_grace_opens_its_incident():
    d = _decide(BREACH, _ready(T0), T0 + timedelta(seconds=5))
    assert d.incident is not None and "breach: value 5000" in d.incident.summary and d.status.finding == "breach"


def test_a_zero_grace_or_a_ready_time_that_cannot_be_read_gives_no_grace():
    assert _decide(NO_DATA, _ready(None), T0, grace="0s").incident is not None
    unreadable = {"conditions": [{"type": "Ready", "status": "True"}]}
    assert _decide(NO_DATA, unreadable, T0).incident is not None
    assert _decide(NO_DATA, {"readySince": "yesterday"}, T0).incident is not None


def test_no_series_and_no_samples_are_no_data_and_an_unreachable_source_is_not():
    spec = _spec()

    class Empty:
        def query(self, expr, at=None):  # type: ignore[no-untyped-def]
            from stratops.monitors.prometheus import NoSeries

            raise NoSeries(f"no data for {expr!r}")

    class Down:
        def query(self, expr, at=None):  # type: ignore[no-untyped-def]
            raise SourceUnreachable("connection refused")

    class Answers:
        def query(self, expr, at=None):  # type: ignore[no-untyped-def]
            return [Series({}, [(T0, 10.0)])]

    load = lambda name, key: ""  # noqa: E731
    assert evaluate(spec, None, Empty(), load, T0, 0).no_data
    down = evaluate(spec, None, Down(), load, T0, 0)
    assert down.stale and down.unreachable and not down.no_data
    assert not evaluate(spec, None, Answers(), load, T0, 0).stale
