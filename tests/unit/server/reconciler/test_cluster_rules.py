"""The cluster controller's decisions, one by one, from what was read and what is observed."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from kupe.core.phases import ClusterPhase
from kupe.server.metrics import Metrics
from kupe.server.providers.base import (
    ClusterSpec,
    InfraPhase,
    InfraState,
    PermanentProviderError,
    Provider,
    TransientProviderError,
)
from kupe.server.reconciler.kind import Result
from kupe.server.reconciler.kinds.cluster import ClusterKind
from kupe.server.reconciler.kinds.cluster_item import ClusterItem
from kupe.server.reconciler.kinds.cluster_rules import failed, observed, retrying
from kupe.server.reconciler.policy import RetryPolicy
from kupe.server.settings import ReconcilerSettings

NOW = datetime(2026, 4, 6, 12, 0, tzinfo=UTC)
ITEM = ClusterItem(
    id="c1",
    tenant="acme",
    name="web",
    type="shared",
    version="1.36",
    cpu_millis=2000,
    memory_bytes=4 * 2**30,
    storage_bytes=20 * 2**30,
    alerts="",
    high_availability=False,
    generation=1,
    observed_generation=0,
    phase=ClusterPhase.PENDING,
    deleting=False,
    kubernetes_version=None,
    endpoint=None,
    ca_certificate=None,
    ha_replicas_ready=0,
    ha_replicas_desired=1,
    conditions=(),
    failure_count=0,
    resource_version=7,
    lease="me:1",
)


def state(phase: InfraPhase, spec: ClusterSpec = ITEM.spec, message: str = "") -> InfraState:
    return InfraState(
        id=spec.id,
        phase=phase,
        version=spec.version,
        kubernetes_version="v1.36.3",
        endpoint="https://127.0.0.1:6443",
        ca_certificate="CA",
        cpu_millis=spec.cpu_millis,
        memory_bytes=spec.memory_bytes,
        storage_bytes=spec.storage_bytes,
        message=message,
        alerts=spec.alerts,
    )


def conditions(update: object) -> dict[str, dict[str, str]]:
    return {c["type"]: dict(c) for c in update.conditions}  # type: ignore[attr-defined]


def test_unhealthy_before_ever_running_stays_provisioning() -> None:
    update, settled = observed(ITEM, ITEM.spec, state(InfraPhase.UNHEALTHY), NOW)
    assert update.phase is ClusterPhase.PROVISIONING
    assert not settled


def test_unhealthy_after_running_is_degraded_and_watched_closely() -> None:
    running = replace(ITEM, phase=ClusterPhase.RUNNING, observed_generation=1)
    update, settled = observed(running, running.spec, state(InfraPhase.UNHEALTHY), NOW)
    assert update.phase is ClusterPhase.DEGRADED
    assert conditions(update)["Ready"]["status"] == "False"
    assert not settled  # looked at every poll, not every resync, until it recovers


def test_ready_and_matching_applies_the_generation() -> None:
    update, settled = observed(ITEM, ITEM.spec, state(InfraPhase.READY), NOW)
    assert (update.phase, update.observed_generation, settled) == (ClusterPhase.RUNNING, 1, True)
    assert update.infrastructure is not None
    assert update.infrastructure.endpoint == "https://127.0.0.1:6443"
    assert conditions(update)["UpToDate"]["status"] == "True"


def test_a_change_not_yet_applied_keeps_the_old_generation() -> None:
    running = replace(ITEM, phase=ClusterPhase.RUNNING, generation=2, observed_generation=1)
    smaller = replace(running.spec, cpu_millis=1000)
    update, settled = observed(running, running.spec, state(InfraPhase.READY, smaller), NOW)
    assert update.observed_generation == 1
    assert conditions(update)["UpToDate"]["reason"] == "Progressing"
    assert not settled


def test_the_providers_message_reaches_the_conditions() -> None:
    waiting = "waiting for capacity: 4 of 4 local clusters are running"
    update, _ = observed(ITEM, ITEM.spec, state(InfraPhase.CREATING, message=waiting), NOW)
    assert conditions(update)["Provisioned"]["message"] == waiting
    assert update.infrastructure is None  # nothing to connect to yet
    running = replace(ITEM, phase=ClusterPhase.RUNNING, observed_generation=1)
    sick = state(InfraPhase.UNHEALTHY, message="kube-apiserver is not answering")
    update, _ = observed(running, running.spec, sick, NOW)
    assert conditions(update)["Ready"]["message"].endswith("kube-apiserver is not answering")


def test_an_upgrade_keeps_serving() -> None:
    running = replace(ITEM, phase=ClusterPhase.RUNNING, version="1.37", generation=2)
    old = replace(running.spec, version="1.36")
    update, settled = observed(running, running.spec, state(InfraPhase.UPDATING, old), NOW)
    assert update.phase is ClusterPhase.UPGRADING
    assert conditions(update)["Ready"]["status"] == "True"
    assert "Upgrading to 1.37" in conditions(update)["Ready"]["message"]
    assert not settled


def test_nothing_changes_when_observed_as_recorded() -> None:
    update, _ = observed(ITEM, ITEM.spec, state(InfraPhase.READY), NOW)
    recorded = replace(
        ITEM,
        phase=update.phase,
        observed_generation=1,
        conditions=update.conditions,
        kubernetes_version="v1.36.3",
        endpoint="https://127.0.0.1:6443",
        ca_certificate="CA",
        ha_replicas_ready=1,
    )
    again, _ = observed(recorded, recorded.spec, state(InfraPhase.READY), NOW)
    assert not again.changes(recorded)
    assert update.changes(ITEM)


def test_retries_are_shown_only_while_provisioning() -> None:
    shown = retrying(ITEM, 3, "timeout", NOW)
    assert shown.failure_count == 3
    assert "Attempt 3 failed, retrying: timeout" in conditions(shown)["Provisioned"]["message"]
    running = replace(ITEM, phase=ClusterPhase.RUNNING)
    quiet = retrying(running, 1, "timeout", NOW)
    assert (quiet.failure_count, quiet.conditions) == (1, None)


def test_failed_records_the_reason() -> None:
    update = failed(ITEM, "quota exhausted", NOW)
    assert update.phase is ClusterPhase.FAILED
    assert conditions(update)["Ready"]["message"] == "quota exhausted"


class Refusing(Provider):
    """A provider whose every call fails with `error`."""

    name = "refusing"

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def observe(self, cluster_id: str) -> InfraState | None:
        raise self.error

    async def observe_many(self, cluster_ids: Sequence[str]) -> dict[str, InfraState | None]:
        raise self.error

    async def ensure(self, spec: ClusterSpec) -> InfraState:
        raise self.error

    async def delete(self, cluster_id: str) -> InfraState | None:
        raise self.error


def kind(error: Exception) -> ClusterKind:
    class Clock:
        def now(self) -> datetime:
            return NOW

    policy = RetryPolicy(ReconcilerSettings(max_transient_failures=3), random.Random(1))
    return ClusterKind(Refusing(error), Clock(), policy, Metrics())


@pytest.mark.parametrize(
    ("failures", "phase", "result"),
    [(0, None, Result.RETRY), (2, ClusterPhase.FAILED, Result.RETRIES_EXHAUSTED)],
)
async def test_transient_errors_retry_until_they_are_exhausted(
    failures: int, phase: ClusterPhase | None, result: Result
) -> None:
    outcome = await kind(TransientProviderError("throttled")).reconcile(
        replace(ITEM, failure_count=failures)
    )
    assert (outcome.status.phase, outcome.result) == (phase, result)
    assert outcome.error is not None
    assert "throttled" in outcome.error


async def test_a_permanent_error_fails_at_once_but_never_a_teardown() -> None:
    outcome = await kind(PermanentProviderError("no such region")).reconcile(ITEM)
    assert (outcome.status.phase, outcome.result) == (ClusterPhase.FAILED, Result.FAILED)
    teardown = await kind(PermanentProviderError("stuck")).reconcile(replace(ITEM, deleting=True))
    assert (teardown.status.phase, teardown.result) == (None, Result.RETRY)
    assert teardown.status.failure_count == 1


async def test_a_refused_change_to_a_running_cluster_never_fails_it() -> None:
    running = replace(ITEM, phase=ClusterPhase.RUNNING, observed_generation=1, generation=2)
    outcome = await kind(PermanentProviderError("1.38 is not installed")).reconcile(running)
    assert outcome.status.phase is None  # keeps running what it ran
    assert outcome.result is Result.RETRY
    assert conditions(outcome.status)["UpToDate"] == {
        **conditions(outcome.status)["UpToDate"],
        "status": "False",
        "reason": "ChangeRefused",
        "message": "1.38 is not installed",
    }
