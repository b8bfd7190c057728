"""INT8 W8A8 / INT4 W4A16 quantization of the embedded model (quorum.cluster.quantize), loaded by a real vLLM."""

from __future__ import annotations

import gc
import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from quorum.cluster.config import DEFAULT_CONFIG, load_config
from quorum.cluster.models import prepare_embedded
from quorum.cluster.quantize import QuantizeError, QuantizeReport, quantize_checkpoint, safetensors_dtypes

NAME = "smollm2-135m-instruct"
QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def source() -> Path:
    """The prepared embedded model (bfloat16), converted first if this machine has not done it yet."""
    return prepare_embedded(NAME, load_config(DEFAULT_CONFIG).model_cache_dir, progress=False)


@pytest.fixture(scope="module")
def w8a8(source: Path, tmp_path_factory: pytest.TempPathFactory) -> QuantizeReport:
    """One W8A8 checkpoint shared by the module's tests, written into an existing empty directory."""
    output = tmp_path_factory.mktemp("w8a8") / "model"
    output.mkdir()
    return quantize_checkpoint(source, output, "w8a8", progress=False)


@pytest.fixture(scope="module")
def w4a16(source: Path, tmp_path_factory: pytest.TempPathFactory) -> QuantizeReport:
    return quantize_checkpoint(source, tmp_path_factory.mktemp("w4a16") / "model", "W4A16", progress=False)


def _header(path: Path) -> dict[str, dict[str, Any]]:
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header: dict[str, dict[str, Any]] = json.loads(handle.read(length))
    header.pop("__metadata__", None)
    return header


def _nbytes(entry: dict[str, Any]) -> int:
    start, end = entry["data_offsets"]
    return int(end - start)


def _quantization_config(directory: Path) -> dict[str, Any]:
    config: dict[str, Any] = json.loads((directory / "config.json").read_text())
    return dict(config["quantization_config"])


def test_w8a8_config_declares_int8_channel_weights_and_dynamic_token_activations(w8a8: QuantizeReport) -> None:
    quantization = _quantization_config(w8a8.output_dir)
    assert quantization["quant_method"] == "compressed-tensors"
    assert quantization["format"] == "int-quantized"
    assert quantization["quantization_status"] == "compressed"
    assert quantization["ignore"] == ["lm_head"]
    (group,) = quantization["config_groups"].values()
    assert group["targets"] == ["Linear"]
    weights, activations = group["weights"], group["input_activations"]
    assert (weights["num_bits"], weights["type"], weights["strategy"]) == (8, "int", "channel")
    assert weights["symmetric"]
    assert not weights["dynamic"]
    assert (activations["num_bits"], activations["type"], activations["strategy"]) == (8, "int", "token")
    assert activations["symmetric"]
    assert activations["dynamic"] is True


def test_w8a8_stores_every_linear_weight_as_int8_with_a_scale_per_channel(source: Path, w8a8: QuantizeReport) -> None:
    (weights_file,) = w8a8.output_dir.glob("*.safetensors")
    header = _header(weights_file)
    projections = {name for name in header if name.endswith("_proj.weight")}
    assert len(projections) == w8a8.quantized_layers == 30 * 7
    for name in projections:
        assert header[name]["dtype"] == "I8", name
        scale = header[name.removesuffix("weight") + "weight_scale"]
        assert scale["shape"] == [header[name]["shape"][0], 1], name
    assert header["model.embed_tokens.weight"]["dtype"] == "BF16"
    assert "lm_head.weight" not in header  # tied to the embeddings, kept in bfloat16
    assert not any(name.endswith("zero_point") for name in header)  # symmetric: vLLM expects none

    # The size ratio: the Linear layers shrink ~2x (int8 + a bf16 scale per row vs bf16); the whole file less,
    # because SmolLM2's tied 49152 x 576 embedding (21% of its parameters) stays bfloat16.
    source_header = _header(next(source.glob("*.safetensors")))
    linear_before = sum(_nbytes(source_header[name]) for name in projections)
    linear_after = sum(_nbytes(header[name]) + _nbytes(header[name + "_scale"]) for name in projections)
    assert linear_before / linear_after >= 1.99
    assert w8a8.source_bytes == sum(path.stat().st_size for path in source.glob("*.safetensors"))
    assert w8a8.output_bytes == weights_file.stat().st_size
    assert w8a8.size_ratio == pytest.approx(w8a8.source_bytes / w8a8.output_bytes)
    assert w8a8.size_ratio >= 1.6


def test_w8a8_weights_are_round_to_nearest_of_the_source(source: Path, w8a8: QuantizeReport) -> None:
    import torch
    from safetensors import safe_open

    name = "model.layers.7.mlp.down_proj"
    with safe_open(str(next(source.glob("*.safetensors"))), framework="pt") as original:
        weight = original.get_tensor(f"{name}.weight").float()
    with safe_open(str(next(w8a8.output_dir.glob("*.safetensors"))), framework="pt") as quantized:
        q = quantized.get_tensor(f"{name}.weight")
        scale = quantized.get_tensor(f"{name}.weight_scale").float()
    assert q.dtype == torch.int8
    assert scale.shape == (weight.shape[0], 1)
    assert torch.allclose(scale, weight.abs().amax(dim=1, keepdim=True) / 127, rtol=2**-8)
    assert int(q.abs().amax()) == 127
    error = (q.float() * scale - weight).abs()
    assert bool((error <= scale * 0.5 * (1 + 2**-6)).all())  # at most half a step from the bf16 weight


