"""The layering, enforced: the pure modules (models, lifecycle, monitors, gates, recovery,
audit, alerts, admission, ...) import neither kopf nor a Kubernetes client, at any depth of the
file (an import inside a function counts), and nothing of the layers above them (k8s, handlers,
cli, testing, sdk, dev). kopf itself is imported only by the handlers (the CLI's `run` calls
stratops.handlers.run). The same rules run as import-linter contracts (pyproject.toml, make lint)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "stratops"
IMPURE = {"k8s", "controller", "handlers", "cli", "testing", "sdk", "dev"}  # may call the API (or run kopf)
KOPF_ALLOWED = {"handlers"}
FILES = sorted(PACKAGE.rglob("*.py"))


def imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def layer(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


@pytest.mark.parametrize(
    "path", [p for p in FILES if layer(p) not in IMPURE], ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_a_pure_module_calls_no_api_and_imports_no_layer_above(path):
    bad = sorted(
        m
        for m in imports(path)
        if m.split(".")[0] in ("kopf", "kubernetes") or (m.startswith("stratops.") and m.split(".")[1] in IMPURE)
    )
    assert not bad, (
        f"{path.relative_to(PACKAGE)} imports {bad}: pure modules never import kopf, a Kubernetes client, or "
        f"{sorted(IMPURE)}"
    )


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_kopf_only_in_the_handlers(path):
    rel = str(path.relative_to(PACKAGE))
    if layer(path) in KOPF_ALLOWED or rel in KOPF_ALLOWED:
        return
    assert not [m for m in imports(path) if m.split(".")[0] == "kopf"], f"{rel} imports kopf: only the handlers do"


def test_the_check_sees_an_import_inside_a_function(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from kubernetes import client\n    return client\n")
    assert "kubernetes" in imports(f)


@pytest.mark.parametrize("path", [p for p in FILES if layer(p) == "cli"], ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_cli_calls_the_api_only_through_the_k8s_layer(path):
    """The CLI's commands read and write through stratops.k8s.desk.DeskApi: no API class of the
    Kubernetes client in the CLI itself (catching its ApiException is fine)."""
    tree = ast.parse(path.read_text())
    used = sorted(
        {
            n.attr
            for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and n.attr.endswith("Api") and n.attr[0].isupper()
        }
        | {
            a.name
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and n.module == "kubernetes.client"
            for a in n.names
            if a.name.endswith("Api")
        }
    )
    assert not used, f"{path.relative_to(PACKAGE)} uses {used}: call the API through stratops.k8s (DeskApi)"


def test_the_operator_starts_without_scipy():
    """scipy.stats is imported by the KS statistic when it first runs, not by the operator's
    start: an operator whose desk has no KS monitor idles about 60 MiB smaller (issue 21)."""
    import subprocess
    import sys

    code = (
        "import sys; import stratops.cli.main, stratops.handlers; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
