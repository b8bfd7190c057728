"""k8s/ stays equal to the chart's rendering (regenerate: bash scripts/deploy_check.sh --regen)."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
import yaml

from .helm_render import Rendering
from .k8s_manifests import K8S, OVERLAYS, build, current_files, expected_files


@pytest.fixture(scope="module")
def overlay_renderings(renderings: dict[str, Rendering]) -> dict[str, Rendering]:
    return {name: renderings[name] for name in OVERLAYS}


def test_k8s_files_are_generated_from_the_chart(overlay_renderings: dict[str, Rendering]) -> None:
    expected = expected_files(overlay_renderings)
    current = current_files()
    assert sorted(current) == sorted(expected), "k8s/ file list differs: bash scripts/deploy_check.sh --regen"
    stale = [path for path in expected if current[path] != expected[path]]
    assert stale == [], "k8s/ differs from the chart's rendering: bash scripts/deploy_check.sh --regen"


def _key(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_overlay_builds_to_the_chart_rendering(overlay: str, overlay_renderings: dict[str, Rendering]) -> None:
    built = build(K8S / "overlays" / overlay)
    assert sorted(built, key=_key) == sorted(overlay_renderings[overlay].objects, key=_key)


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_kustomize_builds_the_overlay_to_the_chart_rendering(
    overlay: str, overlay_renderings: dict[str, Rendering]
) -> None:
    """The real kustomize (kubectl's built-in one; kubectl ships with the machine image) agrees."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: only the resource-list resolver checked the overlay")
    done = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    built = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    assert sorted(built, key=_key) == sorted(overlay_renderings[overlay].objects, key=_key)


def test_base_holds_only_objects_shared_by_every_overlay() -> None:
    base = build(K8S / "base")
    assert base, "cpu-dev and gpu share the dashboard, the PDB and the Ray NetworkPolicy at least"
    for overlay in OVERLAYS:
        overlay_objects = build(K8S / "overlays" / overlay)
        for obj in base:
            assert obj in overlay_objects
