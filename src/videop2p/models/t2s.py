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
from diffusers.models.resnet import ResnetBlock2D
from einops import rearrange
from torch import nn

from videop2p.config import GroupNormMode
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


class ClipGroupNorm(nn.GroupNorm):
    """GroupNorm over frames folded into the batch, (B*F, C, H, W), with statistics over every frame of
    each clip when `num_frames` > 1: what the authors' ResnetBlock3D and output norm compute on their
    (b, c, f, h, w) tensors. With `num_frames` 1 it is the image model's per-frame GroupNorm."""

    num_frames: int = 1  # set by T2SModel.forward for the clip it is called on

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.num_frames == 1:
            return super().forward(x)
        video = rearrange(x, "(b f) c h w -> b c f h w", f=self.num_frames)
        return rearrange(super().forward(video), "b c f h w -> (b f) c h w")


def _clip_norm(norm: nn.GroupNorm) -> ClipGroupNorm:
    """A ClipGroupNorm holding the same parameters as `norm`."""
    new = ClipGroupNorm(norm.num_groups, norm.num_channels, norm.eps, affine=False)
    new.affine, new.weight, new.bias = norm.affine, norm.weight, norm.bias
    return new


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


def video_key(name: str) -> str:
    """Name of an image-UNet parameter or processor inside the inflated UNet (`.block.` inserted after
    the transformer block's index)."""
    parts = name.split(".")
    if "transformer_blocks" in parts and "block" not in parts:
        j = parts.index("transformer_blocks")
        parts.insert(j + 2, "block")
    return ".".join(parts)


def is_temporal(name: str) -> bool:
    """A parameter of the temporal layers the inflation adds."""
    return ".temporal." in name


def temporal_shapes(unet: UNet2DConditionModel) -> dict[str, torch.Size]:
    """Names and shapes of the temporal-layer tensors that inflating `unet` adds (nothing is allocated)."""
    shapes = {}
    for name, module in unet.named_modules():
        blocks = getattr(module, "transformer_blocks", None)
        if not isinstance(blocks, nn.ModuleList):
            continue
        for i, block in enumerate(blocks):
            with torch.device("meta"):
                layer = TemporalAttention(block.norm1.normalized_shape[0], block.attn1.heads)
            shapes.update(
                {f"{name}.transformer_blocks.{i}.temporal.{k}": v.shape for k, v in layer.state_dict().items()}
            )
    return shapes


def inflate_unet(unet: UNet2DConditionModel, seed: int = 0) -> UNet2DConditionModel:
    """A copy of `unet` with a temporal attention layer in every transformer block; SD weights unchanged.

    The temporal layers' random initial weights come from `seed`, not from the global RNG, so a
    clip tuned in any process (a batch worker, a Ray task) gets the same model.
    """
    video = copy.deepcopy(unet)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _add_temporal_layers(unet, video)
    _make_norms_clip_wide(video)
    _check_weights_reused(unet, video)
    return video


def _make_norms_clip_wide(video: UNet2DConditionModel) -> None:
    """Every resnet's norm1/norm2 and the output norm become ClipGroupNorms (same parameters)."""
    for module in list(video.modules()):
        if isinstance(module, ResnetBlock2D):
            module.norm1, module.norm2 = _clip_norm(module.norm1), _clip_norm(module.norm2)
    if isinstance(video.conv_norm_out, nn.GroupNorm):
        video.conv_norm_out = _clip_norm(video.conv_norm_out)


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
        vkey = video_key(key)
        if vkey not in video_state:
            raise KeyError(f"inflated UNet lacks {vkey!r} (image key {key!r})")
        same = value.is_meta or torch.equal(video_state[vkey], value)  # meta tensors: shapes only
        if video_state[vkey].shape != value.shape or not same:
            raise ValueError(f"inflated UNet changed weight {key!r}")


def is_trainable(name: str) -> bool:
    """The official trainable set: frame-attention and cross-attention queries, and temporal attention."""
    return is_temporal(name) or name.endswith(("attn1.to_q.weight", "attn2.to_q.weight"))


class T2SModel(nn.Module):
    """The inflated UNet and how to call it on (B, F, C, h, w) video latents."""

    def __init__(
        self,
        unet: UNet2DConditionModel,
        frame_mode: FrameAttentionMode | str = FrameAttentionMode.FIRST,
        group_norm: GroupNormMode | str = GroupNormMode.FRAME,
    ):
        super().__init__()
        self.unet = unet
        self.frame_mode = FrameAttentionMode(frame_mode)
        self.group_norm = GroupNormMode(group_norm)
        self._clip_norms = [m for m in unet.modules() if isinstance(m, ClipGroupNorm)]
        self.query_chunk: int | None = None  # attention slicing, off by default
        self.delta_key: str | None = None  # workspace key of the tuned delta it carries; None: not tracked
        self.tuned_frames: str | None = None  # frames hash of the clip it was tuned on; None: not tracked
        self.set_processors()

    @classmethod
    def from_image_unet(
        cls,
        unet: UNet2DConditionModel,
        frame_mode: FrameAttentionMode | str = FrameAttentionMode.FIRST,
        group_norm: GroupNormMode | str = GroupNormMode.FRAME,
    ) -> T2SModel:
        return cls(inflate_unet(unet), frame_mode, group_norm)

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

    def forward(
        self,
        latents: torch.Tensor,
        timestep: torch.Tensor | int,
        text: torch.Tensor,
        anchors: tuple[int, ...] = (0,),
    ) -> torch.Tensor:
        """Noise (or velocity) prediction; latents (B, F, C, h, w), text (B, L, D) -> (B, F, C, h, w).

        `anchors`: positions of the frames that frame attention reads (Video-P2P: frame 0)."""
        b, f = latents.shape[:2]
        x = rearrange(latents, "b f c h w -> (b f) c h w")
        ctx = text.repeat_interleave(f, dim=0)  # (B*F, L, D)
        t = torch.as_tensor(timestep, device=latents.device)
        if t.ndim == 0:
            t = t.expand(b)
        t = t.repeat_interleave(f)  # (B*F,)
        for norm in self._clip_norms:  # stays set for a checkpointed backward pass, which recomputes
            norm.num_frames = f if self.group_norm is GroupNormMode.CLIP else 1
        out = self.unet(
            x, t, encoder_hidden_states=ctx, cross_attention_kwargs={"num_frames": f, "anchors": anchors}
        ).sample
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


def backward(loss: torch.Tensor, scaler: torch.amp.GradScaler | None) -> None:
    """Backward pass (gradients accumulate), through `scaler`'s loss scaling when there is one (fp16)."""
    (loss if scaler is None else scaler.scale(loss)).backward()


def optimizer_step(opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None) -> None:
    """Optimiser step on the accumulated gradients; with a scaler, skipped when they overflowed."""
    if scaler is None:
        opt.step()
        return
    scaler.step(opt)
    scaler.update()


def backward_step(loss: torch.Tensor, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None) -> None:
    """Backward pass and optimiser step, through `scaler`'s loss scaling when there is one (fp16)."""
    backward(loss, scaler)
    optimizer_step(opt, scaler)
