"""Plain HTTP calls for the test support code: probes, metrics scrapes, helper requests.

Every new httpx client loads the CA bundle into a new SSL context unless it is given one, about
25 ms of CPU on this machine. Readiness probes every 0.1 s that built a client per call spent a
third of a core while they waited, on 2 cores the suite keeps busy (py-spy: a fifth of the test
workers' CPU). The context is built once per process here; a client per call stays cheap and
keeps its own connection, as before.
"""

from __future__ import annotations

import ssl
from functools import cache
from typing import Any

import httpx


@cache
def tls_context() -> ssl.SSLContext:
    """httpx's default verifying context, built once."""
    return httpx.create_ssl_context()


def client(**kwargs: Any) -> httpx.Client:
    """An httpx.Client on the shared context."""
    return httpx.Client(verify=tls_context(), **kwargs)


def get(url: str, **kwargs: Any) -> httpx.Response:
    with client() as http:
        return http.get(url, **kwargs)
