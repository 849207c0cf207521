"""The local overlay run as a kubelet would run it, on the Docker engine (there is no cluster).

Every StatefulSet, Job and Deployment of the rendered `overlays/local` becomes containers started
from the image its manifest names, with the manifest's command and args, its environment
(resolved from the rendered ConfigMaps and from Secrets generated here), user and group, fsGroup,
read-only root filesystem, dropped capabilities, no privilege escalation, memory and CPU limits,
and its volumes (emptyDir as a node folder, Secret and ConfigMap files with the declared mode and
the fsGroup as their group, claims as Docker volumes), on one Docker network on which each
container answers to the names of the Services that select its pod. Order: the databases, then
each service's Jobs (each must exit 0) and then its server. Each probe is run exactly as
declared (httpGet path and port, exec command, tcpSocket port) within the budget its thresholds
give, and the cross-service flow runs against the pods' addresses: log in, post, search (API and
frontend page), a task with the token, the admin token, metrics where the ServiceMonitors scrape.

So a manifest whose probe path or port, environment name, user or volume does not fit the image
fails here. PostgreSQL and Redis run from the stand-in images (POSTGRES_IMAGE, REDIS_IMAGE;
K8S_TEST_OFFICIAL_IMAGES=1 runs the manifests' official images on a machine that can pull them).
Everything started is named mtk8stest-<random> and removed at the end.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from testkit import need

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "deploy" / "k8s" / "overlays" / "local"
DOCKER = "/usr/bin/docker"
STANDINS = {
    "postgres:15": os.environ.get("POSTGRES_IMAGE", "mythoughts-standin/postgres:15"),
    "redis:7": os.environ.get("REDIS_IMAGE", "mythoughts-standin/redis:7"),
}
# How long a pod may take to become ready once its startup probe passed (a kubelet waits
# forever; the test must not).
READY_WITHIN_SECONDS = 90

Obj = dict[str, Any]


def _engine_answers() -> bool:
    if not Path(DOCKER).exists():
        return False
    return subprocess.run([DOCKER, "info"], capture_output=True, check=False).returncode == 0


# The budget includes building the images when they are missing (minutes from nothing).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    result = subprocess.run(
        [DOCKER, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:3])}...: {result.stderr.strip()}")
    return result.stdout.strip()


def quantity(value: str | int) -> float:
    """A Kubernetes quantity (64Mi, 500m, 1) as a number."""
    text = str(value)
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9}
    for unit, factor in units.items():
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


@dataclass
class Pod:
    """One pod of a workload: its name, labels, spec and the Services that select it."""

    kind: str
    name: str
    labels: dict[str, str]
    spec: Obj
    claims: list[Obj] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    containers: dict[str, str] = field(default_factory=dict)  # container name -> docker name


class Kubelet:
    """Starts pods on the Docker engine the way their manifests declare."""

    def __init__(self, objects: list[Obj], secrets: dict[str, dict[str, str]], workdir: Path):
        self.prefix = f"mtk8stest-{uuid.uuid4().hex[:8]}"
        self.objects = objects
        self.config_maps = {
            o["metadata"]["name"]: o.get("data", {}) for o in objects if o["kind"] == "ConfigMap"
        }
        self.secrets = secrets
        self.workdir = workdir
        self.services = [o for o in objects if o["kind"] == "Service"]
        self.volumes: list[str] = []
        self.durations: dict[str, float] = {}
        # What the kubelet's HTTP probes send: no keep-alive, its User-Agent.
        self.http = httpx.Client(headers={"User-Agent": "kube-probe/1.32", "Connection": "close"})
        docker("network", "create", "--label", f"mtk8stest={self.prefix}", self.prefix)
        self.network = self.prefix

    # --- what a pod is -------------------------------------------------------------------

    def pod(self, obj: Obj) -> Pod:
        template = obj["spec"]["template"]
        labels = template["metadata"].get("labels", {})
        pod = Pod(obj["kind"], obj["metadata"]["name"], labels, template["spec"])
        pod.claims = obj["spec"].get("volumeClaimTemplates", [])
        for service in self.services:
            selector = service["spec"].get("selector") or {}
            if selector and all(labels.get(k) == v for k, v in selector.items()):
                pod.aliases.append(service["metadata"]["name"])
                self._check_service_ports(service, pod)
        return pod

    def _check_service_ports(self, service: Obj, pod: Pod) -> None:
        """On Docker a Service name reaches the container's port itself: that is only what a
        cluster does if every Service port leads to the container port of the same number."""
        ports = {
            p.get("name"): p["containerPort"] for c in pod.spec["containers"] for p in c["ports"]
        }
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            number = ports.get(target, target)
            assert number == port["port"], (
                f"Service {service['metadata']['name']} port {port['port']} leads to {target} "
                f"(container port {number}) of pod {pod.name}"
            )
            assert number in ports.values(), f"{pod.name} declares no port {number}"

    # --- environment and volumes ---------------------------------------------------------

    def environment(self, pod: Pod, container: Obj) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                name = source["configMapRef"]["name"]
                assert name in self.config_maps, f"{pod.name}: no ConfigMap {name}"
                data = self.config_maps[name]
            else:
                name = source["secretRef"]["name"]
                data = self.secret(name)
            env.update({source.get("prefix", "") + k: v for k, v in data.items()})
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = str(item["value"])
                continue
            ref = item["valueFrom"]
            if "configMapKeyRef" in ref:
                env[item["name"]] = self.config_maps[ref["configMapKeyRef"]["name"]][
                    ref["configMapKeyRef"]["key"]
                ]
            elif "secretKeyRef" in ref:
                ref = ref["secretKeyRef"]
                env[item["name"]] = self.secret(ref["name"])[ref["key"]]
            else:
                assert ref["fieldRef"]["fieldPath"] == "metadata.name", ref
                env[item["name"]] = pod.name
        return env

    def secret(self, name: str) -> dict[str, str]:
        assert name in self.secrets, f"the manifests use a Secret {name} the README never creates"
        return self.secrets[name]

    def _files(self, pod: Pod, volume: Obj, fs_group: int | None) -> Path:
        """A Secret, ConfigMap or projected volume as a folder of files, as the kubelet writes
        it: mode from defaultMode (or the item's), owner root, group the pod's fsGroup."""
        if "projected" in volume:
            mode = volume["projected"].get("defaultMode", 0o644)
            sources = volume["projected"]["sources"]
        elif "secret" in volume:
            mode = volume["secret"].get("defaultMode", 0o644)
            sources = [{"secret": {**volume["secret"], "name": volume["secret"]["secretName"]}}]
        else:
            mode = volume["configMap"].get("defaultMode", 0o644)
            sources = [{"configMap": volume["configMap"]}]
        folder: Path = self.workdir / pod.name / volume["name"]
        folder.mkdir(parents=True)
        for source in sources:
            ((kind, ref),) = source.items()
            data = self.secret(ref["name"]) if kind == "secret" else self.config_maps[ref["name"]]
            items = ref.get("items") or [{"key": key, "path": key} for key in data]
            for item in items:
                path = folder / item["path"]
                path.write_text(data[item["key"]])
                path.chmod(item.get("mode", mode))
                if os.geteuid() == 0:
                    os.chown(path, 0, fs_group or 0)
                else:  # without root the group cannot be set: readable by all instead
                    path.chmod(item.get("mode", mode) | 0o444)
        folder.chmod(0o755)
        return folder

    def mounts(self, pod: Pod, container: Obj) -> list[str]:
        fs_group = pod.spec.get("securityContext", {}).get("fsGroup")
        volumes = {v["name"]: v for v in pod.spec.get("volumes", [])}
        claims = {c["metadata"]["name"] for c in pod.claims}
        args: list[str] = []
        for mount in container.get("volumeMounts", []):
            target = mount["mountPath"]
            readonly = ",readonly" if mount.get("readOnly") else ""
            if mount["name"] in claims:
                volume = f"{self.prefix}-{mount['name']}-{pod.name}"
                if volume not in self.volumes:
                    docker("volume", "create", "--label", f"mtk8stest={self.prefix}", volume)
                    self.volumes.append(volume)
                args += ["--mount", f"type=volume,source={volume},destination={target}{readonly}"]
                continue
            assert mount["name"] in volumes, f"{pod.name}: no volume {mount['name']}"
            volume = volumes[mount["name"]]
            folder: Path = self.workdir / pod.name / volume["name"]
            if "emptyDir" in volume:
                # A folder on the node, as the kubelet makes it (not a Docker tmpfs, which would
                # take the mode of the image's folder it covers): 0777, and with an fsGroup that
                # group, setgid.
                if not folder.exists():
                    folder.mkdir(parents=True)
                    if fs_group is not None and os.geteuid() == 0:
                        os.chown(folder, 0, fs_group)
                    folder.chmod(0o2777 if fs_group is not None else 0o777)
                args += ["--mount", f"type=bind,source={folder},destination={target}"]
            else:
                if not folder.exists():
                    folder = self._files(pod, volume, fs_group)
                args += ["--mount", f"type=bind,source={folder},destination={target},readonly"]
        return args

    # --- running containers --------------------------------------------------------------

    def image(self, container: Obj) -> str:
        image: str = container["image"]
        if os.environ.get("K8S_TEST_OFFICIAL_IMAGES") != "1":
            image = STANDINS.get(image, image)
        return image

    def start(self, pod: Pod, container: Obj, *, serving: bool) -> str:
        pod_security = pod.spec.get("securityContext", {})
        security = {**pod_security, **container.get("securityContext", {})}
        image = self.image(container)
        name = f"{self.prefix}-{pod.name}-{container['name']}"
        args = ["run", "--detach", "--name", name, "--network", self.network, "--pull", "never"]
        args += ["--label", f"mtk8stest={self.prefix}", "--hostname", f"{pod.name}-0"]
        # A kubelet ignores the image's HEALTHCHECK: only the manifest's probes count.
        args += ["--no-healthcheck"]
        if serving:
            args += [arg for alias in pod.aliases for arg in ("--network-alias", alias)]
        user = security.get("runAsUser")
        if security.get("runAsNonRoot"):
            declared = (
                user
                if user is not None
                else docker("image", "inspect", "-f", "{{.Config.User}}", image).split(":")[0]
            )
            # The kubelet refuses to start a non-numeric or root user under runAsNonRoot.
            assert str(declared).isdigit(), f"{name}: user {declared!r} is not numeric"
            assert int(declared) != 0, f"{name}: runs as root"
        if user is not None:
            group = security.get("runAsGroup")
            args += ["--user", f"{user}:{group}" if group is not None else str(user)]
        for extra in [pod_security.get("fsGroup"), *pod_security.get("supplementalGroups", [])]:
            if extra is not None:
                args += ["--group-add", str(extra)]
        if security.get("readOnlyRootFilesystem"):
            args.append("--read-only")
        capabilities = security.get("capabilities", {})
        args += [arg for cap in capabilities.get("drop", []) for arg in ("--cap-drop", cap)]
        args += [arg for cap in capabilities.get("add", []) for arg in ("--cap-add", cap)]
        if security.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        profile = security.get("seccompProfile", {}).get("type", "RuntimeDefault")
        assert profile == "RuntimeDefault", f"{name}: seccomp {profile}"  # Docker's default
        limits = container.get("resources", {}).get("limits", {})
        if "memory" in limits:
            args += ["--memory", str(int(quantity(limits["memory"])))]
        if "cpu" in limits:
            args += ["--cpus", str(quantity(limits["cpu"]))]
        if "workingDir" in container:
            args += ["--workdir", container["workingDir"]]
        for key, value in self.environment(pod, container).items():
            args += ["--env", f"{key}={value}"]
        args += self.mounts(pod, container)
        command, rest = container.get("command"), container.get("args", [])
        if command:
            args += ["--entrypoint", command[0], image, *command[1:], *rest]
        else:
            args += [image, *rest]
        docker(*args)
        pod.containers[container["name"]] = name
        return name

    def run_to_completion(self, pod: Pod, container: Obj) -> None:
        began = time.monotonic()
        name = self.start(pod, container, serving=False)
        deadline = pod.spec.get("activeDeadlineSeconds", 300)
        code = docker("wait", name, timeout=deadline)
        logs = self.logs(name)
        assert code == "0", (
            f"{pod.kind}/{pod.name} container {container['name']} exited {code}:\n{logs}"
        )
        self.durations[f"{pod.name}/{container['name']}"] = time.monotonic() - began

    def address(self, name: str) -> str:
        networks = json.loads(docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", name))
        address: str = networks[self.network]["IPAddress"]
        return address

    def logs(self, name: str) -> str:
        result = subprocess.run(
            [DOCKER, "logs", "--tail", "40", name], capture_output=True, text=True, check=False
        )
        return result.stdout + result.stderr

    def cleanup(self) -> None:
        label = f"label=mtk8stest={self.prefix}"
        names = docker("ps", "-aq", "--filter", label, check=False).split()
        if names:
            docker("rm", "--force", "--volumes", *names, check=False, timeout=180)
        for volume in docker("volume", "ls", "-q", "--filter", label, check=False).split():
            docker("volume", "rm", "--force", volume, check=False)
        docker("network", "rm", self.network, check=False)
        self.http.close()


# --- probes, as the kubelet runs them -------------------------------------------------------


def probe_once(kubelet: Kubelet, name: str, container: Obj, probe: Obj) -> str | None:
    """None on success, else what failed. httpGet: 200-399 from pod-IP:port/path, with the
    kubelet's User-Agent; tcpSocket: a connection; exec: exit 0 inside the container."""
    ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    timeout = probe.get("timeoutSeconds", 1)
    if "httpGet" in probe:
        get = probe["httpGet"]
        port = ports.get(get["port"], get["port"])
        url = f"http://{kubelet.address(name)}:{port}{get.get('path', '/')}"
        try:
            answer = kubelet.http.get(url, timeout=timeout)
        except httpx.HTTPError as exc:
            return f"GET {url}: {type(exc).__name__}"
        return None if 200 <= answer.status_code < 400 else f"GET {url}: {answer.status_code}"
    if "tcpSocket" in probe:
        port = ports.get(probe["tcpSocket"]["port"], probe["tcpSocket"]["port"])
        try:
            socket.create_connection((kubelet.address(name), port), timeout=timeout).close()
        except OSError as exc:
            return f"tcp {port}: {exc}"
        return None
    command = probe["exec"]["command"]
    result = subprocess.run(
        [DOCKER, "exec", name, *command], capture_output=True, text=True, check=False
    )
    return None if result.returncode == 0 else f"exec {command}: exit {result.returncode}"


def wait_for_probe(kubelet: Kubelet, name: str, container: Obj, kind: str, budget: float) -> None:
    probe = container[kind]
    deadline = time.monotonic() + probe.get("initialDelaySeconds", 0) + budget
    while True:
        state = json.loads(docker("inspect", "-f", "{{json .State}}", name))
        assert state["Running"], f"{name} stopped ({state['ExitCode']}):\n{kubelet.logs(name)}"
        failure = probe_once(kubelet, name, container, probe)
        if failure is None:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{name} {kind}: {failure} after {budget:.0f}s\n{kubelet.logs(name)}"
            )
        time.sleep(min(probe.get("periodSeconds", 10), 0.5))


