"""`stratops triage` through the real entry point, without a cluster (stdin is not a terminal)."""

from __future__ import annotations

import json
from datetime import UTC

import pytest
import yaml
from typer.testing import CliRunner

from stratops.cli.main import app
from stratops.recovery import tree

ENV = {"COLUMNS": "250", "KUBECONFIG": "/nonexistent/kubeconfig"}


def run(*args: str, input: str | None = None):
    res = CliRunner().invoke(app, ["triage", *args], env=ENV, input=input)
    assert "Traceback" not in res.output
    return res, " ".join(res.output.split())


def test_answers_reach_an_action_with_the_command_filled_in():
    res, out = run("acks-silent", "--answer", "no", "--strategy", "mean-revert", "-n", "fx")
    assert res.exit_code == 0, res.output
    assert "Is the broker's status page green? → No" in out
    assert "KILL-SWITCH (killSwitch)" in out
    assert "Broker outage: halt order entry now" in out
    assert "stratops kill mean-revert --reason 'triage acks-silent: No' -n fx" in out
    assert "runbook broker-failover (stratops runbook show broker-failover)" in out


def test_multiple_choice_by_label_any_case_and_y_n():
    res, out = run("not-trading", "-a", "N", "-a", "yes", "-a", "Y", "-a", "A RISK LIMIT BLOCKS THEM")
    assert res.exit_code == 0, res.output
    assert "INVESTIGATE" in out and "never at 3am" in out
    assert "What happens to its orders? → a risk limit blocks them" in out


def test_resume_path_shows_reconcile_then_resume():
    res, out = run("stale-data", "-a", "yes", "-a", "matched", "-s", "mr", "--evidence", "drop copy 09:10")
    assert res.exit_code == 0
    assert (
        "stratops reconcile mr --result Matched --evidence 'drop copy 09:10' && "
        "stratops resume mr --reason 'triage stale-data: Yes > Matched'"
    ) in out


def test_incomplete_answers_exit_2_with_the_next_question_and_its_answers():
    res, out = run("latency-spike", "-a", "data ingest", input="")
    assert res.exit_code == 2
    assert "next question Are more than 1000 messages unprocessed?" in out
    assert "answers 'Yes', 'No'" in out
    res, out = run("latency-spike")  # no answers, no terminal: never waits for input
    assert res.exit_code == 2 and "Where is the latency?" in out
    assert "'order route', 'model decision', 'data ingest', 'back to normal for 15 minutes'" in out


def test_no_symptom_without_a_terminal_lists_them_and_exits_2():
    res, out = run()
    assert res.exit_code == 2
    for s in tree.SYMPTOMS:
        assert s.id in out


def test_json_and_yaml_for_scripts():
    res, _ = run("pnl-diverging", "-a", "yes", "-a", "yes", "-o", "json", "-s", "mr")
    assert res.exit_code == 0
    data = json.loads(res.stdout)
    assert data["action"] == {
        "kind": "rollback",
        "why": data["action"]["why"],
        "command": "stratops rollback mr --reason 'triage pnl-diverging: Yes > Yes'",
        "runbook": "rollback-known-good",
    }
    assert [p["answer"] for p in data["path"]] == ["Yes", "Yes"] and data["next"] is None
    res, _ = run("pnl-diverging", "-a", "no", "-o", "yaml")
    assert res.exit_code == 2
    data = yaml.safe_load(res.stdout)
    assert data["action"] is None
    assert data["next"] == {
        "id": "slippage",
        "question": "Is realised minus expected more than 2 bps?",
        "answers": ["Yes", "No"],
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "error: no symptom 'nope'; symptoms: acks-silent, not-trading"),
        (
            ["acks-silent", "-a", "maybe"],
            "error: 'maybe' is not an answer to \"Is the broker's status page green?\"; valid answers: 'Yes', 'No' (or "
            "y, n)",
        ),
        (["acks-silent", "-a", "no", "-a", "yes"], "error: too many answers: No already reaches killSwitch"),
        (["acks-silent", "-a", "no", "--apply"], "error: --apply needs --strategy NAME"),
        (["acks-silent", "-a", "no", "-o", "xml"], "error: --output must be text, json or yaml, not 'xml'"),
        (["acks-silent", "-a", "no", "--apply", "-s", "mr"], "add --yes to apply without one"),
        (
            ["stale-data", "-a", "y", "-a", "matched", "--apply", "-s", "mr", "--yes"],
            "error: resume records the reconciliation first: give --evidence",
        ),
    ],
)
def test_errors_are_one_line_exit_1(args, message):
    res, out = run(*args)
    assert res.exit_code == 1, res.output
    assert message in out
    assert len(res.stderr.strip().splitlines()) <= 2  # one line, wrapped at most once by rich


def test_apply_investigate_needs_no_cluster():
    res, out = run("position-mismatch", "-a", "yes", "-a", "unknown", "--apply", "-s", "mr")
    assert res.exit_code == 0 and "investigate: nothing to apply" in out


def test_apply_without_a_reachable_cluster_is_one_line():
    res, out = run("position-mismatch", "-a", "no", "--apply", "-s", "mr", "--yes")
    assert res.exit_code == 1 and "error: cannot load a kubeconfig" in out


def test_apply_investigate_after_a_mismatch_records_it():
    # position-mismatch: the broker is right, restored, still Mismatched -> investigate, but the
    # mismatch with its evidence is recorded (it refuses a resume): that needs the cluster.
    res, out = run(
        "position-mismatch",
        "-a",
        "y",
        "-a",
        "the broker",
        "-a",
        "y",
        "-a",
        "mismatched",
        "--evidence",
        "short 1m EURUSD",
        "--apply",
        "-s",
        "mr",
        "--yes",
    )
    assert "INVESTIGATE" in out and "nothing to apply" not in out
    assert res.exit_code == 1 and "error: cannot load a kubeconfig" in out


