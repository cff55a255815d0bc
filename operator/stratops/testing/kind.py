"""The node of a kind cluster (hack/kind-up.sh) as the e2e fixtures' real node.

hack/kind-e2e.sh runs the suite with USE_EXISTING_CLUSTER=1 and STRATOPS_KIND_CLUSTER=<name>;
the real-container tests then deploy the example strategy's image on the kind node, as they do
on the local control plane's real node. The node's containerd is reached as kind reaches it,
with `docker exec` (DOCKER_HOST names the kind tier's Docker engine), so images.load() and
images.digest() work on it unchanged.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

K8S_NAMESPACE = "k8s.io"  # containerd's namespace for the CRI


def cluster() -> str | None:
    """The kind cluster the suite runs against (STRATOPS_KIND_CLUSTER), if any."""
    return os.environ.get("STRATOPS_KIND_CLUSTER") or None


class KindNode:
    """The single node of kind cluster CLUSTER (its control plane, which also runs pods)."""

    def __init__(self, cluster: str) -> None:
        self.cluster = cluster
        self.name = f"{cluster}-control-plane"

    def ctr(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", "exec", self.name, "ctr", f"--namespace={K8S_NAMESPACE}", *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def import_archive(self, archive: Path) -> None:
        """Import an image archive into the node's containerd, as `kind load image-archive` does."""
        with archive.open("rb") as f:
            subprocess.run(
                ["docker", "exec", "-i", self.name, "ctr", f"--namespace={K8S_NAMESPACE}", "images", "import"]
                + ["--all-platforms", "--digests", "-"],
                stdin=f,
                capture_output=True,
                check=True,
                timeout=600,
            )

    def read(self, pattern: str) -> str:
        """The first file (in sorted order) matching PATTERN, a glob of the node's filesystem."""
        if not re.fullmatch(r"[\w./~*-]+", pattern):
            raise ValueError(f"not a plain path pattern: {pattern!r}")
        first = f'for f in {pattern}; do [ -f "$f" ] && exec cat "$f"; done; exit 1'
        out = subprocess.run(
            ["docker", "exec", self.name, "sh", "-c", first],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if out.returncode != 0:
            raise FileNotFoundError(f"nothing matches {pattern} on node {self.name}: {out.stderr.strip()}")
        return out.stdout