def startup_budget(container: Obj) -> float:
    """The kubelet restarts a container whose startup probe has not passed by then."""
    probe = container.get("startupProbe")
    if probe is None:
        return READY_WITHIN_SECONDS
    return float(probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3))


def make_ready(kubelet: Kubelet, pod: Pod) -> None:
    for container in pod.spec["containers"]:
        name = pod.containers[container["name"]]
        if "startupProbe" in container:
            wait_for_probe(kubelet, name, container, "startupProbe", startup_budget(container))
        assert "readinessProbe" in container, f"{pod.name}: no readiness probe"
        wait_for_probe(kubelet, name, container, "readinessProbe", READY_WITHIN_SECONDS)
        assert "livenessProbe" in container, f"{pod.name}: no liveness probe"
        failure = probe_once(kubelet, name, container, container["livenessProbe"])
        assert failure is None, f"{pod.name} liveness: {failure}\n{kubelet.logs(name)}"


# --- the system ------------------------------------------------------------------------------


def _generated_secrets(workdir: Path) -> dict[str, dict[str, str]]:
    """The Secrets of the README's laptop-cluster commands, made fresh for this run."""
    password = secrets.token_urlsafe(24)
    keys = workdir / "keys"
    subprocess.run(
        [sys.executable, "-m", "users_service", "keys", "generate", "--kid", "k1"],
        env={**os.environ, "JWT_KEYS_DIR": str(keys)},
        check=True,
        capture_output=True,
    )
    url = "postgresql+asyncpg://postgres:{password}@postgres:5432/{db}"
    return {
        "postgres-superuser": {"password": password},
        **{
            f"{db}-database": {"url": url.format(password=password, db=db)}
            for db in ("users", "thoughts", "tasks")
        },
        "users-redis": {"url": "redis://redis:6379/0"},
        "frontend-secret-key": {"secret-key": secrets.token_urlsafe(48)},
        "mythoughts-admin-token": {"token": secrets.token_urlsafe(32)},
        "jwt-signing-keys": {path.name: path.read_text() for path in sorted(keys.iterdir())},
    }


@dataclass
class Running:
    kubelet: Kubelet
    pods: dict[str, Pod]
    secrets: dict[str, dict[str, str]]
    timings: dict[str, float]
    version: dict[str, str]  # what /admin/version/ answers: the images' version and commit

    def url(self, service: str, port: int) -> str:
        (pod,) = [p for p in self.pods.values() if service in p.aliases]
        (name,) = pod.containers.values()
        return f"http://{self.kubelet.address(name)}:{port}"


@pytest.fixture(scope="module")
def running(
    kustomize: Any, tmp_path_factory: pytest.TempPathFactory, build_service_images: Any
) -> Iterator[Running]:
    if not _engine_answers():
        need("no Docker engine answers (.ci/run starts one)")
    objects = kustomize(LOCAL)
    started = time.monotonic()
    version = build_service_images(os.environ.get("K8S_TEST_OFFICIAL_IMAGES") == "1")
    timings = {"images": time.monotonic() - started}
    workdir = tmp_path_factory.mktemp("kubelet")
    generated = _generated_secrets(workdir)
    kubelet = Kubelet(objects, generated, workdir)
    pods = {
        o["metadata"]["name"]: kubelet.pod(o) for o in objects if "template" in o.get("spec", {})
    }
    by_kind = {
        kind: [p for p in pods.values() if p.kind == kind]
        for kind in ("StatefulSet", "Job", "Deployment")
    }
    assert {p.kind for p in pods.values()} <= set(by_kind)
    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            # The databases the Jobs need, then each service's Jobs and then its server: what a
            # cluster reaches once every Job has completed. Init containers run one after the
            # other; a Job's container must exit 0 the first time (no restarts here).
            for pod in by_kind["StatefulSet"]:
                for container in pod.spec["containers"]:
                    kubelet.start(pod, container, serving=True)
            list(pool.map(lambda pod: make_ready(kubelet, pod), by_kind["StatefulSet"]))
            timings["databases"] = time.monotonic() - started

            def complete(pod: Pod) -> None:
                for container in pod.spec.get("initContainers", []) + pod.spec["containers"]:
                    kubelet.run_to_completion(pod, container)

            def serve(pod: Pod) -> None:
                for container in pod.spec["containers"]:
                    kubelet.start(pod, container, serving=True)

            def app(pod: Pod) -> str:
                return pod.labels["app.kubernetes.io/name"]

            def jobs_then_server(name: str) -> None:
                """One service's Jobs, its migrations first, then its server: the seed Job's
                own migrate step must not race the migration Job."""
                jobs = sorted(
                    [p for p in by_kind["Job"] if app(p) == name],
                    key=lambda p: p.labels.get("app.kubernetes.io/component") != "migration",
                )
                for job in jobs:
                    complete(job)
                for server in [p for p in by_kind["Deployment"] if app(p) == name]:
                    serve(server)

            with_jobs = sorted({app(p) for p in by_kind["Job"]})
            list(pool.map(jobs_then_server, with_jobs))
            timings["jobs"] = time.monotonic() - started
            # The others (the frontend) once the services they call are starting.
            for pod in by_kind["Deployment"]:
                if app(pod) not in with_jobs:
                    serve(pod)
            list(pool.map(lambda pod: make_ready(kubelet, pod), by_kind["Deployment"]))
            timings["ready"] = time.monotonic() - started
        yield Running(kubelet, pods, generated, timings, version)
    finally:
        kubelet.cleanup()


