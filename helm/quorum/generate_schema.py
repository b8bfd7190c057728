"""Generate values.schema.json from values.yaml.

    .venv-deploy/bin/python helm/quorum/generate_schema.py          # rewrite values.schema.json
    .venv-deploy/bin/python helm/quorum/generate_schema.py --check  # exit 1 if it is stale

Types come from the default values; descriptions from the helm-docs `# --` comment above each key
(a documented value is required for every leaf: generation fails on an undocumented one). A
`# @schema {...}` comment line adds JSON-schema keywords to that key, plus one of this script's own:
`"freeForm": true` (type only, no constraint on the content: resources, selectors, ...).

Mappings are closed (`additionalProperties: false`) so a mistyped key fails `helm install`. The
pass-through parts of the quorum config (models[].engine/deployment, gateway, telemetry) are
checked against QuorumConfig's own schema, copied from tests/deploy/schemas/quorum-config.schema.json
(refresh that first when QuorumConfig changes: tests/deploy/dump_schemas.py).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parent
VALUES = CHART / "values.yaml"
SCHEMA = CHART / "values.schema.json"
QUORUM_SCHEMA = CHART.parents[1] / "tests" / "deploy" / "schemas" / "quorum-config.schema.json"

# QuorumConfig definitions the values reference, renamed Quorum<Name>.
QUORUM_DEFS = (
    "EngineConfig",
    "DeploymentConfig",
    "GatewayConfig",
    "TelemetryConfig",
    "AutoscalingConfig",
    "RoutingConfig",
)
# cluster/config.py's model id rule (a field validator, so not in the pydantic JSON schema).
MODEL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"

_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.\-/]+|\"[^\"]+\"):(?:\s|$)")
_ITEM = re.compile(r"^(?P<indent> *)- ")


def chart_defs() -> dict[str, Any]:
    """Chart-level definitions: a models entry and its source."""
    return {
        "ModelSource": {
            "description": "Where a model's weights come from: exactly one of hub, pvc, embedded.",
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "hub": {"type": "string", "minLength": 1, "description": "Hugging Face hub id (org/name)."},
                "pvc": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["claimName"],
                    "properties": {
                        "claimName": {"type": "string", "minLength": 1, "description": "Existing PVC name."},
                        "path": {"type": "string", "description": "Model directory inside the volume."},
                    },
                },
                "embedded": {"type": "string", "minLength": 1, "description": "Embedded model name."},
            },
            "oneOf": [{"required": ["hub"]}, {"required": ["pvc"]}, {"required": ["embedded"]}],
        },
        "Model": {
            "description": "One served model (QuorumConfig.models entry plus chart-only keys).",
            "type": "object",
            "additionalProperties": False,
            "required": ["id", "source"],
            "properties": {
                "id": {"type": "string", "pattern": MODEL_ID_PATTERN, "description": "Name clients pass as model."},
                "source": {"$ref": "#/$defs/ModelSource"},
                "tokenizer": {"type": ["string", "null"], "description": "Tokenizer directory or hub id."},
                "engine": {"$ref": "#/$defs/QuorumEngineConfig"},
                "deployment": {"$ref": "#/$defs/QuorumDeploymentConfig"},
                "serveAutoscaling": {
                    "description": "Ray Serve autoscaling_config of the model's deployment (needs the Ray autoscaler).",
                    "type": "object",
                    "properties": {
                        "min_replicas": {"type": "integer", "minimum": 0},
                        "initial_replicas": {"type": "integer", "minimum": 0},
                        "max_replicas": {"type": "integer", "minimum": 1},
                        "target_ongoing_requests": {"type": "number", "exclusiveMinimum": 0},
                    },
                },
                "workerGroup": {"$ref": "#/properties/ray/properties/gpuWorkers"},
            },
        },
    }


def quorum_defs(quorum_schema: dict[str, Any]) -> dict[str, Any]:
    """The definitions, renamed, with their references to each other renamed too."""
    defs = quorum_schema["$defs"]
    text = json.dumps({f"Quorum{name}": defs[name] for name in QUORUM_DEFS})
    for name in QUORUM_DEFS:
        text = text.replace(f'"#/$defs/{name}"', f'"#/$defs/Quorum{name}"')
    renamed: dict[str, Any] = json.loads(text)
    return renamed


def parse_comments(text: str) -> dict[tuple[str, ...], dict[str, Any]]:
    """Path of every mapping key (outside lists) -> {"description": str | None, "schema": dict}."""
    found: dict[tuple[str, ...], dict[str, Any]] = {}
    stack: list[tuple[int, str]] = []  # (indent, key) of the open mappings
    pending: list[str] = []
    list_indent: int | None = None  # inside a list item at this indent: keys are not values paths
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            pending = []
            continue
        if stripped.startswith("#"):
            pending.append(stripped)
            continue
        indent = len(line) - len(line.lstrip(" "))
        if list_indent is not None and indent > list_indent:
            pending = []
            continue
        list_indent = None
        item = _ITEM.match(line)
        if item:
            list_indent = len(item["indent"])
            pending = []
            continue
        match = _KEY.match(line)
        if not match:
            pending = []
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        key = match["key"].strip('"')
        path = (*(k for _, k in stack), key)
        stack.append((indent, key))
        description, schema = _read_block(pending, path)
        found[path] = {"description": description, "schema": schema}
        pending = []
    return found


def _read_block(lines: list[str], path: tuple[str, ...]) -> tuple[str | None, dict[str, Any]]:
    description: list[str] | None = None
    schema: dict[str, Any] = {}
    for line in lines:
        body = line[1:].strip()
        if body.startswith("@schema"):
            try:
                schema.update(json.loads(body[len("@schema") :]))
            except json.JSONDecodeError as exc:
                raise SystemExit(f"values.yaml {'.'.join(path)}: bad @schema JSON: {exc}") from None
        elif body.startswith("--"):
            description = [body[2:].strip()]
        elif description is not None:
            description.append(body)
    return (" ".join(description).strip() if description is not None else None), schema


def _type_of(value: Any) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return None


def build(value: Any, path: tuple[str, ...], comments: dict[tuple[str, ...], dict[str, Any]]) -> dict[str, Any]:
    info = comments.get(path, {"description": None, "schema": {}})
    extra = dict(info["schema"])
    free = extra.pop("freeForm", False)
    node: dict[str, Any] = {}
    if "$ref" not in extra:
        kind = _type_of(value)
        if kind:
            node["type"] = kind
        if kind == "object" and not free:
            node["additionalProperties"] = False
            node["properties"] = {k: build(v, (*path, k), comments) for k, v in value.items()}
    leaf = "$ref" in extra or free or not isinstance(value, dict)
    if info["description"]:
        node["description"] = info["description"]
    elif leaf and path:
        raise SystemExit(f"values.yaml: {'.'.join(path)} has no '# --' description comment")
    node.update(extra)
    return node


def generate() -> str:
    text = VALUES.read_text()
    values = yaml.safe_load(text)
    schema: dict[str, Any] = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "quorum Helm chart values",
        "description": "Generated from values.yaml by generate_schema.py: do not edit.",
    }
    schema.update(build(values, (), parse_comments(text)))
    schema["$defs"] = {**chart_defs(), **quorum_defs(json.loads(QUORUM_SCHEMA.read_text()))}
    return json.dumps(schema, indent=2) + "\n"


def main(argv: list[str]) -> int:
    text = generate()
    if "--check" in argv:
        if not SCHEMA.exists() or SCHEMA.read_text() != text:
            print(f"{SCHEMA} is stale: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    SCHEMA.write_text(text)
    print(f"wrote {SCHEMA}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
