"""Alertmanager for tenants: its binaries (built from the Go module proxy into the local
provider's cache), Kupe's rendering and masking of tenants' configuration, the checker that
runs Alertmanager's own loader, and the backends configurations are delivered to.

Nothing here sees the database: services and the reconciler hand it plain values.
"""
