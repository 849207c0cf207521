"""Log lines written in batches (LOG_FLUSH_SECONDS) and the access line written without a
LogRecord: the same lines as logging's own path, nothing lost at a stop, at exit or on SIGTERM,
a WARNING written at once, and no credentials in a batched log either."""

from __future__ import annotations

import io
import json
import logging
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from servicekit.logs import JsonFormatter, JsonLineHandler, flush_logs, log_fields
from testkit import DatabaseFactory, ServiceProcess

FIELDS = {
    "method": "GET",
    "route": "/items/{item_id}",
    "path": "/items/7",
    "status": 200,
    "duration_ms": 1.25,
    "client": "203.0.113.7",
}


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A logger of its own, not propagating: the test decides every handler it reaches."""
    made = logging.getLogger("servicekit.tests.batches")
    made.setLevel(logging.DEBUG)
    made.propagate = False
    yield made
    for handler in made.handlers:
        handler.close()
    made.handlers[:] = []


class RecordList(logging.Handler):
    """Any handler but ours, as pytest's caplog is."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def lines_of(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_the_access_line_is_the_line_logging_would_write(logger: logging.Logger) -> None:
    stream = io.StringIO()
    handler = JsonLineHandler(stream, JsonFormatter("example", "1.4.2"), flush_seconds=0)
    logger.addHandler(handler)

    log_fields(logger, logging.INFO, "GET /items/{item_id} 200", FIELDS)
    logger.info("%s %s %d", "GET", "/items/{item_id}", 200, extra=FIELDS)

    fast, slow = stream.getvalue().splitlines()
    fast_entry, slow_entry = json.loads(fast), json.loads(slow)
    assert fast_entry.pop("time")[:19] <= slow_entry.pop("time")[:19]
    assert fast_entry == slow_entry
    assert list(fast_entry) == list(slow_entry)  # the same order of fields too
    assert fast_entry["message"] == "GET /items/{item_id} 200"
    assert fast_entry["level"] == "INFO"


def test_other_handlers_still_get_a_record_and_levels_are_kept(logger: logging.Logger) -> None:
    stream = io.StringIO()
    logger.addHandler(JsonLineHandler(stream, JsonFormatter("example", "1.4.2"), 0))
    other = RecordList()
    logger.addHandler(other)

    log_fields(logger, logging.INFO, "GET /items/{item_id} 200", FIELDS)
    logger.setLevel(logging.INFO)
    log_fields(logger, logging.DEBUG, "GET /healthz 200", {**FIELDS, "route": "/healthz"})

    (record,) = other.records
    assert record.getMessage() == "GET /items/{item_id} 200"
    assert record.levelno == logging.INFO
    assert {key: getattr(record, key) for key in FIELDS} == FIELDS
    assert [entry["route"] for entry in lines_of(stream)] == ["/items/{item_id}"]


def test_lines_wait_for_the_timer_and_a_warning_writes_them_at_once(
    logger: logging.Logger,
) -> None:
    stream = io.StringIO()
    handler = JsonLineHandler(stream, JsonFormatter("example", "1.4.2"), flush_seconds=0.3)
    logger.addHandler(handler)

    log_fields(logger, logging.INFO, "first", FIELDS)
    logger.info("second")
    assert stream.getvalue() == ""  # held
    logger.warning("third")  # written at once, after the lines before it
    assert [entry["message"] for entry in lines_of(stream)] == ["first", "second", "third"]

    log_fields(logger, logging.INFO, "fourth", FIELDS)
    assert len(lines_of(stream)) == 3
    deadline = time.monotonic() + 5
    while len(lines_of(stream)) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lines_of(stream)[-1]["message"] == "fourth"  # the timer wrote it

    log_fields(logger, logging.INFO, "fifth", FIELDS)
    handler.close()  # as logging's shutdown does at exit
    assert lines_of(stream)[-1]["message"] == "fifth"
    log_fields(logger, logging.INFO, "after the close", FIELDS)
    assert lines_of(stream)[-1]["message"] == "after the close"


async def test_the_app_writes_its_waiting_lines_when_it_stops(
    start_app: Callable[..., Any],
    make_settings: Callable[..., Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = await start_app(make_settings(log_flush_seconds=5))
    response = await client.get("/items/42")
    assert response.status_code == 200
    assert '"logger":"servicekit.access"' not in capsys.readouterr().out  # still held
    flush_logs()  # what the app's stop does (and the process's exit)
    assert '"route":"/items/{item_id}"' in capsys.readouterr().out


async def test_credentials_never_reach_a_batched_log(
    start_app: Callable[..., Any],
    make_settings: Callable[..., Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = "eyJhbGciOiJSUzI1NiJ9.TOKEN-SECRET-b81c.sig"
    client = await start_app(make_settings(log_level="DEBUG", log_flush_seconds=5))
    auth = {"Authorization": f"Bearer {token}", "Cookie": "session=COOKIE-SECRET-4e0f"}
    await client.get("/items/1?access_token=QUERY-SECRET-7a2b", headers=auth)
    await client.get("/boom", headers=auth)
    flush_logs()
    out = capsys.readouterr().out
    assert out.count('"logger":"servicekit.access"') == 2
    for secret in (token, "COOKIE-SECRET-4e0f", "QUERY-SECRET-7a2b"):
        assert secret not in out


@pytest.mark.parametrize("drain_seconds", ["0", "1"])
def test_sigterm_loses_no_line_of_a_batched_log(
    drain_seconds: str,
    database_factory: DatabaseFactory,
    example: Any,
    example_process: Callable[..., ServiceProcess],
) -> None:
    # A flush interval longer than the test: only the stop and the exit can write the lines.
    database_url = database_factory.fresh("sqlite", example.MIGRATIONS_DIR)
    service = example_process(
        drain_seconds, env={"DATABASE_URL": database_url, "LOG_FLUSH_SECONDS": "5"}
    )
    assert service.process is not None
    with httpx.Client(base_url=service.url, timeout=10) as client:
        ids = [client.get(f"/items/{n}").headers["x-request-id"] for n in range(20)]
    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(30) == 0

    entries = [json.loads(line) for line in service.logs().splitlines() if line.startswith("{")]
    access = [e for e in entries if e["logger"] == "servicekit.access"]
    assert [e["request_id"] for e in access if e["route"] == "/items/{item_id}"] == ids
    messages = [e["message"] for e in entries]
    assert "example stopped" in messages
    # Logged by uvicorn after the app stopped: written by logging's shutdown at exit.
    assert messages[-1].startswith("Finished server process")
