"""The Python API: load a model once, then tune, invert and edit clips, reusing a workspace.

`VideoP2P` holds the stages and their reuse, nothing else: the method lives in `tuning`,
`inversion` and `editing`, persistence in `store`, what users see in `outputs`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch

from videop2p.config import (
    COUNT_MAX,
    EditConfig,
    FrameAttentionMode,
    GroupNormMode,
    InversionConfig,
    InversionMethod,
    LoraScale,
    OptionError,
    ResizeMode,
    RunConfig,
    TuneConfig,
    VideoConfig,
    WindowConfig,
    a_or_an,
    adapter_setting,
    as_argument,
    brief_repr,
    check_edit,
    check_embedding_settings,
    check_folder,
    check_frame_size,
    check_inversion,
    check_lora_settings,
    check_model_settings,
    check_number,
    check_prompts,
    check_tune,
    check_video,
    check_window,
    fill,
    fill_run,
    holds,
    named_preset,
    on_tuned_model,
    path_shorthand,
    plain_number,
    plain_path,
    plain_paths,
    settings_of,
    shown,
    validate,
)
from videop2p.control.prompts import check_prompts_fit
from videop2p.editing import (
    EditResult,
    build_plan,
    check_edit_entry,
    edit,
    load_edit_result,
    repeated_targets,
    save_edit_result,
)
from videop2p.exporting import check_tuned_folder, tuned_folder_size, write_tuned_folder
from videop2p.inversion import (
    InversionResult,
    check_inversion_entry,
    invert,
    kept_at,
    load_inversion,
    save_inversion,
)
from videop2p.io.video import (
    DEFAULT_FPS,
    AudioSpan,
    DeepSignal,
    as_frames,
    check_size,
    declared_frames,
    frames_needed,
    iter_video,
    probe_video,
    read_video,
    resize_frames,
    resolve_size,
    selected_count,
)
from videop2p.latents import decode_latents, encode_posterior, encode_prompts, frames_hash
from videop2p.metrics import video_psnr
from videop2p.models.loading import BUNDLED_MODEL, SDComponents, dtype_name, is_bundled, load_components, parse_dtype
from videop2p.models.t2s import T2SModel
from videop2p.models.tav import apply_temporal
from videop2p.outputs import pasted_frames, write_run_outputs, writer_count
from videop2p.progress import StepHook
from videop2p.sampling import DivergedError, check_steps
from videop2p.store.files import check_room, check_writable
from videop2p.store.workspace import (
    StageReport,
    Workspace,
    clip_identity,
    here_workspace_with,
    key_of,
    reuse_or_compute,
    seen_names,
    settings_difference,
    tuning_difference,
)
from videop2p.tuning import check_delta_entry, load_delta, save_delta, tune
from videop2p.windows import WindowPlan, frames_per_step, plan_windows

logger = logging.getLogger(__name__)


def _selection_words(start: int, count: int, stride: int, fps: float) -> str:
    """A selection of frames in words, numbered from 1, and how long it lasts at `fps` (the selection's rate):
    "frames 1-8, 0.267 s", "every 3rd frame of frames 3-15, 0.5 s"."""
    last = start + (count - 1) * stride
    every = f"every {stride}{_ordinal(stride)} frame of " if stride > 1 else ""
    return f"{every}frames {start + 1}-{last + 1}, {count / fps:.3g} s"


def _ordinal(n: int) -> str:
    return "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def _warned(notes: tuple[str, ...]) -> tuple[str, ...]:
    """What a run warns of before its stages (what loading a clip found, a target given twice), logged as it is
    said, and kept (on the clip, or with the run's settings) for the run's report."""
    for note in notes:
        logger.warning("%s", note)
    return notes


def _repeats_said(targets: list[str], settings: EditConfig) -> tuple[str, ...]:
    """What a run warns of a target given twice with the same `settings` (`repeated_targets`)."""
    return tuple(
        f"target {k + 1} is target {j + 1} again with the same settings: its edit is the same; give each target "
        "once (each one costs a branch of every step)"
        for k, j in repeated_targets(targets, settings)
    )


@dataclass
class Clip:
    """Selected, resized frames of a clip."""

    frames: np.ndarray  # (F, H, W, 3) uint8
    fps: float  # frame rate for writing
    digest: str  # content hash of the frames
    posterior: tuple[torch.Tensor, torch.Tensor] | None = None  # scaled VAE mean and std, (1, F, C, h, w) each
    video: VideoConfig | None = None  # where the frames were read from, to read them again at full size
    full_size: tuple[int, int] | None = None  # (width, height) of the input's frames, when not `frames`'
    audio: AudioSpan | None = None  # the selection's sound
    times: np.ndarray | None = None  # (F + 1,) s: when each frame is shown, where not evenly (`Video.times`)
    notes: tuple[str, ...] = ()  # what loading warned of (conversions, a size far above the model's), for the report
    deep: DeepSignal | None = None  # the input's own signal where 8-bit SDR does not hold it: HDR video (`frames`
    # are tone-mapped) or SDR of more than 8 bits (`frames` are rounded)

    __repr__ = brief_repr

    def originals(self, signal: bool = False) -> Iterator[np.ndarray]:
        """The selected frames at the input's own size, read again one at a time (with `signal`, a deep
        input's in its own 16-bit form, `iter_video`)."""
        v = self.video
        return iter_video(v.path, v.start, len(self.frames), v.stride, signal=signal)

    @property
    def size(self) -> tuple[int, int]:
        return int(self.frames.shape[2]), int(self.frames.shape[1])


@dataclass
class EditOutput:
    """Decoded results of one editing pass."""

    reconstruction: np.ndarray  # (F, H, W, 3)
    edits: list[np.ndarray]  # per target, (F, H, W, 3)
    result: EditResult  # latents, masks, maps, counts

    __repr__ = brief_repr


CLIP_FROM = "what `load_clip` or `clip_from_frames` returns"
NO_TARGET = (
    "holds no prompt; give at least one target prompt: the source prompt with your edit (one as text, or a list)."
)


def _given(value: object, kind: type, name: str, what: str) -> None:
    """An API argument of the kind a stage takes (a path or a tensor passed instead is named at once)."""
    if not isinstance(value, kind):
        raise TypeError(f"{name} must be {a_or_an(kind.__name__)} ({what}), got {type(value).__name__}.")


def _settings(cfg: Any, kind: type) -> Any:
    """A stage's settings as given: its config dataclass, a dict of its fields (read as a config file's
    section is: unknown keys named), or None for its defaults."""
    if cfg is None:
        return kind()
    return fill(kind, path_shorthand(cfg) if kind is VideoConfig else cfg) if isinstance(cfg, dict) else cfg


def not_tuned_on(model: T2SModel, frames_hash: str | None, delta: str | None = None) -> dict:
    """What a workspace entry's key adds when its frames (or its inversion's tuned delta) are not those
    `model` was tuned on: an inversion or edit of other frames, through the API, is filed apart from the
    tuned clip's own, whose keys stay as they were."""
    other = {}
    if frames_hash != model.tuned_frames:
        other["frames_hash"] = frames_hash
    if delta is not None and delta != model.delta_key:
        other["inverted_with"] = delta
    return other


def inversion_key(prompt: str, cfg: InversionConfig, plan: WindowPlan, other: dict) -> dict:
    """What an inversion is filed under in its tuned clip's folder: the prompt, the settings it ran with
    (`cfg`, its frames per step resolved), the clip's windows, and `other` (`not_tuned_on`)."""
    return {"prompt": prompt, **settings_of(cfg), **plan.key(), **other}


def edit_key(
    source: str, targets: list[str], cfg: EditConfig, inverted: dict | None, plan: WindowPlan, other: dict
) -> dict:
    """What an edit is filed under in its tuned clip's folder: the prompts, its settings, those of the
    inversion it starts from (`inverted`, as that inversion keeps them), the windows, and `other`."""
    return {
        "source": source,
        "targets": targets,
        "edit": settings_of(cfg),
        "inversion": inverted,
        **plan.key(),
        **other,
    }


def inverted_for(prompt: str, frames_hash: str, delta: str | None) -> dict:
    """What a kept inversion's metadata must say to be read for this prompt, clip and tuned model."""
    return {"prompt": prompt, "frames_hash": frames_hash, "delta": delta}


@dataclass(frozen=True)
class PlannedStage:
    """What a stage of a run would do (`VideoP2P.dry_run`): reuse its workspace entry, resume it from
    the steps a stopped run kept, or compute it."""

    stage: str  # "tune", "invert" or "edit"
    action: str  # "reuse", "resume", "compute" or "skip" (a tuning of 0 steps: the model's weights as they are)
    entry: str | None  # the workspace entry it would read or write (None: the pipeline keeps no workspace)
    why: str | None = None  # why a kept entry is not reused (damaged, or made for another clip or prompt)


@dataclass(frozen=True)
class DryRun:
    """A run as `VideoP2P.dry_run` finds it before any work: its settings as the run's config.yaml
    would keep them, and what each stage would do."""

    settings: RunConfig
    stages: list[PlannedStage]


STAGE_ORDER = ("tune", "invert", "edit")


def planned(
    stage: str,
    entry: Path | None,
    force: bool,
    workspace: Workspace | None,
    check: Callable[[Path], None] = lambda path: None,
    skipped: bool = False,
) -> PlannedStage:
    """A stage's `PlannedStage`: its entry kept in `workspace` is reused (unless `force`) when `check` (what
    the stage's load asks of its header) passes, a stopped run's steps kept beside it resume it, else it is
    computed, or skipped where it has nothing to compute (as `reuse_or_compute` reports it); an entry that
    fails `check` is computed anew, as the run does, and `why` says why."""
    compute = "skip" if skipped else "compute"
    if entry is None or workspace is None:
        return PlannedStage(stage, compute, None)
    why = None
    if not force and entry.exists():
        try:
            check(entry)
            return PlannedStage(stage, "reuse", str(entry))
        except (OSError, KeyError, ValueError) as e:  # as `reuse_or_compute` ignores one that does not load
            why = f"the kept entry does not load: {' '.join(str(e).split()).rstrip('.')}"  # one line: a comment
    action = "resume" if not force and workspace.has_kept_steps(entry) else compute
    return PlannedStage(stage, action, str(entry), why)


def free_memory() -> int:
    """Bytes of memory a process may still take: available RAM and free swap (psutil)."""
    return psutil.virtual_memory().available + psutil.swap_memory().free


def check_memory_for_clips(frames: int, size: tuple[int, int], targets: int, free: int, read: bool = True) -> None:
    """Before the work: the clip (when not `read` yet), its reconstruction and each of `targets` edits,
    decoded to 8-bit frames of `size` (width, height) and all held when the outputs are written, fit in
    `free` bytes. It is a floor of what the run still needs, not an estimate: a run above it would be
    stopped by the system for memory, while reading the clip or at its end, after its tuning,
    inversion and edit. `targets` 0 and not `read`: the clip alone (tuning or inverting it)."""
    width, height = size
    frame = width * height * 3
    clips = (0 if read else 1) + (1 + targets if targets else 0)
    need = clips * frames * frame
    if need <= free:
        return
    edits = f"the reconstruction and {targets} edit{'s' if targets != 1 else ''}"
    if not targets:
        held = "the clip"
    elif read:
        held = f"{edits}, held with the clip when they are written"
    else:
        held = f"the clip, {edits}, held together when they are written"
    fit = free // (clips * frame)  # not 0: `--frames 0` takes every frame
    fewer = f"take at most {fit} frames (--frames), " if fit else "not one frame fits at this size; give "
    raise ValueError(
        f"{frames} frames of {width}x{height} need {need / 2**30:.1f} GiB more memory for {held}, and "
        f"{free / 2**30:.1f} GiB is free; {fewer}a smaller --size{', or fewer targets' if targets else ''}."
    )


LARGE_AREA = 4.0  # frames above this many times the model's native area are warned about (SD 1.5: 1024x1024)
# A reconstruction further from the clip than this (PSNR, dB, at the working size) is warned about: the edits share
# it. Measured on the bundled model: its toy clips' reconstructions 34-39 dB, a real clip's (the sample car) 12.5 dB,
# as its VAE alone gives (the null-text reconstruction 38 dB from the VAE's own). Stable Diffusion's VAE is
# published well above this on real images (not measured here: no SD weights on these machines).
FAR_DB = 18.0


def same_setting(name: str, a: Any, b: Any) -> bool:
    """Whether two values of the setting `name` that `VideoP2P.from_pretrained` loads a model with (`a` checked)
    load the same: paths (a dict's files too) compared as the files they name, the bundled model by None or its
    name, a device without an index as any of its kind's."""
    if name == "model" and is_bundled(a) and is_bundled(b):  # None or its name
        return True
    if name == "device":
        try:
            a, b = torch.device(a), torch.device(b)
        except (RuntimeError, TypeError):  # not a device's name
            return False
        return a == b or (a.type == b.type and None in (a.index, b.index))
    if isinstance(a, dict) and isinstance(b, dict):
        return {_named_path(k): v for k, v in a.items()} == {_named_path(k): v for k, v in b.items()}
    return _named_path(a) == _named_path(b)


def _named_path(value: Any) -> Any:
    """A path as the file it names (from the current folder, `~` as home), where it names one; else as it is."""
    if isinstance(value, str | os.PathLike) and os.path.exists(os.path.expanduser(value)):
        return os.path.realpath(os.path.expanduser(value))
    return value


class VideoP2P:
    """Video-P2P with a loaded model: `tune`, `invert`, `edit`, or `run` for all three.

    Each stage returns its value and a `StageReport` (computed, resumed or reused; seconds, UNet calls).
    """

    def __init__(
        self,
        components: SDComponents,
        workspace: Workspace | None = None,
        frame_mode: FrameAttentionMode | str = RunConfig.frame_attention,
        attention_slicing: int | None = RunConfig.attention_slicing,
        group_norm: GroupNormMode | str = RunConfig.group_norm,
        loaded_with: dict[str, Any] | None = None,
    ):
        self.components = components
        self.workspace = workspace
        self.frame_mode = FrameAttentionMode(frame_mode)  # the default of `tune`; a run's config may override it
        self.group_norm = GroupNormMode(group_norm)  # likewise
        self.attention_slicing = attention_slicing  # query chunk of every attention layer; None: off
        # the run settings `from_pretrained` loaded `components` with (None: not known), which a run's settings
        # may not contradict and its config.yaml records
        self.loaded_with = loaded_with

    @classmethod
    def from_pretrained(
        cls,
        model: str | None = RunConfig.model,
        device: str = RunConfig.device,
        dtype: str = RunConfig.dtype,
        workspace: str | Path | None = None,
        frame_mode: FrameAttentionMode | str = RunConfig.frame_attention,
        attention_slicing: int | None = RunConfig.attention_slicing,
        group_norm: GroupNormMode | str = RunConfig.group_norm,
        model_config: str | None = RunConfig.model_config,
        lora: dict[str, LoraScale] | list[str] | str | None = None,
        embeddings: dict[str, str | None] | list[str] | str | None = None,
        vae: str | None = RunConfig.vae,
    ) -> VideoP2P:
        """Load a model (None: the bundled toy model; `model_config`: an original single-file checkpoint's
        architecture; `lora`: LoRA files (LyCORIS's too) and their scales, a number or (UNet's, text
        encoder's), fused into it; `embeddings`: textual-inversion files and their tokens, None for a file's own
        (`lora` and `embeddings` as a config file gives them: a dict, a file, or a list of FILE, FILE=SCALE or
        FILE=TOKEN; a file may be a hub repository's, `owner/name/FILE`, or `owner/name` for its one); `vae`: a
        VAE in place of the model's own, a folder, weights file or hub id); `workspace` enables reuse between
        runs."""
        for name, value in (("model", model), ("model_config", model_config), ("vae", vae), ("workspace", workspace)):
            if value is not None and not isinstance(value, str | os.PathLike):
                what = "a folder's path" if name == "workspace" else "a hub id or a folder's or file's path"
                raise TypeError(f"{name} must be {what}, got {type(value).__name__}.")
        check_folder("workspace", workspace, "to keep tuned clips in, or None for no reuse")  # a blank one too
        check_model_settings(frame_mode, group_norm, dtype, attention_slicing, device)
        if lora is not None:
            lora = adapter_setting("lora", lora)
            check_lora_settings(lora)
        if embeddings is not None:
            embeddings = adapter_setting("embeddings", embeddings)
            check_embedding_settings(embeddings)
        workspace = None if workspace is None else Path(workspace).expanduser()  # `~/` is home, as in a config file
        check_folder("workspace", workspace, "to keep tuned clips in")  # where `~/` leads
        if workspace is not None:
            check_writable("workspace", workspace, "to keep tuned clips in")
        components = load_components(
            model,
            device=device,
            dtype=parse_dtype(dtype),
            config=model_config,
            lora=lora,
            embeddings=embeddings,
            vae=vae,
        )
        ws = Workspace(workspace) if workspace is not None else None
        loaded_with = {"model": model, "model_config": model_config, "vae": vae, "lora": lora or {},
                       "embeddings": embeddings or {}, "device": device, "dtype": dtype}  # fmt: skip
        return cls(components, ws, frame_mode, attention_slicing, group_norm, loaded_with)

    @property
    def device(self) -> torch.device:
        return self.components.unet.device

    def __repr__(self) -> str:
        """The loaded model (its name and fingerprint), where it runs and in what, and the workspace."""
        where = None if self.workspace is None else str(self.workspace.root)
        unet = self.components.unet
        return (
            f"VideoP2P(model={self.components.info.identity!r}, device={str(unet.device)!r}, "
            f"dtype={str(unet.dtype).removeprefix('torch.')!r}, workspace={where!r})"
        )

    def load_clip(self, video: VideoConfig | dict | str | os.PathLike) -> Clip:
        """Read, select and resize frames to a size the model allows (a path alone: `VideoConfig`'s
        defaults for the rest, as `videop2p run CLIP` takes them; a dict: its fields)."""
        if isinstance(video, str | os.PathLike):
            video = VideoConfig(path=str(video))
        elif isinstance(video, dict):
            video = _settings(video, VideoConfig)
        _given(video, VideoConfig, "video", "or the clip's path, or a dict of its fields")
        video = dataclasses.replace(video, path=plain_path(video.path))
        check_video(video)  # before the clip is opened
        probe = probe_video(video.path)  # a missing or unreadable clip is named here
        width, height, large = self._working_size(probe.size, video.width, video.height)
        declared = declared_frames(video.path, frames_needed(video.start, video.frames, video.stride))
        if declared:  # a clip too long for memory is refused before it is decoded
            selected = selected_count(declared, video.start, video.frames, video.stride)
            check_memory_for_clips(selected, (width, height), 0, free_memory(), read=False)
        raw = read_video(  # resized as decoded: memory holds the working-size frames only
            video.path,
            video.start,
            video.frames,
            video.stride,
            lambda f: resize_frames(f[None], width, height, video.resize)[0],
            small=(width, height),
            fps=video.fps,
        )
        notes = _warned((*probe.conversions, *large))  # read whole: the edit is not in the file's form; its size
        if video.stride > 1:
            logger.info("stride %d: %.3g fps, the clip's duration and sound kept", video.stride, raw.fps)
        if declared and len(raw.frames) < declared and video.frames is not None:  # a part of it: said, not a surprise
            logger.info(
                "%s holds %d frames; %d of them are edited (%s): --frames 0 edits every frame, --start and "
                "--stride pick others",
                video.path,
                declared,
                len(raw.frames),
                _selection_words(video.start, len(raw.frames), video.stride, raw.fps),
            )
        return Clip(
            frames=raw.frames,
            fps=raw.fps,
            digest=frames_hash(raw.frames),
            video=video,
            full_size=probe.size if probe.size != (width, height) else None,
            audio=raw.audio,
            times=raw.times,
            notes=notes,
            deep=probe.deep,
        )

    def clip_from_frames(
        self,
        frames: np.ndarray | list,
        fps: float = DEFAULT_FPS,
        width: int | None = None,
        height: int | None = None,
        resize: ResizeMode | str = VideoConfig.resize,
    ) -> Clip:
        """A clip from frames held in memory ((F, H, W, 3) uint8 or 0-1 floats, RGBA and greyscale too, or a list of
        PIL images; `as_frames`), resized as `load_clip` resizes a file's: the same frames give the same clip, and
        so reuse the same tuning."""
        arr = as_frames(frames)
        fps, width, height = (plain_number(x) for x in (fps, width, height))  # numpy's numbers too
        try:
            check_number(None, "fps", fps, 0.0, above=True)
            check_frame_size(VideoConfig(width=width, height=height, resize=resize))
            width, height, large = self._working_size((arr.shape[2], arr.shape[1]), width, height)
        except OptionError as e:  # named by this method's argument (`fps`), not `video.fps`
            raise as_argument(e) from None
        resized = resize_frames(arr, width, height, resize)  # frame by frame, as load_clip resizes
        return Clip(frames=resized, fps=float(fps), digest=frames_hash(resized), notes=_warned(large))

    def _working_size(
        self, size: tuple[int, int], width: int | None, height: int | None
    ) -> tuple[int, int, tuple[str, ...]]:
        """The (width, height) a clip of `size` is worked at (given sides checked, missing ones at the model's
        native area), and the warning far above that area."""
        info = self.components.info
        width, height = resolve_size(size, width, height, info.native_size, info.size_multiple, info.size_step)
        times = width * height / info.native_size**2
        if times <= LARGE_AREA:  # memory and time grow with the area; far from its size a model draws worse
            return width, height, ()
        killed = " (on the CPU the system may stop the run for memory)" if self.device.type == "cpu" else ""
        own = resolve_size(size, None, None, info.native_size, info.size_multiple, info.size_step)  # no size's
        note = (
            f"{width}x{height} frames have {times:.0f}x the area of the {info.native_size}x{info.native_size} frames "
            f"the model was trained on: memory and time grow with it{killed}, and the model may draw worse; "
            f"--size {own[0]}x{own[1]} works at its own area"
        )
        return width, height, (note,)

    def posterior(self, clip: Clip) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled VAE posterior of the clip, encoded once per clip and kept on it."""
        if clip.posterior is None:
            clip.posterior = encode_posterior(self.components, clip.frames)
        return clip.posterior

    def architecture(
        self, frame_mode: FrameAttentionMode | str | None = None, group_norm: GroupNormMode | str | None = None
    ) -> tuple[FrameAttentionMode, GroupNormMode]:
        """The T2S model's frame attention and GroupNorm statistics: as asked, else the pipeline's; what a
        tuned video folder records wins (its weights were tuned with it), said as a warning where another was
        asked for than the default (a note where none was)."""
        mode, norm, _ = self._architecture(frame_mode, group_norm)
        return mode, norm

    def _architecture(
        self, frame_mode: FrameAttentionMode | str | None, group_norm: GroupNormMode | str | None
    ) -> tuple[FrameAttentionMode, GroupNormMode, list[str]]:
        """`architecture`'s work, with the warnings it logged (for a run's report)."""
        mode = FrameAttentionMode(frame_mode or self.frame_mode)
        norm = GroupNormMode(group_norm or self.group_norm)
        video = self.components.video
        if video is None:
            return mode, norm, []
        warned = []
        for what, asked, recorded, default in (
            ("frame attention", mode, video.frame_mode, RunConfig.frame_attention),
            ("GroupNorm", norm, video.group_norm, RunConfig.group_norm),
        ):
            if recorded is not None and recorded is not asked:
                said = f"{video.source} was tuned with {recorded.value} {what}; using it."
                logger.log(logging.INFO if asked is default else logging.WARNING, "%s", said)
                if asked is not default:  # another was asked for: the run's report says so too
                    warned.append(said)
        return video.frame_mode or mode, video.group_norm, warned

    def identity(
        self,
        clip: Clip,
        prompt: str,
        cfg: TuneConfig,
        mode: FrameAttentionMode,
        norm: GroupNormMode,
        plan: WindowPlan | None = None,
    ) -> dict:
        """The clip identity a tuned delta is made for and filed under (windows only where a clip has them;
        the weights' dtype only where it is not float32, which every earlier key was made in)."""
        fingerprint = self.components.info.fingerprint
        dtype = self.components.unet.dtype
        precision = {} if dtype == torch.float32 else {"dtype": dtype_name(dtype)}
        settings = {**settings_of(cfg), **precision, **(plan.key() if plan is not None else {})}
        return clip_identity(
            fingerprint, clip.digest, clip.size, len(clip.frames), prompt, mode.value, norm.value, settings
        )

    def _tuning(
        self,
        clip: Clip,
        prompt: str,
        cfg: TuneConfig,
        frame_mode: FrameAttentionMode | str | None,
        group_norm: GroupNormMode | str | None,
        window: WindowConfig,
    ) -> tuple[TuneConfig, WindowPlan, FrameAttentionMode, GroupNormMode, dict]:
        """A tuning's settings as it runs them (its steps and frames per step resolved), the clip's windows,
        the architecture, and the clip identity its delta is filed under."""
        cfg = cfg.resolved(pretuned=self.components.video is not None)
        plan = plan_windows(len(clip.frames), window)
        cfg = dataclasses.replace(cfg, frames=frames_per_step(cfg.frames, plan))
        mode, norm = self.architecture(frame_mode, group_norm)
        return cfg, plan, mode, norm, self.identity(clip, prompt, cfg, mode, norm, plan)

    def tune(
        self,
        clip: Clip,
        prompt: str,
        cfg: TuneConfig | dict | None = None,
        force: bool = False,
        on_step: StepHook | None = None,
        frame_mode: FrameAttentionMode | str | None = None,
        group_norm: GroupNormMode | str | None = None,
        window: WindowConfig | dict | None = None,
        attention_slicing: int | None = None,
    ) -> tuple[T2SModel, StageReport]:
        """Stage 1: the T2S model tuned on `clip` (loaded from the workspace when it has it); a clip
        longer than a window trains on one window (and its anchors) per step. The training state is
        kept beside the entry every `cfg.save_seconds`, so an interrupted tuning resumes. The model attends
        `attention_slicing` queries at a time, here and in the stages it is given to (None: the pipeline's)."""
        _given(clip, Clip, "clip", CLIP_FROM)
        self._check_source(prompt)
        cfg, window = _settings(cfg, TuneConfig), _settings(window, WindowConfig)
        check_tune(cfg)
        check_window(window)
        if attention_slicing is not None:
            check_number(None, "attention_slicing", attention_slicing, 1, whole=True, cap=COUNT_MAX)
        cfg, plan, mode, norm, identity = self._tuning(clip, prompt, cfg, frame_mode, group_norm, window)
        model = T2SModel.from_image_unet(self.components.unet, mode, norm)
        if self.components.video is not None:  # a tuned Tune-A-Video / Video-P2P folder: its temporal layers
            apply_temporal(model.unet, self.components.video.temporal)
        model.set_attention_slicing(self.attention_slicing if attention_slicing is None else attention_slicing)
        model.delta_key, model.tuned_frames = key_of(identity), clip.digest

        ran = 0  # steps this run made (fewer than cfg.steps when it resumed a stopped tuning)

        def compute() -> T2SModel:
            nonlocal ran
            if force and saved is not None:
                saved.clear()
            if cfg.steps > 0:
                text = encode_prompts(self.components, [prompt])
                result = tune(model, self.components, self.posterior(clip), text, cfg, on_step, plan, saved)
                ran = cfg.steps - result.resumed_from
            return model

        def load() -> T2SModel:
            load_delta(model, path, identity)
            return model

        if self.workspace is not None and (force or not self.workspace.delta_path(model.delta_key).exists()):
            # the tuned weights must fit; a tuning state that does not is skipped with a warning
            delta = sum(p.numel() * p.element_size() for p in model.trainable_parameters().values())
            check_room("workspace", self.workspace.root, delta, "the tuned weights")
            others = [] if force else [tuning_difference(identity, o) for o in self.workspace.tuned_otherwise(identity)]
            if others:  # a run that meant to reuse it is told why it does not: the nearest settings kept
                logger.warning(
                    "tuning anew: the workspace keeps this clip tuned with other settings (%s); the same settings "
                    "reuse it",
                    ", ".join(min(others, key=len)),
                )
            elif not force and (here := here_workspace_with(self.workspace.root, model.delta_key)) is not None:
                logger.warning(
                    "tuning anew in %s: %s keeps this clip tuned with these settings; a run with that workspace "
                    "reuses it",
                    self.workspace.root,
                    here,
                )
        path = self.workspace.open_clip(identity) if self.workspace else None
        saved = self.workspace.steps_of(path, identity) if path is not None else None
        try:
            result = reuse_or_compute(
                self.workspace,
                "tune",
                path,
                force,
                compute,
                load,
                lambda m: save_delta(m, self.workspace.open_clip(identity), identity),  # key.json kept with it
                lambda m: ran,
                lambda m: ran < cfg.steps,
                skipped=cfg.steps == 0,  # the model's weights as they are (a tuned video folder's, by default)
                seen=self._seen(clip),
            )
        except BaseException as e:
            if isinstance(e, DivergedError) and saved is not None:
                saved.clear()  # these settings diverge again from any state they kept
            if path is not None:
                self.workspace.close_unused(path)  # nothing half-written: no folder of a clip never tuned
            raise
        if saved is not None:
            saved.clear()  # the delta is saved (or was already there): the kept state is no longer needed
        return result

    def _seen(self, clip: Clip | None = None) -> dict[str, str]:
        """The names the workspace's history keeps of this run's model and `clip` (`seen_names`)."""
        return seen_names(self.components.info.identity, clip.video.path if clip and clip.video else None)

    def invert(
        self,
        model: T2SModel,
        clip: Clip,
        prompt: str,
        cfg: InversionConfig | dict | None = None,
        force: bool = False,
        on_step: StepHook | None = None,
        window: WindowConfig | dict | None = None,
    ) -> tuple[InversionResult, StageReport]:
        """Stage 2: invert `clip` with `prompt` on `model`; filed under the model's own delta. Every
        finished step is kept beside the entry, so an interrupted inversion resumes where it stopped."""
        _given(model, T2SModel, "model", "the model `tune` returns")
        _given(clip, Clip, "clip", CLIP_FROM)
        cfg, window = _settings(cfg, InversionConfig), _settings(window, WindowConfig)
        self._check_source(prompt)
        check_inversion(cfg)
        check_steps(self.components.scheduler, cfg.steps)
        check_window(window)
        plan = plan_windows(len(clip.frames), window)
        cfg = dataclasses.replace(cfg, frames=frames_per_step(cfg.frames, plan))
        expected = inverted_for(prompt, clip.digest, model.delta_key)
        path, saved = None, None
        if self.workspace is not None and model.delta_key is not None:
            settings = settings_of(cfg)
            key = inversion_key(prompt, cfg, plan, not_tuned_on(model, clip.digest))
            path = self.workspace.inversion_path(model.delta_key, key)
            saved = self.workspace.steps_of(path, {**expected, "key": key})
            if not force and not path.exists():
                others = self.workspace.inverted_otherwise(model.delta_key, prompt, clip.digest, settings)
                if others:  # a run that meant to reuse one is told why it does not: the nearest settings kept
                    logger.warning(
                        "inverting anew: the workspace keeps this clip inverted with other settings (%s); the same "
                        "settings reuse it",
                        ", ".join(min((settings_difference(settings, o, "inversion") for o in others), key=len)),
                    )

        def compute() -> InversionResult:
            if force and saved is not None:
                saved.clear()
            z0, _ = self.posterior(clip)
            cond, empty = encode_prompts(self.components, [prompt]), encode_prompts(self.components, [""])
            return invert(model, self.components.scheduler, z0, cond, empty, cfg, expected, None, on_step, plan, saved)

        try:
            result, report = reuse_or_compute(
                self.workspace,
                "invert",
                path,
                force,
                compute,
                lambda: load_inversion(path, expected, self.device),
                lambda r: save_inversion(r, path),
                lambda r: sum(r.meta.get("unet_evaluations", {}).values()),
                seen=self._seen(clip),
            )
        except DivergedError:
            if saved is not None:
                saved.clear()  # these settings diverge again from any step they kept
                self.workspace.close_failed(path)
            raise
        if saved is not None:  # the entry is saved (or was already there): its steps are no longer needed
            result = kept_at(result, path)
            saved.clear()
        return result, report

    def edit(
        self,
        model: T2SModel,
        inversion: InversionResult,
        source: str,
        targets: str | list[str],
        cfg: EditConfig | dict | None = None,
        force: bool = False,
        on_step: StepHook | None = None,
        window: WindowConfig | dict | None = None,
    ) -> tuple[EditOutput, StageReport]:
        """Stage 3: decoupled-guidance sampling under attention control, decoded. `targets`: the edited prompts,
        or one as text (as diffusers' pipelines take a prompt)."""
        _given(model, T2SModel, "model", "the model `tune` returns")
        _given(inversion, InversionResult, "inversion", "what `invert` returns")
        cfg, window = _settings(cfg, EditConfig), _settings(window, WindowConfig)
        targets = [targets] if isinstance(targets, str) else targets
        check_prompts(source, targets)
        if not targets:
            raise ValueError(f"targets {targets!r} {NO_TARGET}")
        inverted = inversion.meta.get("prompt")
        if inverted is not None and inverted != source:
            raise ValueError(
                f"source {source!r} is not the prompt the clip was inverted with ({inverted!r}); "
                "edit from that prompt, or invert again with this one."
            )
        check_edit(cfg)
        check_window(window)
        frames, (h, w) = inversion.latent_T.shape[1], inversion.latent_T.shape[-2:]
        scale = self.components.info.vae_scale_factor
        check_memory_for_clips(frames, (w * scale, h * scale), len(targets), free_memory())
        plan = plan_windows(frames, window)
        other = not_tuned_on(model, inversion.meta.get("frames_hash"), inversion.meta.get("delta"))
        key = edit_key(source, targets, cfg, inversion.meta.get("settings"), plan, other)
        path = None
        if self.workspace is not None and model.delta_key is not None:
            path = self.workspace.edit_path(model.delta_key, key)
        result, report = reuse_or_compute(
            self.workspace,
            "edit",
            path,
            force,
            lambda: edit(model, self.components, inversion, source, targets, cfg, on_step=on_step, windows=plan),
            lambda: load_edit_result(path, self.device),
            lambda r: save_edit_result(r, path),
            lambda r: r.counts.get("edit", 0),
            seen=self._seen(),
        )
        frames = decode_latents(self.components, result.latents)  # (1 + K, F, H, W, 3)
        return EditOutput(reconstruction=frames[0], edits=list(frames[1:]), result=result), report

    def reconstruction_fidelity(
        self, clip: Clip, out: EditOutput, inversion: InversionMethod | str | None = None
    ) -> tuple[float, str | None]:
        """How close `out`'s reconstruction is to `clip` (PSNR, dB, at the working size), and a warning where it
        is far (`FAR_DB`), saying whether the model's VAE alone loses the clip (a model that does not know frames
        like these) or the tuning and the inversion (`inversion`: the method the run inverted with) lose it."""
        _given(clip, Clip, "clip", CLIP_FROM)
        _given(out, EditOutput, "out", "what `edit` returns")
        rec = video_psnr(out.reconstruction, clip.frames)
        if rec >= FAR_DB:
            return rec, None
        z0, _ = self.posterior(clip)  # encoded once per clip (kept on it)
        vae = video_psnr(decode_latents(self.components, z0)[0], clip.frames)
        far = f"The reconstruction is far from the clip ({rec:.1f} dB PSNR at the working size), and the edits with it"
        if vae < FAR_DB:
            return rec, (
                f"{far}: the model's VAE alone reproduces the clip at {vae:.1f} dB, so the model "
                f"({self.components.info.identity}) does not represent frames like these; edit them with a model "
                "made for such images."
            )
        other = inversion is not None and InversionMethod(inversion) is not InversionMethod.NULL_TEXT
        hint = "; the official null-text inversion reconstructs most closely" if other else ""
        loses = f"so the tuning or the inversion loses the rest{hint}"
        return rec, f"{far}: the model's VAE alone reproduces the clip at {vae:.1f} dB, {loses}."

    def paste(self, clip: Clip, out: EditOutput, target: int = 0) -> Iterator[np.ndarray]:
        """Edit `target` of `out` at `clip`'s own size, as `run` writes its mp4 (`outputs.pasted_frames`): pasted
        into the input's frames, read again one at a time, through its feathered blend mask (the whole frame
        without one). Yields (H, W, 3) uint8 frames for `write_video` (an HDR or 10-bit clip's as seen in 8-bit
        SDR; `run` writes those in their own form); the edit itself where the clip is at the working size or was
        given in memory (`clip_from_frames` keeps no other size)."""
        _given(clip, Clip, "clip", CLIP_FROM)
        _given(out, EditOutput, "out", "what `edit` returns")
        count = len(out.edits)
        if isinstance(target, bool) or not isinstance(target, int | np.integer) or not 0 <= target < count:
            held = f"{count} edit{'s' * (count != 1)}"
            raise ValueError(f"target {shown(target)} is not valid; expected 0 to {count - 1}: `out` holds {held}.")
        edited = out.edits[target]  # (F, h, w, 3)
        if edited.shape != clip.frames.shape:
            raise ValueError(
                f"out's edits are {edited.shape[0]} frames at {edited.shape[2]}x{edited.shape[1]}, the clip "
                f"{len(clip.frames)} at {clip.size[0]}x{clip.size[1]}: paste an edit of this clip."
            )
        if clip.full_size is None or clip.video is None:
            return iter(edited)
        masks = out.result.masks[target] if out.result.masks is not None else None  # (F, h_m, w_m) bool
        return pasted_frames(clip, edited, masks, self.components.info.vae_scale_factor)

    def save_tuned(self, model: T2SModel, path: str | os.PathLike) -> bool:
        """Write the tuned `model` into folder `path` as the authors' Tune-A-Video / Video-P2P folder (what
        their `run_tuning.py` writes), which `from_pretrained(path)` and their `run_videop2p.py` load
        untuned; what else the folder holds is kept. Returns False when it holds this tuning already."""
        written = write_tuned_folder(self.components, model, path)
        verb = "written to" if written else "already in"
        logger.info("tuned model %s %s (a Tune-A-Video / Video-P2P folder: --model edits with it as it is)", verb, path)
        return written

    def _check_source(self, prompt: str) -> None:
        """The prompt a clip is tuned and inverted with: text, not empty, within the tokenizer's limit."""
        check_prompts(prompt)
        if not prompt.strip():
            raise ValueError(f"The source prompt {prompt!r} is empty; give a sentence that describes the clip.")
        check_prompts_fit(self.components.tokenizer, prompt)

    def check_inputs(self, cfg: RunConfig) -> None:
        """Validate settings, prompts, words and schedules before any expensive stage."""
        _given(cfg, RunConfig, "cfg", "or, for `run`, a dict of its fields")
        cfg = plain_paths(cfg)
        validate(cfg)
        check_folder("out", cfg.out, "for the outputs")
        check_writable("out", cfg.out, "for the outputs")
        clip = Path(cfg.video.path)  # (a name too long for a file, no folder here, is said as the clip is read)
        if os.path.isdir(clip) and Path(cfg.out).resolve() == clip.resolve():
            raise ValueError(
                f"out {cfg.out!r} is the clip's own folder of frames; give another folder for the outputs "
                "(their pictures would join the clip's frames)."
            )
        self._check_source(cfg.source)
        if not cfg.targets:
            raise ValueError(f"targets {cfg.targets!r} {NO_TARGET}")
        self._check_workspace(cfg.workspace)
        if cfg.save_tuned is not None:
            check_tuned_folder(cfg.save_tuned, tuned_folder_size(self.components))
        check_steps(self.components.scheduler, cfg.inversion.steps)
        info = self.components.info
        # the sides asked for, before the clip is read (`load_clip` checks them again for its own callers)
        check_size(cfg.video.width, cfg.video.height, info.size_multiple)
        side = info.native_size // info.vae_scale_factor
        build_plan(self.components, cfg.source, cfg.targets, cfg.edit, cfg.inversion.steps, (side, side))

    def _as_loaded(self, cfg: RunConfig) -> RunConfig:
        """`cfg` with the model, its adapters, device and precision this pipeline was loaded with
        (`loaded_with`), which the stages run: a run's settings may name them only as loaded (a ValueError
        names one that differs); left at their defaults, they are recorded as loaded (config.yaml)."""
        if self.loaded_with is None:  # built from components: not known
            return cfg
        defaults = RunConfig()
        for name, loaded in self.loaded_with.items():
            given = getattr(cfg, name)
            if given != getattr(defaults, name) and not same_setting(name, given, loaded):
                as_loaded = (
                    f"the bundled model, {BUNDLED_MODEL}" if name == "model" and loaded is None else shown(loaded)
                )
                raise ValueError(
                    f"{name} {shown(given)} is not the one this pipeline was loaded with ({as_loaded}): its stages "
                    f"run the loaded model; load another with VideoP2P.from_pretrained({name}=...), or leave the "
                    f"settings' {name} out."
                )
        return dataclasses.replace(cfg, **self.loaded_with)

    def _check_workspace(self, workspace: str | None) -> None:
        """A run's settings may name a workspace only where this pipeline keeps its work (the one it was
        loaded with): the stages read and write `self.workspace`, and the run's config.yaml records it."""
        if workspace is None:
            return
        own = self.workspace.root if self.workspace is not None else None
        if own is None or Path(workspace).expanduser().resolve() != Path(own).expanduser().resolve():
            raise ValueError(
                f"workspace {workspace!r} is not the one this pipeline keeps its work in ({own}); load it with "
                "VideoP2P.from_pretrained(..., workspace=...) or leave the settings' workspace out."
            )

    def _as_run(self, cfg: RunConfig) -> tuple[RunConfig, list[str]]:
        """`cfg` as a run records it in config.yaml: the model as loaded (`_as_loaded`), its tuning steps resolved,
        the architecture a tuned video folder records (`architecture`, with what it warned of), and the workspace
        it runs in, so that `--config OUT/config.yaml` reuses its work; the stages' bars on copies of their
        settings (the caller's stay as they are)."""
        progress = not cfg.quiet
        cfg = self._as_loaded(cfg)
        mode, norm, warned = self._architecture(cfg.frame_attention, cfg.group_norm)
        slicing = self.attention_slicing if cfg.attention_slicing is None else cfg.attention_slicing  # `tune`'s
        return dataclasses.replace(
            cfg,
            frame_attention=mode,
            group_norm=norm,
            attention_slicing=slicing,
            tune=dataclasses.replace(cfg.tune.resolved(pretuned=self.components.video is not None), progress=progress),
            inversion=dataclasses.replace(cfg.inversion, progress=progress),
            edit=dataclasses.replace(cfg.edit, progress=progress),
            workspace=str(self.workspace.root) if self.workspace is not None else None,
        ), warned

    def _begun(self, cfg: RunConfig | dict, last: str = "edit") -> tuple[RunConfig, Clip, float, list[str]]:
        """`run`'s first steps, which `dry_run` takes too: `cfg` (or a dict of its fields, read as a config
        file is) checked, as the run records it (`_as_run`, with what that warned of), and its clip read, with
        the seconds that took; memory for the clip, its reconstruction and its edits checked before tuning.
        With `last` "tune" or "invert" the settings may leave the targets out (the first stages alone)."""
        if isinstance(cfg, dict):  # a preset it names: without its tuning steps on a tuned video model
            filled = fill_run(cfg)
            pretuned = self.components.video is not None
            cfg = on_tuned_model(filled, named_preset(cfg), holds(cfg, "tune.steps")) if pretuned else filled
        _given(cfg, RunConfig, "cfg", "or a dict of its fields")
        cfg = plain_paths(cfg)  # `pathlib.Path`s given: kept and written as text, as a config file's
        if last == "edit" or cfg.targets:
            self.check_inputs(cfg)
        else:
            validate(cfg)
            self._check_source(cfg.source)
            self._check_workspace(cfg.workspace)
        cfg, warned = self._as_run(cfg)
        warned = [*warned, *_warned(_repeats_said(cfg.targets, cfg.edit))]
        started = time.perf_counter()
        clip = self.load_clip(cfg.video)
        seconds = time.perf_counter() - started
        if last == "edit":
            check_memory_for_clips(len(clip.frames), clip.size, len(cfg.targets), free_memory())
        return cfg, clip, seconds, warned

    def dry_run(self, cfg: RunConfig | dict, last: str = "edit") -> DryRun:
        """What `run(cfg)` would do, with nothing computed or written: its settings checked as `run` checks
        them (the targets' too, where it has them) and the clip read for its identity; each stage's workspace
        entry and whether it would be reused, resumed or computed. `last`: "tune" or "invert" for the first
        stages alone (`videop2p tune`, `videop2p invert`), whose settings may leave the targets out."""
        if last not in STAGE_ORDER:
            raise ValueError(f"last {shown(last)} is not a stage; valid: {', '.join(STAGE_ORDER)}.")
        cfg, clip, _, _ = self._begun(cfg, last)
        _, plan, _, _, identity = self._tuning(
            clip, cfg.source, cfg.tune, cfg.frame_attention, cfg.group_norm, cfg.window
        )
        ws, delta = self.workspace, key_of(identity)
        inverted = dataclasses.replace(cfg.inversion, frames=frames_per_step(cfg.inversion.frames, plan))
        entries = {
            "tune": ws.delta_path(delta) if ws else None,
            "invert": ws.inversion_path(delta, inversion_key(cfg.source, inverted, plan, {})) if ws else None,
            "edit": (
                ws.edit_path(delta, edit_key(cfg.source, cfg.targets, cfg.edit, settings_of(inverted), plan, {}))
                if ws
                else None
            ),
        }  # the run's own frames, tuned on and inverted: nothing `not_tuned_on` adds
        checks = {
            "tune": functools.partial(check_delta_entry, expected=identity),
            "invert": functools.partial(check_inversion_entry, expected=inverted_for(cfg.source, clip.digest, delta)),
            "edit": check_edit_entry,
        }  # what each stage's load asks of the entry's header (as `invert` expects its inversion)
        stages = [
            planned(s, entries[s], cfg.force, ws, checks[s], skipped=s == "tune" and cfg.tune.steps == 0)
            for s in STAGE_ORDER[: STAGE_ORDER.index(last) + 1]
        ]  # a tuning of 0 steps: the model's weights as they are
        return DryRun(cfg, stages)

    def run(self, cfg: RunConfig | dict, on_step: StepHook | None = None) -> dict:
        """Tune, invert and edit, write every output and `outputs.json`; returns the manifest. `cfg` may
        be a dict of `RunConfig`'s fields, read as a config file is (`{"video": "clip.mp4", ...}`).

        `on_step(stage, done, total)` hears of every step of every stage, and of each file written (stage
        "write"), and may raise to stop.
        """
        cfg, clip, seconds, warned = self._begun(cfg)
        reports = [StageReport("load", "computed", seconds)]
        model, report = self.tune(
            clip,
            cfg.source,
            cfg.tune,
            cfg.force,
            on_step,
            cfg.frame_attention,
            cfg.group_norm,
            cfg.window,
            cfg.attention_slicing,
        )
        reports.append(report)
        if cfg.save_tuned is not None:
            self.save_tuned(model, cfg.save_tuned)
        inversion, report = self.invert(model, clip, cfg.source, cfg.inversion, cfg.force, on_step, cfg.window)
        reports.append(report)
        out, report = self.edit(model, inversion, cfg.source, cfg.targets, cfg.edit, cfg.force, on_step, cfg.window)
        reports.append(report)
        rec, far = self.reconstruction_fidelity(clip, out, cfg.inversion.method)
        if far is not None:
            logger.warning(far)
        workers = writer_count(cfg, clip, torch.get_num_threads(), free_memory())
        warned = [*warned, *([far] if far else [])]
        return write_run_outputs(cfg, clip, out, reports, self.components.info, workers, on_step, warned, rec)
