"""Bearer tokens are checked with Kupe (a TokenReview webhook) and roles map to RBAC."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from kupe.server.providers.base import InfraPhase, TokenAuthentication
from kupe.server.providers.local.provider import LocalProvider
from tests.local.support import TokenReviews, kubectl, spec, token_kubeconfig, wait_for


async def test_the_api_server_asks_kupe_and_roles_map_to_rbac(
    make_provider: Callable[..., LocalProvider],
    cleanup: list[tuple[LocalProvider, str]],
    token_reviews: TokenReviews,
    tmp_path: Path,
) -> None:
    provider = make_provider()
    assert isinstance(provider, TokenAuthentication)
    assert provider.accepts_kupe_tokens()
    wanted = spec()
    cleanup.append((provider, wanted.id))
    await provider.ensure(wanted)
    state = await wait_for(provider, wanted.id, InfraPhase.READY)
    other = spec()  # tokens of another cluster must not open this one
    token_reviews.tokens.update(
        {
            f"ro-{wanted.id}": (wanted.id, "rita@acme", ["kupe:readonly"]),
            f"admin-{wanted.id}": (wanted.id, "ada@acme", ["kupe:admin"]),
            f"elsewhere-{wanted.id}": (other.id, "ada@acme", ["kupe:admin"]),
        }
    )
    readonly = token_kubeconfig(state, f"ro-{wanted.id}", tmp_path)
    admin = token_kubeconfig(state, f"admin-{wanted.id}", tmp_path)

    listed = await kubectl(readonly, "get", "configmaps", "-n", "default")
    assert listed.code == 0, listed.err
    denied = await kubectl(readonly, "create", "configmap", "x", "-n", "default")
    assert denied.code != 0
    assert "forbidden" in denied.err, denied.err
    can_i = await kubectl(readonly, "auth", "can-i", "create", "configmaps")
    assert can_i.out.strip() == "no"
    made = await kubectl(admin, "create", "configmap", "x", "-n", "default")
    assert made.code == 0, made.err
    whoami = await kubectl(admin, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
    assert whoami.out == "ada@acme"

    for token in (f"elsewhere-{wanted.id}", "never-issued"):
        refused = await kubectl(token_kubeconfig(state, token, tmp_path), "get", "pods")
        assert refused.code != 0
        assert "Unauthorized" in refused.err, refused.err

    # The API server asked Kupe's URL for this cluster, with authentication.k8s.io/v1 reviews.
    paths = {path for path, _ in token_reviews.seen if wanted.id in path}
    assert paths == {f"/internal/v1/clusters/{wanted.id}/tokenreview"}
    bodies = [body for path, body in token_reviews.seen if wanted.id in path]
    assert {(b["apiVersion"], b["kind"]) for b in bodies} == {
        ("authentication.k8s.io/v1", "TokenReview")
    }

    # Kupe revokes the token: within the cache TTL (5 s, at most 10) the cluster refuses it.
    del token_reviews.tokens[f"ro-{wanted.id}"]
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        after = await kubectl(readonly, "get", "configmaps", "-n", "default")
        if after.code != 0:
            assert "Unauthorized" in after.err, after.err
            break
        assert asyncio.get_running_loop().time() < deadline, "revoked token still accepted"
        await asyncio.sleep(0.5)
