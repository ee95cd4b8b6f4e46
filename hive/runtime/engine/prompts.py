"""Prompt forms the engine accepts, normalised to token ids, and text decoding.

A prompt is a string, a list of token ids, or chat messages (a list of
`{"role": ..., "content": ...}` rendered with the model's chat template).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hive.runtime.engine.errors import InvalidRequestError

Prompt = str | Sequence[int] | Sequence[dict[str, Any]]


def is_single_prompt(prompts: Any) -> bool:
    if isinstance(prompts, str):
        return True
    if isinstance(prompts, Sequence) and prompts:
        first = prompts[0]
        return isinstance(first, (int, dict))
    return False


def prompt_to_ids(prompt: Prompt, tokenizer: Any, vocab_size: int) -> list[int]:
    if isinstance(prompt, str):
        if not prompt:
            raise InvalidRequestError("empty prompt")
        _need_tokenizer(tokenizer, "a text prompt")
        ids = list(tokenizer(prompt)["input_ids"])
    elif isinstance(prompt, Sequence) and prompt and all(isinstance(m, dict) for m in prompt):
        _need_tokenizer(tokenizer, "chat messages")
        for m in prompt:
            if not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
                raise InvalidRequestError("chat messages need string 'role' and 'content' fields")
        if getattr(tokenizer, "chat_template", None) is None:
            raise InvalidRequestError("this model's tokenizer has no chat template")
        text = tokenizer.apply_chat_template(
            list(prompt), add_generation_prompt=True, tokenize=False
        )
        ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    elif (
        isinstance(prompt, Sequence)
        and not isinstance(prompt, bytes | bytearray)
        and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt)
    ):
        ids = list(prompt)
        bad = [t for t in ids if not 0 <= t < vocab_size]
        if bad:
            raise InvalidRequestError(f"token id {bad[0]} outside the vocabulary [0, {vocab_size})")
    else:
        raise InvalidRequestError(
            "a prompt must be a string, a list of token ids or a list of chat messages"
        )
    if not ids:
        raise InvalidRequestError("empty prompt")
    return ids


def _need_tokenizer(tokenizer: Any, what: str) -> None:
    if tokenizer is None:
        raise InvalidRequestError(f"{what} needs a tokenizer; this engine has none (pass ids)")


def decode(tokenizer: Any, token_ids: list[int]) -> str:
    if tokenizer is None:
        return ""
    return tokenizer.decode(token_ids, skip_special_tokens=True)


def find_stop(text: str, stops: Sequence[str]) -> int | None:
    """Index in `text` where the earliest stop string starts."""
    hits = [i for s in stops if (i := text.find(s)) >= 0]
    return min(hits) if hits else None
