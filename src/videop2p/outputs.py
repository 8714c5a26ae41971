"""Pictures people look at: side-by-side video, mask overlays, attention-map grids, the report."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont


def upsample_masks(masks: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(F, h, w) bool -> (F, H, W) bool at frame size (nearest)."""
    m = F.interpolate(masks[:, None].float(), size=size, mode="nearest")[:, 0]
    return m.bool().cpu().numpy()


def mask_overlay(
    frames: np.ndarray, masks: np.ndarray, color: tuple[int, int, int] = (255, 40, 40), alpha: float = 0.5
) -> np.ndarray:
    """Frames (F, H, W, 3) tinted inside masks (F, H, W)."""
    out = frames.astype(np.float32).copy()
    tint = np.array(color, dtype=np.float32)
    out[masks] = (1 - alpha) * out[masks] + alpha * tint
    return out.round().astype(np.uint8)


def _heat(x: np.ndarray) -> np.ndarray:
    """(h, w) in [0, 1] -> (h, w, 3) uint8 colour map (black-red-yellow-white)."""
    x = np.clip(x, 0, 1)
    r = np.clip(3 * x, 0, 1)
    g = np.clip(3 * x - 1, 0, 1)
    b = np.clip(3 * x - 2, 0, 1)
    return (np.stack([r, g, b], -1) * 255).astype(np.uint8)


def attention_grid(maps: torch.Tensor, tokens: list[str], cell: int = 48, max_frames: int = 8) -> np.ndarray:
    """Grid image of averaged maps (F, y, x, L): one row per prompt token, one column per frame."""
    font = ImageFont.load_default()
    words = [(i, t.replace("</w>", "")) for i, t in enumerate(tokens) if t not in ("<|startoftext|>", "<|endoftext|>")]
    frames = min(maps.shape[0], max_frames)
    label_w = 90
    img = Image.new("RGB", (label_w + frames * cell, max(1, len(words)) * cell), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for r, (i, word) in enumerate(words):
        m = maps[:frames, :, :, i].float()
        m = m / m.max().clamp_min(1e-12)
        draw.text((4, r * cell + cell // 2 - 6), word[:14], fill=(0, 0, 0), font=font)
        for f in range(frames):
            tile = Image.fromarray(_heat(m[f].cpu().numpy())).resize((cell - 2, cell - 2), Image.Resampling.NEAREST)
            img.paste(tile, (label_w + f * cell + 1, r * cell + 1))
    return np.asarray(img)


def report_markdown(manifest: dict) -> str:
    """A short human report of a run."""
    lines = ["# videop2p run", "", f"- source: `{manifest['source']}`"]
    coverage = manifest.get("mask_coverage")
    for k, t in enumerate(manifest["targets"]):
        blend = f"; the blend mask covers {coverage[k]:.0%} of the frames" if coverage else ""
        lines.append(f"- target {k + 1}: `{t}` ({manifest['modes'][k]}{blend})")
    lines += [
        "",
        "## Time and UNet evaluations per stage",
        "",
        "| stage | action | seconds | UNet evaluations |",
        "|---|---|---|---|",
    ]
    for stage, info in manifest["stages"].items():
        lines.append(
            f"| {stage} | {info.get('action', '')} | {info['seconds']:.1f} | {info.get('unet_evaluations', '')} |"
        )
    lines += ["", "## Outputs", "", "![side by side](side_by_side.gif)", ""]
    for k, path in enumerate(manifest["outputs"].get("masks", [])):
        lines.append(f"![mask {k + 1}]({path})")
    for k, path in enumerate(manifest["outputs"].get("attention", [])):
        lines.append(f"![attention {k + 1}]({path})")
    lines += ["", "## Settings", "", "```yaml", manifest.get("config_yaml", "").rstrip(), "```", ""]
    return "\n".join(lines)
