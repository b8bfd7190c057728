"""Node loss under load: quorum on a head plus worker Ray nodes, a worker killed mid-stream, then replaced.

Run ``python -m bench.multinode`` (``--quick`` for the integration test's smaller run). On this one
machine :class:`quorum.services.multinode.MultiNodeRay` starts a Ray head (gateway, reasoning, Serve's
controller and proxy) and ``--workers`` worker nodes, each its own raylet with its own logical CPUs.
The embedded model runs as two replicas, at most one per worker node (float32, small KV cache).

1. ``--clients`` gRPC clients stream Chat requests (``--max-tokens`` each, ``min_tokens`` too, so every
   request lasts a while) with a per-request deadline far above the expected time (``--deadline-s``),
   so a hang shows as DEADLINE_EXCEEDED instead of passing for slowness.
2. Once both replicas have requests in flight, the worker node of the busier one is killed (its raylet
   and every process on it SIGKILLed: ``Cluster.remove_node(allow_graceful=False)``).
3. Each client then sends ``--after-kill`` more requests (the survivor must serve them), and stops.
4. A new worker node joins; the time until the model is SERVING (grpc.health.v1) with two replicas whose
   engines are loaded, on distinct nodes, is the recovery time. Four requests then check it serves.

Every request ends as OK (a final message with a finish reason on every choice and usage), TRUNCATED
(the stream ended without it), or its gRPC status code. Last line::

    multinode nodes=<n> replicas_on_distinct_nodes=<true|false> inflight_failed_fast=<fraction> recovery_s=<s> lost=<n>

``nodes``: Ray nodes before the kill (head included). ``inflight_failed_fast``: of the requests in flight at
the kill that did not finish OK (those on the lost node), the fraction that ended UNAVAILABLE (``nan`` if
none failed). ``recovery_s``: from the new node's start to serving again (``inf`` if not within
``--recovery-timeout-s``). ``lost``: requests with no final status (truncated, deadline exceeded, or
still running when the load phase's own bound ran out).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import grpc
import ray
from grpc_health.v1 import health_pb2
from ray import serve
from rich.console import Console
from rich.table import Table

from quorum.client.sdk import AsyncQuorumClient, QuorumClient, model_health_name
from quorum.cluster.config import DEFAULT_CONFIG, QuorumConfig, load_config
from quorum.cluster.deployments import llm_deployment_name
from quorum.services.local import LocalCluster
from quorum.services.multinode import MultiNodeRay, WorkerNode

from .processes import descendants, wait_gone

APP = "quorum-multinode"
REPLICAS = 2
OK = "OK"
TRUNCATED = "TRUNCATED"
PENDING = "PENDING"
# Observing replicas: Serve's replica actors answer record_routing_stats and get_num_ongoing_requests for
# Serve's own routers; __ray_call__ runs a function inside an actor.
REPLICA_CALL_TIMEOUT_S = 10.0
POLL_S = 0.5
console = Console(stderr=True)


@dataclass
class Record:
    """One request: when it ran, how many messages it got, how it ended."""

    client: int
    started: float
    after_kill: bool
    ended: float = math.nan
    messages: int = 0
    status: str = PENDING
    detail: str = ""  # the status message of a request that failed


@dataclass
class LoadState:
    records: list[Record] = field(default_factory=list)
    kill_time: float | None = None
    after_kill: int = 0  # requests per client to send after the kill


@dataclass(frozen=True)
class Replica:
    name: str
    node_id: str
    ready: bool
    ongoing: int


def bench_config(quick: bool) -> QuorumConfig:
    """The shipped config, one model in float32 with a small KV cache, two replicas routed by load."""
    config = load_config(DEFAULT_CONFIG)
    model = config.models[0]
    engine = model.engine.model_copy(
        update={"dtype": "float32", "kv_cache_memory_gib": 0.5, "max_model_len": 1024, "enforce_eager": True}
    )
    # NOTE: chat prompts share the template's system prompt; with no load tolerance the prefix-aware router
    # sends each request to the less busy replica, so both replicas have streams in flight at the kill.
    routing = model.deployment.routing.model_copy(update={"imbalanced_threshold": 0})
    deployment = model.deployment.model_copy(update={"num_replicas": REPLICAS, "num_cpus": 1, "routing": routing})
    return config.model_copy(
        update={
            "models": [model.model_copy(update={"engine": engine, "deployment": deployment})],
            "gateway": config.gateway.model_copy(update={"grpc_port": 0, "http_port": 0}),
            "ray": config.ray.model_copy(update={"app_name": APP}),
        }
    )


def _node_of(_: object) -> str:
    return str(ray.get_runtime_context().get_node_id())


def replicas(deployment: str) -> list[Replica]:
    """The deployment's live replicas: node, engine loaded (routing stats), requests in flight."""
    prefix = f"SERVE_REPLICA::{APP}#{deployment}#"
    found = []
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if not entry["name"].startswith(prefix):
            continue
        try:
            actor = ray.get_actor(entry["name"], namespace=entry["namespace"])
            node_id, stats, ongoing = ray.get(
                [
                    actor.__ray_call__.remote(_node_of),  # runs in the replica: the node it is on
                    actor.record_routing_stats.remote(),
                    actor.get_num_ongoing_requests.remote(),
                ],
                timeout=REPLICA_CALL_TIMEOUT_S,
            )
        except Exception:  # noqa: BLE001 - a replica that is dying or not yet up is not a live replica
            continue
        found.append(Replica(entry["name"], node_id, bool(stats.get("ready")), int(ongoing)))
    return found