def test_every_workload_started_as_declared_and_passed_its_probes(running: Running) -> None:
    kinds = {pod.kind for pod in running.pods.values()}
    assert kinds == {"StatefulSet", "Job", "Deployment"}
    names = {pod.name for pod in running.pods.values()}
    assert {"users", "thoughts", "frontend", "tasks", "postgres", "redis"} <= names
    assert {"users-migrate", "thoughts-migrate", "tasks-migrate", "demo-seed"} <= names
    for pod in running.pods.values():
        for container in pod.spec["containers"]:
            name = pod.containers[container["name"]]
            state = json.loads(docker("inspect", "-f", "{{json .State}}", name))
            if pod.kind == "Job":
                assert state["ExitCode"] == 0, name
            else:
                assert state["Running"], f"{name}:\n{running.kubelet.logs(name)}"
                user = docker("exec", name, "id", "-u")
                declared = container["securityContext"].get(
                    "runAsUser", pod.spec["securityContext"].get("runAsUser")
                )
                assert user == str(declared), name
    print("kubelet timings (s from start):", {k: round(v, 1) for k, v in running.timings.items()})
    print("Job containers (s):", {k: round(v, 1) for k, v in running.kubelet.durations.items()})


def test_log_in_post_and_search_across_the_pods(running: Running) -> None:
    word = f"Kubelet{uuid.uuid4().hex[:10]}"
    users, thoughts = running.url("users", 8001), running.url("thoughts", 8000)
    with httpx.Client(timeout=10) as client:
        login = client.post(f"{users}/api/login/", json={"username": "bruce", "password": "bruce"})
        assert login.status_code == 200, login.text
        auth = {"Authorization": login.json()["Authorized"]}
        posted = client.post(
            f"{thoughts}/api/me/thoughts/", json={"text": f"on k8s {word}"}, headers=auth
        )
        assert posted.status_code == 201, posted.text
        found = client.get(f"{thoughts}/api/thoughts/", params={"search": word.lower()})
        assert [t["text"] for t in found.json()] == [f"on k8s {word}"], found.text
        # The frontend reaches the thoughts service by its Service name.
        page = client.get(f"{running.url('frontend', 8002)}/search", params={"search": word})
        assert page.status_code == 200, page.text
        assert word in page.text
        # The tasks service: its welcome page names the pod, and a token owns a list.
        tasks = running.url("tasks", 8003)
        welcome = client.get(f"{tasks}/")
        assert welcome.json() == {
            "message": "Welcome to Tasks app! I am running inside tasks-0 pod!"
        }, welcome.text
        saved = client.post(f"{tasks}/task", json={"task": word}, headers=auth)
        assert saved.status_code == 200, saved.text
        mine = client.get(f"{tasks}/tasks", headers=auth).json()["data"]
        assert [t["task"] for t in mine] == [word]
        assert word not in client.get(f"{tasks}/tasks").text


