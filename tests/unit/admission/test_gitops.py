"""The GitOps pull-request check (`stratops validate HEAD --base BASE`) over real directories."""

from __future__ import annotations

import copy
import itertools
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cases import example, pinned
from stratops.cli.main import app
from stratops.gates.evaluate import subject_for
from stratops.models.strategy import StrategySpec

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def tree(root: Path, strategy: dict, gate: dict | None = None, monitors: bool = True) -> Path:
    root.mkdir()
    (root / "strategy.yaml").write_text(yaml.safe_dump(strategy))
    if monitors:
        shutil.copytree(EXAMPLES / "monitors", root / "monitors")
    if gate is not None:
        (root / "pre-launch.yaml").write_text(yaml.safe_dump(gate))
    return root


def live(doc: dict, **limits) -> dict:
    d = copy.deepcopy(doc)
    d["spec"]["mode"] = "live"
    d["spec"]["image"] = pinned(d["spec"]["image"])
    d["spec"]["riskLimits"].update(limits)
    return d


def signed(strategy: dict, by: tuple[str, ...] = ("risk-officer", "head-of-desk")) -> dict:
    """The pre-launch gate signed for STRATEGY's spec, item by item in turn by BY."""
    gate = copy.deepcopy(example("gates/pre-launch.yaml"))
    subj = subject_for(strategy["metadata"]["name"], StrategySpec.model_validate(strategy["spec"]))
    now = datetime.now(UTC).isoformat()
    gate["spec"]["signatures"] = [
        {"item": i["id"], "signer": by[n % len(by)], "signedAt": now, "evidence": "PR #12", "subject": subj}
        for n, i in enumerate(gate["spec"]["items"])
    ]
    return gate


def check(base: Path, head: Path) -> tuple[int, str]:
    r = CliRunner().invoke(app, ["validate", str(head), "--base", str(base)], env={"COLUMNS": "300"})
    return r.exit_code, " ".join(r.output.split())


@pytest.fixture
def paper() -> dict:
    return example("strategy.yaml")


def test_unchanged_paper_tree_passes(tmp_path, paper):
    code, out = check(tree(tmp_path / "b", paper), tree(tmp_path / "h", paper))
    assert code == 0, out


def test_promotion_without_signed_prelaunch_gate_is_rejected(tmp_path, paper):
    code, out = check(tree(tmp_path / "b", paper), tree(tmp_path / "h", live(paper)))
    assert code == 1
    assert "Strategy/mean-revert: spec.mode: Forbidden: promoted to live without a signed pre-launch gate" in out
    assert "pre-launch gate mean-revert-pre-launch is not in the change set" in out


def test_promotion_with_gate_signed_for_another_version_is_rejected(tmp_path, paper):
    older = copy.deepcopy(paper)
    older["spec"]["version"] = "1.4.1"
    code, out = check(tree(tmp_path / "b", paper), tree(tmp_path / "h", live(paper), signed(live(older))))
    assert code == 1 and "is Incomplete for mean-revert:1.4.2:" in out and "missing backtest-reviewed" in out


def test_promotion_with_signed_gate_passes(tmp_path, paper):
    head = live(paper)
    code, out = check(tree(tmp_path / "b", paper), tree(tmp_path / "h", head, signed(head)))
    assert code == 0, out


def test_any_trading_change_on_a_live_strategy_needs_the_gate_signed_for_it(tmp_path, paper):
    base_doc = live(paper)
    base = tree(tmp_path / "b", base_doc, signed(base_doc))
    up = live(paper, maxPosition=paper["spec"]["riskLimits"]["maxPosition"] * 2)
    code, out = check(base, tree(tmp_path / "h1", up, signed(base_doc)))
    assert (
        code == 1
        and (
            "spec.riskLimits: Forbidden: spec.riskLimits changed on a live strategy (risk limits raised: "
            "spec.riskLimits.maxPosition"
        )
        in out
    )
    code, out = check(base, tree(tmp_path / "h2", up, signed(up)))
    assert code == 0, out
    # lowering is a change too: what runs live is what was signed
    down = live(paper, maxPosition=paper["spec"]["riskLimits"]["maxPosition"] / 2)
    code, out = check(base, tree(tmp_path / "h3", down, signed(base_doc)))
    assert code == 1 and "spec.riskLimits changed on a live strategy without a signed pre-launch gate" in out
    wider = live(paper)
    wider["spec"]["riskLimits"]["venues"] = [*paper["spec"]["riskLimits"]["venues"], "DARKPOOL"]
    code, out = check(base, tree(tmp_path / "h4", wider, signed(base_doc)))
    assert code == 1 and "spec.riskLimits.venues adds DARKPOOL" in out
    for n, (field, value) in enumerate(
        [
            ("image", pinned(paper["spec"]["image"], "sha256:" + "ee" * 32)),
            ("replicas", 3),
            ("killSwitch", {"ackDeadline": "60s"}),
            ("throttle", {"factor": 0.9}),
            ("podTemplate", {"env": [{"name": "BROKER_KEY", "secretKeyRef": {"name": "x", "key": "k"}}]}),
        ]
    ):
        changed = copy.deepcopy(base_doc)
        changed["spec"][field] = value
        code, out = check(base, tree(tmp_path / f"t{n}", changed, signed(base_doc)))
        assert (
            code == 1 and f"spec.{field}: Forbidden: spec.{field} changed on a live strategy without a signed" in out
        ), out
        assert check(base, tree(tmp_path / f"s{n}", changed, signed(changed)))[0] == 0


