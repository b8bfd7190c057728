"""Offline effect of a tool-use adapter: base vs base + adapter on reasoning-gym problems, with a calculator loop.

``python -m bench.tool_use_eval --adapter DIR [--items 30] [--seed 7] [--sets basic_arithmetic,chain_sum]``

Both sides run on the same weights under HF transformers, float32, greedy, in this one run: the base model
(adapter disabled) and the base model with the adapter. Each problem is a chat turn offering the ``calculator``
tool, rendered exactly as the server renders it (:func:`quorum.cluster.tool_calls.template_messages`); a reply
that parses as a call (:func:`quorum.cluster.tool_calls.parse_turn`) is answered by the same exact calculator the
server runs, up to ``--max-calls`` times, and the final reply's answer (after ``Answer:``, else its last number)
is scored by reasoning-gym's own verifier (exact match counts). The problems come from reasoning-gym generators
with their own templates, never seen in training (``bench/tool_use_data.py`` writes the training set).

NOTE: unlike the server, nothing here constrains decoding to the tool grammar; the figures measure what the
weights do unaided, which is where an adapter that learned the protocol should differ from the base.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from quorum.cluster.config import DEFAULT_CONFIG, load_config
from quorum.cluster.models import prepare_embedded
from quorum.cluster.tool_calls import parse_turn, template_messages
from quorum.cluster.types import DEFAULT_TOOL_CHOICE, Message, ToolCall, ToolSpec
from quorum.reasoning.tools.base import ToolError
from quorum.reasoning.tools.calculator import Calculator, evaluate, format_number

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
CALCULATOR_SPEC = ToolSpec(
    name=Calculator.name,
    description=Calculator.description,
    parameters_json_schema=json.dumps(dict(Calculator.parameters)),
)


@dataclass(frozen=True)
class Outcome:
    calls: int
    protocol_turns: int
    """Turns that parsed as a tool call or a {"content": ...} reply."""
    turns: int
    arguments: tuple[str, ...]
    """The arguments JSON of each call made."""


def final_answer(reply: str) -> str:
    """The text after the last ``Answer:``, else the last number of ``reply``, else the reply itself."""
    if "Answer:" in reply:
        return reply.rsplit("Answer:", 1)[1].strip().rstrip(".")
    numbers = _NUMBER.findall(reply)
    return numbers[-1] if numbers else reply.strip()


def _tool_result(call: ToolCall) -> str:
    try:
        expression = json.loads(call.arguments_json).get("expression")
        if not isinstance(expression, str):
            return 'error: arguments must be {"expression": "<arithmetic>"}'
        return format_number(evaluate(expression))
    except (ToolError, ValueError, AttributeError) as exc:
        return f"error: {exc}"


def solve(model: Any, tokenizer: Any, question: str, max_calls: int, max_new_tokens: int) -> tuple[str, Outcome]:
    """The final reply to ``question`` after at most ``max_calls`` calculator calls, and how it went."""
    import torch

    messages: list[Message] = [Message(role="user", content=question)]
    calls = protocol = turns = 0
    arguments: list[str] = []
    reply = ""
    while True:
        rendered = template_messages(messages, (CALCULATOR_SPEC,), DEFAULT_TOOL_CHOICE)
        text = tokenizer.apply_chat_template(rendered, tokenize=False, add_generation_prompt=True)
        encoded = tokenizer(text, add_special_tokens=False, return_tensors="pt")
        with torch.inference_mode():
            output = model.generate(
                **encoded, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.eos_token_id
            )
        generated = tokenizer.decode(output[0, encoded["input_ids"].shape[1] :], skip_special_tokens=True).strip()
        turns += 1
        reply, turn_calls = parse_turn(generated)
        protocol += bool(turn_calls) or reply != generated
        if not turn_calls or calls >= max_calls:
            break
        call = turn_calls[0]
        calls += 1
        arguments.append(call.arguments_json)
        messages.append(Message(role="assistant", content="", tool_calls=(call,)))
        messages.append(Message(role="tool", content=_tool_result(call), tool_call_id=call.id))
    return reply, Outcome(calls=calls, protocol_turns=protocol, turns=turns, arguments=tuple(arguments))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--adapter", required=True, help="adapter directory written by quorum tune")
    parser.add_argument("--items", type=int, default=30, help="problems per set")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sets", default="basic_arithmetic,chain_sum", help="reasoning-gym dataset names")
    parser.add_argument("--max-calls", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--show", type=int, default=0, help="print the first N transcripts of each side")
    args = parser.parse_args(argv)

    import reasoning_gym
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_dir = prepare_embedded("smollm2-135m-instruct", load_config(DEFAULT_CONFIG).model_cache_dir, progress=False)
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    base = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    model = PeftModel.from_pretrained(base, args.adapter)
    model.eval()
    print(f"{'set':<18}{'model':<9}{'correct':>9}{'calls/item':>12}{'protocol turns':>16}{'seconds':>9}")
    for name in args.sets.split(","):
        dataset = reasoning_gym.create_dataset(name, size=args.items, seed=args.seed)
        accuracy: dict[str, int] = {}
        shown: dict[str, int] = {}
        for side in ("base", "adapter"):
            started = time.monotonic()
            correct = calls = protocol = turns = 0
            for entry in dataset:
                with model.disable_adapter() if side == "base" else contextlib.nullcontext():
                    reply, outcome = solve(model, tokenizer, entry["question"], args.max_calls, args.max_new_tokens)
                right = dataset.score_answer(answer=final_answer(reply), entry=entry) == 1.0
                correct += right
                if shown.get(side, 0) < args.show:
                    shown[side] = shown.get(side, 0) + 1
                    print(
                        f"  [{side}] {entry['question']!r} expected {entry['answer']}: "
                        f"calls {list(outcome.arguments)}, reply {reply!r}, correct {right}"
                    )
                calls += outcome.calls
                protocol += outcome.protocol_turns
                turns += outcome.turns
            accuracy[side] = correct
            print(
                f"{name:<18}{side:<9}{f'{correct}/{args.items}':>9}{calls / args.items:>12.2f}"
                f"{f'{protocol}/{turns}':>16}{time.monotonic() - started:>9.0f}",
                flush=True,
            )
        ratio = accuracy["adapter"] / accuracy["base"] if accuracy["base"] else float("inf")
        print(f"{name}: adapter/base correct ratio {ratio:.2f} ({accuracy['adapter']} vs {accuracy['base']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
