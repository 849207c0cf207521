"""The Kubernetes manifests, proven without a cluster: every overlay renders with kubectl's
Kustomize, every object validates strictly against the Kubernetes 1.32 schemas, and every
workload has the hardened shape of deploy/k8s/base/users/deployment.yaml (loaded as YAML)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ["local", "production"]
KUBECTL = shutil.which("kubectl", path="/usr/bin:" + os.environ.get("PATH", ""))
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job"}

pytestmark = pytest.mark.skipif(
    KUBECTL is None and os.environ.get("CI") != "true", reason="kubectl is not installed"
)

Obj = dict[str, Any]


def render(overlay: str) -> list[Obj]:
    assert KUBECTL, "kubectl is required under CI=true"
    out = subprocess.run(
        [KUBECTL, "kustomize", str(K8S / "overlays" / overlay)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> list[Obj]:
    return render(request.param)


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


def test_production_runs_two_replicas_pinned_images_and_no_database() -> None:
    objects = render("production")
    kinds = {obj["kind"] for obj in objects}
    assert "StatefulSet" not in kinds
    for obj in objects:
        if obj["kind"] == "Deployment":
            assert obj["spec"]["replicas"] >= 2
            for container in pod_spec(obj)["containers"]:
                assert not container["image"].endswith(":dev"), container["image"]
        if obj["kind"] == "Ingress":
            assert "cert-manager.io/cluster-issuer" in obj["metadata"]["annotations"]


FLUX = ROOT / "deploy" / "flux"


@pytest.mark.parametrize("environment", OVERLAYS)
def test_flux_follows_main_and_deploys_a_rendering_overlay(environment: str) -> None:
    """A structural check of the Flux v2 objects (no CRD schema is to be had offline)."""
    assert KUBECTL
    out = subprocess.run(
        [KUBECTL, "kustomize", str(FLUX / environment)], check=True, capture_output=True, text=True
    ).stdout
    objects = {obj["kind"]: obj for obj in yaml.safe_load_all(out) if obj}
    source = objects["GitRepository"]
    assert source["apiVersion"] == "source.toolkit.fluxcd.io/v1"
    assert source["spec"]["ref"] == {"branch": "main"}
    assert set(source["spec"]) <= {"interval", "url", "ref", "ignore", "secretRef", "timeout"}
    flux = objects["Kustomization"]
    assert flux["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1"
    spec = flux["spec"]
    assert spec["sourceRef"] == {"kind": "GitRepository", "name": source["metadata"]["name"]}
    assert spec["prune"] is True
    assert spec["wait"] is True
    assert spec["path"] == f"./deploy/k8s/overlays/{environment}"
    deployments = {
        obj["metadata"]["name"] for obj in render(environment) if obj["kind"] == "Deployment"
    }
    checked = {check["name"] for check in spec["healthChecks"] if check["kind"] == "Deployment"}
    assert checked == deployments
    for check in spec["healthChecks"]:
        assert check["namespace"] == "mythoughts"


def test_the_ingress_lists_every_frontend_page() -> None:
    """The Ingress names the frontend's pages one by one: a new page must be added to it."""
    from frontend_service.pages import router

    (ingress,) = [obj for obj in render("local") if obj["kind"] == "Ingress"]
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
