"""How `devtools run` shows the services' logs: one short line per JSON log record.

The services log JSON (servicekit.logs), right for machines and tiring in a terminal. Each record is
shown as `LEVEL message (duration) [request id]`, plus its traceback if it has one; anything that
is not a JSON record is shown as it is. `--json-logs` shows the records untouched.

With a log folder, each service's lines are also kept as they came, in <folder>/<service>.log
(var/logs/ for `make run`), where `python -m devtools logs ID` finds one request across services.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO, Any, TextIO

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

    def __init__(
        self, output: TextIO = sys.stdout, *, raw: bool = False, log_dir: Path | None = None
    ) -> None:
        self._printer = Printer(output)
        self.raw = raw
        self.log_dir = log_dir
        self._files: dict[str, IO[str]] = {}
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            for old in log_dir.glob("*.log"):  # the logs of this run only
                old.unlink()

    def _keep(self, name: str, text: str) -> None:
        if self.log_dir is None or name in ("", "system", "devtools"):  # honcho's, ours
            return
        if name not in self._files:
            self._files[name] = (self.log_dir / f"{name}.log").open("a", encoding="utf-8")
        handle = self._files[name]
        handle.write(text if text.endswith("\n") else text + "\n")
        handle.flush()

    @property
    def width(self) -> int:
        width: int = self._printer.width
        return width

    @width.setter
    def width(self, value: int) -> None:
        self._printer.width = value

    def write(self, message: Any) -> None:
        if message.type == "line":
            data = message.data
            text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
            self._keep(str(message.name or ""), text)
        if not self.raw and message.type == "line":
            lines = [shown for line in text.splitlines() for shown in compact(line)]
            message = message._replace(data="\n".join(lines) + "\n")
        self._printer.write(message)
