"""Each service's settings load from exactly the environment that compose and each overlay
give its container (issue 11: compose's ingest refused its part size and restarted forever)."""

from __future__ import annotations

import importlib
import os
import re
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from bwc.cli.migrate import MigrateSettings
from tests.deploy.conftest import DEPLOY, OVERLAYS, Renderer, containers, workloads

#: What the Secrets hold in a real cluster; the manifests only name them.
PLACEHOLDER_SECRETS = {
    "BWC_DATABASE_URL": "postgresql://bwc:placeholder@bwc-pg-rw:5432/bwc?sslmode=require",
    "password": "placeholder-kafka-password",
}
SETTINGS = {"ingest": "IngestSettings", "catalog": "CatalogSettings",
            "review": "ReviewSettings", "retention": "RetentionSettings"}


def settings_class(service: str) -> type[BaseSettings]:
    if service == "migrate":
        return MigrateSettings
    cls: type[BaseSettings] = getattr(
        importlib.import_module(f"services.{service}.config"), SETTINGS[service])
    return cls


def load(monkeypatch: pytest.MonkeyPatch, service: str, env: dict[str, str]) -> BaseSettings:
    """Construct the settings ``service`` reads from ``env`` and nothing else."""
    for key in list(os.environ):
        if key.startswith("BWC_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return settings_class(service)()


def _interpolate(value: str) -> str:
    """Compose's ``${VAR:-default}`` with nothing set, as on a fresh machine."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def compose_services() -> dict[str, dict[str, str]]:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    found = {}
    for name, service in compose["services"].items():
        env = service.get("environment", {})
        if "BWC_SERVICE" in env:
            found[name] = {k: _interpolate(str(v)) for k, v in env.items()}
    return found


def test_compose_runs_all_four_services() -> None:
    assert {env["BWC_SERVICE"] for env in compose_services().values()} == set(SETTINGS)


@pytest.mark.parametrize("name", sorted(compose_services()))
def test_compose_environment_loads(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    env = compose_services()[name]
    load(monkeypatch, env["BWC_SERVICE"], env)


def container_env(container: dict[str, Any], config_maps: dict[str, dict[str, str]],
                  secrets: dict[str, dict[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_maps[source["configMapRef"]["name"]])
        else:
            env.update(secrets.get(source["secretRef"]["name"], {}))
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "secretKeyRef" in item["valueFrom"]:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = PLACEHOLDER_SECRETS.get(ref["key"], f"placeholder-{ref['key']}")
        elif "configMapKeyRef" in item["valueFrom"]:
            ref = item["valueFrom"]["configMapKeyRef"]
            env[item["name"]] = config_maps[ref["name"]][ref["key"]]
    return env


@pytest.mark.parametrize("env_name", OVERLAYS)
def test_overlay_environment_loads(
    monkeypatch: pytest.MonkeyPatch, render: Renderer, env_name: str,
) -> None:
    rendered = render(f"overlays/{env_name}")
    config_maps = rendered.config_maps()
    checked = set()
    for workload in workloads(rendered):
        for container in containers(workload):
            env = container_env(container, config_maps, {})
            # The migrations Job runs `bwc migrate`, the others a service.
            service = env.get("BWC_SERVICE") or container["command"][1]
            settings = load(monkeypatch, service, env)
            assert getattr(settings, "environment", "prod") == "prod"
            checked.add(service)
    assert checked == {*SETTINGS, "migrate"}
