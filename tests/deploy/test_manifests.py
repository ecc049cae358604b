"""The deployment manifests validate offline, and the validator catches what it should."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from scripts import deploy_check

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_manifests_are_valid() -> None:
    assert deploy_check.check_k8s(ROOT / "deploy/k8s") == []
    assert deploy_check.check_ecs(ROOT / "deploy/ecs") == []


@pytest.fixture
def copies(tmp_path: Path) -> tuple[Path, Path]:
    k8s, ecs = tmp_path / "k8s", tmp_path / "ecs"
    shutil.copytree(ROOT / "deploy/k8s", k8s)
    shutil.copytree(ROOT / "deploy/ecs", ecs)
    return k8s, ecs


def test_a_misspelt_kubernetes_field_is_an_error(copies: tuple[Path, Path]) -> None:
    k8s, _ = copies
    deployment = k8s / "deployment.yaml"
    deployment.write_text(deployment.read_text().replace("  replicas: 3", "  replica: 3"))
    problems = deploy_check.check_k8s(k8s)
    assert len(problems) == 1
    assert "Deployment bidscore" in problems[0]


def test_a_service_monitor_without_endpoints_is_an_error(copies: tuple[Path, Path]) -> None:
    k8s, _ = copies
    monitor = k8s / "servicemonitor.yaml"
    monitor.write_text(monitor.read_text().replace("  endpoints:", "  endpoint:"))
    problems = deploy_check.check_k8s(k8s)
    assert len(problems) == 1
    assert problems[0].endswith("ServiceMonitor bidscore: spec lacks endpoints")


def test_ecs_shape_and_fleet_rules(copies: tuple[Path, Path]) -> None:
    _, ecs = copies
    task_path = ecs / "task-definition.json"
    task = json.loads(task_path.read_text())
    task["containerDefinitions"][0]["stopTimeout"] = 5  # shorter than the drain
    task["containerDefinitions"][0]["memory"] = "a lot"  # not an integer
    task_path.write_text(json.dumps(task))
    service_path = ecs / "service.json"
    service = json.loads(service_path.read_text())
    service["deploymentConfiguration"]["minimumHealthyPercent"] = 50
    service_path.write_text(json.dumps(service))
    problems = "\n".join(deploy_check.check_ecs(ecs))
    assert "memory" in problems
    assert "stopTimeout must exceed" in problems
    assert "minimumHealthyPercent 100" in problems
