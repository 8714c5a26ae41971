"""How well does null-text's optimisation fit each step, per frame? And does a closer fit keep the edit in place?

python docs/eval/scripts/null_text_fit.py --model FOLDER --case 0 [--tune-steps 200] [--steps 50]
       [--variants official nostop inner50] [--json OUT.json]

Tunes on one suite case and DDIM-inverts it as `videop2p eval` does (200 tuning steps by default,
50 steps), then runs null-text optimisation (Mokady et al. 2023, Alg. 1: the library's
`optimise_null_text` itself) with each variant of its settings. For every step it records how many
Adam iterations ran, the loss (mean squared error of the guided step against the DDIM latent) with
the embedding the step starts from and with the one it ends with, per frame, the early-stop
threshold, and after the step each frame's relative error against the DDIM trajectory,
mean((z - z*)^2) / mean(z*^2). Then the case is edited with that inversion and judged.

Variants: `official` (lr 1e-2, at most 10 iterations, early stop at 1e-5 + i * 2e-5), `nostop`
(always 10 iterations), `inner50` (at most 50 iterations, no early stop), `lr3x` and `lr10x` (lr 3e-2
and 1e-1, official stopping). Adam's steps do not depend on the gradient's scale, so a k times larger
learning rate is the official optimisation of a model whose text embeddings are k times smaller and
whose cross-attention keys and values read them k times larger: the same model, reparametrised.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch

from videop2p.config import InversionConfig, InversionMethod, TuneConfig
from videop2p.editing import EditConfig, edit
from videop2p.evaluation import judge, make_suite
from videop2p.inversion import InversionResult, ddim_invert, early_stop_threshold, optimise_null_text
from videop2p.latents import decode_latents, encode_posterior, encode_prompts
from videop2p.models.loading import load_components
from videop2p.models.t2s import T2SModel
from videop2p.sampling import EvalCounter, cfg, ddim_schedule, denoise_step
from videop2p.toy.world import render_clip
from videop2p.tuning import tune

VARIANTS = {
    "official": {},
    "nostop": {"early_stop": -1.0},
    "inner50": {"early_stop": -1.0, "inner_steps": 50},
    "lr3x": {"lr": 3e-2},
    "lr10x": {"lr": 1e-1},
}


def frame_error(x: torch.Tensor, ref: torch.Tensor, relative: bool) -> list[float]:
    """Per-frame mean squared error of (1, F, C, h, w) latents, divided by the reference's energy if relative."""
    dims = (0, 2, 3, 4)  # every axis but the frame
    err = (x.float() - ref.float()).pow(2).mean(dims)
    return (err / ref.float().pow(2).mean(dims) if relative else err).tolist()


@torch.no_grad()
def guided_step(model, z, t, emb, cond_out, sched, guidance: float) -> torch.Tensor:
    """One classifier-free-guided DDIM step from z with unconditional embedding emb."""
    return denoise_step(cfg(model(z, t, emb), cond_out, guidance), z, t, sched)


