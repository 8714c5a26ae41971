"""Train the toy-world model from scratch: a VAE, then a UNet and text encoder, with resumable checkpoints."""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from videop2p.toy.model import ToyModelConfig, make_scheduler, make_text_encoder, make_unet, make_vae
from videop2p.toy.world import VERBS, caption_for, random_spec, render_clip

logger = logging.getLogger(__name__)


@dataclass
class ToyTrainConfig:
    """Settings of a toy-model training run."""

    model: ToyModelConfig = field(default_factory=ToyModelConfig)
    dataset_size: int = 20000  # pre-rendered training images
    seed: int = 0  # seeds the data, the initialisation and the batches
    batch_size: int = 32  # images per step
    vae_steps: int = 2500  # VAE optimisation steps
    vae_lr: float = 1e-3  # VAE peak learning rate (cosine decay)
    vae_crop: int = 32  # VAE trains on random crops of this side (fully convolutional)
    vae_kl_weight: float = 1e-6  # weight of the KL term
    unet_steps: int = 3000  # UNet + text encoder steps
    unet_lr: float = 1e-3  # UNet peak learning rate (cosine decay)
    caption_dropout: float = 0.1  # fraction of empty captions (for classifier-free guidance)
    offset_noise: float = 0.05  # per-channel offset noise, helps flat backgrounds
    ema_decay: float = 0.999  # EMA of UNet and text-encoder weights
    checkpoint_every: int = 250  # steps between checkpoints
    threads: int = 0  # torch threads, 0 = leave as is


def render_dataset(n: int, size: int, seed: int) -> tuple[np.ndarray, list]:
    """Render `n` single-frame toy images and their specs."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    specs = []
    for i in tqdm(range(n), desc="render dataset", leave=False):
        spec = random_spec(rng, frames=1, size=size)
        images[i] = render_clip(spec).frames[0]
        specs.append(spec)
    return images, specs


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def cosine_lr(step: int, total: int, peak: float, warmup: int = 200) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def random_caption(spec, rng: np.random.Generator) -> str:
    """One of the phrasings of a spec's caption."""
    verb = str(rng.choice((*VERBS, "")))
    return caption_for(spec.objects, spec.background, verb=verb, with_size=bool(rng.random() < 0.5))


def _save(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def train_vae(cfg: ToyTrainConfig, images: np.ndarray, ckpt: Path):
    """Phase 1: the autoencoder, on random crops, L1 + MSE + tiny KL."""
    torch.manual_seed(cfg.seed)
    vae = make_vae(cfg.model)
    opt = torch.optim.Adam(vae.parameters(), lr=cfg.vae_lr)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    step = 0
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        vae.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"])
        step = state["step"]
        logger.info("resumed VAE training at step %d", step)
    data = to_tensor(images)
    bar = tqdm(total=cfg.vae_steps, initial=step, desc="train VAE")
    c = cfg.vae_crop
    while step < cfg.vae_steps:
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, cfg.vae_steps, cfg.vae_lr)
        idx = torch.randint(0, len(data), (cfg.batch_size,), generator=gen)
        oy, ox = torch.randint(0, data.shape[-1] - c + 1, (2,), generator=gen).tolist()
        x = data[idx, :, oy : oy + c, ox : ox + c]  # (B, 3, c, c)
        post = vae.encode(x).latent_dist
        y = vae.decode(post.sample(generator=gen)).sample
        loss = F.l1_loss(y, x) + F.mse_loss(y, x) + cfg.vae_kl_weight * post.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if step % cfg.checkpoint_every == 0 or step == cfg.vae_steps:
            _save(ckpt, {"model": vae.state_dict(), "opt": opt.state_dict(), "gen": gen.get_state(), "step": step})
    bar.close()
    return vae