def wait_until(condition: Any, timeout_s: float, what: str) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            console.print(f"[red]timed out after {timeout_s:.0f} s waiting for {what}[/]")
            return False
        time.sleep(POLL_S)
    return True


def prompt(client: int, n: int) -> str:
    return f"Client {client}, request {n}: write a long story about a lighthouse keeper and a storm."


async def stream_one(client: AsyncQuorumClient, record: Record, model: str, max_tokens: int, text: str) -> None:
    finished = usage = False
    try:
        async for response in client.chat_stream(
            [("user", text)], model=model, max_tokens=max_tokens, min_tokens=max_tokens, temperature=0
        ):
            record.messages += 1
            finished = bool(response.choices) and all(c.finish_reason != 0 for c in response.choices)
            usage = response.HasField("usage")
        record.status = OK if finished and usage else TRUNCATED
    except grpc.aio.AioRpcError as exc:
        record.status = exc.code().name
        record.detail = exc.details() or ""
    record.ended = time.monotonic()


async def client_loop(index: int, target: str, model: str, args: argparse.Namespace, state: LoadState) -> None:
    sent_after = 0
    async with AsyncQuorumClient(target, timeout=args.deadline_s) as client:
        for n in range(args.max_requests_per_client):
            after = state.kill_time is not None
            if after and sent_after >= state.after_kill:
                return
            record = Record(client=index, started=time.monotonic(), after_kill=after)
            state.records.append(record)
            sent_after += after
            await stream_one(client, record, model, args.max_tokens, prompt(index, n))


def in_flight(replica_list: list[Replica]) -> bool:
    return len(replica_list) == REPLICAS and all(r.ongoing > 0 for r in replica_list)


