"""Issue 14 item 11, compose side (no Docker needed): every server of compose.yaml requires the
admin token, which the first `make compose-up` generates into a git-ignored file the README names.
(tests/deploy/test_compose.py checks the running system refuses admin calls without it.)"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import yaml

from servicekit.admin import MIN_ADMIN_TOKEN_LENGTH

ROOT = Path(__file__).resolve().parents[2]
SERVERS = {"users", "thoughts", "tasks", "frontend"}
TOKEN_FILE = "var/compose-secrets/admin_token"


def test_every_compose_server_reads_the_admin_token_from_the_secret() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    ours = {
        name
        for name, service in compose["services"].items()
        if str(service.get("image", "")).startswith("mythoughts/")
        and service.get("restart") != "no"  # one-shot jobs serve no routes
    }
    assert ours >= SERVERS  # and their replicas (users-2 ...)
    for name in ours:
        service = compose["services"][name]
        assert service["environment"]["ADMIN_TOKEN_FILE"] == "/run/secrets/admin_token", name
        assert "ADMIN_TOKEN" not in service["environment"], name  # never the token itself
        assert "admin_token" in service["secrets"], name
    source = compose["secrets"]["admin_token"]["file"]
    assert source.endswith("var/compose-secrets}/admin_token"), source


def test_compose_up_generates_the_token_first() -> None:
    makefile = (ROOT / "Makefile").read_text()
    up = re.search(r"^compose-up:(.*)$", makefile, re.M)
    assert up
    assert "compose-secrets" in up.group(1).split()


def _compose_secrets_recipe(*make_args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "COMPOSE_SECRETS_DIR"}
    dry_run = subprocess.run(
        ["make", "--no-print-directory", "-n", "-C", str(ROOT), "compose-secrets", *make_args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return dry_run.stdout.strip()


def test_compose_secrets_writes_where_compose_reads() -> None:
    """compose.yaml reads the secrets from COMPOSE_SECRETS_DIR (README: it "moves the secrets"),
    so `make compose-up` must generate them there too, not always into var/compose-secrets."""
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert compose["secrets"]["admin_token"]["file"] == (
        "${COMPOSE_SECRETS_DIR:-./var/compose-secrets}/admin_token"
    )
    assert _compose_secrets_recipe() == "deploy/compose/secrets.sh var/compose-secrets"
    moved = _compose_secrets_recipe("COMPOSE_SECRETS_DIR=/tmp/elsewhere")
    assert moved == "deploy/compose/secrets.sh /tmp/elsewhere"


def test_the_token_is_generated_once_long_and_git_ignored(tmp_path: Path) -> None:
    folder = tmp_path / "compose-secrets"
    script = ROOT / "deploy/compose/secrets.sh"
    subprocess.run(["bash", str(script), str(folder)], check=True, capture_output=True)
    token = (folder / "admin_token").read_text().strip()
    assert len(token) >= max(MIN_ADMIN_TOKEN_LENGTH, 32)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700  # only its owner lists the folder
    subprocess.run(["bash", str(script), str(folder)], check=True, capture_output=True)
    assert (folder / "admin_token").read_text().strip() == token  # kept across runs
    ignored = subprocess.run(
        ["git", "-C", str(ROOT), "check-ignore", "-q", TOKEN_FILE], check=False
    )
    assert ignored.returncode == 0, f"{TOKEN_FILE} is not git-ignored"


def test_the_readme_names_the_token_file() -> None:
    assert TOKEN_FILE in (ROOT / "README.md").read_text()


def test_every_token_verifier_reads_the_users_services_revocation_list() -> None:
    """Issue 14 item 12: thoughts and tasks refuse logged-out tokens only when they read the
    users service's Redis (mythoughts_auth.revocation)."""
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    users_redis = services["users"]["environment"]["REDIS_URL"]
    verifiers = [name for name in services if name.split("-")[0] in ("thoughts", "tasks")]
    verifiers = [name for name in verifiers if not name.endswith("migrate")]
    assert {"thoughts", "tasks"} <= set(verifiers)
    for name in verifiers:
        assert services[name]["environment"]["REDIS_URL"] == users_redis, name
        assert "redis" in services[name]["depends_on"], name
