"""Edit quality in the toy world, where every edit has a ground truth, and the paper's comparisons.

Each case is a rendered clip and an edit; each method edits it; metrics come from the world's
masks and the checker: edit success, background preservation, reconstruction, temporal consistency.
"""

from __future__ import annotations

import csv
import enum
import io
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from videop2p.config import (
    EvalSettings,
    GroupNormMode,
    HubFile,
    Method,
    extra_install,
    hub_download_command,
    hub_repository,
    unusable_path,
)
from videop2p.editing import EditConfig, edit
from videop2p.inversion import InversionConfig, InversionMethod, invert
from videop2p.latents import decode_latents, encode_posterior, encode_prompts
from videop2p.metrics import psnr
from videop2p.models.loading import SDComponents
from videop2p.models.t2s import T2SModel
from videop2p.models.weights import first_line
from videop2p.outputs import write_png
from videop2p.store.files import atomic_path, read_json, write_json, write_text
from videop2p.toy.checker import classify_background, read_image
from videop2p.toy.world import (
    Background,
    Color,
    Motion,
    Shape,
    ToyClip,
    ToyClipSpec,
    ToyObject,
    caption_for,
    render_clip,
)
from videop2p.tuning import TuneConfig, tune

logger = logging.getLogger(__name__)


class EditKind(enum.StrEnum):
    COLOR = "colour swap"
    SHAPE = "shape swap"
    BACKGROUND = "background swap"
    REFINE = "refinement"
    REWEIGHT = "reweighting"


@dataclass
class Case:
    """One clip and one edit of it."""

    spec: ToyClipSpec
    kind: EditKind
    source: str
    target: str
    blend: tuple[str, str] | None
    want: dict  # the attribute the edit must produce, e.g. {"color": "blue"}
    reweight: dict[str, float] = field(default_factory=dict)


def identity_case(spec: ToyClipSpec) -> Case:
    """The clip edited into its own prompt, blending on its object's word: what an edit must keep."""
    obj = spec.objects[0]
    caption = caption_for(spec.objects, spec.background)
    return Case(spec, EditKind.COLOR, caption, caption, (obj.shape.value, obj.shape.value), {"color": obj.color.value})


def make_suite(n: int, seed: int = 0, frames: int = 8) -> list[Case]:
    """A seeded suite cycling through the edit kinds."""
    rng = np.random.default_rng(seed)
    kinds = list(EditKind)
    cases = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        shape, color = Shape(rng.choice([s.value for s in Shape])), Color(rng.choice([c.value for c in Color]))
        bg = Background(rng.choice([b.value for b in Background]))
        spec = ToyClipSpec(
            [ToyObject(shape, color)],
            bg,
            Motion(rng.choice([m.value for m in Motion])),
            frames,
            64,
            int(rng.integers(1 << 30)),
        )
        src = caption_for(spec.objects, bg)
        other = lambda enum_cls, cur: enum_cls(rng.choice([v.value for v in enum_cls if v != cur]))  # noqa: E731
        if kind is EditKind.COLOR or kind is EditKind.REWEIGHT:
            new = other(Color, color)
            tgt = caption_for([ToyObject(shape, new)], bg)
            case = Case(spec, kind, src, tgt, (shape.value, shape.value), {"color": new.value})
            if kind is EditKind.REWEIGHT:
                case.reweight = {new.value: 2.0}
        elif kind is EditKind.SHAPE:
            new = other(Shape, shape)
            case = Case(
                spec,
                kind,
                src,
                caption_for([ToyObject(new, color)], bg),
                (shape.value, new.value),
                {"shape": new.value, "color": color.value},
            )
        elif kind is EditKind.BACKGROUND:
            new = other(Background, bg)
            case = Case(
                spec, kind, src, caption_for(spec.objects, new), (bg.value, new.value), {"background": new.value}
            )
        else:  # refinement: a new word changes the colour ("a red circle" -> "a blue red circle" is odd; add a colour to the bare shape)
            new = other(Color, color)
            src = f"a {shape.value} moving on the {bg.value}"
            tgt = f"a {new.value} {shape.value} moving on the {bg.value}"
            case = Case(spec, kind, src, tgt, (shape.value, shape.value), {"color": new.value})
        cases.append(case)
    return cases


def ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004, 7x7 box window, grey levels) over the pixels of `mask`."""
    x = torch.from_numpy(a.astype(np.float64).mean(-1))[None, None]
    y = torch.from_numpy(b.astype(np.float64).mean(-1))[None, None]
    mu_x, mu_y = F.avg_pool2d(x, 7, 1, 3), F.avg_pool2d(y, 7, 1, 3)
    sxx = F.avg_pool2d(x * x, 7, 1, 3) - mu_x**2
    syy = F.avg_pool2d(y * y, 7, 1, 3) - mu_y**2
    sxy = F.avg_pool2d(x * y, 7, 1, 3) - mu_x * mu_y
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    m = torch.from_numpy(mask)
    return float(s[0, 0][m].mean()) if m.any() else float(s.mean())


def dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    t = torch.from_numpy(mask.astype(np.float32))[:, None]
    return (F.max_pool2d(t, 2 * pixels + 1, 1, pixels)[:, 0] > 0).numpy()


def _hue_centroid(frames: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame mean RGB inside the mask and mask centroid."""
    rgb = np.stack([f[m].mean(0) if m.any() else np.zeros(3) for f, m in zip(frames, masks, strict=True)])
    cen = np.stack([np.argwhere(m).mean(0) if m.any() else np.zeros(2) for m in masks])
    return rgb, cen


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


MIN_POSE_IOU = 0.5  # an edited object overlapping its source mask less than this has moved


def judge(case: Case, clip: ToyClip, edited: np.ndarray, recon: np.ndarray) -> dict:
    """Metrics of one edited video against the case's ground truth.

    An object edit succeeds in a frame when the checker, reading the edited frame on its own, finds
    the wanted attribute on an object that stays where the source object was (IoU >= 0.5 with
    its mask; a shape swap keeps the position: the found object's centre lies inside the source
    object's dilated mask). A background swap succeeds when the background outside the object
    is the wanted one.
    """
    masks = clip.masks[:, 0]
    outside = ~dilate(masks, 4)
    ok, overlaps, found = [], [], []
    for f, frame in enumerate(edited):
        reading = read_image(frame)
        found.append(reading.mask)
        overlaps.append(iou(reading.mask, masks[f]))
        if "background" in case.want:
            got = classify_background(frame[outside[f]]).value == case.want["background"]
        elif "shape" in case.want:
            ys, xs = np.nonzero(reading.mask)
            near = len(ys) > 0 and dilate(masks[f : f + 1], 4)[0][int(ys.mean()), int(xs.mean())]
            got = reading.shape is not None and reading.shape.value == case.want["shape"] and bool(near)
        else:
            right = reading.color is not None and reading.color.value == case.want["color"]
            got = right and overlaps[-1] >= MIN_POSE_IOU
        ok.append(bool(got))
    bg_mask = outside if "background" not in case.want else np.zeros_like(outside)
    rgb_e, cen_e = _hue_centroid(edited, np.array(found))  # the object where the checker finds it
    rgb_s, cen_s = _hue_centroid(clip.frames, masks)
    return {
        "edit_success": float(all(ok)),
        "frames_right": float(np.mean(ok)),
        "object_iou": float(np.mean(overlaps)),
        "background_psnr": psnr(edited, clip.frames, bg_mask) if bg_mask.any() else float("nan"),
        "background_ssim": float(np.mean([ssim(e, s, m) for e, s, m in zip(edited, clip.frames, bg_mask, strict=True)]))
        if bg_mask.any()
        else float("nan"),
        "reconstruction_psnr": psnr(recon, clip.frames),
        "colour_jitter": float(np.abs(np.diff(rgb_e, axis=0)).mean() - np.abs(np.diff(rgb_s, axis=0)).mean()),
        "position_jitter": float(np.abs(np.diff(cen_e - cen_s, axis=0)).mean()),
    }


def bar_method(methods: list[Method]) -> Method | None:
    """The row the bars are checked on: the full method, or when it did not run, its fast mode; None
    when neither ran (the other methods have no bars)."""
    return next((m for m in (Method.VIDEO_P2P, Method.FAST) if m in methods), None)


BARS = {  # the bars for the full method on the default suite
    "colour_swap_success": 0.9,
    "background_psnr": 30.0,
    "reconstruction_psnr": 30.0,
}


def check_bars(summary: dict, method: str = "Video-P2P") -> dict[str, dict]:
    """Each bar with the measured value and whether it was met."""
    got = summary.get(method, {})
    return {
        k: {"bar": bar, "measured": got.get(k, float("nan")), "met": bool(got.get(k, float("nan")) >= bar)}
        for k, bar in BARS.items()
    }


