"""Every command the README and the examples document, run as written.

The walkthrough below is a desk's day on the local cluster: the README's commands in the order
on-call would type them, each as the user who would type it (the chart's traders tina and tom,
its risk owners rita and rob; the administrator only where an administrator acts). Each user's
kubeconfig names the desk's namespace, as a desk's does, so no `-n` is added to what the README
says: a concrete command (a shell block, an example's header) runs word for word, only its
namespace read from the context; a template (the Commands table) runs with its placeholders
filled in and no option it does not name.

A few commands need a whole demo, an image build or a registry: DOCUMENTED_ELSEWHERE names the
test that runs each one, and why it is run there. `test_every_documented_command_is_run` fails
when a command is documented and run nowhere."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from cases import example
from docs import Documented, documented, options, subcommand_paths
from lifecycle_helpers import GITOPS, NAME, Desk, grant_chart_roles, strategy_doc
from stratops.testing.controlplane import kubectl_binary
from stratops.testing.wait import wait_for
from terminal import Terminal

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
STRATOPS = str(Path(sys.executable).parent / "stratops")  # the console script `make setup` installs

#: Documented commands the walkthrough runs (it checks at its end that it ran each one).
WALKED = (
    "stratops --version",
    "stratops --install-completion",
    "stratops crds [--check]",
    "stratops validate PATH… [--base BASE…]",
    "stratops status [-n NS | -A] [-o table|wide|json|yaml]",
    "stratops describe STRATEGY [-o json|yaml]",
    "stratops gate list [-n NS | -A] [-o wide]",
    "stratops gate sign GATE ITEM… | --all --evidence … [--for FILE]",
    "stratops gate audit [--cadence weekly]",
    "stratops promote STRATEGY --reason …",
    "stratops throttle STRATEGY --reason …",
    "stratops reconcile STRATEGY --result Matched --evidence …",
    "stratops resume STRATEGY --reason … [--throttled]",
    "stratops incident list [--open] [-o wide] | show NAME | ack NAME",
    "stratops incident contain NAME --detail …",
    "stratops incident resolve NAME --reason … --root-cause … --action … --owner …",
    "stratops runbook list [-c CATEGORY] | show RUNBOOK",
    "stratops runbook verify RUNBOOK STRATEGY",
    'stratops runbook run broker-failover mean-revert -n desk --reason "prime-a acks silent" --dry-run',
    'stratops runbook run broker-failover mean-revert -n desk --reason "prime-a acks silent"',
    "stratops runbook run RUNBOOK STRATEGY --reason … [--dry-run] [--yes] [--answer STEP=TEXT…]",
    "stratops runbook history [STRATEGY]",
    "stratops triage stale-data -a no -a all -o json",
    "stratops triage acks-silent --answer yes --answer no --strategy mean-revert -n fx",
    "stratops triage [SYMPTOM] [--answer A]… [--strategy NAME -n NS] [--apply [--yes]] [-o json|yaml]",
    "stratops failover STRATEGY --reason … [--to backup|primary]",
    "stratops kill STRATEGY --reason …",
    "stratops kill --selector desk=fx --reason …",
    "stratops rearm STRATEGY --reason …",
    "stratops rollback STRATEGY --reason …",
    "kill --all [-A] --reason …",
    "stratops audit verify [-n NS | -A]",
    "stratops audit export --since 90d [--until now] [-n NS | -A] [--out DIR]",
    "kubectl apply -f examples/strategy.yaml -f examples/baseline.yaml -R -f examples/monitors/ -f examples/gates/",
)
EXAMPLES_HEADER = WALKED[-1]  # run by test_examples_header_applies_with_kubectl

#: Documented commands run by another test, and why there.
DOCUMENTED_ELSEWHERE = {
    "stratops handover release STRATEGY --book INSTRUMENT=QUANTITY… --reason …": (
        "tests/e2e/test_handover.py",
        "test_an_old_version_that_does_not_halt_is_stopped_and_a_trader_releases_the_new_one",
        "needs a handover held by a hung old version: real containers on the real node",
    ),
    "make demo": (
        "tests/e2e/test_demo.py",
        "test_make_demo_sets_up_the_desk_and_make_shell_drives_it",
        "the whole demo: its own control plane, Prometheus and real node",
    ),
    "make shell": (
        "tests/e2e/test_demo.py",
        "test_make_demo_sets_up_the_desk_and_make_shell_drives_it",
        "needs the running demo; run there from a bare second shell",
    ),
    "stratops dev up [--no-examples] [--once] [--nodes N] [--real-node|--no-real-node]": (
        "tests/e2e/test_demo.py",
        "test_make_demo_without_a_real_node_runs_the_strategy_as_a_host_process",
        "the demo with --once --no-real-node (the other demo test runs it plain)",
    ),
    "stratops drill SCENARIO [-s STRATEGY] [-n NS]": (
        "tests/e2e/test_drills.py",
        "test_broker_outage_drill_kills_and_says_what_the_resume_needs",
        "needs the demo's desk at rest on real metrics; one test per scenario there",
    ),
    "stratops operator -n NS… | -A [--metrics-port 8080] [--liveness URL] [--shard I/N]": (
        "operator/stratops/testing/fixtures.py",
        "operator",
        "every e2e test's operator is `stratops operator -n 't-*' --metrics-port …` as a process; "
        "tests/e2e/test_shards.py runs it sharded (STRATOPS_SHARD, which --shard sets)",
    ),
    "make test": (".ci/run", "make test", "CI runs it: the README's test command"),
    "make lint": (".ci/run", "make lint", "CI runs it before the tests"),
    "make unit": (
        "tests/unit/cli/test_documented_commands.py",
        "test_make_target_exists",
        "a part of `make test` (pytest tests/unit)",
    ),
    "make e2e": (
        "tests/unit/cli/test_documented_commands.py",
        "test_make_target_exists",
        "a part of `make test` (pytest tests/e2e)",
    ),
    "make bench": (
        "tests/unit/cli/test_documented_commands.py",
        "test_make_target_exists",
        "benchmarks print figures; they are run by hand, not in CI (the machines are shared and noisy)",
    ),
    "make bench-rollouts": (
        "tests/unit/cli/test_documented_commands.py",
        "test_make_target_exists",
        "a benchmark beside Argo Rollouts (built from its Go module): run by hand, not in CI",
    ),
    "make soak": (
        "tests/e2e/test_soak.py",
        "test_the_short_soak_finds_no_violation",
        "runs bench/soak.py with the seed and length `make soak` gives it",
    ),
    "make crds": (
        "tests/unit/models/test_models.py",
        "test_crds_are_generated_from_the_current_models",
        "the unit test fails when crds/ or the chart's copies differ from what it writes",
    ),
    "make image": (
        "tests/e2e/test_image.py",
        "test_image_runs_non_root_and_prints_its_version",
        "builds the image with hack/build-image.sh, as `make image` does",
    ),
    "BASE_IMAGE=registry.example/python:3.11 make image": (
        "tests/e2e/test_image.py",
        "test_image_runs_non_root_and_prints_its_version",
        "the image test builds on the locally built base (BASE_IMAGE): no registry is reachable",
    ),
    "docker run --rm stratops:0.1.0 --version": (
        "tests/e2e/test_image.py",
        "test_image_runs_non_root_and_prints_its_version",
        "runs the built image for --version",
    ),
    "helm install stratops charts/stratops -n desk --create-namespace --set image.repository=REGISTRY/stratops --set "
    "image.tag=0.1.0": (
        "tests/e2e/test_chart.py",
        "test_helm_install_and_upgrade_keep_the_webhook_certificate",
        "a real `helm install` of the chart; REGISTRY is yours",
    ),
    "stratops triage": (
        "tests/e2e/test_triage.py",
        "test_interactive_triage_answered_by_keystrokes",
        "the interactive menus, answered by keystrokes in tmux",
    ),
    "export KUBECONFIG=~/.kube/config": (
        "operator/stratops/testing/fixtures.py",
        "use_existing_cluster",
        "with the line below: the suite on a cluster of your own (its KUBECONFIG)",
    ),
    "USE_EXISTING_CLUSTER=1 make e2e": (
        "operator/stratops/testing/fixtures.py",
        "use_existing_cluster",
        "needs a cluster of your own; the fixtures honour it",
    ),
    "make kind-up": (
        "tests/e2e/test_kind.py",
        "test_make_kind_e2e_runs_the_chart_and_real_strategy_pods_and_kind_down_leaves_nothing",
        "a kind cluster of its own: make kind-e2e runs kind-up first",
    ),
    "make kind-e2e": (
        "tests/e2e/test_kind.py",
        "test_make_kind_e2e_runs_the_chart_and_real_strategy_pods_and_kind_down_leaves_nothing",
        "with two of the kind tests (KIND_E2E_ARGS), to stay within CI's time",
    ),
    "make kind-down": (
        "tests/e2e/test_kind.py",
        "test_make_kind_e2e_runs_the_chart_and_real_strategy_pods_and_kind_down_leaves_nothing",
        "deletes the test's cluster, then the test checks that nothing is left",
    ),
}


def in_namespace(kubeconfig: Path | str, namespace: str, path: Path) -> Path:
    """KUBECONFIG with every context's namespace set to NAMESPACE (a desk user's kubeconfig)."""
    doc = yaml.safe_load(Path(kubeconfig).read_text())
    for c in doc["contexts"]:
        c["context"]["namespace"] = namespace
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    return path


def test_every_documented_command_is_run():
    docs = {d.command for d in documented()}
    assert docs == set(WALKED) | set(DOCUMENTED_ELSEWHERE), (
        f"documented but run nowhere: {sorted(docs - set(WALKED) - set(DOCUMENTED_ELSEWHERE))}; "
        f"listed but no longer documented: {sorted((set(WALKED) | set(DOCUMENTED_ELSEWHERE)) - docs)}"
    )
    assert not set(WALKED) & set(DOCUMENTED_ELSEWHERE)
    for command, (path, name, _why) in DOCUMENTED_ELSEWHERE.items():
        text = (ROOT / path).read_text()
        assert re.search(rf"\b{re.escape(name)}\b", text), f"{command}: {path} has no {name}"


class Walk:
    """Runs documented commands as the desk's users, checking each is run as it is written."""

    def __init__(self, kubeconfigs: dict[str, Path], namespace: str, tmp: Path) -> None:
        self.kubeconfigs, self.ns, self.tmp = kubeconfigs, namespace, tmp
        self.docs = {d.command: d for d in documented()}
        self.ran: set[str] = set()

    def check_as_written(self, doc: Documented, argv: list[str]) -> None:
        words = shlex.split(doc.command)[1:] if doc.command.startswith("stratops ") else shlex.split(doc.command)
        if doc.where != "README Commands table":  # concrete: word for word, but for the namespace
            expected = [w for i, w in enumerate(words) if not (w == "-n" or (i and words[i - 1] == "-n"))]
            got = [w for i, w in enumerate(argv) if not (w == "-n" or (i and argv[i - 1] == "-n"))]
            assert got == expected, f"{doc.command!r} is run as {shlex.join(argv)!r}"
            return
        paths = subcommand_paths(doc.command)
        assert any(argv[: len(p)] == p for p in paths), f"{doc.command!r} is run as {shlex.join(argv)!r}"
        unnamed = options(" ".join(argv)) - options(doc.context)
        assert not unnamed, f"{doc.command!r} is run with {sorted(unnamed)}, which its row does not name"

    def here(self, argv: list[str]) -> list[str]:
        """ARGV with the namespace it names (-n desk) replaced by the desk's here."""
        return [self.ns if i and argv[i - 1] == "-n" else w for i, w in enumerate(argv)]

    def run(self, doc: str, argv: list[str], user: str | None = "tina", code: int = 0, **env: str) -> str:
        """DOC's command as ARGV (after `stratops`), as USER; its output with whitespace folded
        (rich wraps long lines); exit CODE expected."""
        assert doc in self.docs, f"not documented: {doc!r}"
        self.check_as_written(self.docs[doc], argv)
        kubeconfig = str(self.kubeconfigs[user]) if user else str(self.tmp / "no-cluster")
        res = subprocess.run(
            [STRATOPS, *argv],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=ROOT,
            env={"PATH": "/usr/bin:/bin", "HOME": str(self.tmp), "COLUMNS": "200", "KUBECONFIG": kubeconfig, **env},
        )
        out = " ".join((res.stdout + res.stderr).split())
        assert res.returncode == code, (
            f"`{shlex.join(argv)}` as {user}: exit {res.returncode}, not {code}\n{res.stdout}{res.stderr}"
        )
        assert "Traceback" not in out, out
        self.ran.add(doc)
        return out

    def json(self, doc: str, argv: list[str], user: str = "tina") -> Any:
        res = subprocess.run(
            [STRATOPS, *argv],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
            env={"PATH": "/usr/bin:/bin", "HOME": str(self.tmp), "KUBECONFIG": str(self.kubeconfigs[user])},
        )
        assert res.returncode == 0, res.stderr
        self.check_as_written(self.docs[doc], argv)
        self.ran.add(doc)
        return json.loads(res.stdout) if argv[-1] == "json" else yaml.safe_load(res.stdout)


