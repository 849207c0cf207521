"""Every package declares what it imports, and imports what it declares; requirements/runtime.txt
is exactly what the runtime packages declare.

A service image installs one service with the kit and the token library (deploy/docker), nothing
else: an import that its pyproject.toml does not declare works in the development venv and fails
in the image. The check reads each package's code (and a service's migrations, which run from its
image) with `ast`, maps every imported top-level module to the distributions that provide it
(importlib.metadata), and compares with the declared dependencies.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_PACKAGES = (
    "libs/servicekit",
    "libs/auth",
    "services/users",
    "services/thoughts",
    "services/frontend",
    "services/tasks",
)
DEVELOPMENT_PACKAGES = ("libs/testkit", "devtools")
LIBRARIES = ("libs/servicekit", "libs/auth", "libs/testkit")

# Declared but never imported by name: what the code uses through another library.
USED_WITHOUT_IMPORT = {
    "aiosqlite": "SQLAlchemy's sqlite+aiosqlite dialect loads it",
    "python-multipart": "Starlette parses form bodies with it",
    "jinja2": "Starlette's Jinja2Templates renders the frontend's pages with it",
}


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~;\s]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _declared(package: str) -> set[str]:
    project = tomllib.loads((ROOT / package / "pyproject.toml").read_text())["project"]
    return {_name(requirement) for requirement in project.get("dependencies", [])}


def _own_modules(package: str) -> list[str]:
    setup = tomllib.loads((ROOT / package / "pyproject.toml").read_text())["tool"]["setuptools"]
    return sorted({name.split(".")[0] for name in setup["packages"]})


def _imported_distributions(package: str) -> dict[str, set[str]]:
    """Each imported top-level module's distributions -> the files that import it."""
    own = _own_modules(package)
    files = [path for module in own for path in (ROOT / package / module).rglob("*.py")]
    files += list((ROOT / package / "migrations").rglob("*.py"))
    providers = importlib.metadata.packages_distributions()
    found: dict[str, set[str]] = {}
    for path in files:
        for top in _imported_modules(path):
            if top in sys.stdlib_module_names or top in own or top == "__future__":
                continue
            assert top in providers, f"{path}: no installed distribution provides {top!r}"
            distributions = frozenset(name.lower().replace("_", "-") for name in providers[top])
            key = ",".join(sorted(distributions))
            found.setdefault(key, set()).add(str(path.relative_to(ROOT)))
    return found


def _imported_modules(path: Path) -> set[str]:
    """The top-level modules that the file imports by name (relative imports left out)."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
    return modules


@pytest.mark.parametrize("package", RUNTIME_PACKAGES + DEVELOPMENT_PACKAGES)
def test_a_package_declares_what_it_imports(package: str) -> None:
    declared = _declared(package)
    undeclared = {
        distributions: sorted(files)[:3]
        for distributions, files in _imported_distributions(package).items()
        if not declared & set(distributions.split(","))
    }
    assert not undeclared, f"{package}/pyproject.toml does not declare {undeclared}"


@pytest.mark.parametrize("package", RUNTIME_PACKAGES + DEVELOPMENT_PACKAGES)
def test_a_package_imports_what_it_declares(package: str) -> None:
    imported = {
        name
        for distributions in _imported_distributions(package)
        for name in distributions.split(",")
    }
    unused = _declared(package) - imported - set(USED_WITHOUT_IMPORT)
    assert not unused, f"{package}/pyproject.toml declares {sorted(unused)}, which it never imports"


def test_runtime_requirements_are_what_the_runtime_packages_declare() -> None:
    workspace = {
        tomllib.loads((ROOT / package / "pyproject.toml").read_text())["project"]["name"]
        for package in RUNTIME_PACKAGES + DEVELOPMENT_PACKAGES
    }
    wanted = set().union(*(_declared(package) for package in RUNTIME_PACKAGES)) - workspace
    lines = (ROOT / "requirements" / "runtime.txt").read_text().splitlines()
    listed = {_name(line) for line in lines if line.strip() and not line.startswith("#")}
    assert listed == wanted, (
        f"requirements/runtime.txt lists {sorted(listed - wanted)} that no runtime package "
        f"declares and misses {sorted(wanted - listed)}"
    )


# Loaded at start-up in the development venv only because they are installed there: each is
# imported on the condition that it is (the service works without it, as in its image).
LOADED_WHEN_INSTALLED = {
    "rich": "httpx loads its command line when rich and click are there",
    "pygments": "rich, as above",
    "click": "httpx, as above",
    "sniffio": "anyio asks it for the running event loop when it is there",
    "setuptools": "its .pth hook (_distutils_hack) runs in every interpreter of the venv",
}


def _closure(distribution: str, extras: frozenset[str] = frozenset()) -> set[str]:
    """The distribution and everything it requires, transitively (with the extras asked for)."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    pending = [(distribution, extras)]
    while pending:
        name, wanted = pending.pop()
        key = name.lower().replace("_", "-")
        if key in seen and not wanted:
            continue
        seen.add(key)
        for line in importlib.metadata.requires(name) or []:
            requirement = Requirement(line)
            environments = [{"extra": extra} for extra in wanted] or [{"extra": ""}]
            if requirement.marker is None or any(
                requirement.marker.evaluate(environment) for environment in environments
            ):
                pending.append((requirement.name, frozenset(requirement.extras)))
    return seen


