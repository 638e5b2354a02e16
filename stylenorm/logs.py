"""Logging for the ``stylenorm`` command and the server: one configuration, text or JSON, with request ids.

The library itself only creates loggers (``logging.getLogger(__name__)``) and never configures logging:
that is the application's call. The CLI entry point calls :func:`configure` once (``-v``/``-q``,
``STYLENORM_LOG_LEVEL``, ``STYLENORM_LOG_FORMAT``); ``stylenorm serve`` hands the same dictionary to
uvicorn (:func:`config_dict`), so every worker process logs the same way.

The server stores each request's id in :data:`request_id` (a context variable): every record logged
while the request is handled carries it, in the text format as ``[id]`` and in JSON as ``request_id``.
"""

from __future__ import annotations

import contextvars
import datetime as _dt
import json
import logging
import logging.config
import os
from typing import Any, Literal

LEVELS = ("critical", "error", "warning", "info", "debug")
FORMATS = ("text", "json")
LogFormat = Literal["text", "json"]

LEVEL_ENV = "STYLENORM_LOG_LEVEL"
FORMAT_ENV = "STYLENORM_LOG_FORMAT"

#: the id of the HTTP request being handled in this context ('' outside a request)
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("stylenorm_request_id", default="")

# the standard LogRecord attributes: everything else on a record was passed as ``extra=``
# (uvicorn's color_message repeats the message with terminal colour codes: not for a log collector)
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {
    "message", "asctime", "request_id", "color_message", "rid"
}


class RequestIdFilter(logging.Filter):
    """Puts the current request id (or '') on every record as ``record.request_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", ""):
            record.request_id = request_id.get()
        return True


class TextFormatter(logging.Formatter):
    """``2026-12-07 11:15:28,123 INFO stylenorm.server [3f2a…] message``; the id only inside a request."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(rid)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", "")
        record.rid = f" [{rid}]" if rid else ""
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, request_id, extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _dt.datetime.fromtimestamp(record.created, _dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if getattr(record, "request_id", ""):
            entry["request_id"] = record.request_id
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                entry[key] = value if isinstance(value, str | int | float | bool | None) else repr(value)
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


def level_from(verbose: int = 0, quiet: int = 0, default: str | None = None) -> str:
    """The level to use: each -v one step more verbose, each -q one less, from STYLENORM_LOG_LEVEL or info."""
    base = (default or os.environ.get(LEVEL_ENV) or "info").lower()
    if base not in LEVELS:
        from stylenorm.errors import SpecError

        raise SpecError(f"{LEVEL_ENV}={base!r} is not a log level; use one of {', '.join(LEVELS)}")
    index = LEVELS.index(base) + verbose - quiet
    return LEVELS[min(max(index, 0), len(LEVELS) - 1)]


def format_from(default: str | None = None) -> LogFormat:
    """The log format: the argument, else STYLENORM_LOG_FORMAT, else text."""
    fmt = (default or os.environ.get(FORMAT_ENV) or "text").lower()
    if fmt not in FORMATS:
        from stylenorm.errors import SpecError

        raise SpecError(f"log format {fmt!r} is not one of {', '.join(FORMATS)} ({FORMAT_ENV})")
    return fmt  # type: ignore[return-value]


def config_dict(level: str = "info", fmt: LogFormat = "text") -> dict[str, Any]:
    """A logging.config.dictConfig dictionary: one stderr handler on the root, uvicorn's loggers into it."""
    upper = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {
            "text": {"()": TextFormatter},
            "json": {"()": JsonFormatter},
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": fmt,
                "filters": ["request_id"],
            }
        },
        "root": {"handlers": ["default"], "level": upper},
        # uvicorn configures its own loggers with handlers of their own unless told otherwise: send them
        # through ours (one format, request ids on the access lines)
        "loggers": {
            name: {"handlers": [], "level": upper, "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "stylenorm")
        },
    }


def configure(level: str = "info", fmt: LogFormat = "text") -> None:
    """Configure the process's logging (an application's entry point calls this once)."""
    configure_from(config_dict(level, fmt))


def configure_from(config: dict[str, Any]) -> None:
    """Apply a :func:`config_dict` dictionary."""
    logging.config.dictConfig(config)
    logging.captureWarnings(True)
