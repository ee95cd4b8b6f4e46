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

from hive.runtime.engine.inverse_cdf import cdf_tables, row_sums, sample_from_probs
from hive.runtime.engine.request import Request
from hive.runtime.engine.sampling_params import SamplingParams
from hive.runtime.engine.stored_distribution import StoredDistribution, store_rows

SUBNORMAL_CUT = 70.0  # exp(-70) / vocab stays a normal float32 for any vocabulary < 10^7


def draw_uniform(generator: torch.Generator) -> float:
    """The request's one random draw for its next token."""
    return float(torch.rand((), generator=generator, dtype=torch.float64))


def apply_penalties(logits: torch.Tensor, requests: Sequence[Request]) -> torch.Tensor:
    """Logits after each row's penalties (a new tensor if any row has some).

    Repetition (prompt + output tokens: positive logits divided, negative
    multiplied), then frequency and presence (output tokens). All rows at once:
    each request's ids come from its token mirror, scattered into one
    `(rows, vocab)` mask or count matrix.
    """
    rows = [i for i, r in enumerate(requests) if r.params.has_penalties]
    if not rows:
        return logits
    logits = logits.clone()
    device, dtype = logits.device, logits.dtype
    rep = [i for i in rows if requests[i].params.repetition_penalty != 1.0]
    if rep:
        row_index, ids = _scatter_index([requests[i].token_tensor() for i in rep], device)
        seen = torch.zeros(len(rep), logits.shape[1], dtype=torch.bool, device=device)
        seen[row_index, ids] = True
        penalty = torch.tensor([requests[i].params.repetition_penalty for i in rep], dtype=dtype)
        penalty = penalty.to(device)[:, None]
        sub = logits[rep]
        penalized = torch.where(sub > 0, sub / penalty, sub * penalty)
        logits[rep] = torch.where(seen, penalized, sub)
    freq = [
        i
        for i in rows
        if (requests[i].params.frequency_penalty or requests[i].params.presence_penalty)
        and requests[i].output_ids
    ]
    if freq:
        outputs = [requests[i].token_tensor()[len(requests[i].prompt_ids) :] for i in freq]
        row_index, ids = _scatter_index(outputs, device)
        counts = torch.zeros(len(freq), logits.shape[1], dtype=dtype, device=device)
        counts.index_put_((row_index, ids), torch.ones_like(ids, dtype=dtype), accumulate=True)
        params = [requests[i].params for i in freq]
        frequency = torch.tensor([p.frequency_penalty for p in params], dtype=dtype)
        presence = torch.tensor([p.presence_penalty for p in params], dtype=dtype)
        sub = logits[freq]
        sub -= frequency.to(device)[:, None] * counts
        sub -= presence.to(device)[:, None] * (counts > 0).to(dtype)
        logits[freq] = sub
    return logits


