"""The engine: schedule, run the model over the ragged batch, sample, post-process.

`generate` drives the loop synchronously; `submit` is the asyncio interface
(serving.py): steps run on a worker thread while the event loop stays free,
and concurrent submits share batches.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from hive.runtime.engine.agent_stats import AgentPrior, AgentStats
from hive.runtime.engine.attention import backend_class
from hive.runtime.engine.config import DEFAULT_KV_TOKENS, EngineConfig, make_config
from hive.runtime.engine.errors import EngineError, InvalidRequestError, KVCacheTooSmallError
from hive.runtime.engine.eviction import make_eviction_policy
from hive.runtime.engine.forward_batch import build_forward_batch
from hive.runtime.engine.kv_pool import (
    KVPool,
    available_memory_bytes,
    bytes_per_token,
    num_pages_for,
)
from hive.runtime.engine.linear import default_float32_kernel
from hive.runtime.engine.logits_cache import LogitsCache
from hive.runtime.engine.logits_replay import LogitsReplay
from hive.runtime.engine.model import LlamaModel
from hive.runtime.engine.model_config import model_args_from_hf
from hive.runtime.engine.model_loader import load_hf_model, resolve_model
from hive.runtime.engine.prompts import Prompt, decode, find_stop, is_single_prompt, prompt_to_ids
from hive.runtime.engine.radix_cache import RadixCache
from hive.runtime.engine.replay_trace import TraceRequest
from hive.runtime.engine.request import Completion, Request, RequestStatus
from hive.runtime.engine.sampler import Sampler
from hive.runtime.engine.sampling_params import SamplingParams
from hive.runtime.engine.scheduler import Scheduler, generation_rows
from hive.runtime.engine.serving import AsyncServing
from hive.runtime.engine.stats import EngineStats
from hive.runtime.engine.stored_distribution import StoredDistribution

STOP_WINDOW_SLACK = 8  # extra tokens decoded when looking for stop strings
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class Engine(AsyncServing):
    def __init__(self, hf_model: Any, tokenizer: Any, config: EngineConfig) -> None:
        self.config = config
        self.tokenizer = tokenizer
        device = torch.device(config.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise EngineError("device='cuda' but CUDA is not available")
        dtype = _DTYPES[config.dtype or ("float32" if device.type == "cpu" else "bfloat16")]
        hf_config = hf_model.config
        self.args = args = model_args_from_hf(hf_config)
        limits = [args.max_position_embeddings]
        if config.max_context is not None:
            limits.append(config.max_context)
        if args.sliding_window is not None:
            limits.append(args.sliding_window)  # full attention is exact up to the window
        self.max_context = min(limits)
        state = hf_model.state_dict()
        self.float32_kernel = config.float32_kernel or default_float32_kernel()
        self.model = LlamaModel(
            args,
            state,
            hf_config,
            self.max_context,
            device,
            dtype,
            pack_weights=_should_pack(
                config.packed_weights, state, dtype, device, self.float32_kernel
            ),
            float32_kernel=self.float32_kernel,
        )
        self.eos_ids = _eos_ids(hf_model, tokenizer)
        num_pages = num_pages_for(
            kv_cache_tokens=config.kv_cache_tokens,
            kv_cache_bytes=config.kv_cache_bytes,
            page_size=config.page_size,
            token_bytes=bytes_per_token(args.num_layers, args.num_kv_heads, args.head_dim, dtype),
            default_tokens=DEFAULT_KV_TOKENS,
            available_bytes=available_memory_bytes(device),
        )
        self.pool = KVPool(
            args.num_layers,
            num_pages,
            config.page_size,
            args.num_kv_heads,
            args.head_dim,
            dtype,
            device,
        )
        self.attention = backend_class(config.attention)(
            self.pool, args.num_heads, self.model.scale
        )
        self.cache = RadixCache(
            self.pool.allocator, config.page_size, make_eviction_policy(config.eviction_policy)
        )
        self._stats = EngineStats()
        self.scheduler = Scheduler(
            self.pool,
            self.cache,
            self._stats,
            config.max_batch_tokens,
            config.max_running_requests,
            admission=config.admission,
        )
        self.sampler = Sampler()
        self.logits_cache = LogitsCache(
            int(config.logits_cache_mb * 2**20), index_drafts=config.draft_tokens > 0
        )
        self.replay = LogitsReplay(self.logits_cache, self.scheduler, self._check_finished)
        self.device = device
        # With record_trace, every finished request, for replay.replay(..., policy=...).
        self.trace: list[tuple[int, TraceRequest]] | None = [] if config.record_trace else None
        self._init_serving()

    @classmethod
    def from_pretrained(cls, model: str | None = None, **options: Any) -> Engine:
        """Load `model` (None / "smollm2-135m", a directory, a .gguf file, a cached HF id)."""
        config = make_config(model=model, **options)
        hf_model, tokenizer = load_hf_model(resolve_model(model))
        return cls(hf_model, tokenizer, config)

    @classmethod
    def from_hf(cls, hf_model: Any, tokenizer: Any = None, **options: Any) -> Engine:
        """Build from an already loaded transformers model (tests, custom loading)."""
        return cls(hf_model, tokenizer, make_config(**options))

    # -- requests -------------------------------------------------------------------------

    def add_request(
        self,
        prompt: Prompt,
        params: SamplingParams | None = None,
        *,
        agent_id: str | None = None,
        priority: int = 0,
        prior: AgentPrior | None = None,
        prompt_index: int = 0,
    ) -> list[Request]:
        """Validate and queue `params.n` requests for `prompt`; raise InvalidRequestError."""
        requests = self.make_requests(
            prompt,
            params,
            agent_id=agent_id,
            priority=priority,
            prior=prior,
            prompt_index=prompt_index,
        )
        for request in requests:
            self.scheduler.add(request)
        return requests

    def make_requests(
        self,
        prompt: Prompt,
        params: SamplingParams | None = None,
        *,
        agent_id: str | None = None,
        priority: int = 0,
        prior: AgentPrior | None = None,
        prompt_index: int = 0,
    ) -> list[Request]:
        """Validate `prompt` and build its `params.n` requests without queueing them."""
        params = params or SamplingParams()
        if not isinstance(params, SamplingParams):
            raise InvalidRequestError(f"params must be SamplingParams, got {type(params).__name__}")
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise InvalidRequestError(f"priority must be an integer, got {priority!r}")
        if prior is not None and not isinstance(prior, AgentPrior):
            raise InvalidRequestError(f"prior must be an AgentPrior, got {type(prior).__name__}")
        if params.stop and self.tokenizer is None:
            raise InvalidRequestError("stop strings need a tokenizer; use stop_token_ids")
        ids = prompt_to_ids(prompt, self.tokenizer, self.args.vocab_size)
        if len(ids) >= self.max_context:
            raise InvalidRequestError(
                f"prompt has {len(ids)} tokens; the context holds {self.max_context} "
                "(prompt + at least one generated token)"
            )
        if len(ids) + 1 > self.pool.capacity_tokens:
            raise KVCacheTooSmallError(
                f"KV pool of {self.pool.capacity_tokens} tokens cannot hold a prompt of "
                f"{len(ids)} tokens; raise kv_cache_tokens"
            )
        base_seed = params.seed if params.seed is not None else _random_seed()
        requests = [
            Request(
                ids,
                params,
                (base_seed + i) % 2**63,
                agent_id=agent_id,
                priority=priority,
                prior=prior,
                sample_index=i,
                prompt_index=prompt_index,
            )
            for i in range(params.n)
        ]
        return requests

    def has_unfinished(self) -> bool:
        return self.scheduler.has_work()

    # -- the loop -------------------------------------------------------------------------

    def step(self) -> list[Request]:
        """Run one scheduling + forward + sampling step; return requests finished in it."""
        finished = self.advance()
        self._notify(finished)
        return finished

    def advance(self) -> list[Request]:
        """`step` without the finish callbacks (the async server runs them on its loop)."""
        finished = self._walk_logits_cache()
        if self.logits_cache.enabled and self.config.draft_tokens:
            self.replay.propose_drafts(
                self.scheduler.running, self.config.draft_tokens, self.max_context
            )
        schedule = self.scheduler.schedule()
        finished += schedule.failed
        for req in schedule.failed:  # the scheduler finished them with "error"
            self._retire(req, failed=True)
        if schedule.items:
            finished += self._run(schedule)
            finished += self._walk_logits_cache()  # parked paths replay what this step stored
        return finished

    def _walk_logits_cache(self) -> list[Request]:
        """Replay the Logits Cache's requests; those it finished (no forward pass)."""
        if not self.logits_cache.enabled:
            return []
        finished = self.replay.walk([*self.scheduler.running, *self.scheduler.waiting])
        for req in finished:
            self._retire(req)
        return finished

    def _retire(self, req: Request, failed: bool = False) -> None:
        """Count a request the scheduler just finished, release its Logits Cache claims,
        keep it for the trace."""
        if failed:
            self._stats.num_failed += 1
        else:
            self._stats.num_finished += 1
        self.replay.finished(req)
        self._record(req)

    def _run(self, schedule: Any) -> list[Request]:
        items = schedule.items
        chunks, starts, pages, page_tensors, counts = [], [], [], [], []
        num_decode = schedule.num_decode
        for item in items:
            req = item.request
            if item.draft:
                # A draft's tokens run as decode rows of their own, one per position, on
                # the request's pages (each writes its K/V before any row attends), so
                # they share the decode path's batched attention and its read of the
                # common prefix; the scheduler puts them right after the decode rows.
                tokens = [req.tokens[item.start], *item.draft]
                chunks += [[t] for t in tokens]
                starts += range(item.start, item.start + len(tokens))
                pages += [req.page_ids] * len(tokens)
                page_tensors += [req.pages.tensor()] * len(tokens)
                counts += [1] * len(tokens)
                num_decode += len(tokens)
                continue
            if item.extend_len == 1 and req.num_pending == 1:
                chunks.append([req.output_ids[-1] if req.output_ids else req.prompt_ids[-1]])
            else:
                chunks.append(req.tokens[item.start : item.start + item.extend_len])
            starts.append(item.start)
            pages.append(req.page_ids)
            page_tensors.append(req.pages.tensor())
            counts.append(1 if item.is_sampled else 0)
        batch = build_forward_batch(
            chunks, starts, pages, num_decode, counts, self.device, page_tensors
        )
        generation = generation_rows(items)
        started = time.perf_counter()
        logits = self.model.forward(batch, self.attention)
        sampled_items = [item for item in items if item.is_sampled]
        sampled = [item.request for item in sampled_items]
        drafts = [item.draft for item in sampled_items]
        first_rows, blocks = logits, None
        if any(drafts):  # each request's block of 1 + len(draft) rows, and its first row
            blocks = list(itertools.accumulate((1 + len(d) for d in drafts[:-1]), initial=0))
            first_rows = logits[blocks]
        capture = self.replay.capture(sampled)
        token_ids, logprobs, stored = (
            self.sampler(first_rows, sampled, capture) if sampled else ([], None, [])
        )
        verified = self._verify_drafts(logits, blocks, sampled, drafts, token_ids) if blocks else {}
        self._stats.forward_seconds += time.perf_counter() - started
        self._stats.num_steps += 1
        decode_tokens = sum(i.extend_len for i, g in zip(items, generation, strict=True) if g)
        self._stats.num_decode_tokens += decode_tokens
        self._stats.num_prefill_tokens += batch.num_tokens - decode_tokens

        rows = iter(range(len(sampled)))  # commit visits the sampled rows in this order

        def take_token(req: Request) -> bool:
            row = next(rows)
            logprob = logprobs[row] if logprobs is not None else None
            done = self._append(req, token_ids[row], logprob, stored[row])
            draft = drafts[row]
            if not draft:
                return done
            taken = 0  # draft tokens now in the output, which have K/V
            for token, logprob, dist in verified.get(row, ()):
                if done:
                    break
                taken += 1
                done = self._append(req, token, logprob, dist)
            req.num_kv -= len(draft) - taken  # the rejected draft's K/V is dropped
            if not done:
                self.scheduler.trim_pages(req)
            self._stats.num_draft_tokens += len(draft)
            self._stats.num_accepted_draft_tokens += taken
            return done

        finished = self.scheduler.commit(items, generation, take_token)
        for req in finished:
            self._retire(req)
        return finished

    def _append(
        self,
        req: Request,
        token: int,
        logprob: float | None,
        dist: StoredDistribution | None,
    ) -> bool:
        """Give `req` a token the model computed now; True if that finished it."""
        req.output_ids.append(token)
        if req.logprobs is not None and logprob is not None:
            req.logprobs.append(logprob)
        self.replay.sampled(req, dist)
        return self._check_finished(req)

    def _verify_drafts(
        self,
        logits: torch.Tensor,
        blocks: list[int],
        sampled: list[Request],
        drafts: list[tuple[int, ...]],
        first_tokens: list[int],
    ) -> dict[int, list[tuple[int, float | None, StoredDistribution | None]]]:
        """Sample the draft positions the way decode steps would (drafts.py): row i of a
        request's block only once the token sampled at row i - 1 equals draft[i - 1], each
        with one draw of its generator (`blocks`: each request's first row). Returns, per
        sampled request index, its tokens after the first (token, raw logprob, stored
        distribution); the caller stops at a finish."""
        out: dict[int, list[tuple[int, float | None, StoredDistribution | None]]] = {}
        depth = 0
        active = [j for j, d in enumerate(drafts) if d and first_tokens[j] == d[0]]
        while active:
            depth += 1  # row `depth` of each active block: the position after draft[depth - 1]
            reqs = [sampled[j] for j in active]
            tokens, logprobs, stored = self.sampler(
                logits[[blocks[j] + depth for j in active]],
                reqs,
                [self.replay.uses_cache(r) for r in reqs],
            )
            for k, j in enumerate(active):
                lp = logprobs[k] if logprobs is not None else None
                out.setdefault(j, []).append((tokens[k], lp, stored[k]))
            active = [
                j
                for k, j in enumerate(active)
                if depth < len(drafts[j]) and tokens[k] == drafts[j][depth]
            ]
        return out

    def _check_finished(self, req: Request) -> bool:
        params, token = req.params, req.output_ids[-1]
        if token in params.stop_token_ids or (not params.ignore_eos and token in self.eos_ids):
            req.finish_reason = "stop"
        elif params.stop and self.tokenizer is not None:
            # Look in the last few tokens only (a stop string of L characters spans at
            # most L tokens); decode the whole output just once, when one is there.
            window = max(len(stop) for stop in params.stop) + STOP_WINDOW_SLACK
            if find_stop(decode(self.tokenizer, req.output_ids[-window:]), params.stop) is not None:
                hit = find_stop(decode(self.tokenizer, req.output_ids), params.stop)
                if hit is not None:
                    req.finish_reason, req.stop_text_len = "stop", hit
        if req.finish_reason is None and (
            len(req.output_ids) >= params.max_tokens or req.num_tokens >= self.max_context
        ):
            req.finish_reason = "length"
        return req.finish_reason is not None

    # -- results --------------------------------------------------------------------------

    def completion(self, req: Request) -> Completion:
        text = decode(self.tokenizer, req.output_ids) if req.finish_reason != "error" else ""
        if req.stop_text_len is not None:
            text = text[: req.stop_text_len]
        return Completion(
            text=text,
            token_ids=list(req.output_ids),
            finish_reason=req.finish_reason or "error",
            prompt_token_ids=req.prompt_ids,
            prompt_index=req.prompt_index,
            sample_index=req.sample_index,
            logprobs=list(req.logprobs) if req.logprobs is not None else None,
            num_cached_prompt_tokens=req.num_cached_prompt,
            error=str(req.error) if req.error is not None else None,
        )

    def generate(
        self, prompts: Prompt | Sequence[Prompt], params: SamplingParams | None = None
    ) -> list[Completion]:
        """Complete every prompt (`params.n` samples each, prompt-major order).

        A prompt that is invalid gets a Completion with finish_reason "error" and
        the message in `error`; the other prompts are served normally.
        """
        if self.is_serving:
            raise EngineError("generate() cannot run while the async loop is serving submits")
        params = params or SamplingParams()
        if not isinstance(params, SamplingParams):
            raise InvalidRequestError(f"params must be SamplingParams, got {type(params).__name__}")
        if isinstance(prompts, bytes | bytearray) or not isinstance(prompts, str | Sequence):
            raise InvalidRequestError(
                "prompts must be a string, token ids, chat messages, or a list of those"
            )
        batch = [prompts] if is_single_prompt(prompts) else list(prompts)  # type: ignore[list-item]
        slots: list[list[Request] | Completion] = []
        for index, prompt in enumerate(batch):
            try:
                slots.append(self.add_request(prompt, params, prompt_index=index))
            except EngineError as exc:
                slots.append(_error_completion(str(exc), index))
        queued = [r for s in slots if isinstance(s, list) for r in s]
        pending = {r.rid for r in queued}
        try:
            while pending:
                for req in self.step():
                    pending.discard(req.rid)
        except BaseException:
            # Never leave this call's requests in the scheduler: the engine must keep
            # serving later calls whatever went wrong in this one.
            for req in queued:
                self.abort(req)
            raise
        out: list[Completion] = []
        for slot in slots:
            if isinstance(slot, list):
                out += [self.completion(r) for r in slot]
            else:
                out += [replace(slot, sample_index=i) for i in range(params.n)]
        return out

    def _record(self, req: Request, aborted: bool = False) -> None:
        """Keep a finished, failed or aborted request for the trace (record_trace)."""
        if self.trace is None:
            return
        entry = TraceRequest(
            req.agent_id,
            list(req.prompt_ids),
            list(req.output_ids),
            priority=req.priority,
            prior=req.prior,
            arrival=req.arrival_step,
            aborted_at=self._stats.num_steps if aborted else None,
            failed=req.finish_reason == "error",
        )
        self.trace.append((req.rid, entry))

    def abort(self, req: Request) -> None:
        """Stop a queued or running request (its pages go back as on finish)."""
        if req.status is RequestStatus.FINISHED:
            return
        self._record(req, aborted=True)
        self.scheduler.abort(req)
        self.replay.finished(req)

    def recorded_trace(self) -> list[TraceRequest]:
        """Finished requests in submission order (needs `record_trace=True`)."""
        if self.trace is None:
            raise EngineError("the engine records no trace; build it with record_trace=True")
        return [entry for _, entry in sorted(self.trace, key=lambda pair: pair[0])]

    def agent_stats(self) -> dict[str, AgentStats]:
        """Per-agent calls, prompt tokens, prefix hits, recomputed tokens, evictions."""
        return dict(self.scheduler.ledger.agents)

    def stats(self) -> dict[str, float]:
        self._stats.num_evicted_pages = self.cache.num_evicted_pages
        snapshot = self._stats.snapshot()
        snapshot["num_cached_pages"] = self.cache.num_pages
        snapshot["num_free_pages"] = self.pool.allocator.num_free
        for name, value in self.logits_cache.snapshot().items():
            snapshot[f"logits_cache_{name}"] = value
        return snapshot