def _edit_video(
    model: T2SModel, comps: SDComponents, z0: torch.Tensor, case: Case, method: Method, s: EvalSettings, cache: dict
) -> tuple[np.ndarray, np.ndarray, float]:
    """Edited and reconstructed frames (F, H, W, 3), and the share of latent cells the final blend mask keeps editable."""
    inv_method = {
        Method.FAST: InversionMethod.FAST,
        Method.DIRECT: InversionMethod.DIRECT,
        Method.NEGATIVE: InversionMethod.NEGATIVE_PROMPT,
        Method.TUNE_A_VIDEO: InversionMethod.FAST,
    }.get(method, InversionMethod.NULL_TEXT)
    key = (id(model), inv_method, case.source)
    if key not in cache:
        cond, empty = encode_prompts(comps, [case.source]), encode_prompts(comps, [""])
        c = InversionConfig(method=inv_method, steps=s.steps, frames=s.null_text_frames, progress=False)
        cache[key] = invert(model, comps.scheduler, z0, cond, empty, c)
    inv = cache[key]
    cfg = EditConfig(
        blend=case.blend,
        reweight=case.reweight,
        decoupled=method is not Method.COUPLED,
        control_frame_attention=method is Method.FRAME_CONTROL,
        progress=False,
    )
    if method is Method.TUNE_A_VIDEO:
        cfg = EditConfig(cross_replace=0.0, self_replace=0.0, progress=False)
    result = edit(model, comps, inv, case.source, [case.target], cfg)
    frames = decode_latents(comps, result.latents)
    coverage = float(result.masks.float().mean()) if result.masks is not None else float("nan")
    return frames[1], frames[0], coverage


def run_case(
    comps: SDComponents, case: Case, s: EvalSettings, scorer: ClipScorer | None = None, clip: ToyClip | None = None
) -> dict[str, dict]:
    """Tune once, then edit with every method; metrics per method. `clip` is the case's rendered clip, if already at hand."""
    clip = clip if clip is not None else render_clip(case.spec)
    posterior = encode_posterior(comps, clip.frames)
    model = T2SModel.from_image_unet(comps.unet, group_norm=s.group_norm)
    if any(m is not Method.PER_FRAME for m in s.methods):  # per-frame editing uses the untuned image model
        text = encode_prompts(comps, [case.source])
        # no gradient checkpointing: the suite's clips are 64 pixels, so memory is small, and the weights are the
        # same bit for bit while tuning takes 30% less time on a 2-core CPU (`python bench/tune_checkpointing.py --steps 200`)
        cfg = TuneConfig(steps=s.tune_steps, frames=s.tune_frames, gradient_checkpointing=False, progress=False)
        tune(model, comps, posterior, text, cfg)
    cache: dict = {}
    out = {}
    for method in s.methods:
        t0 = time.perf_counter()
        if method is Method.PER_FRAME:
            image_model = T2SModel.from_image_unet(comps.unet)
            parts = [
                _edit_video(image_model, comps, posterior[0][:, f : f + 1], case, Method.VIDEO_P2P, s, {})
                for f in range(len(clip.frames))
            ]
            edited, recon = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
            coverage = float(np.mean([p[2] for p in parts]))
        else:
            edited, recon, coverage = _edit_video(model, comps, posterior[0], case, method, s, cache)
        metrics = {**judge(case, clip, edited, recon), "mask_coverage": coverage}
        if scorer is not None:
            metrics.update(clip_scores(scorer, edited, case.target))
        out[method.value] = {
            **metrics,
            "seconds": time.perf_counter() - t0,
            "frames": edited,
            "reconstruction_frames": recon,
        }
    return out


@dataclass
class ClipScorer:
    """A local CLIP model for text alignment and frame consistency."""

    model: object  # transformers CLIPModel
    processor: object  # transformers CLIPProcessor
    name: str


