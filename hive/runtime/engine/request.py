"""A request's mutable state inside the engine, and the result it produces.

`Request` is a plain class on the hot path. Its tokens are
`prompt_ids + output_ids`; the first `num_kv` of them have K/V in the pool, in
`page_ids`; the first `num_tree` of those pages belong to the radix cache and
are locked through `tree_node`. A step computes K/V for
`tokens[num_kv : num_kv + extend_len]` and samples a token once `num_kv`
reaches `len(tokens)`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

import torch

from hive.runtime.engine.errors import EngineError
from hive.runtime.engine.int_mirror import Int64Mirror
from hive.runtime.engine.page_table import PageList
from hive.runtime.engine.sampling_params import SamplingParams

if TYPE_CHECKING:
    from hive.runtime.engine.agent_stats import AgentPrior
    from hive.runtime.engine.logits_cache import TrieNode
    from hive.runtime.engine.radix_cache import TreeNode


class RequestStatus(Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


_next_request_id = itertools.count()


class Request:
    __slots__ = (
        "rid",
        "prompt_ids",
        "output_ids",
        "params",
        "generator",
        "agent_id",
        "priority",
        "prior",
        "status",
        "pages",
        "_token_mirror",
        "num_kv",
        "num_tree",
        "tree_node",
        "finish_reason",
        "error",
        "logprobs",
        "sample_index",
        "prompt_index",
        "on_finish",
        "stop_text_len",
        "num_cached_prompt",
        "num_recomputed_prompt",
        "admitted",
        "age",
        "arrival_step",
        "waiting_since",
        "lc_node",
        "pending_uniform",
        "parked",
        "draft",
    )

    def __init__(
        self,
        prompt_ids: list[int],
        params: SamplingParams,
        seed: int,
        *,
        agent_id: str | None = None,
        priority: int = 0,
        prior: AgentPrior | None = None,
        sample_index: int = 0,
        prompt_index: int = 0,
    ) -> None:
        self.rid = next(_next_request_id)
        self.prompt_ids = prompt_ids
        self.output_ids: list[int] = []
        self.params = params
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(seed)
        self.agent_id = agent_id
        self.priority = priority
        self.prior = prior  # the plan's estimate for its agent (shares, eviction)
        self.status = RequestStatus.WAITING
        self.pages = PageList()
        self._token_mirror = Int64Mirror()
        self.num_kv = 0
        self.num_tree = 0
        self.tree_node: TreeNode | None = None
        self.finish_reason: str | None = None
        self.error: EngineError | None = None  # why it failed (finish_reason "error")
        self.logprobs: list[float] | None = [] if params.logprobs else None
        self.sample_index = sample_index
        self.prompt_index = prompt_index
        self.on_finish: Any = None
        self.stop_text_len: int | None = None  # chars of text kept when a stop string hit
        self.num_cached_prompt = 0  # prompt tokens served by the prefix cache (first admission)
        # Prompt tokens after those that had been computed before and were evicted since:
        # the scheduler marks them in the radix cache once they are back.
        self.num_recomputed_prompt = 0
        self.admitted = False  # admitted at least once (a preempted request is re-admitted)
        self.age = 0  # times it gave way to higher-priority work (raises it as a victim)
        self.arrival_step = 0  # the engine step count when it was queued
        self.waiting_since = 0  # the step count when it last started waiting (starvation)
        # Logits Cache (params.logits_cache): the trie node of the next position, a draw
        # already made for it (replayed past a stored head), and whether it waits for
        # another request computing that same node this step.
        self.lc_node: TrieNode | None = None
        self.pending_uniform: float | None = None
        self.parked = False
        self.draft: tuple[int, ...] = ()  # tokens to verify with the next one (drafts.py)

    @property
    def page_ids(self) -> list[int]:
        """The pages holding this request's K/V (read-only; edit through `pages`)."""
        return self.pages.ids

    @property
    def tokens(self) -> list[int]:
        return self.prompt_ids + self.output_ids

    def token_tensor(self) -> torch.Tensor:
        """prompt + output ids as an int64 CPU tensor (a view, valid until the next token)."""
        return self._token_mirror.view(self.prompt_ids, self.output_ids)

    @property
    def num_tokens(self) -> int:
        return len(self.prompt_ids) + len(self.output_ids)

    @property
    def num_pending(self) -> int:
        """Tokens still to run through the model before the next sample."""
        return self.num_tokens - self.num_kv

    def __repr__(self) -> str:
        return (
            f"Request(rid={self.rid}, status={self.status.value}, prompt={len(self.prompt_ids)}, "
            f"out={len(self.output_ids)}, kv={self.num_kv}, tree={self.num_tree})"
        )


@dataclass
class Completion:
    """One finished sample: its text, token ids and why it stopped.

    `finish_reason` is "stop" (eos, stop token or stop string), "length"
    (max_tokens or the context limit) or "error" (see `error`). `logprobs`
    holds, when asked for, the log-probability of each generated token under
    the model's raw next-token distribution (before temperature and filters).
    """

    text: str
    token_ids: list[int]
    finish_reason: str
    prompt_token_ids: list[int] = field(repr=False)
    prompt_index: int = 0
    sample_index: int = 0
    logprobs: list[float] | None = None
    num_cached_prompt_tokens: int = 0
    error: str | None = None
