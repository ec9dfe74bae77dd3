"""Prometheus metrics of one process, on a registry of its own so several apps can coexist."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """Every metric Kupe exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "kupe_http_requests_total",
            "HTTP requests by route template, method and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "kupe_http_request_duration_seconds",
            "HTTP request latency by route template and method.",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "kupe_reconciler_queue_depth",
            "Items due for reconciliation at the last look, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.listener_up = Gauge(
            "kupe_reconciler_wakeup_listener_up",
            "1 while the reconciler listens for other replicas' wake-ups (PostgreSQL NOTIFY).",
            registry=self.registry,
        )
        self.reconciles = Counter(
            "kupe_reconciler_reconciles_total",
            "Reconciliations by kind and outcome "
            "(ok, retry, failed, retries_exhausted, lost_lease).",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.phase_transitions = Counter(
            "kupe_cluster_phase_transitions_total",
            "Cluster phase changes made by the reconciler.",
            ["from_phase", "to_phase"],
            registry=self.registry,
        )
        self.provider_operations = Counter(
            "kupe_provider_operations_total",
            "Real infrastructure mutations made by the provider: create, update, delete.",
            ["provider", "operation"],
            registry=self.registry,
        )
