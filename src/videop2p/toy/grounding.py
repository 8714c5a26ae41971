"""An optional phase 3 of the toy model: ground each caption word's cross-attention on its region.

Stable Diffusion's cross-attention maps of an object word peak on the object and fall towards zero
elsewhere, which is what prompt-to-prompt's local blending relies on. The bundled toy model learned
the words but not where they are: its maps never fall below about half of their peak, so the
official blend mask covers the whole frame. This phase fine-tunes a model with TokenCompose's token
loss (Wang et al., CVPR 2024, eq. 2) beside the denoising loss, using the world's ground-truth
masks: a colour, shape or size word should spend its attention on the object, a background word
on the rest. Measured effect and cost: the toy model's card (`data/toy_model/README.md`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from videop2p.control.controller import map_size
from videop2p.progress import progress_bar
from videop2p.store.files import write_json
from videop2p.toy.settings import GroundingConfig
from videop2p.toy.world import Background, Color, Shape, Size, random_spec, render_clip
from videop2p.tuning import diffusion_target

logger = logging.getLogger(__name__)

OBJECT_WORDS = frozenset(v.value for kind in (Color, Shape, Size) for v in kind)  # attend to the object
BACKGROUND_WORDS = frozenset(b.value for b in Background)  # attend to everything but the object


class MapStore:
    """Head-mean cross-attention probabilities of the layers that took part in the last forward pass."""

    def __init__(self):
        self.maps: list[torch.Tensor] = []  # each (B, N, L)

    def clear(self) -> None:
        self.maps = []


class GroundedCrossAttnProcessor:
    """Cross-attention with explicit probabilities, handed to a `MapStore` (keeps the gradient)."""

    def __init__(self, store: MapStore):
        self.store = store

    def __call__(
        self, attn: Attention, hidden_states: torch.Tensor, encoder_hidden_states=None, attention_mask=None, **kwargs
    ) -> torch.Tensor:
        q = attn.head_to_batch_dim(attn.to_q(hidden_states))  # (B*h, N, d)
        k = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states))  # (B*h, L, d)
        v = attn.head_to_batch_dim(attn.to_v(encoder_hidden_states))
        probs = attn.get_attention_scores(q, k)  # (B*h, N, L)
        self.store.maps.append(probs.unflatten(0, (-1, attn.heads)).mean(1))  # (B, N, L)
        out = attn.batch_to_head_dim(torch.bmm(probs, v))
        return attn.to_out[1](attn.to_out[0](out))


def ground_processors(unet, store: MapStore) -> None:
    """Cross-attention layers hand their maps to `store`; the others run SDPA."""
    unet.set_attn_processor(
        {
            name: GroundedCrossAttnProcessor(store) if name.endswith("attn2.processor") else AttnProcessor2_0()
            for name in unet.attn_processors
        }
    )


def word_roles(tokenizer, ids: torch.Tensor) -> torch.Tensor:
    """Role of each token id (B, L): 1 for an object word, -1 for a background word, 0 for the rest."""
    roles = torch.zeros_like(ids, dtype=torch.int8)
    for words, role in ((OBJECT_WORDS, 1), (BACKGROUND_WORDS, -1)):
        for word in words:
            for token in (f"{word}</w>", word):  # the word's token with and without the end-of-word mark
                tid = tokenizer.convert_tokens_to_ids(token)
                if tid is not None and tid != tokenizer.unk_token_id:
                    roles[ids == tid] = role
    return roles


def word_regions(
    tokenizer, captions: list[str], masks: torch.Tensor, ids: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each token should attend: regions (B, L, H, W) and which tokens are supervised (B, L).

    masks (B, H, W): bool object masks, or the object's share of each cell. Object words get the
    object, background words its complement; other tokens (start, "a", "on", padding) are left
    free. `ids` (B, L) are the captions' padded token ids when the caller already has them.
    """
    if ids is None:
        ids = tokenizer(
            captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
        ).input_ids
    roles = word_roles(tokenizer, ids)[..., None, None]  # (B, L, 1, 1)
    m = masks.float()[:, None]  # (B, 1, H, W)
    regions = torch.where(roles > 0, m, torch.where(roles < 0, 1 - m, torch.zeros_like(m)))  # (B, L, H, W)
    return regions, roles[..., 0, 0] != 0


def token_shares(maps: list[torch.Tensor], regions: torch.Tensor) -> torch.Tensor:
    """Share of each token's attention inside its region, (layers, B, L). maps: (B, N, L) per layer;
    regions (B, L, H, W), pooled to each layer's resolution."""
    h, w = regions.shape[-2:]
    shares = []
    for m in maps:
        r = F.adaptive_avg_pool2d(regions, map_size(m.shape[1], (h, w))).flatten(2)  # (B, L, N)
        a = m.transpose(1, 2)  # (B, L, N)
        shares.append((a * r).sum(-1) / a.sum(-1).clamp_min(1e-8))  # (B, L)
    return torch.stack(shares)


def token_loss(maps: list[torch.Tensor], regions: torch.Tensor, supervised: torch.Tensor) -> torch.Tensor:
    """TokenCompose's L_token (Wang et al. 2024, eq. 2): (1 - share of a token's attention inside its
    region)^2, averaged over supervised tokens and layers."""
    if not supervised.any():
        return maps[0].sum() * 0.0
    return ((1 - token_shares(maps, regions)) ** 2)[:, supervised].mean()


