"""Cluster-wide prefix cache: prefix-aware routing vs load-only routing over two replicas.

Run ``python -m bench.prefix_routing``. A multi-tenant workload: ``--tenants`` long system prompts
(~``--prefix-words`` words each, ~1.3 tokens a word), each shared by many users asking different
questions, sent in a shuffled order (fixed seed) at ``--concurrency``, a few output tokens each (the
prompt's prefill is what the cache saves). Three clusters, one after the other, each started and
stopped here, all on the embedded model:

* single: one replica whose KV cache is as large as the two replicas' together (the cluster's
  cache as if it were one) — the cached-token baseline;
* prefix: two replicas, quorum's prefix-aware router;
* load: two replicas, Ray Serve's power-of-two-choices router (load only).

Each replica's KV cache holds about ``--kv-share`` of all tenants' prefixes, so a replica that sees
every tenant keeps evicting them. Each run first sends every tenant's prompt once (warm-up, not
measured). Reported per run: cached prompt tokens / prompt tokens (from ``usage``), TTFT p50/p95
(first streamed text), wall time. Last line:
``prefix_routing cached_ratio_vs_single=<prefix cached ratio / single cached ratio>
ttft_p50_speedup=<load TTFT p50 / prefix TTFT p50>``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from quorum.client.sdk import AsyncQuorumClient
from quorum.cluster.config import DEFAULT_CONFIG, QuorumConfig, load_config
from quorum.services.local import LocalCluster

from .processes import descendants, wait_gone

GIB = 1 << 30
# SmolLM2-135M: 30 layers x 3 KV heads x 64 dims x (K and V) x 2 bytes (bf16) per token.
KV_BYTES_PER_TOKEN = 30 * 3 * 64 * 2 * 2
WORDS = (
    "account",
    "billing",
    "invoice",
    "shipping",
    "warranty",
    "refund",
    "ticket",
    "order",
    "parcel",
    "delivery",
    "support",
    "contract",
    "subscription",
    "upgrade",
    "password",
    "login",
    "device",
    "battery",
    "screen",
    "charger",
    "firmware",
    "update",
    "manual",
    "policy",
)
QUESTIONS = (
    "How do I reset my password?",
    "Where is my parcel?",
    "Can I return a broken charger?",
    "What does the warranty cover?",
    "How do I upgrade my plan?",
    "Why was I billed twice?",
    "Can I change my delivery address?",
    "How long does a refund take?",
)


@dataclass(frozen=True)
class Sample:
    ttft_s: float
    prompt_tokens: int
    cached_tokens: int


@dataclass(frozen=True)
class Run:
    name: str
    samples: list[Sample]
    wall_s: float

    @property
    def cached_ratio(self) -> float:
        return sum(s.cached_tokens for s in self.samples) / max(1, sum(s.prompt_tokens for s in self.samples))

    def ttft_ms(self, percent: int) -> float:
        values = [s.ttft_s * 1000 for s in self.samples]
        return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


def system_prompt(tenant: int, words: int) -> str:
    rng = random.Random(tenant)
    body = " ".join(rng.choice(WORDS) for _ in range(words))
    return f"You are the assistant of company number {tenant}. Its handbook follows. {body}"


def workload(args: argparse.Namespace) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(warm-up, measured) lists of (system prompt, question)."""
    systems = [system_prompt(t, args.prefix_words) for t in range(args.tenants)]
    warmup = [(s, "Hello!") for s in systems]
    rng = random.Random(args.seed)
    measured = [(rng.choice(systems), f"{rng.choice(QUESTIONS)} (user {i})") for i in range(args.requests)]
    return warmup, measured


def cluster_config(base: QuorumConfig, replicas: int, policy: str, kv_tokens: int) -> QuorumConfig:
    model = base.model(base.default_model_id)
    engine = model.engine.model_copy(
        update={"max_model_len": 1024, "kv_cache_memory_gib": kv_tokens * KV_BYTES_PER_TOKEN / GIB}
    )
    deployment = model.deployment.model_copy(
        update={
            "num_replicas": replicas,
            "routing": model.deployment.routing.model_copy(update={"policy": policy}),
        }
    )
    return base.model_copy(
        update={
            "models": [model.model_copy(update={"engine": engine, "deployment": deployment})],
            "gateway": base.gateway.model_copy(update={"grpc_port": 0, "http_port": 0, "default_model": None}),
            "ray": base.ray.model_copy(update={"address": None, "num_cpus": 4, "app_name": "quorum-bench"}),
        }
    )


