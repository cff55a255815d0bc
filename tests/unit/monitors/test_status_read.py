"""What the operator keeps of each strategy's status for its monitors
(stratops.monitors.decide.status_read_by_monitors): every decision that reads a strategy's status
decides the same on it as on the whole status (issue 21: the whole status was kept per strategy)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from cases import example
from stratops.models.monitor import MonitorSpec, MonitorStatus
from stratops.monitors.decide import starting_up, status_read_by_monitors
from stratops.monitors.evaluate import Evaluation, stale_expected
from stratops.recovery.actions import rolling_out

versions = st.sampled_from(["1.4.2", "1.4.3", "", None])
noise = st.dictionaries(st.sampled_from(["conditions", "revisionHistory", "phase", "audit"]), st.text(max_size=5))
conditions = st.lists(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["Ready", "Healthy", "GatesSatisfied"])},
        optional={
            "status": st.sampled_from(["True", "False", "Unknown"]),
            "lastTransitionTime": st.sampled_from(["2026-12-07T09:00:00Z", "2026-12-07T09:01:30Z", "", "x"]),
        },
    ),
    max_size=3,
    unique_by=lambda c: c["type"],
)
statuses = st.builds(
    lambda ks, ro, lkg, extra, conds: {
        **extra,
        **({"conditions": conds} if conds is not None else {}),
        **({"killSwitch": ks} if ks is not None else {}),
        **({"rollout": ro} if ro is not None else {}),
        **({"lastKnownGood": lkg} if lkg != "absent" else {}),
    },
    st.none()
    | st.fixed_dictionaries({}, optional={"latched": st.booleans() | st.none(), "reason": st.text(max_size=3)}),
    st.none() | st.fixed_dictionaries({}, optional={"version": versions, "startedAt": st.text(max_size=3)}),
    versions | st.just("absent"),
    noise,
    st.none() | conditions,
)

SPEC = MonitorSpec.model_validate({**example("monitors/06-infra-queue-backlog.yaml")["spec"], "startupGrace": "2m"})
NO_DATA = Evaluation(None, False, True, 0, "stale: no data", no_data=True)


@given(statuses)
def test_the_monitors_decide_the_same_on_what_is_kept(status):
    kept = status_read_by_monitors(status)
    assert stale_expected(kept) == stale_expected(status)
    assert rolling_out(kept) == rolling_out(status)
    assert set(kept) <= {"killSwitch", "rollout", "lastKnownGood", "readySince"}
    for minutes in (0, 1, 3):
        now = datetime(2026, 12, 7, 9, 1, 30, tzinfo=UTC) + timedelta(minutes=minutes)
        assert starting_up(SPEC, MonitorStatus(), NO_DATA, kept, now) == starting_up(
            SPEC, MonitorStatus(), NO_DATA, status, now
        )


def test_nothing_is_kept_of_a_strategy_without_status():
    assert status_read_by_monitors(None) == {} and status_read_by_monitors({"phase": "Running"}) == {}
