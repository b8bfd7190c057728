"""Prompt token ids: a raw prompt, or a conversation rendered with the model's chat template.

Shared by the LLM server (what the engine runs) and the prefix-aware router (what it hashes), so both
see exactly the same tokens.
"""

from __future__ import annotations

from typing import Any

from .tool_calls import template_messages
from .types import DEFAULT_TOOL_CHOICE, GenerationRequest, Message, ToolChoice, ToolSpec


class PromptEncoder:
    """Wraps a Hugging Face tokenizer (or vLLM's wrapper of one)."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer

    def encode(
        self,
        prompt: str | None,
        messages: tuple[Message, ...] | None,
        tools: tuple[ToolSpec, ...] = (),
        tool_choice: ToolChoice = DEFAULT_TOOL_CHOICE,
    ) -> list[int]:
        tokenizer = self._tokenizer
        if messages is not None:
            text = tokenizer.apply_chat_template(
                template_messages(messages, tools, tool_choice), tokenize=False, add_generation_prompt=True
            )
            return list(tokenizer.encode(text, add_special_tokens=False))
        return list(tokenizer.encode(prompt or ""))

    def encode_request(self, request: GenerationRequest) -> list[int]:
        return self.encode(request.prompt, request.messages, request.tools, request.tool_choice)
