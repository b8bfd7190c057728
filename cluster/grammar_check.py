"""Compile-time budget for output constraints: compile each new one outside the engine first.

vLLM compiles grammars with xgrammar inside the EngineCore process; a compile
that runs for minutes stalls every constrained request behind it (and a thread
that has started compiling cannot be stopped). So an LLM-server replica keeps
one helper process that compiles constraints exactly as vLLM's xgrammar backend
does (same tokenizer, vocabulary size and options). A constraint goes to the
engine only after the helper compiled it within ``constraints.compile_timeout_s``;
one that takes longer is refused (INVALID_ARGUMENT naming its field).

The helper starts with the replica's first constrained request (replicas that
never see one do not pay for it), loads xgrammar (with torch) and the tokenizer
once (~0.5 GB RSS, 10-30 s on a loaded 2-core host), then forks a child per
compile: the child compiles and reports; a child over the budget is killed. So
a refused constraint costs the budget and nothing more, and the next one does
not wait for a restart. The replica kills and restarts the whole helper only if
it stops answering. Outcomes are remembered by the constraint's hash in an LRU
of ``constraints.compile_cache_size`` entries: a repeated constraint (every
ReAct step of a run, a client's fixed schema) costs a dictionary lookup. A
refusal for time is remembered for :data:`TIMEOUT_MEMORY_S` only (the host may
have been busy), other outcomes until evicted.

The helper speaks JSON lines on stdin/stdout: ``{"kind": "json"|"regex"|"choice",
"spec": ...}`` in, ``{"ok": true}``, ``{"ok": false, "error": ...}`` or
``{"ok": false, "timeout": true}`` out; its first line is ``{"ready": true}``
once the tokenizer is loaded. It exits when its stdin closes or its parent
process is gone.

NOTE: the engine compiles an accepted constraint once more (its own compiler
and cache): the check costs one extra compile of each *new* constraint, in
another process, and nothing for a repeated one.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import select
import signal
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import IO, Any

from .config import ConstraintsConfig
from .constraints import check_constraint, constraint_field
from .errors import EngineUnavailable, InvalidArgument
from .types import OutputConstraint

logger = logging.getLogger(__name__)
STARTUP_TIMEOUT_S = 300.0
REPLY_MARGIN_S = 10.0  # beyond the compile budget, before the replica gives up on the helper itself
PARENT_POLL_S = 1.0
# A refusal for time is remembered this long, not for good: the same constraint may compile on a less
# loaded host, and meanwhile a client repeating it costs a lookup, not another budget.
TIMEOUT_MEMORY_S = 300.0
_STREAM_LIMIT = 1 << 20


@dataclass(frozen=True)
class CompileJob:
    """What the helper compiles: the grammar kind and its spec, as vLLM's xgrammar backend receives them."""

    kind: str  # "json", "regex" or "choice"
    spec: str | list[str]

    @classmethod
    def of(cls, constraint: OutputConstraint) -> CompileJob:
        if constraint.json_schema is not None:
            return cls("json", constraint.json_schema)
        if constraint.regex is not None:
            return cls("regex", constraint.regex)
        return cls("choice", list(constraint.choice or ()))

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps([self.kind, self.spec]).encode("utf-8", "surrogatepass")).hexdigest()


class GrammarChecker:
    """Static bounds, then a time-boxed compile in the helper process, with an LRU of outcomes."""

    def __init__(self, limits: ConstraintsConfig, tokenizer: str, vocab_size: int, trust_remote_code: bool) -> None:
        self._limits = limits
        self._command = [
            sys.executable,
            "-m",
            __name__,
            "--tokenizer",
            tokenizer,
            "--vocab-size",
            str(vocab_size),
            "--timeout",
            str(limits.compile_timeout_s),
            *(["--trust-remote-code"] if trust_remote_code else []),
        ]
        self._process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        # key -> ("" when compiled, else why it was refused; monotonic time the outcome expires, or None)
        self._outcomes: OrderedDict[str, tuple[str, float | None]] = OrderedDict()
        self.compiles = 0  # constraints sent to the helper (cache misses), for tests and metrics

    async def check(self, constraint: OutputConstraint) -> None:
        """Return when ``constraint`` may go to the engine; raise :class:`InvalidArgument` naming its field."""
        field = constraint_field(constraint)
        job = CompileJob.of(constraint)
        key = job.key
        outcome = self._remembered(key)
        if outcome is None:
            # NOTE: only constraints within the static bounds are remembered, so a hit skips that check too.
            check_constraint(constraint, self._limits)
            async with self._lock:
                outcome = self._remembered(key)
                if outcome is None:
                    outcome, timed_out = await self._compile(job)
                    self._remember(key, outcome, TIMEOUT_MEMORY_S if timed_out else None)
        if outcome:
            raise InvalidArgument(field, outcome)

    async def start(self) -> None:
        """Start the helper now (it is also started on demand)."""
        async with self._lock:
            await self._ensure_process()

    def close(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.kill()

    def _remembered(self, key: str) -> str | None:
        entry = self._outcomes.get(key)
        if entry is None:
            return None
        outcome, expires = entry
        if expires is not None and time.monotonic() > expires:
            del self._outcomes[key]
            return None
        self._outcomes.move_to_end(key)
        return outcome

    def _remember(self, key: str, outcome: str, ttl_s: float | None) -> None:
        if self._limits.compile_cache_size == 0:
            return
        self._outcomes[key] = (outcome, None if ttl_s is None else time.monotonic() + ttl_s)
        while len(self._outcomes) > self._limits.compile_cache_size:
            self._outcomes.popitem(last=False)

    async def _ensure_process(self) -> asyncio.subprocess.Process:
        process = self._process
        if process is not None and process.returncode is None:
            return process
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            *self._command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=_STREAM_LIMIT
        )
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), STARTUP_TIMEOUT_S)
        except TimeoutError:
            line = b""
        if not line or not json.loads(line).get("ready"):
            process.kill()
            await process.wait()
            raise EngineUnavailable("the grammar checker of this replica did not start; retry shortly")
        logger.info("grammar checker started in %.1f s (pid %d)", time.monotonic() - started, process.pid)
        self._process = process
        return process

    async def _compile(self, job: CompileJob) -> tuple[str, bool]:
        """("" when the helper compiled ``job`` in time, else why it is refused; whether it ran out of time)."""
        process = await self._ensure_process()
        assert process.stdin is not None
        assert process.stdout is not None
        self.compiles += 1
        timeout = self._limits.compile_timeout_s
        try:
            process.stdin.write(json.dumps({"kind": job.kind, "spec": job.spec}).encode("utf-8", "surrogatepass"))
            process.stdin.write(b"\n")
            await process.stdin.drain()
            line = await asyncio.wait_for(process.stdout.readline(), timeout + REPLY_MARGIN_S)
        except TimeoutError:
            logger.error("the grammar checker stopped answering; restarting it")
            await self._kill(process)
            line = b'{"ok": false, "timeout": true}'
        except (ConnectionError, BrokenPipeError):
            line = b""
        if not line:
            await self._kill(process)
            return "the grammar compiler failed on it (the checker process ended); simplify it", True
        reply: dict[str, Any] = json.loads(line)
        if reply.get("ok"):
            return "", False
        if reply.get("timeout"):
            logger.warning("a %s constraint did not compile within %g s: refused", job.kind, timeout)
            return (
                f"the grammar did not compile within {timeout:g} s (constraints.compile_timeout_s); "
                "simplify it (fewer properties, alternatives or repetitions)"
            ), True
        return f"cannot be compiled into a grammar: {reply.get('error', 'unknown error')}", False

    async def _kill(self, process: asyncio.subprocess.Process) -> None:
        if process.returncode is None:
            process.kill()
        await process.wait()
        if self._process is process:
            self._process = None


def choice_grammar(choices: list[str]) -> str:
    """The EBNF grammar vLLM's xgrammar backend builds from a choice list (``choice_as_grammar``)."""
    escapes = {"\\": r"\\", '"': r"\"", "\n": r"\n", "\r": r"\r", "\t": r"\t"}

    def escape(char: str) -> str:
        if char in escapes:
            return escapes[char]
        if ord(char) < 0x20 or ord(char) == 0x7F:
            return f"\\u{ord(char):04x}"
        return char

    return "root ::= " + " | ".join('"' + "".join(escape(c) for c in choice) + '"' for choice in choices)


def _exit_with_parent() -> None:
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(0)


def _compile(compiler: Any, job: dict[str, Any]) -> dict[str, Any]:
    try:
        if job["kind"] == "json":
            compiler.compile_json_schema(job["spec"], any_whitespace=True)
        elif job["kind"] == "regex":
            compiler.compile_regex(job["spec"])
        else:
            compiler.compile_grammar(choice_grammar(job["spec"]))
    except Exception as exc:  # noqa: BLE001 - any compile failure is the constraint's problem
        text = str(exc).strip()
        return {"ok": False, "error": text.splitlines()[0][:500] if text else repr(exc)}
    return {"ok": True}


def _compile_in_child(compiler: Any, job: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Compile in a forked child (sharing the loaded tokenizer copy-on-write); kill it after ``timeout_s``."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: compile, report, exit without running the parent's cleanup
        os.close(read_end)
        os.write(write_end, json.dumps(_compile(compiler, job)).encode())
        os._exit(0)
    os.close(write_end)
    data = b""
    try:
        ready, _, _ = select.select([read_end], [], [], timeout_s)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            return {"ok": False, "timeout": True}
        while chunk := os.read(read_end, 1 << 16):
            data += chunk
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    if not data:
        return {"ok": False, "error": "the compiler crashed"}
    reply: dict[str, Any] = json.loads(data)
    return reply


def _serve(tokenizer_path: str, vocab_size: int, trust_remote_code: bool, timeout_s: float, out: IO[str]) -> None:
    import xgrammar
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path, trust_remote_code=trust_remote_code)
    info = xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size)
    # Like the engine's compiler (vLLM's xgrammar backend), minus its cache: outcomes are cached by the replica.
    compiler = xgrammar.GrammarCompiler(info, max_threads=1, cache_enabled=False)
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        out.write(json.dumps(_compile_in_child(compiler, json.loads(line), timeout_s)) + "\n")
        out.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="quorum's grammar-check helper (started by an LLM-server replica)")
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--vocab-size", type=int, required=True)
    parser.add_argument("--trust-remote-code", action="store_true")
    parser.add_argument("--timeout", type=float, required=True, help="seconds one compile may take")
    args = parser.parse_args(argv)
    # The protocol owns the original stdout; anything libraries print goes to stderr.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    _serve(args.tokenizer, args.vocab_size, args.trust_remote_code, args.timeout, out)


if __name__ == "__main__":
    main()
