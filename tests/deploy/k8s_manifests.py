"""k8s/: plain manifests (a kustomize base and the cpu-dev and gpu overlays) generated from the chart.

    .venv-deploy/bin/python -m tests.deploy.k8s_manifests   # rewrite k8s/base and k8s/overlays

Each overlay is exactly the chart rendered (release "quorum", namespace "quorum") with
helm/quorum/ci/<overlay>-values.yaml; objects identical in every overlay live in the base. The
kustomizations only list resources (no patches), so `kubectl apply -k k8s/overlays/<name>` applies the
same objects as `helm install quorum helm/quorum -n quorum -f helm/quorum/ci/<name>-values.yaml`.
test_k8s_manifests.py re-renders the chart and fails when k8s/ drifts from it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from .helm_render import CI_VALUES, ROOT, Rendering, load_values, render

K8S = ROOT / "k8s"
OVERLAYS = {"cpu-dev": CI_VALUES / "cpu-dev-values.yaml", "gpu": CI_VALUES / "gpu-values.yaml"}
MANAGED = ("base", "overlays")
HEADER = (
    "# Generated from helm/quorum ({source}) by `bash scripts/deploy_check.sh --regen`; do not edit.\n"
    "# Apply with: kubectl apply -k k8s/overlays/<cpu-dev|gpu> (namespace quorum must exist).\n"
)


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings (serveConfigV2, the dashboard JSON)."""


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)


def dump(documents: list[Any], source: str) -> str:
    body = yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False, width=120)
    return HEADER.format(source=source) + body


def file_name(obj: dict[str, Any]) -> str:
    return f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"


def renderings() -> dict[str, Rendering]:
    return {name: render(load_values(values)) for name, values in OVERLAYS.items()}


def expected_files(rendered: dict[str, Rendering]) -> dict[str, str]:
    """Relative path under k8s/ -> content."""
    objects = {name: {file_name(o): o for o in r.objects} for name, r in rendered.items()}
    first, *others = objects.values()
    common = sorted(f for f, o in first.items() if all(other.get(f) == o for other in others))
    kustomization = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}
    files = {f"base/{f}": dump([first[f]], "objects common to every overlay") for f in common}
    files["base/kustomization.yaml"] = dump([{**kustomization, "resources": common}], "base")
    for name, found in objects.items():
        source = f"ci/{OVERLAYS[name].name}"
        own = sorted(f for f in found if f not in common)
        for f in own:
            files[f"overlays/{name}/{f}"] = dump([found[f]], source)
        resources = ["../../base", *own]
        files[f"overlays/{name}/kustomization.yaml"] = dump([{**kustomization, "resources": resources}], source)
    return files


def current_files() -> dict[str, str]:
    found = {}
    for folder in MANAGED:
        for path in sorted((K8S / folder).rglob("*")):
            if path.is_file():
                found[str(path.relative_to(K8S))] = path.read_text()
    return found


def build(directory: Path) -> list[dict[str, Any]]:
    """What `kustomize build` gives for these resource-only kustomizations."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    extra = set(kustomization) - {"apiVersion", "kind", "resources"}
    assert not extra, f"{directory}: build() only understands resources, not {extra}"
    objects: list[dict[str, Any]] = []
    for resource in kustomization["resources"]:
        path = (directory / resource).resolve()
        if path.is_dir():
            objects += build(path)
        else:
            objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return objects


def write(files: dict[str, str]) -> None:
    for relative in set(current_files()) - set(files):
        (K8S / relative).unlink()
    for relative, text in files.items():
        path = K8S / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def main() -> int:
    files = expected_files(renderings())
    write(files)
    print(f"wrote {len(files)} files under {K8S}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
