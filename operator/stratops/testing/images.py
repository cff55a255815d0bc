"""Images built on this machine (no registry is reachable): the operator image, and the example
strategy's image on top of it, imported into a real node's containerd.

`ImageUnavailable` says why an image cannot be had here (no Docker engine, no base image and no
way to build one); tests turn it into a skip with that reason, or a failure where
STRATOPS_REQUIRE_REAL_NODE=1 (CI) says they must run.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import stratops

OPERATOR_IMAGE = f"stratops:{stratops.__version__}-test"
STRATEGY_REPOSITORY = "stratops.local/mean-revert"
STRATEGY_BUILD_TAG = f"{STRATEGY_REPOSITORY}:build"


class ImageUnavailable(RuntimeError):
    """An image cannot be built or run here; the message says why."""


def base_image() -> str:
    return os.environ.get("STRATOPS_BASE_IMAGE", "stratops-base:bookworm")


def _root() -> Path:
    from stratops.testing.controlplane import repo_root

    root = repo_root()
    if root is None:
        raise ImageUnavailable("needs a stratops checkout (Dockerfile, hack/)")
    return root


def docker(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


def docker_unavailable() -> str | None:
    """Why no Docker engine can be used here (None: it can)."""
    if shutil.which("docker") is None:
        return "no docker client on this machine: images cannot be built or run"
    info = docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=30)
    if info.returncode != 0:
        err = info.stderr.strip().splitlines()
        return f"no Docker engine reachable ({err[-1] if err else 'docker info failed'})"
    return None


@functools.cache
def operator_image() -> str:
    """The operator image (hack/build-image.sh on the locally built base), once per process."""
    if (why := docker_unavailable()) is not None:
        raise ImageUnavailable(why)
    root, base = _root(), base_image()
    if docker("image", "inspect", base, check=False).returncode != 0:
        # The default base (python:3.11-slim-bookworm) needs a registry; build one with debootstrap.
        if os.geteuid() != 0 or shutil.which("debootstrap") is None:
            raise ImageUnavailable(
                f"base image {base} absent and cannot be built here (hack/build-base-image.sh needs root and "
                "debootstrap)"
            )
        out = subprocess.run(
            ["bash", str(root / "hack" / "build-base-image.sh"), base], capture_output=True, text=True, timeout=900
        )
        if out.returncode != 0:  # debootstrap needs Debian's mirrors: environmental, not the Dockerfile's fault
            raise ImageUnavailable(
                f"base image {base} could not be built here: {(out.stderr or out.stdout).strip().splitlines()[-1:]}"
            )
    source = source_hash(root, docker("image", "inspect", "--format", "{{.Id}}", base).stdout.strip())
    built = docker(
        "image", "inspect", "--format", '{{ index .Config.Labels "' + SOURCE_LABEL + '" }}', OPERATOR_IMAGE, check=False
    )
    if built.returncode == 0 and built.stdout.strip() == source:
        return OPERATOR_IMAGE  # built from these very sources on this base: the wheelhouse and build are skipped
    subprocess.run(
        ["bash", str(root / "hack" / "build-image.sh"), OPERATOR_IMAGE],
        check=True,
        timeout=900,
        env={**os.environ, "BASE_IMAGE": base, "PYTHON": sys.executable, "SOURCE_LABEL": source},
        stdout=subprocess.DEVNULL,
    )
    return OPERATOR_IMAGE


#: The label that records which sources (and base) an operator image was built from.
SOURCE_LABEL = "io.stratops.source"


def source_hash(root: Path, base_id: str) -> str:
    """SHA-256 of what goes into the operator image: the package's files, pyproject.toml, the
    Dockerfile, and the base image's id. The same hash means the same image: a demo or a test
    session started again on unchanged sources does not rebuild it (a minute on two cores)."""
    import hashlib

    h = hashlib.sha256(base_id.encode())
    files = [
        root / "pyproject.toml",
        root / "Dockerfile",
        *(f for f in (root / "operator" / "stratops").rglob("*") if f.is_file() and "__pycache__" not in f.parts),
    ]
    for f in sorted(files):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


@functools.cache
def strategy_image() -> str:
    """The example strategy's image (examples/strategy-app on the operator image), once per process."""
    base = operator_image()
    subprocess.run(
        ["bash", str(_root() / "hack" / "build-strategy-image.sh"), STRATEGY_BUILD_TAG, base],
        check=True,
        timeout=600,
        stdout=subprocess.DEVNULL,
    )
    return STRATEGY_BUILD_TAG


def load(node: Any, image: str, tags: list[str]) -> dict[str, str]:
    """Import IMAGE (from Docker) into NODE's containerd under each of TAGS (full references);
    returns each tag's manifest digest (sha256:…), as a Strategy pins it."""
    with tempfile.TemporaryDirectory(prefix="stratops-image-") as d:
        archive = Path(d) / "image.tar"
        docker("save", "--output", str(archive), image, timeout=600)
        node.import_archive(archive)
    ref = image if "/" in image.split(":")[0] else f"docker.io/library/{image}"
    for tag in tags:
        node.ctr("images", "tag", "--force", ref, tag)
    digests = {tag: digest(node, tag) for tag in tags}
    # The reference by digest too (`<repository>@sha256:…`), as a pull from a registry records
    # it: a pod pinned by digest (a live strategy's) is looked up by it, and containerd's CRI
    # would otherwise try to pull it from the repository's host.
    for tag, d in digests.items():
        node.ctr("images", "tag", "--force", tag, f"{tag.rsplit(':', 1)[0]}@{d}")
    return digests


def digest(node: Any, ref: str) -> str:
    """The manifest digest containerd holds for REF."""
    out = node.ctr("images", "ls", f"name=={ref}").stdout.splitlines()
    for line in out[1:]:
        cols = line.split()
        if cols and cols[0] == ref:
            return next(c for c in cols if c.startswith("sha256:"))
    raise ImageUnavailable(f"{ref} is not in the node's containerd after import: {out}")
