"""The attention controller of decoupled-guidance editing and the processors that feed it.

The sampling loop sets the step (`begin_step`) and the batch layout; processors registered by
layer name hand over probabilities only in layers the controller reads or edits, so every other
layer runs SDPA.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention
from einops import rearrange

from videop2p.config import EditConfig, InversionConfig, MaskNorm
from videop2p.models.attention import (
    Anchors,
    FrameAttentionMode,
    FrameAttnProcessor,
    T2SAttnProcessor,
    default_processor,
    frame_keys_values,
    frame_queries,
    layer_kind,
    unfold_frame_output,
)
from videop2p.windows import Window


@dataclass
class TargetEdit:
    """How one target prompt's cross- and temporal attention follow the source's."""

    mode: str  # "swap" or "refine"
    mapper: torch.Tensor  # swap: (L, L) matrix; refine: (L,) source index per target token
    alphas: torch.Tensor | None  # refine: (L,) 1 where the target token has a source token
    equalizer: torch.Tensor | None  # (L,) reweighting factors, or None
    cross_alpha: torch.Tensor  # (T + 1, L) 1 where the token's map is replaced at that step
    self_window: tuple[int, int]  # steps [start, end) where its temporal maps follow the source
    factors: dict[str, float] = field(default_factory=dict)  # the words it reweights, as `equalizer` was made from


@dataclass
class TargetWords:
    """Local blending's (or subtraction's) words for each target: the source word's tokens in the
    source prompt and the target word's tokens in that target's prompt (prompt-to-prompt's LocalBlend
    takes the union of both words' regions)."""

    source: torch.Tensor  # (K, L) 1 on the source word's tokens, one row per target
    target: torch.Tensor  # (K, L) 1 on the target word's tokens in target k's prompt
    given: torch.Tensor  # (K,) bool: targets that have words (the others: no blending, or nothing subtracted)


@dataclass
class ControlPlan:
    """Everything the controller needs, computed from prompts and schedules."""

    targets: list[TargetEdit]  # one per target prompt
    store_layers: set[str]  # cross-attention layers whose maps are averaged and kept, all of one map size
    map_tokens: int | None = None  # token positions kept in the averaged maps (the longest prompt's); None: all
    blend: TargetWords | None = None  # local blending's words per target; None: no target blends
    subtract: TargetWords | None = None  # words whose region is never edited, per target
    blend_start: int = int(EditConfig.blend_start * InversionConfig.steps)  # blending applies from this step on
    threshold: float | list[float] = EditConfig.threshold  # mask threshold after per-frame normalisation; or per target
    mask_norm: MaskNorm = EditConfig.mask_norm  # per-frame normalisation of the maps before the threshold
    materialize_all: bool = EditConfig.materialize_all  # benchmark baseline: probabilities everywhere, every step
    control_frame_attention: bool = EditConfig.control_frame_attention  # target frame maps follow the source


@dataclass
class Layout:
    """Rows of the UNet batch: rows [cond_start, cond_start + P) are the conditional prompts."""

    cond_start: int  # first conditional row (source), earlier rows are unconditional
    prompts: int  # source + targets
    rows: int  # videos in the UNet batch


class EditController:
    """Edits cross-attention and temporal-attention maps of the target branches; stores averaged maps.

    On a long clip the sampling loop calls the model window by window and says which window runs
    (`set_window`); maps are kept per clip frame, averaged over the steps, the stored layers and the
    windows that own it. One sum holds them all, on the prompts' own token positions only: local
    blending averages over those layers anyway (its word maps are linear in the maps), and a clip's
    maps are the one part of the edit's state that grows with every frame.
    """

    def __init__(self, plan: ControlPlan, num_frames: int | None = None):
        self.plan = plan
        self.step = 0
        self.layout = Layout(0, 1 + len(plan.targets), 1 + len(plan.targets))
        self.num_frames = num_frames  # frames of the clip; None: those of the first call
        self.window: Window | None = None  # the window being predicted; None: the whole clip
        self.sums: torch.Tensor | None = None  # (P, F, N, L') head-mean maps summed over steps and layers
        self.counts: torch.Tensor | None = None  # (F,) maps summed per frame

    # -- driven by the sampling loop -------------------------------------------------------------
    def begin_step(self, step: int, layout: Layout) -> None:
        self.step = step
        self.layout = layout

    def set_window(self, window: Window | None) -> None:
        self.window = window

    # -- which layers need probabilities -----------------------------------------------------------
    def in_cross_window(self) -> bool:
        return any(bool(t.cross_alpha[self.step].any()) for t in self.plan.targets)

    def self_rows(self) -> list[int]:
        """The targets (by index) whose temporal maps follow the source's at this step."""
        return [k for k, t in enumerate(self.plan.targets) if t.self_window[0] <= self.step < t.self_window[1]]

    def in_self_window(self) -> bool:
        return bool(self.self_rows())

    def wants(self, name: str) -> bool:
        kind = layer_kind(name)
        if kind == "frame":
            return self.plan.control_frame_attention and self.in_self_window()
        if self.plan.materialize_all:
            return True
        if kind == "cross":
            return name in self.plan.store_layers or self.in_cross_window()
        return self.in_self_window()

    # -- cross-attention ---------------------------------------------------------------------------
    def edit_cross(self, base: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """base (F, h, N, L) source maps, targets (K, F, h, N, L) -> edited target maps."""
        out = []
        for k, edit in enumerate(self.plan.targets):
            own = targets[k]
            if edit.mode == "swap":
                new = torch.einsum("fhnw,wm->fhnm", base, edit.mapper.to(base))
            else:
                a = edit.alphas.to(base)
                new = base[..., edit.mapper.to(base.device)] * a + own * (1 - a)
            if edit.equalizer is not None:
                new = new * edit.equalizer.to(base)
            alpha = edit.cross_alpha[self.step].to(base)
            out.append(new * alpha + own * (1 - alpha))
        return torch.stack(out)

    def on_cross(self, name: str, probs: torch.Tensor, rows: int, heads: int) -> torch.Tensor:
        """probs ((rows*F)*heads, N, L) -> the same with target rows edited."""
        p = rearrange(probs, "(r f h) n l -> r f h n l", r=rows, h=heads)
        c0, n_prompts = self.layout.cond_start, self.layout.prompts
        cond = p[c0 : c0 + n_prompts]  # (P, F, h, N, L)
        if name in self.plan.store_layers:
            self._store(cond[..., : self.plan.map_tokens].mean(dim=2).detach().float())  # (P, F, N, L')
        if n_prompts > 1 and self.in_cross_window():
            p = p.clone()
            p[c0 + 1 : c0 + n_prompts] = self.edit_cross(cond[0], cond[1:])
        return rearrange(p, "r f h n l -> (r f h) n l")

    # -- temporal ("self") attention ---------------------------------------------------------------
    def on_temporal(self, probs: torch.Tensor, rows: int, heads: int) -> torch.Tensor:
        """probs ((rows*N)*heads, F, F): target rows take the source's maps inside their self window."""
        following = self.self_rows()
        if not following:
            return probs
        p = rearrange(probs, "(r n h) f g -> r n h f g", r=rows, h=heads).clone()
        c0 = self.layout.cond_start
        for k in following:
            p[c0 + 1 + k] = p[c0]
        return rearrange(p, "r n h f g -> (r n h) f g")

    # -- averaged maps and local blending ---------------------------------------------------------
    def _store(self, maps: torch.Tensor) -> None:
        """Add a stored layer's maps (P, F_w, N, L') to the sums of the clip frames its window owns."""
        if self.window is None:
            frames = own = list(range(maps.shape[1]))
        else:
            frames, own = self.window.own_frames, list(self.window.own)
        if self.sums is None:
            f = self.num_frames or maps.shape[1]
            self.sums = maps.new_zeros(maps.shape[0], f, *maps.shape[2:])
            self.counts = maps.new_zeros(f)
        self.sums[:, frames] += maps[:, own]
        self.counts[frames] += 1

    def averaged_maps(self) -> torch.Tensor | None:
        """(P, F, N, L') maps averaged over the steps, stored layers (and windows) so far; None before any."""
        if self.sums is None:
            return None
        return self.sums / self.counts.clamp_min(1)[None, :, None, None]

    def blend_mask(
        self,
        latent_hw: tuple[int, int],
        tokens: torch.Tensor,
        threshold: float | list[float],
        rows: list[int] | None = None,
    ) -> torch.Tensor:
        """Per-frame masks (R, F, 1, h, w) from the stored maps of prompt rows[r] (default: every prompt,
        source first) on the tokens of tokens[r] (R, L), above `threshold` (or threshold[r])."""
        sums, counts = self.sums if rows is None else self.sums[rows], self.counts.clamp_min(1)
        words = tokens[:, : sums.shape[-1]].to(sums)
        words_map = torch.einsum("pfnl,pl->pfn", sums, words) / counts[None, :, None]  # (R, F, N), mean over layers
        mean = rearrange(words_map, "p f (y x) -> (p f) 1 y x", x=map_size(sums.shape[2], latent_hw)[1])
        pooled = F.max_pool2d(mean, 3, 1, padding=1)  # the official 3x3 max-pool at map resolution
        mask = F.interpolate(pooled, size=latent_hw)  # nearest, as the official code
        mask = rearrange(normalize_maps(mask, self.plan.mask_norm), "(p f) 1 y x -> p f 1 y x", p=tokens.shape[0])
        limit = torch.as_tensor(threshold, dtype=mask.dtype, device=mask.device)
        return mask > (limit.view(-1, 1, 1, 1, 1) if limit.dim() else limit)

    def word_regions(self, latent_hw: tuple[int, int], words: TargetWords) -> torch.Tensor:
        """(K, F, 1, h, w): each target's region of its words, the source word's mask over the source's
        maps joined with the target word's over that target's (LocalBlend's union); empty without words."""
        k = words.source.shape[0]
        source = self.blend_mask(latent_hw, words.source, self.plan.threshold, rows=[0] * k)
        target = self.blend_mask(latent_hw, words.target, self.plan.threshold, rows=list(range(1, k + 1)))
        return (source | target) & words.given.to(source.device).view(k, 1, 1, 1, 1)

    def local_blend(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """latents (P, F, C, h, w): targets keep the source outside the union of source and target masks
        (a target without blend words keeps its own latents everywhere)."""
        plan = self.plan
        if plan.blend is None or self.step < plan.blend_start or self.sums is None:
            return latents, None
        hw = latents.shape[-2:]
        unblended = ~plan.blend.given.to(latents.device).view(-1, 1, 1, 1, 1)
        union = self.word_regions(hw, plan.blend) | unblended  # (K, F, 1, h, w)
        if plan.subtract is not None:
            union = union & ~self.word_regions(hw, plan.subtract)
        m = union.to(latents.dtype)
        out = latents.clone()
        out[1:] = latents[:1] + m * (latents[1:] - latents[:1])
        return out, union

    def on_frame(self, probs: torch.Tensor, rows: int, heads: int) -> torch.Tensor:
        """probs (rows*heads, Q, K) of frame attention: target rows take the source's maps inside their
        self window."""
        p = rearrange(probs, "(r h) q k -> r h q k", r=rows).clone()
        c0 = self.layout.cond_start
        for k in self.self_rows():
            p[c0 + 1 + k] = p[c0]
        return rearrange(p, "r h q k -> (r h) q k")


def map_size(cells: int, latent_hw: tuple[int, int]) -> tuple[int, int]:
    """(h, w) of an attention map of `cells` positions over a latent of `latent_hw` (h, w): the latent's sides
    halved as the UNet's downsamplers halve them (a 3x3 convolution of stride 2 and padding 1 keeps ceil(n / 2)
    of n), until the map has that many cells; a ValueError where no level of the latent has."""
    h, w = latent_hw
    while h * w > cells and (h, w) != (1, 1):
        h, w = -(-h // 2), -(-w // 2)
    if h * w != cells:
        raise ValueError(f"an attention map of {cells} cells is at no level of a {latent_hw[0]}x{latent_hw[1]} latent")
    return h, w


def normalize_maps(maps: torch.Tensor, norm: MaskNorm) -> torch.Tensor:
    """(N, 1, h, w) maps scaled per map into [0, 1]: by the maximum (prompt-to-prompt's LocalBlend) or the range."""
    top = maps.amax(dim=(2, 3), keepdim=True)
    if norm is MaskNorm.MAX:
        return maps / top.clamp_min(1e-12)
    low = maps.amin(dim=(2, 3), keepdim=True)
    return (maps - low) / (top - low).clamp_min(1e-12)


def attend_with_probs(attn: Attention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, edit) -> torch.Tensor:
    """Attention with explicit probabilities passed through `edit`; q, k, v (B, N, H*d) -> (B, N, C)."""
    q, k, v = attn.head_to_batch_dim(q), attn.head_to_batch_dim(k), attn.head_to_batch_dim(v)
    probs = edit(attn.get_attention_scores(q, k))  # (B*h, N, M)
    out = attn.batch_to_head_dim(torch.bmm(probs, v))
    return attn.to_out[1](attn.to_out[0](out))


class ControlledProcessor(T2SAttnProcessor):
    """A layer the controller may read or edit: at steps it wants, `controlled`; otherwise the
    layer's default processor (`fallback`), attention slicing included."""

    def __init__(self, controller: EditController, name: str, fallback: T2SAttnProcessor):
        self.controller = controller
        self.name = name
        self.fallback = fallback

    def attend(
        self, attn: Attention, hidden: torch.Tensor, context: torch.Tensor, num_frames: int, anchors: Anchors
    ) -> torch.Tensor:
        if not self.controller.wants(self.name):
            return self.fallback.attend(attn, hidden, context, num_frames, anchors)
        return self.controlled(attn, hidden, context, num_frames, anchors)

    def controlled(
        self, attn: Attention, hidden: torch.Tensor, context: torch.Tensor, num_frames: int, anchors: Anchors
    ) -> torch.Tensor:
        raise NotImplementedError


class ControlledFrameProcessor(ControlledProcessor):
    """Frame attention whose target maps follow the source inside the self-replace window (an option)."""

    def __init__(self, controller: EditController, name: str, mode: FrameAttentionMode, fallback: FrameAttnProcessor):
        super().__init__(controller, name, fallback)
        self.mode = mode

    def controlled(
        self, attn: Attention, hidden: torch.Tensor, context: torch.Tensor, num_frames: int, anchors: Anchors
    ) -> torch.Tensor:
        k, v = frame_keys_values(attn, hidden, num_frames, self.mode, anchors)
        q = frame_queries(attn, hidden, num_frames, self.mode)
        q, k, v = attn.head_to_batch_dim(q), attn.head_to_batch_dim(k), attn.head_to_batch_dim(v)
        probs = attn.get_attention_scores(q, k)  # (B'*h, Q, K)
        rows = hidden.shape[0] // num_frames
        if self.mode is FrameAttentionMode.FIRST:
            probs = self.controller.on_frame(probs, rows, attn.heads)
        else:  # sparse-causal folds frames into the batch: (rows*F*h, N, 2N)
            probs = rearrange(probs, "(r f h) q k -> (r h) (f q) k", r=rows, h=attn.heads)
            probs = self.controller.on_frame(probs, rows, attn.heads)
            probs = rearrange(probs, "(r h) (f q) k -> (r f h) q k", r=rows, f=num_frames)
        out = attn.batch_to_head_dim(torch.bmm(probs, v))
        return unfold_frame_output(attn.to_out[1](attn.to_out[0](out)), num_frames, self.mode)


class ControlledCrossProcessor(ControlledProcessor):
    """Cross-attention that materialises probabilities for the controller when it asks."""

    def controlled(
        self, attn: Attention, hidden: torch.Tensor, context: torch.Tensor, num_frames: int, anchors: Anchors
    ) -> torch.Tensor:
        rows = hidden.shape[0] // num_frames
        q, k, v = attn.to_q(hidden), attn.to_k(context), attn.to_v(context)  # probs (B*h, N, L)
        return attend_with_probs(attn, q, k, v, lambda p: self.controller.on_cross(self.name, p, rows, attn.heads))


class ControlledTemporalProcessor(ControlledProcessor):
    """Temporal attention whose target maps follow the source inside the self-replace window."""

    def controlled(
        self, attn: Attention, hidden: torch.Tensor, context: torch.Tensor, num_frames: int, anchors: Anchors
    ) -> torch.Tensor:
        q, k, v = attn.to_q(hidden), attn.to_k(hidden), attn.to_v(hidden)  # probs (rows*N*h, F, F)
        rows = self.controller.layout.rows
        return attend_with_probs(attn, q, k, v, lambda p: self.controller.on_temporal(p, rows, attn.heads))


def controlled_processor(
    controller: EditController,
    name: str,
    mode: FrameAttentionMode = FrameAttentionMode.FIRST,
    query_chunk: int | None = None,
):
    """The processor a controlled layer gets, or None to keep the default (uncontrolled frame attention).

    Steps whose maps are not read go to the layer's default processor, attention slicing included.
    """
    kind = layer_kind(name)
    fallback = default_processor(name, mode, query_chunk)
    if kind == "frame" and controller.plan.control_frame_attention:
        return ControlledFrameProcessor(controller, name, mode, fallback)
    if kind == "cross":
        return ControlledCrossProcessor(controller, name, fallback)
    if kind == "temporal":
        return ControlledTemporalProcessor(controller, name, fallback)
    return None
