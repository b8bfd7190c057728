"""The prefix-aware request router: Ray Serve's ``RequestRouter`` over :mod:`.prefix_index`.

Every handle to a model's deployment (each gateway replica, each reasoning replica) runs its own
instance. It tokenizes the request exactly as the LLM server will (:class:`.prompting.PromptEncoder`),
hashes the prompt's full token blocks (the engine's block size, which replicas report through
``record_routing_stats``) and ranks the replicas with :func:`.prefix_index.choose`. New prefixes go
to their rendezvous-hash owner, so separate routers agree without sharing state; the index learns
from every request a replica finishes and forgets replicas as they leave (scale-down, death).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ray.serve.metrics import Counter
from ray.serve.request_router import PendingRequest, ReplicaID, ReplicaResult, RequestRouter, RunningReplica

from .config import ModelConfig
from .models import resolve_source
from .prefix_index import PrefixIndex, block_hashes, choose
from .prompting import PromptEncoder
from .types import GenerationRequest

logger = logging.getLogger(__name__)

DEFAULT_INDEX_BLOCKS = 4096
_MAX_PENDING = 4096
_TOKENIZER_RETRY_S = 5.0


def _load_encoder(model: ModelConfig, cache_dir: str) -> PromptEncoder:
    from transformers import AutoTokenizer

    source = model.tokenizer or resolve_source(model, cache_dir, prepare=False)
    return PromptEncoder(AutoTokenizer.from_pretrained(source))


def serving(replicas: list[RunningReplica]) -> list[RunningReplica]:
    """The replicas whose engine is up, when any is known to be: a replica that joins (scale-up, a
    replacement) gets traffic once its engine has loaded, not while it would answer UNAVAILABLE."""
    ready = [replica for replica in replicas if replica.routing_stats.get("ready")]
    return ready or replicas


class PrefixAwareRouter(RequestRouter):  # type: ignore[misc]  # ray is not type-checked
    """Routes a request to the replica most likely to hold its prompt's KV blocks (see the module docstring)."""

    # NOTE: a replica that misses the queue-length probe deadline is passed over for this request; Serve's
    # 0.1 s default made busy CPU hosts send a prefix to a replica that did not hold it.
    queue_len_response_deadline_s = 1.0
    max_queue_len_response_deadline_s = 5.0

    def initialize_state(self, model: dict[str, Any] | None = None, model_cache_dir: str = "", **_: Any) -> None:
        if model is None:
            raise ValueError("PrefixAwareRouter needs request_router_kwargs.model (a quorum model config)")
        self._model = ModelConfig.model_validate(model)
        self._cache_dir = model_cache_dir
        routing = self._model.deployment.routing
        self._threshold = routing.imbalanced_threshold
        self._fixed_capacity = routing.index_blocks_per_replica
        self._index: PrefixIndex[ReplicaID] = PrefixIndex(self._fixed_capacity or DEFAULT_INDEX_BLOCKS)
        self._encoder: PromptEncoder | None = None
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"router-tokenizer-{self._model.id}")
        self._loading: Future[PromptEncoder] | None = None
        self._next_load_at = 0.0
        self._ready_encoder()  # start loading now: the gateway's health probes create this router early
        self._tokens: OrderedDict[str, list[int]] = OrderedDict()
        self._decisions = Counter(
            "quorum_router_decisions",
            description="Prefix-aware routing decisions by reason: prefix, rendezvous, load or no-prefix.",
            tag_keys=("model", "reason"),
        )

    # --- what a request looks like to the router -------------------------------------------------

    def _block_size(self) -> int | None:
        if self._model.engine.block_size is not None:
            return self._model.engine.block_size
        for replica in self._replicas_list:
            size = replica.routing_stats.get("block_size")
            if size:
                return int(size)
        return None

    def _ready_encoder(self) -> PromptEncoder | None:
        """The tokenizer, loaded in a thread (until it is there, requests are routed by load)."""
        if self._encoder is not None:
            return self._encoder
        task = self._loading
        if task is not None and task.done():
            self._loading = None
            if task.exception() is None:
                self._encoder = task.result()
                return self._encoder
            logger.warning("model %s: router cannot load the tokenizer yet: %s", self._model.id, task.exception())
            self._next_load_at = time.monotonic() + _TOKENIZER_RETRY_S
        elif task is None and time.monotonic() >= self._next_load_at:
            self._loading = self._loader.submit(_load_encoder, self._model, self._cache_dir)
        return None

    def _prompt_tokens(self, pending: PendingRequest | None) -> list[int]:
        if pending is None or not pending.args or not isinstance(pending.args[0], GenerationRequest):
            return []
        encoder = self._ready_encoder()
        return encoder.encode_request(pending.args[0]) if encoder is not None else []

    def _hashes_of(self, tokens: list[int]) -> list[bytes]:
        block_size = self._block_size()
        return block_hashes(tokens, block_size) if block_size is not None and tokens else []

    def _load(self, replica_id: ReplicaID) -> int:
        """Ongoing requests of the replica as Serve's queue-length cache knows them (kept from the replicas'
        own answers and this handle's sends); 0 when unknown or the cache is off (Ray client)."""
        if not self._use_replica_queue_len_cache:
            return 0
        cached: int | None = self._replica_queue_len_cache.get(replica_id)
        return cached or 0

    def _sync_capacities(self, replicas: list[RunningReplica]) -> None:
        if self._fixed_capacity is not None:
            return
        for replica in replicas:
            blocks = replica.routing_stats.get("num_kv_blocks")
            if blocks and self._index.capacity(replica.replica_id) != int(blocks):
                self._index.set_capacity(replica.replica_id, int(blocks))

    # --- RequestRouter ----------------------------------------------------------------------------

    async def choose_replicas(
        self, candidate_replicas: list[RunningReplica], pending_request: PendingRequest | None = None
    ) -> list[list[RunningReplica]]:
        if pending_request is not None:
            # NOTE: every candidate is ranked below, so when none accepts, Serve must back off, not spin.
            pending_request.routing_context.should_backoff = True
        candidates = {replica.replica_id: replica for replica in serving(candidate_replicas)}
        self._sync_capacities(candidate_replicas)
        tokens = self._prompt_tokens(pending_request)
        hashes = self._hashes_of(tokens)
        choice = choose(
            hashes,
            {rid: self._load(rid) for rid in candidates},
            {rid: rid.unique_id for rid in candidates},
            self._index,
            self._threshold,
        )
        if pending_request is not None and tokens:
            self._remember(pending_request.metadata.internal_request_id, tokens)
        self._decisions.inc(tags={"model": self._model.id, "reason": choice.reason})
        return [[candidates[rid] for rid in rank] for rank in choice.ranks]

    def _remember(self, request_id: str, tokens: list[int]) -> None:
        # NOTE: tokens, not hashes: a request routed before any replica reported its block size
        # (just after start) still teaches the index once the size is known.
        self._tokens[request_id] = tokens
        while len(self._tokens) > _MAX_PENDING:
            self._tokens.popitem(last=False)

    def on_request_routed(self, pending_request: PendingRequest, replica_id: ReplicaID, result: ReplicaResult) -> None:
        hashes = self._hashes_of(self._tokens.get(pending_request.metadata.internal_request_id, []))
        if hashes:
            self._index.record(replica_id, hashes)

    def on_request_completed(self, replica_id: ReplicaID, internal_request_id: str) -> None:
        # NOTE: Serve calls on_request_routed only when replicas may reject requests; completion is
        # reported always, so the index learns here at the latest (the prompt is in the replica's cache).
        hashes = self._hashes_of(self._tokens.pop(internal_request_id, []))
        if hashes and replica_id in self._replica_id_set:
            self._index.record(replica_id, hashes)

    def update_replicas(self, replicas: list[RunningReplica]) -> None:
        super().update_replicas(replicas)
        self._index.retain(self._replica_id_set)

    def on_replica_actor_died(self, replica_id: ReplicaID) -> None:
        super().on_replica_actor_died(replica_id)
        self._index.remove(replica_id)