def _scatter_index(
    id_lists: list[torch.Tensor], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(row, id) pairs of every id of every row, for one scatter into a (rows, vocab) matrix."""
    lengths = torch.tensor([t.shape[0] for t in id_lists])
    row_index = torch.repeat_interleave(torch.arange(len(id_lists)), lengths)
    return row_index.to(device), torch.cat(id_lists).to(device)


def filtered_probs(logits: torch.Tensor, params: Sequence[SamplingParams]) -> torch.Tensor:
    """Temperature, then top-k, top-p (over the top-k, renormalised) and min-p: `(S, V)`
    probabilities, zero where filtered.

    Not renormalised. Filters keep every token whose probability reaches the
    cut-off value, so ties at the boundary are kept together (deterministic).
    Greedy rows keep only their argmax (first index on ties).
    """
    device, dtype = logits.device, logits.dtype
    temps = torch.tensor([p.temperature if p.temperature > 0 else 1.0 for p in params], dtype=dtype)
    # Softmax written out so it runs in place on one buffer: shift each row's best
    # logit to 0, scale, and floor at -SUBNORMAL_CUT. A token that far below the best
    # holds under 1e-25 of the mass either way (far below the 2^-53 resolution of
    # the uniform draw), and its probability stays a normal float32 instead of a
    # subnormal, which x86 CPUs process many times slower. (So a -inf logit ends at
    # the floor too: a future hard ban of tokens must zero probabilities after this.)
    probs = (logits - logits.amax(dim=-1, keepdim=True)).div_(temps.to(device)[:, None])
    probs = probs.clamp_min_(-SUBNORMAL_CUT).exp_()
    probs = probs.div_(row_sums(probs)[:, None])
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
        top_p = torch.tensor([params[i].top_p for i in p_rows], dtype=dtype, device=device)
        cutoff[p_rows] = torch.maximum(cutoff[p_rows], top_p_cutoff(kept, top_p))
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


TOP_P_FIRST_K = 256  # candidates sorted first when looking for a top-p cut-off


def top_p_cutoff(kept: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Per row, the smallest probability inside the top-p nucleus of `kept` (R, V).

    The nucleus is the shortest prefix of the descending-sorted probabilities
    whose mass before its last token is below top_p * total. Sorting the whole
    vocabulary cost ~26 ms a step for 16 rows of 49k; the nucleus is usually a
    few hundred tokens, so only the largest k are sorted (`topk`), and k grows
    8x for rows whose nucleus is not decided within it. The sorted prefix and
    its sequential cumulative sum are those of a full sort, so the cut-off is
    exactly the full sort's.
    """
    rows, vocab = kept.shape
    mass = top_p[:, None] * row_sums(kept)[:, None]
    cutoff = torch.empty(rows, dtype=kept.dtype, device=kept.device)
    todo = torch.arange(rows, device=kept.device)
    k = min(vocab, TOP_P_FIRST_K)
    while True:
        top = torch.topk(kept[todo], k, dim=-1).values  # descending
        before = torch.cumsum(top, dim=-1) - top
        inside = (before < mass[todo]).sum(dim=-1)  # >= 1: before[0] == 0
        decided = (inside < k) | (k == vocab)
        last = (inside[decided] - 1)[:, None]
        cutoff[todo[decided]] = top[decided].gather(1, last).squeeze(1)
        todo = todo[~decided]
        if todo.numel() == 0:
            return cutoff
        k = min(vocab, 8 * k)


class Sampler:
    def __call__(
        self, logits: torch.Tensor, requests: list[Request], capture: list[bool] | None = None
    ) -> tuple[list[int], list[float] | None, list[StoredDistribution | None]]:
        """Sample one token per row of `logits` (float32, `(S, V)`).

        Rows flagged in `capture` also return their processed distribution for the
        Logits Cache (else None). A request that already drew its uniform for this
        position (a replay whose draw fell outside a stored head) uses that draw.
        """
        raw = logits
        raw_logprobs = None
        if any(r.params.logprobs for r in requests):
            raw_logprobs = torch.log_softmax(logits, dim=-1)
        logits = apply_penalties(logits, requests)
        uniforms = torch.tensor([_uniform(r) for r in requests], dtype=torch.float64)
        probs = cdf = None
        if all(r.params.is_greedy for r in requests):
            tokens = logits.argmax(dim=-1)  # what filtered_probs + sample_from_probs give
        else:
            probs = filtered_probs(logits, [r.params for r in requests])
            cdf = cdf_tables(probs)
            tokens = sample_from_probs(probs, uniforms.to(logits.device), cdf)
        token_list = tokens.tolist()
        logprobs = None
        if raw_logprobs is not None:
            logprobs = raw_logprobs.gather(1, tokens[:, None]).squeeze(1).tolist()
        stored: list[StoredDistribution | None] = [None] * len(requests)
        if capture and any(capture):
            rows = [i for i, c in enumerate(capture) if c]
            dists = store_rows(
                probs,
                cdf,
                raw,
                rows,
                [requests[i].params.is_greedy for i in rows],
                [token_list[i] for i in rows],
            )
            for i, dist in zip(rows, dists, strict=True):
                stored[i] = dist
        return token_list, logprobs, stored


def _uniform(req: Request) -> float:
    u = req.pending_uniform
    if u is None:
        return draw_uniform(req.generator)
    req.pending_uniform = None
    return u
