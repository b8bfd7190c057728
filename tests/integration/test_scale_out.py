"""Scale-out against the real cluster: prefix-aware routing over two replicas, per-replica engine
metrics, tensor parallelism, and a replica killed under load."""

from __future__ import annotations

import asyncio
import re
import threading
import urllib.request

import grpc
import pytest
import ray
from ray import serve

from quorum.client.sdk import AsyncQuorumClient, QuorumClient

from .conftest import PAIR_MODEL, PAIR_REPLICAS, TP_MODEL, RunningCluster, wait_for

pytestmark = pytest.mark.integration
PAIR_DEPLOYMENT = f"llm-{PAIR_MODEL}"

TENANTS = {
    "acme": "You are the support assistant of ACME Rockets. ACME sells rockets, fuel, launch pads and insurance. ",
    "globex": "You are the assistant of Globex Travel. Globex books trains, ferries, hotels and mountain huts. ",
    "initech": "You are the helpdesk of Initech Software. Initech makes payroll, invoicing and TPS report tools. ",
}
QUESTIONS = ["How do I reset my password?", "What are your opening hours?", "Can I get a refund?", "Who are you?"]


def _system_prompt(tenant: str) -> str:
    # ~450 tokens: several of the engine's KV blocks, all shared by the tenant's users.
    rules = " ".join(f"Rule {i}: always answer politely about {tenant} topic number {i}." for i in range(30))
    return TENANTS[tenant] + rules


def _pair_replica_names() -> list[str]:
    prefix = f"SERVE_REPLICA::quorum-test#{PAIR_DEPLOYMENT}#"
    return sorted(
        actor["name"] for actor in ray.util.list_named_actors(all_namespaces=True) if actor["name"].startswith(prefix)
    )


def test_tenants_requests_find_their_prefix_in_cache(client: QuorumClient) -> None:
    for tenant in TENANTS:
        system = _system_prompt(tenant)
        cached = []
        for question in QUESTIONS:
            reply = client.chat([("system", system), ("user", question)], model=PAIR_MODEL, temperature=0, max_tokens=4)
            assert reply.usage.prompt_tokens > 400
            cached.append(reply.usage.cached_prompt_tokens)
        # Later requests of the tenant go to the replica that already holds its system prompt. NOTE: on a
        # loaded 2-core CI machine one of three was seen to miss (a replica too slow to answer Serve's
        # queue-length probe is passed over); load-only routing misses about half of them.
        assert sum(c >= 256 for c in cached[1:]) >= 2, (tenant, cached)


def _metric_lines(cluster: RunningCluster) -> list[str]:
    url = f"http://127.0.0.1:{cluster.config.ray.metrics_export_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text: str = response.read().decode()
    return text.splitlines()


ENGINE_METRICS = (
    "vllm_num_requests_waiting",  # queue depth
    "vllm_kv_cache_usage_perc",  # KV usage
    "vllm_prefix_cache_hits",  # cache hit rate, with vllm_prefix_cache_queries
    "vllm_prefix_cache_queries",
    "vllm_time_to_first_token_seconds_bucket",  # TTFT histogram
    "vllm_request_time_per_output_token_seconds_bucket",  # TPOT histogram
)


def test_engine_metrics_are_exported_per_replica(cluster: RunningCluster) -> None:
    # Prompts shorter than one KV block go by load: a concurrent burst reaches both replicas.
    async def burst() -> None:
        async with AsyncQuorumClient(cluster.target, timeout=120) as client:
            await asyncio.gather(*(client.generate(f"Hi {i}", model=PAIR_MODEL, max_tokens=8) for i in range(8)))

    asyncio.run(burst())

    def replicas_reporting(lines: list[str], metric: str) -> set[str]:
        return {
            match.group(1)
            for line in lines
            if line.startswith(f"ray_{metric}") and f'model_name="{PAIR_MODEL}"' in line
            for match in [re.search(r'ReplicaId="([^"]+)"', line)]
            if match
        }

    def all_reported() -> bool:
        lines = _metric_lines(cluster)
        return all(replicas_reporting(lines, metric) for metric in ENGINE_METRICS)

    # Every metric carries the replica it came from (a ReplicaId tag).
    wait_for(all_reported, timeout_s=120, what="vLLM metrics with ReplicaId tags on Ray's metrics port")


def test_tensor_parallel_output_equals_a_single_rank(client: QuorumClient) -> None:
    prompts = ["What is the capital of France?", "Write a haiku about rain.", "Name three colours."]
    for prompt in prompts:
        single = client.chat([("user", prompt)], model=PAIR_MODEL, temperature=0, max_tokens=32)
        sharded = client.chat([("user", prompt)], model=TP_MODEL, temperature=0, max_tokens=32)
        assert sharded.choices[0].text == single.choices[0].text
        assert sharded.usage.completion_tokens == single.usage.completion_tokens


def _stream_to_end(target: str, prompt: str, outcomes: list[str], started: threading.Event) -> None:
    with QuorumClient(target, timeout=120) as own:
        try:
            for _ in own.generate_stream(prompt, model=PAIR_MODEL, max_tokens=96, min_tokens=96, temperature=0):
                started.set()
            outcomes.append("OK")
        except grpc.RpcError as exc:
            outcomes.append(exc.code().name)


def test_killed_replica_gives_unavailable_then_is_replaced(cluster: RunningCluster, client: QuorumClient) -> None:
    names = _pair_replica_names()
    assert len(names) == PAIR_REPLICAS
    outcomes: list[str] = []
    started = threading.Event()
    # Short distinct prompts (under one KV block): routed by load, so both replicas get some.
    threads = [
        threading.Thread(target=_stream_to_end, args=(cluster.target, f"Story {i}:", outcomes, started))
        for i in range(6)
    ]
    for thread in threads:
        thread.start()
    assert started.wait(timeout=120), "no stream started"
    ray.kill(ray.get_actor(names[0], namespace="serve"), no_restart=True)
    for thread in threads:
        thread.join(timeout=180)
        assert not thread.is_alive(), "a client hung after the replica died"
    assert len(outcomes) == 6
    assert set(outcomes) <= {"OK", "UNAVAILABLE"}, outcomes
    assert "UNAVAILABLE" in outcomes  # the killed replica's streams end with a retryable status

    # The routers forget the dead replica: new requests go to the survivor and succeed.
    for i in range(4):
        assert client.generate(f"After {i}:", model=PAIR_MODEL, max_tokens=4).choices[0].text is not None

    def replaced() -> bool:
        status = serve.status().applications[cluster.config.ray.app_name]
        replicas = status.deployments[PAIR_DEPLOYMENT].replica_states
        current = _pair_replica_names()
        return replicas.get("RUNNING", 0) == PAIR_REPLICAS and names[0] not in current and len(current) == 2

    wait_for(replaced, timeout_s=600, what="Serve to replace the killed replica")
    # While the new replica's engine loads, the routers send nothing to it (it reports ready=False).
    for tenant in TENANTS:
        reply = client.chat([("system", _system_prompt(tenant)), ("user", "Hi")], model=PAIR_MODEL, max_tokens=4)
        assert reply.usage.completion_tokens > 0
