"""A diffusers Stable Diffusion model written as an original (LDM) single-file checkpoint, for the
loader's tests: the key layout of CompVis' `ldm` code, for any number of blocks and layers per block."""

from __future__ import annotations

import torch

RESNET_PARTS = (  # diffusers' ResnetBlock2D -> ldm's ResBlock
    ("norm1", "in_layers.0"),
    ("conv1", "in_layers.2"),
    ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"),
    ("time_emb_proj", "emb_layers.1"),
    ("conv_shortcut", "skip_connection"),
)
VAE_ATTENTION_PARTS = (
    ("group_norm.", "norm."),
    ("to_q.", "q."),
    ("to_k.", "k."),
    ("to_v.", "v."),
    ("to_out.0.", "proj_out."),
)


def unet_prefixes(config: dict) -> list[tuple[str, str]]:
    """(diffusers prefix, ldm prefix) of every UNet part: ldm numbers its blocks in one sequence per side."""
    n, layers = len(config["block_out_channels"]), config["layers_per_block"]
    down_attention = ["CrossAttn" in t for t in config["down_block_types"]]
    up_attention = ["CrossAttn" in t for t in config["up_block_types"]]
    pairs = [
        ("time_embedding.linear_1.", "time_embed.0."),
        ("time_embedding.linear_2.", "time_embed.2."),
        ("conv_in.", "input_blocks.0.0."),
        ("conv_norm_out.", "out.0."),
        ("conv_out.", "out.2."),
        ("mid_block.attentions.0.", "middle_block.1."),
        ("mid_block.resnets.0.", "middle_block.0."),
        ("mid_block.resnets.1.", "middle_block.2."),
    ]
    for i in range(n):
        for j in range(layers):
            index = 1 + i * (layers + 1) + j
            pairs.append((f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{index}.0."))
            if down_attention[i]:
                pairs.append((f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{index}.1."))
        for j in range(layers + 1):
            index = i * (layers + 1) + j
            pairs.append((f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{index}.0."))
            if up_attention[i]:
                pairs.append((f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{index}.1."))
        if i < n - 1:
            pairs.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{(i + 1) * (layers + 1)}.0.op."))
            upsample = f"output_blocks.{i * (layers + 1) + layers}.{2 if up_attention[i] else 1}."
            pairs.append((f"up_blocks.{i}.upsamplers.0.", upsample))
    return pairs


def unet_key(key: str, pairs: list[tuple[str, str]]) -> str:
    for ours, theirs in pairs:
        if key.startswith(ours):
            rest = key[len(ours) :]
            if ".resnets." in ours:
                for a, b in RESNET_PARTS:
                    rest = b + rest[len(a) :] if rest.startswith(a + ".") else rest
            return theirs + rest
    return key


def vae_key(key: str, n: int) -> str:
    """ldm's VAE names: `down.i.block.j`, up blocks counted from the top, `mid.block_1`, `mid.attn_1`."""
    side, dot, rest = key.partition(".")
    if side not in ("encoder", "decoder"):
        return key  # quant_conv, post_quant_conv
    for i in range(n):
        rest = rest.replace(f"down_blocks.{i}.resnets.", f"down.{i}.block.")
        rest = rest.replace(f"down_blocks.{i}.downsamplers.0.", f"down.{i}.downsample.")
        rest = rest.replace(f"up_blocks.{i}.resnets.", f"up.{n - 1 - i}.block.")
        rest = rest.replace(f"up_blocks.{i}.upsamplers.0.", f"up.{n - 1 - i}.upsample.")
    rest = rest.replace("mid_block.resnets.0.", "mid.block_1.").replace("mid_block.resnets.1.", "mid.block_2.")
    rest = rest.replace("mid_block.attentions.0.", "mid.attn_1.")
    for a, b in VAE_ATTENTION_PARTS:
        rest = rest.replace("mid.attn_1." + a, "mid.attn_1." + b)
    return side + dot + rest.replace("conv_shortcut", "nin_shortcut").replace("conv_norm_out", "norm_out")


def ldm_state_dict(components) -> dict[str, torch.Tensor]:
    """The components' weights under an original checkpoint's keys (SD 1.x: a CLIP text encoder)."""
    pairs = unet_prefixes(dict(components.unet.config))
    out = {"model.diffusion_model." + unet_key(k, pairs): v for k, v in components.unet.state_dict().items()}
    n = len(components.vae.config.block_out_channels)
    for k, v in components.vae.state_dict().items():
        key = vae_key(k, n)
        if ".mid.attn_1." in key and key.endswith(".weight") and v.ndim == 2:  # ldm's 1x1 convolutions
            v = v[:, :, None, None]
        out["first_stage_model." + key] = v
    for k, v in components.text_encoder.state_dict().items():  # keyed as transformers 4 named CLIP's weights
        out["cond_stage_model.transformer." + (k if k.startswith("text_model.") else "text_model." + k)] = v
    return {k: v.contiguous() for k, v in out.items()}
