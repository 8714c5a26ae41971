"""The toy world's training data and the files of a training run, shared by training and grounding."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from videop2p.models.schedulers import make_scheduler
from videop2p.models.weights import load_pretrained, load_state
from videop2p.progress import progress_bar
from videop2p.store.files import atomic_path
from videop2p.toy.world import VERBS, caption_for, random_spec, render_clip

RENDER_CHUNK = 500  # images per rendering task


def _render_frames(specs: list) -> tuple[np.ndarray, np.ndarray]:
    """First frames (N, H, W, 3) and their object masks (N, H, W) of single-frame specs."""
    clips = [render_clip(spec) for spec in specs]
    return np.stack([c.frames[0] for c in clips]), np.stack([c.masks[0].any(0) for c in clips])


def render_dataset(n: int, size: int, seed: int, workers: int = 0) -> tuple[np.ndarray, np.ndarray, list]:
    """Render `n` single-frame toy images, their object masks and specs; the same data for any `workers`."""
    rng = np.random.default_rng(seed)
    specs = [random_spec(rng, frames=1, size=size) for _ in range(n)]  # rendering draws from each spec's own seed
    chunks = [specs[i : i + RENDER_CHUNK] for i in range(0, n, RENDER_CHUNK)]
    with ProcessPoolExecutor(workers) if workers > 1 else nullcontext() as pool:
        done = pool.map(_render_frames, chunks) if pool else map(_render_frames, chunks)
        parts = list(progress_bar(done, total=len(chunks), desc="render dataset", leave=False))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), specs


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) float in [-1, 1] -> (N, H, W, 3) uint8, `to_tensor`'s inverse."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def object_cells(masks: torch.Tensor, factor: int, grow: list[int]) -> torch.Tensor:
    """(B, 1, h, w) float: the latent cells that hold any pixel of each object mask (B, H, W), grown by
    `grow[b]` cells on every side (local blending's masks are grown by one, its 3x3 max-pool)."""
    cells = F.max_pool2d(masks[:, None].float(), factor)  # a cell is the object's if any of its pixels is
    return torch.cat(
        [F.max_pool2d(c[None], 2 * g + 1, 1, g) if g else c[None] for c, g in zip(cells, grow, strict=True)]
    )


def splice(a: torch.Tensor, b: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """`a` on the cells (B, 1, h, w), `b` elsewhere; frames (B, 3, H, W) take the cells at their own size."""
    m = F.interpolate(cells, size=a.shape[-2:], mode="nearest")
    return m * a + (1 - m) * b


def random_caption(spec, rng: np.random.Generator, color_dropout: float = 0.0) -> str:
    """One of the phrasings of a spec's caption; with probability `color_dropout` it leaves the colour
    out ("a circle moving on the sand"), as a refinement's source prompt does."""
    verb = str(rng.choice((*VERBS, "")))
    with_size = bool(rng.random() < 0.5)
    with_color = not (color_dropout > 0 and rng.random() < color_dropout)
    return caption_for(spec.objects, spec.background, verb=verb, with_size=with_size, with_color=with_color)


def save_checkpoint(path: Path, state: dict) -> None:
    """torch.save through the atomic writer: an interrupted save leaves the last checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


@torch.no_grad()
def encode_dataset(vae, images: np.ndarray, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior means and stds of every image, (N, C, h, w) each."""
    means, stds = [], []
    device = next(vae.parameters()).device
    for i in progress_bar(range(0, len(images), batch), desc="encode dataset", leave=False):
        post = vae.encode(to_tensor(images[i : i + batch]).to(device)).latent_dist
        means.append(post.mean.cpu())
        stds.append(post.std.cpu())
    return torch.cat(means), torch.cat(stds)


def caption_ids(tokenizer, captions: list[str], cache: dict[str, list[int]]) -> torch.Tensor:
    """Padded token ids (B, L) of the captions, tokenizing only those not in `cache` (which it fills)."""
    new = list(dict.fromkeys(c for c in captions if c not in cache))
    if new:
        rows = tokenizer(new, padding="max_length", max_length=tokenizer.model_max_length, truncation=True).input_ids
        cache.update(zip(new, rows, strict=True))
    return torch.tensor([cache[c] for c in captions])


def load_weights(model_dir: str | Path, unet, text_encoder) -> None:
    """Load a model folder's UNet and text-encoder weights into modules of the same configuration."""
    from safetensors.torch import load_file

    for module, sub in ((unet, "unet"), (text_encoder, "text_encoder")):
        files = sorted((Path(model_dir) / sub).glob("*.safetensors"))
        if not files:
            raise FileNotFoundError(f"{Path(model_dir) / sub}: no .safetensors weights to start from.")
        state = {k: v for f in files for k, v in load_file(f).items()}
        load_state(
            module,
            state,
            str(Path(model_dir) / sub),
            ValueError,
            "give a folder of the toy model's configuration (--image-size, --text-layers).",
        )


def load_vae(model_dir: str | Path):
    """The VAE of a diffusers model folder, with its scaling factor; a ValueError names a VAE whose files do
    not make the VAE its config describes, or whose scaling factor is not a positive number."""
    from diffusers import AutoencoderKL

    from videop2p.models.vae import check_scaling_factor

    what = f"{Path(model_dir).name}/vae"
    vae = load_pretrained(AutoencoderKL, str(model_dir), what, ValueError, subfolder="vae")
    check_scaling_factor(vae.config, what, ValueError)
    return vae


def save_pipeline(vae, text_encoder, tokenizer, unet, dest: str | Path, scheduler=None) -> None:
    """Write the components as a standard diffusers Stable Diffusion folder (with Stable Diffusion's
    DDIM schedule unless `scheduler` is given)."""
    from videop2p.models.loading import SDComponents, model_info, save_pretrained_folder

    scheduler = scheduler or make_scheduler()
    info = model_info(tokenizer, text_encoder, vae, unet, scheduler, source="videop2p-toy")
    save_pretrained_folder(SDComponents(tokenizer, text_encoder, vae, unet, scheduler, info), dest)
