"""The rendered manifests and the compose file validate against their schemas, and checkov
passes on them and on the Dockerfile (every skip is justified where it is made)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import DEPLOY, SCHEMAS, TARGETS, Renderer, run, tool

CRDS = SCHEMAS / "crds"


def _split(target: str, render: Renderer, out: Path) -> tuple[Path, dict[Path, list[Path]]]:
    """Built-in kinds into one file; each custom resource into its own, by schema."""
    builtin, custom = [], {}
    for index, doc in enumerate(render(target).docs):
        group, _, version = doc["apiVersion"].rpartition("/")
        if "." in group and not group.endswith(".k8s.io"):
            schema = CRDS / f"{group}_{version}_{doc['kind']}.yaml"
            path = out / f"{index}-{doc['kind']}.json"
            path.write_text(json.dumps(doc))
            custom.setdefault(schema, []).append(path)
        else:
            builtin.append(doc)
    path = out / "builtin.yaml"
    path.write_text(yaml.safe_dump_all(builtin))
    return path, custom


@pytest.mark.parametrize("target", TARGETS)
def test_kubernetes_objects_validate_strictly(
    render: Renderer, target: str, tmp_path: Path,
) -> None:
    builtin, _ = _split(target, render, tmp_path)
    result = run(tool("kubernetes-validate"), "--strict", "--quiet", str(builtin))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("target", TARGETS)
def test_custom_resources_validate_against_the_pinned_operator_schemas(
    render: Renderer, target: str, tmp_path: Path,
) -> None:
    _, custom = _split(target, render, tmp_path)
    for schema, files in custom.items():
        assert schema.exists(), f"no vendored CRD schema {schema.name} (tests/deploy/schemas)"
        result = run(tool("check-jsonschema"), "--schemafile", str(schema),
                     *map(str, files))
        assert result.returncode == 0, result.stdout + result.stderr


def test_compose_file_follows_the_compose_specification() -> None:
    result = run(tool("check-jsonschema"), "--schemafile", str(SCHEMAS / "compose-spec.json"),
                 str(DEPLOY / "compose.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr


def _checkov(*argv: str) -> None:
    result = run(tool("checkov"), "--quiet", "--compact", "--skip-download",
                 "--output", "cli", *argv, timeout=300)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


@pytest.mark.parametrize("target", TARGETS)
def test_checkov_passes_on_the_rendered_manifests(render: Renderer, target: str) -> None:
    _checkov("--framework", "kubernetes", "--file", str(render(target).path))


def test_checkov_passes_on_the_dockerfile() -> None:
    _checkov("--framework", "dockerfile", "--file", str(DEPLOY / "Dockerfile"))
