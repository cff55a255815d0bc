"""kopf wiring: thin. Only kopf's decorators and daemons live here, each handing off to
stratops.controller (one module per kind), which decides through the pure packages and writes
through stratops.k8s. Nothing registers on import: `register(registry)` does, and `run()`
starts the operator with it.

One daemon per Strategy reconciles it; everything else only indexes or pokes. The daemon is
the single writer of its Strategy (no overlapping handlers). It sleeps until something relevant
changes (the Strategy, its Deployment, pods, control/ack ConfigMaps, incidents, gates: each
pokes it) or until the time the last decision asked to be woken (a deadline), with a slow
safety-net period. Observations come from in-memory indexes, so a reconcile that changes
nothing costs no API call.

Modules, one per concern: startup (settings, probes, login), indexes (and pokes), strategy,
monitor (the one schedule), gate, incident (daemons and commands), admission (webhooks), kopf_fixes (canaries and
mends for kopf's defects).
"""

from __future__ import annotations

import logging
import re

import kopf

from stratops.handlers import (
    admission,
    gate,
    incident,
    indexes,
    kopf_fixes,
    monitor,
    ruler,
    sharding,
    startup,
    strategy,
)


def register(registry: kopf.OperatorRegistry) -> None:
    """Every handler of the operator, in REGISTRY (start-up handlers run in this order)."""
    for module in (startup, indexes, strategy, monitor, ruler, gate, incident, admission):
        module.register(registry)


def run(namespaces: list[str], clusterwide: bool, liveness: str | None, verbose: bool) -> None:
    """Run the operator (blocks until it stops): the CLI's `operator`, the only way kopf is started."""
    # Before kopf starts: a namespace deleted at the wrong moment held every handler, or stayed Terminating.
    kopf_fixes.apply()
    sharding.current()  # a bad STRATOPS_SHARD stops the start here, saying what to write
    registry = kopf.OperatorRegistry()
    register(registry)
    kopf.configure(verbose=verbose, log_prefix=True)  # every object's log line says which object: [ns/name]
    if not verbose:
        quiet_routine_lines(registry)
    kopf.run(
        clusterwide=clusterwide,
        namespaces=namespaces,
        liveness_endpoint=liveness,
        registry=registry,
        memo=kopf.Memo(scope=(list(namespaces), clusterwide)),  # the kill watch serves the same
    )


class _Routine(logging.Filter):
    def __init__(self, handlers: set[str]) -> None:
        super().__init__()
        names = "|".join(sorted(re.escape(h) for h in handlers))
        self.pattern = re.compile(rf"Handler '({names})' succeeded\.$")

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or not self.pattern.search(record.getMessage())


def quiet_routine_lines(registry: kopf.OperatorRegistry) -> None:
    """No line for what happens thousands of times a second and says nothing: kopf's "Handler
    'x' succeeded." for the event handlers (every watch event of every object; at 12,000 monitors
    most of the operator's log and a share of its CPU) and httpx's line per HTTP request (every
    monitor evaluation). Their failures are still logged; `--verbose` logs everything."""
    watching = {h.id for h in registry._watching.get_all_handlers()}
    logging.getLogger("kopf.objects").addFilter(_Routine(watching))
    logging.getLogger("httpx").setLevel(logging.WARNING)
