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
