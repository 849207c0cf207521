"""`python -m devtools logs ID`: every log line of every service for one request id or trace id,
in time order.

The services log one JSON record per line with `service`, `time`, `request_id` and `trace_id`
(servicekit.logs); the request id travels with every call between services (X-Request-ID) and
the trace id with `traceparent`, so one id finds a user's request in every service it reached.
Sources, any mix of:

- the `make run` logs: `devtools run` writes each service's lines to var/logs/<service>.log
  (the default when no file is named);
- `docker compose logs` output, saved to a file or piped in as `-` (`docker compose logs
  --no-color | python -m devtools logs ID -`): its `service-1  | ` prefixes are skipped;
- `kubectl logs` output, or any file of raw JSON lines.

Anything before the first `{` of a line is a prefix (compose's, honcho's `12:00:00 users | `);
lines that are not JSON records are ignored.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from devtools.logview import compact


@dataclass(frozen=True)
class Record:
    time: datetime
    service: str
    entry: dict[str, Any]

    def lines(self) -> list[str]:
        first, *rest = compact(json.dumps(self.entry))
        stamp = self.time.strftime("%H:%M:%S.%f")[:-3]
        trace = self.entry.get("trace_id")
        suffix = f"  trace={trace}" if trace else ""
        return [f"{stamp} {self.service:<9} {first}{suffix}", *(f"    {line}" for line in rest)]


def parse(line: str) -> Record | None:
    """The JSON record in a log line, whatever prefix the line has; None if it has none."""
    start = line.find("{")
    if start < 0:
        return None
    try:
        entry = json.loads(line[start:])
        moment = datetime.fromisoformat(str(entry["time"]))
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(entry, dict):
        return None
    return Record(moment, str(entry.get("service") or "?"), entry)


def matching(lines: Iterable[str], wanted: str) -> Iterator[Record]:
    for line in lines:
        record = parse(line)
        if record is not None and wanted in (
            record.entry.get("request_id"),
            record.entry.get("trace_id"),
        ):
            yield record


def find(sources: Iterable[Iterable[str]], wanted: str) -> list[Record]:
    """Every record of every source whose request id or trace id is `wanted`, oldest first
    (stable: lines of one source with the same millisecond keep their order)."""
    found = [record for source in sources for record in matching(source, wanted)]
    return sorted(found, key=lambda record: record.time)


def default_sources(var_dir: Path) -> list[Path]:
    return sorted((var_dir / "logs").glob("*.log"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="a request id (X-Request-ID) or a trace id (32 hex digits)")
    parser.add_argument(
        "files",
        nargs="*",
        type=Path,
        help="log files (`docker compose logs` output, `kubectl logs`, raw JSON lines); `-` "
        "reads standard input; default: the `make run` logs in var/logs/",
    )


def main(args: argparse.Namespace, var_dir: Path, output: TextIO = sys.stdout) -> int:
    files: list[Path] = args.files or default_sources(var_dir)
    if not files:
        print(f"no log files in {var_dir / 'logs'}: run `make run`, or name files", file=output)
        return 1
    opened: list[Iterable[str]] = []
    for path in files:
        opened.append(
            sys.stdin if str(path) == "-" else path.read_text(errors="replace").splitlines()
        )
    records = find(opened, args.id)
    for record in records:
        for line in record.lines():
            print(line, file=output)
    if not records:
        print(f"no log line names {args.id}", file=output)
        return 1
    return 0
