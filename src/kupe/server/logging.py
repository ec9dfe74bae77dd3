"""Structured logs: JSON lines when not on a terminal, each request's id bound to its lines."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import orjson
import structlog

from kupe.server.settings import Settings


def configure_logging(settings: Settings) -> None:
    level = getattr(logging, settings.log_level.upper())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        if settings.effective_log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=max(level, logging.WARNING), stream=sys.stderr, force=True)


def _orjson_dumps(value: Any, **kwargs: Any) -> str:
    """structlog's JSON serializer on orjson (faster than json.dumps), falling back to json for
    what orjson refuses (integers beyond 64 bits, non-string keys) so a log line never fails."""
    try:
        return orjson.dumps(value, default=kwargs.get("default")).decode()
    except TypeError:
        return json.dumps(value, **kwargs)
