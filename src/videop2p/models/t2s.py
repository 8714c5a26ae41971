"""The text-to-set (T2S) model: an image UNet inflated for video (Video-P2P section 3.2).

Frames are folded into the batch (every 2D convolution acts as a 1x3x3 kernel), self-attention
becomes frame attention through processors, and every transformer block gets a temporal
attention layer after its feed-forward, zero-initialised so that the inflated model equals the
image model before tuning.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.attention_processor import Attention
from einops import rearrange
from torch import nn

from videop2p.models.attention import FrameAttentionMode, assign_processors


class TemporalAttention(nn.Module):
    """LayerNorm, self-attention over frames at each spatial position, residual (zero-init output)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = Attention(query_dim=dim, heads=heads, dim_head=dim // heads, bias=False)
        nn.init.zeros_(self.attn.to_out[0].weight)
        nn.init.zeros_(self.attn.to_out[0].bias)

    def forward(
        self, hidden: torch.Tensor, num_frames: int, cross_attention_kwargs: dict | None = None
    ) -> torch.Tensor:
        # hidden: (B*F, N, C)
        n = hidden.shape[1]
        x = rearrange(hidden, "(b f) n c -> (b n) f c", f=num_frames)
        x = self.attn(self.norm(x), **(cross_attention_kwargs or {}))
        return hidden + rearrange(x, "(b n) f c -> (b f) n c", n=n)


class T2SBlock(nn.Module):
    """A transformer block of the image UNet followed by temporal attention."""

    def __init__(self, block: BasicTransformerBlock, heads: int):
        super().__init__()
        self.block = block
        self.temporal = TemporalAttention(block.norm1.normalized_shape[0], heads)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        timestep: torch.Tensor | None = None,
        cross_attention_kwargs: dict | None = None,
        class_labels: torch.Tensor | None = None,
        added_cond_kwargs: dict | None = None,
    ) -> torch.Tensor:
        kwargs = cross_attention_kwargs or {}
        if "num_frames" not in kwargs:
            raise ValueError("The T2S model needs `num_frames` in cross_attention_kwargs; call it through T2SModel.")
        hidden_states = self.block(
            hidden_states,
            attention_mask=attention_mask,
            encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask,
            timestep=timestep,
            cross_attention_kwargs=kwargs,
            class_labels=class_labels,
        )
        return self.temporal(hidden_states, kwargs["num_frames"], kwargs)


def inflate_unet(unet: UNet2DConditionModel, seed: int = 0) -> UNet2DConditionModel:
    """A copy of `unet` with a temporal attention layer in every transformer block; SD weights unchanged.

    The temporal layers' random initial weights come from `seed`, not from the global RNG, so a
    clip tuned in any process (a batch worker, a Ray task) gets the same model.
    """
    video = copy.deepcopy(unet)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _add_temporal_layers(unet, video)
    _check_weights_reused(unet, video)
    return video


def _add_temporal_layers(unet: UNet2DConditionModel, video: UNet2DConditionModel) -> None:
    for module in list(video.modules()):
        blocks = getattr(module, "transformer_blocks", None)
        if not isinstance(blocks, nn.ModuleList):
            continue
        for i, block in enumerate(blocks):
            if not isinstance(block, BasicTransformerBlock):
                raise TypeError(f"cannot inflate transformer block of type {type(block).__name__}")
            blocks[i] = T2SBlock(block, heads=block.attn1.heads)
            blocks[i].temporal.to(device=unet.device, dtype=unet.dtype)


def _check_weights_reused(image: UNet2DConditionModel, video: UNet2DConditionModel) -> None:
    """Every image-UNet tensor must reappear unchanged in the video UNet (keys with `.block.` inserted)."""
    video_state = video.state_dict()
    for key, value in image.state_dict().items():
        parts = key.split(".")
        if "transformer_blocks" in parts:
            j = parts.index("transformer_blocks")
            parts.insert(j + 2, "block")
        vkey = ".".join(parts)
        if vkey not in video_state:
            raise KeyError(f"inflated UNet lacks {vkey!r} (image key {key!r})")
        same = value.is_meta or torch.equal(video_state[vkey], value)  # meta tensors: shapes only
        if video_state[vkey].shape != value.shape or not same:
            raise ValueError(f"inflated UNet changed weight {key!r}")


def is_trainable(name: str) -> bool:
    """The official trainable set: frame-attention and cross-attention queries, and temporal attention."""
    return ".temporal." in name or name.endswith(("attn1.to_q.weight", "attn2.to_q.weight"))


class T2SModel(nn.Module):
    """The inflated UNet and how to call it on (B, F, C, h, w) video latents."""

    def __init__(self, unet: UNet2DConditionModel, frame_mode: FrameAttentionMode | str = FrameAttentionMode.FIRST):
        super().__init__()
        self.unet = unet
        self.frame_mode = FrameAttentionMode(frame_mode)
        self.query_chunk: int | None = None  # attention slicing, off by default
        self.delta_key: str | None = None  # workspace key of the tuned delta it carries; None: not tracked
        self.set_processors()

    @classmethod
    def from_image_unet(
        cls, unet: UNet2DConditionModel, frame_mode: FrameAttentionMode | str = FrameAttentionMode.FIRST
    ) -> T2SModel:
        return cls(inflate_unet(unet), frame_mode)

    def set_processors(self, choose: Callable[[str], object] | None = None) -> dict[str, object]:
        """Assign attention processors; `choose(name)` may override the default of any layer."""
        return assign_processors(self.unet, choose, self.frame_mode, self.query_chunk)

    def set_attention_slicing(self, query_chunk: int | None) -> None:
        """Attention over at most `query_chunk` queries at a time (None: off); a fallback where
        fused SDPA kernels are missing, same results."""
        if query_chunk is not None and query_chunk < 1:
            raise ValueError(f"query_chunk must be a positive number of queries or None, got {query_chunk}.")
        self.query_chunk = query_chunk
        self.set_processors()

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.unet.named_parameters() if is_trainable(n)}

    def forward(self, latents: torch.Tensor, timestep: torch.Tensor | int, text: torch.Tensor) -> torch.Tensor:
        """Noise (or velocity) prediction; latents (B, F, C, h, w), text (B, L, D) -> (B, F, C, h, w)."""
        b, f = latents.shape[:2]
        x = rearrange(latents, "b f c h w -> (b f) c h w")
        ctx = text.repeat_interleave(f, dim=0)  # (B*F, L, D)
        t = torch.as_tensor(timestep, device=latents.device)
        if t.ndim == 0:
            t = t.expand(b)
        t = t.repeat_interleave(f)  # (B*F,)
        out = self.unet(x, t, encoder_hidden_states=ctx, cross_attention_kwargs={"num_frames": f}).sample
        return rearrange(out, "(b f) c h w -> b f c h w", b=b)


@contextlib.contextmanager
def checkpointing(unet: UNet2DConditionModel, on: bool) -> Iterator[None]:
    """Gradient checkpointing on `unet` for the block, when `on`; off again afterwards."""
    if on:
        unet.enable_gradient_checkpointing()
    try:
        yield
    finally:
        if on:
            unet.disable_gradient_checkpointing()


def backward_step(loss: torch.Tensor, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None) -> None:
    """Backward pass and optimiser step, through `scaler`'s loss scaling when there is one (fp16)."""
    if scaler is None:
        loss.backward()
        opt.step()
        return
    scaler.scale(loss).backward()
    scaler.step(opt)  # skipped when the scaled gradients overflowed
    scaler.update()
