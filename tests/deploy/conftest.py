"""Offline checks of deploy/ (issue 11): the real tools from .venv-deploy as subprocesses,
each kustomization rendered once per session."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
KUSTOMIZE = DEPLOY / "kustomize"
SCHEMAS = Path(__file__).parent / "schemas"
TOOLS = REPO / ".venv-deploy" / "bin"

#: The environments an operator applies; each gets its own namespace.
OVERLAYS = {"staging": "bwc-staging", "production": "bwc-prod"}
#: Everything that renders on its own: the overlays and the examples for the operators.
TARGETS = ("overlays/staging", "overlays/production", "infra/production", "infra/staging")


def tool(name: str) -> str:
    path = TOOLS / name
    if not path.exists():
        pytest.fail(f"{path} missing: `make test` installs it (make .venv-deploy/.installed)")
    return str(path)


def run(*argv: str, cwd: Path = REPO, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False)


@dataclass
class Rendered:
    target: str
    path: Path
    docs: list[dict[str, Any]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str, name: str) -> dict[str, Any]:
        [doc] = [d for d in self.of_kind(kind) if d["metadata"]["name"] == name]
        return doc

    def config_maps(self) -> dict[str, dict[str, str]]:
        return {d["metadata"]["name"]: d.get("data", {}) for d in self.of_kind("ConfigMap")}


class Renderer:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.cache: dict[str, Rendered | str] = {}

    def __call__(self, target: str) -> Rendered:
        if target not in self.cache:
            result = run(tool("kubectl"), "kustomize", str(KUSTOMIZE / target))
            if result.returncode != 0:
                self.cache[target] = result.stderr
            else:
                path = self.out / (target.replace("/", "-") + ".yaml")
                path.write_text(result.stdout)
                docs = [d for d in yaml.safe_load_all(result.stdout) if d]
                self.cache[target] = Rendered(target, path, docs)
        rendered = self.cache[target]
        if isinstance(rendered, str):
            pytest.fail(f"kubectl kustomize {target} failed:\n{rendered}")
        return rendered


@pytest.fixture(scope="session")
def render(tmp_path_factory: pytest.TempPathFactory) -> Renderer:
    return Renderer(tmp_path_factory.mktemp("rendered"))


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    pod = workload["spec"]["template"]["spec"]
    return [*pod.get("initContainers", []), *pod["containers"]]


def workloads(rendered: Rendered) -> list[dict[str, Any]]:
    return rendered.of_kind("Deployment") + rendered.of_kind("Job")
