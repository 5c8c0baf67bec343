"""compose.yaml and the Dockerfile, checked as far as can be without Docker: the four services,
their healthchecks, ports and mounts, and the names shared with Grafana's provisioning files.

The provisioning files (grafana/provisioning/*/*.yaml) belong to the dashboards' work; where
they are present, the variables and the dashboards path they use are checked against
compose.yaml, else the names agreed for them are.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

COMPOSE = REPO / "compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
# What grafana/provisioning/datasources/collector.yaml reads from Grafana's environment, and
# where grafana/provisioning/dashboards/collector.yaml looks for the dashboards.
AGREED_VARIABLES = {
    "COLLECTOR_GRAFANA_DB_HOST",
    "COLLECTOR_GRAFANA_DB_NAME",
    "COLLECTOR_GRAFANA_DB_USER",
    "COLLECTOR_GRAFANA_DB_PASSWORD",
}
AGREED_DASHBOARDS_PATH = "/var/lib/grafana/dashboards/collector"
# $VAR or ${VAR} (Grafana's expansion in provisioning files), not $$ or ${VAR:-…} defaults.
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"][name]
    return found


def environment(compose: dict[str, Any], name: str) -> dict[str, str]:
    env = service(compose, name).get("environment", {})
    assert isinstance(env, dict), f"{name}: write environment as a mapping"
    return {str(k): str(v) for k, v in env.items()}


def binds(compose: dict[str, Any], name: str) -> dict[str, str]:
    """Host path (relative to the repository) → container path, for bind mounts."""
    found = {}
    for volume in service(compose, name).get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith((".", "/")):
            found[source] = target
    return found


def published(compose: dict[str, Any], name: str) -> set[tuple[int, int]]:
    """(host port, container port) of "[IP:]HOST:CONTAINER[/PROTOCOL]" entries."""
    ports = set()
    for entry in service(compose, name).get("ports", []):
        *_, host, container = str(entry).split(":")
        ports.add((int(host), int(container.split("/")[0])))
    return ports


def strings(node: Any) -> list[str]:
    """Every string value of a loaded YAML document (comments are gone by then)."""
    if isinstance(node, dict):
        return [text for value in node.values() for text in strings(value)]
    if isinstance(node, list):
        return [text for value in node for text in strings(value)]
    return [node] if isinstance(node, str) else []


def collector_config() -> dict[str, Any]:
    return tomllib.loads((REPO / "compose" / "collector.toml").read_text())


def provisioning(kind: str) -> list[Path]:
    folder = REPO / "grafana" / "provisioning" / kind
    return sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])


def test_the_four_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"postgres", "nats", "collector", "grafana"}
    assert service(compose, "postgres")["image"].startswith("postgres:")
    assert service(compose, "nats")["image"].startswith("nats:")
    assert service(compose, "grafana")["image"].startswith("grafana/grafana-oss:")
    assert service(compose, "collector")["build"] in (".", {"context": "."})


def test_healthchecks(compose: dict[str, Any]) -> None:
    checks = {
        name: " ".join(map(str, s["healthcheck"]["test"]))
        for name, s in compose["services"].items()
        if "healthcheck" in s
    }
    assert "pg_isready" in checks["postgres"]
    assert "8222/healthz" in checks["nats"]
    port = collector_config()["http"]["port"]
    assert f"127.0.0.1:{port}/readyz" in checks["collector"]
    depends = service(compose, "collector")["depends_on"]
    assert depends["postgres"]["condition"] == "service_healthy"
    assert depends["nats"]["condition"] == "service_healthy"


def test_nats_runs_jetstream_with_monitoring(compose: dict[str, Any]) -> None:
    command = service(compose, "nats")["command"]
    assert "--jetstream" in command or "-js" in command
    assert "8222" in command


def test_ports(compose: dict[str, Any]) -> None:
    assert (3000, 3000) in published(compose, "grafana")
    assert {(4222, 4222), (8222, 8222)} <= published(compose, "nats")
    port = collector_config()["http"]["port"]
    assert (port, port) in published(compose, "collector")
    assert collector_config()["http"]["host"] == "0.0.0.0"  # inside the container


def test_every_mounted_path_exists_and_every_named_volume_is_declared(
    compose: dict[str, Any],
) -> None:
    for name, config in compose["services"].items():
        for source in binds(compose, name):
            assert (REPO / source).exists(), f"{name}: {source} does not exist in the repository"
        for volume in config.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in compose["volumes"], f"{name}: volume {source} is not declared"


def test_collector_reads_the_mounted_configuration(compose: dict[str, Any]) -> None:
    env = environment(compose, "collector")
    mounts = {target: source for source, target in binds(compose, "collector").items()}
    assert mounts[env["COLLECTOR_CONFIG"]] == "./compose/collector.toml"
    url = env["COLLECTOR__DATABASE__URL"]
    postgres = environment(compose, "postgres")
    user, password, database = (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        postgres["POSTGRES_DB"],
    )
    assert url == f"postgresql://{user}:{password}@postgres:5432/{database}"
    assert collector_config()["database"]["migrate"] == "auto"  # migrations at start
    assert service(compose, "collector").get("command") in (None, ["run"], "run")


def test_grafana_mounts_provisioning_and_dashboards(compose: dict[str, Any]) -> None:
    mounts = binds(compose, "grafana")
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    providers = [
        provider
        for path in provisioning("dashboards")
        for provider in yaml.safe_load(path.read_text()).get("providers", [])
    ]
    paths = {p["options"]["path"] for p in providers} or {AGREED_DASHBOARDS_PATH}
    assert paths == {mounts["./grafana/dashboards"]}


def test_grafana_sets_exactly_the_variables_its_datasource_reads(compose: dict[str, Any]) -> None:
    referenced = {
        a or b
        for path in provisioning("datasources")
        for text in strings(yaml.safe_load(path.read_text()))
        for a, b in _VARIABLE.findall(text)
    } or AGREED_VARIABLES
    env = environment(compose, "grafana")
    assert {k for k in env if not k.startswith("GF_")} == referenced
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    # The login role the postgres init script creates is the one Grafana logs in with, on the
    # compose network's postgres service.
    postgres = environment(compose, "postgres")
    assert env["COLLECTOR_GRAFANA_DB_HOST"] == "postgres:5432"
    assert env["COLLECTOR_GRAFANA_DB_NAME"] == postgres["POSTGRES_DB"]
    for name in ("COLLECTOR_GRAFANA_DB_USER", "COLLECTOR_GRAFANA_DB_PASSWORD"):
        assert env[name] == postgres[name]


def test_the_init_script_uses_only_the_postgres_environment(compose: dict[str, Any]) -> None:
    mounts = binds(compose, "postgres")
    assert mounts["./compose/postgres-init"] == "/docker-entrypoint-initdb.d"
    scripts = sorted((REPO / "compose" / "postgres-init").glob("*.sh"))
    assert scripts
    env = environment(compose, "postgres")
    for script in scripts:
        assert script.stat().st_mode & 0o111, f"{script.name} must be executable"
        used = {a or b for a, b in _VARIABLE.findall(script.read_text())}
        assert used <= set(env), used - set(env)


def test_the_dockerfile_installs_collector_and_runs_it() -> None:
    text = DOCKERFILE.read_text()
    instructions = [
        line.split(None, 1) for line in text.splitlines() if line and not line.startswith("#")
    ]
    assert any(
        i[0] == "RUN" and "pip wheel" in i[1] and i[1].rstrip().endswith(" .") for i in instructions
    )
    assert any(i[0] == "RUN" and "pip install" in i[1] for i in instructions)
    assert ["ENTRYPOINT", '["collector"]'] in instructions
    assert ["CMD", '["run"]'] in instructions
    copied = [i[1].split()[0] for i in instructions if i[0] == "COPY" and "--from" not in i[1]]
    for source in copied:
        assert (REPO / source).exists(), f"COPY {source}: not in the repository"
    for needed in ("pyproject.toml", "collector/", "sql/"):
        assert needed in copied
    assert ".venv" in (REPO / ".dockerignore").read_text().split()