def _eos_ids(hf_model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    for source in (getattr(hf_model, "generation_config", None), hf_model.config, tokenizer):
        value = getattr(source, "eos_token_id", None) if source is not None else None
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return frozenset(ids)


PACKED_COPY_MEMORY_SHARE = 0.25  # of available memory, for float32's second packed copy


def _should_pack(
    choice: bool | None,
    state: dict[str, Any],
    dtype: torch.dtype,
    device: torch.device,
    float32_kernel: str,
) -> bool:
    """Whether to pack linear weights (EngineConfig.packed_weights; None decides here)."""
    if choice is not None:
        return choice
    if device.type != "cpu" or dtype != torch.float32 or float32_kernel == "onednn":
        return True  # oneDNN's packed copy replaces the plain one; other devices ignore it
    weight_bytes = sum(t.numel() for t in state.values()) * 4
    available = available_memory_bytes(device)
    return available is None or weight_bytes <= PACKED_COPY_MEMORY_SHARE * available


def _random_seed() -> int:
    return int.from_bytes(os.urandom(8), "little") >> 1


def _error_completion(message: str, index: int) -> Completion:
    return Completion(
        text="",
        token_ids=[],
        finish_reason="error",
        prompt_token_ids=[],
        prompt_index=index,
        error=message,
    )
