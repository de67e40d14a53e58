"""Packed-sequence attention without cross-example work: SDPA run per example inside a packed row.

transformers turns packed ``position_ids`` into a block-diagonal mask for its ``sdpa`` kernel, which keeps
the examples apart but still computes every (query, key) pair of the row: a 2048-token row costs 2048^2
attention whatever its examples' lengths. FlashAttention-2's varlen path avoids that on GPUs that have it;
this implementation does the same with plain ``torch.nn.functional.scaled_dot_product_attention`` (any device):
the row is cut where the position ids restart and each example attends causally to itself only. Unpacked
batches (no restart) go to transformers' own SDPA with their padding mask.
"""

from __future__ import annotations

import itertools
from typing import Any

NAME = "asclepius_packed_sdpa"


def segments(position_ids: Any) -> list[list[tuple[int, int]]]:
    """Per row, ``[(start, end), ...]`` of the runs where position ids count up by one."""
    import torch

    out = []
    for row in position_ids:
        starts = [0, *(torch.nonzero(row[1:] != row[:-1] + 1).flatten() + 1).tolist(), len(row)]
        out.append(list(itertools.pairwise(starts)))
    return out


def packed_sdpa_forward(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    import torch
    from torch.nn.functional import scaled_dot_product_attention
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    position_ids = kwargs.get("position_ids")
    spans = segments(position_ids) if position_ids is not None and position_ids.shape[-1] > 1 else None
    if spans is None or all(len(s) == 1 for s in spans) or position_ids.shape[0] != query.shape[0]:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, **kwargs)
    n_rep = query.shape[1] // key.shape[1]
    if n_rep > 1:  # grouped-query attention: every query head needs its key/value head
        key, value = key.repeat_interleave(n_rep, dim=1), value.repeat_interleave(n_rep, dim=1)
    rows = []
    for r, row_spans in enumerate(spans):
        parts = [
            scaled_dot_product_attention(
                query[r : r + 1, :, a:b],
                key[r : r + 1, :, a:b],
                value[r : r + 1, :, a:b],
                dropout_p=dropout,
                is_causal=True,
                scale=scaling,
            )
            for a, b in row_spans
        ]
        rows.append(torch.cat(parts, dim=2))
    # (batch, heads, seq, dim) -> (batch, seq, heads, dim), what the attention modules expect back
    return torch.cat(rows, dim=0).transpose(1, 2).contiguous(), None


def register() -> str:
    """Make ``attn_implementation=NAME`` available (idempotent); masks are built as for ``sdpa``."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(NAME, packed_sdpa_forward)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
    return NAME
