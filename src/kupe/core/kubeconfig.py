"""Kubeconfig documents for a Kupe cluster: no secret inside; the exec plugin brings the token."""

from __future__ import annotations

from typing import Any

EXEC_API_VERSION = "client.authentication.k8s.io/v1"


def context_name(tenant: str, cluster: str) -> str:
    return f"kupe-{tenant}-{cluster}"


def build_kubeconfig(
    tenant: str, cluster: str, endpoint: str, certificate_authority_b64: str
) -> dict[str, Any]:
    """A complete kubeconfig with one cluster, user and context, set as current."""
    name = context_name(tenant, cluster)
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
                        "args": ["auth", "get-token", "--tenant", tenant],
                        "interactiveMode": "Never",
                        "provideClusterInfo": False,
                    }
                },
            }
        ],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }
