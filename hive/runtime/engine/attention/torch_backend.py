"""Attention in plain torch, for CPU and GPU.

Decode rows (one query each) run as one batched
`scaled_dot_product_attention` over K/V gathered from the pages into a padded
`(B, L, KVH, D)` block (one `index_select` per layer) with a length mask; the query
heads of one KV head fold into the query axis, so K/V are never repeated per
head. Decode rows whose page tables share a long prefix (N samples of a
prompt, a common system prompt) attend to it once as a group (cascade
attention): the prefix's K/V are gathered once, and the prefix and per-row
parts are merged through their log-sum-exps. Extend rows (prefill chunks) run per request through
`scaled_dot_product_attention`; a chunk without cached prefix attends to its
own fresh K/V with `is_causal`, so it gathers nothing.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from hive.runtime.engine.attention.base import BaseAttentionBackend
from hive.runtime.engine.forward_batch import ForwardBatch


class _Extend(NamedTuple):
    start: int
    q_len: int
    kv_rows: torch.Tensor | None  # None: no cached prefix, use the fresh K/V
    mask: torch.Tensor | None


class _PrefixGroup(NamedTuple):
    members: torch.Tensor  # decode rows sharing the prefix
    k_rows: torch.Tensor  # the prefix's K rows (V rows are page_size later)
    v_rows: torch.Tensor


MIN_SHARED_PREFIX = 64  # tokens; shorter shared prefixes are not worth a second pass

# Flash attention that also returns the log-sum-exp (CPU build of torch), used to merge
# the shared-prefix part and the per-row part of decode attention.
_flash_with_lse = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)


def shared_prefix_groups(
    tables: list[list[int]], kv_lens: list[int], page_size: int
) -> list[tuple[list[int], int]]:
    """Decode rows whose page tables start with the same pages: (members, shared tokens).

    The shared part is capped so every member keeps at least one token of its
    own (the suffix pass always has a valid key).
    """
    by_first: dict[int, list[int]] = {}
    for i, table in enumerate(tables):
        if kv_lens[i] > MIN_SHARED_PREFIX:
            by_first.setdefault(table[0], []).append(i)
    groups = []
    for members in by_first.values():
        if len(members) < 2:
            continue
        head = tables[members[0]]
        shared = (min(kv_lens[i] for i in members) - 1) // page_size
        for i in members[1:]:
            shared = min(shared, _common_len(head, tables[i], shared))
        if shared * page_size >= MIN_SHARED_PREFIX:
            groups.append((members, shared * page_size))
    return groups


def _common_len(a: list[int], b: list[int], limit: int) -> int:
    if a[:limit] == b[:limit]:
        return limit
    lo, hi = 0, limit  # a[:lo] == b[:lo] and a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def page_rows(pages: torch.Tensor, positions: torch.Tensor, page_size: int) -> torch.Tensor:
    """K row index in a layer's row view for token `positions` of a page list."""
    return pages[..., positions // page_size] * (2 * page_size) + positions % page_size


class TorchAttentionBackend(BaseAttentionBackend):
    name = "torch"

    def prepare(self, batch: ForwardBatch) -> None:
        ps = self.pool.page_size
        device = batch.input_ids.device
        self.plan_kv_writes(batch)

        num_decode = batch.num_decode
        self.num_decode = num_decode
        if num_decode:
            self._prepare_decode(batch, device)

        self.extends: list[_Extend] = []
        start = num_decode
        for i in range(num_decode, batch.num_requests):
            q_len, kv_len = batch.q_lens[i], batch.kv_lens[i]
            if kv_len == q_len:
                self.extends.append(_Extend(start, q_len, None, None))
            else:
                pages = batch.page_tensors[i][: self.pool.pages_for(kv_len)].to(device)
                rows = page_rows(pages, torch.arange(kv_len, device=device), ps)
                q_pos = torch.arange(kv_len - q_len, kv_len, device=device)
                mask = torch.arange(kv_len, device=device)[None, :] <= q_pos[:, None]
                self.extends.append(_Extend(start, q_len, rows, mask))
            start += q_len

    def _prepare_decode(self, batch: ForwardBatch, device: torch.device) -> None:
        """Index tensors for decode rows: shared-prefix groups, then per-row suffixes."""
        pool, ps = self.pool, self.pool.page_size
        b = batch.num_decode
        tables, kv_lens = batch.page_tables[:b], batch.kv_lens[:b]
        starts = [0] * b
        self.groups: list[_PrefixGroup] = []
        if _flash_with_lse is not None and device.type == "cpu":
            for members, shared in shared_prefix_groups(tables, kv_lens, ps):
                pages = batch.page_tensors[members[0]][: shared // ps].to(device)
                k_rows = page_rows(pages, torch.arange(shared, device=device), ps)
                index = torch.tensor(members, dtype=torch.long, device=device)
                self.groups.append(_PrefixGroup(index, k_rows, k_rows + ps))
                for i in members:
                    starts[i] = shared
        # Group prefixes are whole pages, so every row's own part starts on a page.
        length = max(n - s for n, s in zip(kv_lens, starts, strict=True))
        first = [s // ps for s in starts]
        num_pages = pool.pages_for(length)
        pages = torch.zeros(b, num_pages, dtype=torch.long)
        own_pages = [
            t[f : f + num_pages] for t, f in zip(batch.page_tensors[:b], first, strict=True)
        ]
        if all(p.shape[0] == num_pages for p in own_pages):
            torch.stack(own_pages, out=pages)
        else:
            for row, p in enumerate(own_pages):
                pages[row, : p.shape[0]] = p
        pages = pages.to(device)
        positions = torch.arange(length, device=device)
        rows = page_rows(pages, positions, ps)  # (B, L)
        own = torch.tensor([n - s for n, s in zip(kv_lens, starts, strict=True)], device=device)
        valid = positions[None, :] < own[:, None]
        if ps == 1:
            # A token's K and V rows are adjacent: gather both in one index_select of
            # whole pages (one 2-row block per token), ~12% less decode attention time.
            self.decode_pages = torch.where(valid, pages, 0).reshape(-1)
        else:
            self.decode_pages = None
            self.decode_k_rows = torch.where(valid, rows, 0).reshape(-1)
            self.decode_v_rows = self.decode_k_rows + ps
        if all(n - s == length for n, s in zip(kv_lens, starts, strict=True)):
            self.decode_bias = None  # every row attends to all `length` keys: no mask
        else:
            bias = torch.zeros(valid.shape, dtype=pool.layers[0].dtype, device=device)
            self.decode_bias = bias.masked_fill_(~valid, float("-inf"))[:, None, None, :]
        self.decode_len = length

    def _decode(self, layer_id: int, q: torch.Tensor, num_kv_heads: int) -> torch.Tensor:
        """Attention of one query per row; query heads of a KV head fold into the query axis."""
        b, num_heads, head_dim = q.shape
        group = num_heads // num_kv_heads
        length = self.decode_len
        rows = self.pool.rows[layer_id]
        qf = q.view(b, num_kv_heads, group, head_dim)
        if self.decode_pages is not None:  # page size 1: K and V of a token side by side
            kv = self.pool.token_pages(layer_id).index_select(0, self.decode_pages)
            kv = kv.view(b, length, 2, num_kv_heads, head_dim)
            kd, vd = kv[:, :, 0].transpose(1, 2), kv[:, :, 1].transpose(1, 2)
        else:
            kd = rows.index_select(0, self.decode_k_rows).view(b, length, num_kv_heads, head_dim)
            vd = rows.index_select(0, self.decode_v_rows).view(b, length, num_kv_heads, head_dim)
            kd, vd = kd.transpose(1, 2), vd.transpose(1, 2)
        if not self.groups:
            return F.scaled_dot_product_attention(
                qf, kd, vd, attn_mask=self.decode_bias, scale=self.scale
            )
        out, lse = _flash_with_lse(qf, kd, vd, attn_mask=self.decode_bias, scale=self.scale)
        for grp in self.groups:
            # Every member's query attends to the shared prefix, read once.
            m = grp.members.shape[0]
            qg = (
                qf.index_select(0, grp.members)
                .transpose(0, 1)
                .reshape(1, num_kv_heads, -1, head_dim)
            )
            kp = rows.index_select(0, grp.k_rows).transpose(0, 1).unsqueeze(0)
            vp = rows.index_select(0, grp.v_rows).transpose(0, 1).unsqueeze(0)
            o_pre, lse_pre = _flash_with_lse(qg, kp, vp, scale=self.scale)
            o_pre = o_pre.view(num_kv_heads, m, group, head_dim).transpose(0, 1)
            lse_pre = lse_pre.view(num_kv_heads, m, group).transpose(0, 1)
            o_suf, lse_suf = out.index_select(0, grp.members), lse.index_select(0, grp.members)
            top = torch.maximum(lse_pre, lse_suf)
            w_pre = torch.exp(lse_pre - top).unsqueeze(-1)
            w_suf = torch.exp(lse_suf - top).unsqueeze(-1)
            merged = (o_pre * w_pre + o_suf * w_suf) / (w_pre + w_suf)
            out = out.index_copy(0, grp.members, merged.to(out.dtype))
        return out

    def forward(self, layer_id: int, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        self.write_kv(layer_id, kv)
        rows = self.pool.rows[layer_id]
        num_tokens, num_heads, head_dim = q.shape
        num_kv_heads = kv.shape[2]
        b = self.num_decode
        if b:
            decoded = self._decode(layer_id, q[:b], num_kv_heads).reshape(b, num_heads * head_dim)
            if not self.extends:
                return decoded  # a decode-only step: no copy into a combined output
        out = torch.empty(num_tokens, num_heads * head_dim, dtype=q.dtype, device=q.device)
        if b:
            out[:b] = decoded

        for ext in self.extends:
            s, n = ext.start, ext.q_len
            qe = q[s : s + n].transpose(0, 1).unsqueeze(0)
            if ext.kv_rows is None:
                ke = kv[s : s + n, 0].transpose(0, 1).unsqueeze(0)
                ve = kv[s : s + n, 1].transpose(0, 1).unsqueeze(0)
                oe = F.scaled_dot_product_attention(
                    qe, ke, ve, is_causal=True, scale=self.scale, enable_gqa=True
                )
            else:
                ke = rows.index_select(0, ext.kv_rows).transpose(0, 1).unsqueeze(0)
                ve = rows.index_select(0, ext.kv_rows + self.pool.page_size)
                ve = ve.transpose(0, 1).unsqueeze(0)
                oe = F.scaled_dot_product_attention(
                    qe, ke, ve, attn_mask=ext.mask, scale=self.scale, enable_gqa=True
                )
            out[s : s + n] = oe[0].transpose(0, 1).reshape(n, num_heads * head_dim)
        return out
