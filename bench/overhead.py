"""Front-door overhead: the same vLLM engine raw in-process vs behind quorum's gRPC gateway.

Run ``python -m bench.overhead``. In one run, with the same model, engine
arguments (``quorum.cluster.engine.engine_args``), prompts and concurrency:

A. raw: an in-process ``AsyncLLM`` streaming DELTA outputs;
B. gateway: ``LocalCluster`` (Ray, Serve, gateway, LLM server, vLLM) driven with
   ``AsyncQuorumClient.generate_stream`` over gRPC on loopback.

A runs first and its engine is shut down (processes gone) before B starts. Each
side is warmed up with prompts that differ from the measured ones. Prefix caching
is off on both sides so cache hits cannot differ. Decoding is greedy
(temperature 0), so both sides should generate the same tokens; a warning says if not.

Per side: output throughput = completion tokens / wall seconds of the measured
phase; TTFT = time from sending a request (after its concurrency slot frees) to
its first non-empty text delta, p50 and p95; wall = measured phase duration.
The last stdout line is ``overhead throughput_ratio=<gateway/raw tok/s>
ttft_p50_added_ms=<gateway p50 - raw p50>``: a ratio near 1 and a few added
milliseconds mean the front door costs little. Absolute numbers move with
machine load; the ratios compare runs taken minutes apart on the same machine.
When one engine step takes longer than the front door adds (slow CPU engines),
TTFT mostly measures which step a request lands in, so its difference is noise
of about one step either way; ``--concurrency 1`` isolates the added latency.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table
from vllm.v1.engine.async_llm import AsyncLLM

from quorum.cluster.config import DEFAULT_CONFIG, QuorumConfig, load_config
from quorum.cluster.engine import engine_args, sampling_params
from quorum.cluster.models import resolve_source
from quorum.cluster.types import SamplingOptions
from quorum.services.client import AsyncQuorumClient
from quorum.services.local import LocalCluster
from quorum.v1 import inference_pb2 as pb

from .processes import descendants, wait_gone

TOPICS = ("rivers", "volcanoes", "bread", "chess", "bridges", "bees", "glaciers", "lighthouses")
STYLES = ("The history of {} began", "A field guide to {}, part {}:", "Ten facts about {} (list {}):", "Dear diary, {}")


@dataclass(frozen=True)
class Sample:
    ttft_s: float
    completion_tokens: int
    prompt_tokens: int
    cached_tokens: int


@dataclass(frozen=True)
class Result:
    name: str
    wall_s: float
    samples: list[Sample]

    def total(self, field: str) -> int:
        return sum(int(getattr(s, field)) for s in self.samples)

    @property
    def throughput(self) -> float:
        return self.total("completion_tokens") / self.wall_s

    def ttft_ms(self, percent: int) -> float:
        values = [s.ttft_s * 1000 for s in self.samples]
        return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


Send = Callable[[str], Awaitable[Sample]]


def prompts(count: int, offset: int) -> list[str]:
    """``count`` distinct plain-text prompts; different offsets give disjoint sets."""
    out = []
    for i in range(offset, offset + count):
        style, topic = STYLES[i % len(STYLES)], TOPICS[(i // len(STYLES)) % len(TOPICS)]
        out.append(f"[{i}] " + style.format(topic, i))
    return out


async def run_load(name: str, send: Send, batch: list[str], concurrency: int) -> Result:
    slots = asyncio.Semaphore(concurrency)

    async def one(prompt: str) -> Sample:
        async with slots:
            return await send(prompt)

    start = time.perf_counter()
    samples = await asyncio.gather(*(one(p) for p in batch))
    return Result(name, time.perf_counter() - start, list(samples))


async def raw_side(config: QuorumConfig, args: argparse.Namespace) -> tuple[Result, set[int]]:
    """The raw measurement and the processes the engine started (to check they are gone)."""
    model = config.models[0]
    weights = resolve_source(model, config.model_cache_dir)
    engine = AsyncLLM.from_engine_args(engine_args(model, weights, model.tokenizer))
    params = sampling_params(SamplingOptions(temperature=0.0), args.max_tokens, stream=True)

    async def send(prompt: str) -> Sample:
        start, ttft, tokens, prompt_tokens, cached = time.perf_counter(), 0.0, 0, 0, 0
        async for output in engine.generate(prompt, params, uuid.uuid4().hex):
            if not ttft and any(c.text for c in output.outputs):
                ttft = time.perf_counter() - start
            tokens += sum(len(c.token_ids) for c in output.outputs)
            if output.finished:
                prompt_tokens, cached = len(output.prompt_token_ids or ()), output.num_cached_tokens or 0
        return Sample(ttft, tokens, prompt_tokens, cached)

    try:
        await run_load("warm-up", send, prompts(args.warmup, args.requests), args.concurrency)
        return await run_load("raw AsyncLLM", send, prompts(args.requests, 0), args.concurrency), descendants()
    finally:
        engine.shutdown()


async def gateway_load(target: str, args: argparse.Namespace) -> Result:
    async with AsyncQuorumClient(target, timeout=600) as client:

        async def send(prompt: str) -> Sample:
            start, ttft, usage = time.perf_counter(), 0.0, pb.Usage()
            async for response in client.generate_stream(prompt, temperature=0.0, max_tokens=args.max_tokens):
                if not ttft and any(c.text for c in response.choices):
                    ttft = time.perf_counter() - start
                if response.HasField("usage"):
                    usage = response.usage
            return Sample(ttft, usage.completion_tokens, usage.prompt_tokens, usage.cached_prompt_tokens)

        await run_load("warm-up", send, prompts(args.warmup, args.requests), args.concurrency)
        return await run_load("gRPC gateway", send, prompts(args.requests, 0), args.concurrency)


def bench_config(path: str) -> QuorumConfig:
    """The config's default model only, prefix caching off, a private local Ray on 2 CPUs, a free port."""
    config = load_config(path)
    model = config.model(config.default_model_id)
    engine = model.engine.model_copy(update={"enable_prefix_caching": False})
    return config.model_copy(
        update={
            "models": [model.model_copy(update={"engine": engine})],
            "gateway": config.gateway.model_copy(update={"grpc_port": 0, "http_port": 0, "default_model": None}),
            "ray": config.ray.model_copy(update={"address": None, "num_cpus": 2, "app_name": "quorum-bench"}),
        }
    )


