"""The models, the generated CRDs and the offline validator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cases import BAD, BAD_AT_WEBHOOK, EXAMPLES, desk
from stratops.cli.main import app
from stratops.models import KINDS
from stratops.models.common import parse_duration
from stratops.models.crd import stale_crds, structural_schema
from stratops.models.gate import Cadence
from stratops.models.monitor import CHECK_KINDS, Layer
from stratops.models.validate import validate_document, validate_files

CRDS = Path(__file__).resolve().parents[3] / "crds"


def test_crds_are_generated_from_the_current_models():
    assert stale_crds(CRDS, KINDS) == [], "crds/ is stale: run `stratops crds`"


def _walk(node: Any, path: str):
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from _walk(child, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from _walk(node[key], f"{path}[]")


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_schema_is_structural_and_every_field_is_described(kind):
    for part in ("spec", "status"):
        schema = structural_schema(getattr(kind, part))
        for path, node in _walk(schema, part):
            assert "type" in node, f"{path}: no type (not structural)"
            for banned in ("$ref", "anyOf", "oneOf", "allOf", "title", "default", "$defs"):
                assert banned not in node, f"{path}: {banned} is not allowed in a structural schema"
            assert node.get("additionalProperties") is not False, path
            if path != part and not path.endswith("[]"):
                assert node.get("description"), f"{path}: no description"


def test_crd_has_status_subresource_columns_short_names_and_cel_rules():
    by_kind = {k.kind: k.crd() for k in KINDS}
    for kind, crd in by_kind.items():
        version = crd["spec"]["versions"][0]
        assert version["subresources"] == {"status": {}}
        assert crd["spec"]["names"]["shortNames"], kind
        assert {c["name"] for c in version["additionalPrinterColumns"]} >= {"Age"}
    strategy_cols = {c["name"] for c in by_kind["Strategy"]["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert {"Phase", "Mode", "Version", "Trading"} <= strategy_cols
    spec = by_kind["Strategy"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert any("preLaunch" in r["rule"] for r in spec["x-kubernetes-validations"])
    gate_items = by_kind["Gate"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"
    ]["items"]
    assert gate_items["x-kubernetes-list-type"] == "map" and gate_items["x-kubernetes-list-map-keys"] == ["id"]


def test_example_desk_is_complete_and_valid():
    checked, problems = validate_files([EXAMPLES])
    assert problems == []
    docs = desk()
    by_kind: dict[str, list] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    assert len(by_kind["Strategy"]) == 1
    monitors = by_kind["Monitor"]
    assert len(monitors) == 12
    assert {m["spec"]["layer"] for m in monitors} == {layer.value for layer in Layer}
    assert [
        sum(m["spec"]["layer"] == layer for m in monitors) for layer in ("infrastructure", "data", "model", "pnl")
    ] == [3, 3, 3, 3]
    gates = by_kind["Gate"]
    assert {g["spec"]["cadence"] for g in gates} == {c.value for c in Cadence}
    assert sum(len(g["spec"]["items"]) for g in gates) == 20
    assert checked == len(docs)


@pytest.mark.parametrize("case", BAD + BAD_AT_WEBHOOK, ids=lambda c: c.id)
def test_offline_validator_names_the_field(case):
    problems = validate_document(case.document())
    assert problems, f"{case.id} was accepted"
    assert any(p.field == case.field and case.phrase in p.message for p in problems), [str(p) for p in problems]


def test_every_offline_rule_is_exercised_by_a_bad_case():
    """Each CEL rule with an offline check has a case carrying its message (transition rules excepted)."""
    from stratops.models.common import Model

    def models(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from models(sub)

    messages = {r.message for m in models(Model) for r in m.__rules__ if r.check is not None}
    unexercised = {m for m in messages if not any(c.phrase in m for c in BAD)}
    assert unexercised == set()


def test_validator_reports_kind_apiversion_and_name():
    doc = {"apiVersion": "stratops.io/v1alpha1", "kind": "Strategee", "metadata": {"name": "x"}, "spec": {}}
    assert validate_document(doc)[0].field == "kind"
    doc = {"apiVersion": "stratops.io/v2", "kind": "Strategy", "metadata": {"name": "x"}, "spec": {}}
    assert validate_document(doc)[0].field == "apiVersion"
    from cases import example

    doc = example("strategy.yaml")
    doc["metadata"]["name"] = "Mean_Revert"
    assert [p.field for p in validate_document(doc)] == ["metadata.name"]
    assert validate_document({"apiVersion": "v1", "kind": "ConfigMap"}) == []


@pytest.mark.parametrize("text,seconds", [("500ms", 0.5), ("30s", 30), ("5m", 300), ("1h30m", 5400), ("168h", 604800)])
def test_parse_duration(text, seconds):
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "5", "1d", "1 h", "-1s"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_check_kinds_cover_the_seed_table():
    used = {m["spec"]["check"]["kind"] for m in desk() if m["kind"] == "Monitor"}
    assert used == set(CHECK_KINDS)


def test_cli_validate_and_crds_check(tmp_path):
    runner = CliRunner()
    ok = runner.invoke(app, ["validate", str(EXAMPLES)])
    assert ok.exit_code == 0, ok.output
    assert "18 stratops document(s) valid" in ok.output
    bad = tmp_path / "bad.yaml"
    import yaml

    bad.write_text(yaml.safe_dump(BAD[2].document()))
    res = runner.invoke(app, ["validate", str(bad)])
    assert res.exit_code == 1
    assert "spec.riskLimits.maxPosition" in res.output
    assert runner.invoke(app, ["crds", "--check", "--dir", str(CRDS)]).exit_code == 0
    assert runner.invoke(app, ["crds", "--check", "--dir", str(tmp_path)]).exit_code == 1
    assert runner.invoke(app, ["validate", str(tmp_path / "nope.yaml")]).exit_code == 2


@pytest.mark.parametrize(
    "text,field,phrase",
    [
        ("maxPosition: .inf", "spec.riskLimits.maxPosition", "finite number"),
        ("maxPosition: 1e309", "spec.riskLimits.maxPosition", "Invalid value"),  # YAML 1.1: a string; JSON: too big
        ("maxPosition: '2000000'", "spec.riskLimits.maxPosition", "must be of type number"),
    ],
)
def test_the_validator_reads_numbers_as_the_api_server_does(text, field, phrase):
    import yaml

    from cases import example

    doc = example("strategy.yaml")
    doc["spec"]["riskLimits"]["maxPosition"] = yaml.safe_load(text)["maxPosition"]
    problems = validate_document(doc)
    assert any(p.field == field and phrase in p.message for p in problems), [str(p) for p in problems]


def test_odd_documents_are_problems_never_tracebacks(tmp_path):
    from typer.testing import CliRunner

    from stratops.cli.main import app

    f = tmp_path / "odd.yaml"
    f.write_text(
        "apiVersion: stratops.io/v1alpha1\nkind: [Strategy]\nmetadata: {name: x}\nspec: {}\n---\n"
        "apiVersion: stratops.io/v1alpha1\nkind: Gate\nmetadata: {name: g}\nspec:\n  cadence: weekly\n"
        "  strategies: [x]\n  items: [{id: a, text: t}, {id: b, text: u}]\n  signatures:\n"
        "  - {item: a, signer: s, signedAt: 2099-01-01T00:00:00Z, evidence: e}\n"
        "  - {item: b, signer: s, signedAt: '2026-01-01T00:00:00', evidence: e}\n"
    )
    res = CliRunner().invoke(app, ["validate", str(f)], env={"COLUMNS": "300"})
    out = " ".join(res.output.split())
    assert (res.exit_code == 1 and "Traceback" not in out and res.exception is None) or isinstance(
        res.exception, SystemExit
    )
    assert "kind: Unsupported value" in out
    assert 'spec.signatures[0].signedAt: Invalid value: "2099-01-01' in out and "dated in the future" in out
    assert "spec.signatures[1].signedAt" in out and "must be of type date-time" in out


def test_the_operator_image_is_rebuilt_exactly_when_its_sources_or_base_change(tmp_path):
    from stratops.testing.images import source_hash

    pkg = tmp_path / "operator" / "stratops"
    (pkg / "__pycache__").mkdir(parents=True)
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    (tmp_path / "Dockerfile").write_text("FROM base\n")
    (pkg / "__init__.py").write_text("x = 1\n")
    first = source_hash(tmp_path, "sha256:base")
    (pkg / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"\0")  # bytecode is not a source
    (tmp_path / "README.md").write_text("not in the image\n")
    assert source_hash(tmp_path, "sha256:base") == first
    assert source_hash(tmp_path, "sha256:other-base") != first
    (pkg / "__init__.py").write_text("x = 2\n")
    assert source_hash(tmp_path, "sha256:base") != first
