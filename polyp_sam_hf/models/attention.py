"""SAM's ViT attention with its relative-position terms folded into the queries and keys.

transformers' `SamVisionAttention` adds a decomposed relative-position bias to the attention
scores (MViTv2):

    score[i, j] = scale * q_i . k_j + rel_h[i, row(j)] + rel_w[i, col(j)]

where `rel_h[i, r] = q_i . R_h[row(i), r]` and `rel_w[i, c] = q_i . R_w[col(i), c]`. Its SDPA path
materialises that bias as a (B, heads, HW, HW) tensor and passes it as a mask, which rules out the
fused kernels and costs (for a ViT-B global block at batch 8) gigabytes of memory and a summed
gradient. The same scores are a plain dot product of augmented vectors:

    q'_i = [scale * q_i, rel_h[i, :], rel_w[i, :]]      (d + H + W)
    k'_j = [k_j, onehot_H(row(j)), onehot_W(col(j))]    (d + H + W)

so `scaled_dot_product_attention(q', k', v, scale=1)` gives the same output, and autograd reaches
`qkv`, `rel_pos_h` and `rel_pos_w` through `q'`. The widths are zero-padded to a multiple of 8
(the fused kernels' alignment), and `v` to the same width (the flash kernels want one head width
for all three; without it the CPU falls back to the kernel that stores the whole attention matrix:
`python benchmarks/attention.py` measures the result).

The swap changes the class of each attention module in place and nothing else: parameters, their
names and the saved `SamModel` folder stay transformers' own, so vanilla `from_pretrained` loads
what the library saves. TinyViT encoders (MobileSAM, LiteMedSAM) have no such module and are
left as they are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers.models.sam.modeling_sam import SamVisionAttention

from polyp_sam_hf.core.registry import lookup


class FusedRelPosAttention(SamVisionAttention):
    """`SamVisionAttention` computed by one `scaled_dot_product_attention` call without a bias tensor."""

    def forward(self, hidden_states: torch.Tensor, output_attentions=None) -> tuple[torch.Tensor, None]:
        """
        Args:
            hidden_states: (B, H, W, C) tokens of one window (windowed blocks) or the whole grid.

        Returns:
            (B, H, W, C) attention output after the projection, and `None` (no weights are formed).
        """
        batch, height, width, _ = hidden_states.shape
        heads = self.num_attention_heads
        # (3, B, heads, HW, d)
        qkv = self.qkv(hidden_states).reshape(batch, height * width, 3, heads, -1).permute(2, 0, 3, 1, 4)
        query, key, value = qkv.unbind(0)
        head_width = value.shape[-1]
        if self.use_rel_pos:
            query, key = self._augment(query, key, height, width)
            value = F.pad(value, (0, query.shape[-1] - head_width))
            scale = 1.0
        else:
            scale = self.scale
        dropout = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(query, key, value, dropout_p=dropout, scale=scale)[..., :head_width]
        out = out.reshape(batch, heads, height, width, -1).permute(0, 2, 3, 1, 4).reshape(batch, height, width, -1)
        return self.proj(out), None

    def _augment(self, query: torch.Tensor, key: torch.Tensor, height: int, width: int):
        """(B, heads, HW, d) query and key -> (B, heads, HW, d + H + W, padded to a multiple of 8)."""
        batch, heads, tokens, dim = query.shape
        dtype = query.dtype
        rel_h_table = self.get_rel_pos(height, height, self.rel_pos_h).to(dtype)  # (H, H, d)
        rel_w_table = self.get_rel_pos(width, width, self.rel_pos_w).to(dtype)  # (W, W, d)
        grid = query.reshape(batch, heads, height, width, dim)
        rel_h = torch.einsum("bnhwc,hkc->bnhwk", grid, rel_h_table).reshape(batch, heads, tokens, height)
        rel_w = torch.einsum("bnhwc,wkc->bnhwk", grid, rel_w_table).reshape(batch, heads, tokens, width)
        rows = torch.arange(tokens, device=query.device) // width
        cols = torch.arange(tokens, device=query.device) % width
        onehot = torch.cat([F.one_hot(rows, height), F.one_hot(cols, width)], dim=-1).to(dtype)  # (HW, H + W)
        pad = -(dim + height + width) % 8
        query = torch.cat([query * self.scale, rel_h, rel_w, query.new_zeros(batch, heads, tokens, pad)], dim=-1)
        key_pos = F.pad(onehot, (0, pad)).expand(batch, heads, tokens, height + width + pad)
        key = torch.cat([key, key_pos], dim=-1)
        return query, key


# `--vision_attention` values: the class each SAM ViT attention module gets (None: transformers' own)
VISION_ATTENTION: dict[str, type[SamVisionAttention] | None] = {
    "fused": FusedRelPosAttention,
    "transformers": None,
}


def set_vision_attention(model: torch.nn.Module, name: str) -> int:
    """Give every SAM ViT attention module of `model` the implementation `name` (`VISION_ATTENTION`).

    Modules keep their parameters; only their class (and so their `forward`) changes, and
    `"transformers"` restores the class transformers built.

    Returns:
        How many attention modules were switched (0 for a TinyViT encoder).
    """
    cls = lookup(VISION_ATTENTION, name, "vision attention")
    switched = 0
    for module in model.modules():
        if not isinstance(module, SamVisionAttention):
            continue
        original = getattr(module, "_transformers_class", type(module))
        module._transformers_class = original
        module.__class__ = cls or original
        switched += 1
    return switched


def vision_attention_of(model: torch.nn.Module) -> str | None:
    """The `VISION_ATTENTION` name in use, or None for a model without SAM ViT attention."""
    for module in model.modules():
        if isinstance(module, SamVisionAttention):
            return "fused" if isinstance(module, FusedRelPosAttention) else "transformers"
    return None
