"""Kupe: a self-hostable managed-Kubernetes platform implementing the Kupe Cloud API."""

__version__ = "0.1.0"
