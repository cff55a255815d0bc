"""The webhooks' rules (stratops.admission.review) and the policies' shape, without a cluster.
The policies' CEL runs in the API server: tests/e2e/test_integrity.py tries each rule there."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest

from cases import example, pinned
from stratops.admission import policies, review
from stratops.gates.evaluate import subject_for
from stratops.models.gate import GateSpec
from stratops.models.monitor import MonitorSpec
from stratops.models.strategy import StrategySpec

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
NAME = "mean-revert"


def strategy(**over) -> StrategySpec:
    raw = example("strategy.yaml")["spec"]
    raw["image"] = pinned(raw["image"])
    raw.update(over)
    return StrategySpec.model_validate(raw)


def prelaunch(spec: StrategySpec | None, signers=("rita", "tom"), at: datetime = NOW, **over) -> GateSpec:
    raw = copy.deepcopy(example("gates/pre-launch.yaml")["spec"])
    raw.update(over)
    if spec is not None:
        subj = subject_for(NAME, spec)
        raw["signatures"] = [
            {
                "item": i["id"],
                "signer": signers[n % len(signers)],
                "signedAt": at.isoformat(),
                "evidence": "x",
                "subject": subj,
            }
            for n, i in enumerate(raw["items"])
        ]
    return GateSpec.model_validate(raw)


# -- strategies ----------------------------------------------------------------------------------------
def test_promotion_needs_the_gate_complete_for_this_spec_by_two_people_not_the_author():
    paper, live = strategy(), strategy(mode="live")
    review_ = lambda gate, author="tina": review.review_strategy(  # noqa: E731
        NAME, paper, False, live, author, author, {"mean-revert-pre-launch": gate}, NOW
    )
    assert review_(prelaunch(live)) == []
    assert "not found" in review_(None)[0]
    assert "missing backtest-reviewed" in review_(prelaunch(None))[0]
    assert "needs 2 distinct signers, has 1 (rita)" in review_(prelaunch(live, signers=("rita",)))[0]
    assert "is signed by rita, who last changed the trading-relevant spec" in review_(prelaunch(live), author="rita")[0]
    other = strategy(mode="live", version="9.9.9")
    assert "Incomplete" in review_(prelaunch(other))[0], "signed for another spec"
    daily = review_(GateSpec.model_validate({**example("gates/daily.yaml")["spec"], "signatures": []}))
    assert (
        "has cadence daily; name a gate of cadence preLaunch" in daily[0]
        and "has cadence daily, not preLaunch" in daily[1]
    )


@pytest.mark.parametrize(
    "field,value",
    [
        ("image", pinned("registry.example/fx-desk/mean-revert", "sha256:" + "ee" * 32)),
        ("version", "1.4.3"),
        ("replicas", 2),
        ("throttle", {"factor": 0.9}),
        ("killSwitch", {"ackDeadline": "60s"}),
        ("podTemplate", {"env": [{"name": "X", "value": "1"}]}),
        ("brokers", {"primary": {"name": "p", "endpoint": "fix://other:1"}}),
    ],
)
def test_a_live_change_names_the_field_and_needs_signatures_for_the_new_spec(field, value):
    old = strategy(mode="live")
    new = StrategySpec.model_validate({**old.to_dict(), field: value})
    gates = {"mean-revert-pre-launch": prelaunch(old)}
    [msg] = review.review_strategy(NAME, old, True, new, "tina", "admin", gates, NOW)
    assert msg.startswith(f"spec.{field} changed on a live strategy without the pre-launch signatures")
    assert (
        review.review_strategy(NAME, old, True, new, "tina", "admin", {"mean-revert-pre-launch": prelaunch(new)}, NOW)
        == []
    )
    # its author may not be among those who signed for it
    assert (
        "four eyes"
        in review.review_strategy(
            NAME, old, True, new, "tom", "admin", {"mean-revert-pre-launch": prelaunch(new)}, NOW
        )[0]
    )


def test_what_is_not_trading_relevant_changes_freely_on_a_live_strategy():
    old = strategy(mode="live")
    new = StrategySpec.model_validate({**old.to_dict(), "decayHorizon": "2h"})
    assert review.review_strategy(NAME, old, True, new, "tina", "admin", {"mean-revert-pre-launch": None}, NOW) == []


def test_paper_is_free_but_the_prelaunch_gate_must_have_its_cadence():
    old = strategy()
    new = StrategySpec.model_validate({**old.to_dict(), "replicas": 3})
    assert review.review_strategy(NAME, old, False, new, "tina", "admin", {}, NOW) == []
    daily = GateSpec.model_validate(example("gates/daily.yaml")["spec"])
    wrong = StrategySpec.model_validate({**old.to_dict(), "gates": {"preLaunch": "fx-daily"}})
    assert (
        "gate fx-daily has cadence daily; name a gate of cadence preLaunch"
        in review.review_strategy(NAME, old, False, wrong, "tina", "admin", {"fx-daily": daily}, NOW)[0]
    )


def test_secrets_need_the_allow_lists_labels_a_missing_one_is_a_warning():
    spec = strategy(podTemplate={"env": [{"name": "K", "secretKeyRef": {"name": "tls", "key": "k"}}]})
    refs = review.secret_references(spec)
    assert ("spec.podTemplate.env[0].secretKeyRef.name", "tls") in refs and (
        "spec.brokers.primary.secretRef.name",
        "prime-a-fix",
    ) in refs
    labels = {"tls": {}, "prime-a-fix": {"stratops.io/secret-use": "strategy"}}
    problems, warnings = review.review_secrets(refs, labels.get, {"stratops.io/secret-use": "strategy"})
    assert problems == [
        "spec.podTemplate.env[0].secretKeyRef.name: Secret tls may not be referenced: it does not carry the "
        "labels stratops.io/secret-use=strategy (chart value allowLists; ask whoever owns the Secret to label it)"
    ]
    assert warnings == [
        "spec.brokers.backup.secretRef.name: Secret prime-b-fix not found; it must carry the labels "
        "stratops.io/secret-use=strategy when it is created"
    ]
    assert review.review_secrets(refs, labels.get, {}) == ([], [])


@pytest.mark.parametrize(
    "image,allowed",
    [
        ("registry.example/fx-desk/x", True),
        ("registry.example", True),
        ("registry.example.evil/x", False),
        ("evil.example/registry.example/x", False),
        ("registry.example/fx-desk/x@sha256:" + "1" * 64, True),
    ],
)
def test_images_come_from_allowed_registries(image, allowed):
    spec = (
        strategy(image=image)
        if "@" in image
        else StrategySpec.model_validate({**strategy().to_dict(), "image": image, "mode": "paper"})
    )
    assert (review.review_image(spec, review.AllowLists(image_registries=("registry.example",))) == []) is allowed


@pytest.mark.parametrize(
    "url,allowed",
    [
        ("http://127.0.0.1:9090", True),
        ("https://prom.example/api/v1", True),
        ("https://prom.example/apix", False),
        ("http://127.0.0.1.evil.com", False),
        ("http://127.0.0.1:x@evil.com/", False),
        ("http://a@127.0.0.1", False),
        ("http://prom.example/api", False),
        ("not a url", False),
    ],
)
def test_monitors_query_only_allowed_prometheus(url, allowed):
    assert review.url_allowed(url, ("http://127.0.0.1", "https://prom.example/api")) is allowed


def test_a_monitor_token_needs_the_monitor_label():
    raw = copy.deepcopy(example("monitors/06-infra-queue-backlog.yaml")["spec"])
    raw["source"]["prometheus"].update(url="http://127.0.0.1:9090", authSecretRef={"name": "tok", "key": "t"})
    allow = review.AllowLists(
        prometheus_urls=("http://127.0.0.1",), monitor_secret_labels={"stratops.io/secret-use": "monitor"}
    )
    problems, _ = review.review_monitor(
        MonitorSpec.model_validate(raw), allow, lambda s: {"stratops.io/secret-use": "strategy"}
    )
    assert problems and "spec.source.prometheus.authSecretRef.name: Secret tok may not be referenced" in problems[0]


def test_selectors_parse_and_name_their_error():
    assert review.parse_selector("a=b, c=d") == {"a": "b", "c": "d"} and review.parse_selector("") == {}
    with pytest.raises(ValueError, match="'oops' is not key=value"):
        review.parse_selector("a=b,oops")


# -- gates ---------------------------------------------------------------------------------------------
def test_a_signature_is_dated_at_admission_unless_written_from_git():
    spec = strategy()
    for at, ok in (
        (NOW, True),
        (NOW - timedelta(seconds=9), True),
        (NOW + timedelta(minutes=5), False),
        (NOW - timedelta(days=1), False),
    ):
        gate = prelaunch(spec, at=at)
        problems = review.review_gate(None, gate, NOW, False, {NAME: (spec, "admin")})
        assert (problems == []) is ok, problems
        assert review.review_gate(None, gate, NOW, True, {NAME: (spec, "admin")}) == []  # GitOps: dated in Git
    unchanged = prelaunch(spec, at=NOW - timedelta(days=3))
    assert review.review_gate(unchanged, unchanged, NOW, False, {}) == [], "an old signature left as it was"


def test_the_author_of_a_spec_cannot_sign_it_but_may_sign_the_next():
    spec = strategy()
    gate = prelaunch(spec, signers=("tina", "tom"))
    problems = review.review_gate(None, gate, NOW, False, {NAME: (spec, "tina")})
    assert problems and all("tina last changed the trading-relevant spec of mean-revert" in p for p in problems)
    proposed = strategy(replicas=2)  # tina signs a change someone else will apply
    assert (
        review.review_gate(None, prelaunch(proposed, signers=("tina", "tom")), NOW, False, {NAME: (spec, "tina")}) == []
    )


# -- the policies' shape ---------------------------------------------------------------------------------
def test_every_command_is_checked_and_authors_are_recorded_for_every_spec_change():
    by_name = {p["metadata"]["name"]: p for p in policies.policies()}
    cel = str(by_name[policies.POLICY_STRATEGIES]["spec"])
    for cmd in policies.STRATEGY_COMMANDS:
        assert f"'stratops.io/{cmd}'" in cel
    assert all(
        f"'stratops.io/{c}'" in str(by_name[policies.POLICY_INCIDENTS]["spec"]) for c in policies.INCIDENT_COMMANDS
    )
    from stratops.models.strategy import TRADING_FIELDS, TradingSpec

    for field in TRADING_FIELDS:  # a trading field not compared would change without a recorded author
        assert (
            f"object.spec.{TradingSpec.model_fields[field].alias}" in policies.TRADING_CHANGED
            or f"object.spec.?{TradingSpec.model_fields[field].alias}" in policies.TRADING_CHANGED
        )
    for p in by_name.values():
        assert p["spec"]["failurePolicy"] == "Fail"
    from stratops.lifecycle.commands import COMMANDS

    assert set(COMMANDS) == set(policies.STRATEGY_COMMANDS)
