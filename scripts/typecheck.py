"""Run mypy over the `quorum` import package.

The repository maps its top-level folders onto `quorum.*` through setuptools'
package-dir (see pyproject.toml); mypy does not follow the editable-install
import hook, so this script lays the same mapping out as symlinks in
`.mypy_tree/` and checks `-p quorum` there, plus the scripts, benchmarks and tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / ".mypy_tree"
PACKAGES = {"client": "client", "cluster": "cluster", "services": "services", "reasoning": "reasoning"}


def build_tree() -> None:
    shutil.rmtree(TREE, ignore_errors=True)
    package = TREE / "quorum"
    package.mkdir(parents=True)
    for entry in (ROOT / "proto" / "quorum").iterdir():
        if entry.name != "__pycache__":
            os.symlink(entry, package / entry.name)
    for name, folder in PACKAGES.items():
        os.symlink(ROOT / folder, package / name)


def main() -> int:
    build_tree()
    env = dict(os.environ, MYPYPATH=str(TREE))
    extra = [str(p) for p in (ROOT / "scripts", ROOT / "bench", ROOT / "tests") if p.exists()]
    command = [sys.executable, "-m", "mypy", "-p", "quorum"]
    first = subprocess.run(command, cwd=ROOT, env=env, check=False).returncode
    second = subprocess.run([sys.executable, "-m", "mypy", *extra], cwd=ROOT, env=env, check=False).returncode
    return first or second


if __name__ == "__main__":
    sys.exit(main())