def test_admin_routes_answer_only_the_admin_token_and_metrics_are_where_scraped(
    running: Running,
) -> None:
    token = running.secrets["mythoughts-admin-token"]["token"]
    admin = {"Authorization": f"Bearer {token}"}
    with httpx.Client(timeout=10) as client:
        for service, port in [
            ("users", 8001),
            ("thoughts", 8000),
            ("tasks", 8003),
            ("frontend", 9002),
        ]:
            url = f"{running.url(service, port)}/admin/version/"
            assert client.get(url).status_code in (401, 403), service
            answer = client.get(url, headers=admin)
            assert answer.status_code == 200, f"{service}: {answer.text}"
            assert answer.json() == running.version
            assert client.get(f"{running.url(service, port)}/metrics").status_code == 200
        # The frontend's public port has neither (servicekit.surface).
        public = running.url("frontend", 8002)
        assert client.get(f"{public}/metrics").status_code == 404
        assert client.get(f"{public}/admin/version/", headers=admin).status_code == 404


def test_a_probe_with_a_wrong_path_or_port_fails_against_the_same_container(
    running: Running,
) -> None:
    """The probes above can fail: the users pod's own probes, with the path or the port changed
    as a mistaken manifest would, fail against the running container."""
    pod = running.pods["users"]
    (container,) = pod.spec["containers"]
    name = pod.containers[container["name"]]
    declared = container["readinessProbe"]
    assert probe_once(running.kubelet, name, container, declared) is None
    wrong_path = {**declared, "httpGet": {**declared["httpGet"], "path": "/ready"}}
    wrong_port = {**declared, "httpGet": {**declared["httpGet"], "port": 8000}}
    assert "404" in str(probe_once(running.kubelet, name, container, wrong_path))
    assert "ConnectError" in str(probe_once(running.kubelet, name, container, wrong_port))