async def load_and_kill(
    nodes: MultiNodeRay, target: str, model: str, args: argparse.Namespace, state: LoadState
) -> WorkerNode | None:
    """Run the clients, kill the busier replica's node once both have streams in flight; the killed node."""
    deployment = llm_deployment_name(bench_config(args.quick).models[0])
    tasks = [asyncio.create_task(client_loop(i, target, model, args, state)) for i in range(args.clients)]
    victim: WorkerNode | None = None
    deadline = time.monotonic() + args.warmup_timeout_s
    while time.monotonic() < deadline and not all(t.done() for t in tasks):
        current = await asyncio.to_thread(replicas, deployment)
        started = sum(r.messages > 0 and r.status == PENDING for r in state.records)
        if in_flight(current) and started >= 2:
            busiest = max(current, key=lambda r: r.ongoing)
            victim = next(w for w in nodes.workers if w.node_id == busiest.node_id)
            console.print(
                f"killing worker node {victim.node_id[:8]} ({busiest.ongoing} streams in flight on its replica, "
                f"{sum(r.status == PENDING for r in state.records)} in all)"
            )
            state.kill_time = time.monotonic()
            state.after_kill = args.after_kill
            await asyncio.to_thread(nodes.kill_worker, victim)
            break
        await asyncio.sleep(POLL_S)
    else:
        console.print("[red]the replicas never both had streams in flight: no node killed[/]")
        state.kill_time = time.monotonic()
    _, pending = await asyncio.wait(tasks, timeout=args.deadline_s * (args.after_kill + 2))
    for task in pending:  # a client stuck past every deadline: its request stays PENDING (lost)
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return victim


def recovered(deployment: str, target: str, model: str, old_nodes: set[str]) -> bool:
    with QuorumClient(target, timeout=10) as client:
        try:
            if client.health(model_health_name(model)) != health_pb2.HealthCheckResponse.SERVING:
                return False
        except grpc.RpcError:
            return False
    app = serve.status().applications.get(APP)
    if app is None or app.deployments[deployment].replica_states.get("RUNNING", 0) != REPLICAS:
        return False
    live = replicas(deployment)
    nodes = {r.node_id for r in live}
    return len(live) == REPLICAS and all(r.ready for r in live) and len(nodes) == REPLICAS and bool(nodes - old_nodes)


async def burst(target: str, model: str, count: int, max_tokens: int, deadline_s: float) -> list[str]:
    records = [Record(client=i, started=time.monotonic(), after_kill=True) for i in range(count)]
    async with AsyncQuorumClient(target, timeout=deadline_s) as client:
        await asyncio.gather(*(stream_one(client, r, model, max_tokens, prompt(100 + r.client, 0)) for r in records))
    return [r.status for r in records]


