"""servicekit: the operational surface shared by every MyThoughts service.

Where each part lives: docs/architecture.md, "Where each concern lives".
"""

from servicekit.app import ServiceSpec, create_service_app
from servicekit.bodies import body_openapi, form_or_json
from servicekit.db import Database
from servicekit.deps import FlagsDep, HttpClientDep, MetricsDep, SessionDep
from servicekit.settings import ConfigError, ServiceSettings, load_settings

__all__ = [
    "ConfigError",
    "Database",
    "FlagsDep",
    "HttpClientDep",
    "MetricsDep",
    "ServiceSettings",
    "ServiceSpec",
    "SessionDep",
    "body_openapi",
    "create_service_app",
    "form_or_json",
    "load_settings",
]
