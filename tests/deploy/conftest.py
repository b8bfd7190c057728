"""Deploy checks (helm/quorum, k8s/): run by `bash scripts/deploy_check.sh` in the side venv .venv-deploy.

The main venv has no helm_sdkpy, checkov or kubernetes-validate, so there these tests are not collected.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from .helm_render import CI_VALUES, Rendering, load_values, render

DEPLOY_TOOLS = all(importlib.util.find_spec(name) for name in ("helm_sdkpy", "kubernetes_validate", "jsonschema"))
collect_ignore_glob = [] if DEPLOY_TOOLS else ["test_*.py"]

# Profile name -> values files layered over the chart's values.yaml.
PROFILES: dict[str, tuple[Path, ...]] = {
    "default": (),
    "cpu-dev": (CI_VALUES / "cpu-dev-values.yaml",),
    "gpu": (CI_VALUES / "gpu-values.yaml",),
}


def pytest_report_header() -> str | None:
    if DEPLOY_TOOLS:
        return None
    return "tests/deploy: not collected here (no helm_sdkpy); run: bash scripts/deploy_check.sh"


@pytest.fixture(scope="session")
def renderings() -> dict[str, Rendering]:
    """The chart rendered by Helm for each profile."""
    return {name: render(load_values(*files)) for name, files in PROFILES.items()}


@pytest.fixture(params=sorted(PROFILES))
def profile(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def rendering(renderings: dict[str, Rendering], profile: str) -> Rendering:
    return renderings[profile]
