"""The Secrets held in the simulated clusters: rows of the cloud's `secrets` table, with the
same ownership rule as a real cluster's (Kupe writes and deletes only the Secrets labelled as
managed by it)."""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Mapping

from kupe.server.providers.base import SecretConflict, SecretCopy

MANAGED_BY = ("app.kubernetes.io/managed-by", "kupe")


def read(conn: sqlite3.Connection, cluster_id: str, namespace: str, name: str) -> SecretCopy | None:
    found = conn.execute(
        "SELECT data, labels, annotations FROM secrets "
        "WHERE cluster_id=? AND namespace=? AND name=?",
        (cluster_id, namespace, name),
    ).fetchone()
    if found is None:
        return None
    data = {k: base64.b64decode(v) for k, v in json.loads(found[0]).items()}
    return SecretCopy(namespace, name, data, json.loads(found[1]), json.loads(found[2]))


def store(conn: sqlite3.Connection, cluster_id: str, secret: SecretCopy, *, managed: bool) -> None:
    """Create or replace the Secret; SecretConflict when Kupe writes over one it does not
    manage."""
    current = conn.execute(
        "SELECT labels FROM secrets WHERE cluster_id=? AND namespace=? AND name=?",
        (cluster_id, secret.namespace, secret.name),
    ).fetchone()
    if managed and current is not None and not _is_managed(json.loads(current[0])):
        raise SecretConflict(
            f"a Secret {secret.namespace}/{secret.name} exists that Kupe does not manage"
        )
    labels = {**secret.labels, MANAGED_BY[0]: MANAGED_BY[1]} if managed else dict(secret.labels)
    conn.execute(
        "INSERT OR REPLACE INTO secrets (cluster_id, namespace, name, data, labels, "
        "annotations) VALUES (?,?,?,?,?,?)",
        (
            cluster_id,
            secret.namespace,
            secret.name,
            json.dumps({k: base64.b64encode(v).decode() for k, v in secret.data.items()}),
            json.dumps(labels),
            json.dumps(dict(secret.annotations)),
        ),
    )


def delete_managed(conn: sqlite3.Connection, cluster_id: str, namespace: str, name: str) -> bool:
    """Remove the Secret if Kupe manages it; whether one went."""
    deleted = conn.execute(
        "DELETE FROM secrets WHERE cluster_id=? AND namespace=? AND name=? "
        "AND json_extract(labels, '$.\"app.kubernetes.io/managed-by\"') = 'kupe'",
        (cluster_id, namespace, name),
    ).rowcount
    return bool(deleted)


def _is_managed(labels: Mapping[str, str]) -> bool:
    return labels.get(MANAGED_BY[0]) == MANAGED_BY[1]
