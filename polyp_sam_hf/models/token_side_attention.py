"""SAM's two-way transformer with every image-side projection moved to the prompt tokens' side.

In transformers' `SamTwoWayTransformer` the few prompt tokens (T, about 7) and the many image tokens
(h * w = 4,096) meet in cross attentions, and each projects the image tokens: keys and values
(C -> D, tokens attending to the image), queries and the output (image attending to tokens), ten
products of 4,096 x C x D in all, each followed or preceded by a split into heads (a transpose of
the 4,096 rows). Attention is linear in those projections, so the same sums can be taken on the
token side, where there are T rows instead of 4,096:

    tokens -> image:  q_h (W_k,h x^T + b_k,h) = (q_h W_k,h) x^T + q_h . b_k,h
                      P_h (x W_v,h^T + b_v,h) = (P_h x) W_v,h^T + b_v,h      (rows of P_h sum to 1)
    image -> tokens:  (x W_q,h^T + b_q,h) k_h^T = x (W_q,h^T k_h^T) + b_q,h k_h^T
                      sum_h P_h v_h W_o,h^T     = [P_1 ... P_H] [v_1 W_o,1^T ; ... ; v_H W_o,H^T]

so each cross attention is two products of 4,096 x C x (H * T) on the image tokens as they lie
(channels-last, never split into heads), and the heads' softmax of the image attending to tokens is
taken over the T axis of a (H, T, 4,096) layout, where the reduction runs along whole rows. The
arithmetic is transformers' up to the order of float sums (tests compare the logits). It is what
the ONNX decoder graph runs: ONNX Runtime spends its time on the image tokens' projections and
transposes, not on products with T columns.

Shapes: prompt tokens (1, K, T, C) for K prompts; image tokens (B, 1, h * w, C), B = 1 until the
first layer has mixed the prompts in, K after.
"""

from __future__ import annotations

import torch


def _heads(attention: torch.nn.Module) -> tuple[int, int]:
    """(heads, channels per head) of a `SamAttention`."""
    heads = attention.num_attention_heads
    return heads, attention.q_proj.out_features // heads


def tokens_attend_to_image(attention: torch.nn.Module, queries: torch.Tensor, keys: torch.Tensor,
                           values: torch.Tensor) -> torch.Tensor:
    """`SamAttention(query=queries, key=keys, value=values)` for prompt-token queries.

    Args:
        queries: (1, K, T, C) prompt tokens.
        keys: (B, 1, N, C) image tokens (B 1 or K), with their positional embeddings.
        values: (B, 1, N, C) image tokens.

    Returns:
        (1, K, T, C), the attention's output after its output projection.
    """
    heads, width = _heads(attention)
    k, t, channels = queries.shape[1], queries.shape[2], queries.shape[3]
    q = attention.q_proj(queries).reshape(k, t, heads, width).transpose(1, 2)  # (K, H, T, d)
    w_k = attention.k_proj.weight.reshape(heads, width, channels)  # (H, d, C)
    folded = (q @ w_k).reshape(k, heads * t, channels)  # (K, H * T, C): q_h W_k,h
    shift = (q @ attention.k_proj.bias.reshape(heads, width, 1)).reshape(k, heads * t, 1)  # q_h . b_k,h
    image_k, image_v = keys.flatten(0, 1), values.flatten(0, 1)  # (B, N, C), not copied
    scores = (folded @ image_k.transpose(-1, -2) + shift) * attention.scaling  # (K, H * T, N)
    mixed = torch.softmax(scores, dim=-1) @ image_v  # (K, H * T, C): P_h x
    w_v = attention.v_proj.weight.reshape(heads, width, channels).transpose(-1, -2)  # (H, C, d)
    out = mixed.reshape(k, heads, t, channels) @ w_v + attention.v_proj.bias.reshape(heads, 1, width)
    return attention.out_proj(out.transpose(1, 2).reshape(1, k, t, heads * width))


def image_attends_to_tokens(attention: torch.nn.Module, queries: torch.Tensor, keys: torch.Tensor,
                            values: torch.Tensor) -> torch.Tensor:
    """`SamAttention(query=queries, key=keys, value=values)` for image-token queries.

    Args:
        queries: (B, 1, N, C) image tokens (B 1 or K), with their positional embeddings.
        keys: (1, K, T, C) prompt tokens, with theirs.
        values: (1, K, T, C) prompt tokens.

    Returns:
        (K, 1, N, C), the attention's output after its output projection.
    """
    heads, width = _heads(attention)
    k, t, channels = keys.shape[1], keys.shape[2], keys.shape[3]
    key = attention.k_proj(keys).reshape(k, t, heads, width).permute(0, 2, 3, 1)  # (K, H, d, T)
    w_q = attention.q_proj.weight.reshape(heads, width, channels).transpose(-1, -2)  # (H, C, d)
    folded = (w_q @ key).permute(0, 1, 3, 2).reshape(k, heads * t, channels)  # (K, H * T, C): k_h W_q,h
    shift = (attention.q_proj.bias.reshape(heads, 1, width) @ key).reshape(k, heads * t, 1)  # b_q,h . k_h
    image = queries.flatten(0, 1)  # (B, N, C), not copied
    scores = ((folded @ image.transpose(-1, -2) + shift) * attention.scaling).reshape(k, heads, t, -1)
    scores = (scores - scores.amax(2, keepdim=True)).exp()  # the softmax over each head's T tokens
    probs = (scores / scores.sum(2, keepdim=True)).reshape(k, heads * t, -1)  # (K, H * T, N)
    value = attention.v_proj(values).reshape(k, t, heads, width).transpose(1, 2)  # (K, H, T, d)
    w_o = attention.out_proj.weight.reshape(channels, heads, width).permute(1, 2, 0)  # (H, d, C)
    # v_h W_o,h^T, each row carrying b_o / H: a pixel's weights sum to 1 in each of the H heads
    projected = (value @ w_o + attention.out_proj.bias / heads).reshape(k, heads * t, channels)  # (K, H * T, C)
    return (probs.transpose(-1, -2) @ projected).unsqueeze(1)


def two_way_transformer(transformer: torch.nn.Module, prompt: torch.Tensor, image: torch.Tensor,
                        positional: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' `SamTwoWayTransformer.forward` (no attention similarity, no target embedding)
    with its cross attentions taken on the token side.

    Args:
        prompt: (1, K, T, C) the output tokens and the sparse prompt tokens.
        image: (1, 1, N, C) channels-last image tokens, the dense prompt added.
        positional: (1, 1, N, C) their positional embeddings.

    Returns:
        (1, K, T, C) tokens and (K, 1, N, C) image tokens.
    """
    queries, keys = prompt, image
    for layer in transformer.layers:
        if layer.skip_first_layer_pe:
            queries = layer.self_attn(query=queries, key=queries, value=queries)[0]
        else:
            query = queries + prompt
            queries = queries + layer.self_attn(query=query, key=query, value=queries)[0]
        queries = layer.layer_norm1(queries)
        keyed = keys + positional
        queries = layer.layer_norm2(queries + tokens_attend_to_image(layer.cross_attn_token_to_image,
                                                                     queries + prompt, keyed, keys))
        queries = layer.layer_norm3(queries + layer.mlp(queries))
        keys = layer.layer_norm4(keys + image_attends_to_tokens(layer.cross_attn_image_to_token, keyed,
                                                                queries + prompt, queries))
    attended = tokens_attend_to_image(transformer.final_attn_token_to_image, queries + prompt, keys + positional, keys)
    return transformer.layer_norm_final_attn(queries + attended), keys
