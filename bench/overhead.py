"""Front-door overhead: the same vLLM engine raw in-process vs behind quorum's gRPC and /v1 front doors.

Run ``python -m bench.overhead``. In one run, with the same model, engine
arguments (``quorum.cluster.engine.engine_args``), prompts and max_tokens, at
every concurrency of ``--concurrency`` (default 1, 16 and 64):

A. raw: an in-process ``AsyncLLM`` streaming DELTA outputs;
B. gRPC: ``LocalCluster`` (Ray, Serve, gateway, LLM server, vLLM) driven with
   ``AsyncQuorumClient.generate_stream`` over gRPC on loopback;
C. /v1: the same cluster driven with streaming ``POST /v1/completions`` (httpx,
   server-sent events through Serve's HTTP proxy and the gateway's FastAPI app).

One raw engine covers every concurrency of A, then it is shut down (processes
gone) and one cluster covers B and C (the two protocols alternate per
concurrency, so load drift hits both alike). Each side and protocol is warmed up
once with prompts that differ from the measured ones. Prefix caching is off on
both sides so cache hits cannot differ. Decoding is greedy (temperature 0), so
every side should generate the same tokens; a warning says if not.

Request counts: by default ``max(12, min(4 * concurrency, 128))`` per point
(12 at concurrency 1, 64 at 16, 128 at 64) with ``--max-tokens 32``: enough
requests for a p50/p95 and for several full batches at each concurrency, small
enough that the whole bench (two engine starts, 9 points) takes about 10
minutes on a 2-core machine where one engine decodes ~20 tok/s unbatched.

Per point: output throughput = completion tokens / wall seconds of the phase;
TTFT = time from sending a request (after its concurrency slot frees) to its
first non-empty text delta, p50 and p95; the 1-minute load average when the
phase started (other work on the machine moves every figure). Per phase the CPU
seconds of every process of the run (psutil, user + system), minus what the same
processes burn idle in as long (measured for ``--idle-s`` after each side's
warm-up), are divided by the completion tokens: CPU ms per streamed token for the
client (this process, which also hosts the raw engine's front end on side A), the
gateway replica, the LLM-server replica, Serve's HTTP proxy, raylet, GCS, other
Ray processes and vLLM's engine processes (EngineCore and its workers).

``--compare-floating`` measures every cluster point twice: as deployed (quorum
keeps its gateway, LLM replica and vLLM's scheduler process off the cores vLLM
binds its workers to, see ``quorum.cluster.affinity``) and with those processes
floating over every core again (Ray's default), the order alternating per
concurrency; the last line only counts the deployed points.

``--profile DIR`` runs ``py-spy record --nonblocking`` on the gateway and the
LLM-server replica during the gRPC phase at concurrency 16 (or the middle
concurrency given) and writes speedscope files plus their top frames (self
samples) to ``DIR``.

The last stdout line is ``overhead throughput_ratio=<worst front/raw tok/s>
ttft_p50_added_ms=<worst front p50 - raw p50>`` over every protocol and
concurrency: a ratio near 1 and a few added milliseconds mean the front doors
cost little. At high concurrency TTFT is decided by which engine step a request
lands in, on both sides, so its difference there is noise of about one step
either way; concurrency 1 isolates the added latency.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from ray import serve
from rich.console import Console
from rich.table import Table
from vllm.v1.engine.async_llm import AsyncLLM

from quorum.client import AsyncQuorumClient
from quorum.cluster.affinity import pin
from quorum.cluster.config import DEFAULT_CONFIG, QuorumConfig, load_config
from quorum.cluster.engine import engine_args, sampling_params
from quorum.cluster.models import resolve_source
from quorum.cluster.types import SamplingOptions
from quorum.services.local import LocalCluster
from quorum.v1 import inference_pb2 as pb

from .processes import descendants, wait_gone

TOPICS = ("rivers", "volcanoes", "bread", "chess", "bridges", "bees", "glaciers", "lighthouses")
STYLES = ("The history of {} began", "A field guide to {}, part {}:", "Ten facts about {} (list {}):", "Dear diary, {}")
FLOATING = "floating"
PROTOCOLS = ("raw", "gRPC", "/v1", f"gRPC {FLOATING}", f"/v1 {FLOATING}")
ROLES = ("client", "gateway", "llm replica", "serve proxy", "raylet", "gcs", "other ray", "engine")
WARMUP_CONCURRENCY = 8


@dataclass(frozen=True)
class Sample:
    ttft_s: float
    completion_tokens: int
    prompt_tokens: int
    cached_tokens: int


@dataclass(frozen=True)
class Result:
    protocol: str
    concurrency: int
    wall_s: float
    load1: float
    samples: list[Sample]
    cpu_s: dict[str, float] = field(default_factory=dict)
    idle_cpu_s: dict[str, float] = field(default_factory=dict)

    def total(self, name: str) -> int:
        return sum(int(getattr(s, name)) for s in self.samples)

    @property
    def throughput(self) -> float:
        return self.total("completion_tokens") / self.wall_s

    def ttft_ms(self, percent: int) -> float:
        values = [s.ttft_s * 1000 for s in self.samples]
        return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]

    def cpu_ms_per_token(self, role: str) -> float:
        """CPU ms per completion token of ``role``'s processes, above what they burn idle in as long."""
        above_idle = self.cpu_s.get(role, 0.0) - self.idle_cpu_s.get(role, 0.0)
        return 1000 * above_idle / max(1, self.total("completion_tokens"))


