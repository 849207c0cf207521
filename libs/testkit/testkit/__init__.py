"""Test-only helpers of the MyThoughts workspace (never installed in a service's image).

- testkit.databases: fresh migrated SQLite/PostgreSQL databases; `need()` (skip locally, fail in CI)
- testkit.processes: real service processes on free ports (also used by bench/run.py)
- testkit.apps: apps started in process with an HTTP client each
- testkit.contract: the OpenAPI contract driven by Schemathesis
- testkit.forms: the CSRF token of a frontend page's form
- testkit.plugin: the pytest fixtures, registered once in the root conftest.py
"""

from testkit.apps import StartedApps
from testkit.databases import (
    BACKENDS,
    POSTGRES_ADMIN_URL,
    DatabaseFactory,
    in_ci,
    need,
    postgres_available,
)
from testkit.forms import csrf_token
from testkit.processes import ProcessGroup, ServiceProcess, free_port, python_module_argv

__all__ = [
    "BACKENDS",
    "POSTGRES_ADMIN_URL",
    "DatabaseFactory",
    "ProcessGroup",
    "ServiceProcess",
    "StartedApps",
    "csrf_token",
    "free_port",
    "in_ci",
    "need",
    "postgres_available",
    "python_module_argv",
]