async def drive(target: str, name: str, args: argparse.Namespace) -> Run:
    warmup, measured = workload(args)
    slots = asyncio.Semaphore(args.concurrency)
    async with AsyncQuorumClient(target, timeout=600) as client:

        async def one(system: str, question: str) -> Sample:
            async with slots:
                start, ttft, prompt, cached = time.perf_counter(), 0.0, 0, 0
                messages = [("system", system), ("user", question)]
                async for response in client.chat_stream(messages, temperature=0.0, max_tokens=args.max_tokens):
                    if not ttft and any(c.text for c in response.choices):
                        ttft = time.perf_counter() - start
                    if response.HasField("usage"):
                        prompt, cached = response.usage.prompt_tokens, response.usage.cached_prompt_tokens
                return Sample(ttft or time.perf_counter() - start, prompt, cached)

        for system, question in warmup:
            await one(system, question)
        start = time.perf_counter()
        samples = await asyncio.gather(*(one(s, q) for s, q in measured))
        return Run(name, list(samples), time.perf_counter() - start)


def measure(
    base: QuorumConfig,
    name: str,
    replicas: int,
    policy: str,
    kv_tokens: int,
    args: argparse.Namespace,
    console: Console,
) -> Run:
    console.print(f"[bold]{name}[/]: {replicas} replica(s), {policy} routing, {kv_tokens} KV tokens each")
    config = cluster_config(base, replicas, policy, kv_tokens)
    with LocalCluster(config) as cluster:
        cluster.wait_ready(timeout_s=config.models[0].engine.startup_timeout_s)
        run = asyncio.run(drive(cluster.target, name, args))
        pids = descendants()
    wait_gone(pids, f"the {name} cluster", console)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tenants", type=int, default=12, help="distinct shared system prompts")
    parser.add_argument("--prefix-words", type=int, default=650, help="words per system prompt (~1.3 tokens each)")
    parser.add_argument("--requests", type=int, default=96, help="measured requests per run")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight at once")
    parser.add_argument("--max-tokens", type=int, default=4, help="output tokens per request")
    parser.add_argument("--kv-share", type=float, default=0.6, help="one replica's KV cache / all prefixes' tokens")
    parser.add_argument("--seed", type=int, default=0, help="request order")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="quorum config; its default model is used")
    args = parser.parse_args()
    if args.tenants < 2 or args.requests < 2 or args.concurrency < 1 or not args.kv_share > 0:
        parser.error("need --tenants >= 2, --requests >= 2, --concurrency >= 1 and --kv-share > 0")
    console = Console(width=120)
    base = load_config(args.config)
    prefix_tokens = int(args.tenants * args.prefix_words * 1.3)
    # Never less than one full context (vLLM refuses to start otherwise).
    kv_tokens = max(1024 + 128, int(prefix_tokens * args.kv_share))

    single = measure(base, "single", 1, "prefix_aware", 2 * kv_tokens, args, console)
    prefix = measure(base, "prefix", 2, "prefix_aware", kv_tokens, args, console)
    load = measure(base, "load", 2, "power_of_two", kv_tokens, args, console)

    table = Table(
        title=f"{args.tenants} tenants x ~{prefix_tokens // args.tenants} prefix tokens, {args.requests} requests"
    )
    for column in ("run", "cached / prompt tokens", "TTFT p50 ms", "TTFT p95 ms", "wall s"):
        table.add_column(column, justify="right")
    for run in (single, prefix, load):
        table.add_row(
            run.name, f"{run.cached_ratio:.3f}", f"{run.ttft_ms(50):.0f}", f"{run.ttft_ms(95):.0f}", f"{run.wall_s:.1f}"
        )
    console.print(table)
    ratio = prefix.cached_ratio / max(single.cached_ratio, 1e-9)
    speedup = load.ttft_ms(50) / max(prefix.ttft_ms(50), 1e-9)
    print(f"prefix_routing cached_ratio_vs_single={ratio:.3f} ttft_p50_speedup={speedup:.3f}", flush=True)


if __name__ == "__main__":
    main()
