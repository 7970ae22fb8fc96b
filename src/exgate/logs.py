"""Log levels of exgate's structlog output.

structlog, left unconfigured, prints every level, debug included. exgate's default is
``info``: :func:`configure_logging` is applied on import of :mod:`exgate` unless the embedding
application has configured structlog itself (then its configuration is kept untouched).
"""

from __future__ import annotations

import logging

import structlog

LEVELS = ("debug", "info", "warning", "error", "critical")


def configure_logging(level: str = "info") -> None:
    """Print structlog lines at ``level`` and above (one of :data:`LEVELS`), keeping the
    rest of structlog's configuration as it is.

    Raises:
        ValueError: ``level`` is not one of :data:`LEVELS`.
    """
    if level.lower() not in LEVELS:
        raise ValueError(f"log level {level!r}: expected one of {', '.join(LEVELS)}")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())))


def configure_default_logging() -> None:
    """Apply the ``info`` default unless structlog is already configured."""
    if not structlog.is_configured():
        configure_logging("info")
