"""Attention processors of the text-to-set model, and the one place that assigns them to layers.

Every processor takes `num_frames` from `cross_attention_kwargs`; frames are folded into the batch
as (B*F, N, C).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention
from einops import rearrange

from videop2p.config import FrameAttentionMode

Anchors = tuple[int, ...]  # positions of the anchor frames among the frames of one model call


def _heads(attn: Attention, x: torch.Tensor) -> torch.Tensor:
    """(B, N, H*d) -> (B, H, N, d)."""
    return rearrange(x, "b n (h d) -> b h n d", h=attn.heads)


def _merge(attn: Attention, x: torch.Tensor) -> torch.Tensor:
    """(B, H, N, d) -> (B, N, H*d), then the output projection and dropout."""
    x = rearrange(x, "b h n d -> b n (h d)")
    return attn.to_out[1](attn.to_out[0](x))


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, query_chunk: int | None = None) -> torch.Tensor:
    """Scaled dot-product attention, (B, H, N, d) each; with `query_chunk`, at most that many queries
    at a time (attention slicing: the same result with a bounded score matrix where no fused kernel
    is available)."""
    if query_chunk is None or q.shape[2] <= query_chunk:
        return F.scaled_dot_product_attention(q, k, v)
    return torch.cat(
        [F.scaled_dot_product_attention(q[:, :, i : i + query_chunk], k, v) for i in range(0, q.shape[2], query_chunk)],
        dim=2,
    )


def frame_keys_values(
    attn: Attention, hidden: torch.Tensor, num_frames: int, mode: FrameAttentionMode, anchors: Anchors = (0,)
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys and values of frame attention; `anchors` are the positions of the anchor frames in the clip.

    FIRST: (B, A*N, C) from the anchor frames only (frame 0 in Video-P2P), computed once and shared
    by every frame.
    SPARSE_CAUSAL: (B*F, (A+1)*N, C), the anchors and frame i-1 for frame i (Tune-A-Video: frame 0).
    """
    video = rearrange(hidden, "(b f) n c -> b f n c", f=num_frames)
    if mode is FrameAttentionMode.FIRST:
        first = rearrange(video[:, list(anchors)], "b a n c -> b (a n) c")  # (B, A*N, C)
        return attn.to_k(first), attn.to_v(first)
    k, v = attn.to_k(video), attn.to_v(video)  # (B, F, N, C)
    prev = [0] + list(range(num_frames - 1))
    k = torch.cat([k[:, [a] * num_frames] for a in anchors] + [k[:, prev]], dim=2)  # (B, F, (A+1)*N, C)
    v = torch.cat([v[:, [a] * num_frames] for a in anchors] + [v[:, prev]], dim=2)
    return rearrange(k, "b f n c -> (b f) n c"), rearrange(v, "b f n c -> (b f) n c")


def frame_queries(attn: Attention, hidden: torch.Tensor, num_frames: int, mode: FrameAttentionMode) -> torch.Tensor:
    """Queries of frame attention: (B, F*N, C) for FIRST (all frames share K, V), else (B*F, N, C)."""
    q = attn.to_q(hidden)
    if mode is FrameAttentionMode.FIRST:
        return rearrange(q, "(b f) n c -> b (f n) c", f=num_frames)
    return q


def unfold_frame_output(out: torch.Tensor, num_frames: int, mode: FrameAttentionMode) -> torch.Tensor:
    if mode is FrameAttentionMode.FIRST:
        return rearrange(out, "b (f n) c -> (b f) n c", f=num_frames)
    return out


class UnsupportedAttentionError(ValueError):
    """A model whose attention layers use an option these processors do not implement."""


def check_supported(attn: Attention, attention_mask: torch.Tensor | None) -> None:
    """Refuse what the processors do not implement, instead of a silently wrong result."""
    unsupported = {
        "an attention mask": attention_mask is not None,
        "a group norm (attn.group_norm)": getattr(attn, "group_norm", None) is not None,
        "a spatial norm (attn.spatial_norm)": getattr(attn, "spatial_norm", None) is not None,
    }
    for what, present in unsupported.items():
        if present:
            raise UnsupportedAttentionError(
                f"This model's attention uses {what}, which videop2p's attention processors do not support; "
                "supported: residual_connection, rescale_output_factor and norm_cross."
            )


