"""Capture Kupe's structured logs (JSON, debug) in a buffer for one test, then put the previous
structlog and stdlib logging setup back, so later tests never write into a dead stream."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import structlog

from kupe.server.logging import configure_logging
from tests.support.harness import test_settings


@contextmanager
def captured_logs(tmp_path: Path) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    saved = structlog.get_config()
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    with mock.patch.object(sys, "stderr", stream):
        configure_logging(test_settings(tmp_path, "sqlite://", log_level="debug"))
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        structlog.configure(**saved)
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
