"""The ``quorum`` command line.

Client commands (generate, chat, models list, status, reason, docs, k8s, config check) need only the client
package. Server commands (up, models prepare, models verify, quantize) import the server stack inside the
command and exit 2 with an install hint when it is missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import signal
import sys
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .sdk import ClientTLS, QuorumClient, model_health_name

if TYPE_CHECKING:
    from quorum.cluster.config import GatewayConfig, QuorumConfig

console = Console()
err = Console(stderr=True)
DEFAULT_TARGET = "127.0.0.1:50051"
# What each server command imports, by top-level module name: checked before the command runs.
SERVER_MODULES = {
    "up": ("ray", "vllm", "torch", "transformers"),
    "models prepare": ("torch", "transformers", "tqdm"),
    "models verify": ("torch", "transformers", "tqdm"),
    "quantize": ("torch", "transformers", "tqdm", "compressed_tensors"),
}


class CommandError(Exception):
    """A command cannot run: ``main`` prints the message and exits with ``code``."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def _require_server(command: str) -> None:
    """Raise CommandError when a module ``quorum <command>`` needs is not installed (a client-only install)."""
    missing = [name for name in SERVER_MODULES[command] if importlib.util.find_spec(name) is None]
    if missing:
        raise CommandError(
            f"`quorum {command}` needs the server stack ({', '.join(missing)} not installed): "
            "pip install 'quorum[server,cpu]' (or 'quorum[server,gpu]' on GPU hosts)"
        )


