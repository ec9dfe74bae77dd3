"""The reconciled kinds: each plugs into the shared reconciler (see reconciler/kind.py)."""