def test_one_signer_does_not_sign_a_promotion(tmp_path, paper):
    head = live(paper)
    code, out = check(tree(tmp_path / "b", paper), tree(tmp_path / "h", head, signed(head, by=("risk-officer",))))
    assert code == 1 and "needs 2 distinct signers, has 1 (risk-officer)" in out


def test_prelaunch_must_name_a_gate_of_that_cadence(tmp_path, paper):
    doc = copy.deepcopy(paper)
    doc["spec"]["gates"]["preLaunch"] = "fx-daily"
    root = tree(tmp_path / "h", doc)
    (root / "daily.yaml").write_text(yaml.safe_dump(example("gates/daily.yaml")))
    r = CliRunner().invoke(app, ["validate", str(root)], env={"COLUMNS": "300"})
    out = " ".join(r.output.split())
    assert r.exit_code == 1 and "spec.gates.preLaunch: Invalid value: gate fx-daily has cadence daily" in out


def test_monitor_removed_from_live_strategy_is_rejected_not_from_paper(tmp_path, paper):
    base_doc = live(paper)
    base = tree(tmp_path / "b", base_doc, signed(base_doc))
    head = tree(tmp_path / "h", base_doc, signed(base_doc))
    removed = sorted((head / "monitors").glob("*.yaml"))[0]
    name = yaml.safe_load_all(removed.read_text()).__next__()["metadata"]["name"]
    removed.unlink()
    code, out = check(base, head)
    assert (
        code == 1 and f"Monitor/{name}: metadata.name: Forbidden: monitor removed from live strategy mean-revert" in out
    )
    # demoting in the same change does not make it acceptable
    demoted = copy.deepcopy(base_doc)
    demoted["spec"]["mode"] = "paper"
    (head / "strategy.yaml").write_text(yaml.safe_dump(demoted))
    assert check(base, head)[0] == 1
    # a paper strategy may lose a monitor
    pbase, phead = tree(tmp_path / "pb", paper), tree(tmp_path / "ph", paper)
    sorted((phead / "monitors").glob("*.yaml"))[0].unlink()
    assert check(pbase, phead)[0] == 0


def test_examples_against_themselves_pass():
    r = CliRunner().invoke(app, ["validate", str(EXAMPLES), "--base", str(EXAMPLES)])
    assert r.exit_code == 0, r.output


def test_ci_example_runs_the_check_against_the_base():
    wf = yaml.safe_load((EXAMPLES / "ci" / "pull-request-check.yaml").read_text())
    runs = [s.get("run", "") for s in wf["jobs"]["validate"]["steps"]]
    assert any(r.startswith('stratops validate "$DESK_DIR" --base ') for r in runs)
    assert wf[True]["pull_request"]  # YAML 1.1 reads the key `on` as True


def test_the_example_desks_apply_command_names_only_kubernetes_objects():
    """The command in examples/strategy.yaml's header, read as kubectl reads it (-R: every
    .yaml, .yml and .json below a directory): every document is an object kubectl can apply,
    and the stratops ones pass `stratops validate`."""
    header = next(line for line in (EXAMPLES / "strategy.yaml").read_text().splitlines() if "kubectl apply" in line)
    args = header.split("kubectl apply", 1)[1].split()
    root = EXAMPLES.parent
    files: list[Path] = []
    for flag, value in itertools.pairwise(args):
        if flag == "-f":
            p = root / value
            assert p.exists(), f"{header}: {value} does not exist"
            files += sorted(f for f in p.rglob("*") if f.suffix in (".yaml", ".yml", ".json")) if p.is_dir() else [p]
    assert len(files) >= 3
    docs = [(f, d) for f in files for d in yaml.safe_load_all(f.read_text()) if d is not None]
    for f, d in docs:
        assert (
            isinstance(d, dict) and d.get("apiVersion") and d.get("kind") and (d.get("metadata") or {}).get("name")
        ), f"{f.relative_to(root)} is not a Kubernetes object: kubectl apply would fail"
    kinds = {d["kind"] for _, d in docs}
    assert {"Strategy", "Monitor", "Gate"} <= kinds
    r = CliRunner().invoke(app, ["validate", *map(str, files)], env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