def report(console: Console, raw: Result, gateway: Result) -> tuple[float, float]:
    table = Table(title="front-door overhead (prefix caching off on both sides)")
    for column in ("side", "requests", "completion tok", "prompt tok", "cached tok", "wall s", "tok/s"):
        table.add_column(column, justify="right")
    table.add_column("TTFT p50 ms", justify="right")
    table.add_column("TTFT p95 ms", justify="right")
    for r in (raw, gateway):
        table.add_row(
            r.name,
            str(len(r.samples)),
            str(r.total("completion_tokens")),
            str(r.total("prompt_tokens")),
            str(r.total("cached_tokens")),
            f"{r.wall_s:.2f}",
            f"{r.throughput:.1f}",
            f"{r.ttft_ms(50):.1f}",
            f"{r.ttft_ms(95):.1f}",
        )
    console.print(table)
    for field in ("completion_tokens", "prompt_tokens"):
        if raw.total(field) != gateway.total(field):
            console.print(f"[yellow]warning: {field} differ: raw {raw.total(field)} vs gateway {gateway.total(field)}")
    ratio = gateway.throughput / raw.throughput
    added = gateway.ttft_ms(50) - raw.ttft_ms(50)
    console.print(
        f"throughput ratio (gateway/raw) {ratio:.3f}; TTFT p50 added {added:.1f} ms, "
        f"p95 added {gateway.ttft_ms(95) - raw.ttft_ms(95):.1f} ms; wall ratio {gateway.wall_s / raw.wall_s:.3f}"
    )
    return ratio, added


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=64, help="measured requests per side")
    parser.add_argument("--max-tokens", type=int, default=64, help="max_tokens of every request")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight at once")
    parser.add_argument("--warmup", type=int, default=8, help="warm-up requests per side (other prompts)")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="quorum config; its default model is measured")
    args = parser.parse_args()
    if args.requests < 2 or args.concurrency < 1 or args.max_tokens < 1:
        parser.error("need --requests >= 2, --concurrency >= 1 and --max-tokens >= 1")
    console = Console(width=120)
    config = bench_config(args.config)
    environ = dict(os.environ)  # vLLM may set variables for its workers; B starts from the same environment

    console.print(f"[bold]A: raw AsyncLLM[/] ({args.requests} requests, concurrency {args.concurrency})")
    raw, engine_pids = asyncio.run(raw_side(config, args))
    wait_gone(engine_pids, "the raw engine", console)
    os.environ.clear()
    os.environ.update(environ)

    console.print("[bold]B: gRPC gateway[/] (LocalCluster -> Ray Serve -> LLMServer -> vLLM)")
    with LocalCluster(config) as cluster:
        cluster.wait_ready(timeout_s=config.models[0].engine.startup_timeout_s)
        gateway = asyncio.run(gateway_load(cluster.target, args))
        cluster_pids = descendants()  # Ray, its workers and their engine processes
    wait_gone(cluster_pids, "the cluster", console)

    ratio, added = report(console, raw, gateway)
    print(f"overhead throughput_ratio={ratio:.3f} ttft_p50_added_ms={added:.1f}", flush=True)


if __name__ == "__main__":
    main()