def load_clip_scorer(name: str | None) -> tuple[ClipScorer | None, str]:
    """A CLIP model from a folder or the local Hugging Face cache (never the network), and a note; none
    (the metrics skipped) when no model is named. A hub id may be given at a revision (`owner/name@REVISION`)
    or as its page's link (`https://huggingface.co/owner/name`). A named model that is not there is a
    ValueError: the suite runs for hours and would end without the metrics it was asked for."""
    if not name:
        return None, "CLIP metrics skipped: no CLIP model given (--clip-model FOLDER_OR_CACHED_ID)"
    from transformers import CLIPModel, CLIPProcessor

    give = "give a CLIP model's folder or the id (owner/name) of one in the Hugging Face cache"
    repo = hub_repository(name)  # an id, at a revision, or its page's link
    if repo is None and (said := unusable_path("CLIP model", name, give)):  # a link off the hub, or too long
        raise ValueError(said)
    path = Path(name).expanduser()
    repo = None if path.exists() else repo  # a folder here named as an id is the folder
    ident, revision = (name, None) if repo is None else (repo.repo, repo.revision)
    try:
        if path.is_file():
            raise OSError("a file, not a model's folder")
        model = CLIPModel.from_pretrained(ident, revision=revision, local_files_only=True).eval()
        processor = CLIPProcessor.from_pretrained(ident, revision=revision, local_files_only=True)
    except Exception as e:  # noqa: BLE001 (transformers' OSError, or what a folder of another model raises)
        path_like = name.startswith(("/", ".", "~")) and not path.exists()
        why = "no such folder" if path_like else _not_cached(repo) or first_line(e)
        raise ValueError(
            f"CLIP model {name!r} is not available locally ({why}); {give}, or no --clip-model to skip the CLIP "
            "metrics."
        ) from None
    return ClipScorer(model, processor, name), f"CLIP metrics from {name}"


def _not_cached(repo: HubFile | None) -> str | None:
    """What to say of a hub repository whose config the Hugging Face cache does not hold, and how to put it
    there; None for one it holds (or no repository)."""
    from huggingface_hub import try_to_load_from_cache

    if repo is None or isinstance(try_to_load_from_cache(repo.repo, "config.json", revision=repo.revision), str):
        return None
    return f"not in the Hugging Face cache; `{hub_download_command(repo)}` puts it there"


def _projected(out) -> torch.Tensor:
    """Unit-norm projected embeddings; transformers 5 returns them as the output's `pooler_output`."""
    return F.normalize(out if isinstance(out, torch.Tensor) else out.pooler_output, dim=-1)


@torch.no_grad()
def clip_scores(scorer: ClipScorer, frames: np.ndarray, prompt: str) -> dict[str, float]:
    """Mean cosine of each frame with the prompt, and of consecutive frames with each other."""
    inputs = scorer.processor(text=[prompt], images=list(frames), return_tensors="pt", padding=True)
    image = _projected(scorer.model.get_image_features(pixel_values=inputs["pixel_values"]))  # (F, D)
    text = _projected(
        scorer.model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    )  # (1, D)
    consistency = (image[1:] * image[:-1]).sum(-1).mean() if len(image) > 1 else torch.tensor(float("nan"))
    return {"clip_text_alignment": float((image @ text.T).mean()), "clip_frame_consistency": float(consistency)}


def _mean_of_known(values: list[float]) -> float:
    """Mean over the values that are not NaN; NaN when none is (e.g. mask coverage without blending)."""
    known = [v for v in values if not np.isnan(v)]
    return float(np.mean(known)) if known else float("nan")


