"""Tensor parallelism: greedy output of a sharded engine vs a single-rank one, through the cluster.

Run ``python -m bench.tensor_parallel``. One ``LocalCluster`` serves, side by side, the same weights
at TP = 1 and TP = N (each TP = N replica is a Ray placement group with one bundle per rank; on CPU
hosts the ranks are local processes bound to cores):

* a synthetic Llama (8 attention heads, 2 KV heads, head_dim 64, random weights from a fixed seed,
  written here with the embedded model's tokenizer) at TP = 1 and TP = 2;
* the embedded SmolLM2-135M at TP = 1 and TP = 3 (its 9 attention and 3 KV heads are not divisible
  by 2), in float32 and, unless ``--no-bf16``, in bfloat16.

Every pair answers the same ``--prompts`` chat prompts greedily (``--max-tokens`` each). Reported per
pair: prompts whose text is identical, and the token agreement (matching leading tokens over all
tokens). Last line: ``tensor_parallel tp1_tp2_identical=<synthetic, all prompts> tp1_tp3_identical=<embedded
float32> tp3_bf16_agreement=<embedded bfloat16 token agreement>``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from quorum.client.sdk import AsyncQuorumClient
from quorum.cluster.config import DEFAULT_CONFIG, ModelConfig, QuorumConfig, load_config
from quorum.cluster.models import resolve_source
from quorum.services.local import LocalCluster

from .processes import descendants, wait_gone

PROMPTS = (
    "What is the capital of France?",
    "Write a haiku about rain.",
    "Name three colours.",
    "What is 12 times 7?",
    "Explain what a volcano is in one sentence.",
    "Give me a tip for learning to cook.",
    "What do bees make?",
    "Describe a lighthouse.",
)


@dataclass(frozen=True)
class Pair:
    name: str
    single: str
    sharded: str
    size: int


def synthetic_model(directory: Path, tokenizer_source: str) -> Path:
    """A small random Llama whose heads divide by 2 (peaked logits: initializer_range 0.1)."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=512,
        intermediate_size=1024,
        num_hidden_layers=4,
        num_attention_heads=8,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        initializer_range=0.1,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.float32)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def bench_config(base: QuorumConfig, synthetic: Path, tp: int, bf16: bool) -> tuple[QuorumConfig, list[Pair]]:
    model = base.model(base.default_model_id)
    engine = model.engine.model_copy(update={"max_model_len": 512, "kv_cache_memory_gib": 0.25})
    deployment = model.deployment.model_copy(update={"num_cpus": 0.5})

    def variant(name: str, source: str, dtype: str, size: int) -> ModelConfig:
        bind = "|".join(str(rank % 2) for rank in range(size)) if size > 1 else None
        return model.model_copy(
            update={
                "id": name,
                "source": source,
                "deployment": deployment,
                "engine": engine.model_copy(
                    update={"dtype": dtype, "tensor_parallel_size": size, "cpu_threads_bind": bind}
                ),
            }
        )

    models = [
        variant("synthetic-tp1", str(synthetic), "float32", 1),
        variant("synthetic-tp2", str(synthetic), "float32", 2),
    ]
    pairs = [Pair("synthetic float32", "synthetic-tp1", "synthetic-tp2", 2)]
    dtypes = ["float32", "bfloat16"] if bf16 else ["float32"]
    for dtype in dtypes:
        models += [
            variant(f"embedded-{dtype}-tp1", model.source, dtype, 1),
            variant(f"embedded-{dtype}-tp{tp}", model.source, dtype, tp),
        ]
        pairs.append(Pair(f"SmolLM2-135M {dtype}", f"embedded-{dtype}-tp1", f"embedded-{dtype}-tp{tp}", tp))
    config = base.model_copy(
        update={
            "models": models,
            "gateway": base.gateway.model_copy(update={"grpc_port": 0, "http_port": 0, "default_model": None}),
            "ray": base.ray.model_copy(update={"address": None, "num_cpus": 16, "app_name": "quorum-bench"}),
        }
    )
    return config, pairs


async def answers(target: str, model: str, max_tokens: int) -> list[tuple[str, list[int]]]:
    """Greedy text and its token ids (by tokenizing the text, which both sides share) per prompt."""
    out = []
    async with AsyncQuorumClient(target, timeout=600) as client:
        for prompt in PROMPTS:
            reply = await client.chat([("user", prompt)], model=model, temperature=0.0, max_tokens=max_tokens)
            text = reply.choices[0].text
            tokens = await client.tokenize(text, model=model)
            out.append((text, list(tokens.token_ids)))
    return out


def agreement(a: list[tuple[str, list[int]]], b: list[tuple[str, list[int]]]) -> tuple[int, float]:
    identical = sum(x[0] == y[0] for x, y in zip(a, b, strict=True))
    matched = total = 0
    for (_, left), (_, right) in zip(a, b, strict=True):
        total += max(len(left), len(right))
        for p, q in zip(left, right, strict=False):
            if p != q:
                break
            matched += 1
    return identical, matched / max(1, total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tp", type=int, default=3, help="tensor parallel size for the embedded model (divides 9)")
    parser.add_argument("--max-tokens", type=int, default=32, help="greedy tokens per prompt")
    parser.add_argument("--no-bf16", action="store_true", help="skip the bfloat16 pair")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="quorum config; its default model is used")
    args = parser.parse_args()
    if 9 % args.tp or args.tp < 2:
        parser.error("--tp must divide the embedded model's 9 attention heads and be at least 2 (3 or 9)")
    console = Console(width=120)
    base = load_config(args.config)
    embedded = resolve_source(base.model(base.default_model_id), base.model_cache_dir)
    with tempfile.TemporaryDirectory(prefix="quorum-tp-") as work:
        synthetic = synthetic_model(Path(work) / "synthetic-llama", embedded)
        config, pairs = bench_config(base, synthetic, args.tp, not args.no_bf16)
        console.print(f"[bold]starting {len(config.models)} engines[/] (TP=1 and TP=N side by side)")
        with LocalCluster(config) as cluster:
            cluster.wait_ready(timeout_s=1800)
            results = []
            for pair in pairs:
                single = asyncio.run(answers(cluster.target, pair.single, args.max_tokens))
                sharded = asyncio.run(answers(cluster.target, pair.sharded, args.max_tokens))
                results.append((pair, *agreement(single, sharded)))
            pids = descendants()
        wait_gone(pids, "the cluster", console)

    table = Table(title=f"greedy output, TP=1 vs TP=N, {len(PROMPTS)} prompts x {args.max_tokens} tokens")
    for column in ("model", "TP", "identical prompts", "token agreement"):
        table.add_column(column, justify="right")
    for pair, identical, tokens in results:
        table.add_row(pair.name, f"1 vs {pair.size}", f"{identical}/{len(PROMPTS)}", f"{tokens:.3f}")
    console.print(table)
    by_name = {pair.name: (identical, tokens) for pair, identical, tokens in results}
    tp2 = by_name["synthetic float32"][0] == len(PROMPTS)
    tp3 = by_name["SmolLM2-135M float32"][0] == len(PROMPTS)
    bf16 = by_name.get("SmolLM2-135M bfloat16", (0, float("nan")))[1]
    print(
        f"tensor_parallel tp1_tp2_identical={str(tp2).lower()} tp1_tp{args.tp}_identical={str(tp3).lower()} "
        f"tp{args.tp}_bf16_agreement={bf16:.3f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
