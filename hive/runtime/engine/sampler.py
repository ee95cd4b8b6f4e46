"""Turn a step's logits into one token per sampled request.

Determinism: each request draws exactly one uniform number from its own
generator per generated token (greedy ones too), and the token is a pure
function of (processed distribution, that number): the inverse CDF over the
kept tokens in token-id order (no sort unless top-p asks for one). A row's result
therefore does not depend on the other rows in the batch, and a later logits
cache can replay a stored distribution and consume the generator identically.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from hive.runtime.engine.request import Request
from hive.runtime.engine.sampling_params import SamplingParams


def draw_uniform(generator: torch.Generator) -> float:
    """The request's one random draw for its next token."""
    return float(torch.rand((), generator=generator, dtype=torch.float64))


def apply_penalties(logits: torch.Tensor, request: Request) -> None:
    """In place on one row: repetition (prompt + output), frequency and presence (output)."""
    params = request.params
    if params.repetition_penalty != 1.0:
        ids = torch.tensor(sorted(set(request.prompt_ids + request.output_ids)), dtype=torch.long)
        ids = ids.to(logits.device)
        seen = logits[ids]
        penalty = params.repetition_penalty
        logits[ids] = torch.where(seen > 0, seen / penalty, seen * penalty)
    if (params.frequency_penalty or params.presence_penalty) and request.output_ids:
        out = torch.tensor(request.output_ids, dtype=torch.long, device=logits.device)
        counts = torch.bincount(out, minlength=logits.shape[-1]).to(logits.dtype)
        logits -= params.frequency_penalty * counts
        logits -= params.presence_penalty * (counts > 0).to(logits.dtype)


def filtered_probs(logits: torch.Tensor, params: Sequence[SamplingParams]) -> torch.Tensor:
    """Temperature, then top-k, top-p (over the top-k, renormalised) and min-p: `(S, V)`
    probabilities, zero where filtered.

    Not renormalised. Filters keep every token whose probability reaches the
    cut-off value, so ties at the boundary are kept together (deterministic).
    Greedy rows keep only their argmax (first index on ties).
    """
    device, dtype = logits.device, logits.dtype
    temps = torch.tensor([p.temperature if p.temperature > 0 else 1.0 for p in params], dtype=dtype)
    probs = torch.softmax(logits / temps.to(device)[:, None], dim=-1)
    cutoff = torch.zeros(len(params), dtype=dtype, device=device)
    k_rows = [i for i, p in enumerate(params) if p.top_k > 1 and not p.is_greedy]
    if k_rows:
        max_k = max(params[i].top_k for i in k_rows)
        top = torch.topk(probs[k_rows], min(max_k, probs.shape[-1]), dim=-1).values
        ks = torch.tensor([min(params[i].top_k, probs.shape[-1]) - 1 for i in k_rows])
        cutoff[k_rows] = top.gather(1, ks.to(device)[:, None]).squeeze(1)
    p_rows = [i for i, p in enumerate(params) if p.top_p < 1.0 and not p.is_greedy]
    if p_rows:
        # top-p over what top-k kept, renormalised (the order HF and vLLM use).
        kept = probs[p_rows]
        kept = torch.where(kept >= cutoff[p_rows][:, None], kept, 0.0)
        sorted_probs = torch.sort(kept, dim=-1, descending=True).values
        top_p = torch.tensor([params[i].top_p for i in p_rows], dtype=dtype, device=device)
        mass = top_p[:, None] * kept.sum(dim=-1, keepdim=True)
        before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
        last = (before < mass).sum(dim=-1, keepdim=True) - 1  # >= 0: before[0] == 0
        cutoff[p_rows] = torch.maximum(cutoff[p_rows], sorted_probs.gather(1, last).squeeze(1))
    if any(p.min_p > 0 for p in params):
        min_p = torch.tensor([p.min_p for p in params], dtype=dtype, device=device)
        cutoff = torch.maximum(cutoff, min_p * probs.max(dim=-1).values)
    if k_rows or p_rows or any(p.min_p > 0 for p in params):
        probs = torch.where(probs >= cutoff[:, None], probs, 0.0)
    greedy = [i for i, p in enumerate(params) if p.is_greedy]
    if greedy:
        best = logits[greedy].argmax(dim=-1)
        one_hot = torch.zeros_like(probs[greedy]).scatter_(1, best[:, None], 1.0)
        probs[greedy] = one_hot
    return probs


def sample_from_probs(probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Inverse CDF in token-id order: the first id whose CDF exceeds u * total mass.

    Zeros (filtered tokens) add nothing to the CDF, so a distribution stored
    on its support alone gives the same token for the same u.
    """
    cdf = torch.cumsum(probs, dim=-1, dtype=torch.float64)
    targets = uniforms.to(cdf)[:, None] * cdf[:, -1:]
    # right=True: cdf[id] > target >= cdf[id - 1], so probs[id] > 0 (a kept token).
    ids = torch.searchsorted(cdf, targets, right=True).squeeze(1)
    vocab = probs.shape[-1]
    overflow = ids >= vocab  # u * total rounded up to total: take the last kept token
    if bool(overflow.any()):
        last = vocab - 1 - (probs[overflow].flip(-1) > 0).int().argmax(dim=-1)
        ids[overflow] = last
    return ids


class Sampler:
    def __call__(
        self, logits: torch.Tensor, requests: list[Request]
    ) -> tuple[list[int], list[float] | None]:
        """Sample one token per row of `logits` (float32, `(S, V)`)."""
        raw_logprobs = None
        if any(r.params.logprobs for r in requests):
            raw_logprobs = torch.log_softmax(logits, dim=-1)
        if any(r.params.has_penalties for r in requests):
            logits = logits.clone()
            for row, request in enumerate(requests):
                if request.params.has_penalties:
                    apply_penalties(logits[row], request)
        uniforms = torch.tensor([draw_uniform(r.generator) for r in requests], dtype=torch.float64)
        if all(r.params.is_greedy for r in requests):
            tokens = logits.argmax(dim=-1)  # what filtered_probs + sample_from_probs give
        else:
            probs = filtered_probs(logits, [r.params for r in requests])
            tokens = sample_from_probs(probs, uniforms.to(logits.device))
        token_list = tokens.tolist()
        logprobs = None
        if raw_logprobs is not None:
            logprobs = raw_logprobs.gather(1, tokens[:, None]).squeeze(1).tolist()
        return token_list, logprobs