@pytest.mark.parametrize("service", ["users", "thoughts", "frontend", "tasks"])
def test_a_service_starts_up_with_only_its_own_dependencies(service: str) -> None:
    """What `python -m <service> serve` imports before it serves (its command line and app
    factory) comes from the service's own dependency tree: no development tool (devtools, tqdm,
    testkit, pytest) rides along into the image."""
    import subprocess

    probe = (
        "import sys, importlib\n"
        f"importlib.import_module('{service}_service.__main__')\n"
        f"importlib.import_module('{service}_service.main')\n"
        "print('\\n'.join(sorted({name.split('.')[0] for name in sys.modules})))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout.split()
    allowed = _closure(f"mythoughts-{service}") | set(LOADED_WHEN_INSTALLED)
    providers = importlib.metadata.packages_distributions()
    foreign = {
        module: providers[module]
        for module in loaded
        if module in providers
        and not {name.lower().replace("_", "-") for name in providers[module]} & allowed
    }
    assert not foreign, f"{service} imports at start-up what it does not depend on: {foreign}"


@pytest.mark.parametrize("package", RUNTIME_PACKAGES + DEVELOPMENT_PACKAGES)
def test_every_subpackage_is_listed_so_that_it_is_installed(package: str) -> None:
    # The development venv installs editable (the source folders are on the path), so a
    # subpackage left out of `packages` works there and is missing from an image's install.
    setup = tomllib.loads((ROOT / package / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setup["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT / package).parts)
        for module in _own_modules(package)
        for init in (ROOT / package / module).rglob("__init__.py")
    }
    assert found <= listed, f"add {sorted(found - listed)} to packages in {package}/pyproject.toml"


@pytest.mark.parametrize("package", [p for p in RUNTIME_PACKAGES if (ROOT / p / "tests").is_dir()])
def test_a_test_suite_imports_no_other_service_nor_devtools(package: str) -> None:
    """A package's tests import its own code, the libraries and the test-only testkit: never
    another service's code (the frontend's tests once signed tokens with the users service's
    code) nor devtools (which imports every service), so that each suite tests its package
    alone and a change inside one service cannot break another's tests. What they share lives
    in testkit (e.g. testkit.tokens, testkit.system)."""
    workspace = {
        module
        for other in RUNTIME_PACKAGES + DEVELOPMENT_PACKAGES
        for module in _own_modules(other)
    }
    allowed = {module for lib in (package, *LIBRARIES) for module in _own_modules(lib)}
    foreign: dict[str, list[str]] = {}
    for path in sorted((ROOT / package / "tests").rglob("*.py")):
        for module in sorted(_imported_modules(path) & workspace - allowed):
            foreign.setdefault(module, []).append(str(path.relative_to(ROOT)))
    assert not foreign, f"the tests of {package} import other packages' code: {foreign}"