class T2SAttnProcessor:
    """diffusers' attention-processor contract, carried once for every processor of the T2S model.

    `__call__` checks the layer's options, normalises the context (`norm_cross`), calls `attend`
    (which subclasses implement: (B, N, C) in, projected (B, N, C) out), then applies the residual
    connection and the output rescale the layer asks for. `num_frames` and `anchors` come
    from `cross_attention_kwargs`; frames are folded into the batch as (B*F, N, C).
    """

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        num_frames: int = 1,
        anchors: Anchors = (0,),
        **kwargs,
    ) -> torch.Tensor:
        check_supported(attn, attention_mask)
        if hidden_states.ndim != 3:
            raise UnsupportedAttentionError(
                f"attention input of shape {tuple(hidden_states.shape)}; the T2S processors take (B, N, C)."
            )
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        if encoder_hidden_states is not None and attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)
        out = self.attend(attn, hidden_states, context, num_frames, anchors)
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor

    def attend(
        self, attn: Attention, hidden: torch.Tensor, context: torch.Tensor, num_frames: int, anchors: Anchors
    ) -> torch.Tensor:
        raise NotImplementedError


class FrameAttnProcessor(T2SAttnProcessor):
    """Frame attention with SDPA (Video-P2P eq. 1: Q from frame i, K and V from frame 0)."""

    def __init__(self, mode: FrameAttentionMode = FrameAttentionMode.FIRST, query_chunk: int | None = None):
        self.mode = FrameAttentionMode(mode)
        self.query_chunk = query_chunk

    def attend(
        self, attn: Attention, hidden: torch.Tensor, context: torch.Tensor, num_frames: int, anchors: Anchors
    ) -> torch.Tensor:
        k, v = frame_keys_values(attn, hidden, num_frames, self.mode, anchors)
        q = frame_queries(attn, hidden, num_frames, self.mode)
        out = sdpa(_heads(attn, q), _heads(attn, k), _heads(attn, v), self.query_chunk)
        return unfold_frame_output(_merge(attn, out), num_frames, self.mode)


class CrossAttnProcessor(T2SAttnProcessor):
    """Cross-attention with SDPA."""

    def __init__(self, query_chunk: int | None = None):
        self.query_chunk = query_chunk

    def attend(
        self, attn: Attention, hidden: torch.Tensor, context: torch.Tensor, num_frames: int, anchors: Anchors
    ) -> torch.Tensor:
        q, k, v = attn.to_q(hidden), attn.to_k(context), attn.to_v(context)
        return _merge(attn, sdpa(_heads(attn, q), _heads(attn, k), _heads(attn, v), self.query_chunk))


class TemporalAttnProcessor(T2SAttnProcessor):
    """Self-attention over the frame axis with SDPA; input is already (B*N, F, C)."""

    def __init__(self, query_chunk: int | None = None):
        self.query_chunk = query_chunk  # slices the batch of positions: F queries each is already small

    def attend(
        self, attn: Attention, hidden: torch.Tensor, context: torch.Tensor, num_frames: int, anchors: Anchors
    ) -> torch.Tensor:
        q, k, v = attn.to_q(hidden), attn.to_k(hidden), attn.to_v(hidden)
        q, k, v = _heads(attn, q), _heads(attn, k), _heads(attn, v)  # (B*N, H, F, d)
        n = self.query_chunk or len(q)
        out = torch.cat(
            [F.scaled_dot_product_attention(q[i : i + n], k[i : i + n], v[i : i + n]) for i in range(0, len(q), n)]
        )
        return _merge(attn, out)


def layer_kind(name: str) -> str:
    """'temporal', 'frame' (attn1) or 'cross' (attn2) from a processor name."""
    if ".temporal." in name:
        return "temporal"
    if name.endswith("attn1.processor"):
        return "frame"
    if name.endswith("attn2.processor"):
        return "cross"
    raise ValueError(f"unknown attention layer {name!r}")


def default_processor(name: str, mode: FrameAttentionMode = FrameAttentionMode.FIRST, query_chunk: int | None = None):
    kind = layer_kind(name)
    if kind == "frame":
        return FrameAttnProcessor(mode, query_chunk)
    if kind == "cross":
        return CrossAttnProcessor(query_chunk)
    return TemporalAttnProcessor(query_chunk)


def assign_processors(
    unet,
    choose: Callable[[str], object] | None = None,
    mode: FrameAttentionMode = FrameAttentionMode.FIRST,
    query_chunk: int | None = None,
) -> dict[str, object]:
    """The one place that decides each layer's processor: `choose(name)` wins when it returns one."""
    procs = {}
    for name in unet.attn_processors:
        proc = choose(name) if choose is not None else None
        procs[name] = proc if proc is not None else default_processor(name, mode, query_chunk)
    unet.set_attn_processor(dict(procs))  # diffusers pops entries from the dict it is given
    return procs