@torch.no_grad()
def encode_dataset(vae, images: np.ndarray, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior means and stds of every image, (N, C, h, w) each."""
    means, stds = [], []
    for i in tqdm(range(0, len(images), batch), desc="encode dataset", leave=False):
        post = vae.encode(to_tensor(images[i : i + batch])).latent_dist
        means.append(post.mean)
        stds.append(post.std)
    return torch.cat(means), torch.cat(stds)


def _ema_update(ema: dict[str, torch.Tensor], modules: dict[str, torch.nn.Module], decay: float) -> None:
    for prefix, module in modules.items():
        for name, p in module.state_dict().items():
            if p.dtype.is_floating_point:
                ema[f"{prefix}.{name}"].mul_(decay).add_(p.detach(), alpha=1 - decay)


def train_unet(
    cfg: ToyTrainConfig, latents: tuple[torch.Tensor, torch.Tensor], specs, scaling: float, tokenizer, ckpt: Path
):
    """Phase 2: UNet and text encoder jointly, epsilon loss with offset noise, EMA weights."""
    torch.manual_seed(cfg.seed + 2)
    mean, std = latents
    unet = make_unet(cfg.model, sample_size=mean.shape[-1])
    text_encoder = make_text_encoder(cfg.model, len(tokenizer), tokenizer.model_max_length)
    modules = {"unet": unet, "text_encoder": text_encoder}
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.unet_lr, weight_decay=0.01)
    ema = {f"{k}.{n}": p.detach().clone() for k, m in modules.items() for n, p in m.state_dict().items()}
    scheduler = make_scheduler()
    gen = torch.Generator().manual_seed(cfg.seed + 3)
    rng = np.random.default_rng(cfg.seed + 4)
    step = 0
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        unet.load_state_dict(state["unet"])
        text_encoder.load_state_dict(state["text_encoder"])
        opt.load_state_dict(state["opt"])
        ema = state["ema"]
        gen.set_state(state["gen"])
        rng.bit_generator.state = state["rng"]
        step = state["step"]
        logger.info("resumed UNet training at step %d", step)
    bar = tqdm(total=cfg.unet_steps, initial=step, desc="train UNet")
    while step < cfg.unet_steps:
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, cfg.unet_steps, cfg.unet_lr)
        idx = torch.randint(0, len(mean), (cfg.batch_size,), generator=gen)
        z0 = (mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=gen)) * scaling  # (B, C, h, w)
        captions = ["" if rng.random() < cfg.caption_dropout else random_caption(specs[i], rng) for i in idx.tolist()]
        ids = tokenizer(
            captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
        ).input_ids
        noise = torch.randn(z0.shape, generator=gen)
        noise = noise + cfg.offset_noise * torch.randn((*z0.shape[:2], 1, 1), generator=gen)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (len(z0),), generator=gen)
        zt = scheduler.add_noise(z0, noise, t)
        pred = unet(zt, t, text_encoder(ids)[0]).sample
        loss = F.mse_loss(pred, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        _ema_update(ema, modules, min(cfg.ema_decay, (1 + step) / (10 + step)))
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if step % cfg.checkpoint_every == 0 or step == cfg.unet_steps:
            _save(
                ckpt,
                {
                    "unet": unet.state_dict(),
                    "text_encoder": text_encoder.state_dict(),
                    "opt": opt.state_dict(),
                    "ema": ema,
                    "gen": gen.get_state(),
                    "rng": rng.bit_generator.state,
                    "step": step,
                },
            )
    bar.close()
    unet.load_state_dict({n[len("unet.") :]: p for n, p in ema.items() if n.startswith("unet.")})
    text_encoder.load_state_dict(
        {n[len("text_encoder.") :]: p for n, p in ema.items() if n.startswith("text_encoder.")}
    )
    return unet, text_encoder


def save_pipeline(vae, text_encoder, tokenizer, unet, dest: str | Path) -> None:
    """Write the components as a standard diffusers Stable Diffusion folder."""
    from videop2p.models.loading import SDComponents, model_info, save_pretrained_folder

    scheduler = make_scheduler()
    info = model_info(tokenizer, text_encoder, vae, unet, scheduler, source="videop2p-toy")
    save_pretrained_folder(SDComponents(tokenizer, text_encoder, vae, unet, scheduler, info), dest)


def train_toy_model(out_dir: str | Path, cfg: ToyTrainConfig | None = None) -> Path:
    """Train (or resume) the toy model; returns the diffusers pipeline folder `out_dir/model`."""
    from videop2p.models.tokenizer import bundled_tokenizer

    cfg = cfg or ToyTrainConfig()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(out_dir)
    (out / "ckpt").mkdir(parents=True, exist_ok=True)
    (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2))
    start = time.perf_counter()
    cache = out / "ckpt" / "dataset.pt"
    if cache.exists():
        images, specs = torch.load(cache, weights_only=False)
    else:
        images, specs = render_dataset(cfg.dataset_size, cfg.model.image_size, cfg.seed)
        _save(cache, (images, specs))
    vae = train_vae(cfg, images, out / "ckpt" / "vae.pt").eval()
    t_vae = time.perf_counter() - start
    mean, std = encode_dataset(vae, images)
    scaling = float(1.0 / mean.std())
    vae.register_to_config(scaling_factor=scaling)
    tokenizer = bundled_tokenizer()
    unet, text_encoder = train_unet(cfg, (mean, std), specs, scaling, tokenizer, out / "ckpt" / "unet.pt")
    save_pipeline(vae, text_encoder, tokenizer, unet, out / "model")
    elapsed = time.perf_counter() - start
    (out / "train_time.json").write_text(json.dumps({"total_s": elapsed, "vae_s": t_vae, "scaling_factor": scaling}))
    logger.info("toy model written to %s in %.0f s", out / "model", elapsed)
    return out / "model"


def export_checkpoint(out_dir: str | Path, dest: str | Path, cfg: ToyTrainConfig | None = None) -> Path:
    """Write a pipeline folder from the current checkpoints (EMA weights) of an unfinished run."""
    from videop2p.models.tokenizer import bundled_tokenizer

    cfg = cfg or ToyTrainConfig()
    out = Path(out_dir)
    vae = make_vae(cfg.model)
    vae.load_state_dict(torch.load(out / "ckpt" / "vae.pt", weights_only=False)["model"])
    state = torch.load(out / "ckpt" / "unet.pt", weights_only=False)
    tokenizer = bundled_tokenizer()
    latent = cfg.model.image_size // 2 ** (len(cfg.model.vae_channels) - 1)
    unet = make_unet(cfg.model, sample_size=latent)
    text_encoder = make_text_encoder(cfg.model, len(tokenizer), tokenizer.model_max_length)
    ema = state["ema"]
    unet.load_state_dict({n[len("unet.") :]: p for n, p in ema.items() if n.startswith("unet.")})
    text_encoder.load_state_dict(
        {n[len("text_encoder.") :]: p for n, p in ema.items() if n.startswith("text_encoder.")}
    )
    scaling = (
        json.loads((out / "train_time.json").read_text())["scaling_factor"]
        if (out / "train_time.json").exists()
        else None
    )
    if scaling is None:
        images, _ = torch.load(out / "ckpt" / "dataset.pt", weights_only=False)
        mean, _ = encode_dataset(vae.eval(), images[:2000])
        scaling = float(1.0 / mean.std())
    vae.register_to_config(scaling_factor=scaling)
    save_pipeline(vae, text_encoder, tokenizer, unet, dest)
    logger.info("exported step %d to %s", state["step"], dest)
    return Path(dest)
