"""Helpers for the lifecycle e2e tests: strategies, commands, gates, and fake strategy pods."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from cases import example, pinned
from stratops import GROUP, VERSION
from stratops.gates.evaluate import subject_for
from stratops.lifecycle.commands import command_value, new_command
from stratops.lifecycle.manifests import control_name
from stratops.models.strategy import StrategySpec
from stratops.polling import poll
from stratops.sdk import ApiAcknowledger, ApiControl, StrategyControl
from stratops.testing.wait import wait_for

NAME = "mean-revert"
GITOPS = "system:serviceaccount:argocd:argocd-application-controller"
# People, as the chart's default roles bind them: traders, risk owners, and the GitOps controller.
PEOPLE = {
    "tina": ("stratops:traders",),
    "tom": ("stratops:traders",),
    "rita": ("stratops:risk-owners",),
    "rob": ("stratops:risk-owners",),
    GITOPS: (),
}
PRELAUNCH_SIGNERS = ("risk-officer", "second-trader")  # four eyes, neither the author (admin)


def strategy_doc(**spec_over: Any) -> dict[str, Any]:
    """The example strategy, quick to roll out, its image pinned by digest (ready to go live)."""
    doc = copy.deepcopy(example("strategy.yaml"))
    doc["spec"]["image"] = pinned(doc["spec"]["image"])
    doc["spec"]["rollbackPolicy"].update({"healthyFor": "1s", "rolloutDeadline": "4s"})
    doc["spec"]["killSwitch"] = {"ackDeadline": "20s"}
    for k, v in spec_over.items():
        doc["spec"][k] = v
    return doc


class Desk:
    """One namespace's view: create and inspect strategies, give commands."""

    def __init__(self, kube: client.ApiClient, namespace: str) -> None:
        self.kube, self.ns = kube, namespace
        self.custom = client.CustomObjectsApi(kube)
        self.apps = client.AppsV1Api(kube)
        self.core = client.CoreV1Api(kube)
        self.agents: list[StrategyControl] = []

    def create(self, kind: str, doc: dict[str, Any]) -> dict[str, Any]:
        """Create DOC as a desk's writer does: a 503 from the API server's mutating admission
        policies while they (re)load the CRD's schema is retried, as GitOps and kubectl users do.
        Any other refusal is the test's to see."""
        refused: list[ApiException] = []

        def attempt() -> dict[str, Any] | None:
            try:
                return self.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, kind, doc)
            except ApiException as e:
                if e.status == 503 and "There can be a delay" in (e.body or ""):
                    refused[:] = [e]
                    return None
                raise

        created = poll(attempt, timeout=60, interval=0.5)
        if created is None:
            raise refused[-1]
        return created

    def strategy(self, name: str = NAME) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, "strategies", name)

    def status(self, name: str = NAME) -> dict[str, Any]:
        return self.strategy(name).get("status") or {}

    def patch_spec(self, name: str = NAME, **spec: Any) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.ns, "strategies", name, {"spec": spec})

    def command(self, kind: str, name: str = NAME, by: str = "alice", **value: Any) -> None:
        """A command as the CLI writes it (a fresh id unless given), naming BY (the admin may: it
        holds command-for-others)."""
        self.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            self.ns,
            "strategies",
            name,
            {"metadata": {"annotations": {f"stratops.io/{kind}": command_value(by, **new_command(by, **value))}}},
        )

    def deployment(self, name: str = NAME) -> client.V1Deployment | None:
        items = self.apps.list_namespaced_deployment(self.ns, field_selector=f"metadata.name={name}").items
        return items[0] if items else None

    def image(self, name: str = NAME) -> str | None:
        d = self.deployment(name)
        return d.spec.template.spec.containers[0].image if d else None

    def version(self, name: str = NAME) -> str | None:
        """The tag the Deployment runs (`<repository>:<tag>[@sha256:…]`)."""
        image = self.image(name)
        return image.split("@", 1)[0].rsplit(":", 1)[1] if image else None

    def control(self, name: str = NAME) -> dict[str, Any] | None:
        items = self.core.list_namespaced_config_map(
            self.ns, field_selector=f"metadata.name={control_name(name)}"
        ).items
        return json.loads(items[0].data["control.json"]) if items else None

    def events(self, reason: str | None = None) -> list[client.CoreV1Event]:
        evs = [e for e in self.core.list_namespaced_event(self.ns).items if e.involved_object.kind == "Strategy"]
        return [e for e in evs if reason is None or e.reason == reason]

    def incidents(self) -> list[dict[str, Any]]:
        return self.custom.list_namespaced_custom_object(GROUP, VERSION, self.ns, "incidents")["items"]

    def running_pods(self, name: str = NAME) -> list[str]:
        pods = self.core.list_namespaced_pod(self.ns, label_selector=f"stratops.io/strategy={name}").items
        return [p.metadata.name for p in pods if p.metadata.deletion_timestamp is None]

    def wait_status(self, predicate, what: str, timeout: float = 60, name: str = NAME) -> dict[str, Any]:
        """Wait for NAME's status to meet PREDICATE. On a timeout the message carries the last
        status seen (its phase, rollout, known-good and blocked versions, conditions), so a
        failure in CI says why without a rerun."""
        seen: dict[str, Any] = {}

        def probe() -> dict[str, Any] | None:
            s = self.status(name)
            seen.clear()
            seen.update(s or {})
            return s if s and predicate(s) else None

        try:
            return wait_for(probe, timeout=timeout, what=what)
        except TimeoutError as e:
            brief = {k: seen.get(k) for k in ("phase", "rollout", "lastKnownGood", "blockedVersions", "killSwitch")}
            brief["conditions"] = [
                (c.get("type"), c.get("status"), c.get("reason")) for c in seen.get("conditions") or []
            ]
            raise TimeoutError(f"{e}; {name}'s status last seen: {brief}") from None

    def play_pods(self, name: str = NAME) -> None:
        """Run the SDK for each running pod of NAME (KWOK pods run no process: the test plays them)."""
        playing = {a.pod for a in self.agents}
        for pod in self.running_pods(name):
            if pod in playing:
                continue
            agent = StrategyControl(
                pod, ApiControl(self.ns, name, self.kube), ApiAcknowledger(self.ns, name, self.kube)
            )
            agent.run_in_background(0.1)
            self.agents.append(agent)

    def stop_pods(self) -> None:
        if getattr(self, "_player", None) is not None:
            self._player_stop.set()
            self._player.join()
            self._player = None
        for a in self.agents:
            a.stop()
        self.agents.clear()

    def keep_playing(self) -> None:
        """Play every strategy's pods as they appear (after a resume or rollout too), in the
        background until stop_pods(): KWOK pods run no process, the SDK would."""
        import threading

        self._player_stop = threading.Event()

        def loop() -> None:
            while not self._player_stop.wait(0.2):
                for s in self.custom.list_namespaced_custom_object(GROUP, VERSION, self.ns, "strategies")["items"]:
                    self.play_pods(s["metadata"]["name"])

        self._player = threading.Thread(target=loop, daemon=True)
        self._player.start()

    def sign(
        self,
        gate: dict[str, Any],
        strategy_spec: dict[str, Any] | None = None,
        by: str | tuple[str, ...] = "admin",
        at: str | None = None,
        name: str = NAME,
    ) -> dict[str, Any]:
        """Every item of GATE signed, in turn by each of BY (pre-launch, for the strategy's
        current spec: by two people other than the admin, who authors the tests' strategies).
        The admin writes it as GitOps would (it holds sign-for-others)."""
        subj = None
        if strategy_spec is not None:
            subj = subject_for(name, StrategySpec.model_validate(strategy_spec))
            if by == "admin":
                by = PRELAUNCH_SIGNERS
        signers = (by,) if isinstance(by, str) else by
        at = at or datetime.now(UTC).isoformat()
        gate = copy.deepcopy(gate)
        gate["spec"]["signatures"] = [
            {
                "item": i["id"],
                "signer": signers[n % len(signers)],
                "signedAt": at,
                "evidence": "checked",
                **({"subject": subj} if subj else {}),
            }
            for n, i in enumerate(gate["spec"]["items"])
        ]
        return gate


def grant_chart_roles(
    cluster: Any, kube: client.ApiClient, namespace: str, tmp_path: Any, **user_roles: Any
) -> dict[str, Any]:
    """The chart's trader, risk-owner and GitOps Roles as rendered, bound as the chart binds
    them (groups for people, the controller by name); a kubeconfig per person."""
    from chart import helm_binary
    from stratops.testing.chart import grant_people_roles

    helm_binary()  # skips where helm cannot be built
    people = {u: g for u, g in PEOPLE.items() if u != GITOPS}
    grant_people_roles(kube, namespace, tmp_path, people, gitops=GITOPS, **user_roles)
    return {user: cluster.user_kubeconfig(user, groups) for user, groups in PEOPLE.items()}
