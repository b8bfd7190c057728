"""``quorum tune`` on the embedded model: a tiny real LoRA run, its determinism, resumption and the adapter format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.tool_use_data import generate
from quorum.cluster.config import DEFAULT_CONFIG, load_config
from quorum.cluster.models import prepare_embedded
from quorum.cluster.tune import LORA_TARGETS, TuneConfig, TuneError, TuneResult, tune

pytestmark = pytest.mark.slow
NAME = "smollm2-135m-instruct"
OPTIONS = {"rank": 4, "max_steps": 4, "batch_size": 2, "max_seq_len": 320, "seed": 11, "checkpoint_every": 2}


@pytest.fixture(scope="module")
def base() -> Path:
    return prepare_embedded(NAME, load_config(DEFAULT_CONFIG).model_cache_dir, progress=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight short rows (two with a calculator call), so four steps take seconds on two cores."""
    path = tmp_path_factory.mktemp("data") / "rows.jsonl"
    rows: list[dict[str, Any]] = [
        {
            "messages": [
                {"role": "user", "content": f"What is {a} plus {b}?"},
                {"role": "assistant", "content": str(a + b)},
            ]
        }
        for a, b in ((3, 4), (12, 30), (7, 9), (25, 17), (8, 8), (40, 2))
    ]
    rows += generate(2, seed=3)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _config(data: Path, output: Path, **changes: object) -> TuneConfig:
    return TuneConfig.model_validate({"data": str(data), "output": str(output), **OPTIONS, **changes})


@pytest.fixture(scope="module")
def first(base: Path, data: Path, tmp_path_factory: pytest.TempPathFactory) -> TuneResult:
    return tune(_config(data, tmp_path_factory.mktemp("first") / "adapter"), base, progress=False)


def _weights(directory: Path) -> dict[str, bytes]:
    from safetensors.torch import load_file

    return {
        name: tensor.numpy().tobytes()
        for name, tensor in load_file(str(directory / "adapter_model.safetensors")).items()
    }


def test_the_adapter_is_a_peft_lora_vllm_can_load(first: TuneResult) -> None:
    files = {p.name for p in first.output_dir.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "quorum-tune.json"} <= files
    config = json.loads((first.output_dir / "adapter_config.json").read_text())
    assert (config["peft_type"], config["r"], config["lora_alpha"]) == ("LORA", 4, 16)
    assert sorted(config["target_modules"]) == sorted(LORA_TARGETS)
    names = _weights(first.output_dir)
    assert names
    assert all(".lora_A." in n or ".lora_B." in n for n in names)
    assert not any("embed" in n or "lm_head" in n for n in names)
    assert not first.output_dir.with_name(".adapter.checkpoints").exists()  # removed once the adapter is in place
    # vLLM's own LoRA loader (what a LoRARequest loads) reads it: 30 layers x 7 projections at rank 4.
    import torch
    from vllm.lora.lora_model import LoRAModel
    from vllm.lora.peft_helper import PEFTHelper

    helper = PEFTHelper.from_local_dir(str(first.output_dir), max_position_embeddings=8192)
    lora = LoRAModel.from_local_checkpoint(
        str(first.output_dir), set(LORA_TARGETS), helper, lora_model_id=1, device="cpu", dtype=torch.float32
    )
    assert (len(lora.loras), lora.rank) == (30 * len(LORA_TARGETS), 4)
    assert (first.steps, len(first.losses)) == (4, 4)


def test_the_adapter_loads_with_peft_and_changes_the_logits(first: TuneResult, base: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base))
    ids = tokenizer("Compute 12 * 34.", return_tensors="pt").input_ids
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    with torch.inference_mode():
        before = model(ids).logits
        adapted = PeftModel.from_pretrained(model, str(first.output_dir))
        after = adapted(ids).logits
    assert (after - before).abs().max().item() > 1e-3


def test_the_same_seed_gives_bit_identical_weights(first: TuneResult, base: Path, data: Path, tmp_path: Path) -> None:
    again = tune(_config(data, tmp_path / "adapter"), base, progress=False)
    assert _weights(again.output_dir) == _weights(first.output_dir)
    assert again.losses == first.losses


def test_an_interrupted_run_leaves_no_output_and_resumes_to_the_same_weights(
    first: TuneResult, base: Path, data: Path, tmp_path: Path
) -> None:
    output = tmp_path / "adapter"

    def interrupt(step: int, loss: float) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tune(_config(data, output), base, progress=False, on_step=interrupt)
    assert not output.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".adapter.checkpoints"]
    with pytest.raises(TuneError, match="pass resume"):
        tune(_config(data, output), base, progress=False)
    with pytest.raises(TuneError, match="resume: seed is 12"):
        tune(_config(data, output, resume=True, seed=12), base, progress=False)

    resumed = tune(_config(data, output, resume=True), base, progress=False)
    assert resumed.resumed_from_step == 2
    assert _weights(output) == _weights(first.output_dir)
    assert resumed.losses == first.losses
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]
