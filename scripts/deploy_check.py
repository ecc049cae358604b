"""Validate the deployment manifests offline (`make deploy-check`).

- Kubernetes (deploy/k8s/*.yaml): every document against the Kubernetes JSON schemas in strict
  mode (unknown fields are errors), with the schemas the `kubernetes-validate` package ships, so
  no network is needed. Custom resources (the Prometheus Operator's ServiceMonitor) are checked
  for the fields the operator requires.
- ECS (deploy/ecs/*.json): the task definition and service against botocore's model of the
  RegisterTaskDefinition and CreateService calls (the same validation `aws ecs ...` does
  before sending), plus the fleet rules of docs/deploy.md (stopTimeout covers the drain,
  rolling updates keep 100% healthy).

Prints one line per file and exits 1 on the first class of problems found.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import kubernetes_validate
import yaml
from botocore.validate import ParamValidator

ROOT = Path(__file__).resolve().parent.parent
K8S_VERSION = "1.33.0"
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"): ("selector", "endpoints")}
DRAIN_SECONDS = 10  # the server's --grace in the manifests


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def k8s_documents(directory: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(directory.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                yield path, doc


def check_k8s(directory: Path) -> list[str]:
    problems = []
    for path, doc in k8s_documents(directory):
        where = f"{_shown(path)}: {doc.get('kind')} {doc.get('metadata', {}).get('name')}"
        custom = CUSTOM_KINDS.get((doc.get("apiVersion"), doc.get("kind")))
        if custom is not None:
            missing = [key for key in custom if key not in (doc.get("spec") or {})]
            if missing:
                problems.append(f"{where}: spec lacks {', '.join(missing)}")
            continue
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path_text = "/".join(str(p) for p in exc.path)
            problems.append(f"{where}: {path_text}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(f"{where}: no schema ({exc})")
    return problems


def check_ecs(directory: Path) -> list[str]:
    model = botocore.session.get_session().get_service_model("ecs")
    validator = ParamValidator()
    problems = []
    calls = {"task-definition.json": "RegisterTaskDefinition", "service.json": "CreateService"}
    for name, operation in calls.items():
        path = directory / name
        params = json.loads(path.read_text(encoding="utf-8"))
        report = validator.validate(params, model.operation_model(operation).input_shape)
        if report.has_errors():
            problems.append(f"{_shown(path)}: {report.generate_report()}")
    task = json.loads((directory / "task-definition.json").read_text(encoding="utf-8"))
    for container in task["containerDefinitions"]:
        if container.get("stopTimeout", 30) <= DRAIN_SECONDS:
            problems.append(
                f"{container['name']}: stopTimeout must exceed the {DRAIN_SECONDS}s drain"
            )
        if "healthCheck" not in container:
            problems.append(f"{container['name']}: no healthCheck")
    service = json.loads((directory / "service.json").read_text(encoding="utf-8"))
    if service["deploymentConfiguration"].get("minimumHealthyPercent") != 100:
        problems.append("service.json: rolling updates must keep minimumHealthyPercent 100")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k8s", type=Path, default=ROOT / "deploy/k8s")
    parser.add_argument("--ecs", type=Path, default=ROOT / "deploy/ecs")
    args = parser.parse_args(argv)
    problems = check_k8s(args.k8s) + check_ecs(args.ecs)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if not problems:
        count = sum(1 for _ in k8s_documents(args.k8s))
        print(f"deploy-check: {count} Kubernetes objects and the ECS task/service are valid")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
