"""The policy scanner: checkov's Kubernetes checks on every rendered overlay, offline.

checkov lives in a venv of its own (`make checkov`, requirements/checkov.txt says why); `make
test` installs it. Every finding must be listed in deploy/k8s/checkov-skips.yaml with its
reason, and every listed skip must still match a finding.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from testkit import need

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
CHECKOV = ROOT / "var" / "checkov-venv" / "bin" / "checkov"
SKIPS = yaml.safe_load((K8S / "checkov-skips.yaml").read_text())["skips"]
WORKLOADS = ("Deployment.", "StatefulSet.", "Job.", "DaemonSet.", "CronJob.", "Pod.")


def _scan(path: Path) -> dict[str, Any]:
    result = subprocess.run(
        [
            str(CHECKOV),
            "--skip-download",
            "--framework",
            "kubernetes",
            "-f",
            str(path),
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        # No API key, no proxy to the vendor's platform: the scan is local.
        env={"PATH": os.environ["PATH"], "HOME": str(path.parent), "LOG_LEVEL": "WARNING"},
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr[-3000:]
    report: dict[str, Any] = json.loads(result.stdout)
    return report


@pytest.mark.parametrize("overlay", ["local", "production"])
def test_checkov_finds_nothing_but_the_listed_skips(
    overlay: str, kustomize: Any, tmp_path: Path
) -> None:
    if not CHECKOV.exists():
        need(f"checkov is not installed: make checkov ({CHECKOV})")
    objects = kustomize(K8S / "overlays" / overlay)
    rendered = tmp_path / f"{overlay}.yaml"
    rendered.write_text(yaml.safe_dump_all(objects))

    report = _scan(rendered)

    summary = report["summary"]
    assert summary["parsing_errors"] == 0
    assert summary["resource_count"] >= len(objects) - 5, "checkov read the rendered overlay"
    assert summary["passed"] > 100
    skips = [skip for skip in SKIPS if skip["overlay"] == overlay]
    for skip in skips:
        assert skip["reason"].strip(), skip

    def listed(check: str, resource: str) -> bool:
        for skip in skips:
            everything = "*" in skip["resources"] and resource.startswith(WORKLOADS)
            if skip["check"] == check and (everything or resource in skip["resources"]):
                return True
        return False

    failed = report["results"]["failed_checks"]
    unlisted = [
        f"{f['check_id']} {f['resource']}: {f['check_name']}"
        for f in failed
        if not listed(f["check_id"], f["resource"])
    ]
    assert unlisted == []
    findings = {(f["check_id"], f["resource"]) for f in failed}
    stale = [
        f"{skip['check']} {resource}"
        for skip in skips
        for resource in skip["resources"]
        if not any(check == skip["check"] and resource in ("*", found) for check, found in findings)
    ]
    assert stale == [], "skips that match no finding any more: remove them"