def test_quantized_directory_is_complete_and_nothing_is_left_behind(w8a8: QuantizeReport) -> None:
    files = {path.name for path in w8a8.output_dir.iterdir()}
    assert {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"} <= files
    assert [path.name for path in w8a8.output_dir.parent.iterdir()] == ["model"]  # no .partial directory
    assert w8a8.scheme == "w8a8"
    assert w8a8.group_size is None
    assert w8a8.seconds > 0


def test_w4a16_packs_int4_weights_in_groups_dividing_the_hidden_size(w4a16: QuantizeReport) -> None:
    quantization = _quantization_config(w4a16.output_dir)
    assert quantization["format"] == "pack-quantized"
    (group,) = quantization["config_groups"].values()
    weights = group["weights"]
    assert (weights["num_bits"], weights["strategy"], weights["group_size"]) == (4, "group", 64)
    assert group["input_activations"] is None
    assert w4a16.group_size == 64  # 128 does not divide SmolLM2's hidden size 576
    dtypes = safetensors_dtypes(next(w4a16.output_dir.glob("*.safetensors")))
    assert dtypes["model.layers.0.self_attn.q_proj.weight_packed"] == "I32"
    assert dtypes["model.layers.0.self_attn.q_proj.weight_scale"] == "BF16"
    assert w4a16.size_ratio >= 2.3


def _not_a_model(tmp_path: Path, source: Path) -> tuple[Path, Path]:
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty", tmp_path / "out"


def _missing(tmp_path: Path, source: Path) -> tuple[Path, Path]:
    return tmp_path / "absent", tmp_path / "out"


def _already_quantized(tmp_path: Path, source: Path) -> tuple[Path, Path]:
    model = tmp_path / "quantized"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"quantization_config": {"quant_method": "compressed-tensors"}}))
    (model / "model.safetensors").write_bytes(b"")
    return model, tmp_path / "out"


def _output_not_empty(tmp_path: Path, source: Path) -> tuple[Path, Path]:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    return source, tmp_path / "out"


def _output_is_a_file(tmp_path: Path, source: Path) -> tuple[Path, Path]:
    (tmp_path / "out").write_text("mine")
    return source, tmp_path / "out"


def _output_is_the_source(tmp_path: Path, source: Path) -> tuple[Path, Path]:
    return source, source / "w8a8"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_missing, r"source .*absent does not exist"),
        (_not_a_model, r"source .*empty has no readable config\.json"),
        (_already_quantized, r"is already quantized \(compressed-tensors\)"),
        (_output_not_empty, r"output .*out exists and is not empty"),
        (_output_is_a_file, r"output .*out exists and is not a directory"),
        (_output_is_the_source, r"must not be the source directory or inside it"),
    ],
)
def test_bad_input_is_refused_before_any_work(
    tmp_path: Path, source: Path, make: Callable[[Path, Path], tuple[Path, Path]], message: str
) -> None:
    src, out = make(tmp_path, source)
    created = sorted(tmp_path.iterdir())
    with pytest.raises(QuantizeError, match=message):
        quantize_checkpoint(src, out, "w8a8", progress=False)
    assert sorted(tmp_path.iterdir()) == created, "a partial output was left behind"


@pytest.mark.parametrize("scheme", ["int3", "fp8", ""])
def test_unknown_scheme_names_the_supported_ones(tmp_path: Path, source: Path, scheme: str) -> None:
    with pytest.raises(QuantizeError, match=r"unknown quantization scheme .*; supported: w8a8, w4a16"):
        quantize_checkpoint(source, tmp_path / "out", scheme, progress=False)
    assert isinstance(QuantizeError("x"), ValueError)
    assert not (tmp_path / "out").exists()


def _greedy_chat_answer(model: Path) -> tuple[str, str | None]:
    """What an in-process vLLM engine answers QUESTION greedily, and the quantization method it detected."""
    import vllm

    llm = vllm.LLM(
        model=str(model),
        dtype="bfloat16",
        enforce_eager=True,
        max_model_len=512,
        kv_cache_memory_bytes=256 << 20,
        enable_chunked_prefill=False,
    )
    try:
        params = vllm.SamplingParams(temperature=0.0, max_tokens=24)
        (output,) = llm.chat([[{"role": "user", "content": QUESTION}]], params, use_tqdm=False)
        return output.outputs[0].text, llm.llm_engine.model_config.quantization
    finally:
        llm.llm_engine.engine_core.shutdown()
        del llm
        gc.collect()


@pytest.mark.slow
def test_vllm_serves_the_w8a8_checkpoint(w8a8: QuantizeReport) -> None:
    answer, method = _greedy_chat_answer(w8a8.output_dir)
    assert method == "compressed-tensors"
    assert "Paris" in answer


def test_cli_scheme_choices_match_the_module() -> None:
    from quorum.client.cli import build_parser
    from quorum.cluster.quantize import SCHEMES

    args = build_parser().parse_args(["quantize", "--source", "embedded:x", "--output", "out"])
    assert args.scheme == "w8a8"
    for scheme in SCHEMES:
        assert build_parser().parse_args(["quantize", "--scheme", scheme, "--source", "s", "--output", "o"]).scheme
    with pytest.raises(SystemExit):
        build_parser().parse_args(["quantize", "--scheme", "int3", "--source", "s", "--output", "o"])


def test_cli_reports_bad_input_with_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from quorum.client.cli import main

    (tmp_path / "model").mkdir()
    assert main(["quantize", "--source", str(tmp_path / "model"), "--output", str(tmp_path / "out")]) == 2
    assert "has no config.json" in " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert main(["quantize", "--source", "embedded:gpt-5", "--output", str(tmp_path / "out")]) == 2
    assert "unknown embedded model 'gpt-5'" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "out").exists()
