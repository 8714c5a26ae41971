"""Train the toy-world model from scratch: a VAE, then a UNet and text encoder, with resumable checkpoints."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import AttnProcessor2_0

from videop2p.models.schedulers import make_scheduler
from videop2p.progress import progress_bar
from videop2p.store.files import read_json, write_json
from videop2p.toy.data import (
    caption_ids,
    encode_dataset,
    load_vae,
    load_weights,
    object_cells,
    random_caption,
    render_dataset,
    save_checkpoint,
    save_pipeline,
    splice,
    to_tensor,
)
from videop2p.toy.grounding import MapStore, ground_processors, token_loss, word_regions
from videop2p.toy.model import (
    head_counts,
    latent_size,
    make_text_encoder,
    make_unet,
    make_vae,
    rescale_text,
    text_rms,
)
from videop2p.toy.settings import ToyModelConfig, ToyTrainConfig
from videop2p.tuning import diffusion_target

logger = logging.getLogger(__name__)


SAVE_RESERVE_S = 15.0  # seconds a time-boxed run keeps for its last checkpoint and the export


def train_scheduler(cfg: ToyTrainConfig):
    """The DDIM scheduler a run trains with and writes into its model folder."""
    return make_scheduler(cfg.prediction_type, cfg.snr_shift, cfg.zero_terminal_snr, cfg.timestep_spacing)


def cosine_lr(step: int, total: int, peak: float, warmup: int = 200) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def steps_in_budget(step: int, total: int, rate: float, seconds_left: float) -> int:
    """Phase 2's planned step count: `total`, or fewer if `rate` steps/s cannot reach it in `seconds_left`.

    Never below `step + 1`, so a run past its budget still ends with one more step and its checkpoint.
    """
    return max(step + 1, min(total, step + int(rate * max(0.0, seconds_left))))


def _fit_autoencoder(
    vae, opt, gen: torch.Generator, loss_fn, cfg: ToyTrainConfig, steps: int, peak_lr: float, ckpt: Path, what: str
):
    """The loop both VAE phases share: cosine learning rate, `loss_fn()` per step, resumable checkpoints.

    `loss_fn` draws its batch from `gen`, whose state is checkpointed with the weights, so a resumed
    run draws the batches an uninterrupted one would have.
    """
    step = 0
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        vae.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"])
        step = state["step"]
        logger.info("resumed %s at step %d", what, step)
    bar = progress_bar(total=steps, initial=step, desc=what)
    while step < steps:
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, steps, peak_lr)
        loss = loss_fn()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        if step % cfg.checkpoint_every == 0 or step == steps:
            save_checkpoint(
                ckpt, {"model": vae.state_dict(), "opt": opt.state_dict(), "gen": gen.get_state(), "step": step}
            )
    bar.close()


def train_vae(cfg: ToyTrainConfig, images: np.ndarray, ckpt: Path):
    """Phase 1: the autoencoder, on random crops, L1 + MSE + tiny KL."""
    torch.manual_seed(cfg.seed)
    vae = make_vae(cfg.model).to(cfg.device)
    opt = torch.optim.Adam(vae.parameters(), lr=cfg.vae_lr)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    data = to_tensor(images)
    c = cfg.vae_crop

    def loss_fn() -> torch.Tensor:
        idx = torch.randint(0, len(data), (cfg.batch_size,), generator=gen)
        oy, ox = torch.randint(0, data.shape[-1] - c + 1, (2,), generator=gen).tolist()
        x = data[idx, :, oy : oy + c, ox : ox + c].to(cfg.device)  # (B, 3, c, c)
        post = vae.encode(x).latent_dist
        y = vae.decode(post.sample(generator=gen)).sample  # CPU generator: the same draw on any device
        return F.l1_loss(y, x) + F.mse_loss(y, x) + cfg.vae_kl_weight * post.kl().mean()

    _fit_autoencoder(vae, opt, gen, loss_fn, cfg, cfg.vae_steps, cfg.vae_lr, ckpt, "train VAE")
    return vae


def train_decoder(
    cfg: ToyTrainConfig, vae, images: np.ndarray, posterior: tuple, ckpt: Path, masks: np.ndarray | None = None
):
    """Phase 1b: sharpen the decoder on whole frames, L1 + MSE, with the encoder frozen.

    Phase 1 trains on small crops, where every decoded edge sits near a padded border; on whole frames
    the decoder learns to draw an object's outline as the renderer does. The encoder, and so every
    latent a UNet was trained on, is unchanged: a model's UNet keeps working with the sharper decoder.
    `posterior` is the (means, stds) of `images`, (N, C, h, w) each.

    A share `cfg.decoder_splice` of each batch is spliced: the latents of one frame's object cells
    (grown by 0-2 cells) over another frame's latents, to be decoded into the same two frames' pixels
    spliced along the same cells. Local blending pastes latents so (prompt-to-prompt keeps the source's
    latents outside the edited words' cells), and Stable Diffusion's VAE decodes such a paste into the
    pasted pixels; a decoder trained on whole frames only may draw a pasted object in the colours of
    its new surroundings. `masks` (N, H, W) bool: the objects of `images`, needed for splicing.
    """
    if cfg.decoder_splice > 0 and masks is None:
        raise ValueError(f"decoder_splice={cfg.decoder_splice} needs the object masks of the frames.")
    mean, std = posterior
    decoder = [vae.post_quant_conv, vae.decoder]
    params = [p for m in decoder for p in m.parameters()]
    vae.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    for m in decoder:
        m.train()
    opt = torch.optim.Adam(params, lr=cfg.decoder_lr)
    gen = torch.Generator().manual_seed(cfg.seed + 3)
    data = to_tensor(images)

    spliced = round(cfg.decoder_batch * cfg.decoder_splice)
    factor = data.shape[-1] // mean.shape[-1]
    objects = torch.from_numpy(masks) if spliced else None

    def draw(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=gen)  # a posterior draw, (B, C, h, w)
        return z, data[idx]  # (B, 3, H, W)

    def loss_fn() -> torch.Tensor:
        z, x = draw(torch.randint(0, len(data), (cfg.decoder_batch,), generator=gen))
        if spliced:
            pasted = torch.randint(0, len(data), (spliced,), generator=gen)
            grow = torch.randint(0, 3, (spliced,), generator=gen).tolist()
            cells = object_cells(objects[pasted], factor, grow)  # (S, 1, h, w)
            z_obj, x_obj = draw(pasted)
            z = torch.cat([splice(z_obj, z[:spliced], cells), z[spliced:]])
            x = torch.cat([splice(x_obj, x[:spliced], cells), x[spliced:]])
        y = vae.decode(z.to(cfg.device)).sample
        x = x.to(cfg.device)
        return F.l1_loss(y, x) + F.mse_loss(y, x)

    _fit_autoencoder(vae, opt, gen, loss_fn, cfg, cfg.decoder_steps, cfg.decoder_lr, ckpt, "sharpen decoder")
    vae.requires_grad_(False)
    return vae.eval()


def _ema_update(ema: dict[str, torch.Tensor], modules: dict[str, torch.nn.Module], decay: float) -> None:
    for prefix, module in modules.items():
        for name, p in module.state_dict().items():
            if p.dtype.is_floating_point:
                ema[f"{prefix}.{name}"].mul_(decay).add_(p.detach(), alpha=1 - decay)


def train_unet(
    cfg: ToyTrainConfig,
    latents: tuple[torch.Tensor, torch.Tensor],
    specs,
    scaling: float,
    tokenizer,
    ckpt: Path,
    masks: torch.Tensor | None = None,
    deadline: float | None = None,
):
    """Phase 2: UNet and text encoder jointly, denoising loss (epsilon or v) with offset noise, EMA weights.

    With `cfg.token_weight` > 0, TokenCompose's token loss on the object masks (N, H, W) is added,
    so that attribute and background words attend to their regions from the start. With a
    `deadline` (time.monotonic() seconds), the schedule is shortened to the steps that fit, planned
    from the measured step rate, so that the cosine decay still runs to its end; a run resumed
    from such a checkpoint keeps that plan (train longer with a new run and `init_from`).
    """
    torch.manual_seed(cfg.seed + 2)
    mean, std = latents
    device = torch.device(cfg.device)
    unet = make_unet(cfg.model, sample_size=mean.shape[-1])
    text_encoder = make_text_encoder(cfg.model, len(tokenizer), tokenizer.model_max_length)
    if cfg.init_from:
        load_weights(cfg.init_from, unet, text_encoder)
    unet, text_encoder = unet.to(device), text_encoder.to(device)
    modules = {"unet": unet, "text_encoder": text_encoder}
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.unet_lr, weight_decay=0.01)
    ema = {f"{k}.{n}": p.detach().clone() for k, m in modules.items() for n, p in m.state_dict().items()}
    scheduler = train_scheduler(cfg)
    gen = torch.Generator().manual_seed(cfg.seed + 3)
    rng = np.random.default_rng(cfg.seed + 4)
    store = MapStore()
    id_cache: dict[str, list[int]] = {}  # the captions are a few thousand phrasings: tokenize each once
    if cfg.token_weight > 0:
        if masks is None:
            raise ValueError(f"token_weight={cfg.token_weight} needs the object masks of the dataset; got none.")
        ground_processors(unet, store)
        masks = F.adaptive_avg_pool2d(masks[:, None].float(), mean.shape[-2:])[:, 0].to(device)  # (N, h, w) share
    step, total = 0, cfg.unet_steps
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False, map_location=device)
        check_heads(state, cfg.model, ckpt)
        unet.load_state_dict(state["unet"])
        text_encoder.load_state_dict(state["text_encoder"])
        opt.load_state_dict(state["opt"])
        ema = state["ema"]
        gen.set_state(state["gen"].cpu())
        rng.bit_generator.state = state["rng"]
        step, total = state["step"], min(cfg.unet_steps, state.get("planned", cfg.unet_steps))
        logger.info("resumed UNet training at step %d of %d", step, total)
    bar = progress_bar(total=total, initial=step, desc="train UNet")
    timed_from = None  # (step, time) after the first step of this process, which pays the warm-up
    while step < total:
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, total, cfg.unet_lr)
        idx = torch.randint(0, len(mean), (cfg.batch_size,), generator=gen)
        z0 = (mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=gen)) * scaling  # (B, C, h, w)
        captions = [
            "" if rng.random() < cfg.caption_dropout else random_caption(specs[i], rng, cfg.color_dropout)
            for i in idx.tolist()
        ]
        ids = caption_ids(tokenizer, captions, id_cache).to(device)  # (B, L)
        noise = torch.randn(z0.shape, generator=gen)
        noise = noise + cfg.offset_noise * torch.randn((*z0.shape[:2], 1, 1), generator=gen)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (len(z0),), generator=gen)
        zt = scheduler.add_noise(z0, noise, t)
        store.clear()
        pred = unet(zt.to(device), t.to(device), text_encoder(ids)[0]).sample
        loss = F.mse_loss(pred, diffusion_target(scheduler, z0, noise, t).to(device))
        if cfg.token_weight > 0:
            regions, supervised = word_regions(tokenizer, captions, masks[idx.to(device)], ids)  # (B, L, h, w), (B, L)
            loss = loss + cfg.token_weight * token_loss(store.maps, regions, supervised)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        _ema_update(ema, modules, min(cfg.ema_decay, (1 + step) / (10 + step)))
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        if deadline is not None:
            now = time.monotonic()
            if timed_from is None:
                timed_from = (step, now)
            elif step - timed_from[0] in (50, 200) or step % cfg.checkpoint_every == 0:  # plan, then correct
                rate = (step - timed_from[0]) / (now - timed_from[1])
                planned = steps_in_budget(step, total, rate, deadline - now - SAVE_RESERVE_S)
                if planned < total:
                    logger.info("time budget: %d steps of %d fit (%.1f steps/s)", planned, cfg.unet_steps, rate)
                    total = bar.total = planned
        if step % cfg.checkpoint_every == 0 or step == total:
            save_checkpoint(
                ckpt,
                {
                    "unet": unet.state_dict(),
                    "text_encoder": text_encoder.state_dict(),
                    "opt": opt.state_dict(),
                    "ema": ema,
                    "gen": gen.get_state(),
                    "rng": rng.bit_generator.state,
                    "step": step,
                    **({"planned": total} if total < cfg.unet_steps else {}),  # a budget's plan holds on resume
                    "heads": list(head_counts(cfg.model)),
                },
            )
    bar.close()
    unet.set_attn_processor(AttnProcessor2_0())  # diffusers' default processor everywhere
    unet.load_state_dict({n[len("unet.") :]: p for n, p in ema.items() if n.startswith("unet.")})
    text_encoder.load_state_dict(
        {n[len("text_encoder.") :]: p for n, p in ema.items() if n.startswith("text_encoder.")}
    )
    return unet.cpu(), text_encoder.cpu()


def check_starting_weights(cfg: ToyTrainConfig):
    """Refuse, before any work, a `vae_from` folder whose VAE does not load whole and an `init_from` folder
    whose UNet or text encoder does not fit `cfg.model` (a ValueError or FileNotFoundError naming it): a
    run reads them only after the dataset is rendered, and the VAE trained. Returns the `vae_from` VAE
    (None without one)."""
    from videop2p.models.tokenizer import bundled_tokenizer

    vae = load_vae(cfg.vae_from) if cfg.vae_from else None
    if cfg.init_from:
        tokenizer = bundled_tokenizer()
        unet = make_unet(cfg.model, sample_size=latent_size(cfg.model))
        load_weights(cfg.init_from, unet, make_text_encoder(cfg.model, len(tokenizer), tokenizer.model_max_length))
    return vae


def train_toy_model(out_dir: str | Path, cfg: ToyTrainConfig | None = None) -> Path:
    """Train (or resume) the toy model; returns the diffusers pipeline folder `out_dir/model`."""
    from videop2p.models.tokenizer import bundled_tokenizer

    cfg = cfg or ToyTrainConfig()
    vae_from = check_starting_weights(cfg)
    out = Path(out_dir)
    (out / "ckpt").mkdir(parents=True, exist_ok=True)
    write_json(out / "train_config.json", asdict(cfg))
    start = time.perf_counter()
    deadline = time.monotonic() + cfg.time_budget_s if cfg.time_budget_s > 0 else None
    cache = out / "ckpt" / "dataset.pt"
    if cache.exists():
        data = torch.load(cache, weights_only=False)
        images, specs = data[0], data[-1]
        masks = data[1] if len(data) == 3 else None  # caches of earlier versions hold no masks
    else:
        images, masks, specs = render_dataset(cfg.dataset_size, cfg.model.image_size, cfg.seed, cfg.workers)
        save_checkpoint(cache, (images, masks, specs))
    if masks is None and (cfg.token_weight > 0 or cfg.decoder_splice > 0):
        masks = render_dataset(cfg.dataset_size, cfg.model.image_size, cfg.seed, cfg.workers)[1]
    vae = vae_from if vae_from is not None else train_vae(cfg, images, out / "ckpt" / "vae.pt")
    vae = vae.to(cfg.device).eval()
    t_vae = time.perf_counter() - start
    mean, std = encode_dataset(vae, images)
    if cfg.decoder_steps > 0:
        vae = train_decoder(cfg, vae, images, (mean, std), out / "ckpt" / "decoder.pt", masks)
    t_decoder = time.perf_counter() - start - t_vae
    scaling = vae.config.scaling_factor if cfg.vae_from else float(1.0 / mean.std())
    vae.register_to_config(scaling_factor=scaling)
    tokenizer = bundled_tokenizer()
    unet, text_encoder = train_unet(
        cfg,
        (mean, std),
        specs,
        scaling,
        tokenizer,
        out / "ckpt" / "unet.pt",
        masks=None if masks is None else torch.from_numpy(masks),
        deadline=deadline,
    )
    reparametrise_text(cfg, text_encoder, unet, tokenizer)
    save_pipeline(vae.cpu(), text_encoder, tokenizer, unet, out / "model", train_scheduler(cfg))
    elapsed = time.perf_counter() - start
    write_json(
        out / "train_time.json", {"total_s": elapsed, "vae_s": t_vae, "decoder_s": t_decoder, "scaling_factor": scaling}
    )
    logger.info("toy model written to %s in %.0f s", out / "model", elapsed)
    return out / "model"


def reparametrise_text(cfg: ToyTrainConfig, text_encoder, unet, tokenizer) -> None:
    """Give the model to be saved the text scale `cfg.text_rms` asks for (the same model; see `rescale_text`).

    The target is absolute, the empty prompt's RMS, so a run that starts from a model saved this way
    and is saved again is not rescaled twice."""
    if cfg.text_rms > 0:
        rescale_text(text_encoder, unet, cfg.text_rms / text_rms(text_encoder, tokenizer))


def check_heads(state: dict, model: ToyModelConfig, path: Path) -> None:
    """Refuse a checkpoint whose UNet was trained with another attention split than `model` builds.

    The weights' shapes do not depend on the split, so loading them would succeed and silently give
    another model. Checkpoints written before the split was recorded used `unet_head_dim` as the
    head count (diffusers' reading of `attention_head_dim`).
    """
    want = list(head_counts(model))
    if state.get("heads") != want:
        got = state.get("heads") or f"{model.unet_head_dim} per block (written before head counts were recorded)"
        raise ValueError(
            f"{path} was trained with {got} attention heads; this version builds {want} for "
            f"unet_head_dim={model.unet_head_dim}. Start a new run, or export it with the version that trained it."
        )


def read_train_config(path: str | Path) -> ToyTrainConfig:
    """The settings a run wrote to its `train_config.json`."""
    d = read_json(path)
    d.pop("threads", None)  # written by earlier versions; threads are the command line's business
    model = ToyModelConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.pop("model").items()})
    return ToyTrainConfig(model=model, **d)


def export_checkpoint(out_dir: str | Path, dest: str | Path, cfg: ToyTrainConfig | None = None) -> Path:
    """Write a pipeline folder from the current checkpoints (EMA weights) of an unfinished run."""
    from videop2p.models.tokenizer import bundled_tokenizer

    out = Path(out_dir)
    cfg = cfg or read_train_config(out / "train_config.json")
    if cfg.vae_from:
        vae = load_vae(cfg.vae_from)
    else:
        vae = make_vae(cfg.model)
        vae.load_state_dict(torch.load(out / "ckpt" / "vae.pt", weights_only=False, map_location="cpu")["model"])
    if cfg.decoder_steps > 0 and (out / "ckpt" / "decoder.pt").exists():
        vae.load_state_dict(torch.load(out / "ckpt" / "decoder.pt", weights_only=False, map_location="cpu")["model"])
    state = torch.load(out / "ckpt" / "unet.pt", weights_only=False, map_location="cpu")
    check_heads(state, cfg.model, out / "ckpt" / "unet.pt")
    tokenizer = bundled_tokenizer()
    unet = make_unet(cfg.model, sample_size=latent_size(cfg.model))
    text_encoder = make_text_encoder(cfg.model, len(tokenizer), tokenizer.model_max_length)
    ema = state["ema"]
    unet.load_state_dict({n[len("unet.") :]: p for n, p in ema.items() if n.startswith("unet.")})
    text_encoder.load_state_dict(
        {n[len("text_encoder.") :]: p for n, p in ema.items() if n.startswith("text_encoder.")}
    )
    if (out / "train_time.json").exists():
        scaling = read_json(out / "train_time.json")["scaling_factor"]
    elif cfg.vae_from:
        scaling = vae.config.scaling_factor
    else:
        images = torch.load(out / "ckpt" / "dataset.pt", weights_only=False)[0]  # (images, [masks,] specs)
        mean, _ = encode_dataset(vae.eval(), images[:2000])
        scaling = float(1.0 / mean.std())
    vae.register_to_config(scaling_factor=scaling)
    reparametrise_text(cfg, text_encoder, unet, tokenizer)
    save_pipeline(vae, text_encoder, tokenizer, unet, dest, train_scheduler(cfg))
    logger.info("exported step %d to %s", state["step"], dest)
    return Path(dest)
