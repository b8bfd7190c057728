"""INT8 W8A8 quantization: the embedded model in bfloat16 vs its W8A8 copy, on the same vLLM settings.

Run ``python -m bench.quantization``. In one run it quantizes the prepared
embedded model (SmolLM2-135M-Instruct) with
:func:`quorum.cluster.quantize.quantize_checkpoint` into a temporary directory
(removed at the end), then measures both checkpoints with real in-process
``vllm.LLM`` engines, one engine at a time, with identical engine arguments
(bfloat16 activations, eager mode, prefix caching off, chunked prefill off):

- weight size on disk: the ``*.safetensors`` bytes of each directory;
- throughput: ``--prompts`` distinct chat prompts (chat template applied,
  tokenized once) generated as one batch, greedy, exactly ``--max-tokens`` new
  tokens each (``ignore_eos``), so both sides do the same work; tok/s = generated
  tokens / wall seconds of the ``generate`` call (prefill included). Engines
  alternate bf16, quantized, bf16, quantized, ... for ``--rounds`` rounds, each
  engine runs one untimed warm-up batch (other prompts) and then ``--repeats``
  timed batches, and the reported tok/s are medians over all timed batches, so a
  burst of load from other processes moves both sides alike;
- greedy agreement: the generated token ids of the quantized model against the
  bf16 ones, each sequence cut after its first EOS. ``greedy_agreement`` on the
  last line is the overall matched-prefix fraction: sum over prompts of the number
  of leading tokens identical to bf16 (up to the first divergence) / sum of the
  bf16 lengths. Earlier lines also give the mean of that fraction per prompt, the
  position-by-position identical fraction (ignoring divergence), and how many
  prompts came out identical;
- perplexity of each model on a fixed built-in English text (:data:`TEXT`, about
  500 tokens) from vLLM's ``prompt_logprobs``: exp of the mean negative
  log-likelihood of every token after the first.

Every engine is shut down (``engine_core.shutdown()``, ``del``, ``gc.collect()``)
and its processes are waited for before the next one starts; the bench warns if
any process it started is still alive at the end.

The last stdout line is ``quantization size_ratio=<bf16 bytes / quantized bytes>
throughput_ratio=<quantized tok/s / bf16 tok/s> greedy_agreement=<fraction>``.
Absolute tok/s move with machine load; the ratios are measured in the same run.
``--scheme w4a16`` compares the INT4 weight-only checkpoint instead.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from quorum.cluster.config import DEFAULT_CONFIG, load_config
from quorum.cluster.models import prepare_embedded
from quorum.cluster.quantize import SCHEMES, quantize_checkpoint, weights_bytes

from .processes import descendants, running, wait_gone

EMBEDDED = "smollm2-135m-instruct"

QUESTIONS = (
    "Why is the sky blue?",
    "Explain how a bicycle stays upright.",
    "What causes the seasons on Earth?",
    "Give three tips for learning a new language.",
    "How do bees make honey?",
    "What is the difference between weather and climate?",
    "Describe how a refrigerator keeps food cold.",
    "Why do we need sleep?",
    "How does a rainbow form?",
    "What is photosynthesis?",
    "Write a short poem about the sea.",
    "How do airplanes fly?",
    "What are the main causes of ocean tides?",
    "Explain what a computer program is to a child.",
    "Why do leaves change colour in autumn?",
    "How is bread made?",
    "What is the water cycle?",
    "Why do cats purr?",
    "How does a compass work?",
    "What makes a good friend?",
    "Explain gravity in simple words.",
    "How do volcanoes erupt?",
    "What is the tallest mountain in the world?",
    "Why is exercise good for health?",
)
WARMUP_QUESTIONS = ("What is the capital of France?", "Name a primary colour.", "Count from one to five.")

TEXT = (
    "The lighthouse stood at the end of a narrow spit of rock, and for more than a century it had warned ships "
    "away from the reef that lay hidden beneath the grey water. In the early years a keeper lived in the small "
    "stone cottage at its foot with his family. Every evening before sunset he climbed the spiral staircase, "
    "trimmed the wicks, polished the great glass lens and lit the lamp. Through the long night he wound the "
    "clockwork that turned the lens, so that the beam swept across the sea in a steady rhythm that sailors "
    "learned to recognise. Each lighthouse along the coast had its own pattern of flashes, and a captain who "
    "counted them could tell exactly where he was, even in a storm.\n\n"
    "Life at the station was quiet but never idle. The keeper recorded the weather in a logbook three times a "
    "day, noting the wind, the state of the sea and the passing vessels. His wife kept a garden in the "
    "sheltered corner behind the cottage, where potatoes, cabbages and a few stubborn flowers grew in soil "
    "carried out from the mainland in baskets. The children rowed across the harbour to school when the sea "
    "was calm and stayed at home with their books when it was not. Supplies arrived once a fortnight by boat: "
    "flour, oil for the lamp, letters and newspapers that were already a week old.\n\n"
    "Winter was the hardest season. Gales drove spray over the roof of the tower, and on some nights the "
    "keeper could hardly open the door against the wind. Ice formed on the windows of the lantern room and had "
    "to be scraped away by hand, because a light that could not be seen was worse than no light at all. When a "
    "ship was in trouble the family watched helplessly from the gallery, or signalled to the lifeboat crew in "
    "the village across the bay.\n\n"
    "In time the lamp was replaced by an electric bulb, and later the whole station was automated. The keepers "
    "left, the garden returned to grass, and the cottage became a small museum. Visitors now climb the same "
    "staircase and look out over the same reef. The light still turns every night, guided by a computer "
    "instead of a clock, but the pattern of its flashes has not changed, and the sailors who pass it still "
    "count them, just as their grandparents did. On clear evenings the old keeper's great-granddaughter sometimes "
    "walks out along the rock to watch the first flash, and she says it still feels like a promise kept."
)


@dataclass
class Side:
    """Everything measured for one checkpoint across its engines."""

    name: str
    path: Path
    weight_bytes: int
    throughputs: list[float] = field(default_factory=list)
    load_seconds: list[float] = field(default_factory=list)
    tokens: list[list[int]] = field(default_factory=list)
    """Generated token ids per prompt, from the first timed batch of the first engine."""
    deterministic: bool = True
    """Every timed batch of every engine generated the same tokens."""
    perplexity: float = math.nan
    text_tokens: int = 0

    @property
    def throughput(self) -> float:
        return statistics.median(self.throughputs)


def engine_kwargs(args: argparse.Namespace, dtype: str = "bfloat16") -> dict[str, Any]:
    return {
        "dtype": dtype,
        "enforce_eager": True,
        "max_model_len": 1024,
        "kv_cache_memory_bytes": 256 << 20,
        "enable_chunked_prefill": False,
        "enable_prefix_caching": False,
        "max_num_seqs": max(args.prompts, len(WARMUP_QUESTIONS)),
        "seed": 0,
    }


def chat_token_ids(tokenizer: Any, questions: tuple[str, ...] | list[str]) -> list[list[int]]:
    """Each question as one user turn, with the chat template and the assistant prompt, tokenized."""
    ids = []
    for question in questions:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
        )
        ids.append(list(tokenizer(text, add_special_tokens=False)["input_ids"]))
    return ids


def run_engine(
    side: Side,
    args: argparse.Namespace,
    console: Console,
    with_perplexity: bool,
    dtype: str = "bfloat16",
    extra: Callable[[Any], None] | None = None,
) -> None:
    """One engine on ``side.path``: warm-up, ``--repeats`` timed batches, optionally perplexity, then ``extra(llm)``
    (more measurements on the same engine); then shut down."""
    import vllm
    from vllm.inputs import TokensPrompt

    environ = dict(os.environ)  # vLLM sets variables for its workers; every engine starts from the same ones
    started = time.perf_counter()
    llm = vllm.LLM(model=str(side.path), **engine_kwargs(args, dtype))
    side.load_seconds.append(time.perf_counter() - started)
    pids = descendants()
    try:
        tokenizer = llm.get_tokenizer()
        prompts = [TokensPrompt(prompt_token_ids=ids) for ids in chat_token_ids(tokenizer, QUESTIONS[: args.prompts])]
        warmup = [TokensPrompt(prompt_token_ids=ids) for ids in chat_token_ids(tokenizer, WARMUP_QUESTIONS)]
        greedy = vllm.SamplingParams(temperature=0.0, max_tokens=args.max_tokens, ignore_eos=True)
        llm.generate(warmup, greedy, use_tqdm=False)
        for _ in range(args.repeats):
            started = time.perf_counter()
            outputs = llm.generate(prompts, greedy, use_tqdm=False)
            wall = time.perf_counter() - started
            tokens = [list(output.outputs[0].token_ids) for output in outputs]
            side.throughputs.append(sum(len(t) for t in tokens) / wall)
            if not side.tokens:
                side.tokens = tokens
            elif tokens != side.tokens:
                side.deterministic = False
        if with_perplexity:
            side.perplexity, side.text_tokens = perplexity(llm, tokenizer)
        if extra is not None:
            extra(llm)
    finally:
        llm.llm_engine.engine_core.shutdown()
        del llm
        gc.collect()
        wait_gone(pids, f"the {side.name} engine", console)
        os.environ.clear()
        os.environ.update(environ)
    console.print(
        f"  {side.name}: loaded in {side.load_seconds[-1]:.1f} s; "
        + ", ".join(f"{t:.1f}" for t in side.throughputs[-args.repeats :])
        + " tok/s"
    )


def perplexity(llm: Any, tokenizer: Any) -> tuple[float, int]:
    """exp(mean NLL) of :data:`TEXT` (BOS-free token ids) under ``llm``, and the number of tokens scored."""
    import vllm
    from vllm.inputs import TokensPrompt

    ids = list(tokenizer(TEXT, add_special_tokens=False)["input_ids"])
    params = vllm.SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=0)
    (output,) = llm.generate([TokensPrompt(prompt_token_ids=ids)], params, use_tqdm=False)
    scored = [
        position[token].logprob for token, position in zip(ids[1:], output.prompt_logprobs[1:], strict=True) if position
    ]
    return math.exp(-statistics.fmean(scored)), len(scored)


def cut_at_eos(tokens: list[int], eos: set[int]) -> list[int]:
    for index, token in enumerate(tokens):
        if token in eos:
            return tokens[: index + 1]
    return tokens


@dataclass(frozen=True)
class Agreement:
    matched_prefix: float
    """Sum of leading identical tokens / sum of reference lengths (the headline figure)."""
    mean_prefix: float
    """Mean over prompts of leading identical tokens / reference length."""
    positionwise: float
    """Identical tokens at the same position (past divergences too) / sum of the longer lengths."""
    identical: int
    prompts: int


def agreement(reference: list[list[int]], other: list[list[int]], eos: set[int]) -> Agreement:
    prefix_total = length_total = same_total = longest_total = identical = 0
    fractions = []
    for ref_raw, oth_raw in zip(reference, other, strict=True):
        ref, oth = cut_at_eos(ref_raw, eos), cut_at_eos(oth_raw, eos)
        prefix = next((i for i, (a, b) in enumerate(zip(ref, oth, strict=False)) if a != b), min(len(ref), len(oth)))
        prefix_total += prefix
        length_total += len(ref)
        fractions.append(prefix / len(ref))
        same_total += sum(a == b for a, b in zip(ref, oth, strict=False))
        longest_total += max(len(ref), len(oth))
        identical += ref == oth
    return Agreement(
        matched_prefix=prefix_total / length_total,
        mean_prefix=statistics.fmean(fractions),
        positionwise=same_total / longest_total,
        identical=identical,
        prompts=len(reference),
    )


def report(console: Console, base: Side, quant: Side, agree: Agreement, args: argparse.Namespace) -> None:
    table = Table(title=f"bf16 vs {quant.name}: {args.prompts} prompts x {args.max_tokens} tokens, greedy, batched")
    for column in ("model", "weights MiB", "tok/s median", "tok/s samples", "load s", "perplexity"):
        table.add_column(column, justify="right")
    for side in (base, quant):
        table.add_row(
            side.name,
            f"{side.weight_bytes / (1 << 20):.1f}",
            f"{side.throughput:.1f}",
            " ".join(f"{t:.0f}" for t in side.throughputs),
            f"{statistics.median(side.load_seconds):.0f}",
            f"{side.perplexity:.3f}",
        )
    console.print(table)
    for side in (base, quant):
        if not side.deterministic:
            console.print(f"[yellow]warning: {side.name} greedy outputs differed between batches[/]")
    print(
        f"bf16 perplexity={base.perplexity:.3f} {quant.name} perplexity={quant.perplexity:.3f} "
        f"(ratio {quant.perplexity / base.perplexity:.3f}; {base.text_tokens} tokens)"
    )
    print(f"bf16 tok/s={base.throughput:.1f} {quant.name} tok/s={quant.throughput:.1f} (medians)")
    print(
        f"greedy agreement: matched-prefix {agree.matched_prefix:.3f} overall, {agree.mean_prefix:.3f} mean per "
        f"prompt; position-by-position {agree.positionwise:.3f}; {agree.identical}/{agree.prompts} prompts identical"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--prompts", type=int, default=16, help=f"chat prompts per batch (at most {len(QUESTIONS)})")
    parser.add_argument("--max-tokens", type=int, default=64, help="new tokens per prompt (EOS ignored)")
    parser.add_argument("--rounds", type=int, default=2, help="bf16/quantized engine pairs, alternating")
    parser.add_argument("--repeats", type=int, default=2, help="timed batches per engine")
    parser.add_argument("--scheme", choices=SCHEMES, default="w8a8", help="quantization scheme compared to bf16")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="quorum config (its model_cache_dir is used)")
    args = parser.parse_args()
    if not 1 <= args.prompts <= len(QUESTIONS) or args.max_tokens < 1 or args.rounds < 1 or args.repeats < 1:
        parser.error(f"need 1 <= --prompts <= {len(QUESTIONS)} and --max-tokens, --rounds, --repeats >= 1")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # keep stdout readable; set it to INFO to see more
    console = Console(width=120)
    source = prepare_embedded(EMBEDDED, load_config(args.config).model_cache_dir)

    with tempfile.TemporaryDirectory(prefix="quorum-bench-quantization-") as scratch:
        console.print(f"[bold]quantizing[/] {source} ({args.scheme})")
        quantized = quantize_checkpoint(source, Path(scratch) / args.scheme, args.scheme)
        console.print(quantized.summary())
        base = Side("bf16", source, weights_bytes(source))
        quant = Side(args.scheme, quantized.output_dir, quantized.output_bytes)
        for round_index in range(args.rounds):
            console.print(f"[bold]round {round_index + 1}/{args.rounds}[/]")
            for side in (base, quant):
                run_engine(side, args, console, with_perplexity=round_index == 0)

        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
        vocab = tokenizer.get_vocab()
        eos = {tokenizer.eos_token_id} | {vocab[name] for name in ("<|im_end|>", "<|endoftext|>") if name in vocab}
        agree = agreement(base.tokens, quant.tokens, eos)
        report(console, base, quant, agree, args)

    leftover = running(descendants())
    if leftover:
        console.print(f"[yellow]warning: processes still running at the end: {leftover}[/]")
    size_ratio = base.weight_bytes / quant.weight_bytes
    throughput_ratio = quant.throughput / base.throughput
    print(
        f"quantization size_ratio={size_ratio:.3f} throughput_ratio={throughput_ratio:.3f} "
        f"greedy_agreement={agree.matched_prefix:.3f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