def _print_rows(columns: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    """A table on a terminal; tab-separated lines (header first) when piped, so nothing is truncated."""
    if console.is_terminal:
        table = Table(*columns)
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    for line in (columns, *rows):
        print("\t".join(line))


def _config(path: str | None) -> QuorumConfig:
    from quorum.cluster.config import DEFAULT_CONFIG, ConfigError, load_config

    try:
        return load_config(path or DEFAULT_CONFIG)
    except ConfigError as exc:
        raise CommandError(f"config error: {exc}") from exc


def cmd_up(args: argparse.Namespace) -> int:
    _require_server("up")
    from quorum.cluster.models import resolve_source
    from quorum.services.local import ClusterStartError, LocalCluster
    from quorum.services.ray_head import RayStartError

    config = _config(args.config)
    if args.port is not None or args.host is not None:
        gateway = config.gateway.model_copy(
            update={k: v for k, v in (("grpc_port", args.port), ("host", args.host)) if v is not None}
        )
        config = config.model_copy(update={"gateway": gateway})
    for model in config.models:
        resolve_source(model, config.model_cache_dir)  # convert the embedded model once, with a progress bar
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        with LocalCluster(config) as cluster:
            # NOTE: after ray.init, which installs its own SIGTERM handler (sys.exit mid-wait): a container
            # runtime's SIGTERM must take the same clean path as Ctrl-C.
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            err.print(f"[bold]quorum[/] gateway at [cyan]{cluster.target}[/]; loading {len(config.models)} model(s)…")
            cluster.wait_ready(timeout_s=max(m.engine.startup_timeout_s for m in config.models))
            console.print(f"[green]quorum is serving[/] on grpc://{cluster.target}")
            console.print(f"  OpenAI-compatible HTTP: {cluster.http_url}/v1")
            console.print(f"  metrics: {cluster.metrics_url or 'no metrics port reported by Ray'}")
            console.print(f"  {_auth_summary(config.gateway)}")
            for model in config.models:
                console.print(f"  model [bold]{model.id}[/] ({model.source})")
            console.print(f'  try: quorum chat --target {cluster.target} "What is the capital of France?"')
            console.print("  Ctrl-C stops the cluster.")
            stop.wait()
            err.print("stopping…")
    except (RayStartError, ClusterStartError) as exc:
        err.print(f"[red]the cluster did not start:[/] {escape(str(exc))}")
        return 1
    return 0


def _auth_summary(gateway: GatewayConfig) -> str:
    """How clients authenticate, and how to revoke them, for ``quorum up``."""
    tls = "TLS on gRPC (certificates re-read when they change)" if gateway.tls_cert_file else "no TLS"
    if gateway.auth_tokens_file is None:
        return f"auth: off (gateway.auth_tokens_file is not set); {tls}"
    return (
        f"auth: bearer tokens from {escape(gateway.auth_tokens_file)}, re-read when it changes; "
        f"emptying or deleting the file revokes every token; {tls}"
    )


def _sampling(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "max_tokens": args.max_tokens,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "seed": args.seed,
        "n": args.n,
    }


def _print_stream(responses: Iterable[Any]) -> None:
    usage = None
    for response in responses:
        for choice in response.choices:
            console.print(choice.text, end="", markup=False, highlight=False, soft_wrap=True)
        if response.HasField("usage"):
            usage = response.usage
    console.print()
    if usage is not None:
        err.print(
            f"[dim]{usage.prompt_tokens} prompt tokens ({usage.cached_prompt_tokens} cached), "
            f"{usage.completion_tokens} generated[/]"
        )


def _print_unary(response: Any) -> None:
    for choice in response.choices:
        if len(response.choices) > 1:
            console.print(f"[bold]choice {choice.index}[/]")
        console.print(choice.text, markup=False, highlight=False)
    usage = response.usage
    err.print(
        f"[dim]{usage.prompt_tokens} prompt tokens ({usage.cached_prompt_tokens} cached), "
        f"{usage.completion_tokens} generated[/]"
    )


def cmd_generate(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.no_stream or (args.n or 1) > 1:
            _print_unary(client.generate(args.prompt, model=args.model, **_sampling(args)))
        else:
            _print_stream(client.generate_stream(args.prompt, model=args.model, **_sampling(args)))
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    messages = ([("system", args.system)] if args.system else []) + [("user", args.message)]
    with _client(args) as client:
        if args.no_stream or (args.n or 1) > 1:
            _print_unary(client.chat(messages, model=args.model, **_sampling(args)))
        else:
            _print_stream(client.chat_stream(messages, model=args.model, **_sampling(args)))
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        models = client.list_models().models
    rows = [
        (
            m.id,
            "yes" if m.is_default else "",
            "yes" if m.ready else "no",
            str(m.max_model_len),
            m.quantization or "-",
            str(m.tensor_parallel_size),
            str(m.replicas),
            m.source,
        )
        for m in models
    ]
    _print_rows(("id", "default", "ready", "context", "quantization", "TP", "replicas", "source"), rows)
    return 0


def cmd_models_prepare(args: argparse.Namespace) -> int:
    _require_server("models prepare")
    from quorum.cluster.models import resolve_source

    config = _config(args.config)
    for model in config.models:
        console.print(f"{model.id}: {resolve_source(model, config.model_cache_dir)}")
    return 0


def cmd_models_verify(args: argparse.Namespace) -> int:
    _require_server("models verify")
    from quorum.cluster.config import ModelConfig
    from quorum.cluster.models import ModelSourceError, resolve_source
    from quorum.cluster.reference import REFERENCE_PROMPTS, compare, reference_answers

    config = _config(args.config)
    prompts = REFERENCE_PROMPTS[: args.prompts]
    with _client(args) as client:
        served_models = {m.id: m for m in client.list_models().models}
        model_id = args.model or next((m.id for m in served_models.values() if m.is_default), "")
        if model_id not in served_models:
            err.print(f"[red]verify:[/] --model: '{escape(model_id)}' is not served; served: {sorted(served_models)}")
            return 2
        source = args.reference or served_models[model_id].source
        try:
            reference_dir = resolve_source(ModelConfig(id="reference", source=source), config.model_cache_dir)
        except ModelSourceError as exc:
            err.print(f"[red]verify:[/] --reference: {escape(str(exc))}", highlight=False)
            return 2
        served = [
            client.chat([("user", prompt)], model=model_id, temperature=0, max_tokens=args.max_tokens).choices[0].text
            for prompt in prompts
        ]
    console.print(f"reference: HF transformers float32 greedy on {reference_dir}", highlight=False)
    report = compare(model_id, source, prompts, reference_answers(reference_dir, prompts, args.max_tokens), served)
    _print_rows(
        ("prompt", "agrees", "reference", "served"),
        [(c.prompt, "yes" if c.agrees else "NO", c.reference.strip(), c.served.strip()) for c in report.checks],
    )
    print(report.summary(), flush=True)
    return 0 if report.agreed >= min(args.min_agreement, report.total) else 1


def cmd_quantize(args: argparse.Namespace) -> int:
    _require_server("quantize")
    from quorum.cluster.config import ModelConfig
    from quorum.cluster.models import ModelSourceError, resolve_source
    from quorum.cluster.quantize import QuantizeError, quantize_checkpoint

    config = _config(args.config)
    try:
        source = resolve_source(ModelConfig(id="quantize-source", source=args.source), config.model_cache_dir)
        report = quantize_checkpoint(Path(source), Path(args.output), args.scheme)
    except (ModelSourceError, QuantizeError) as exc:
        err.print(f"[red]quantize:[/] {escape(str(exc))}", highlight=False)
        return 2
    group = str(report.group_size) if report.group_size is not None else "per channel"
    mib = 1 << 20
    _print_rows(
        ("scheme", "group size", "source MiB", "output MiB", "size ratio", "seconds"),
        [
            (
                report.scheme,
                group,
                f"{report.source_bytes / mib:.1f}",
                f"{report.output_bytes / mib:.1f}",
                f"{report.size_ratio:.2f}x",
                f"{report.seconds:.1f}",
            )
        ],
    )
    console.print(f"{report.quantized_layers} Linear layers quantized (lm_head kept); serve it with", highlight=False)
    console.print(f"  models[].source: {report.output_dir}", markup=False, highlight=False)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from grpc_health.v1 import health_pb2

    status_name = health_pb2.HealthCheckResponse.ServingStatus.Name
    with _client(args) as client:
        overall = client.health()
        rows = [
            (m.id, status_name(client.health(model_health_name(m.id))), "yes" if m.ready else "no")
            for m in client.list_models().models
        ]
    console.print(f"cluster at {args.target}: [bold]{status_name(overall)}[/]")
    _print_rows(("model", "health", "ready"), rows)
    return 0 if overall == health_pb2.HealthCheckResponse.SERVING else 1


_STRATEGY_CHOICES = ("direct", "cot", "sc", "react", "rag")


def cmd_reason(args: argparse.Namespace) -> int:
    from quorum.v1 import reasoning_pb2 as rpb

    strategies = {
        "direct": rpb.STRATEGY_DIRECT,
        "cot": rpb.STRATEGY_CHAIN_OF_THOUGHT,
        "sc": rpb.STRATEGY_SELF_CONSISTENCY,
        "react": rpb.STRATEGY_REACT,
        "rag": rpb.STRATEGY_RAG,
    }
    request = rpb.ReasonRequest(
        model=args.model,
        question=args.question,
        strategy=strategies[args.strategy],
        samples=args.samples or 0,
        tools=args.tools.split(",") if args.tools else [],
        collection=args.collection or "",
        top_k=args.top_k or 0,
        early_stopping=rpb.EarlyStopping(
            rule=rpb.EARLY_STOP_RULE_NONE if args.no_early_stop else rpb.EARLY_STOP_RULE_UNSPECIFIED
        ),
    )
    with _client(args) as client:
        in_thought = False
        for event in client.reason(request):
            kind = event.WhichOneof("event")
            if kind == "thought":
                console.print(event.thought.text, end="", style="dim", markup=False, highlight=False)
                in_thought = True
                continue
            if in_thought:
                console.print()
                in_thought = False
            _print_event(kind, event, rpb)
    return 0


def _print_event(kind: str | None, event: Any, rpb: Any) -> None:
    if kind == "sample":
        answer = event.sample.answer or "no answer"
        console.print(f"[cyan]sample {event.sample.index}[/] → {answer}")
    elif kind == "vote":
        tally = ", ".join(f"{c.answer} x{c.count}" for c in event.vote.counts)
        console.print(
            f"[cyan]vote[/] {tally}" + (f" (+{event.vote.unanswered} unanswered)" if event.vote.unanswered else "")
        )
    elif kind == "tool_call":
        console.print(f"[yellow]call[/] {event.tool_call.name}({event.tool_call.arguments_json})")
    elif kind == "tool_result":
        result = event.tool_result
        console.print(f"[yellow]result[/] {result.output or '[red]' + result.error + '[/]'}")
    elif kind == "retrieval":
        sources = ", ".join(f"{c.document_id} ({c.score:.2f})" for c in event.retrieval.chunks)
        console.print(f"[magenta]retrieved[/] {sources}")
    elif kind == "final":
        final = event.final
        reason = rpb.StopReason.Name(final.stop_reason).removeprefix("STOP_REASON_").lower()
        console.print(f"[bold green]answer:[/] {final.answer or '(none)'}")
        err.print(
            f"[dim]confidence {final.confidence:.2f}, {final.samples_used} sample(s), {reason}, "
            f"{final.usage.prompt_tokens} prompt ({final.usage.cached_prompt_tokens} cached) + "
            f"{final.usage.completion_tokens} generated tokens, {final.seconds:.1f} s[/]"
        )


def cmd_docs(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.docs_command == "ingest":
            docs = [
                {"id": path.name, "text": path.read_text(), "metadata": {"path": str(path)}}
                for path in (Path(name) for name in args.files)
            ]
            reply = client.ingest(args.collection, docs)
            console.print(
                f"{args.collection}: {reply.documents} documents ({reply.replaced} replaced), {reply.chunks} chunks"
            )
        elif args.docs_command == "search":
            hits = client.search(args.collection, args.query, args.top_k or 0).chunks
            _print_rows(
                ("score", "document", "chunk", "text"),
                [(f"{h.score:.3f}", h.document_id, str(h.chunk_index), h.text[:80]) for h in hits],
            )
        elif args.docs_command == "delete":
            console.print(f"deleted {client.delete_documents(args.collection, args.ids).deleted} documents")
        elif args.docs_command == "drop":
            held = client.delete_collection(args.collection).documents
            console.print(f"deleted collection {args.collection} ({held} documents)")
        else:
            rows = [(c.name, str(c.documents), str(c.chunks)) for c in client.list_collections().collections]
            _print_rows(("collection", "documents", "chunks"), rows)
    return 0


def cmd_k8s(args: argparse.Namespace) -> int:
    from . import k8s

    try:
        return _k8s_command(args, k8s)
    except k8s.K8sError as exc:
        err.print(f"[red]kubernetes:[/] {exc}")
        return 1


def _k8s_command(args: argparse.Namespace, k8s: Any) -> int:
    api = k8s.load_api(args.kubeconfig, args.context)
    namespace = args.namespace or k8s.default_namespace(args.kubeconfig, args.context)
    if args.k8s_command == "status":
        status = k8s.get_status(api, namespace, args.release)
        for line in k8s.format_status(status):
            console.print(line, markup=False, highlight=False)
        return 0 if status.ready else 1
    if args.k8s_command == "wait":
        status = k8s.wait_ready(
            api, namespace, args.release, args.timeout, on_update=lambda s: err.print(f"[dim]{s.summary()}[/]")
        )
        console.print(f"{status.namespace}/{status.name} is ready")
        return 0
    for line in k8s.format_endpoints(k8s.get_endpoints(api, namespace, args.release)):
        console.print(line, markup=False, highlight=False)
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    config = _config(str(args.file))
    console.print(
        f"{args.file}: valid ({len(config.models)} model(s), gRPC on {config.gateway.host}:{config.gateway.grpc_port})"
    )
    return 0


def _client_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", default=DEFAULT_TARGET, help="gateway address host:port")
    parser.add_argument("--timeout", type=float, default=300, help="deadline of each call, seconds")
    parser.add_argument("--token-file", help="file holding the bearer token (clusters with auth)")
    parser.add_argument("--ca-cert", help="PEM CA that signed the gateway's certificate: connect with TLS")
    parser.add_argument("--client-cert", help="PEM client certificate, for mutual TLS")
    parser.add_argument("--client-key", help="PEM key of --client-cert")


def _client(args: argparse.Namespace) -> QuorumClient:
    token = Path(args.token_file).read_text().strip() if args.token_file else None
    tls = None
    if args.ca_cert or args.client_cert:
        tls = ClientTLS(ca_file=args.ca_cert, cert_file=args.client_cert, key_file=args.client_key)
    return QuorumClient(args.target, timeout=args.timeout, token=token, tls=tls)


def _sampling_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="", help="model id (default: the cluster's default model)")
    parser.add_argument("--max-tokens", type=int, default=None)
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("-n", type=int, default=None, help="number of choices")
    parser.add_argument("--no-stream", action="store_true", help="wait for the whole answer")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quorum", description="quorum: LLM serving cluster with a gRPC front door")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start Ray, Serve, the engines and the gRPC gateway; Ctrl-C stops all")
    up.add_argument("--config", help="YAML config (default: the one shipped with quorum)")
    up.add_argument("--host", help="override gateway.host")
    up.add_argument("--port", type=int, help="override gateway.grpc_port")
    up.set_defaults(func=cmd_up)

    gen = sub.add_parser("generate", help="complete a raw prompt (streams by default)")
    gen.add_argument("prompt")
    _client_args(gen)
    _sampling_args(gen)
    gen.set_defaults(func=cmd_generate)

    chat = sub.add_parser("chat", help="ask the model one chat question (streams by default)")
    chat.add_argument("message")
    chat.add_argument("--system", help="system prompt")
    _client_args(chat)
    _sampling_args(chat)
    chat.set_defaults(func=cmd_chat)

    models = sub.add_parser("models", help="list served models or prepare the embedded one")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    mlist = models_sub.add_parser("list", help="models served by a running cluster")
    _client_args(mlist)
    mlist.set_defaults(func=cmd_models_list)
    prep = models_sub.add_parser("prepare", help="convert/verify the models of a config (no cluster needed)")
    prep.add_argument("--config", help="YAML config (default: the shipped default)")
    prep.set_defaults(func=cmd_models_prepare)

    verify = models_sub.add_parser(
        "verify", help="compare a served model's greedy answers with HF transformers float32 on the same weights"
    )
    verify.add_argument("--model", default="", help="served model id (default: the cluster's default model)")
    verify.add_argument(
        "--reference",
        help="weights of the reference (directory, hub id or embedded:<name>; default: the served model's source); "
        "for a quantized model, its unquantized original",
    )
    verify.add_argument("--prompts", type=int, default=16, choices=range(1, 17), metavar="1..16", help="prompts used")
    verify.add_argument("--max-tokens", type=int, default=24, help="tokens generated per answer on both sides")
    verify.add_argument("--min-agreement", type=int, default=15, help="exit 1 when fewer prompts agree")
    verify.add_argument("--config", help="YAML config whose model_cache_dir holds embedded models (default: shipped)")
    _client_args(verify)
    verify.set_defaults(func=cmd_models_verify)

    quant = sub.add_parser("quantize", help="write an INT8/INT4 compressed-tensors copy of a model (no cluster needed)")
    quant.add_argument("--scheme", choices=("w8a8", "w4a16"), default="w8a8", help="w8a8: INT8 weights+activations")
    quant.add_argument("--source", required=True, help="Hugging Face model directory or embedded:<name>")
    quant.add_argument("--output", required=True, help="new (or empty) directory for the quantized checkpoint")
    quant.add_argument("--config", help="YAML config whose model_cache_dir holds embedded models (default: shipped)")
    quant.set_defaults(func=cmd_quantize)

    status = sub.add_parser("status", help="health of a running cluster and of each model")
    _client_args(status)
    status.set_defaults(func=cmd_status)

    reason = sub.add_parser("reason", help="answer a question with a server-side reasoning strategy, streaming events")
    reason.add_argument("question")
    reason.add_argument("--strategy", choices=_STRATEGY_CHOICES, default="cot", help="sc = self-consistency")
    reason.add_argument("--samples", type=int, help="k for self-consistency (server default 8)")
    reason.add_argument("--tools", help="comma-separated server tools for react, e.g. calculator")
    reason.add_argument("--collection", help="document collection for rag (and the react retrieve tool)")
    reason.add_argument("--top-k", type=int, help="passages retrieved per search (server default 4)")
    reason.add_argument("--no-early-stop", action="store_true", help="self-consistency: use all k samples")
    reason.add_argument("--model", default="", help="model id (default: the cluster's default model)")
    _client_args(reason)
    reason.set_defaults(func=cmd_reason)

    docs = sub.add_parser("docs", help="document collections for RAG: ingest, search, delete, drop, list")
    docs_sub = docs.add_subparsers(dest="docs_command", required=True)
    ingest = docs_sub.add_parser("ingest", help="index text files (document id = file name)")
    ingest.add_argument("files", nargs="+")
    ingest.add_argument("--collection", required=True)
    search = docs_sub.add_parser("search", help="the chunks closest to a query")
    search.add_argument("query")
    search.add_argument("--collection", required=True)
    search.add_argument("--top-k", type=int)
    delete = docs_sub.add_parser("delete", help="remove documents by id")
    delete.add_argument("ids", nargs="+")
    delete.add_argument("--collection", required=True)
    drop = docs_sub.add_parser("drop", help="remove a whole collection with its documents")
    drop.add_argument("--collection", required=True)
    listing = docs_sub.add_parser("list", help="collections and their sizes")
    for command in (ingest, search, delete, drop, listing):
        _client_args(command)
        command.set_defaults(func=cmd_docs)

    kube = sub.add_parser("k8s", help="a quorum release on Kubernetes (KubeRay RayService)")
    kube_sub = kube.add_subparsers(dest="k8s_command", required=True)
    for name, text in (
        ("status", "RayService and Serve application status"),
        ("wait", "wait until the RayService is ready"),
        ("endpoints", "the release's gRPC and HTTP endpoints"),
    ):
        command = kube_sub.add_parser(name, help=text)
        command.add_argument("--release", default="quorum", help="Helm release name")
        command.add_argument("-n", "--namespace", help="namespace (default: the kubeconfig context's)")
        command.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
        command.add_argument("--context", help="kubeconfig context")
        if name == "wait":
            command.add_argument("--timeout", type=float, default=900, help="seconds")
        command.set_defaults(func=cmd_k8s)

    cfg = sub.add_parser("config", help="configuration helpers")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True)
    check = cfg_sub.add_parser("check", help="validate a YAML config")
    check.add_argument("file")
    check.set_defaults(func=cmd_config_check)
    from quorum.cluster.tune import add_tune_parser  # server command: imports torch only when it runs

    add_tune_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        code: int = args.func(args)
    except CommandError as exc:
        err.print(f"[red]{escape(str(exc))}[/]", highlight=False, soft_wrap=True)
        return exc.code
    except grpc.RpcError as exc:
        err.print(f"[red]{exc.code().name}[/]: {exc.details()}")  # type: ignore[attr-defined]
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
