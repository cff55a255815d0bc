"""What the operator keeps of each strategy's status for its monitors
(stratops.monitors.decide.status_read_by_monitors): every decision that reads a strategy's status
decides the same on it as on the whole status (issue 21: the whole status was kept per strategy)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stratops.monitors.decide import status_read_by_monitors
from stratops.monitors.evaluate import stale_expected
from stratops.recovery.actions import rolling_out

versions = st.sampled_from(["1.4.2", "1.4.3", "", None])
noise = st.dictionaries(st.sampled_from(["conditions", "revisionHistory", "phase", "audit"]), st.text(max_size=5))
statuses = st.builds(
    lambda ks, ro, lkg, extra: {
        **extra,
        **({"killSwitch": ks} if ks is not None else {}),
        **({"rollout": ro} if ro is not None else {}),
        **({"lastKnownGood": lkg} if lkg != "absent" else {}),
    },
    st.none()
    | st.fixed_dictionaries({}, optional={"latched": st.booleans() | st.none(), "reason": st.text(max_size=3)}),
    st.none() | st.fixed_dictionaries({}, optional={"version": versions, "startedAt": st.text(max_size=3)}),
    versions | st.just("absent"),
    noise,
)


@given(statuses)
def test_the_monitors_decide_the_same_on_what_is_kept(status):
    kept = status_read_by_monitors(status)
    assert stale_expected(kept) == stale_expected(status)
    assert rolling_out(kept) == rolling_out(status)
    assert set(kept) <= {"killSwitch", "rollout", "lastKnownGood"}


def test_nothing_is_kept_of_a_strategy_without_status():
    assert status_read_by_monitors(None) == {} and status_read_by_monitors({"phase": "Running"}) == {}
