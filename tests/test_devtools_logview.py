"""How `devtools run` shows the services' JSON log lines."""

from __future__ import annotations

import io
import json
from datetime import datetime

from honcho.printer import Message

from devtools.logview import ServiceLogPrinter, compact


def test_a_json_record_becomes_one_short_line():
    record = {
        "time": "2026-01-01T00:00:00.000+00:00",
        "level": "INFO",
        "service": "users",
        "request_id": "abc123",
        "logger": "servicekit.access",
        "message": "GET /api/me/ 200",
        "duration_ms": 1.5,
    }
    assert compact(json.dumps(record)) == ["INFO    GET /api/me/ 200 (1.5 ms)  [abc123]"]


def test_tracebacks_are_kept_and_other_lines_are_untouched():
    record = {"level": "ERROR", "message": "boom", "traceback": "Traceback\n  line\nValueError"}
    assert compact(json.dumps(record)) == ["ERROR   boom", "Traceback", "  line", "ValueError"]
    assert compact("plain text") == ["plain text"]
    assert compact("[1, 2]") == ["[1, 2]"]


def test_the_printer_prefixes_each_line_with_the_service():
    output = io.StringIO()
    printer = ServiceLogPrinter(output)
    printer.width = 8
    line = json.dumps({"level": "INFO", "message": "started"}) + "\n"
    printer.write(Message("line", line.encode(), datetime(2026, 1, 1, 12, 0, 0), "users", None))
    assert output.getvalue() == "12:00:00 users    | INFO    started\n"
    raw = ServiceLogPrinter(output := io.StringIO(), raw=True)
    raw.write(Message("line", line.encode(), datetime(2026, 1, 1, 12, 0, 0), "users", None))
    assert output.getvalue() == f"12:00:00 users | {line}"


def test_with_a_log_folder_each_services_lines_are_kept_as_they_came(tmp_path):
    (tmp_path / "old.log").write_text("a previous run\n")
    printer = ServiceLogPrinter(io.StringIO(), log_dir=tmp_path)
    line = json.dumps({"level": "INFO", "message": "started", "request_id": "r1"})
    for name in ("users", "thoughts", "users", "system"):
        printer.write(Message("line", (line + "\n").encode(), datetime(2026, 1, 1), name, None))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["thoughts.log", "users.log"]
    assert (tmp_path / "users.log").read_text() == f"{line}\n{line}\n"
