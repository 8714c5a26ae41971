"""Pictures people look at: side-by-side video, mask overlays, attention-map grids, the report."""

from __future__ import annotations

import functools
import logging
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from PIL import Image, ImageDraw, ImageFont

from videop2p.compositing import composite
from videop2p.config import ADAPTER_FILES, CompositeMode, RunConfig, target_pairs, to_plain
from videop2p.control.prompts import word_changes
from videop2p.io.video import DeepSignal, plate_files, to_signal_converter
from videop2p.io.writing import (
    PREVIEW_MIN_WIDTH,
    WRITTEN_FRAME,
    deep_writable,
    enlarge,
    preview_factor,
    saving_exr_frames,
    saving_frames,
    side_by_side_frames,
    write_video,
)
from videop2p.progress import StepHook, progress_bar
from videop2p.store.files import atomic_path, staged_files, write_json, write_text
from videop2p.store.workspace import StageReport

if TYPE_CHECKING:
    from videop2p.pipeline import Clip, EditOutput

logger = logging.getLogger(__name__)


def upsample_masks(masks: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(F, h, w) bool -> (F, H, W) bool at frame size (nearest)."""
    m = F.interpolate(masks[:, None].float(), size=size, mode="nearest")[:, 0]
    return m.bool().cpu().numpy()


def mask_overlay(
    frames: np.ndarray, masks: np.ndarray, color: tuple[int, int, int] = (255, 40, 40), alpha: float = 0.5
) -> np.ndarray:
    """Frames (..., H, W, 3) uint8 tinted inside masks (..., H, W): a clip or one frame."""
    out = frames.copy()
    tint = np.array(color, dtype=np.float32)
    out[masks] = np.round((1 - alpha) * frames[masks].astype(np.float32) + alpha * tint).astype(np.uint8)
    return out


def overlay_frames(frames: np.ndarray, masks: torch.Tensor, min_width: int = PREVIEW_MIN_WIDTH) -> Iterator[np.ndarray]:
    """`mask_overlay` of frames (F, H, W, 3) with working-size masks (F, h, w), one frame at a time,
    enlarged as a preview's tiles are (`preview_factor`) when the frames are narrower than `min_width`."""
    factor = preview_factor(frames.shape[2], min_width)
    for f in range(frames.shape[0]):
        yield enlarge(mask_overlay(frames[f], upsample_masks(masks[f : f + 1], frames.shape[1:3])[0]), factor)


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


def edit_label(source: str, target: str) -> str:
    """What `target` changes in `source`, for a picture's label (a tile's width holds a dozen
    characters, so a long prompt's common start would hide the change): "red > blue" for words
    swapped, "+big" for words added, "-red" for words left out; words compared as prompt-to-prompt
    compares them (`word_changes`: case and punctuation ignored)."""
    parts = []
    for op, old, new in word_changes(source, target):
        old_text, new_text = " ".join(old), " ".join(new)
        parts.append({"replace": f"{old_text} > {new_text}", "insert": f"+{new_text}", "delete": f"-{old_text}"}[op])
    return ", ".join(parts) or "same prompt"


def settings_yaml(cfg: RunConfig) -> str:
    """A run's config.yaml: `rerunnable(cfg)` as YAML, in the settings' order, prompts as typed."""
    return yaml.safe_dump(rerunnable(cfg), sort_keys=False, allow_unicode=True)


def rerunnable(cfg: RunConfig) -> dict:
    """`cfg` as plain data whose local paths (clip, model files, LoRA and embedding files, output
    folder, workspace, tuned-model folder) are absolute, so that `videop2p run --config OUT/config.yaml` runs it again
    from any folder (a hub id stays as it is)."""
    plain = to_plain(cfg)
    local = (
        ("video", "path"),
        (None, "model"),
        (None, "model_config"),
        (None, "vae"),
        (None, "out"),
        (None, "workspace"),
        (None, "save_tuned"),
    )
    made = ("out", "workspace", "save_tuned")  # folders a run writes: absolute whether or not they are there yet
    for section, key in local:
        holder = plain[section] if section else plain
        value = holder.get(key)
        if isinstance(value, str) and value and (key in made or Path(value).expanduser().exists()):
            holder[key] = str(Path(value).expanduser().resolve())
    for key in ADAPTER_FILES:  # a hub repository's file (no local path of its name) stays as it is
        local = {path: Path(path).expanduser() for path in plain[key]}
        plain[key] = {(str(local[p].resolve()) if local[p].exists() else p): v for p, v in plain[key].items()}
    return plain


def report_markdown(manifest: dict) -> str:
    """A short human report of a run."""
    lines = ["# videop2p run", "", f"- source: `{manifest['source']}`"]
    coverage, pairs = manifest.get("mask_coverage"), manifest.get("blend")
    for k, t in enumerate(manifest["targets"]):
        blend = ""
        if coverage and coverage[k] is not None:
            words = f" '{pairs[k][0]}'/'{pairs[k][1]}'" if pairs else ""
            blend = f"; the blend mask of{words} covers {coverage[k]:.0%} of the frames"
        elif coverage:
            blend = "; no local blending"
        lines.append(f"- target {k + 1}: `{t}` ({manifest['modes'][k]}{blend})")
    if manifest.get("reconstruction_psnr") is not None:
        lines.append(f"- reconstruction: {manifest['reconstruction_psnr']:.1f} dB PSNR against the clip (working size)")
    if manifest.get("warnings"):
        lines += ["", "## Warnings", "", *(f"- {w}" for w in manifest["warnings"])]
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
    if size := manifest.get("output_size"):
        if manifest.get("hdr"):
            form = f"HDR video ({manifest['hdr']}, 10-bit HEVC)"
        else:
            form = "SDR video (10-bit HEVC)" if manifest.get("bits") == 10 else "SDR video"
        lines += [f"The edits' mp4s: pasted into the input's frames at {size[0]}x{size[1]}, {form}.", ""]
    if folders := manifest["outputs"].get("edits_png"):
        lines += [f"Lossless frames: {', '.join(f'`{name}/`' for name in folders)}.", ""]
    for path in manifest["outputs"].get("masks", []):  # mask_K: target K's, for the targets that blend
        lines.append(f"![{Path(path).stem.replace('_', ' ')}]({path})")
    for k, path in enumerate(manifest["outputs"].get("attention", [])):  # the source's first, then each target's
        lines.append(f"![{'source' if k == 0 else f'target {k}'} attention]({path})")
    lines += ["", "## Settings", "", "```yaml", manifest.get("config_yaml", "").rstrip(), "```", ""]
    return "\n".join(lines)


def write_png(image: np.ndarray, path: Path) -> Path:
    """An (H, W, 3) uint8 image as PNG, atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    return path


Writer = Callable[[threading.Event], Path]  # writes one file; stops between frames once the event is set


class WritingStopped(Exception):
    """A writer stopped between two frames: another failed, or the run was interrupted."""


def _until(frames: Iterable[np.ndarray], stop: threading.Event) -> Iterator[np.ndarray]:
    """`frames` one by one until `stop` is set, then `WritingStopped` (the file is not written)."""
    for frame in frames:
        if stop.is_set():
            raise WritingStopped
        yield frame


def _clip_writers(
    frames: np.ndarray | Callable[[], Iterable[np.ndarray]],
    root: Path,
    stem: str,
    fps: float,
    full: Callable[[], Iterable[np.ndarray]] | None = None,
    audio=None,
    png: bool = False,
    times: np.ndarray | None = None,
    deep: DeepSignal | None = None,
    plate: list[Path] | None = None,
) -> list[Writer]:
    """The writers of `stem.mp4` (at full resolution with the sound, when `full` makes the frames; with
    `png`, its frames also as lossless PNGs in the folder `stem/`, from the same pass) and `stem.gif`
    (working size, a preview), to run in any order. `frames`: the frames, or a function that makes
    them afresh one at a time for each file (a long clip's grid or overlay is never held whole). The
    videos show the frames at `fps`, or at their own `times` (`Video.times`). The GIF's palettes are
    made on as many threads as torch uses. `deep`: `full` makes a deep input's frames in its own form
    (HDR, or SDR of more than 8 bits), written as 10-bit video in it (`write_mp4`); `plate`: the OpenEXR
    files those frames were read from, its frames then written as OpenEXR instead of PNGs
    (`saving_exr_frames`)."""
    again = frames if callable(frames) else lambda: frames
    pngs = root / stem if png else None
    return [
        lambda stop: _mp4_with_pngs(
            _until((full or again)(), stop), root / f"{stem}.mp4", fps, audio, times, pngs, deep, plate
        ),
        lambda stop: write_video(
            _until(again(), stop), root / f"{stem}.gif", fps, workers=torch.get_num_threads(), times=times
        ),
    ]


def _mp4_with_pngs(
    frames: Iterable[np.ndarray],
    mp4: Path,
    fps: float,
    audio,
    times: np.ndarray | None,
    pngs: Path | None,
    deep: DeepSignal | None = None,
    plate: list[Path] | None = None,
) -> Path:
    """`mp4`, and when `pngs` names a folder, the same frames as lossless PNGs there (OpenEXR frames for
    an OpenEXR `plate`'s frames): one pass over `frames`, so a pasted edit is read again and pasted once
    for both; neither is left when one fails. `deep`: the frames are a deep input's, both written in its
    form."""
    if pngs is None:
        return write_video(frames, mp4, fps, audio, times=times, deep=deep)
    with atomic_path(pngs, directory=True) as folder:
        saved = saving_frames(frames, folder, deep) if plate is None else saving_exr_frames(frames, folder, plate)
        return write_video(saved, mp4, fps, audio, times=times, deep=deep)


def _picture_writer(image: np.ndarray, path: Path, stop: threading.Event) -> Path:
    """A picture's writer (one frame: nothing to stop between)."""
    return write_png(image, path)


def _plate(clip: Clip) -> list[Path] | None:
    """The OpenEXR files of a plate's selected frames (`plate_files`), or None for another clip."""
    files = plate_files(clip.video.path) if clip.video is not None else None
    return None if files is None else files[clip.video.start :: clip.video.stride][: len(clip.frames)]


def pasted_frames(
    clip: Clip, edited: np.ndarray, masks: torch.Tensor | None, cell: int, deep: DeepSignal | None = None
) -> Iterator[np.ndarray]:
    """The edit's frames pasted into the input's, read again from the input (`composite`); with `deep`
    (the input's, `written_deep`), into its own 16-bit frames, the edit's pixels put in its form
    (`to_signal_converter`: made HDR, or SDR at 16 bits)."""
    if deep is None:
        return composite(clip.originals(), edited, masks, clip.video.resize, cell)
    to_signal = to_signal_converter(deep)  # an HDR clip's tables built once for it
    return composite(clip.originals(signal=True), edited, masks, clip.video.resize, cell, to_signal)


def run_writers(writers: list[Writer], workers: int, on_step: StepHook | None = None, show: bool = False) -> list[Path]:
    """Each writer's file, in order, `workers` writers at a time on threads (the mp4 and GIF encoders
    release the GIL; each file is the one its writer makes alone), under a tqdm bar "write" when `show`.
    `on_step("write", files done, files)` hears of each file written (and of none, before the first)
    and may raise to stop them all. At a writer's error, a raising `on_step` or Ctrl-C, the writers not
    started are dropped and the running ones stop at their next frame, writing nothing; then the first
    error in order is raised."""
    stop, total = threading.Event(), len(writers)
    bar = progress_bar(total=total, desc="write", disable=not show)

    def written(done: int) -> None:
        bar.update(done - bar.n)
        if on_step is not None:
            on_step("write", done, total)

    pool = ThreadPoolExecutor(workers) if workers > 1 else None
    futures: list[Future[Path]] = []
    try:
        written(0)
        if pool is None:  # one at a time, in this thread
            paths = []
            for w in writers:
                paths.append(w(stop))
                written(len(paths))
            return paths
        futures += [pool.submit(w, stop) for w in writers]
        for done, future in enumerate(as_completed(futures), start=1):
            if future.exception() is not None:
                break
            written(done)
    finally:
        stop.set()  # all done, or an error, a stop asked for or Ctrl-C: those still running stop
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
    errors = [f.exception() for f in futures if not f.cancelled() and f.exception() is not None]
    failed = [e for e in errors if not isinstance(e, WritingStopped)]  # the cause, not those it stopped
    if failed:
        raise failed[0]
    return [f.result() for f in futures]


PASTED_WRITER_BYTES_PER_PIXEL = 200  # peak memory of writing one edit's mp4 at the input's size, per input pixel:
# x264's look-ahead frames, the input's decoder and the paste: 375 MB at 1920x1080, 1,267 MB at 3840x2160
# (bench/bench_write_outputs.py), rounded up


def pasting(cfg: RunConfig, clip: Clip) -> bool:
    """Whether the edits' mp4s are pasted into the input's frames at its own size (`compositing`): when
    its size is not the working size, or when they are written in its own deep form (`written_deep`)."""
    mode = CompositeMode(cfg.composite)
    return mode is not CompositeMode.OFF and (clip.full_size is not None or written_deep(cfg, clip) is not None)


def written_deep(cfg: RunConfig, clip: Clip) -> DeepSignal | None:
    """The deep form the edits' mp4s are written in as 10-bit video: a deep input's own (HDR, or SDR of more
    than 8 bits), unless `cfg.composite` asks for 8-bit SDR (sdr) or the working size (off), or this FFmpeg
    has no HEVC encoder; None for 8-bit SDR."""
    auto = CompositeMode(cfg.composite) is CompositeMode.AUTO
    return clip.deep if auto and clip.deep is not None and deep_writable() else None


def writer_count(cfg: RunConfig, clip: Clip, threads: int, free: int) -> int:
    """How many of a run's files to write at once: one per thread, fewer when that many edits' mp4s
    pasted at the input's size would not fit in `free` bytes side by side."""
    if not pasting(cfg, clip):
        return max(1, threads)
    width, height = clip.full_size or clip.size
    return max(1, min(threads, free // (PASTED_WRITER_BYTES_PER_PIXEL * width * height)))


def write_run_outputs(
    cfg: RunConfig,
    clip: Clip,
    out: EditOutput,
    reports: list[StageReport],
    info,
    workers: int | None = None,
    on_step: StepHook | None = None,
    warned: Sequence[str] = (),
    fidelity: float | None = None,
) -> dict:
    """Videos, overlays, attention grids, config, report and `outputs.json` of one run into `cfg.out`.

    The edits' mp4s have the input's resolution (pasted into its frames through the blend mask, see
    `compositing`) when it is not the working size and `cfg.composite` allows, the clip's
    frame rate, and its sound. The files are written `workers` at a time (None: as many as torch's
    threads; `writer_count` fits them in memory), each as its writer makes it alone, under a "write"
    bar unless `cfg.quiet`; `on_step("write", files done, files)` may raise to stop them, leaving no
    output. `warned`: what the run's settings warned of (a tuned folder's own architecture over another
    asked for), said after the clip's reading's warnings and before the edit's; `fidelity`: the reconstruction's
    PSNR against the clip (`VideoP2P.reconstruction_fidelity`). Returns the manifest written to `outputs.json`.
    """
    started = time.perf_counter()
    workers = torch.get_num_threads() if workers is None else workers
    earlier = (Path(cfg.out) / "outputs.json").exists()  # a folder an earlier run wrote into
    with staged_files(cfg.out, last="outputs.json") as root:  # every output, or none (a full disk)
        manifest, files = _write_outputs(
            root, cfg, clip, out, reports, info, started, workers, on_step, warned, fidelity
        )
    if earlier:
        _remove_stale(Path(cfg.out), files)
    return manifest


def _write_outputs(
    root: Path,
    cfg: RunConfig,
    clip: Clip,
    out: EditOutput,
    reports: list[StageReport],
    info,
    started: float,
    workers: int,
    on_step: StepHook | None,
    warned: Sequence[str],
    fidelity: float | None,
) -> tuple[dict, dict]:
    """`write_run_outputs`' files, into `root`; returns the manifest and the files by kind."""
    source, fps = clip.frames, clip.fps
    full, deep = pasting(cfg, clip), written_deep(cfg, clip)  # a deep form is written pasted (`pasting`)
    if clip.deep is not None and deep is None and CompositeMode(cfg.composite) is CompositeMode.AUTO:
        logger.warning(
            "this FFmpeg has no x265 encoder: the edits of %s clip are written as 8-bit SDR video",
            "an HDR" if clip.deep.hdr else "a 10-bit",
        )
    elif deep is not None and not deep.hdr:  # an HDR clip's loading note says so already
        logger.info(
            "%s is 10-bit video: the edits' mp4s are pasted into its own frames as 10-bit HEVC "
            "(--composite sdr: 8-bit H.264)",
            clip.video.path if clip.video is not None else "the clip",
        )
    plate = _plate(clip) if cfg.png_frames and deep is not None and deep.linear else None
    files: dict[str, list[str] | str] = {"edits": [], "edits_gif": [], "edits_png": [], "masks": [], "attention": []}
    pasted: list[Writer] = []  # the edits' mp4s (with their PNGs) at full size, the longest writers: started first
    clip_writers = functools.partial(_clip_writers, root=root, fps=fps, times=clip.times)  # at the clip's times
    writers = clip_writers(source, stem="source")
    writers += clip_writers(out.reconstruction, stem="reconstruction")
    files["source"], files["reconstruction"] = "source.mp4", "reconstruction.mp4"
    for k, frames in enumerate(out.edits, start=1):
        masks = out.result.masks[k - 1] if out.result.masks is not None else None
        paste = functools.partial(pasted_frames, clip, frames, masks, info.vae_scale_factor, deep) if full else None
        mp4_writer, gif_writer = clip_writers(
            frames, stem=f"edit_{k}", full=paste, audio=clip.audio, png=cfg.png_frames, deep=deep, plate=plate
        )
        (pasted if full else writers).append(mp4_writer)
        writers.append(gif_writer)
        files["edits"].append(f"edit_{k}.mp4")
        files["edits_gif"].append(f"edit_{k}.gif")
        if cfg.png_frames:
            files["edits_png"].append(f"edit_{k}")
    labels = ["source", "reconstruction", *(edit_label(cfg.source, t) for t in cfg.targets)]
    videos = [source, out.reconstruction, *out.edits]
    writers += clip_writers(functools.partial(side_by_side_frames, videos, labels), stem="side_by_side")
    files["side_by_side"] = "side_by_side.mp4"
    res = out.result
    pairs = target_pairs("blend", cfg.edit.blend, len(cfg.targets))  # (source word, target word) per target
    if res.masks is not None:
        for k, (masks, pair) in enumerate(zip(res.masks, pairs, strict=True), start=1):
            if pair is None:  # no local blending: its mask is the whole frame, nothing to show
                continue
            writers += clip_writers(functools.partial(overlay_frames, source, masks), stem=f"mask_{k}")
            files["masks"].append(f"mask_{k}.gif")
    if res.attention is not None:
        for p, tokens in enumerate(res.tokens):
            name = "attention_source.png" if p == 0 else f"attention_{p}.png"
            writers.append(functools.partial(_picture_writer, attention_grid(res.attention[p], tokens), root / name))
            files["attention"].append(name)
    run_writers(pasted + writers, workers, on_step, show=not cfg.quiet)
    config_yaml = settings_yaml(cfg)
    write_text(root / "config.yaml", config_yaml)
    reports = [*reports, StageReport("write", "computed", time.perf_counter() - started)]
    manifest = {
        "source": cfg.source,
        "targets": cfg.targets,
        "modes": res.modes,
        "blend": [list(p) if p else None for p in pairs] if res.masks is not None else None,
        "mask_coverage": [float(m.float().mean()) if p else None for m, p in zip(res.masks, pairs, strict=True)]
        if res.masks is not None
        else None,
        "model": info.identity,
        "frames": len(source),
        "size": [int(source.shape[2]), int(source.shape[1])],
        "output_size": list(clip.full_size or clip.size) if full else None,
        "hdr": deep.name if deep is not None and deep.hdr else None,  # the edits' mp4s: HDR video in
        # the input's transfer
        "bits": 10 if deep is not None else 8,  # a component of the edits' mp4s
        "fps": fps,
        "audio": clip.audio is not None,
        "reconstruction_psnr": None if fidelity is None else round(fidelity, 2),  # dB, against the clip
        "warnings": [*clip.notes, *warned, *res.warnings],  # loading's, the settings', the edit's (a reused one's too)
        "stages": {r.stage: _stage_entry(r) for r in reports},
        "outputs": {**files, "report": "report.md", "config": "config.yaml"},
        "workspace": [r.to_dict() for r in reports if r.entry is not None],  # this run's entries only
    }
    write_text(root / "report.md", report_markdown({**manifest, "config_yaml": config_yaml}))
    write_json(root / "outputs.json", manifest)
    return manifest, files


_NUMBERED = re.compile(r"(edit|mask)_\d+\.(mp4|gif)|attention_\d+\.png")  # the outputs a run writes one per target
_NUMBERED_FOLDER = re.compile(r"edit_\d+")  # an edit's PNG frames (`png_frames`)


def _is_stale(path: Path, kept: set[str]) -> bool:
    """Whether `path` is a numbered output of an earlier run that this run did not write (a folder only
    when it holds nothing but the numbered PNG frames a run writes)."""
    if path.name in kept:
        return False
    if path.is_dir():
        return _NUMBERED_FOLDER.fullmatch(path.name) is not None and all(
            f.is_file() and WRITTEN_FRAME.fullmatch(f.name) for f in path.iterdir()
        )
    return _NUMBERED.fullmatch(path.name) is not None


def _remove_stale(root: Path, files: dict) -> list[str]:
    """Remove the numbered outputs an earlier run left in `root` that this run did not write (it had more
    targets, a blend or PNG frames this one has not), so that the folder holds one run; returns their names."""
    kept = {name for value in files.values() for name in ([value] if isinstance(value, str) else value)}
    kept |= {f"{Path(name).stem}.{ext}" for name in kept for ext in ("mp4", "gif")}  # mp4 and gif go together
    stale = sorted(p.name for p in root.iterdir() if _is_stale(p, kept))
    for name in stale:
        if (root / name).is_dir():
            shutil.rmtree(root / name)
        else:
            (root / name).unlink()
    if stale:
        logger.info("removed %s, left in %s by an earlier run", ", ".join(stale), root)
    return stale


def _stage_entry(report: StageReport) -> dict:
    """A stage's line in the manifest: seconds, and for the stages that can be reused, what happened."""
    if report.stage in ("load", "write"):
        return {"seconds": report.seconds}
    return {"seconds": report.seconds, "action": report.action, "unet_evaluations": report.unet_evaluations}
