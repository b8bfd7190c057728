"""`buf breaking` against the newest released wire API (proto/releases/), as `make lint` runs it.

A change that would break a client generated from the released protos fails the check, naming what broke;
additive changes pass. buf runs through npx at the version pinned in the Makefile.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROTO = ROOT / "proto"
INFERENCE = Path("quorum/v1/inference.proto")


def buf_version() -> str:
    match = re.search(r"^BUF_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, "Makefile: no BUF_VERSION line"
    return match.group(1)


def newest_release() -> Path:
    """The snapshot `make lint` compares against: the highest v<major>.<minor>.<patch>.binpb."""
    snapshots = {
        tuple(int(part) for part in match.groups()): path
        for path in (PROTO / "releases").glob("v*.binpb")
        if (match := re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)\.binpb", path.name))
    }
    assert snapshots, "proto/releases/ holds no release snapshot (make proto-release)"
    return snapshots[max(snapshots)]


def buf_breaking(tree: Path) -> subprocess.CompletedProcess[str]:
    npx = shutil.which("npx")
    if npx is None:
        pytest.fail("npx not found: install Node >= 20 with npm (buf runs through npx, as in `make lint`)")
    return subprocess.run(
        [npx, "--yes", f"@bufbuild/buf@{buf_version()}", "breaking", "--against", str(newest_release())],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def proto_copy(tmp_path: Path) -> Path:
    """A copy of proto/ (the .proto files and buf.yaml) to edit."""
    tree = tmp_path / "proto"
    shutil.copytree(PROTO, tree, ignore=shutil.ignore_patterns("__pycache__", "*.py", "*.pyi", "releases"))
    return tree


def edit(tree: Path, old: str, new: str) -> None:
    path = tree / INFERENCE
    text = path.read_text()
    assert text.count(old) == 1, f"{INFERENCE}: expected one {old!r}"
    path.write_text(text.replace(old, new))


def test_the_working_tree_is_compatible_with_the_last_release() -> None:
    result = buf_breaking(PROTO)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        pytest.param("uint32 max_tokens = 1;", "uint32 max_tokens = 15;", "max_tokens", id="renumbered-field"),
        pytest.param("  bool fit_context = 14;\n", "", "fit_context", id="removed-field"),
        pytest.param("bool is_default = 2;", "string is_default = 2;", "is_default", id="retyped-field"),
        pytest.param("  rpc Tokenize(TokenizeRequest) returns (TokenizeResponse);\n", "", "Tokenize", id="removed-rpc"),
    ],
)
def test_a_breaking_change_fails_and_names_what_broke(proto_copy: Path, old: str, new: str, named: str) -> None:
    edit(proto_copy, old, new)
    result = buf_breaking(proto_copy)
    assert result.returncode != 0, f"buf breaking accepted {old!r} -> {new!r}"
    assert f'"{named}"' in result.stdout, result.stdout + result.stderr
    assert str(INFERENCE) in result.stdout


def test_an_added_field_is_not_breaking(proto_copy: Path) -> None:
    edit(proto_copy, "  bool fit_context = 14;\n", "  bool fit_context = 14;\n  // A new option.\n  bool echo = 15;\n")
    result = buf_breaking(proto_copy)
    assert result.returncode == 0, result.stdout + result.stderr
