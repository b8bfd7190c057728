"""RAG answer and citation accuracy on generated documents of fictional facts.

Run ``python -m bench.rag``. It starts a ``LocalCluster`` (the shipped config's
first model, the embedded SmolLM2-135M-Instruct; a private local Ray; a
temporary document store), ingests ``--documents`` generated documents over
``ReasoningService.Ingest``, asks ``--questions`` questions with
``STRATEGY_RAG`` and scores:

- answer accuracy: the gold answer (a made-up name, city or year) appears in
  the final answer;
- citation accuracy: the gold document is the first of ``final.citations``;
- retrieval recall@k: the gold document is among the retrieved chunks (a
  diagnostic: citations cannot be right when retrieval missed).

The last line is ``rag answer_acc=<a> citation_acc=<c>``. Everything it starts
is stopped before it exits.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass

import grpc
from rich.console import Console

from quorum.cluster.config import DEFAULT_CONFIG, QuorumConfig
from quorum.services.local import LocalCluster
from quorum.v1 import reasoning_pb2 as rpb
from quorum.v1 import reasoning_pb2_grpc

from .rag_corpus import Question, generate, is_correct
from .reasoning import bench_config, descendants, wait_gone

COLLECTION = "bench-rag"


@dataclass
class Outcome:
    question: Question
    answer: str = ""
    citations: tuple[str, ...] = ()
    retrieved: tuple[str, ...] = ()
    seconds: float = 0.0
    error: str = ""

    @property
    def answer_ok(self) -> bool:
        return is_correct(self.answer, self.question.answer)

    @property
    def citation_ok(self) -> bool:
        return bool(self.citations) and self.citations[0] == self.question.document_id


def rag_config(args: argparse.Namespace, data_dir: str) -> QuorumConfig:
    config = bench_config(args.config, args.dtype, 120)
    return config.model_copy(
        update={
            "rag": config.rag.model_copy(update={"data_dir": data_dir}),
            "ray": config.ray.model_copy(update={"app_name": "quorum-bench-rag"}),
        }
    )


async def ask(stub: reasoning_pb2_grpc.ReasoningServiceStub, question: Question, top_k: int) -> Outcome:
    outcome = Outcome(question)
    started = time.perf_counter()
    request = rpb.ReasonRequest(
        question=question.question,
        strategy=rpb.STRATEGY_RAG,
        collection=COLLECTION,
        answer_format=rpb.ANSWER_FORMAT_TEXT,
        top_k=top_k,
    )
    try:
        async for event in stub.Reason(request, timeout=300):  # type: ignore[attr-defined]
            kind = event.WhichOneof("event")
            if kind == "retrieval":
                outcome.retrieved = tuple(chunk.document_id for chunk in event.retrieval.chunks)
            elif kind == "final":
                outcome.answer = event.final.answer
                outcome.citations = tuple(event.final.citations)
    except grpc.aio.AioRpcError as error:
        outcome.error = f"{error.code().name}: {error.details()}"
    outcome.seconds = time.perf_counter() - started
    return outcome


async def benchmark(target: str, args: argparse.Namespace, console: Console) -> list[Outcome]:
    documents, questions = generate(args.documents, args.seed)
    questions = questions[: args.questions]
    async with grpc.aio.insecure_channel(target) as channel:
        stub = reasoning_pb2_grpc.ReasoningServiceStub(channel)
        started = time.perf_counter()
        ingest = rpb.IngestRequest(
            collection=COLLECTION,
            documents=[rpb.Document(id=d.id, text=d.text, metadata={"title": d.title}) for d in documents],
        )
        reply = await stub.Ingest(ingest, timeout=600)  # type: ignore[misc]
        console.print(
            f"ingested {reply.documents} documents ({reply.chunks} chunks) in {time.perf_counter() - started:.1f} s"
        )
        limit = asyncio.Semaphore(args.concurrency)

        async def one(question: Question) -> Outcome:
            async with limit:
                outcome = await ask(stub, question, args.top_k)
            if args.verbose:
                mark = "ok " if outcome.answer_ok else "BAD"
                console.print(
                    f"{mark} {question.question!r} gold={question.answer!r} ({question.document_id}) "
                    f"answer={outcome.answer!r} cited={list(outcome.citations)} {outcome.error}"
                )
            return outcome

        started = time.perf_counter()
        outcomes = list(await asyncio.gather(*(one(q) for q in questions)))
        console.print(f"{len(outcomes)} questions in {time.perf_counter() - started:.1f} s")
    return outcomes


def share(flags: list[bool]) -> float:
    return sum(flags) / len(flags) if flags else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--documents", type=int, default=40, help="generated documents (3 questions each)")
    parser.add_argument("--questions", type=int, default=60, help="questions asked")
    parser.add_argument("--seed", type=int, default=0, help="generator seed")
    parser.add_argument("--top-k", type=int, default=0, help="chunks retrieved per question (0: server default)")
    parser.add_argument("--concurrency", type=int, default=4, help="Reason calls in flight")
    parser.add_argument("--dtype", default="float32", help="engine dtype (the shipped config says float32)")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="quorum config file (first model used)")
    parser.add_argument("--verbose", action="store_true", help="print every question")
    args = parser.parse_args()
    console = Console(width=160)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="quorum-bench-rag-") as data_dir:
        config = rag_config(args, data_dir)
        with LocalCluster(config) as cluster:
            cluster.wait_ready(timeout_s=config.models[0].engine.startup_timeout_s)
            console.print(f"cluster ready after {time.perf_counter() - started:.0f} s at {cluster.target}")
            outcomes = asyncio.run(benchmark(cluster.target, args, console))
            children = descendants()
        wait_gone(children, console)
    errors = [o for o in outcomes if o.error]
    if errors:
        console.print(f"[red]warning: {len(errors)} questions failed, e.g. {errors[0].error}[/]")
    recall = share([o.question.document_id in o.retrieved for o in outcomes])
    seconds = sorted(o.seconds for o in outcomes)
    console.print(
        f"retrieval recall@k {recall:.3f}; median latency {seconds[len(seconds) // 2]:.2f} s; "
        f"total wall time {time.perf_counter() - started:.0f} s"
    )
    print(
        f"rag answer_acc={share([o.answer_ok for o in outcomes]):.3f} "
        f"citation_acc={share([o.citation_ok for o in outcomes]):.3f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
