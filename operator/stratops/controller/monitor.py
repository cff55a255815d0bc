"""The Monitor controller's part outside the MonitorRunner (stratops.k8s.monitoring): what an
evaluation reads of its Monitor, (the MonitorRunner evaluates it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stratops.controller.runtime import plain


def monitor_view(body: Mapping[str, Any]) -> dict[str, Any]:
    """What an evaluation reads of its Monitor, not the whole body: its managedFields are often
    larger than its spec, and were copied at every evaluation of thousands of monitors."""
    meta = body.get("metadata", {})
    return {
        "metadata": {k: meta.get(k) for k in ("name", "namespace", "uid", "generation")},
        "spec": plain(body.get("spec") or {}),
        "status": plain(body.get("status") or {}),
    }
