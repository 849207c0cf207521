"""The container layer, for real: every image built, the whole system up in Docker Compose, and
the cross-service flow, the gateway's admin refusal, the baked version, non-root read-only
containers and data kept across a restart and a `down`/`up` checked against it.

Needs a Docker engine (`.ci/run` installs and starts one). Base images are the stand-ins of
deploy/docker/standins unless COMPOSE_TEST_OFFICIAL_IMAGES=1 (a machine that can pull them).
Compose runs as its own project on ports of its own, so a developer's `make compose-up` or
`make run` is left alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from testkit import csrf_token

ROOT = Path(__file__).resolve().parents[2]
DOCKER = "/usr/bin/docker"
COMPOSE = str(Path(sys.executable).with_name("docker-compose"))
PROJECT = "mtcomposetest"
PORTS = {
    "GATEWAY_PORT": 18080,
    "GATEWAY_STATS_PORT": 18404,
    "THOUGHTS_PORT": 18000,
    "USERS_PORT": 18001,
    "FRONTEND_PORT": 18002,
    "TASKS_PORT": 18003,
    "PROMETHEUS_PORT": 19090,
    "FRONTEND_INTERNAL_PORT": 19002,
}
GATEWAY = f"http://127.0.0.1:{PORTS['GATEWAY_PORT']}"
STANDINS = {
    "PYTHON_IMAGE": "mythoughts-standin/python:3.11-slim-bookworm",
    "POSTGRES_IMAGE": "mythoughts-standin/postgres:15",
    "REDIS_IMAGE": "mythoughts-standin/redis:7",
    "HAPROXY_IMAGE": "mythoughts-standin/haproxy:2.6",
    "PROMETHEUS_IMAGE": "mythoughts-standin/prometheus:v2",
}
SERVICES = ["users", "thoughts", "frontend", "tasks"]


def _engine_answers() -> bool:
    if not Path(DOCKER).exists():
        return False
    return subprocess.run([DOCKER, "info"], capture_output=True, check=False).returncode == 0


if os.environ.get("CI") == "true":
    assert _engine_answers(), "a Docker engine is required under CI=true (.ci/run starts one)"
pytestmark = [
    pytest.mark.slow,
    # Building every image from nothing (stand-ins included) takes minutes; from the cache, seconds.
    pytest.mark.timeout(1800),
    pytest.mark.skipif(not _engine_answers(), reason="no Docker engine answers"),
]


class System:
    def __init__(self, secrets_dir: Path, version: dict[str, str]) -> None:
        self.env = {
            **os.environ,
            **{k: str(v) for k, v in PORTS.items()},
            "COMPOSE_PROJECT_NAME": PROJECT,
            "COMPOSE_SECRETS_DIR": str(secrets_dir),
        }
        if os.environ.get("COMPOSE_TEST_OFFICIAL_IMAGES") != "1":
            self.env.update(STANDINS)
        self.version = version  # what /admin/version/ answers: the images' version and commit

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [COMPOSE, "-f", str(ROOT / "compose.yaml"), *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=check,
        )

    def up(self) -> None:
        result = self.compose("up", "--wait", "--no-build", check=False)
        assert result.returncode == 0, result.stdout + result.stderr + self.compose("logs").stdout

    def container(self, service: str) -> str:
        return self.compose("ps", "-q", service).stdout.strip()


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, build_service_images: Any) -> Iterator[System]:
    secrets_dir = tmp_path_factory.mktemp("compose-secrets")
    subprocess.run([str(ROOT / "deploy/compose/secrets.sh"), str(secrets_dir)], check=True)
    version = build_service_images(os.environ.get("COMPOSE_TEST_OFFICIAL_IMAGES") == "1")
    system = System(secrets_dir, version)
    system.compose("down", "-v", check=False)
    system.up()
    try:
        yield system
    finally:
        system.compose("down", "-v", check=False)


def _login(client: httpx.Client, username: str = "bruce") -> dict[str, str]:
    answer = client.post("/api/login/", json={"username": username, "password": username})
    assert answer.status_code == 200, answer.text
    return {"Authorization": answer.json()["Authorized"]}


def test_log_in_post_search_and_delete_through_the_gateway(system: System) -> None:
    word = f"Compose{uuid.uuid4().hex[:10]}"
    with httpx.Client(base_url=GATEWAY, timeout=10) as client:
        auth = _login(client)
        posted = client.post("/api/me/thoughts/", json={"text": f"hello {word}"}, headers=auth)
        assert posted.status_code == 201, posted.text
        thought = posted.json()
        found = client.get("/api/thoughts/", params={"search": word.lower()})
        assert [t["id"] for t in found.json()] == [thought["id"]]
        assert client.get(f"/api/thoughts/{thought['id']}/").json()["username"] == "bruce"
        assert client.get("/.well-known/jwks.json").json()["keys"]
        page = client.get("/")
        assert page.status_code in (200, 303)
        assert client.post("/task", content='{"task": "from compose"}').status_code == 200
        assert "from compose" in client.get("/tasks").text
        deleted = client.delete(f"/api/me/thoughts/{thought['id']}/", headers=auth)
        assert deleted.status_code == 204
        assert client.get(f"/api/thoughts/{thought['id']}/").status_code == 404


def test_the_site_logs_in_through_the_gateway_over_the_backends_sockets(system: System) -> None:
    """The frontend calls users and thoughts over their replicas' Unix sockets (compose's
    USERS_UNIX_SOCKETS and THOUGHTS_UNIX_SOCKETS): a form login and the home page after it."""
    with httpx.Client(base_url=GATEWAY, timeout=10) as site:
        page = site.get("/login")
        form = {"username": "bruce", "password": "bruce", "csrf_token": csrf_token(page.text)}
        assert site.post("/login", data=form).status_code == 303
        home = site.get("/")
        assert home.status_code == 200
        assert "bruce" in home.text


def test_users_believes_no_forwarded_address_from_its_published_port(system: System) -> None:
    """Users counts failed logins per (account, address). A caller that could name its address
    in X-Forwarded-For would get a fresh count with each guess; over TCP none is believed, so
    the guesses count as the one address they came from, and the last is throttled."""
    users = f"http://127.0.0.1:{PORTS['USERS_PORT']}"
    admin = (Path(system.env["COMPOSE_SECRETS_DIR"]) / "admin_token").read_text().strip()
    name, password = f"guessed-{uuid.uuid4().hex[:8]}", "correct horse battery"
    created = httpx.post(
        f"{users}/admin/users/",
        json={"username": name, "password": password},
        headers={"Authorization": f"Bearer {admin}"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    with httpx.Client(base_url=users, timeout=10) as client:
        for n in range(1, 6):  # LOGIN_MAX_FAILURES_PER_USERNAME: 5 per (account, address)
            guess = client.post(
                "/api/login/",
                json={"username": name, "password": "wrong"},
                headers={"X-Forwarded-For": f"198.51.100.{n}"},
            )
            assert guess.status_code == 401, guess.text
        last = client.post(
            "/api/login/",
            json={"username": name, "password": password},
            headers={"X-Forwarded-For": "198.51.100.6"},
        )
    assert last.status_code == 429, last.text


@pytest.mark.parametrize(
    "path",
    [
        "/admin/version/",
        "/%61dmin/version/",
        "/%41DMIN/version/",
        "/admin%2fversion/",
        "/admin%2Fusers/",
        "//admin/version/",
        "/./admin/version/",
        "/api/../admin/version/",
        "/admin",
    ],
)
def test_the_gateway_never_routes_admin(system: System, path: str) -> None:
    # The raw path goes out as written (no client-side normalisation).
    with httpx.Client(timeout=10) as client:
        request = client.build_request("GET", GATEWAY)
        request.url = request.url.copy_with(raw_path=path.encode())
        assert client.send(request).status_code == 404
        post = client.build_request("POST", GATEWAY, json={"username": "x", "password": "y"})
        post.url = post.url.copy_with(raw_path=path.encode())
        assert client.send(post).status_code == 404


def test_each_service_answers_its_baked_version_on_its_own_port(system: System) -> None:
    for service in SERVICES:
        # The frontend serves operations on its internal port only.
        key = "FRONTEND_INTERNAL_PORT" if service == "frontend" else f"{service.upper()}_PORT"
        port = PORTS[key]
        answer = httpx.get(f"http://127.0.0.1:{port}/admin/version/", timeout=10)
        if answer.status_code == 401:  # admin routes need the admin token once it is configured
            token = (Path(system.env["COMPOSE_SECRETS_DIR"]) / "admin_token").read_text().strip()
            answer = httpx.get(
                f"http://127.0.0.1:{port}/admin/version/",
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            )
        assert answer.json() == system.version, service


def test_services_run_as_non_root_on_a_read_only_root_filesystem(system: System) -> None:
    for service in SERVICES:
        container = system.container(service)
        inspect = json.loads(
            subprocess.run([DOCKER, "inspect", container], capture_output=True, check=True).stdout
        )[0]
        assert inspect["HostConfig"]["ReadonlyRootfs"] is True, service
        assert inspect["HostConfig"]["CapDrop"] == ["ALL"], service
        uid = subprocess.run(
            [DOCKER, "exec", container, "id", "-u"], capture_output=True, text=True, check=True
        ).stdout.strip()
        assert uid == "10001", service
        write = subprocess.run(
            [DOCKER, "exec", container, "touch", "/app/x"], capture_output=True, check=False
        )
        assert write.returncode != 0, service


def test_data_survives_a_restart_and_down_then_up(system: System) -> None:
    with httpx.Client(base_url=GATEWAY, timeout=10) as client:
        auth = _login(client, "stephen")
        texts = [f"kept {uuid.uuid4().hex}" for _ in range(3)]
        ids = []
        for text in texts:
            answer = client.post("/api/me/thoughts/", json={"text": text}, headers=auth)
            assert answer.status_code == 201
            ids.append(answer.json()["id"])

    system.compose("restart", "thoughts")
    system.up()  # waits until every service is healthy again
    with httpx.Client(base_url=GATEWAY, timeout=10) as client:
        for thought_id, text in zip(ids, texts, strict=True):
            assert client.get(f"/api/thoughts/{thought_id}/").json()["text"] == text

    system.compose("down")  # keeps the volumes
    system.up()
    with httpx.Client(base_url=GATEWAY, timeout=10) as client:
        for thought_id, text in zip(ids, texts, strict=True):
            assert client.get(f"/api/thoughts/{thought_id}/").json()["text"] == text
        # The signing key was kept too: a login still works and its token is accepted.
        auth = _login(client, "stephen")
        assert client.get("/api/me/thoughts/", headers=auth).status_code == 200