def test_offline_commands_run_as_written(tmp_path):
    """The commands that need no cluster: the version, shell completion, the CRDs, the
    validator, the runbooks and the recovery tree."""
    walk = Walk({}, "", tmp_path)
    from stratops import __version__

    assert walk.run("stratops --version", ["--version"], user=None) == f"stratops {__version__}"
    out = walk.run("stratops --install-completion", ["--install-completion"], user=None, SHELL="/bin/bash")
    assert "bash completion installed" in out
    script = next((tmp_path / ".bash_completions").glob("stratops*"))
    assert "_STRATOPS_COMPLETE" in script.read_text() and script.name in (tmp_path / ".bashrc").read_text()
    walk.run("stratops crds [--check]", ["crds", "--check"], user=None)
    out = walk.run("stratops validate PATH… [--base BASE…]", ["validate", "examples/"], user=None)
    assert "✓ 18 stratops document(s) valid" in out, out  # the baseline ConfigMap is not one
    walk.run("stratops validate PATH… [--base BASE…]", ["validate", "examples/", "--base", "examples/"], user=None)
    out = walk.run(
        "stratops runbook list [-c CATEGORY] | show RUNBOOK", ["runbook", "list", "-c", "broker-failover"], user=None
    )
    assert "broker-failover" in out and "kill-switch" not in out
    out = walk.run(
        "stratops runbook list [-c CATEGORY] | show RUNBOOK", ["runbook", "show", "broker-failover"], user=None
    )
    assert "4. operator switch" in out and "verify:" in out
    doc = "stratops triage stale-data -a no -a all -o json"
    res = subprocess.run(
        [STRATOPS, *doc.split()[1:]],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    # as the README says: answers short of an action print the next question, and exit 2
    assert res.returncode == 2 and json.loads(res.stdout)["next"]["id"] == "backup-feed", res.stdout + res.stderr
    walk.check_as_written(walk.docs[doc], doc.split()[1:])
    walk.ran.add(doc)
    doc = "stratops triage acks-silent --answer yes --answer no --strategy mean-revert -n fx"
    out = walk.run(doc, shlex.split(doc)[1:], user=None)
    # the README's block shows this output
    assert (
        "action KILL-SWITCH (killSwitch)" in out
        and "next stratops kill mean-revert --reason 'triage acks-silent: Yes > No' -n fx" in out
    )
    assert walk.ran == OFFLINE_ONLY, sorted(OFFLINE_ONLY - walk.ran)


def test_examples_header_applies_with_kubectl(cluster, crds, namespace, tmp_path):
    """The command in examples/strategy.yaml's header, with the pinned kubectl, as an
    administrator whose context is the desk's namespace."""
    kubectl = kubectl_binary()
    if kubectl is None:
        pytest.skip("kubectl is built from its Go module (hack/build-kubectl.sh): needs go")
    [doc] = [d for d in documented() if d.where == "examples/strategy.yaml"]
    argv = shlex.split(doc.command)
    assert argv[0] == "kubectl"
    admin = in_namespace(cluster.kubeconfig, namespace, tmp_path / "admin.kubeconfig")
    res = subprocess.run(
        [str(kubectl), *argv[1:]],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KUBECONFIG": str(admin)},
    )
    assert res.returncode == 0, res.stdout + res.stderr
    created = [line for line in res.stdout.splitlines() if line.endswith(" created")]
    kinds = sorted({line.split("/")[0] for line in created})
    assert len(created) == 19 and kinds == [
        "configmap",
        "gate.stratops.io",
        "monitor.stratops.io",
        "strategy.stratops.io",
    ], res.stdout
    assert doc.command == EXAMPLES_HEADER


@pytest.fixture
def desk(kube, namespace, operator):
    d = Desk(kube, namespace)
    yield d
    d.stop_pods()


def test_a_desk_day_with_the_documented_commands(cluster, kube, namespace, desk, tmp_path):
    people = grant_chart_roles(cluster, kube, namespace, tmp_path)
    kubeconfigs = {u: in_namespace(p, namespace, tmp_path / f"{u}.ns.kubeconfig") for u, p in people.items()}
    walk = Walk(kubeconfigs, namespace, tmp_path)

    # The desk as Git has it, applied by the administrator: the gates unsigned, the strategy on
    # paper, re-armed only by rita after a halt that requires it.
    for g in ("daily", "weekly", "pre-launch"):
        desk.create("gates", example(f"gates/{g}.yaml"))
    doc = strategy_doc(killSwitch={"ackDeadline": "20s", "rearmBy": ["rita"]})
    desk.create("strategies", doc)
    desk.wait_status(lambda s: s.get("lastKnownGood") == "1.4.2", "deployed and known-good on paper")
    desk.keep_playing()  # KWOK pods run no process: the SDK acknowledges for them

    # Morning: what stands, what is unsigned.
    out = walk.run("stratops status [-n NS | -A] [-o table|wide|json|yaml]", ["status", "-o", "wide"])
    assert f"{NAME} Running paper 1.4.2 1.4.2 ACTIVE - 0/5" in out and "fx-daily" in out, out
    out = walk.run("stratops gate list [-n NS | -A] [-o wide]", ["gate", "list", "-o", "wide"])
    assert "fx-daily daily" in out and "mean-revert-pre-launch preLaunch" in out, out
    # The daily and weekly checks: rita signs every item (the risk items are the risk owners' only).
    for gate in ("fx-daily", "fx-weekly"):
        out = walk.run(
            "stratops gate sign GATE ITEM… | --all --evidence … [--for FILE]",
            ["gate", "sign", gate, "--all", "--evidence", "https://wiki/desk/checks/today"],
            user="rita",
        )
        assert "as rita" in out, out
    wait_for(
        lambda: (
            desk.custom.get_namespaced_custom_object("stratops.io", "v1alpha1", namespace, "gates", "fx-daily")
            .get("status", {})
            .get("state")
            == "Complete"
        ),
        timeout=30,
        what="the daily gate complete",
    )
    out = walk.run("stratops gate audit [--cadence weekly]", ["gate", "audit", "--cadence", "weekly"])
    assert "all complete" in out and "last signed by rita" in out, out

    # Launch: four eyes on the pre-launch gate (a trader for the desk's items, a risk owner for
    # the risk items), then the promotion.
    prelaunch = example("gates/pre-launch.yaml")["spec"]["items"]
    risk = [i["id"] for i in prelaunch if i.get("signers")]
    desk_items = [i["id"] for i in prelaunch if not i.get("signers")]
    for user, items in (("tina", desk_items), ("rita", risk)):
        out = walk.run(
            "stratops gate sign GATE ITEM… | --all --evidence … [--for FILE]",
            ["gate", "sign", "mean-revert-pre-launch", *items, "--evidence", "https://wiki/launch-review"],
            user=user,
        )
        assert f"as {user} for mean-revert:1.4.2:" in out, out
    # tom promotes: the one who changes the spec is not among its signers
    out = walk.run(
        "stratops promote STRATEGY --reason …", ["promote", NAME, "--reason", "paper run met its criteria"], user="tom"
    )
    described = walk.json("stratops describe STRATEGY [-o json|yaml]", ["describe", NAME, "-o", "yaml"])
    assert described[0]["strategy"]["spec"]["mode"] == "live" and described[0]["strategy"]["status"]["mode"] == "live"
    [row] = walk.json("stratops status [-n NS | -A] [-o table|wide|json|yaml]", ["status", "-o", "json"])
    assert row["status"]["approved"]["signers"] == ["rita", "tina"] and "managedFields" not in row["metadata"], row

    # Slippage: throttle, check it took, reconcile, resume.
    out = walk.run(
        "stratops throttle STRATEGY --reason …", ["throttle", NAME, "--reason", "slippage above the cost model"]
    )
    assert "REDUCING" in out, out
    out = walk.run("stratops runbook verify RUNBOOK STRATEGY", ["runbook", "verify", "throttle", NAME])
    assert "PASS" in out, out
    out = walk.run(
        "stratops reconcile STRATEGY --result Matched --evidence …",
        ["reconcile", NAME, "--result", "Matched", "--evidence", "prime-a statement vs fills"],
    )
    out = walk.run(
        "stratops resume STRATEGY --reason … [--throttled]", ["resume", NAME, "--reason", "slippage back in line"]
    )
    assert "resumed" in out, out
    desk.wait_status(lambda s: s.get("tradingState") == "ACTIVE", "ACTIVE again")

    # A risk owner opens a P0 (the operator halts the strategy) and a P1 that needs no action.
    risk_owner = __import__("kubernetes").client.CustomObjectsApi(cluster.api_client(people["rita"]))
    for name, cls, sev, action, summary in (
        ("gross-exposure", "RiskBreach", "P0", None, "gross exposure above 5m"),
        ("route-amber", "BrokerOutage", "P1", "none", "prime-a status page amber"),
    ):
        risk_owner.create_namespaced_custom_object(
            "stratops.io",
            "v1alpha1",
            namespace,
            "incidents",
            {
                "apiVersion": "stratops.io/v1alpha1",
                "kind": "Incident",
                "metadata": {"name": name},
                "spec": {
                    "class": cls,
                    "severity": sev,
                    "strategy": NAME,
                    "summary": summary,
                    **({"action": action} if action else {}),
                },
            },
        )
    desk.wait_status(lambda s: (s.get("killSwitch") or {}).get("completedAt"), "halted by the P0")
    out = walk.run(
        "stratops incident list [--open] [-o wide] | show NAME | ack NAME", ["incident", "list", "--open", "-o", "wide"]
    )
    assert (
        "gross-exposure RiskBreach P0" in out
        and "route-amber BrokerOutage P1" in out
        and "gross exposure above 5m" in out
    ), out
    walk.run("stratops incident list [--open] [-o wide] | show NAME | ack NAME", ["incident", "ack", "route-amber"])
    walk.run(
        "stratops incident contain NAME --detail …",
        ["incident", "contain", "route-amber", "--detail", "orders confirmed at prime-a"],
    )
    wait_for(
        lambda: (
            desk.custom.get_namespaced_custom_object("stratops.io", "v1alpha1", namespace, "incidents", "route-amber")
            .get("status", {})
            .get("phase")
            == "Contained"
        ),
        timeout=30,
        what="route-amber contained",
    )
    out = walk.run(
        "stratops incident list [--open] [-o wide] | show NAME | ack NAME", ["incident", "show", "route-amber"]
    )
    assert "✓ containment" in out and "by tina" in out, out
    out = walk.run("stratops runbook verify RUNBOOK STRATEGY", ["runbook", "verify", "kill-switch", NAME])
    assert "PASS" in out, out
    for name in ("gross-exposure", "route-amber"):
        walk.run(
            "stratops incident resolve NAME --reason … --root-cause … --action … --owner …",
            [
                "incident",
                "resolve",
                name,
                "--reason",
                "exposure capped, route green",
                "--root-cause",
                "runaway sizing",
                "--action",
                "cap order size",
                "--owner",
                "rita",
            ],
        )

    # The route stays down: the broker-failover runbook, seen first as a dry run, then run at a
    # terminal, which asks at each step.
    dry = 'stratops runbook run broker-failover mean-revert -n desk --reason "prime-a acks silent" --dry-run'
    out = walk.run(dry, walk.here(shlex.split(dry)[1:]))
    assert "would run: stratops failover --to backup" in out and "dry run" in out, out
    asks = 'stratops runbook run broker-failover mean-revert -n desk --reason "prime-a acks silent"'
    argv = walk.here(shlex.split(asks)[1:])
    walk.check_as_written(walk.docs[asks], argv)
    term = Terminal([STRATOPS, *argv], env={"KUBECONFIG": str(kubeconfigs["tina"])}, width=200)
    try:
        term.wait("run `stratops kill")
        term.type("y")
        term.wait("done? say what you did", timeout=120)
        term.type("prime-a confirms 0 working orders, ticket 4711")
        term.wait("run `stratops failover --to backup", timeout=60)
        term.type("y")
        term.wait("reconciliation, as 'Matched: evidence'", timeout=60)
        term.type("Matched: prime-b positions statement vs strategy fills")
        term.wait("run `stratops resume --throttled", timeout=60)
        term.type("y")
        screen = term.wait("[exit", timeout=180)
        assert "[exit 0]" in screen and "PASS" in screen, screen
    finally:
        term.close()
    walk.ran.add(asks)
    assert desk.status()["broker"]["role"] == "backup" and desk.status()["tradingState"] == "REDUCING"

    # prime-a is back: halt through the recovery tree, fail back, resume through the runbook.
    out = walk.run(
        "stratops triage [SYMPTOM] [--answer A]… [--strategy NAME -n NS] [--apply [--yes]] [-o json|yaml]",
        [
            "triage",
            "acks-silent",
            "--answer",
            "yes",
            "--answer",
            "no",
            "--strategy",
            NAME,
            "-n",
            namespace,
            "--apply",
            "--yes",
        ],
    )
    desk.wait_status(
        lambda s: (s.get("killSwitch") or {}).get("latched") and (s.get("killSwitch") or {}).get("completedAt"),
        "halted by the triage",
    )
    out = walk.run(
        "stratops failover STRATEGY --reason … [--to backup|primary]",
        ["failover", NAME, "--reason", "prime-a healthy again", "--to", "primary"],
    )
    assert desk.control()["broker"]["name"] == "prime-a"
    out = walk.run(
        "stratops runbook run RUNBOOK STRATEGY --reason … [--dry-run] [--yes] [--answer STEP=TEXT…]",
        [
            "runbook",
            "run",
            "resume-after-incident",
            NAME,
            "--reason",
            "back on prime-a",
            "--yes",
            "--answer",
            "postmortem=written: wiki/pm/4711",
            "--answer",
            "reconcile=Matched: prime-a statement vs fills",
        ],
    )
    assert "PASS" in out, out
    out = walk.run("stratops runbook history [STRATEGY]", ["runbook", "history", NAME])
    assert "broker-failover" in out and "resume-after-incident" in out and "tina" in out, out

    # A desk-wide limit: one decision for every fx strategy, off until re-armed.
    out = walk.run(
        "stratops kill --selector desk=fx --reason …",
        ["kill", "--selector", "desk=fx", "--reason", "fx desk loss limit", "--require-rearm"],
    )
    assert "halted 1/1; acknowledged by the strategy: 1" in out, out
    walk.run(
        "stratops reconcile STRATEGY --result Matched --evidence …",
        ["reconcile", NAME, "--result", "Matched", "--evidence", "prime-a statement vs fills"],
    )
    out = walk.run(
        "stratops resume STRATEGY --reason … [--throttled]", ["resume", NAME, "--reason", "too early"], code=1
    )
    assert "re-arm required first" in out and "rita" in out, out
    walk.run("stratops rearm STRATEGY --reason …", ["rearm", NAME, "--reason", "loss limit reviewed"], code=1)
    walk.run("stratops rearm STRATEGY --reason …", ["rearm", NAME, "--reason", "loss limit reviewed"], user="rita")
    out = walk.run(
        "stratops resume STRATEGY --reason … [--throttled]", ["resume", NAME, "--reason", "re-armed", "--throttled"]
    )
    desk.wait_status(
        lambda s: s.get("tradingState") == "REDUCING" and (s.get("throttle") or {}).get("active"), "resumed throttled"
    )

    # A new version on the live strategy: signed for the changed manifest before Git applies it
    # (by the same two: a signature is one per item, and only its signer may replace it), then
    # rolled back when it misbehaves.
    changed = {k: desk.strategy()[k] for k in ("apiVersion", "kind", "metadata", "spec")}
    changed["metadata"] = {"name": NAME, "namespace": namespace, "labels": changed["metadata"].get("labels", {})}
    changed["spec"]["version"] = "1.5.0"
    changed["spec"]["rollbackPolicy"]["healthyFor"] = "1h"  # not known-good before the rollback
    manifest = tmp_path / "strategy-1.5.0.yaml"
    manifest.write_text(yaml.safe_dump(changed))
    for user, items in (("tina", desk_items), ("rita", risk)):
        out = walk.run(
            "stratops gate sign GATE ITEM… | --all --evidence … [--for FILE]",
            [
                "gate",
                "sign",
                "mean-revert-pre-launch",
                *items,
                "--evidence",
                "https://git/pr/88",
                "--for",
                str(manifest),
            ],
            user=user,
        )
        assert f"as {user} for mean-revert:1.5.0:" in out, out
    gitops = __import__("kubernetes").client.CustomObjectsApi(cluster.api_client(people[GITOPS]))
    gitops.patch_namespaced_custom_object(
        "stratops.io",
        "v1alpha1",
        namespace,
        "strategies",
        NAME,
        {"spec": {"version": "1.5.0", "rollbackPolicy": changed["spec"]["rollbackPolicy"]}},
    )
    desk.wait_status(lambda s: s.get("activeVersion") == "1.5.0", "1.5.0 running", timeout=90)
    out = walk.run(
        "stratops rollback STRATEGY --reason …", ["rollback", NAME, "--reason", "1.5.0 fills diverge from the model"]
    )
    assert "blocked: 1.5.0" in out, out
    desk.wait_status(lambda s: s.get("activeVersion") == "1.4.2", "back on 1.4.2", timeout=90)

    # End of day: everything off, then the records.
    out = walk.run("stratops kill STRATEGY --reason …", ["kill", NAME, "--reason", "end of day"])
    assert "acknowledged by the strategy: True" in out, out
    out = walk.run("kill --all [-A] --reason …", ["kill", "--all", "--reason", "end of day: everything off"])
    assert "halted 1/1" in out, out  # latched already: it stays halted with its first reason
    out = walk.run("stratops audit verify [-n NS | -A]", ["audit", "verify"])
    assert "VERIFIED" in out, out
    pack = tmp_path / "evidence"
    out = walk.run(
        "stratops audit export --since 90d [--until now] [-n NS | -A] [--out DIR]",
        ["audit", "export", "--since", "90d", "--until", "now", "--out", str(pack)],
    )
    evidence = json.loads((pack / "evidence.json").read_text())
    assert (pack / "evidence.md").exists() and "VERIFIED" in out, out
    assert "rita" in json.dumps(evidence) and "1.5.0" in json.dumps(evidence)

    assert walk.ran == set(WALKED) - OFFLINE_ONLY - {EXAMPLES_HEADER}, sorted(
        set(WALKED) - OFFLINE_ONLY - {EXAMPLES_HEADER} - walk.ran
    )


#: Run by test_offline_commands_run_as_written, not by the desk's day.
OFFLINE_ONLY = {
    "stratops --version",
    "stratops --install-completion",
    "stratops crds [--check]",
    "stratops validate PATH… [--base BASE…]",
    "stratops runbook list [-c CATEGORY] | show RUNBOOK",
    "stratops triage stale-data -a no -a all -o json",
    "stratops triage acks-silent --answer yes --answer no --strategy mean-revert -n fx",
}
