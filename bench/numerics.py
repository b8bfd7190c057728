"""CPU engine dtype: float32 vs bfloat16 on the embedded model — agreement with a float32 reference, and speed.

Run ``python -m bench.numerics``. The same prepared checkpoint (SmolLM2-135M-Instruct) is
loaded by real in-process ``vllm.LLM`` engines, one at a time, alternating float32 and
bfloat16 for ``--rounds`` rounds with identical engine arguments otherwise (those of
``bench.quantization``: eager, no prefix caching, no chunked prefill). For each dtype:

- reference agreement: the 16 prompts of :data:`quorum.cluster.reference.REFERENCE_PROMPTS`
  answered greedily (24 tokens) and compared with HF transformers float32 greedy answers on
  the same weights, by their first six words — exactly what ``quorum models verify`` checks
  against a running cluster;
- throughput: ``--prompts`` chat prompts x ``--max-tokens`` new tokens (EOS ignored) as one
  batch, median tok/s over every timed batch of every round;
- perplexity on ``bench.quantization``'s fixed English text.

The last line is ``numerics float32_agreement=<k>/16 bfloat16_agreement=<k>/16
throughput_ratio=<float32 tok/s / bfloat16 tok/s>``; the ratio is measured in one run, so
machine load moves both sides alike. Which prompts bfloat16 flips depends on the CPU's
kernels: run it on the machine you serve from.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from rich.console import Console
from rich.table import Table

from quorum.cluster.config import DEFAULT_CONFIG, load_config
from quorum.cluster.models import prepare_embedded
from quorum.cluster.quantize import weights_bytes
from quorum.cluster.reference import MAX_TOKENS, REFERENCE_PROMPTS, ReferenceReport, compare, reference_answers

from .processes import descendants, running
from .quantization import EMBEDDED, QUESTIONS, Side, chat_token_ids, run_engine

DTYPES = ("float32", "bfloat16")


def served_answers(llm: Any) -> list[str]:
    """Greedy answers of an in-process engine to the reference prompts, tokenized as the server does."""
    import vllm
    from vllm.inputs import TokensPrompt

    prompts = [TokensPrompt(prompt_token_ids=ids) for ids in chat_token_ids(llm.get_tokenizer(), REFERENCE_PROMPTS)]
    greedy = vllm.SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS)
    return [output.outputs[0].text for output in llm.generate(prompts, greedy, use_tqdm=False)]


def report(console: Console, sides: dict[str, Side], reports: dict[str, ReferenceReport]) -> None:
    table = Table(title="engine dtype on CPU: agreement with HF float32 greedy, and throughput")
    for column in ("dtype", "agreement", "tok/s median", "tok/s samples", "perplexity"):
        table.add_column(column, justify="right")
    for name, side in sides.items():
        table.add_row(
            name,
            f"{reports[name].agreed}/{reports[name].total}",
            f"{side.throughput:.1f}",
            " ".join(f"{t:.0f}" for t in side.throughputs),
            f"{side.perplexity:.3f}",
        )
    console.print(table)
    for name, result in reports.items():
        for check in result.checks:
            if not check.agrees:
                console.print(
                    f"  {name} differs on {check.prompt!r}: reference {check.reference.strip()[:60]!r}, "
                    f"served {check.served.strip()[:60]!r}",
                    highlight=False,
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--prompts", type=int, default=16, help=f"chat prompts per batch (at most {len(QUESTIONS)})")
    parser.add_argument("--max-tokens", type=int, default=64, help="new tokens per prompt (EOS ignored)")
    parser.add_argument("--rounds", type=int, default=2, help="float32/bfloat16 engine pairs, alternating")
    parser.add_argument("--repeats", type=int, default=2, help="timed batches per engine")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="quorum config (its model_cache_dir is used)")
    args = parser.parse_args()
    if not 1 <= args.prompts <= len(QUESTIONS) or args.max_tokens < 1 or args.rounds < 1 or args.repeats < 1:
        parser.error(f"need 1 <= --prompts <= {len(QUESTIONS)} and --max-tokens, --rounds, --repeats >= 1")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    console = Console(width=120)
    source = prepare_embedded(EMBEDDED, load_config(args.config).model_cache_dir)

    console.print("[bold]reference[/]: HF transformers float32 greedy")
    reference = reference_answers(source, REFERENCE_PROMPTS, MAX_TOKENS)
    sides = {name: Side(name, source, weights_bytes(source)) for name in DTYPES}
    answers: dict[str, list[str]] = {}
    for round_index in range(args.rounds):
        console.print(f"[bold]round {round_index + 1}/{args.rounds}[/]")
        for name, side in sides.items():

            def collect(llm: Any, name: str = name) -> None:
                answers.setdefault(name, served_answers(llm))

            run_engine(side, args, console, with_perplexity=round_index == 0, dtype=name, extra=collect)

    reports = {name: compare(name, str(source), REFERENCE_PROMPTS, reference, answers[name]) for name in DTYPES}
    report(console, sides, reports)
    leftover = running(descendants())
    if leftover:
        console.print(f"[yellow]warning: processes still running at the end: {leftover}[/]")
    ratio = sides["float32"].throughput / sides["bfloat16"].throughput
    print(
        f"numerics float32_agreement={reports['float32'].agreed}/{reports['float32'].total} "
        f"bfloat16_agreement={reports['bfloat16'].agreed}/{reports['bfloat16'].total} throughput_ratio={ratio:.3f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
