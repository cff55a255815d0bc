"""Rendering the Helm chart with a real helm (built from its Go module by hack/build-helm.sh)."""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "stratops"


@functools.cache
def helm_binary() -> str:
    """The pinned helm from the cache (built on first use). Skips when it cannot be built."""
    if shutil.which("go") is None and not list(Path("~/.cache/stratops").expanduser().glob("helm-*/helm")):
        pytest.skip("helm is built from Go modules: needs go (or a cached build)")
    out = subprocess.run(["bash", str(ROOT / "hack" / "build-helm.sh")], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


class HelmError(Exception):
    pass


def render(*sets: str, namespace: str = "desk", release: str = "ops", crds: bool = False,
           values: dict[str, Any] | None = None, tmp: Path | None = None) -> list[dict[str, Any]]:
    """`helm template` the chart; the documents, or HelmError with helm's message."""
    args = [helm_binary(), "template", release, str(CHART), "--namespace", namespace]
    if crds:
        args.append("--include-crds")
    for s in sets:
        args += ["--set", s]
    if values is not None:
        assert tmp is not None
        f = tmp / "values.yaml"
        f.write_text(yaml.safe_dump(values))
        args += ["--values", str(f)]
    out = subprocess.run(args, capture_output=True, text=True)
    if out.returncode != 0:
        raise HelmError(out.stderr)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def kinds(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    by: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        by.setdefault(d["kind"], []).append(d)
    return by