def test_json_and_yaml_output_leave_out_managed_fields(capsys):
    import json

    from stratops.cli.lifecycle import emit

    obj = {
        "metadata": {"name": "s", "managedFields": [{"manager": "kubectl"}]},
        "items": [{"metadata": {"name": "p", "managedFields": []}}],
        "spec": {"x": 1},
    }
    for output in ("json", "yaml"):
        assert emit([obj], output)
        text = capsys.readouterr().out
        assert "managedFields" not in text and '"name": "s"' in json.dumps(obj) and "x" in text
    assert obj["metadata"]["managedFields"], "the caller's object is left as it was"


def test_status_reads_at_80_columns():
    from rich.console import Console

    from stratops.cli.lifecycle import status_table

    def strategy(name: str, ns: str = "fx-desk") -> dict:
        return {
            "metadata": {"name": name, "namespace": ns},
            "status": {
                "phase": "Throttled",
                "mode": "paper",
                "activeVersion": "1.4.2",
                "lastKnownGood": "1.4.2",
                "tradingState": "REDUCING",
                "openIncidents": [f"mean-revert-staledata-{i:02d}" for i in range(12)],
                "conditions": [{"type": "GatesSatisfied", "status": "False"}],
            },
        }

    long = "a-name-longer-than-the-column-has-room-for"
    for namespaces in (False, True):
        console = Console(width=80, record=True, color_system=None)
        console.print(status_table([strategy("mean-revert"), strategy(long)], namespaces=namespaces))
        lines = console.export_text().splitlines()
        text = "\n".join(lines)
        assert all(len(line) <= 80 for line in lines), text
        assert "…" not in text, text  # nothing cut
        assert lines[0].split() == ["STRATEGY", "PHASE", "MODE", "VERSION", "GOOD", "TRADING", "INCIDENTS", "GATES"], (
            text
        )
        name = "fx-desk/mean-revert" if namespaces else "mean-revert"
        rows = [line.split() for line in lines[1:]]
        assert rows[0][1:] == ["Throttled", "paper", "1.4.2", "1.4.2", "REDUCING", "12", "missing"], (
            text
        )  # no Gate objects given
        # the strategy column: names whole, or wrapped with every character in order
        column = "".join(r[0] for r in rows if r)
        assert column.startswith(name) and column.endswith(f"{'fx-desk/' if namespaces else ''}{long}"), text


def _strategy_with_gates(name: str = "mean-revert", ns: str = "fx-desk") -> dict:
    return {
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "gates": {"preLaunch": "mr-pre", "daily": "fx-daily", "others": ["fx-weekly", "fx-monthly", "fx-gone"]}
        },
        "status": {
            "phase": "Running",
            "mode": "paper",
            "activeVersion": "1.4.2",
            "lastKnownGood": "1.4.2",
            "tradingState": "ACTIVE",
            "openIncidents": ["mean-revert-staledata-7f2c"],
            "broker": {"role": "backup"},
            "conditions": [{"type": "Ready", "status": "True", "message": "1/1 pods Ready running 1.4.2"}],
        },
    }


def _gate(name: str, state: str, ns: str = "fx-desk") -> dict:
    return {"metadata": {"name": name, "namespace": ns}, "status": {"state": state}}


def test_status_counts_the_gates_a_strategy_names_and_wide_names_them():
    """GATES is complete over named (a gate that does not exist, or one of the same name in
    another namespace, is not complete); -o wide names the unsigned ones and the incidents."""
    from rich.console import Console

    from stratops.cli.lifecycle import gate_counts, status_table

    s = _strategy_with_gates()
    gates = [
        _gate("mr-pre", "Complete"),
        _gate("fx-daily", "Complete"),
        _gate("fx-weekly", "Expired"),
        _gate("fx-monthly", "Complete"),
        _gate("fx-gone", "Complete", ns="other-desk"),
    ]
    assert gate_counts(s, gates) == (3, 5, ["fx-weekly", "fx-gone"])
    console = Console(width=80, record=True, color_system=None)
    console.print(status_table([s], gates=gates))
    lines = console.export_text().splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert lines[1].split() == ["mean-revert", "Running", "paper", "1.4.2", "1.4.2", "ACTIVE", "1", "3/5"]
    console = Console(width=200, record=True, color_system=None)
    console.print(status_table([s], gates=gates, wide=True))
    lines = console.export_text().splitlines()
    assert lines[0].split()[8:] == ["READY", "BROKER", "OPEN", "INCIDENTS", "UNSIGNED", "GATES"]
    assert lines[1].split()[8:] == ["1/1", "backup", "mean-revert-staledata-7f2c", "fx-weekly,", "fx-gone"]
    nothing = {"metadata": {"name": "bare", "namespace": "fx-desk"}, "spec": {}, "status": {}}
    assert gate_counts(nothing, gates) == (0, 0, [])


def test_incident_age_reads_as_kubectl_prints_it():
    from datetime import datetime

    from stratops.cli.incidents import age

    now = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
    assert [
        age(t, now)
        for t in (
            "2026-12-01T11:59:15Z",
            "2026-12-01T11:48:00Z",
            "2026-12-01T09:00:00+00:00",
            "2026-11-28T12:00:00Z",
            "2026-12-01T12:00:05Z",
        )
    ] == ["45s", "12m", "3h", "3d", "0s"]
