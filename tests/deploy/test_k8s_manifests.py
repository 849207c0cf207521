"""The Kubernetes manifests, proven without a cluster: every overlay renders with kubectl's
Kustomize, every object validates strictly against the Kubernetes 1.32 schemas, and every
workload has the hardened shape of deploy/k8s/base/users/deployment.yaml (loaded as YAML)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
FLUX = ROOT / "deploy" / "flux"
OVERLAYS = ["local", "production"]
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job"}

Obj = dict[str, Any]
Kustomize = Any  # conftest.Kustomize: path -> rendered objects


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest, kustomize: Kustomize) -> list[Obj]:
    objects: list[Obj] = kustomize(K8S / "overlays" / request.param)
    return objects


def pod_spec(obj: Obj) -> Obj:
    spec: Obj = obj["spec"]["template"]["spec"]
    return spec


def test_every_object_validates_strictly_against_kubernetes_1_32(rendered: list[Obj]) -> None:
    for obj in rendered:
        kubernetes_validate.validate(obj, "1.32", strict=True)


def test_every_object_is_namespaced_to_mythoughts(rendered: list[Obj]) -> None:
    for obj in rendered:
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace") == "mythoughts", obj["metadata"]["name"]


def test_every_workload_has_the_hardened_shape(rendered: list[Obj]) -> None:
    workloads = [obj for obj in rendered if obj["kind"] in WORKLOAD_KINDS]
    assert {obj["kind"] for obj in workloads} >= {"Deployment", "Job"}
    for obj in workloads:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        spec = pod_spec(obj)
        assert spec["automountServiceAccountToken"] is False, name
        pod_security = spec["securityContext"]
        assert pod_security["runAsNonRoot"] is True, name
        assert isinstance(pod_security["runAsUser"], int)
        assert pod_security["runAsUser"] > 0
        assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in spec.get("initContainers", []) + spec["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["capabilities"] == {"drop": ["ALL"]}, name
            resources = container["resources"]
            for bound in ("requests", "limits"):
                assert set(resources[bound]) == {"cpu", "memory"}, name
            assert not container["image"].endswith(":latest")
            assert ":" in container["image"]


def test_every_service_deployment_probes_drains_and_rolls_safely(rendered: list[Obj]) -> None:
    configs = {
        obj["metadata"]["name"]: obj.get("data", {})
        for obj in rendered
        if obj["kind"] == "ConfigMap"
    }
    deployments = [obj for obj in rendered if obj["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} >= {"users", "thoughts", "frontend"}
    for deployment in deployments:
        name = deployment["metadata"]["name"]
        spec = pod_spec(deployment)
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, name
        assert spec["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
        (container,) = spec["containers"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz", name
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], name
        env: dict[str, str] = {}
        for source in container["envFrom"]:
            env.update(configs[source["configMapRef"]["name"]])
        drain = float(env["SHUTDOWN_DRAIN_SECONDS"])
        # uvicorn gives requests in flight 30 s after the drain (servicekit.server).
        assert spec["terminationGracePeriodSeconds"] >= drain + 30, name
        assert env["WORKERS"] == "1", name


def test_no_secret_is_committed_and_no_route_reaches_admin(rendered: list[Obj]) -> None:
    assert not [obj for obj in rendered if obj["kind"] == "Secret"]
    (ingress,) = [obj for obj in rendered if obj["kind"] == "Ingress"]
    paths = [p["path"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert "/api/login/" in paths
    assert "/api/thoughts/" in paths
    assert not [p for p in paths if "admin" in p or p in ("/docs", "/metrics")]
    assert ingress["spec"]["tls"], "the Ingress serves TLS"


def test_production_autoscales_from_two_replicas_pinned_images_and_no_database(
    kustomize: Kustomize,
) -> None:
    objects = kustomize(K8S / "overlays" / "production")
    kinds = {obj["kind"] for obj in objects}
    assert "StatefulSet" not in kinds
    autoscalers = {
        obj["spec"]["scaleTargetRef"]["name"]: obj
        for obj in objects
        if obj["kind"] == "HorizontalPodAutoscaler"
    }
    for obj in objects:
        if obj["kind"] == "Deployment":
            # The HPA owns the count: none in the manifest, or Flux would reset it.
            assert "replicas" not in obj["spec"], obj["metadata"]["name"]
            assert autoscalers[obj["metadata"]["name"]]["spec"]["minReplicas"] >= 2
            for container in pod_spec(obj)["containers"]:
                assert not container["image"].endswith(":dev"), container["image"]
        if obj["kind"] == "Ingress":
            assert "cert-manager.io/cluster-issuer" in obj["metadata"]["annotations"]


def _settings_fields(service: str) -> set[str]:
    from pydantic_settings import BaseSettings

    from frontend_service.settings import FrontendSettings
    from tasks_service.settings import TasksSettings
    from thoughts_service.settings import ThoughtsSettings
    from users_service.settings import UsersSettings

    classes: dict[str, type[BaseSettings]] = {
        "users": UsersSettings,
        "thoughts": ThoughtsSettings,
        "frontend": FrontendSettings,
        "tasks": TasksSettings,
    }
    return {name.upper() for name in classes[service].model_fields}


# Read by something other than a settings class, and why it is given.
OTHER_READERS = {
    "FORWARDED_ALLOW_IPS": "uvicorn itself: whose X-Forwarded-For to trust",
    "USER_PASSWORD": "users_service create-user: the demo users' passwords",
}


def test_every_environment_variable_is_one_the_service_reads(rendered: list[Obj]) -> None:
    """A misspelt name is ignored by the settings (extra="ignore"): only this test sees it."""
    configs = {o["metadata"]["name"]: o for o in rendered if o["kind"] == "ConfigMap"}
    common = next(name for name in configs if name.startswith("mythoughts-common"))
    read_by_someone: set[str] = set()
    for obj in rendered:
        if obj["kind"] not in {"Deployment", "Job"}:
            continue
        spec = pod_spec(obj)
        for container in spec.get("initContainers", []) + spec["containers"]:
            service = container["image"].split("/")[1].split(":")[0]
            fields = _settings_fields(service)
            read_by_someone |= fields
            names = [e["name"] for e in container.get("env", [])]
            for source in container.get("envFrom", []):
                name = source["configMapRef"]["name"]
                if name != common:
                    names += list(configs[name]["data"])
            for name in names:
                assert name.removesuffix("_FILE") in fields or name in OTHER_READERS, (
                    f"{obj['kind']}/{obj['metadata']['name']}: {service} reads no {name}"
                )
    for name in configs[common]["data"]:
        assert name in read_by_someone, f"no service reads {name} of the common ConfigMap"


def test_every_server_requires_the_admin_token_from_a_secret(rendered: list[Obj]) -> None:
    """Without ADMIN_TOKEN_FILE /admin/* would answer loopback only (servicekit.admin)."""
    for deployment in [o for o in rendered if o["kind"] == "Deployment"]:
        spec = pod_spec(deployment)
        (container,) = spec["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        path = Path(env["ADMIN_TOKEN_FILE"])
        (volume,) = [v for v in spec["volumes"] if v["name"] == mounts[str(path.parent)]]
        items = [
            (source["secret"]["name"], item["path"])
            for source in volume["projected"]["sources"]
            for item in source["secret"]["items"]
        ]
        assert ("mythoughts-admin-token", path.name) in items, deployment["metadata"]["name"]


def test_prometheus_scrapes_each_service_where_it_serves_metrics(
    kustomize: Kustomize, tmp_path: Path
) -> None:
    """Production with the monitoring component: every ServiceMonitor endpoint names a Service
    port leading to the container port that serves /metrics (the frontend's is INTERNAL_PORT
    9002, its public port answers 404 there), and the scrape policy lets Prometheus in."""
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources: [{os.path.relpath(K8S / 'overlays' / 'production', tmp_path)}]\n"
        f"components: [{os.path.relpath(K8S / 'components' / 'monitoring', tmp_path)}]\n"
    )
    objects = kustomize(tmp_path)
    configs = {
        o["metadata"]["name"]: o.get("data", {}) for o in objects if o["kind"] == "ConfigMap"
    }
    services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    (policy,) = [o for o in objects if o["metadata"]["name"] == "prometheus-scrape"]
    allowed = {port["port"] for rule in policy["spec"]["ingress"] for port in rule["ports"]}
    scraped = set()
    for monitor in [o for o in objects if o["kind"] == "ServiceMonitor"]:
        selector = monitor["spec"]["selector"]
        names = selector.get("matchLabels", {}).get("app.kubernetes.io/name")
        names = [names] if names else selector["matchExpressions"][0]["values"]
        for name, endpoint in [(n, e) for n in names for e in monitor["spec"]["endpoints"]]:
            assert endpoint["path"] == "/metrics"
            (port,) = [p for p in services[name]["spec"]["ports"] if p["name"] == endpoint["port"]]
            (container,) = pod_spec(deployments[name])["containers"]
            target = {p["name"]: p["containerPort"] for p in container["ports"]}[port["targetPort"]]
            env: dict[str, str] = {}
            for source in container["envFrom"]:
                env.update(configs[source["configMapRef"]["name"]])
            assert target == int(env.get("INTERNAL_PORT", env["PORT"])), name
            assert target in allowed, name
            scraped.add(name)
    assert scraped == set(deployments)


def test_the_tasks_service_has_its_own_host_with_its_welcome_page(rendered: list[Obj]) -> None:
    (ingress,) = [obj for obj in rendered if obj["kind"] == "Ingress"]
    rules = {rule["host"]: rule["http"]["paths"] for rule in ingress["spec"]["rules"]}
    tasks_host = next(host for host in rules if host.startswith("tasks."))
    routes = {
        (p["path"], p["pathType"]): p["backend"]["service"]["name"] for p in rules[tasks_host]
    }
    assert routes == {
        ("/", "Exact"): "tasks",
        ("/tasks", "Exact"): "tasks",
        ("/tasks/delete", "Exact"): "tasks",
        ("/task", "Prefix"): "tasks",
    }
    assert tasks_host in [host for tls in ingress["spec"]["tls"] for host in tls["hosts"]]


def ingress_backend(paths: list[Obj], request_path: str) -> str | None:
    """The service an Ingress sends a path to: an Exact match first, else the longest Prefix
    (matched by whole path elements), as Kubernetes specifies."""
    elements = [part for part in request_path.split("/") if part]
    best: tuple[int, str] | None = None
    for rule in paths:
        if rule["pathType"] == "Exact":
            if rule["path"] == request_path:
                return str(rule["backend"]["service"]["name"])
            continue
        prefix = [part for part in rule["path"].split("/") if part]
        if elements[: len(prefix)] == prefix and (best is None or len(prefix) > best[0]):
            best = (len(prefix), rule["backend"]["service"]["name"])
    return best[1] if best else None


def test_the_ingress_sends_every_api_route_to_its_service(rendered: list[Obj]) -> None:
    """Before, /api/logout/, /api/features/ and the users service's /api/me/ went to thoughts
    or nowhere: an API client could not log out through the Ingress."""
    from thoughts_service.routes import api as thoughts_api
    from users_service.routes import api as users_api

    (ingress,) = [obj for obj in rendered if obj["kind"] == "Ingress"]
    rules = {rule["host"]: rule["http"]["paths"] for rule in ingress["spec"]["rules"]}
    main_host = next(host for host in rules if not host.startswith("tasks."))
    wrong = {}
    for service, router in (("users", users_api), ("thoughts", thoughts_api)):
        for route in router.routes:
            path = re.sub(r"\{[^}]+\}", "1", getattr(route, "path", ""))
            if ingress_backend(rules[main_host], path) != service:
                wrong[path] = ingress_backend(rules[main_host], path)
    assert wrong == {}
    assert ingress_backend(rules[main_host], "/api/me/") == "users"
    assert ingress_backend(rules[main_host], "/api/me/thoughts/1/") == "thoughts"


FLUX_FIELDS = yaml.safe_load((Path(__file__).with_name("flux-v1-fields.yaml")).read_text())


def validate_flux(obj: Obj) -> None:
    schema = {"$defs": FLUX_FIELDS["$defs"], **FLUX_FIELDS[obj["kind"]]}
    jsonschema.validate(obj, schema)


def test_the_flux_field_check_refuses_what_flux_would() -> None:
    """The check can fail: a misspelt field, a bad duration, a missing required field."""
    good: dict[str, Any] = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "x", "namespace": "flux-system"},
        "spec": {
            "interval": "10m",
            "prune": True,
            "sourceRef": {"kind": "GitRepository", "name": "x"},
        },
    }
    validate_flux(good)
    for broken in (
        {**good["spec"], "prun": True},
        {**good["spec"], "interval": "ten minutes"},
        {key: value for key, value in good["spec"].items() if key != "prune"},
        {**good["spec"], "sourceRef": {"kind": "HelmRepository", "name": "x"}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            validate_flux({**good, "spec": broken})


@pytest.mark.parametrize("environment", OVERLAYS)
def test_flux_follows_main_and_deploys_a_rendering_overlay(
    environment: str, kustomize: Kustomize
) -> None:
    """The Flux objects against the fields of the v1 CRDs that we use (flux-v1-fields.yaml: a
    structural check, the CRDs themselves cannot be had offline), then what they say."""
    objects = {obj["kind"]: obj for obj in kustomize(FLUX / environment)}
    validate_flux(objects["GitRepository"])
    validate_flux(objects["Kustomization"])
    source = objects["GitRepository"]
    assert source["spec"]["ref"] == {"branch": "main"}
    flux = objects["Kustomization"]
    spec = flux["spec"]
    assert spec["sourceRef"] == {"kind": "GitRepository", "name": source["metadata"]["name"]}
    assert spec["prune"] is True
    assert spec["wait"] is True
    assert spec["path"] == f"./deploy/k8s/overlays/{environment}"
    deployments = {
        obj["metadata"]["name"]
        for obj in kustomize(K8S / "overlays" / environment)
        if obj["kind"] == "Deployment"
    }
    checked = {check["name"] for check in spec["healthChecks"] if check["kind"] == "Deployment"}
    assert checked == deployments
    for check in spec["healthChecks"]:
        assert check["namespace"] == "mythoughts"


def test_the_ingress_lists_every_frontend_page(kustomize: Kustomize) -> None:
    """The Ingress names the frontend's pages one by one: a new page must be added to it."""
    from frontend_service.pages import router

    (ingress,) = [o for o in kustomize(K8S / "overlays" / "local") if o["kind"] == "Ingress"]
    frontend = [
        (p["path"], p["pathType"])
        for rule in ingress["spec"]["rules"]
        for p in rule["http"]["paths"]
        if p["backend"]["service"]["name"] == "frontend"
    ]

    def routed(page: str) -> bool:
        return any(
            page == path or (kind == "Prefix" and page.startswith(path.rstrip("/") + "/"))
            for path, kind in frontend
        )

    pages = {getattr(route, "path", "") for route in router.routes}
    assert pages
    assert [page for page in sorted(pages) if not routed(page)] == []
