"""Local control plane and helpers for tests and the demo (see `controlplane`)."""

from stratops.testing.controlplane import ControlPlane, ControlPlaneError, find_binaries

__all__ = ["ControlPlane", "ControlPlaneError", "find_binaries"]
