"""Run the in-process app on its own event loop thread, for synchronous drivers such as
schemathesis and hypothesis, which call into it through a blocking portal."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from anyio.from_thread import BlockingPortal, start_blocking_portal

from kupe.server.settings import Settings
from tests.support.harness import Kupe, running_kupe


@contextmanager
def app_in_thread(settings: Settings) -> Iterator[tuple[BlockingPortal, Kupe]]:
    """Yield a portal into the app's loop and the running app; everything stops on exit."""
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(running_kupe(settings)) as kupe,
    ):
        yield portal, kupe
