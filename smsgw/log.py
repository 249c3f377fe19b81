"""structlog set-up: one JSON event per line; MSISDNs masked; no bodies above debug.

Per-message events (an MO accepted, a booking made, a look-up that failed) are logged at debug:
rendering and writing a JSON line for each message would cost the gateway a good share of its
time at full load.  Below the configured level they are not rendered, only counted, and the
gateway's periodic `traffic` event (smsgw/traffic.py) reports those counts at info.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from typing import Any

import structlog

#: Events called below the configured level, by name: counted instead of rendered.  One per
#: process, as the logging configuration is; readers take differences between two looks.
suppressed_events: Counter[str] = Counter()


def mask_msisdn(msisdn: str | None) -> str:
    """`96891234567` → `9689****567`: enough to tell numbers apart in support, not to dial them."""
    if not msisdn:
        return ""
    digits = str(msisdn)
    if len(digits) <= 7:
        return digits[:1] + "*" * max(len(digits) - 2, 0) + digits[-1:]
    return digits[:4] + "*" * (len(digits) - 7) + digits[-3:]


def _count(self: Any, event: str, *args: Any, **kw: Any) -> None:
    suppressed_events[event] += 1


def _counting_logger(min_level: int) -> type:
    """structlog's filtering logger, whose calls below `min_level` count their event instead of
    doing nothing (the cost stays a dictionary increment)."""
    base = structlog.make_filtering_bound_logger(min_level)
    below = {name: _count for level, name in ((logging.DEBUG, "debug"), (logging.INFO, "info"),
                                              (logging.WARNING, "warning")) if level < min_level}
    if "info" in below:
        below["msg"] = _count
    return type(f"Counting{base.__name__}", (base,), below)


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
        wrapper_class=_counting_logger(logging.getLevelName(level.upper()) if isinstance(level, str) else level),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