def summarise(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Mean of every metric per method (and colour-swap success separately)."""
    summary: dict[str, dict[str, float]] = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        metrics = [k for k in mine[0] if k not in ("method", "case", "kind")]
        summary[method] = {k: _mean_of_known([r[k] for r in mine]) for k in metrics}
        colour = [r["edit_success"] for r in mine if r["kind"] == EditKind.COLOR.value]
        summary[method]["colour_swap_success"] = float(np.mean(colour)) if colour else float("nan")
        summary[method]["cases"] = len(mine)
    return summary


def success_by_kind(rows: list[dict]) -> dict[str, dict[str, tuple[int, int]]]:
    """(successes, cases) per method and edit kind, kinds in the suite's order."""
    kinds = [k.value for k in EditKind if any(r["kind"] == k.value for r in rows)]
    out: dict[str, dict[str, tuple[int, int]]] = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        out[method] = {
            k: (sum(int(r["edit_success"] >= 1.0) for r in mine if r["kind"] == k), sum(r["kind"] == k for r in mine))
            for k in kinds
        }
    return out


def by_kind_markdown(table: dict[str, dict[str, tuple[int, int]]]) -> str:
    """`success_by_kind`'s table in markdown, as "successes of cases"."""
    kinds = list(next(iter(table.values())))
    lines = ["| method | " + " | ".join(kinds) + " |", "|---" * (len(kinds) + 1) + "|"]
    for method, per_kind in table.items():
        lines.append(f"| {method} | " + " | ".join(f"{a} of {n}" for a, n in per_kind.values()) + " |")
    return "\n".join(lines) + "\n"


def write_tables(rows: list[dict], summary: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    table = io.StringIO()
    w = csv.DictWriter(table, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_text(out / "cases.csv", table.getvalue())
    by_kind = success_by_kind(rows)  # (successes, cases) pairs become JSON lists
    write_text(out / "summary.json", json.dumps({"summary": summary, "by_kind": by_kind, "cases": rows}, indent=2))
    cols = [
        "edit_success",
        "colour_swap_success",
        "object_iou",
        "background_psnr",
        "background_ssim",
        "reconstruction_psnr",
        "colour_jitter",
        "position_jitter",
        "mask_coverage",
        "seconds",
    ]
    first = next(iter(summary.values()))
    cols += [c for c in ("clip_text_alignment", "clip_frame_consistency") if c in first]
    lines = ["| method | cases | " + " | ".join(cols) + " |", "|---" * (len(cols) + 2) + "|"]
    for method, m in summary.items():
        values = " | ".join(f"{m[c]:.3f}" if abs(m[c]) < 10 else f"{m[c]:.1f}" for c in cols)
        lines.append(f"| {method} | {m.get('cases', '')} | {values} |")
    by_kind_md = by_kind_markdown(by_kind)
    write_text(out / "summary.md", "\n".join(lines) + "\n\nEdit success by kind:\n\n" + by_kind_md)


def save_strip(frames: np.ndarray, path: Path, source: np.ndarray | None = None) -> None:
    """(F, H, W, 3) frames side by side in one PNG, below the (F, H, W, 3) source frames when given."""
    rows = [frames] if source is None else [source, frames]
    write_png(np.concatenate([np.concatenate(list(r), axis=1) for r in rows], axis=0), path)  # (R*H, F*W, 3)


NO_PLOTS = f"no plots: matplotlib is not installed; {extra_install('eval')} draws them"


def plot(summary: dict, out: Path) -> bool:
    """Bar charts per metric in `out`/metrics.png, when matplotlib is installed (whether they were drawn: its
    caller says why not, `NO_PLOTS`, once)."""
    try:
        from matplotlib.figure import Figure  # no pyplot: no process-wide backend is chosen
    except ImportError:
        return False
    metrics = ["edit_success", "object_iou", "background_psnr", "reconstruction_psnr"]
    fig = Figure(figsize=(4 * len(metrics), 3.5))
    axes = fig.subplots(1, len(metrics))
    for ax, metric in zip(axes, metrics, strict=True):
        ax.bar(range(len(summary)), [summary[m][metric] for m in summary])
        ax.set_xticks(range(len(summary)), list(summary), rotation=60, ha="right", fontsize=7)
        ax.set_title(metric)
    fig.tight_layout()
    with atomic_path(out / "metrics.png") as tmp:
        fig.savefig(tmp, dpi=100)
    return True


def case_key(case: Case, s: EvalSettings, seed: int, clip_note: str, model: str = "") -> str:
    """What a kept case's results depend on; `model` names the weights and dtype."""
    settings = {**asdict(s), "methods": [m.value for m in s.methods], "group_norm": GroupNormMode(s.group_norm).value}
    if settings["group_norm"] == GroupNormMode.FRAME.value:
        del settings["group_norm"]  # the key of cases kept before the setting existed (per-frame statistics)
    for unset in ("tune_frames", "null_text_frames"):
        if settings[unset] is None:
            del settings[unset]  # likewise: every frame in every tuning step and null-text loss
    return json.dumps([settings, seed, case.source, case.target, case.spec.seed, clip_note, model], sort_keys=True)


def _model_key(comps: SDComponents) -> str:
    """The model's weight fingerprint (not its source name: a copy elsewhere is the same model) and dtype."""
    return f"{comps.info.fingerprint} {comps.unet.dtype}"


def _read_kept(path: Path) -> dict | None:
    try:
        return read_json(path)
    except (OSError, ValueError):  # missing or unreadable: run the case
        return None


def _table_rows(rows: list[dict], out: Path, keys: dict[int, str], shard) -> tuple[list[dict], dict]:
    """The rows for the tables and their summary: this run's, plus, in a shard, the other cases kept in `out`."""
    if shard is not None:
        mine = {r["case"] for r in rows}
        for i, key in keys.items():
            kept = _read_kept(out / "cases" / f"case{i:03d}.json") if i not in mine else None
            if kept is not None and kept.get("key") == key:
                rows = rows + kept["rows"]
        rows = sorted(rows, key=lambda r: r["case"])
    return rows, summarise(rows)


def evaluate(
    comps: SDComponents,
    n_cases: int,
    out: Path,
    s: EvalSettings | None = None,
    seed: int = 0,
    clip_model: str | tuple[ClipScorer | None, str] | None = None,
    resume: bool = True,
    shard: tuple[int, int] | None = None,
) -> dict:
    """Run the suite and write tables, plots (with matplotlib: the result's "plots") and strips into `out`
    (every case's for the first 3, and the full method's for every case it failed).

    Every finished case is kept in `out/cases/`; with `resume`, a case kept with the same settings
    is read back instead of run again, so a stopped run goes on where it stopped. With `shard`
    (k, n) only the cases whose index is k modulo n run, so n processes or machines sharing `out`
    split the suite. A shard's tables hold every case kept in `out` so far, its own and the other
    shards', so the last shard to finish writes the full tables. `clip_model`: a CLIP model's name, or what
    `load_clip_scorer` returned for it (a command loads it before the model, to refuse a bad one first).
    """
    s = s or EvalSettings()
    if shard is not None and not 0 <= shard[0] < shard[1]:
        raise ValueError(f"shard {shard[0]}/{shard[1]} is not K/N with 0 <= K < N.")
    scorer, clip_note = clip_model if isinstance(clip_model, tuple) else load_clip_scorer(clip_model)
    logger.info("%s", clip_note)
    rows = []
    kept_cases = 0
    t0 = time.perf_counter()
    suite = list(enumerate(make_suite(n_cases, seed, s.frames)))
    model_key = _model_key(comps)
    keys = {i: case_key(case, s, seed, clip_note, model_key) for i, case in suite}
    if shard is not None:
        suite = [(i, case) for i, case in suite if i % shard[1] == shard[0]]
        logger.info("shard %d/%d: cases %s", *shard, [i for i, _ in suite])
    for i, case in suite:
        key = keys[i]
        kept = out / "cases" / f"case{i:03d}.json"
        done = _read_kept(kept) if resume else None
        if done is not None and done.get("key") == key:
            rows += done["rows"]
            kept_cases += 1
            logger.info("case %d/%d (%s) kept from %s", i + 1, n_cases, case.kind.value, kept)
            continue
        clip = render_clip(case.spec)
        results = run_case(comps, case, s, scorer, clip=clip)
        case_rows = []
        source = clip.frames  # the strips show the source above each edit
        for method, r in results.items():
            frames = r.pop("frames")
            del r["reconstruction_frames"]  # the reconstruction is kept as its PSNR
            if i < 3:
                save_strip(frames, out / f"strip_case{i}_{method.replace(' ', '_')}.png", source)
            elif method == Method.VIDEO_P2P.value and not r["edit_success"]:
                save_strip(frames, out / f"strip_failed_case{i}_{method.replace(' ', '_')}.png", source)
            case_rows.append({"case": i, "kind": case.kind.value, "method": method, **r})
        write_json(kept, {"key": key, "rows": case_rows})
        rows += case_rows
        write_tables(*_table_rows(rows, out, keys, shard), out)  # after every case: a stopped run leaves tables
        logger.info("case %d/%d (%s) done in %.0f s", i + 1, n_cases, case.kind.value, time.perf_counter() - t0)
    rows, summary = _table_rows(rows, out, keys, shard)
    bars_on = bar_method(s.methods)
    plotted = False
    if rows:
        write_tables(rows, summary, out)
        plotted = plot(summary, out)
    return {
        "summary": summary,
        "by_kind": success_by_kind(rows),
        "bars": check_bars(summary, bars_on.value) if bars_on else {},
        "bars_method": bars_on.value if bars_on else None,
        "rows": rows,
        "seconds": time.perf_counter() - t0,
        "cases": len(suite),
        "cases_read_back": kept_cases,
        "settings": asdict(s),
        "clip": clip_note,
        "plots": plotted,
    }