def attention_share(maps: list[torch.Tensor], regions: torch.Tensor, supervised: torch.Tensor) -> float:
    """Mean share of the supervised tokens' attention inside their regions (1: perfectly grounded)."""
    with torch.no_grad():
        return float(token_shares(maps, regions)[:, supervised].mean()) if supervised.any() else float("nan")


def render_grounding_data(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray, list]:
    """`n` single-frame toy images (N, H, W, 3), their object masks (N, H, W) and specs."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    masks = np.empty((n, size, size), dtype=bool)
    specs = []
    for i in progress_bar(range(n), desc="render grounding data", leave=False):
        spec = random_spec(rng, frames=1, size=size)
        clip = render_clip(spec)
        images[i], masks[i] = clip.frames[0], clip.masks[0].any(0)
        specs.append(spec)
    return images, masks, specs


def grounding_step(unet, text_encoder, tokenizer, scheduler, store: MapStore, batch: dict, gen: torch.Generator):
    """One forward pass of phase 3: (denoising loss, token loss, attention share)."""
    z0 = batch["mean"] + batch["std"] * torch.randn(batch["mean"].shape, generator=gen)  # (B, C, h, w)
    noise = torch.randn(z0.shape, generator=gen)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (len(z0),), generator=gen)
    ids = tokenizer(
        batch["captions"],
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    store.clear()
    pred = unet(scheduler.add_noise(z0, noise, t), t, text_encoder(ids)[0]).sample
    regions, supervised = word_regions(tokenizer, batch["captions"], batch["masks"], ids)
    ground = token_loss(store.maps, regions, supervised)
    return (
        F.mse_loss(pred, diffusion_target(scheduler, z0, noise, t)),
        ground,
        attention_share(store.maps, regions, supervised),
    )


def ground_toy_model(init: str | Path, out_dir: str | Path, cfg: GroundingConfig | None = None) -> Path:
    """Fine-tune the model in `init` with the token loss; resumable from `out_dir/ckpt`; returns `out_dir/model`."""
    from videop2p.models.loading import load_components
    from videop2p.toy.data import encode_dataset, random_caption, save_checkpoint, save_pipeline

    cfg = cfg or GroundingConfig()
    init, out = Path(init), Path(out_dir)
    comps = load_components(init)  # frozen, in eval mode: the UNet and text encoder are unfrozen to train
    (out / "ckpt").mkdir(parents=True, exist_ok=True)  # written once the model has loaded
    write_json(out / "grounding_config.json", {**asdict(cfg), "init": str(init)})
    tokenizer, text_encoder, vae, unet = comps.tokenizer, comps.text_encoder, comps.vae, comps.unet
    unet.requires_grad_(True), text_encoder.requires_grad_(True)
    size = comps.info.native_size  # the model's native side, as every run reads it
    images, masks, specs = render_grounding_data(cfg.dataset_size, size, cfg.seed)
    mean, std = encode_dataset(vae, images)
    scaling = vae.config.scaling_factor
    store = MapStore()
    ground_processors(unet, store)
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    rng = np.random.default_rng(cfg.seed + 2)
    step, history = 0, []
    ckpt = out / "ckpt" / "grounding.pt"
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        unet.load_state_dict(state["unet"])
        text_encoder.load_state_dict(state["text_encoder"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"])
        rng.bit_generator.state = state["rng"]
        step, history = state["step"], state["history"]
        logger.info("resumed grounding at step %d", step)
    unet.train(), text_encoder.train()
    scheduler = comps.scheduler  # the model's own schedule and prediction type
    bar = progress_bar(total=cfg.steps, initial=step, desc="ground attention")
    start = time.perf_counter()
    while step < cfg.steps:
        for g in opt.param_groups:
            g["lr"] = cfg.lr * min(1.0, (step + 1) / cfg.warmup)
        idx = torch.randint(0, len(mean), (cfg.batch_size,), generator=gen)
        captions = ["" if rng.random() < cfg.caption_dropout else random_caption(specs[i], rng) for i in idx.tolist()]
        batch = {"mean": mean[idx] * scaling, "std": std[idx] * scaling, "captions": captions}
        batch["masks"] = torch.from_numpy(masks[idx.numpy()])
        denoise, ground, share = grounding_step(unet, text_encoder, tokenizer, scheduler, store, batch, gen)
        loss = denoise + cfg.weight * ground
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        history.append({"step": step, "denoise": denoise.item(), "token": ground.item(), "share": share})
        bar.update(1)
        bar.set_postfix(denoise=f"{denoise.item():.4f}", share=f"{share:.3f}", refresh=False)
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            state = {"unet": unet.state_dict(), "text_encoder": text_encoder.state_dict(), "opt": opt.state_dict()}
            save_checkpoint(
                ckpt,
                {**state, "gen": gen.get_state(), "rng": rng.bit_generator.state, "step": step, "history": history},
            )
    bar.close()
    unet.set_attn_processor(AttnProcessor2_0())  # back to diffusers' default processor everywhere
    write_json(out / "grounding_history.json", history)
    save_pipeline(vae, text_encoder.eval(), tokenizer, unet.eval(), out / "model", scheduler)
    logger.info("grounded model written to %s (%.0f s this run)", out / "model", time.perf_counter() - start)
    return out / "model"