def fit(model, ddim: torch.Tensor, cond, empty, sched, c: InversionConfig) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """The library's null-text optimisation, recorded step by step: (per-step records, embeddings (T, 1, L, D),
    path z_0 first)."""
    counter = EvalCounter()
    before = []  # UNet evaluations done before each step (and after the last)
    embeddings, path = optimise_null_text(
        model, ddim, cond, empty, sched, c, counter, on_step=lambda *_: before.append(counter.counts["null_text"])
    )
    n = len(sched.timesteps)
    zs = path.flip(0)  # z_T first: zs[i] enters step i, zs[i + 1] leaves it
    rec = {"iterations": [], "threshold": [], "loss_start": [], "loss_end": [], "drift": []}
    for i, t in enumerate(sched.timesteps):
        target = ddim[n - i - 1]
        start_emb = embeddings[i - 1] if i else empty  # the embedding the step starts from
        with torch.no_grad():
            cond_out = model(zs[i], t, cond)
        start = frame_error(
            guided_step(model, zs[i], t, start_emb, cond_out, sched, c.guidance), target, relative=False
        )
        # one UNet evaluation per Adam iteration, besides the step's conditional and guided predictions
        rec["iterations"].append(before[i + 1] - before[i] - 2)
        rec["threshold"].append(early_stop_threshold(c.early_stop, i))
        rec["loss_start"].append(start)
        rec["loss_end"].append(frame_error(zs[i + 1], target, relative=False))
        rec["drift"].append(frame_error(zs[i + 1], target, relative=True))
    return rec, embeddings, path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model folder (default: the bundled toy model)")
    p.add_argument("--case", type=int, default=0)
    p.add_argument("--tune-steps", type=int, default=200)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    p.add_argument("--json", default=None)
    args = p.parse_args()
    start = time.perf_counter()
    comps = load_components(args.model)
    case = make_suite(max(30, args.case + 1))[args.case]
    clip = render_clip(case.spec)
    posterior = encode_posterior(comps, clip.frames)
    model = T2SModel.from_image_unet(comps.unet)
    cond, empty = encode_prompts(comps, [case.source]), encode_prompts(comps, [""])
    tune(model, comps, posterior, cond, TuneConfig(steps=args.tune_steps, progress=False))
    model.unet.requires_grad_(False)
    sched = ddim_schedule(comps.scheduler, args.steps)
    ddim = ddim_invert(model, posterior[0], cond, empty, sched, progress=False)  # (T + 1, 1, F, C, h, w) z_0 first
    print(f"case {args.case} {case.source!r} -> {case.target!r}: tuned and inverted in "
          f"{time.perf_counter() - start:.0f} s")  # fmt: skip
    report = {"model": args.model or "bundled", "case": args.case, "tune_steps": args.tune_steps,
              "timesteps": sched.timesteps, "variants": {}}  # fmt: skip
    for variant in args.variants:
        c = dataclasses.replace(InversionConfig(steps=args.steps, progress=False), **VARIANTS[variant])
        rec, embeddings, path = fit(model, ddim, cond, empty, sched, c)
        inv = InversionResult(method=InversionMethod.NULL_TEXT, latent_T=ddim[-1].clone(), latent_0=posterior[0],
                              timesteps=sched.timesteps, uncond_embeddings=embeddings, trajectory=path)  # fmt: skip
        res = edit(model, comps, inv, case.source, [case.target], EditConfig(blend=case.blend, progress=False))
        frames = decode_latents(comps, res.latents)
        rec["judge"] = judge(case, clip, frames[1], frames[0])
        report["variants"][variant] = rec
        worst = max(range(len(rec["drift"][0])), key=lambda f: max(d[f] for d in rec["drift"]))
        j = rec["judge"]
        print(f"  {variant}: success {j['edit_success']:.0f}, frames right {j['frames_right']:.2f}, IoU "
              f"{j['object_iou']:.2f}, background {j['background_psnr']:.1f} dB; iterations {sum(rec['iterations'])}; "
              f"largest drift {max(max(d) for d in rec['drift']):.1%} (frame {worst})")  # fmt: skip
        for i in (0, 1, 2, 4, 6, 9, 14, 24, 36, 49):
            if i < args.steps:
                print(f"    step {i}: {rec['iterations'][i]} it, threshold {rec['threshold'][i]:.1e}, loss "
                      f"{sum(rec['loss_start'][i]) / len(rec['loss_start'][i]):.1e} -> "
                      f"{sum(rec['loss_end'][i]) / len(rec['loss_end'][i]):.1e} (frame {worst}: "
                      f"{rec['loss_start'][i][worst]:.1e} -> {rec['loss_end'][i][worst]:.1e}); drift "
                      + " ".join(f"{d:.1%}" for d in rec["drift"][i]))  # fmt: skip
        if args.json:  # after every variant, so an interrupted run keeps what it measured
            with open(args.json, "w") as fh:
                json.dump(report, fh, indent=1)


if __name__ == "__main__":
    main()
