"""Hysteresis (spec.clearFor): a flapping monitor is one episode, one incident and one page, and
a flap is never a way around an incident a person resolved (stratops.monitors.decide)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as hs

from cases import example
from stratops.models.monitor import MonitorSpec, MonitorStatus
from stratops.monitors.decide import MonitorDecision, clear_for, decide
from stratops.monitors.evaluate import Evaluation

T0 = datetime(2026, 12, 6, 9, tzinfo=UTC)
WINDOW = 20  # seconds: the clearFor of the tests below


def _spec(clear: str | None = f"{WINDOW}s", frequency: str = "5s") -> MonitorSpec:
    doc = example("monitors/06-infra-queue-backlog.yaml")["spec"]
    return MonitorSpec.model_validate({**doc, "frequency": frequency, **({"clearFor": clear} if clear else {})})


def _ev(seen: str | None) -> Evaluation:
    return Evaluation(
        None if seen == "stale" else 5000.0 if seen == "breach" else 10.0,
        seen == "breach",
        seen == "stale",
        1 if seen == "breach" else 0,
        "value",
    )


class Desk:
    """What the MonitorRunner does with a decision, with incidents kept in memory: a rejoin
    succeeds only while the incident is open, else the new incident opens."""

    def __init__(self, spec: MonitorSpec) -> None:
        self.spec, self.status = spec, MonitorStatus()
        self.incidents: dict[str, bool] = {}  # name -> open
        self.opened: list[tuple[float, str]] = []  # (t, name)
        self.alerts: list[str] = []

    def evaluate(self, t: float, seen: str | None) -> MonitorDecision:
        d = decide("desk", "backlog", 1, self.spec, self.status, _ev(seen), {}, T0 + timedelta(seconds=t))
        st = d.status
        if d.alert is not None:
            self.alerts.append(d.alert.state)
        if d.rejoin is not None and self.incidents.get(d.rejoin):
            pass  # the same episode's incident stands
        elif d.incident is not None:
            st.incident = d.incident.name
            self.incidents[d.incident.name] = True
            self.opened.append((t, d.incident.name))
        self.status = st
        return d

    def resolve_all(self) -> None:
        self.incidents = dict.fromkeys(self.incidents, False)


def test_the_default_window_is_three_periods_at_most_five_minutes_and_0s_turns_it_off():
    assert clear_for(_spec(None, "5s")) == timedelta(seconds=15)
    assert clear_for(_spec(None, "1h")) == timedelta(minutes=5)
    assert clear_for(_spec("90s")) == timedelta(seconds=90)
    desk = Desk(_spec("0s"))
    for t, seen in enumerate(["breach", None, "breach", None, "breach"]):
        desk.evaluate(t, seen)
    assert len(desk.opened) == 3 and desk.alerts == ["firing", "resolved", "firing", "resolved", "firing"]


def test_a_flap_within_the_window_is_one_incident_and_one_page():
    desk = Desk(_spec())
    for t, seen in [(0, "breach"), (5, None), (10, "breach"), (15, None), (30, "breach"), (35, None)]:
        desk.evaluate(t, seen)
    assert len(desk.opened) == 1
    assert desk.alerts == ["firing"], "no resolved message while the finding clears, no second firing"
    assert desk.status.finding == "breach" and desk.status.clearing_since == T0 + timedelta(seconds=35)
    d = desk.evaluate(55, None)  # clear for the whole window: the episode ends
    assert d.alert is not None and d.alert.state == "resolved"
    assert desk.status.finding is None and desk.status.incident is None and desk.status.clearing_since is None
    desk.evaluate(60, "breach")
    assert len(desk.opened) == 2 and desk.alerts == ["firing", "resolved", "firing"]


def test_a_finding_back_after_its_incident_was_resolved_opens_a_new_one_that_acts():
    desk = Desk(_spec())
    desk.evaluate(0, "breach")
    desk.evaluate(5, None)
    desk.resolve_all()  # on-call resolved it (a resume needs that) while the monitor was clearing
    d = desk.evaluate(10, "breach")
    assert d.rejoin == desk.opened[0][1] and d.incident is not None
    assert len(desk.opened) == 2 and desk.incidents[desk.opened[1][1]], "the new incident is open, and acts"
    assert d.incident.action == "throttle"


def test_a_status_written_before_clear_for_existed_is_read_by_its_flags():
    desk = Desk(_spec())
    desk.status = MonitorStatus(breaching=True, consecutive_breaches=3, incident="old-1")
    desk.incidents["old-1"] = True
    d = desk.evaluate(0, None)
    assert d.alert is None and desk.status.finding == "breach" and desk.status.incident == "old-1"


def test_stale_findings_clear_the_same_way_and_keep_their_group():
    desk = Desk(_spec())
    d = desk.evaluate(0, "stale")
    assert d.group == "stale"
    desk.evaluate(5, None)
    desk.resolve_all()
    d = desk.evaluate(10, "stale")
    assert d.rejoin is not None and d.group == "stale", "a new stale incident still joins the strategy's group"


# One monitor's history: evaluations at increasing times, each breaching or clear, and now and
# then a person resolving every incident.
steps = hs.lists(
    hs.tuples(hs.integers(1, 15), hs.sampled_from(["breach", None, "resolve"])),
    min_size=1,
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(steps)
def test_incidents_open_exactly_when_the_finding_was_clear_for_the_window_or_its_incident_was_resolved(history):
    desk = Desk(_spec())
    t = 0
    clear_from: float | None = None  # start of the current clear run
    ended = True  # whether the last episode has ended (clear for the whole window)
    resolved = False  # whether a person resolved the incidents since the last one opened
    for dt, what in history:
        t += dt
        if what == "resolve":
            desk.resolve_all()
            resolved = True
            continue
        before = len(desk.opened)
        desk.evaluate(t, what)
        opened = len(desk.opened) - before
        if what is None:
            clear_from = t if clear_from is None else clear_from
            ended = ended or t - clear_from >= WINDOW
            assert opened == 0
            continue
        came_back = clear_from is not None or ended
        expected = 1 if ended or (came_back and resolved) else 0
        assert opened == expected, (t, history)
        if opened:
            resolved = False
        clear_from, ended = None, False
    firing, resolved_msgs = desk.alerts.count("firing"), desk.alerts.count("resolved")
    assert firing - resolved_msgs in (0, 1) and all(a != b for a, b in zip(desk.alerts, desk.alerts[1:], strict=False))


def test_no_data_from_a_halted_strategy_does_not_end_its_breach_episode():
    """Seen in the long soak: a strategy killed while breaching, its source down: the silence
    (stale, expected of a halted strategy) ended the breach's episode after clearFor, and the
    breach seen again when data came back opened a second incident while the first was open."""
    spec, latched = _spec(), {"killSwitch": {"latched": True}}
    status, opened = MonitorStatus(), []
    for t, seen, strategy in [
        (0, "breach", {}),
        (5, "breach", latched),  # killed: the kill-switch latched, the breach still in the data
        (10, "stale", latched),
        (10 + 2 * WINDOW, "stale", latched),  # silent for longer than clearFor
        (15 + 2 * WINDOW, "breach", latched),  # the data is back, still breaching
    ]:
        d = decide("desk", "backlog", 1, spec, status, _ev(seen), strategy, T0 + timedelta(seconds=t))
        if d.incident is not None:
            opened.append(d.incident.name)
            d.status.incident = d.incident.name
        status = d.status
        assert status.incident == opened[0] and status.finding == "breach", t
    assert len(opened) == 1
    # Data back and clear: the episode clears as usual, after clearFor.
    for t in (20 + 2 * WINDOW, 21 + 3 * WINDOW):
        status = decide("desk", "backlog", 1, spec, status, _ev(None), latched, T0 + timedelta(seconds=t)).status
    assert status.finding is None and status.incident is None


@settings(max_examples=200, deadline=None)
@given(steps, hs.booleans())
def test_a_decision_never_changes_the_status_it_was_made_from(history, undelivered):
    """decide() copies the status shallowly (a deep copy was a third of an evaluation's CPU):
    the status it was made from, which the runner keeps as the one it last wrote, must come out
    the same however the new one is then changed (its alert and incident replaced, as the
    runner does)."""
    from stratops.models.monitor import LastAlert

    spec, status, t = _spec(), MonitorStatus(), 0.0
    for later, seen in history:
        t += later
        before = status.model_dump()
        d = decide("desk", "backlog", 1, spec, status, _ev(seen), {}, T0 + timedelta(seconds=t))
        st = d.status
        if d.alert is not None:
            st.last_alert = LastAlert(at=T0, channel=spec.alert.channel, state=d.alert.state, delivered=not undelivered)
        elif d.resend is not None and st.last_alert is not None:
            st.last_alert = st.last_alert.model_copy(update={"delivered": True})
        if d.incident is not None:
            st.incident = d.incident.name
        st.detail = "changed after the decision"
        assert status.model_dump() == before
        status = st
