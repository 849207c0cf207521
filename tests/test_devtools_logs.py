"""`python -m devtools logs ID`: one request's log lines from every service, in time order,
from the `make run` logs (var/logs/<service>.log) and from `docker compose logs` output.

The lines are the real services' (the observed system's processes): a login through the web
site with a request id of our choosing, which the frontend forwards to the users service.
"""

from __future__ import annotations

import io
import re
import time
import uuid
from pathlib import Path

import httpx

from devtools.__main__ import build_parser
from devtools.logs import main as logs_main
from devtools.observed import ALL_SERVICES, ObservedSystem
from testkit import csrf_token

SHOWN = re.compile(r"^(\d\d:\d\d:\d\d\.\d{3}) (\S+)\s")


def _login_with_request_id(observed: ObservedSystem) -> str:
    request_id = f"find-me-{uuid.uuid4().hex[:12]}"
    with httpx.Client(base_url=observed.url("frontend"), timeout=15) as site:
        form = site.get("/login")
        answer = site.post(
            "/login",
            data={
                "username": "nobody-here",
                "password": "wrong-pw-1",
                "csrf_token": csrf_token(form.text),
            },
            headers={"X-Request-ID": request_id},
        )
    assert answer.headers["x-request-id"] == request_id
    # The access line is written once the answer has gone: wait until both services have it.
    deadline = time.monotonic() + 10
    while not all(request_id in observed.system.logs(name) for name in ("frontend", "users")):
        assert time.monotonic() < deadline, "the request's access lines were never written"
        time.sleep(0.05)
    return request_id


def _run(*argv: str) -> tuple[int, list[str]]:
    output = io.StringIO()
    args = build_parser().parse_args(["logs", *argv])
    code = logs_main(args, args.var_dir or Path("var"), output)
    return code, output.getvalue().splitlines()


def _check_one_request(lines: list[str], request_id: str) -> None:
    shown = [SHOWN.match(line) for line in lines]
    services = [match.group(2) for match in shown if match]
    assert {"frontend", "users"} <= set(services), lines
    assert all(request_id in line for line, match in zip(lines, shown, strict=True) if match)
    # In the order the lines were written (each service writes its access line once its
    # answer is sent, so the frontend's may come a moment before the users service's).
    times = [match.group(1) for match in shown if match]
    assert times == sorted(times), lines


def test_one_request_across_services_from_the_make_run_logs(
    observed_system: ObservedSystem, tmp_path: Path
) -> None:
    request_id = _login_with_request_id(observed_system)
    # `devtools run` keeps each service's lines, as they came, in var/logs/<service>.log: the
    # observed system's processes write exactly those lines to their log files.
    logs = tmp_path / "var" / "logs"
    logs.mkdir(parents=True)
    for name in ALL_SERVICES:
        (logs / f"{name}.log").write_text(observed_system.system.logs(name))
    code, lines = _run(request_id, "--var-dir", str(tmp_path / "var"))
    assert code == 0
    _check_one_request(lines, request_id)
    assert _run("no-such-request-id", "--var-dir", str(tmp_path / "var")) == (
        1,
        ["no log line names no-such-request-id"],
    )


def test_one_request_across_services_from_docker_compose_logs(
    observed_system: ObservedSystem, tmp_path: Path
) -> None:
    request_id = _login_with_request_id(observed_system)
    # `docker compose logs --no-color` prefixes each line with its container and prints the
    # services one after another: the command must put them back in time order.
    compose_output = tmp_path / "compose.log"
    compose_output.write_text(
        "".join(
            f"{name}-1  | {line}\n"
            for name in ("users", "frontend", "thoughts", "tasks")
            for line in observed_system.system.logs(name).splitlines()
        )
        + "frontend-1  | not a JSON line, skipped\n"
    )
    code, lines = _run(request_id, str(compose_output))
    assert code == 0
    _check_one_request(lines, request_id)
