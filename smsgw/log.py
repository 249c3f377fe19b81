"""structlog set-up: one JSON event per line; MSISDNs masked; no bodies above debug."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog


def mask_msisdn(msisdn: str | None) -> str:
    """`96891234567` → `9689****567`: enough to tell numbers apart in support, not to dial them."""
    if not msisdn:
        return ""
    digits = str(msisdn)
    if len(digits) <= 7:
        return digits[:1] + "*" * max(len(digits) - 2, 0) + digits[-1:]
    return digits[:4] + "*" * (len(digits) - 7) + digits[-3:]


def excerpt(value: object, limit: int = 40, quote: str | None = None) -> str:
    """`value` quoted for an error message (repr, or between `quote`s), cut to its first `limit`
    characters: an answer or a log line never echoes a whole (possibly huge, possibly personal)
    input back."""
    text = value if isinstance(value, str) else str(value)
    shown = text[:limit]
    shown = repr(shown) if quote is None else f"{quote}{shown}{quote}"
    return shown if len(text) <= limit else f"{shown}… ({len(text)} characters)"


def configure(level: str = "info", stream: Any = None) -> None:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelName(level.upper()) if isinstance(level, str) else level
        ),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