def report(state: LoadState, kill_time: float, final: list[str]) -> dict[str, Any]:
    inflight = [r for r in state.records if r.started < kill_time and not r.after_kill and not r.ended < kill_time]
    failed = [r for r in inflight if r.status != OK]
    after = [r for r in state.records if r.after_kill]
    lost = [r for r in state.records if r.status in (TRUNCATED, PENDING, "DEADLINE_EXCEEDED")]
    fail_after = [r.ended - kill_time for r in failed if r.status == "UNAVAILABLE"]
    table = Table(title="requests by phase and final status")
    table.add_column("phase")
    table.add_column("requests", justify="right")
    table.add_column("final statuses")
    phases = {
        "before the kill, finished": [r for r in state.records if r.ended < kill_time and not r.after_kill],
        "in flight at the kill": inflight,
        "sent after the kill": after,
        "after recovery": [Record(0, 0, True, status=s) for s in final],
    }
    for name, rows in phases.items():
        counts = Counter(r.status for r in rows)
        table.add_row(name, str(len(rows)), ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    console.print(table)
    if fail_after:
        console.print(
            f"in-flight requests on the lost node ended UNAVAILABLE {statistics.median(fail_after):.2f} s "
            f"(median) / {max(fail_after):.2f} s (max) after the kill"
        )
    for detail, count in Counter(r.detail for r in state.records if r.detail).items():
        console.print(f"{count} request(s) failed with: {detail}")
    return {
        "inflight_failed_fast": sum(r.status == "UNAVAILABLE" for r in failed) / len(failed) if failed else math.nan,
        "lost": len(lost),
        "after_kill_ok": f"{sum(r.status == OK for r in after)}/{len(after)}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the integration test's run: 4 clients, shorter answers")
    parser.add_argument("--workers", type=int, default=2, help="worker nodes at the start (one replica each)")
    parser.add_argument("--head-cpus", type=int, default=2, help="logical CPUs of the head node")
    parser.add_argument("--worker-cpus", type=int, default=2, help="logical CPUs of each worker node")
    parser.add_argument("--clients", type=int, default=None, help="concurrent streaming clients (default 6, quick 4)")
    parser.add_argument("--max-tokens", type=int, default=None, help="tokens per answer (default 96, quick 48)")
    parser.add_argument("--after-kill", type=int, default=2, help="requests per client after the kill")
    parser.add_argument("--max-requests-per-client", type=int, default=40, help="bound on each client's requests")
    parser.add_argument("--deadline-s", type=float, default=240, help="per-request gRPC deadline (hang detector)")
    parser.add_argument("--startup-timeout-s", type=float, default=600, help="bound on the engines' first load")
    parser.add_argument("--warmup-timeout-s", type=float, default=180, help="bound on waiting for streams on both")
    parser.add_argument("--recovery-timeout-s", type=float, default=600, help="bound on the replacement")
    args = parser.parse_args()
    args.clients = args.clients or (4 if args.quick else 6)
    args.max_tokens = args.max_tokens or (48 if args.quick else 96)
    if args.quick:
        args.after_kill = min(args.after_kill, 1)

    before = descendants()
    state = LoadState()
    victim: WorkerNode | None = None
    distinct = False
    num_nodes = 0
    recovery_s = math.inf
    since_kill_s = math.inf
    final: list[str] = []
    with MultiNodeRay(workers=args.workers, head_cpus=args.head_cpus, worker_cpus=args.worker_cpus) as nodes:
        config = nodes.configure(bench_config(args.quick))
        model = config.models[0].id
        deployment = llm_deployment_name(config.models[0])
        num_nodes = 1 + len(nodes.workers)
        console.print(f"Ray cluster at {nodes.address}: head + {len(nodes.workers)} worker nodes")
        with LocalCluster(config) as cluster:
            start = time.monotonic()
            cluster.wait_ready(timeout_s=args.startup_timeout_s)
            ok = wait_until(
                lambda: sum(r.ready for r in replicas(deployment)) == REPLICAS,
                args.startup_timeout_s,
                "both replicas' engines",
            )
            placed = replicas(deployment)
            workers = {w.node_id for w in nodes.workers}
            distinct = ok and len({r.node_id for r in placed}) == REPLICAS and {r.node_id for r in placed} <= workers
            console.print(
                f"{len(placed)} replicas ready after {time.monotonic() - start:.0f} s on nodes "
                f"{', '.join(r.node_id[:8] for r in placed)} (workers {', '.join(n[:8] for n in sorted(workers))})"
            )
            victim = asyncio.run(load_and_kill(nodes, cluster.target, model, args, state))
            kill_time = state.kill_time or time.monotonic()
            old_nodes = {w.node_id for w in nodes.workers} | ({victim.node_id} if victim else set())
            added = time.monotonic()
            fresh = nodes.add_worker()
            console.print(f"worker node {fresh.node_id[:8]} added {added - kill_time:.1f} s after the kill")
            if wait_until(
                lambda: recovered(deployment, cluster.target, model, old_nodes),
                args.recovery_timeout_s,
                "the replacement replica",
            ):
                now = time.monotonic()
                recovery_s, since_kill_s = now - added, now - kill_time
                console.print(f"serving with 2 replicas again {recovery_s:.1f} s after the node was added")
            final = asyncio.run(burst(cluster.target, model, 4, args.max_tokens, args.deadline_s))
    wait_gone(descendants() - before, "the multi-node cluster", console)
    summary = report(state, kill_time, final)
    console.print(
        f"new requests after the kill: {summary['after_kill_ok']} OK; recovery {since_kill_s:.1f} s after the kill"
    )
    print(
        f"multinode nodes={num_nodes} replicas_on_distinct_nodes={str(distinct).lower()} "
        f"inflight_failed_fast={summary['inflight_failed_fast']:.3f} recovery_s={recovery_s:.1f} "
        f"lost={summary['lost']}",
        flush=True,
    )


if __name__ == "__main__":
    main()
