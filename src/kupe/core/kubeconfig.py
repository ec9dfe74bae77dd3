"""Kubeconfig documents for a Kupe cluster: no secret inside; the exec plugin brings the token."""

from __future__ import annotations

from typing import Any

EXEC_API_VERSION = "client.authentication.k8s.io/v1"


def context_name(tenant: str, cluster: str) -> str:
    return f"kupe-{tenant}-{cluster}"


def build_kubeconfig(
    tenant: str,
    cluster: str,
    endpoint: str,
    certificate_authority_b64: str,
    api_url: str | None = None,
) -> dict[str, Any]:
    """A complete kubeconfig with one cluster, user and context, set as current. Its user runs
    `kupe auth get-token`, which brings a short-lived token for this cluster only."""
    name = context_name(tenant, cluster)
    args = ["auth", "get-token", "--tenant", tenant, "--cluster", cluster]
    if api_url:
        args += ["--api-url", api_url]
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [
            {
                "name": name,
                "cluster": {
                    "server": endpoint,
                    "certificate-authority-data": certificate_authority_b64,
                },
            }
        ],
        "users": [
            {
                "name": name,
                "user": {
                    "exec": {
                        "apiVersion": EXEC_API_VERSION,
                        "command": "kupe",
                        "args": args,
                        "interactiveMode": "Never",
                        "provideClusterInfo": True,
                    }
                },
            }
        ],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }
