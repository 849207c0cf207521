"""JSON logs on stdout: one line per event, each carrying service, version, request id and the
trace id (null when tracing is off or the line belongs to no request)."""

from __future__ import annotations

import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import Any

import orjson

from servicekit.context import current_request_id
from servicekit.tracing import current_trace_id

# Attributes every LogRecord has; anything else was passed with `extra=` and is logged as a field.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str, version: str) -> None:
        super().__init__()
        self.service = service
        self.version = version

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "version": self.version,
            "request_id": getattr(record, "request_id", None) or current_request_id(),
            "trace_id": getattr(record, "trace_id", None) or current_trace_id(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["traceback"] = "".join(traceback.format_exception(*record.exc_info))
        return orjson.dumps(entry, default=str).decode()


def configure_logging(service: str, version: str, level: str = "INFO") -> None:
    """Routes every logger (ours, uvicorn's, SQLAlchemy's) through one JSON handler on stdout."""
    # What no line shows (the formatter writes only the fields above and `extra=`'s): not
    # gathered for every record. Finding the caller's file and line walks the stack on each
    # call (the logging HOWTO's "Optimization" section); the access log makes one per request.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service, version))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's own access log is replaced by ours (which knows the route template and request id).
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs every outgoing request at INFO; our access logs already tell that story.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Alembic logs two INFO lines each time /readyz reads the current revision.
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "granian"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