Send = Callable[[str], Awaitable[Sample]]


def prompts(count: int, offset: int) -> list[str]:
    """``count`` distinct plain-text prompts; different offsets give disjoint sets."""
    out = []
    for i in range(offset, offset + count):
        style, topic = STYLES[i % len(STYLES)], TOPICS[(i // len(STYLES)) % len(TOPICS)]
        out.append(f"[{i}] " + style.format(topic, i))
    return out


def requests_for(concurrency: int, args: argparse.Namespace) -> int:
    return int(args.requests) if args.requests else max(12, min(4 * concurrency, 128))


def role(proc: psutil.Process) -> str:
    """Which part of the serving path a process of this run is."""
    if proc.pid == os.getpid():
        return "client"
    cmdline = " ".join(proc.cmdline())
    if cmdline.startswith("VLLM::") or "spawn_main" in cmdline:  # vLLM's EngineCore and workers (titled or not)
        return "engine"
    if "ServeReplica" in cmdline:  # "ray::ServeReplica:<app>:<deployment>[.<method> while it runs one]"
        deployment = cmdline.rsplit(":", 1)[-1]
        return (
            "gateway"
            if deployment.startswith("gateway")
            else "llm replica"
            if deployment.startswith("llm-")
            else "other ray"
        )
    if "ProxyActor" in cmdline:
        return "serve proxy"
    if "/raylet" in cmdline.split(" ")[0]:
        return "raylet"
    if "/gcs_server" in cmdline.split(" ")[0]:
        return "gcs"
    return "other ray"


def cpu_by_pid() -> dict[int, tuple[str, float]]:
    """(role, CPU seconds so far) of this process and all its descendants."""
    out: dict[int, tuple[str, float]] = {}
    for proc in [psutil.Process(), *psutil.Process().children(recursive=True)]:
        try:
            times = proc.cpu_times()
            out[proc.pid] = (role(proc), times.user + times.system)
        except psutil.Error:
            continue
    return out


def cpu_delta(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    spent: dict[str, float] = {}
    for pid, (name, seconds) in after.items():
        spent[name] = spent.get(name, 0.0) + seconds - before.get(pid, (name, 0.0))[1]
    return spent


async def idle_rates(seconds: float) -> dict[str, float]:
    """CPU seconds per second of each role while no request runs (health probes, metrics, engine loops)."""
    before = cpu_by_pid()
    await asyncio.sleep(seconds)
    rates = {name: spent / seconds for name, spent in cpu_delta(before, cpu_by_pid()).items()}
    print("  idle CPU %/role: " + ", ".join(f"{k} {100 * v:.1f}" for k, v in sorted(rates.items())), flush=True)
    return rates


async def run_load(
    protocol: str, send: Send, batch: list[str], concurrency: int, idle: dict[str, float] | None = None
) -> Result:
    slots = asyncio.Semaphore(concurrency)

    async def one(prompt: str) -> Sample:
        async with slots:
            return await send(prompt)

    load1 = os.getloadavg()[0]
    before = cpu_by_pid()
    start = time.perf_counter()
    samples = await asyncio.gather(*(one(p) for p in batch))
    wall = time.perf_counter() - start
    spent = cpu_delta(before, cpu_by_pid())
    idle_spent = {name: rate * wall for name, rate in (idle or {}).items()}
    result = Result(protocol, concurrency, wall, load1, list(samples), spent, idle_spent)
    print(
        f"  {protocol} c{concurrency}: {result.throughput:.1f} tok/s, TTFT p50 {result.ttft_ms(50):.1f} ms, "
        f"load1 {load1:.2f}",
        flush=True,
    )
    return result


async def raw_side(config: QuorumConfig, args: argparse.Namespace) -> tuple[list[Result], set[int]]:
    """The raw measurements and the processes the engine started (to check they are gone)."""
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
        await run_load("warm-up", send, prompts(args.warmup, 10_000), WARMUP_CONCURRENCY)
        idle = await idle_rates(args.idle_s)
        results = []
        for concurrency in args.concurrency:
            batch = prompts(requests_for(concurrency, args), 0)
            results.append(await run_load("raw", send, batch, concurrency, idle))
        return results, descendants()
    finally:
        engine.shutdown()


def grpc_sender(client: AsyncQuorumClient, max_tokens: int) -> Send:
    async def send(prompt: str) -> Sample:
        start, ttft, usage = time.perf_counter(), 0.0, pb.Usage()
        async for response in client.generate_stream(prompt, temperature=0.0, max_tokens=max_tokens):
            if not ttft and any(c.text for c in response.choices):
                ttft = time.perf_counter() - start
            if response.HasField("usage"):
                usage = response.usage
        return Sample(ttft, usage.completion_tokens, usage.prompt_tokens, usage.cached_prompt_tokens)

    return send


def http_sender(http: httpx.AsyncClient, model: str, max_tokens: int) -> Send:
    async def send(prompt: str) -> Sample:
        body = {
            "model": model,
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        start, ttft, usage = time.perf_counter(), 0.0, dict[str, Any]()
        async with http.stream("POST", "/v1/completions", json=body) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                if "error" in event:
                    raise RuntimeError(f"/v1 stream failed: {event['error']}")
                if not ttft and any(c.get("text") for c in event.get("choices", ())):
                    ttft = time.perf_counter() - start
                usage = event.get("usage") or usage
        details = usage.get("prompt_tokens_details") or {}
        return Sample(
            ttft, usage.get("completion_tokens", 0), usage.get("prompt_tokens", 0), details.get("cached_tokens", 0)
        )

    return send


def find_replica(kind: str) -> int:
    for proc in psutil.Process().children(recursive=True):
        try:
            if role(proc) == kind:
                return proc.pid
        except psutil.Error:
            continue
    raise RuntimeError(f"no {kind} process found among this run's processes")


@contextmanager
def profiled(folder: Path | None, tag: str, console: Console) -> Iterator[None]:
    """py-spy on the gateway and LLM-server replicas for the duration of the block (None: no profiling)."""
    if folder is None:
        yield
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    folder.mkdir(parents=True, exist_ok=True)
    runs: list[tuple[str, Path, subprocess.Popen[bytes]]] = []
    for kind in ("gateway", "llm replica"):
        out = folder / f"{kind.replace(' ', '-')}-{tag}.speedscope.json"
        command = [spy, "record", "--nonblocking", "--rate", "100", "--format", "speedscope", "-o", str(out)]
        command += ["--pid", str(find_replica(kind))]
        runs.append((kind, out, subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)))
    try:
        yield
    finally:
        for kind, out, proc in runs:
            proc.send_signal(signal.SIGINT)
            try:
                _, err = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
            if not out.exists():
                console.print(f"[yellow]py-spy wrote no profile for the {kind}: {err.decode()[-500:]}")
                continue
            console.print(f"profile of the {kind}: {out}")
            print_top_frames(console, kind, out)


def print_top_frames(console: Console, kind: str, path: Path, count: int = 15) -> None:
    """The frames with the most self samples and the most total samples in a py-spy speedscope file."""
    data = json.loads(path.read_text())
    frames = data["shared"]["frames"]
    own: Counter[int] = Counter()
    total: Counter[int] = Counter()
    samples = 0
    for profile in data["profiles"]:
        for stack, weight in zip(profile["samples"], profile["weights"], strict=True):
            if not stack:
                continue
            samples += weight
            own[stack[-1]] += weight
            for index in set(stack):
                total[index] += weight
    table = Table(title=f"{kind}: top frames of {samples} samples ({path.name})")
    for column in ("self %", "total %", "frame"):
        table.add_column(column, justify="right" if column != "frame" else "left")
    ranked = sorted(own, key=lambda i: own[i], reverse=True)[:count]
    for index in ranked:
        frame = frames[index]
        where = f"{frame['name']} ({Path(frame.get('file', '?')).name}:{frame.get('line', '?')})"
        table.add_row(f"{100 * own[index] / samples:.1f}", f"{100 * total[index] / samples:.1f}", where)
    console.print(table)


class Placement:
    """Switches the cluster's processes between their deployed CPU affinity and floating over every core."""

    def __init__(self, engine_cores: set[int]) -> None:
        self._all = os.sched_getaffinity(0)
        self._deployed: dict[int, set[int]] = {}
        for proc in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                cores = set(proc.cpu_affinity() or ())
                if engine_cores and cores.isdisjoint(engine_cores):  # moved off the engine's cores
                    self._deployed[proc.pid] = cores

    @property
    def pinned(self) -> int:
        return len(self._deployed)

    def apply(self, floating: bool) -> None:
        for pid, cores in self._deployed.items():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                pin(pid, self._all if floating else cores)


async def cluster_side(
    cluster: LocalCluster, model: str, args: argparse.Namespace, console: Console, placement: Placement | None
) -> list[Result]:
    limits = httpx.Limits(max_connections=max(args.concurrency) + 8, max_keepalive_connections=max(args.concurrency))
    profile_at = sorted(args.concurrency)[len(args.concurrency) // 2]
    async with (
        AsyncQuorumClient(cluster.target, timeout=600) as client,
        httpx.AsyncClient(base_url=cluster.http_url, timeout=600, limits=limits) as http,
    ):
        senders = {"gRPC": grpc_sender(client, args.max_tokens), "/v1": http_sender(http, model, args.max_tokens)}
        for send in senders.values():
            await run_load("warm-up", send, prompts(args.warmup, 10_000), WARMUP_CONCURRENCY)
        idle = await idle_rates(args.idle_s)
        results = []
        for step, concurrency in enumerate(args.concurrency):
            batch = prompts(requests_for(concurrency, args), 0)
            # With --compare-floating, deployed and floating placements alternate which runs first.
            states = [False] if placement is None else [False, True] if step % 2 == 0 else [True, False]
            for floating in states:
                if placement is not None:
                    placement.apply(floating)
                for protocol, send in senders.items():
                    profile = protocol == "gRPC" and concurrency == profile_at and not floating
                    name = f"{protocol} {FLOATING}" if floating else protocol
                    with profiled(args.profile if profile else None, f"grpc-c{concurrency}", console):
                        results.append(await run_load(name, send, batch, concurrency, idle))
        if placement is not None:
            placement.apply(False)
        return results


def bench_config(path: str) -> QuorumConfig:
    """The config's default model only, prefix caching off, a private local Ray on 2 CPUs, free ports."""
    config = load_config(path)
    model = config.model(config.default_model_id)
    engine = model.engine.model_copy(update={"enable_prefix_caching": False})
    return config.model_copy(
        update={
            "models": [model.model_copy(update={"engine": engine})],
            "gateway": config.gateway.model_copy(update={"grpc_port": 0, "http_port": 0, "default_model": None}),
            "ray": config.ray.model_copy(
                update={"address": None, "num_cpus": 2, "app_name": "quorum-bench", "metrics_export_port": None}
            ),
        }
    )


def report(console: Console, raw: list[Result], front: list[Result]) -> tuple[float, float]:
    """Print the tables; return the worst throughput ratio and the worst added TTFT p50 over all points."""
    base = {r.concurrency: r for r in raw}
    table = Table(title="front-door overhead (greedy, prefix caching off on both sides; load1 = 1-min load average)")
    columns = ("protocol", "conc", "requests", "compl tok", "tok/s", "ratio", "TTFT p50 ms", "added p50", "p95 ms")
    for column in (*columns, "added p95", "load1"):
        table.add_column(column, justify="right")
    worst_ratio, worst_added = float("inf"), float("-inf")
    for r in sorted([*raw, *front], key=lambda r: (r.concurrency, PROTOCOLS.index(r.protocol))):
        raw_r = base[r.concurrency]
        ratio = r.throughput / raw_r.throughput
        added, added95 = r.ttft_ms(50) - raw_r.ttft_ms(50), r.ttft_ms(95) - raw_r.ttft_ms(95)
        if r.protocol in ("gRPC", "/v1"):
            worst_ratio, worst_added = min(worst_ratio, ratio), max(worst_added, added)
            for name in ("completion_tokens", "prompt_tokens"):
                if r.total(name) != raw_r.total(name):
                    point = f"{r.protocol} c{r.concurrency}"
                    console.print(f"[yellow]warning: {point}: {name} {r.total(name)} vs raw {raw_r.total(name)}")
        table.add_row(
            r.protocol,
            str(r.concurrency),
            str(len(r.samples)),
            str(r.total("completion_tokens")),
            f"{r.throughput:.1f}",
            f"{ratio:.3f}",
            f"{r.ttft_ms(50):.1f}",
            f"{added:+.1f}" if r.protocol != "raw" else "",
            f"{r.ttft_ms(95):.1f}",
            f"{added95:+.1f}" if r.protocol != "raw" else "",
            f"{r.load1:.2f}",
        )
    console.print(table)
    cpu = Table(title="CPU ms per streamed token above idle, by process (psutil user+system over each phase)")
    cpu.add_column("protocol")
    cpu.add_column("conc", justify="right")
    for name in (*ROLES, "total"):
        cpu.add_column(name, justify="right")
    for r in sorted([*raw, *front], key=lambda r: (r.concurrency, PROTOCOLS.index(r.protocol))):
        values = [r.cpu_ms_per_token(name) for name in ROLES]
        cpu.add_row(r.protocol, str(r.concurrency), *(f"{v:.2f}" for v in values), f"{sum(values):.2f}")
    console.print(cpu)
    return worst_ratio, worst_added


def concurrencies(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("give comma-separated concurrencies >= 1, e.g. 1,16,64")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--concurrency", type=concurrencies, default=[1, 16, 64], help="e.g. 1,16,64")
    parser.add_argument(
        "--requests", type=int, default=0, help="measured requests per point; 0: max(12, min(4 x concurrency, 128))"
    )
    parser.add_argument("--max-tokens", type=int, default=32, help="max_tokens of every request")
    parser.add_argument("--warmup", type=int, default=8, help="warm-up requests per side and protocol (other prompts)")
    parser.add_argument(
        "--compare-floating",
        action="store_true",
        help="also measure every point with the processes quorum pins off the engine's cores floating over all cores",
    )
    parser.add_argument("--idle-s", type=float, default=10.0, help="seconds of idle CPU measured per side")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="quorum config; its default model is measured")
    parser.add_argument(
        "--profile", type=Path, default=None, help="folder for py-spy profiles of the gateway and LLM replica"
    )
    args = parser.parse_args()
    if args.requests == 1 or args.requests < 0 or args.max_tokens < 1:
        parser.error("need --requests >= 2 (or 0) and --max-tokens >= 1")
    console = Console(width=140)
    config = bench_config(args.config)
    environ = dict(os.environ)  # vLLM may set variables for its workers; B starts from the same environment

    console.print(f"[bold]A: raw AsyncLLM[/] (concurrency {args.concurrency}, load average {os.getloadavg()})")
    raw, engine_pids = asyncio.run(raw_side(config, args))
    wait_gone(engine_pids, "the raw engine", console)
    os.environ.clear()
    os.environ.update(environ)

    console.print("[bold]B/C: gRPC and /v1[/] (LocalCluster -> Ray Serve -> LLMServer -> vLLM)")
    with LocalCluster(config) as cluster:
        cluster.wait_ready(timeout_s=config.models[0].engine.startup_timeout_s)
        placement = None
        if args.compare_floating:
            states = serve.get_app_handle(config.ray.app_name).model_states.remote().result(timeout_s=60)
            placement = Placement({core for status in states.values() for core in status.engine_cores})
            console.print(f"--compare-floating: {placement.pinned} processes run off the engine's cores")
        front = asyncio.run(cluster_side(cluster, config.models[0].id, args, console, placement))
        cluster_pids = descendants()  # Ray, its workers and their engine processes
    wait_gone(cluster_pids, "the cluster", console)

    ratio, added = report(console, raw, front)
    print(f"overhead throughput_ratio={ratio:.3f} ttft_p50_added_ms={added:.1f}", flush=True)


if __name__ == "__main__":
    main()
