"""What the compile-time check (cluster/grammar_check.py) adds to a constrained request.

Run ``python -m bench.constraint_check``. With the embedded model's tokenizer, for ``--constraints``
distinct ordinary constraints (tool-call-like JSON schemas, a regex, a choice list; each new, as a
client's first request with it would be):

- ``engine_compile``: xgrammar compiling it in this process, as the engine does anyway for every
  constrained request (cache off);
- ``check_new``: :meth:`GrammarChecker.check` on it the first time: static bounds, a message to the
  helper process, a forked child compiling it, the reply;
- ``check_repeat``: the same check again (the LRU answers; every later ReAct step, a client's fixed schema).

Prints the medians and ``check_new / engine_compile``: what a new constraint costs before the engine
sees it, relative to what the engine then spends compiling it itself. Both sides are measured in one
run, so machine load moves them alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

from quorum.cluster.config import DEFAULT_CONFIG, load_config
from quorum.cluster.grammar_check import CompileJob, GrammarChecker, choice_grammar
from quorum.cluster.models import resolve_source
from quorum.cluster.types import OutputConstraint

VOCAB_SIZE = 49152  # SmolLM2's


def constraints(count: int) -> list[OutputConstraint]:
    made = []
    for i in range(count):
        kind = i % 3
        if kind == 0:
            schema = {
                "type": "object",
                "properties": {
                    f"city_{i}": {"type": "string"},
                    "days": {"type": "integer", "minimum": 1, "maximum": 14},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": [f"city_{i}"],
            }
            made.append(OutputConstraint(json_schema=json.dumps(schema)))
        elif kind == 1:
            made.append(OutputConstraint(regex=rf"\d{{3}}-\d{{4}}-{i}"))
        else:
            made.append(OutputConstraint(choice=(f"yes {i}", f"no {i}", "maybe")))
    return made


def engine_compile_s(compiler: object, constraint: OutputConstraint) -> float:
    job = CompileJob.of(constraint)
    started = time.perf_counter()
    if job.kind == "json":
        compiler.compile_json_schema(job.spec, any_whitespace=True)  # type: ignore[attr-defined]
    elif job.kind == "regex":
        compiler.compile_regex(job.spec)  # type: ignore[attr-defined]
    else:
        compiler.compile_grammar(choice_grammar(list(job.spec)))  # type: ignore[attr-defined]
    return time.perf_counter() - started


async def run(count: int) -> None:
    import xgrammar
    from transformers import AutoTokenizer

    config = load_config(DEFAULT_CONFIG)
    tokenizer_dir = resolve_source(config.models[0], config.model_cache_dir, prepare=True)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    info = xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=VOCAB_SIZE)
    compiler = xgrammar.GrammarCompiler(info, max_threads=1, cache_enabled=False)
    checker = GrammarChecker(config.constraints, tokenizer_dir, VOCAB_SIZE, trust_remote_code=False)
    await checker.start()
    engine, new, repeat = [], [], []
    try:
        for constraint in constraints(count):
            engine.append(engine_compile_s(compiler, constraint))
            started = time.perf_counter()
            await checker.check(constraint)
            new.append(time.perf_counter() - started)
            started = time.perf_counter()
            await checker.check(constraint)
            repeat.append(time.perf_counter() - started)
    finally:
        checker.close()
    medians = {
        name: statistics.median(values) for name, values in (("engine", engine), ("new", new), ("repeat", repeat))
    }
    print(
        f"constraint_check constraints={count} engine_compile_ms={medians['engine'] * 1e3:.2f} "
        f"check_new_ms={medians['new'] * 1e3:.2f} check_repeat_ms={medians['repeat'] * 1e3:.3f} "
        f"new_over_engine_compile={medians['new'] / medians['engine']:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--constraints", type=int, default=30, help="distinct constraints (a third of each kind)")
    args = parser.parse_args()
    asyncio.run(run(args.constraints))


if __name__ == "__main__":
    main()
