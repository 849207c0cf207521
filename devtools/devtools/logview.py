"""How `devtools run` shows the services' logs: one short line per JSON log record.

The services log JSON (design.md §3), right for machines and tiring in a terminal. Each record is
shown as `LEVEL message (duration) [request id]`, plus its traceback if it has one; anything that
is not a JSON record is shown as it is. `--json-logs` shows the records untouched.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from honcho.printer import Printer


def compact(line: str) -> list[str]:
    try:
        entry = json.loads(line)
    except ValueError:
        return [line]
    if not isinstance(entry, dict) or "message" not in entry:
        return [line]
    text = f"{entry.get('level', ''):<7} {entry['message']}"
    if "duration_ms" in entry:
        text += f" ({entry['duration_ms']} ms)"
    if entry.get("request_id"):
        text += f"  [{entry['request_id']}]"
    traceback = str(entry.get("traceback") or "").rstrip()
    return [text, *traceback.splitlines()]


class ServiceLogPrinter:
    """A honcho printer (same prefixes and colours) that shows JSON log records compactly."""

    def __init__(self, output: TextIO = sys.stdout, *, raw: bool = False) -> None:
        self._printer = Printer(output)
        self.raw = raw

    @property
    def width(self) -> int:
        width: int = self._printer.width
        return width

    @width.setter
    def width(self, value: int) -> None:
        self._printer.width = value

    def write(self, message: Any) -> None:
        if not self.raw and message.type == "line":
            data = message.data
            text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
            lines = [shown for line in text.splitlines() for shown in compact(line)]
            message = message._replace(data="\n".join(lines) + "\n")
        self._printer.write(message)
