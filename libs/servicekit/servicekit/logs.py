"""JSON logs on stdout: one line per event, each carrying service, version, request id and the
trace id (null when tracing is off or the line belongs to no request).

Lines are written in batches, as nginx's `access_log ... buffer= flush=` does: the handler keeps
them in memory and writes them with one system call every `flush_seconds` (LOG_FLUSH_SECONDS),
when 64 KiB are waiting, at once for a WARNING or worse (with every line before it, in order),
when the process exits (logging's own shutdown, at interpreter exit) and when the app stops. A
process killed without an exit (SIGKILL, the kernel's OOM killer, a crash in C code) loses at
most the last `flush_seconds` of lines. `flush_seconds=0` writes every line at once.

The access log's one line per request skips `logging`'s record when our handler is the only
one to take it (`log_fields`): same fields, same order, same level rules, through the same
handler and stream, for a fifth of the CPU (bench/README.md, issue 15 target 7).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
import weakref
from datetime import UTC, datetime
from typing import Any, TextIO

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
# Lines waiting in memory beyond this are written at once, whatever the timer says.
_MAX_PENDING_CHARS = 64 * 1024


class _Clock:
    """ISO 8601 UTC time to the millisecond, as `datetime.isoformat` writes it; the part up to
    the second is made once per second (a datetime per line was 2 µs of a 17 µs line)."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def format(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            # Races between threads only make two of them compute the same prefix.
            prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._prefix, self._second = prefix, second
        else:
            prefix = self._prefix
        millis = int((created - second) * 1000)
        return f"{prefix}.{millis:03d}+00:00"


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str, version: str) -> None:
        super().__init__()
        self.service = service
        self.version = version
        self._clock = _Clock()

    def line(
        self,
        created: float,
        level: str,
        logger: str,
        message: str,
        fields: dict[str, Any],
        request_id: str | None = None,
        trace_id: str | None = None,
    ) -> str:
        """One JSON object: the fixed fields first, then `fields` (those not already set)."""
        entry: dict[str, Any] = {
            "time": self._clock.format(created),
            "level": level,
            "service": self.service,
            "version": self.version,
            "request_id": request_id or current_request_id(),
            "trace_id": trace_id or current_trace_id(),
            "logger": logger,
            "message": message,
        }
        for key, value in fields.items():
            if key not in entry:
                entry[key] = value
        return orjson.dumps(entry, default=str).decode()

    def format(self, record: logging.LogRecord) -> str:
        fields = {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS}
        if record.exc_info:
            fields["traceback"] = "".join(traceback.format_exception(*record.exc_info))
        return self.line(
            record.created,
            record.levelname,
            record.name,
            record.getMessage(),
            fields,
            getattr(record, "request_id", None),
            getattr(record, "trace_id", None),
        )


class JsonLineHandler(logging.Handler):
    """Writes formatted lines to a text stream in batches (the module's docstring says when)."""

    def __init__(self, stream: TextIO, formatter: JsonFormatter, flush_seconds: float) -> None:
        super().__init__()
        self.stream = stream
        self.json = formatter
        self.setFormatter(formatter)
        self.flush_seconds = flush_seconds
        self._pending: list[str] = []
        self._pending_chars = 0
        # False once closed: a line logged after the handler's close is written at once.
        self._buffering = flush_seconds > 0
        self._stop_timer = threading.Event()
        if flush_seconds > 0:
            # The thread holds the handler weakly: a handler that configure_logging replaced
            # and nobody holds ends its thread at the next tick.
            threading.Thread(
                target=_flush_every,
                args=(weakref.ref(self), flush_seconds, self._stop_timer),
                name="log-flush",
                daemon=True,
            ).start()

    def emit(self, record: logging.LogRecord) -> None:
        # Called by Handler.handle under self.lock.
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self._add(line, urgent=record.levelno >= logging.WARNING)

    def write_fields(self, level: int, logger: str, message: str, fields: dict[str, Any]) -> None:
        """`logging.Logger.log(level, message, extra=fields)` as this handler would write it,
        without the LogRecord (log_fields decides when that is the same)."""
        line = self.json.line(time.time(), logging.getLevelName(level), logger, message, fields)
        with self.lock:  # type: ignore[union-attr]  # Handler.createLock made it
            self._add(line, urgent=level >= logging.WARNING)

    def _add(self, line: str, *, urgent: bool) -> None:
        self._pending.append(line)
        self._pending_chars += len(line) + 1
        if urgent or not self._buffering or self._pending_chars >= _MAX_PENDING_CHARS:
            self._write_pending()

    def _write_pending(self) -> None:
        if not self._pending:
            return
        text = "\n".join(self._pending) + "\n"
        self._pending.clear()
        self._pending_chars = 0
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            # A closed or broken stdout: logging's own rule is to report and go on serving.
            print("servicekit.logs: could not write log lines", file=sys.stderr)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write_pending()

    def close(self) -> None:
        self._stop_timer.set()
        with self.lock:  # type: ignore[union-attr]
            self._buffering = False
            self._write_pending()
        super().close()


def _flush_every(
    handler_ref: weakref.ref[JsonLineHandler], seconds: float, stop: threading.Event
) -> None:
    while not stop.wait(seconds):
        handler = handler_ref()
        if handler is None:
            return
        handler.flush()
        del handler


def log_fields(logger: logging.Logger, level: int, message: str, fields: dict[str, Any]) -> None:
    """`logger.log(level, message, extra=fields)` with the same result for every handler it
    reaches: our JsonLineHandler gets the line without a LogRecord, any other handler (pytest's
    caplog, a handler a test or a library added) a record as usual. Loggers with filters, and
    a message without any handler (logging's last resort), take logging's own path."""
    if not logger.isEnabledFor(level):
        return
    if logger.filters:
        logger.log(level, "%s", message, extra=fields)
        return
    record: logging.LogRecord | None = None
    reached = False
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            reached = True
            if level < handler.level:
                continue
            if isinstance(handler, JsonLineHandler) and not handler.filters:
                handler.write_fields(level, logger.name, message, fields)
            else:
                if record is None:
                    record = logger.makeRecord(
                        logger.name, level, "(unknown file)", 0, message, (), None, extra=fields
                    )
                handler.handle(record)
        current = current.parent if current.propagate else None
    if not reached:
        logger.log(level, "%s", message, extra=fields)


def flush_logs() -> None:
    """Writes the lines waiting in the root logger's handlers (at the app's stop)."""
    for handler in logging.getLogger().handlers:
        handler.flush()


def configure_logging(
    service: str, version: str, level: str = "INFO", flush_seconds: float = 0.0
) -> None:
    """Routes every logger (ours, uvicorn's, SQLAlchemy's) through one JSON handler on stdout,
    writing in batches every `flush_seconds` (0: every line at once)."""
    # What no line shows (the formatter writes only the fields above and `extra=`'s): not
    # gathered for every record. Finding the caller's file and line walks the stack on each
    # call (the logging HOWTO's "Optimization" section).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = JsonLineHandler(sys.stdout, JsonFormatter(service, version), flush_seconds)
    root = logging.getLogger()
    for replaced in root.handlers:
        if isinstance(replaced, JsonLineHandler):
            replaced.close()  # writes its waiting lines, ends its timer
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
