"""Grafana as compose's `observability` profile adds it: the profile renders, and Grafana's
provisioning points at the generated dashboards and the data source their panels name.

Grafana itself is not installed on the test machines (no Debian package), so it is not run here;
every dashboard query is run against a real Prometheus in tests/test_prometheus_queries.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from devtools.dashboards import DASHBOARDS, DATASOURCE

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "deploy" / "observability" / "grafana"
COMPOSE = str(Path(sys.executable).with_name("docker-compose"))


def _compose_config(*args: str) -> dict[str, Any]:
    result = subprocess.run(
        [COMPOSE, *args, "config", "--format", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COMPOSE_SECRETS_DIR": str(ROOT / "var" / "compose-secrets")},
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def test_the_observability_profile_adds_grafana_with_the_provisioning() -> None:
    assert "grafana" not in _compose_config()["services"]
    config = _compose_config("--profile", "observability")
    grafana = config["services"]["grafana"]
    assert grafana["image"].startswith("grafana/grafana:")
    assert grafana["read_only"] is True
    assert grafana["cap_drop"] == ["ALL"]
    mounts = {volume["target"]: volume for volume in grafana["volumes"]}
    provisioning = mounts["/etc/grafana/provisioning"]
    assert Path(provisioning["source"]) == GRAFANA / "provisioning"
    assert provisioning["read_only"]
    dashboards_provider = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "mythoughts.yml").read_text()
    )["providers"][0]
    dashboards = mounts[dashboards_provider["options"]["path"]]
    assert Path(dashboards["source"]) == GRAFANA / "dashboards"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (GRAFANA / "dashboards" / Path(home).name).exists()


def test_the_grafana_image_is_a_variable() -> None:
    os.environ["GRAFANA_IMAGE"] = "example/grafana-standin:1"
    try:
        config = _compose_config("--profile", "observability")
    finally:
        del os.environ["GRAFANA_IMAGE"]
    assert config["services"]["grafana"]["image"] == "example/grafana-standin:1"


def test_every_panel_names_the_provisioned_data_source() -> None:
    sources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"]
    source = next(s for s in sources if s["uid"] == DATASOURCE["uid"])
    assert source["type"] == DATASOURCE["type"]
    assert source["url"] == "http://prometheus:9090"  # the compose service
    files = sorted((GRAFANA / "dashboards").glob("*.json"))
    assert [f.stem for f in files] == sorted(d.uid for d in DASHBOARDS)
    for path in files:
        document = json.loads(path.read_text())
        for panel in document["panels"]:
            assert panel["datasource"] == DATASOURCE, (path.name, panel["title"])
            assert panel["targets"], (path.name, panel["title"])
