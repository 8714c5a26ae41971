"""Every setting as a typed dataclass, with the official defaults; filled from our YAML schema, the
official Video-P2P YAMLs, CLI flags and the web form. Imports neither torch nor diffusers.

The dataclasses are the one place each default lives: the stages, the CLI help and the UI form read
them from here.
"""

from __future__ import annotations

import codecs
import contextlib
import copy
import dataclasses
import difflib
import enum
import errno
import math
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

import yaml


class EditMode(enum.StrEnum):
    AUTO = "auto"  # swap when word counts match and words differ, else refine
    SWAP = "swap"  # word replacement
    REFINE = "refine"  # words added or removed


class MaskNorm(enum.StrEnum):
    """How a blend word's map is scaled per frame before the threshold."""

    MAX = "max"  # divide by the maximum (official): a map never below 0.3 of its peak masks everything
    RANGE = "range"  # (map - min) / (max - min): the official mask where maps reach zero, a usable one on flat maps


class FrameAttentionMode(enum.StrEnum):
    FIRST = "first"  # Video-P2P: every frame attends to frame 0
    SPARSE_CAUSAL = "sparse-causal"  # Tune-A-Video: frames 0 and i-1


class GroupNormMode(enum.StrEnum):
    """Statistics of the UNet's resnet and output GroupNorms on a clip."""

    FRAME = "frame"  # each frame alone, as the image model was trained (videop2p's default so far)
    CLIP = "clip"  # the authors' code: their ResnetBlock3D normalises (b, c, f, h, w), over every frame


class AnchorMode(enum.StrEnum):
    """Frames that every frame's frame attention reads (its keys and values), in every window."""

    FIRST = "first"  # Video-P2P: frame 0 only
    FIRST_MIDDLE = "first+middle"  # frame 0 and the clip's middle frame


class WindowBlend(enum.StrEnum):
    """How the predictions of overlapping windows are combined on the frames they share."""

    UNIFORM = "uniform"  # the plain average of MultiDiffusion (Bar-Tal et al. 2023)
    RAMP = "ramp"  # a linear cross-fade over each overlap: a window's share falls to 0 towards its inner ends


class CompositeMode(enum.StrEnum):
    """How edits are written at the input's own resolution."""

    AUTO = "auto"  # paste the edit into the input's frames when their size is not the working size, or they are HDR
    # or SDR of more than 8 bits (whose edits stay 10-bit video in their form)
    SDR = "sdr"  # as auto, an HDR or 10-bit input's edits written as 8-bit SDR video (as the model saw it)
    OFF = "off"  # write the working-size frames only


class ResizeMode(enum.StrEnum):
    CROP = "crop"  # scale to cover, then centre crop (the official behaviour)
    PAD = "pad"  # scale to fit, then pad with black
    STRETCH = "stretch"  # scale each axis independently


class InversionMethod(enum.StrEnum):
    NULL_TEXT = "null-text"  # official: optimised unconditional embedding per step
    FAST = "fast"  # official --fast: no optimisation, source sampled without guidance
    DIRECT = "direct"  # PnP Inversion: source branch corrected onto the inversion trajectory
    NEGATIVE_PROMPT = "negative-prompt"  # source prompt embedding as the unconditional embedding


class ExportFormat(enum.StrEnum):
    DELTA = "diffusers-delta"  # ours: the tuned tensors with their clip identity (tune.safetensors)
    TUNE_A_VIDEO = "tune-a-video"  # the authors' folder: UNet3DConditionModel beside the base model's parts

    @classmethod
    def _missing_(cls, value):
        """`video-p2p` names the same folder: Video-P2P's `run_tuning.py` writes Tune-A-Video's layout."""
        return cls.TUNE_A_VIDEO if value == "video-p2p" else None


DTYPES = ("float32", "float16", "bfloat16")  # names a run's dtype may take
# other names of them, said in a refusal: the authors' and accelerate's (mixed_precision), torch's
DTYPE_ALIASES = {"fp32": "float32", "float": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16"}
OFFICIAL_TUNE_STEPS = 500  # the authors' max_train_steps
DEMO_TUNE_STEPS = 300  # `videop2p demo`'s tuning budget
SEED_MAX = 2**64 - 1  # the largest seed torch.Generator.manual_seed takes
DEFAULT_FPS = 8.0  # frames a second of a folder of frames, as the authors' outputs are shown
FPS_RANGE = (0.01, 1000.0)  # frames a second a folder of frames may be given: a frame a 100 s to a high-speed camera's
COUNT_MAX = 2**31 - 1  # the largest count (frames, steps), index, stride or side: more than any run has
IMAGE_SUFFIXES = frozenset(  # the pictures a clip's folder of frames is read from (io.video)
    {".jpg", ".jpeg", ".jfif", ".png", ".tif", ".tiff", ".bmp", ".webp", ".avif", ".gif", ".dpx", ".exr"}
)
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".mxf"})
ADAPTER_FILES = ("lora", "embeddings")  # RunConfig's fields that map files to settings (paths placed alike)
LORA_SUFFIXES = (".safetensors", ".bin", ".pt", ".ckpt")  # what diffusers' LoRA loader reads
EMBEDDING_SUFFIXES = (".safetensors", ".pt", ".bin")  # what the SD ecosystem writes embeddings as
ADAPTER_SUFFIXES = {"lora": LORA_SUFFIXES, "embeddings": EMBEDDING_SUFFIXES}  # by ADAPTER_FILES' fields
LORA_SCALE_MAX = 10.0  # |LoRA scale| at most: LoRA authors advise 0.5-1, and some styles are used negated
LoraScale = float | tuple[float, float]  # a LoRA's scale: one for the UNet and the text encoder, or (UNet's, text's)
# A reweighted word's map times this at most: prompt-to-prompt's examples use -5 to 20; at 100 the word
# already holds a hundred times the attention of the whole prompt, and float16 (max 65504) stays finite.
REWEIGHT_MAX = 100.0
WORKSPACE_NAME = ".videop2p-workspace"  # the workspace folder a run or batch makes by default
Bounds = float | tuple[float, float]  # a fraction of the steps, or a (start, end) pair of fractions
WordPair = tuple[str, str]  # (source word, target word)
Words = WordPair | list[WordPair | None]  # one pair for every target, or one per target (None: none for it)
NO_WORDS = "-"  # a per-target pair written "-" in both places: no words for that target
PAIR_SEP = ","  # "circle,grass" "circle,snow": one blend (or subtract) pair per target
PER_TARGET_PAIRS = "comma-separated, one per target in order, e.g. --{what} circle,grass circle,snow; - for none"
# how an error of the editing says them, to whichever way they were given: a list of pairs or their words comma-separated
PAIRS_PER_TARGET = (
    "one pair per target in order: [[circle, circle], [grass, snow]] in a config file or EditConfig, the words "
    "comma-separated as --{what} circle,grass circle,snow and the editor's two fields take them; - or null for none"
)
Thresholds = float | list[float]  # one local-blend threshold for every target, or one per target
PER_TARGET_THRESHOLDS = "one per target, comma-separated (0.3,0.6)"  # how messages and help texts say it
# One window for every target, or one per target: a list of windows, each a fraction or a (start, end)
# pair, at least one of them a pair ([0.2, 0.8] alone is one (start, end) window, as the authors read it).
# "0.2,0.8" (the flag's form) is read as [(0, 0.2), (0, 0.8)].
Windows = Bounds | list[Bounds]
PER_TARGET_WINDOWS = "one per target, comma-separated (0.2,0.8)"  # how messages and help texts say it


@dataclass
class TuneConfig:
    """Tuning settings; defaults are the official ones."""

    steps: int | None = None  # optimisation steps; None: 500 (official) on an image model, 0 on a tuned video model
    frames: int | None = None  # frames per step, drawn anew each step, anchors always in; None: every frame (official)
    lr: float = 3e-5  # constant AdamW learning rate
    seed: int = 33  # seeds noise and timesteps
    gradient_checkpointing: bool = True  # recompute activations in the backward pass: less memory, same result
    mixed_precision: str = "no"  # "no", "fp16" or "bf16" (autocast; used on CUDA only)
    max_grad_norm: float | None = 1.0  # the trainable set's gradient norm is clipped to this (official); None: not
    save_seconds: float | None = 120.0  # seconds between kept tuning states, to resume from; 0: every step; None: none
    progress: bool = True  # show a tqdm bar

    def resolved(self, pretuned: bool = False) -> TuneConfig:
        """This config with `steps` decided: as set, else none for an already tuned video model, else 500."""
        steps = self.steps if self.steps is not None else (0 if pretuned else OFFICIAL_TUNE_STEPS)
        return dataclasses.replace(self, steps=steps)


@dataclass
class InversionConfig:
    """Inversion settings; defaults are the official ones."""

    method: InversionMethod = InversionMethod.NULL_TEXT  # see InversionMethod
    steps: int = 50  # DDIM steps
    inversion_guidance: float = 1.0  # guidance of the DDIM inversion itself
    guidance: float = 7.5  # guidance the null-text step is optimised for (and editing uses)
    inner_steps: int = 10  # at most this many Adam iterations per step
    lr: float = 1e-2  # Adam learning rate at step 0, decays as lr * (1 - i / 100)
    early_stop: float = 1e-5  # stop inner iterations when loss < early_stop + i * 2e-5
    frames: int | None = None  # null-text loss on this many frames per iteration, anchors in; None: all (official)
    gradient_checkpointing: bool = False  # null-text backward through checkpoints: less memory, same result
    progress: bool = True  # tqdm bars


# Settings that change how, not what: not part of a saved result's key.
NOT_SETTINGS = ("progress", "gradient_checkpointing", "save_seconds")


@dataclass
class EditConfig:
    """Editing settings; defaults are the official ones."""

    mode: EditMode = EditMode.AUTO  # swap, refine, or chosen from the prompts
    guidance: float = 7.5  # classifier-free guidance of the branches that use it
    cross_replace: Windows = 0.2  # fraction (or (start, end)) of steps with cross-attention replaced; or per target
    cross_replace_words: dict[str, Bounds] = field(default_factory=dict)  # per-word windows
    self_replace: Windows = 0.5  # fraction (or (start, end)) of steps with temporal maps replaced; or per target
    blend: Words | None = None  # (source word, target word) for local blending; or one pair per target
    subtract: Words | None = None  # words whose region is never edited; or one pair per target
    reweight: dict[str, float] = field(default_factory=dict)  # target word -> attention factor
    threshold: Thresholds = 0.3  # local-blend mask threshold; or one per target
    mask_norm: MaskNorm = MaskNorm.MAX  # maps divided by their maximum (official) or scaled by their range
    blend_start: float = 0.2  # blending starts after this fraction of steps
    decoupled: bool = True  # targets use the plain empty-prompt embedding (Video-P2P); False: the source's
    mask_side: int | None = None  # side of the maps that build masks; None: closest to the official 16
    materialize_all: bool = False  # benchmark baseline: attention probabilities in every controlled layer
    control_frame_attention: bool = False  # also replace frame-attention maps in the self window (not official)
    progress: bool = True  # tqdm bar


UNSET_SINCE_KEYED = {"frames"}  # settings added after results were kept: left out at None, so those keys still match


def settings_of(cfg: Any) -> dict:
    """The plain settings of a stage config that decide its result (what a saved result is keyed on)."""
    plain = to_plain(cfg).items()
    return {k: v for k, v in plain if k not in NOT_SETTINGS and not (k in UNSET_SINCE_KEYED and v is None)}


class ConfigError(ValueError):
    """A configuration key or value that is not understood."""


class OptionError(ConfigError):
    """A bad value of one flat option; `option` names it (each app says it in its own words: a flag, a field,
    a file's key), `reason` says what is wrong. Its text names the setting as the dataclasses hold it
    (`tune.steps`, `file_key`), as an API caller set it."""

    def __init__(self, option: str, reason: str):
        super().__init__(f"{file_key(option)}: {reason}")
        self.option, self.reason = option, reason


class SettingError(ConfigError):
    """A bad value of the setting `name` of one dataclass (`steps` of TuneConfig), found where it is read
    (`_coerce`), which knows its name but not its section; `reason` says what is wrong. Whoever holds the
    section names it whole (`tune.steps`, `--tune-steps`)."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name}: {reason}")
        self.name, self.reason = name, reason


class SettingProblem:
    """Mixin of an error that, where it is one setting's value that is wrong (a clip or model path that is not
    there, more frames than the clip holds), says which: `option` names the setting (an OptionError's option)
    and `reason` what is wrong with its value, for an app that names the setting where it was given (a config
    file's key), while the message says it in the command line's words. Both are None for any other error."""

    def __init__(self, message: str, option: str | None = None, reason: str | None = None):
        super().__init__(message)
        self.option, self.reason = option, reason


@dataclass
class VideoConfig:
    """Which frames of which clip, at which size."""

    path: str = ""  # clip: video file, animated image or folder of frames
    start: int = 0  # first frame (official sample_start_idx)
    frames: int | None = 8  # number of frames (official n_sample_frames); None: all
    stride: int = 1  # take every stride-th frame (official sample_frame_rate)
    fps: float | None = None  # frames a second of a folder of frames (None: DEFAULT_FPS); a video keeps its own
    width: int | None = None  # None: keep the aspect ratio at the model's native area
    height: int | None = None  # None: keep the aspect ratio
    resize: ResizeMode = ResizeMode.CROP  # crop (official), pad or stretch


@dataclass
class WindowConfig:
    """Long clips: frames processed in overlapping windows that all read the anchor frames, so that
    memory is one window's whatever the clip length. A clip of at most `size` frames runs whole."""

    size: int | None = 16  # frames per window; None: always the whole clip
    overlap: int = 4  # frames shared by consecutive windows, their predictions averaged at every step
    anchors: AnchorMode = AnchorMode.FIRST  # frames every window's frame attention reads
    blend: WindowBlend = WindowBlend.UNIFORM  # how overlapping windows' predictions are combined


@dataclass
class RunConfig:
    """Everything one `videop2p run` needs."""

    video: VideoConfig = field(default_factory=VideoConfig)
    source: str = ""  # prompt describing the clip
    targets: list[str] = field(default_factory=list)  # edited prompts
    model: str | None = None  # hub id, folder or file; None: the bundled toy model
    model_config: str | None = None  # an original single-file model's architecture: diffusers folder or hub id
    vae: str | None = None  # a VAE in place of the model's own: a diffusers folder, a weights file or a hub id
    lora: dict[str, LoraScale] = field(default_factory=dict)  # LoRA file -> scale (or UNet's, text's), fused first
    embeddings: dict[str, str | None] = field(default_factory=dict)  # textual-inversion file -> token (None: its own)
    out: str = "outputs"  # output folder
    save_tuned: str | None = None  # also write the tuned model there, as the authors' Tune-A-Video / Video-P2P folder
    workspace: str | None = None  # workspace root; None: OUT/../.videop2p-workspace
    device: str = "cpu"  # torch device
    dtype: str = "float32"  # float32, float16 or bfloat16
    frame_attention: FrameAttentionMode = FrameAttentionMode.FIRST  # first (Video-P2P) or sparse-causal
    group_norm: GroupNormMode = (
        GroupNormMode.FRAME
    )  # resnet GroupNorm statistics per frame, or over the clip (authors')
    attention_slicing: int | None = None  # attend with at most this many queries at a time (memory fallback)
    window: WindowConfig = field(default_factory=WindowConfig)
    composite: CompositeMode = CompositeMode.AUTO  # edits pasted into the input's frames (auto; sdr) or not (off)
    png_frames: bool = False  # also each edit's frames as lossless PNGs, edit_K/1.png, ... (the mp4's size;
    # an OpenEXR plate's: OpenEXR frames, edit_K/1.exr, ...)
    tune: TuneConfig = field(default_factory=TuneConfig)
    inversion: InversionConfig = field(default_factory=InversionConfig)
    edit: EditConfig = field(default_factory=EditConfig)
    force: bool = False  # redo tuning and inversion even when the workspace has them
    quiet: bool = False  # no progress bars


class Executor(enum.StrEnum):
    LOCAL = "local"  # one process, jobs in file order
    RAY = "ray"  # one Ray task per clip group


@dataclass
class BatchSettings:
    """How `videop2p batch` runs its jobs."""

    executor: Executor = Executor.LOCAL
    address: str | None = None  # Ray cluster to join; None starts a local Ray for the run
    num_gpus: float = 0.0  # GPUs per Ray task (1 on GPU clusters)
    num_cpus: float = 1.0  # CPUs per Ray task; also torch's thread count in that task
    quiet: bool = True  # no progress bars inside jobs


@dataclass
class UiSettings:
    """Where `videop2p ui` serves the web editor, and keeps its files."""

    host: str = "127.0.0.1"  # the interface it listens on: this machine alone (0.0.0.0: every network)
    port: int = 7860  # Gradio's own
    root: str = "videop2p-ui"  # the folder of its workspace, uploads and results


class Method(enum.StrEnum):
    """The methods `videop2p eval` compares, as its tables name them."""

    VIDEO_P2P = "Video-P2P"  # null-text, decoupled guidance, local blending
    FAST = "fast"  # official --fast
    DIRECT = "direct inversion"
    NEGATIVE = "negative-prompt inversion"
    COUPLED = "no decoupled guidance"  # optimised embeddings in both branches
    TUNE_A_VIDEO = "Tune-A-Video"  # tuned, DDIM inversion, target prompt, no control
    PER_FRAME = "per-frame P2P"  # no inflation, no tuning, each frame alone
    FRAME_CONTROL = "Video-P2P + frame-attention control"  # ours, not official: frame maps replaced too


@dataclass
class EvalSettings:
    """Budget of an evaluation run (`videop2p eval`)."""

    tune_steps: int = 200  # tuning steps per clip
    tune_frames: int | None = None  # frames per tuning step (TuneConfig.frames); None: every frame
    null_text_frames: int | None = None  # frames the null-text loss reads (InversionConfig.frames); None: every frame
    steps: int = InversionConfig.steps  # DDIM steps
    frames: int = VideoConfig.frames  # frames per clip: a run's default
    methods: list[Method] = field(default_factory=lambda: list(Method))  # which methods to compare
    group_norm: GroupNormMode = RunConfig.group_norm  # GroupNorm statistics: a run's default


SUITE_CASES = 30  # the suite's cases: five edit kinds, six each
QUICK_CASES = 2  # a colour swap and a shape swap


def quick_settings() -> EvalSettings:
    """The CI smoke budget: 2-frame clips, 20 tuning and 20 DDIM steps, Video-P2P's official fast mode alone.

    Fast mode is the full method without null-text optimisation (the authors' `--fast`). Null-text's
    50 x 10 UNet backward passes take about a minute per clip on a 2-core CPU. On the 30 default-budget
    cases of the bundled model, fast mode succeeds on as many colour swaps as the full method (6 of 6)
    and keeps the background nearly as well (41.2 vs 42.1 dB), but reconstructs worse (35.0 vs
    39.8 dB; docs/eval/bundled_paste/), so the quick reconstruction figure is a floor for the full method's.
    """
    return EvalSettings(tune_steps=20, steps=20, frames=2, methods=[Method.FAST])


RAY_ADDRESS_FORMS = (
    "HOST:PORT (a cluster's head), ray://HOST:PORT (Ray Client) or auto (the cluster this machine is in)"
)


def ray_host_port(address: str) -> tuple[str, int] | None:
    """The host and port a Ray cluster address names (`HOST:PORT`, `ray://HOST:PORT`, `[IPv6]:PORT`); None
    for `auto` and `local`, which name none; OptionError for anything else."""
    if address in ("auto", "local"):
        return None
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise OptionError("address", f"{address!r} is not a Ray cluster address; expected {RAY_ADDRESS_FORMS}.")
    return host, int(port)


def check_batch(b: BatchSettings) -> None:
    """A known executor and finite, non-negative resources per Ray task (at least a part of a CPU);
    the Ray settings only with the Ray executor, which alone reads them."""
    _enum_ok(None, "executor", b.executor, Executor)
    check_number(None, "gpus_per_task", b.num_gpus, 0.0)
    check_number(None, "cpus_per_task", b.num_cpus, 0.0, above=True)
    if b.address is not None:
        ray_host_port(b.address)
    executor = Executor(b.executor)
    if executor is not Executor.RAY:
        defaults = BatchSettings()
        for option, value, default in (
            ("address", b.address, defaults.address),
            ("gpus_per_task", b.num_gpus, defaults.num_gpus),
            ("cpus_per_task", b.num_cpus, defaults.num_cpus),
        ):
            if value != default:
                raise OptionError(
                    option, f"{shown(value)} is for Ray; add --executor ray (the {executor.value} executor reads none)."
                )


def to_plain(obj: Any) -> Any:
    """Dataclasses and enums -> JSON/YAML-friendly values."""
    if dataclasses.is_dataclass(obj):
        return {k: to_plain(v) for k, v in asdict(obj).items()}
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    if isinstance(obj, enum.Enum):
        return obj.value
    return obj


# 0 given for these is their None, all of it (--frames 0: every frame; --window 0: the whole clip; --tune-frames 0
# and --null-text-frames 0: every frame, the official, as `--preset quick --tune-frames 0` asks)
ZERO_IS_ALL = {(VideoConfig, "frames"), (WindowConfig, "size"), (TuneConfig, "frames"), (InversionConfig, "frames")}


def prompt_text(value: Any) -> Any:
    """A prompt as a file, flag or form gives it, without the whitespace around it, which is none of its words
    (the line break that ends a YAML block, a space pasted after it); anything but text as it is, for the
    checks to name."""
    return value.strip() if isinstance(value, str) else value


def zero_is_all(cls: type, name: str, value: Any) -> Any:
    """`value` of setting `name` of `cls`, with a 0 given where `ZERO_IS_ALL` reads it as None (all of it)."""
    if (cls, name) in ZERO_IS_ALL and value == 0 and not isinstance(value, bool):
        return None  # every frame, the whole clip: a file's, form's or flag's 0
    return value


def _coerce(cls, name: str, value: Any) -> Any:
    current = getattr(cls(), name)
    if isinstance(current, enum.Enum):
        try:
            return type(current)(value)
        except ValueError:
            raise SettingError(name, f"{not_a_member(value, type(current))}.") from None
    if name == "source":
        return prompt_text(value)
    if name == "targets":  # one prompt alone is one target, as `VideoP2P.edit` takes it; not a list: validate's
        value = [value] if isinstance(value, str) else value
        return [prompt_text(v) for v in value] if isinstance(value, list | tuple) else value
    if name in ("blend", "subtract") and value is not None:
        return _word_pairs(name, value)
    if name in ("cross_replace", "self_replace"):
        return _windows(name, value)
    word_numbers = {"reweight": parse_reweight, "cross_replace_words": parse_word_windows}.get(name)
    if word_numbers is not None and isinstance(value, list | tuple):  # ["origami=2", ...] from flags and forms
        try:
            return word_numbers(list(value))
        except ConfigError as e:
            raise SettingError(name, str(e)) from None
    if name == "lora" and isinstance(value, list | tuple | str):  # ["style.safetensors=0.8", ...] from flags
        return parse_lora([value] if isinstance(value, str) else list(value))
    if name == "lora" and isinstance(value, dict):  # a YAML file's {FILE: SCALE or [UNET, TEXT]}
        return {path: tuple(scale) if isinstance(scale, list) else scale for path, scale in value.items()}
    if name == "embeddings" and isinstance(value, list | tuple | str):  # ["style.pt=<style>", ...] from flags
        return parse_embeddings([value] if isinstance(value, str) else list(value))
    if name == "threshold" and isinstance(value, str):  # "0.3" or "0.3,0.6" from flags
        return _thresholds(value)
    if name == "targets" and isinstance(value, str):  # one target prompt written without a list
        return [value]
    if isinstance(value, float) and value.is_integer() and _whole_setting(cls, name):
        value = int(value)  # a file's `steps: 1000.0` or `1e3`, as the flags and the editor read a whole number
    return zero_is_all(cls, name, value)


def _whole_setting(cls: type, name: str) -> bool:
    """Whether setting `name` of dataclass `cls` holds a whole number (its annotation an int, or int | None)."""
    (kind,) = (f.type for f in dataclasses.fields(cls) if f.name == name)
    return {part.strip() for part in str(kind).split("|")} <= {"int", "None"}


def adapter_setting(name: str, value: Any) -> Any:
    """`lora` or `embeddings` as `RunConfig` holds them (a dict of files), from what a config file may give
    (one FILE, a list of FILE, FILE=SCALE or FILE=TOKEN, or the dict), for the Python API's `from_pretrained`."""
    return _coerce(RunConfig, name, value)


def _numbers(name: str, text: str, expected: str) -> list[float]:
    """The comma-separated numbers of a flag or a form's field ("0.3" or "0.3,0.6": one per target)."""
    try:
        return [float(v) for v in text.split(PAIR_SEP)]
    except ValueError:
        raise SettingError(name, f"{text!r} is not valid; expected {expected}.") from None


def _one_per_target(name: str, given: int, targets: int, noun: str) -> None:
    """A per-target list of `given` values for `targets` target prompts, or the OptionError saying so."""
    if given != targets:
        raise OptionError(
            name,
            f"gives {given} {noun}{'s' if given != 1 else ''} for {targets} target "
            f"prompt{'s' if targets != 1 else ''}; give one for every target, or one per target in order.",
        )


def _thresholds(text: str) -> Thresholds:
    """A threshold as flags and the editor write it: "0.3" -> 0.3; "0.3,0.6" -> [0.3, 0.6], one per target
    (ranges are checked with the config)."""
    values = _numbers("threshold", text, f"a number from 0 to 1, or {PER_TARGET_THRESHOLDS}")
    return values[0] if len(values) == 1 else values


def per_target_windows(value: Any) -> bool:
    """A list of windows, one per target (`Windows`), not one window."""
    return isinstance(value, list | tuple) and any(isinstance(v, list | tuple) for v in value)


def _windows(name: str, value: Any) -> Any:
    """A window as flags, forms and config files write it: "0.2" -> 0.2; "0.2,0.8" -> one per target,
    [(0, 0.2), (0, 0.8)]; a list of two numbers -> a (start, end) tuple; a list of windows -> the same
    with each pair a tuple (ranges are checked with the config)."""
    if isinstance(value, str):
        values = _numbers(name, value, f"a fraction from 0 to 1, or {PER_TARGET_WINDOWS}")
        return values[0] if len(values) == 1 else [(0.0, v) for v in values]
    if per_target_windows(value):
        return [tuple(v) if isinstance(v, list | tuple) else v for v in value]
    return tuple(value) if isinstance(value, list) else value


def window_bounds(value: Bounds) -> tuple[float, float]:
    """A window as (start, end) fractions of the steps: a single fraction f is (0, f) (ranges: `check_edit`)."""
    return (0.0, float(value)) if isinstance(value, int | float) else (float(value[0]), float(value[1]))


def target_windows(value: Windows, targets: int, name: str) -> list[tuple[float, float]]:
    """`value` as one (start, end) window per target: a single window applies to every target."""
    if per_target_windows(value):
        _one_per_target(name, len(value), targets, "window")
    else:
        value = [value] * targets
    return [window_bounds(v) for v in value]


def target_thresholds(value: Thresholds, targets: int) -> list[float]:
    """`value` as one local-blend threshold per target: a single number applies to every target."""
    if not isinstance(value, list | tuple):
        return [float(value)] * targets
    _one_per_target("threshold", len(value), targets, "threshold")
    return [float(v) for v in value]


def _is_pair(value: Any) -> bool:
    """Two words, [source_word, target_word]."""
    return isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(w, str) for w in value)


def _per_target(value: Any) -> bool:
    """A list of word pairs, one per target (each a list, a tuple or None), not one pair of words."""
    return (
        isinstance(value, list | tuple) and bool(value) and all(isinstance(v, list | tuple) or v is None for v in value)
    )


def _word_pairs(name: str, value: Any) -> Words | None:
    """A blend or subtract setting: one pair [source_word, target_word] for every target; or one pair
    per target in order, as a list of pairs (null: none for that target) or as the pair's two words
    comma-separated ("circle,grass", "circle,snow"; "-,-" for none), as the command line and the editor
    take them. The pair "-", "-" alone is none."""
    if _is_pair(value):  # a word copied with the prompt's comma after it ("motorbike,") is that word
        value = [w.strip().strip(PAIR_SEP) for w in value]
    if _is_pair(value) and any(PAIR_SEP in w for w in value):
        sources, targets = ([w.strip() for w in words.split(PAIR_SEP)] for words in value)
        if len(sources) != len(targets):
            raise SettingError(
                name,
                f"{value[0]!r} and {value[1]!r} give {len(sources)} source and {len(targets)} target "
                "words; give one of each per target, comma-separated in the same order (- for none).",
            )
        value = [list(pair) for pair in zip(sources, targets, strict=True)]
    if not _per_target(value):
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise SettingError(
                name,
                f"needs two words [source_word, target_word], or one such pair (or null) per target, got {shown(value)}.",
            )
        return _pair_or_none(value)  # its words are check_edit's to judge
    for v in value:
        if v is not None and NO_WORDS in v and tuple(v) != (NO_WORDS, NO_WORDS):
            raise SettingError(name, f"{list(v)!r} has one word; '-' stands for no pair, in both places.")
    return [_pair_or_none(v) for v in value]


def _pair_or_none(value: Any) -> WordPair | None:
    """A per-target entry: its pair, or None for null and "-", "-"."""
    return None if value is None or tuple(value) == (NO_WORDS, NO_WORDS) else tuple(value)


def target_pairs(name: str, value: Words | None, targets: int) -> list[WordPair | None]:
    """`value` as one pair (or None) per target: a single pair applies to every target."""
    if value is None or _is_pair(value):
        return [None if value is None else tuple(value)] * targets
    if len(value) != targets:
        raise OptionError(
            name,
            f"gives {len(value)} word pair{'s' if len(value) != 1 else ''} for {targets} target "
            f"prompt{'s' if targets != 1 else ''}; give one "
            f"pair for every target, or one per target in order ({NO_WORDS} or null: none for it).",
        )
    return [_pair_or_none(v) for v in value]


def target_label(k: int, targets: int) -> str:
    """How a message names target `k` (from 1) of `targets`: "target 2", or "the target" when it is the only one."""
    return f"target {k}" if targets > 1 else "the target"


def check_subtract(blends: list[WordPair | None], subtracts: list[WordPair | None]) -> None:
    """Words to subtract narrow a target's blend mask, so a target with them needs blend words (P2P's
    LocalBlend): without, they would change nothing."""
    for k, (blend, subtract) in enumerate(zip(blends, subtracts, strict=True), start=1):
        if subtract is not None and blend is None:
            raise OptionError(
                "subtract",
                f"{list(subtract)} is given for {target_label(k, len(blends))} without blend words: subtracted "
                "words narrow a blend mask; give blend words for it too, or no subtract words.",
            )


RUN_KEYS = {"preset"}  # keys a run's settings take beside RunConfig's fields (`fill_run` reads them)


def path_shorthand(video: Any) -> Any:
    """`video: clip.mp4` in a config or a batch job stands for `video: {path: clip.mp4}`."""
    return {"path": video} if isinstance(video, str) else video


def fill(cls, data: dict, where: str = "", obj: Any = None):
    """Build dataclass `cls` from a dict (over a copy of `obj`'s values when given; `obj` itself is left as
    it is), rejecting unknown keys by name. `where` prefixes every message (a batch job's name)."""
    return _fill_into(cls() if obj is None else copy.deepcopy(obj), data, where, "", cls)


def _fill_into(obj: Any, data: dict, where: str, section: str, root: type):
    """`fill`'s work on `obj`, in place; `section` is the dotted path of `obj` inside `root`, the top
    dataclass, where a misplaced key's own section is looked for."""
    cls = type(obj)
    names = {f.name for f in dataclasses.fields(cls)}
    for key, value in (data or {}).items():
        if key not in names:
            listed = names | (RUN_KEYS if cls is RunConfig else set())
            raise ConfigError(f"{where}{_unknown_key(key, section, sorted(listed), root)}")
        sub = getattr(obj, key)
        if dataclasses.is_dataclass(sub):
            value = path_shorthand(value) if isinstance(sub, VideoConfig) else value
            mapping = _mapping(value, f"{where}{section}{key}")
            setattr(obj, key, _fill_into(sub, mapping, where, f"{section}{key}.", root))
            continue
        try:
            setattr(obj, key, _coerce(cls, key, value))
        except SettingError as e:
            if not where:  # the setting's, named as a file or an API caller names it (`_named_by_file`)
                raise OptionError(f"{section}{e.name}", e.reason) from None
            raise ConfigError(f"{where}{section}{e.name} {e.reason}") from None
        except ConfigError as e:
            raise ConfigError(f"{where}{section}{e}") from None
    return obj


def _sections_with(cls: type, key: str, section: str = "") -> list[str]:
    """The dotted paths of the dataclasses inside `cls` (itself included, as "") that have a field `key`."""
    found = [section] if key in {f.name for f in dataclasses.fields(cls)} else []
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            found += _sections_with(type(default), key, f"{section}{f.name}.")
    return found


FLAG_ONLY = {"size": "a frame size is video's width and height"}  # flags that are no one key of a file: how it is given


def meant_key(key: Any, names: list[str] | set[str], section: str = "") -> str:
    """What an unknown key of a file (among `names`, of `section`, "tune." or "" for the top) may have
    meant: a flag's name, said as the file writes it (`tune_steps` is `tune: {steps: ...}`), or a
    misspelling of one of `names` (" (did you mean 'threshold'?)"); else ""."""
    if not isinstance(key, str):
        return ""
    if key in FLAG_ONLY:
        return f" ({FLAG_ONLY[key]})"
    home, attr = OPTIONS.get(key, (None, None))
    if home is not None and f"{home}." != section and attr != key:
        return f" (--{key.replace('_', '-')} is {home}: {{{attr}: ...}} in a file)"
    return misspelt(key, names)


def not_one_of(value: Any, valid: Iterable[str], aliases: dict[str, str] | None = None) -> str:
    """`value`, a name that is none of `valid`, said with them and the one it may misspell, or mean by another
    name (`aliases`): "'nulltext' is not one of null-text, fast, direct, negative-prompt (did you mean
    'null-text'?)"."""
    valid = [str(v) for v in valid]
    known = (aliases or {}).get(value.strip().lower()) if isinstance(value, str) else None
    meant = f" (did you mean {known!r}?)" if known else misspelt(value, valid)
    return f"{shown(value)} is not one of {', '.join(valid)}{meant}"


# other names of a choice, said in a refusal: prompt-to-prompt's for the word swap (AttentionReplace), the
# dtypes' for a tuning's mixed precision
_ALIASES: dict[type, dict[str, str]] = {EditMode: {"replace": "swap", "word-swap": "swap", "word_swap": "swap"}}
_PRECISIONS = {"float16": "fp16", "half": "fp16", "bfloat16": "bf16", "float32": "no", "fp32": "no"}


def not_a_member(value: Any, kind: type[enum.Enum]) -> str:
    """`not_one_of` for a choice of `kind`'s values (and the other names it may be given by)."""
    return not_one_of(value, (m.value for m in kind), _ALIASES.get(kind))


def misspelt(given: Any, names: Iterable[str]) -> str:
    """The words ` (did you mean 'threshold'?)` where `given` is text near one of `names` (a misspelling), else ""."""
    near = difflib.get_close_matches(given, sorted(names), n=1) if isinstance(given, str) else []
    return f" (did you mean {near[0]!r}?)" if near else ""


def _unknown_key(key: Any, section: str, names: list[str], root: type) -> str:
    """An unknown key's message; a key that belongs to another section (`steps:` written at the top for
    `inversion: {steps: ...}`) is told where it goes."""
    here = f" under '{section[:-1]}'" if section else ""
    homes = [h[:-1] for h in _sections_with(root, key) if h and h != section] if isinstance(key, str) else []
    if not homes:
        return f"Unknown key {key!r}{here}{meant_key(key, names, section)}; valid keys{here} are: {', '.join(names)}."
    flag = OPTIONS.get(key, (None, None))[0]  # the flag's own section first: `blend` is the edit's, not the window's
    homes.sort(key=lambda h: h != flag)
    goes = " or ".join(repr(h) for h in homes)
    also = f"; {FLAG_ONLY[key]}" if key in FLAG_ONLY else ""  # `size`: a window's, or the frames'
    return (
        f"Unknown key {key!r}{here}; it goes under {goes} (e.g. {homes[0]}: {{{key}: ...}}{also}). "
        f"Valid keys{here or ' at the top'} are: {', '.join(names)}."
    )


class Preset(enum.StrEnum):
    OFFICIAL = "official"  # the authors' settings
    QUICK = "quick"  # fewer, smaller tuning steps kept in memory, fast inversion; docs/speed.md


PRESETS: dict[Preset, dict[str, Any]] = {  # flat options each preset sets; a config file and flags override them
    Preset.OFFICIAL: {},
    Preset.QUICK: {
        "tune_steps": 200,
        "tune_frames": 4,
        "tune_checkpointing": False,  # 4 frames a step keep every activation within the official run's memory
        "inversion": "fast",
    },
}
LIGHTER: dict[str, int] = {  # flat options that need less memory, said when a run runs out (docs/benchmarks.md)
    "tune_frames": 4,
    "null_text_frames": 4,
    "attention_slicing": 1024,
    "window": 8,
}
PRESET_MARGINS: dict[Preset, str] = {  # what a preset costs against the official settings, as measured (docs/speed.md)
    Preset.QUICK: (
        "on the bundled model's 30-case evaluation suite: as it runs (fast mode) success 0.70, colour swaps 5 of 6, "
        "reconstruction 35.2 dB, background 41.4 dB, within case-to-case noise of the official fast mode (success "
        "0.77, colour swaps 6 of 6, reconstruction 35.0 dB, background 41.2 dB) and below official Video-P2P "
        "(success 0.80, colour swaps 6 of 6, reconstruction 39.8 dB, background 42.1 dB); with --inversion "
        "null-text success 0.77, colour swaps 5 of 6, reconstruction 39.8 dB, background 42.3 dB, within noise of "
        "official Video-P2P; first edit 4.2x (fast) and 3.2x (null-text) faster than the authors' code at the full "
        "budget on a CPU, each side's tuning step timed alone (docs/speed.md)"
    ),
}


OPTIONS: dict[str, tuple[str | None, str]] = {  # flat option (CLI flag, UI field) -> (RunConfig section, field)
    "model": (None, "model"),
    "model_config": (None, "model_config"),
    "vae": (None, "vae"),
    "lora": (None, "lora"),
    "embedding": (None, "embeddings"),
    "out": (None, "out"),
    "save_tuned": (None, "save_tuned"),
    "device": (None, "device"),
    "dtype": (None, "dtype"),
    "workspace": (None, "workspace"),
    "attention_slicing": (None, "attention_slicing"),
    "frame_attention": (None, "frame_attention"),
    "group_norm": (None, "group_norm"),
    "composite": (None, "composite"),
    "png_frames": (None, "png_frames"),
    "window": ("window", "size"),
    "overlap": ("window", "overlap"),
    "anchors": ("window", "anchors"),
    "window_blend": ("window", "blend"),
    "video": ("video", "path"),
    "frames": ("video", "frames"),
    "start": ("video", "start"),
    "stride": ("video", "stride"),
    "fps": ("video", "fps"),
    "width": ("video", "width"),
    "height": ("video", "height"),
    "resize": ("video", "resize"),
    "tune_steps": ("tune", "steps"),
    "tune_frames": ("tune", "frames"),
    "tune_checkpointing": ("tune", "gradient_checkpointing"),
    "lr": ("tune", "lr"),
    "seed": ("tune", "seed"),
    "steps": ("inversion", "steps"),
    "inversion": ("inversion", "method"),
    "null_text_frames": ("inversion", "frames"),
    "guidance": ("edit", "guidance"),
    "mode": ("edit", "mode"),
    "cross_replace": ("edit", "cross_replace"),
    "self_replace": ("edit", "self_replace"),
    "threshold": ("edit", "threshold"),
    "mask_norm": ("edit", "mask_norm"),
    "frame_attention_control": ("edit", "control_frame_attention"),
    "blend": ("edit", "blend"),
    "subtract": ("edit", "subtract"),
    "reweight": ("edit", "reweight"),
    "cross_replace_word": ("edit", "cross_replace_words"),
}


def apply_options(cfg: RunConfig, options: dict[str, Any]) -> RunConfig:
    """Set flat options (CLI flags, UI fields) on `cfg`; None leaves a setting as it is.

    A given `guidance` is the edit's and the null-text inversion's. ConfigError names the option.
    """
    for name, value in options.items():
        if name not in OPTIONS:
            raise ConfigError(f"Unknown option {name!r}; valid options are: {', '.join(sorted(OPTIONS))}.")
        if value is None:
            continue
        section, attr = OPTIONS[name]
        obj = cfg if section is None else getattr(cfg, section)
        try:
            setattr(obj, attr, _coerce(type(obj), attr, value))
        except SettingError as e:
            raise OptionError(name, e.reason) from None
    if options.get("guidance") is not None:
        cfg.inversion.guidance = cfg.edit.guidance
    return cfg


def named_preset(data: Any, where: str = "") -> Preset | None:
    """The preset a config file's (a batch job's, `run`'s) dict names by its `preset:` key; None when it
    names none. ConfigError for a name that is not a preset's."""
    if not isinstance(data, dict) or data.get("preset") is None:
        return None
    try:
        return as_preset(data["preset"])
    except OptionError as e:
        raise ConfigError(f"{where}preset {e.reason}") from None


def files_preset(files: list[ConfigFile]) -> Preset | None:
    """The preset the first of the config `files` that names one names (`named_preset`, its path in the
    message of a bad name); None when none does."""
    return next((p for f in files if (p := named_preset(f.data, f"{f.path}: ")) is not None), None)


def fill_run(data: dict, where: str = "", base: RunConfig | None = None) -> RunConfig:
    """A RunConfig from a config file's (or a batch job's, or `run`'s) dict over `base`. The null-text
    inversion is fitted to the guidance the edit samples with, so an edit guidance given without an
    inversion one is both; two that differ are refused by `validate`.

    `preset: quick` starts from that preset's settings (`preset_config`) when no `base` is given; a `base`
    given is where the caller has started already (the CLI's `--preset`, a batch job's own preset)."""
    preset = named_preset(data, where)
    if isinstance(data, dict) and "preset" in data:
        data = {k: v for k, v in data.items() if k != "preset"}
    if base is None and preset is not None:
        base = preset_config(preset)
    cfg = fill(RunConfig, data, where, base)
    if "guidance" in (data.get("edit") or {}) and "guidance" not in (data.get("inversion") or {}):
        cfg.inversion.guidance = cfg.edit.guidance
    return cfg


def parse_reweight(items: list[str]) -> dict[str, float]:
    """`["origami=2", "snow=0.5"]` -> {"origami": 2.0, "snow": 0.5}."""
    return _word_numbers(items, "WORD=FACTOR, e.g. origami=2", "reweighted")


def parse_word_windows(items: list[str]) -> dict[str, float]:
    """`["lion=0.4"]` -> {"lion": 0.4}: a target word's own cross-attention window, the fraction of the steps its
    maps are the source's (prompt-to-prompt's `cross_replace_steps={"default_": 0.8, "lion": 0.4}`; ranges are
    checked with the config)."""
    return _word_numbers(items, "WORD=FRACTION, e.g. lion=0.4", "given")


def _word_numbers(items: list[str], form: str, done: str) -> dict[str, float]:
    """WORD=NUMBER `items` as {word: number}; a ConfigError says the `form` (or that a word is `done` twice)."""
    out = {}
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"{shown(item)} must be {form}.")
        word, sep, value = item.strip().rpartition("=")
        try:
            if not sep or not word.strip():
                raise ValueError
            number = float(value)
        except ValueError:
            raise ConfigError(f"{item.strip()!r} must be {form}.") from None
        if word.strip() in out:
            raise ConfigError(f"{word.strip()!r} is {done} twice; give each word once.")
        out[word.strip()] = number
    return out


def _given_backwards(item: str, sep: str, after: str) -> bool:
    """Whether a flag's `FILE=VALUE` item was written the other way round: what follows its last `=` (`after`)
    is a file, and no file has the whole item's name."""
    return bool(sep) and Path(after.strip()).expanduser().is_file() and not Path(item.strip()).expanduser().exists()


def parse_lora(items: list[str]) -> dict[str, LoraScale]:
    """`["style.safetensors", "detail.safetensors=0.5", "face.safetensors=0.8,0.4"]` -> {"style.safetensors": 1.0,
    "detail.safetensors": 0.5, "face.safetensors": (0.8, 0.4)}: FILE, FILE=SCALE or FILE=UNET,TEXT, the UNet's and
    the text encoder's scales (1 where none is given, or where what follows `=` is no number: part of the name)."""
    out: dict[str, LoraScale] = {}
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise SettingError("lora", f"{shown(item)} must be FILE or FILE=SCALE, e.g. style.safetensors=0.8.")
        path, sep, value = item.strip().rpartition("=")
        try:
            numbers = tuple(float(v) for v in value.split(",")) if sep and path.strip() else ()
        except ValueError:
            numbers = ()
        scale = numbers[0] if len(numbers) == 1 else numbers if len(numbers) == 2 else None
        if scale is None and _given_backwards(item, sep, value):  # 0.8=style.safetensors, where that file is there
            raise SettingError(
                "lora", f"{item!r} gives the scale first; give the file first, {value.strip()}={path.strip()}."
            )
        path = path.strip() if scale is not None else item.strip()
        if path in out:
            raise SettingError("lora", f"{path!r} is given twice; give each file once.")
        out[path] = 1.0 if scale is None else scale
    return out


def lora_part_scales(scale: LoraScale) -> tuple[float, float]:
    """(the UNet's, the text encoder's) scale of a LoRA's `scale`: one number for both, or the pair (ComfyUI's
    model and clip strengths)."""
    return (scale, scale) if isinstance(scale, int | float) else (scale[0], scale[1])


def lora_scale_text(scale: LoraScale) -> str:
    """A LoRA's scale as the logs and the UI say it: "0.8", or "0.8 (text encoder 0.4)" where the parts differ."""
    unet, text = lora_part_scales(scale)
    return f"{unet:g}" if unet == text else f"{unet:g} (text encoder {text:g})"


def parse_embeddings(items: list[str]) -> dict[str, str | None]:
    """`["style.pt", "learned_embeds.bin=<cat-toy>"]` -> {"style.pt": None, "learned_embeds.bin": "<cat-toy>"}:
    FILE or FILE=TOKEN (None: the token the file names, else the file's name; what follows `=` is part of
    the name where it holds a path separator or a dot, or is a link's query value, `?download=true`)."""
    out: dict[str, str | None] = {}
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise SettingError("embeddings", f"{shown(item)} must be FILE or FILE=TOKEN, e.g. style.pt=<my-style>.")
        path, sep, token = item.strip().rpartition("=")
        in_query = "?" in path and "=" not in re.split(r"[?&]", path)[-1]  # a link's `?download=true`
        named = sep and path.strip() and token.strip() and not any(c in token for c in "/\\.") and not in_query
        if not named and _given_backwards(item, sep, token):  # <cat>=style.pt, where style.pt is there
            raise SettingError(
                "embeddings", f"{item!r} gives the token first; give the file first, {token.strip()}={path.strip()}."
            )
        path, token = (path.strip(), token.strip()) if named else (item.strip(), None)
        if path in out:
            raise SettingError("embeddings", f"{path!r} is given twice; give each file once.")
        out[path] = token
    return out


YAML_BOOL = "tag:yaml.org,2002:bool"


class YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader reading plain scalars as YAML 1.2 does: `3e-5` and `1e12` are floats (as
    OmegaConf, the authors' reader, has them too), where YAML 1.1 reads them as text; only true and
    false are booleans, where YAML 1.1 also turns `off`, `no`, `on` and `yes` into them (so that
    `composite: off` was False, not "off")."""

    yaml_implicit_resolvers = {  # SafeLoader's, less its booleans (copies: SafeLoader keeps its own)
        first: [(tag, rx) for tag, rx in resolvers if tag != YAML_BOOL]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        """A mapping whose keys are unique, as YAML 1.2 requires: PyYAML keeps the last of a repeated
        key without a word, so `tune: {lr: 1e-4}` written twice ran with the second. Keys merged in
        with `<<` may still be overridden."""
        first: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in first:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice (first at line {first[key]})", key_node.start_mark
                )
            first[key] = line
        return super().construct_mapping(node, deep)


YamlLoader.add_implicit_resolver(YAML_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
YamlLoader.add_implicit_resolver(  # YAML 1.2's float, and 1.1's infinities and NaN
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+"
        r"|\.[0-9_]+(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


# The encodings YAML 1.2 allows besides UTF-8 (section 5.2), told by their byte order mark; UTF-32's first, as
# UTF-32 LE's mark begins with UTF-16 LE's. Windows PowerShell 5's `>` writes UTF-16 LE with its mark.
_YAML_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def yaml_text(data: bytes) -> str:
    """A YAML file's bytes as text: UTF-16 or UTF-32 where a byte order mark says so, else UTF-8 (a UTF-8 mark
    is read by YAML itself); a UnicodeDecodeError where they are not that encoding."""
    encoding = next((name for bom, name in _YAML_BOMS if data.startswith(bom)), "utf-8")
    return data.decode(encoding)


def load_yaml(path: str | os.PathLike) -> dict:
    if not isinstance(path, str | os.PathLike):  # a dict of settings is a RunConfig's (`VideoP2P.run` takes one)
        raise ConfigError(f"A config file is a path to a YAML file, got {type(path).__name__}.")
    if link := link_reason(path, LOCAL_COPY):
        raise ConfigError(f"Config file {link}")
    try:
        data = yaml.load(yaml_text(Path(path).read_bytes()), YamlLoader) or {}
    except FileNotFoundError:
        raise ConfigError(f"Config file {str(path)!r} does not exist.") from None
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"Config file {path} is not text ({e.encoding} cannot read it); give a YAML file (UTF-8, or UTF-16 or "
            "UTF-32 with a byte order mark)."
        ) from None
    except OSError as e:  # a folder, or no permission to read it
        raise ConfigError(f"Config file {path} cannot be read ({e.strerror}); give a YAML file.") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"Config file {path} is not valid YAML{at}: {what}.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"Config file {path} must hold a mapping, got {type(data).__name__}.")
    return data


# Keys of the official configs that change nothing here (logging, validation, hardware switches). Their
# `checkpointing_steps` / `resume_from_checkpoint` are ours already: tuning keeps its state every
# `TuneConfig.save_seconds` and resumes from it by itself (their configs' 1000 steps would keep none).
_OFFICIAL_IGNORED = {
    "validation_data",
    "validation_steps",
    "checkpointing_steps",
    "use_8bit_adam",
    "enable_xformers_memory_efficient_attention",
    "save_name",
    "resume_from_checkpoint",
    "lr_warmup_steps",  # read by their "constant" schedule not at all
    "checkpoints_total_limit",
}
# Optimiser keys of the official tuning script that the tuning here always has at the script's defaults
# (torch's AdamW defaults are the same): another value is refused, not silently trained without.
_OFFICIAL_FIXED = {
    "train_batch_size": 1,
    "gradient_accumulation_steps": 1,
    "scale_lr": False,
    "lr_scheduler": "constant",
    "adam_beta1": 0.9,
    "adam_beta2": 0.999,
    "adam_weight_decay": 1e-2,
    "adam_epsilon": 1e-8,
}
_OFFICIAL_TUNE = {
    "pretrained_model_path",
    "output_dir",
    "train_data",
    "learning_rate",
    "max_train_steps",
    "trainable_modules",
    "seed",
    "mixed_precision",
    "gradient_checkpointing",
    "max_grad_norm",
    *_OFFICIAL_FIXED,
}
_OFFICIAL_P2P = {
    "pretrained_model_path",
    "image_path",
    "prompt",
    "prompts",
    "blend_word",
    "eq_params",
    "is_word_swap",
    "cross_replace_steps",
    "self_replace_steps",
    "fast",
    "video_len",  # arguments of their run_videop2p.py's `main`, which the config fills
    "mixed_precision",
}
_OFFICIAL_EDIT_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}  # run_videop2p.py's weight_dtype
_OFFICIAL_TRAIN_DATA = {
    "video_path",
    "prompt",
    "n_sample_frames",
    "width",
    "height",
    "sample_start_idx",
    "sample_frame_rate",
}
_OFFICIAL_TRAINABLE = {"attn1.to_q", "attn2.to_q", "attn_temp"}


def is_official(data: dict) -> bool:
    return any(k in data for k in ("pretrained_model_path", "train_data", "blend_word", "is_word_swap", "image_path"))


class ConfigKind(enum.StrEnum):
    """What a config file holds: ours, or one of the authors' pair (decided once, by `read_config_files`)."""

    OURS = "videop2p"
    TUNE = "official tune"  # their run_tuning.py's: `train_data`
    P2P = "official p2p"  # their run_videop2p.py's: prompts, blend words or the swap switch
    OFFICIAL = "official"  # of their keys, but neither of the two


@dataclass(frozen=True)
class ConfigFile:
    """A config file as read once: its path, its YAML mapping and what it holds."""

    path: str | os.PathLike
    data: dict
    kind: ConfigKind


def config_kind(data: dict) -> ConfigKind:
    """The kind of a config file's mapping."""
    if not is_official(data):
        return ConfigKind.OURS
    if "train_data" in data:
        return ConfigKind.TUNE
    if any(k in data for k in ("prompts", "blend_word", "is_word_swap")):
        return ConfigKind.P2P
    return ConfigKind.OFFICIAL


def read_config_files(paths: list[str | os.PathLike | ConfigFile]) -> list[ConfigFile]:
    """Each config file read (ConfigError: missing, unreadable, not YAML, not a mapping) with its kind;
    files read already are kept as they are."""
    return [p if isinstance(p, ConfigFile) else ConfigFile(p, data := load_yaml(p), config_kind(data)) for p in paths]


def missing_tuned_model(
    files: list[ConfigFile], model: str | None, here: str | os.PathLike | None = None
) -> tuple[str | os.PathLike, str] | None:
    """The official p2p config among `files` (its tune config not beside it) and `model`, when `model` is
    that config's `pretrained_model_path` (the folder their tuning writes, a tune config's `output_dir`),
    names nothing from `here` (default: the current folder) and is not of a hub id's form; None otherwise."""
    if not isinstance(model, str) or any(f.kind is ConfigKind.TUNE for f in files):
        return None
    p2p = next((f for f in files if f.kind is not ConfigKind.OURS and "pretrained_model_path" in f.data), None)
    if p2p is None or model != p2p.data["pretrained_model_path"]:
        return None
    given = Path(model).expanduser()
    if (given if here is None else Path(here) / given).exists():
        return None
    return None if is_hub_id(model) else (p2p.path, model)


def is_hub_id(name: str) -> bool:
    """Whether `name` has the form of a Hugging Face hub repository id (huggingface_hub's own rule)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


class HubFile(NamedTuple):
    """A file of a Hugging Face hub repository, as a LoRA, embedding, VAE or model may be given (`hub_file_id`)."""

    repo: str  # owner/name
    file: str | None  # its path in the repository; None: the repository's own file, found as it is read
    revision: str | None = None  # a branch, tag or commit; None: main


HUB_URLS = ("https://huggingface.co/", "https://hf.co/")  # a file's page or download link starts so


def hub_file_id(value: Any, suffixes: tuple[str, ...]) -> HubFile | None:
    """The hub file `value` has the form of: `owner/name` (the repository's file, found as it is read),
    `owner/name/PATH` with PATH ending in one of `suffixes`, either at a revision as huggingface_hub's file
    system writes one (`owner/name@REVISION`, `owner/name@REVISION/PATH`), or a link on the hub: a file's
    (`https://huggingface.co/owner/name/blob/REVISION/PATH`, or `resolve/`, as diffusers' `from_single_file`
    takes one) or the repository's page (`https://huggingface.co/owner/name`, at a revision
    `.../tree/REVISION`); None for any other form. A revision with a slash is written %2F in it (`refs%2Fpr%2F1`);
    `main` is None. A local path of the same name comes first: the caller asks for it."""
    text = value.strip() if isinstance(value, str) else ""
    revision = None
    url = next((prefix for prefix in HUB_URLS if text.startswith(prefix)), None)
    if url is not None:
        parts = text.removeprefix(url).split("?")[0].split("/")
        if len(parts) >= 5 and parts[2] in ("blob", "resolve"):
            parts, revision = parts[:2] + parts[4:], parts[3]
        elif len(parts) in (4, 5) and parts[2] == "tree" and parts[3] and parts[4:] in ([], [""]):
            parts, revision = parts[:2], parts[3]
        elif len(parts) == 3 and parts[2] == "":  # the page's link with a closing slash
            parts = parts[:2]
        text = "/".join(parts)
    elif "@" in text.partition("/")[2].partition("/")[0]:  # owner/name@REVISION[/PATH]
        owner, _, rest = text.partition("/")
        name_at, _, path = rest.partition("/")
        name, _, revision = name_at.partition("@")
        if not revision:
            return None
        text = "/".join([owner, name, *([path] if path else [])])
    parts = text.split("/")
    if len(parts) < 2 or "" in parts or ".." in parts or text.startswith((".", "~")):
        return None
    repo, file = "/".join(parts[:2]), "/".join(parts[2:])
    if not is_hub_id(repo) or text.lower().endswith(suffixes) != bool(file):
        return None  # `owner/style.safetensors` is a local file's path
    revision = unquote(revision) if revision else None
    return HubFile(repo, file or None, None if revision == "main" else revision)


def hub_file_of(value: Any, suffixes: tuple[str, ...]) -> HubFile | None:
    """The hub file `value` names (`hub_file_id`) where no local path has its name (a local path comes first)."""
    if not isinstance(value, str | os.PathLike) or os.path.exists(os.path.expanduser(value)):
        return None
    return hub_file_id(str(value), suffixes)


def hub_repository(value: Any) -> HubFile | None:
    """The hub repository `value` names, with its revision (its file None): `owner/name`, `owner/name@REVISION`
    or a link to its page (`https://huggingface.co/owner/name`, `.../tree/REVISION`); None for any other form."""
    return hub_file_id(value, ())


def hub_name(repo: HubFile) -> str:
    """How a hub repository or file is named in messages and a model's name: `owner/name[@REVISION][/PATH]`."""
    at = f"@{repo.revision}" if repo.revision else ""
    return f"{repo.repo}{at}" + (f"/{repo.file}" if repo.file else "")


def hub_download_command(repo: HubFile) -> str:
    """The `hf download` command that puts `repo` (its file, at its revision) in the Hugging Face cache."""
    return " ".join(["hf download", repo.repo, *([repo.file] if repo.file else [])]) + (
        f" --revision {repo.revision}" if repo.revision else ""
    )


def missing_tuned_model_message(missing: tuple[str | os.PathLike, str], both: str, other: str) -> str:
    """What to say of `missing_tuned_model`'s folder: how it is made here; `both` says how to give the
    tune config with the p2p config, `other` how to name another model."""
    p2p, model = missing
    return (
        f"pretrained_model_path {model!r} of {p2p} does not exist: it is the model their tuning writes; make it "
        f"first with `videop2p tune --config TUNE.yaml` (their tune config, whose output_dir it is), {both}, or "
        f"give {other}."
    )


def tune_config_alone(files: list[ConfigFile]) -> str | os.PathLike | None:
    """The official tune config among `files` when no official p2p config is beside it (it holds no edit:
    its validation prompts are their tuning's samples); None otherwise."""
    official = [f for f in files if f.kind is not ConfigKind.OURS]
    if not official or any(f.kind is not ConfigKind.TUNE for f in official):
        return None
    return official[0].path


def _check_keys(data: dict, allowed: set[str], where: str) -> None:
    for key in data:
        if key not in allowed and key not in _OFFICIAL_IGNORED:
            raise ConfigError(
                f"Unknown key {where}{key!r} in an official Video-P2P config; known keys: {', '.join(sorted(allowed))}."
            )


def _mapping(value: Any, key: str, sep: str = ": ") -> dict:
    """`value`, a mapping of settings, or a ConfigError naming `key` (followed by `sep`: an authors' file's key by
    a space, as `_named_by_file` names ours)."""
    if not isinstance(value, dict):
        raise ConfigError(f"{key}{sep}{shown(value)} is not valid; expected a mapping of its settings.")
    return value


def _list(value: Any, key: str) -> list:
    if not isinstance(value, list):
        raise ConfigError(f"{key} {shown(value)} is not valid; expected a list.")
    return value


def _official_number(value: Any, key: str) -> float:
    """A number of the official configs (text as well: a caller may have read them as YAML 1.1 does)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} {shown(value)} is not valid; expected a number.") from None


def from_official(
    tune: dict | None,
    p2p: dict | None,
    base: RunConfig | None = None,
    paths: tuple[str | os.PathLike | None, str | os.PathLike | None] = (None, None),
) -> RunConfig:
    """Translate the official tune and p2p YAMLs (either or both) into a RunConfig, over a copy of `base`;
    `paths`: the files they were read from, which name an error in them."""
    cfg = RunConfig() if base is None else copy.deepcopy(base)
    if tune:
        with _named_by_file(paths[0], tune, ConfigKind.TUNE):
            _read_official_tune(cfg, tune)
    if p2p:
        with _named_by_file(paths[1], p2p, ConfigKind.P2P):
            _read_official_p2p(cfg, p2p, tune)
    cfg.out = _official_results(tune, p2p, cfg.out)
    return cfg


def _read_official_tune(cfg: RunConfig, tune: dict) -> None:
    """Their run_tuning.py's config into `cfg`: the clip, its prompt, the tuning and where it is written."""
    _check_keys(tune, _OFFICIAL_TUNE, "")
    td = _mapping(tune.get("train_data", {}) or {}, "train_data", " ")
    _check_keys(td, _OFFICIAL_TRAIN_DATA, "train_data.")
    mods = {str(m) for m in _list(tune.get("trainable_modules", sorted(_OFFICIAL_TRAINABLE)), "trainable_modules")}
    if mods != _OFFICIAL_TRAINABLE:
        raise ConfigError(
            f"trainable_modules {sorted(mods)} differ from the supported set {sorted(_OFFICIAL_TRAINABLE)}."
        )
    cfg.video.path = td.get("video_path", cfg.video.path)
    cfg.source = prompt_text(td.get("prompt", cfg.source))
    cfg.video.frames = td.get("n_sample_frames", cfg.video.frames)
    cfg.video.width = td.get("width", cfg.video.width)
    cfg.video.height = td.get("height", cfg.video.height)
    cfg.video.start = td.get("sample_start_idx", cfg.video.start)
    cfg.video.stride = td.get("sample_frame_rate", cfg.video.stride)
    lr = tune.get("learning_rate", cfg.tune.lr)
    cfg.tune.lr = _official_number(lr, "learning_rate")
    cfg.tune.steps = tune.get("max_train_steps", cfg.tune.steps)
    # their `main` takes None for both: no seed (here, the default one), no mixed precision
    cfg.tune.seed = cfg.tune.seed if tune.get("seed") is None else tune["seed"]
    cfg.tune.mixed_precision = tune.get("mixed_precision", cfg.tune.mixed_precision) or "no"
    cfg.tune.gradient_checkpointing = tune.get("gradient_checkpointing", cfg.tune.gradient_checkpointing)
    if "max_grad_norm" in tune:
        cfg.tune.max_grad_norm = _official_number(tune["max_grad_norm"], "max_grad_norm")
    for key, value in _OFFICIAL_FIXED.items():
        given = tune.get(key, value)
        same = given == value if isinstance(value, str | bool) else _official_number(given, key) == value
        if not same:
            raise ConfigError(
                f"{key} {given!r} is not supported; the tuning here uses {shown(value)} (the official default)."
            )
    cfg.model = tune.get("pretrained_model_path", cfg.model)
    if "output_dir" in tune:  # where their run_tuning.py writes the tuned model, which their p2p config loads
        cfg.save_tuned = tune["output_dir"]


def _read_official_p2p(cfg: RunConfig, p2p: dict, tune: dict | None) -> None:
    """Their run_videop2p.py's config into `cfg` (read after `tune`, their tune config, when given): the
    prompts, the edit, the inversion mode, the frames and precision, the model."""
    _check_keys(p2p, _OFFICIAL_P2P, "")
    prompt = prompt_text(p2p.get("prompt"))
    if tune and prompt and cfg.source and prompt != cfg.source:
        raise ConfigError(f"prompt {p2p['prompt']!r} of the p2p config contradicts train_data.prompt {cfg.source!r}.")
    cfg.source = cfg.source if prompt is None else prompt
    prompts = [prompt_text(p) for p in _list(p2p.get("prompts", []), "prompts")]
    if prompts:
        if prompts[0] != cfg.source:
            raise ConfigError(
                f"prompts[0] {prompts[0]!r} must equal prompt {cfg.source!r} (the official source-first convention)."
            )
        cfg.targets = prompts[1:]
    image, tuned = p2p.get("image_path"), cfg.video.path if tune else None
    if _other_paths(image, tuned):
        raise ConfigError(
            f"image_path {image!r} of the p2p config contradicts train_data.video_path {tuned!r}: "
            "here the clip tuned on is the clip edited; give one."
        )
    cfg.video.path = cfg.video.path or p2p.get("image_path", "")
    _read_official_edit(cfg.edit, p2p)
    if p2p.get("fast"):
        cfg.inversion.method = InversionMethod.FAST
    if "video_len" in p2p:  # the frames their editing reads; here one selection is tuned and edited
        train = (tune or {}).get("train_data") or {}
        if "n_sample_frames" in train and train["n_sample_frames"] != p2p["video_len"]:
            raise ConfigError(
                f"video_len {p2p['video_len']!r} of the p2p config differs from train_data.n_sample_frames "
                f"{train['n_sample_frames']!r}: here the frames tuned on are the frames edited; give one number."
            )
        cfg.video.frames = p2p["video_len"]
    if "mixed_precision" in p2p:  # their editing casts the whole model to it
        precision = p2p["mixed_precision"]
        if not isinstance(precision, str) or precision not in _OFFICIAL_EDIT_DTYPES:
            raise ConfigError(
                f"mixed_precision {precision!r} of the p2p config is not one of {', '.join(_OFFICIAL_EDIT_DTYPES)}."
            )
        cfg.dtype = _OFFICIAL_EDIT_DTYPES[precision]
    if not tune and p2p.get("pretrained_model_path"):
        cfg.model = p2p["pretrained_model_path"]


def _read_official_edit(edit: EditConfig, p2p: dict) -> None:
    """The edit of their p2p config into `edit`: blend words, reweighting (`eq_params`), swap or
    refinement, and the two replacement windows (prompt-to-prompt's per-word mapping too)."""
    if "blend_word" in p2p and p2p["blend_word"]:
        bw = _list(p2p["blend_word"], "blend_word")
        if len(bw) != 2:
            raise ConfigError(f"blend_word needs two words, got {bw!r}.")
        edit.blend = (bw[0], bw[1])
    eq = p2p.get("eq_params")
    if eq:
        eq = _mapping(eq, "eq_params", " ")
        words = _list(eq.get("words", []), "eq_params.words")
        values = _list(eq.get("values", []), "eq_params.values")
        if len(words) != len(values):
            raise ConfigError(f"eq_params has {len(words)} words but {len(values)} values.")
        if len(set(words)) != len(words):
            raise ConfigError(f"eq_params.words {words!r} names a word twice; give each word once.")
        edit.reweight = {w: _official_number(v, "eq_params.values") for w, v in zip(words, values, strict=True)}
    if "is_word_swap" in p2p:
        _bool_ok(None, "is_word_swap", p2p["is_word_swap"])
        edit.mode = EditMode.SWAP if p2p["is_word_swap"] else EditMode.REFINE
    if "cross_replace_steps" in p2p:
        v = p2p["cross_replace_steps"]
        # A per-word mapping is prompt-to-prompt's (`get_time_words_attention_alpha`): without its
        # "default_", every other word keeps the source's maps for all the steps, (0, 1).
        edit.cross_replace = v.get("default_", (0.0, 1.0)) if isinstance(v, dict) else v
        if isinstance(v, dict):
            edit.cross_replace_words = {k: x for k, x in v.items() if k != "default_"}
    if "self_replace_steps" in p2p:
        edit.self_replace = p2p["self_replace_steps"]


def _other_paths(a: Any, b: Any) -> bool:
    """Two paths given as text that name different places (`./data/rabbit` and `data/rabbit` do not)."""
    return isinstance(a, str) and isinstance(b, str) and bool(a and b) and os.path.normpath(a) != os.path.normpath(b)


def _official_results(tune: dict | None, p2p: dict | None, out: str) -> str:
    """Where the authors' scripts leave an edit: `results/` in the tuned model's folder, the p2p config's
    `pretrained_model_path`, which is the tune config's `output_dir` (`run_videop2p.py`'s
    `output_folder`). Each config pair keeps its own outputs, rather than sharing `outputs`."""
    key, home = next(
        ((k, c[k]) for c, k in ((p2p, "pretrained_model_path"), (tune, "output_dir")) if c and k in c), (None, None)
    )
    if key is None:
        return out
    if not isinstance(home, str) or not home.strip():
        raise ConfigError(f"{key} {home!r} is not a folder; give a path, such as ./outputs/rabbit-jump.")
    return str(Path(home) / "results")


def as_preset(name: Any) -> Preset:
    """The preset `name` names (OptionError: none does)."""
    try:
        return Preset(name)
    except (ValueError, TypeError):  # TypeError: a value no name can be, such as a list
        raise OptionError("preset", f"{not_one_of(name, (p.value for p in Preset))}.") from None


def preset_config(name: Preset | str = Preset.OFFICIAL, pretuned: bool = False) -> RunConfig:
    """The settings of a preset (official: the defaults); a config file and flags go on top. For a tuned
    Tune-A-Video / Video-P2P model (`pretuned`), without the preset's tuning steps: they are fewer than the 500
    an image model takes, and such a model is tuned no further unless told (`TuneConfig.resolved`)."""
    options = PRESETS[as_preset(name)]
    return apply_options(RunConfig(), {k: v for k, v in options.items() if not (pretuned and k == "tune_steps")})


def on_tuned_model(cfg: RunConfig, preset: Preset | str | None, steps_given: bool) -> RunConfig:
    """`cfg`, built over `preset`'s settings, as it runs on a tuned Tune-A-Video / Video-P2P model: with the
    tuning steps of `preset_config(preset, pretuned=True)` where the preset alone set them, not a config file, a
    flag or a job's key (`steps_given`)."""
    if preset is None or steps_given:
        return cfg
    return dataclasses.replace(cfg, tune=dataclasses.replace(cfg.tune, steps=preset_config(preset, True).tune.steps))


def load_config(
    paths: str | os.PathLike | ConfigFile | list[str | os.PathLike | ConfigFile],
    base: RunConfig | None = None,
    here: str | os.PathLike | None = None,
) -> RunConfig:
    """Read one of our YAMLs, or an official tune and/or p2p YAML pair, over `base` (default: the defaults);
    `paths` is one file or a list, and may hold files `read_config_files` has read already.

    Relative paths are read from `here` (default: the current folder, as the authors' scripts read
    theirs); one that names nothing there but names something beside a config file is taken from there."""
    if isinstance(paths, dict):
        raise ConfigError("load_config reads config files; a dict of their settings goes to VideoP2P.run as it is.")
    files = read_config_files(list(paths) if isinstance(paths, list | tuple) else [paths])
    if any(f.kind is not ConfigKind.OURS for f in files):
        tunes, p2ps = ([f.data for f in files if f.kind is kind] for kind in (ConfigKind.TUNE, ConfigKind.P2P))
        if len(tunes) > 1 or len(p2ps) > 1 or len(tunes) + len(p2ps) != len(files):
            raise ConfigError("Pass at most one official tune config and one official p2p config.")
        paths = tuple(
            next((f.path for f in files if f.kind is kind), None) for kind in (ConfigKind.TUNE, ConfigKind.P2P)
        )
        cfg = from_official(next(iter(tunes), None), next(iter(p2ps), None), base, paths)
    elif len(files) != 1:
        raise ConfigError(f"Pass one videop2p config, got {len(files)}.")
    else:
        with _named_by_file(files[0].path, files[0].data, ConfigKind.OURS):
            cfg = fill_run(files[0].data, "", base)
    folders = [Path(f.path).resolve().parent for f in files]
    first = None if here is None else Path(here)
    cfg.video.path = _beside(cfg.video.path, folders, first)
    cfg.model, cfg.model_config = _beside(cfg.model, folders, first), _beside(cfg.model_config, folders, first)
    cfg.vae = _beside(cfg.vae, folders, first)
    for key in ("out", "workspace", "save_tuned"):  # folders to write, from the current folder; `~/` is home
        if isinstance(getattr(cfg, key), str) and getattr(cfg, key).startswith("~"):
            setattr(cfg, key, str(Path(getattr(cfg, key)).expanduser()))
    for key in ADAPTER_FILES:
        if isinstance(getattr(cfg, key), dict):
            paths_of = getattr(cfg, key).items()
            setattr(cfg, key, {_beside(path, folders, first): value for path, value in paths_of})
    return cfg


def _beside(value: Any, folders: list[Path], here: Path | None = None) -> Any:
    """A relative path: the path from `here` when it names something there (None: the current folder,
    the path kept as it is), else from the first of `folders` where it does; anything else as it is
    (absolute paths, hub ids, paths that name nothing, values `validate` refuses); `~/...` from the home folder,
    as a shell would read it."""
    if not isinstance(value, str) or not value.strip():
        return value
    if Path(value).expanduser().is_absolute():
        return str(Path(value).expanduser()) if value.startswith("~") else value
    given = Path(value).expanduser() if here is None else here / Path(value).expanduser()
    if os.path.exists(given):  # False for a name too long for a file too, which its check names
        return value if here is None else str(given)
    return next((str(folder / value) for folder in folders if os.path.exists(folder / value)), value)


_FLAT_NAMES = {(section, attr): name for name, (section, attr) in OPTIONS.items()}


def _where(section: str | None, attr: str) -> str:
    """The flat option name of a setting where it has one (`guidance`), else its dotted path."""
    return _FLAT_NAMES.get((section, attr), f"{section}.{attr}" if section else attr)


def check_number(
    section: str | None,
    attr: str,
    value: Any,
    low: float,
    high: float = math.inf,
    whole: bool = False,
    above: bool = False,
    cap: int | None = None,
) -> None:
    """Raise OptionError (named by the setting's flag) unless `value` is a finite (whole) number in
    [low, high], or in (low, high] when `above`, and at most `cap`, a machine's limit that the message
    names only to a value past it."""
    kind = "a whole number" if whole else "a finite number"
    bad = isinstance(value, bool) or not isinstance(value, int | float)
    bad = bad or (whole and not isinstance(value, int))
    bad = bad or (isinstance(value, float) and not math.isfinite(value)) or not low <= value <= high  # ints: any size
    past_cap = not bad and cap is not None and value > cap
    high = cap if past_cap else high
    if bad or past_cap or (above and value == low):
        span = f"{'>' if above else '>='} {_num(low)}" if high == math.inf else f"from {_num(low)} to {_num(high)}"
        raise OptionError(_where(section, attr), f"{shown(value)} is not valid; expected {kind} {span}.")


def plain_number(x: Any) -> Any:
    """A numpy scalar as Python's number (`np.int64(8)` -> 8), for `check_number`; anything else as it is."""
    return x.item() if type(x).__module__ == "numpy" and getattr(x, "ndim", None) == 0 else x


def shown(value: Any) -> str:
    """A bad value as a message quotes it, on one line: its repr; a whole number of more than 40 digits by its
    first 20 and its length; an object whose repr runs over lines or past 80 characters (an array, a tensor, a
    `Clip` given for a path) by its kind, and its shape or length. Text and paths are quoted whole, however long."""
    text = repr(value)
    if isinstance(value, str | os.PathLike) or (
        len(text) <= (40 if isinstance(value, int) else 80) and "\n" not in text
    ):
        return text
    if isinstance(value, int):
        return f"{text[:20]}... ({len(text)} digits)"
    kind, shape = a_or_an(type(value).__name__), getattr(value, "shape", None)
    if isinstance(shape, tuple):  # numpy's and torch's (torch.Size is a tuple)
        return f"{kind} of shape {tuple(shape)}"
    return f"{kind} of {len(value)} items" if isinstance(value, list | tuple | dict) else kind


def brief(value: Any) -> str:
    """A value as a result's repr shows it on one line: an array or tensor (or `Rows`, a tensor read from a file a
    row at a time) by its kind, shape and element type, `ndarray(8, 512, 512, 3) uint8`, where its repr would print
    its elements; a list or tuple of them item by item; anything else by its repr."""
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if isinstance(shape, tuple) and shape and dtype is not None:  # numpy's and torch's (torch.Size is a tuple)
        return f"{type(value).__name__}{tuple(shape)} {str(dtype).removeprefix('torch.')}"
    if isinstance(value, list | tuple) and any(getattr(v, "shape", None) for v in value):
        items = ", ".join(brief(v) for v in value)
        return f"[{items}]" if isinstance(value, list) else f"({items}{',' * (len(value) == 1)})"
    return repr(value)


def brief_repr(result: Any) -> str:
    """A dataclass's repr with its arrays and tensors by their shape (`brief`): what a notebook shows of a clip,
    an inversion or an edit, where the generated repr prints every pixel of every frame."""
    shown_fields = (f"{f.name}={brief(getattr(result, f.name))}" for f in dataclasses.fields(result) if f.repr)
    return f"{type(result).__name__}({', '.join(shown_fields)})"


def _num(bound: float) -> str:
    """A bound as people write it: whole numbers in full (2**64 - 1 too), others in short form."""
    return str(bound) if isinstance(bound, int) else f"{bound:g}"


def _text(section: str | None, attr: str, value: Any) -> None:
    """Raise OptionError unless `value` is a string (YAML reads `source: 5` as a number)."""
    if not isinstance(value, str):
        raise OptionError(_where(section, attr), f"{shown(value)} is not valid; expected text.")


def missing_weights_reason(
    path: str | os.PathLike, suffixes: tuple[str, ...], holding: str, hub: bool = False
) -> str | None:
    """What to say of a weights file `path` that is not there (no file or folder of that name, nor, with `hub`,
    a hub repository's file it names): the path and what to give, a file of `holding`; None where it is there.
    A `SettingProblem`'s reason: a config file's VAE, LoRA or embedding is named by its key."""
    if too_long := too_long_reason(path):
        return too_long
    if Path(path).expanduser().exists() or (hub and hub_file_of(path, suffixes) is not None):
        return None
    hub_form = ", or a hub repository's, owner/name or owner/name/FILE" if hub else ""
    hub_link = " (or its link on huggingface.co)" if hub else ""
    if link := link_reason(path, f"{LOCAL_COPY}{hub_form}{hub_link}"):
        return link
    return f"{str(path)!r} does not exist; give a {' or '.join(suffixes)} file of {holding}{hub_form}."


def weights_file_problem(
    path: str | os.PathLike, kind: str, suffixes: tuple[str, ...], holding: str, hub: bool = False
) -> str | None:
    """What is wrong with the `kind` file `path` (missing, a folder, empty, not one of `suffixes`) before it
    is read, naming it and what would be valid (a file of `holding`), or None. With `hub`, a hub repository's
    file (`hub_file_id`) where no local path has its name passes: it is found as it is read."""
    p = Path(path).expanduser()
    if hub and hub_file_of(path, suffixes) is not None:
        return None
    if p.is_dir():  # a trainer's output folder: the file in it is what to give
        inside = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in suffixes)
        files = f"a {' or '.join(suffixes)} file of {holding}"
        if not inside:
            return f"{kind} file {str(path)!r} is a folder, with no {' or '.join(suffixes)} file in it; give {files}."
        listed = ", ".join(repr(str(f)) for f in inside[:2]) + (
            f" and {len(inside) - 2} more" if len(inside) > 2 else ""
        )
        which = "the file in it" if len(inside) == 1 else "one of the files in it"
        return f"{kind} file {str(path)!r} is a folder; give {which}, {listed} ({files})."
    if not p.is_file():
        return f"{kind} file {missing_weights_reason(path, suffixes, holding, hub)}"
    if p.stat().st_size == 0:
        return f"{kind} file {str(path)!r} is empty (0 bytes)."
    if p.suffix.lower() not in suffixes:
        return f"{kind} file {str(path)!r} is not one of {', '.join(suffixes)}."
    return None


def _scale_ok(number: Any) -> bool:
    """Whether `number` is a LoRA scale: a finite number (not a bool) within +-LORA_SCALE_MAX."""
    is_number = isinstance(number, int | float) and not isinstance(number, bool)
    return is_number and math.isfinite(number) and abs(number) <= LORA_SCALE_MAX


def lora_scale_problem(path: str, scale: Any) -> str | None:
    """What is wrong with a LoRA file's scale (not a number or a pair of numbers, the UNet's and the text
    encoder's; not finite, beyond +-LORA_SCALE_MAX), or None."""
    numbers = list(scale) if isinstance(scale, list | tuple) and len(scale) == 2 else [scale]
    if all(_scale_ok(number) for number in numbers):
        return None
    return (
        f"LoRA scale {shown(scale)} for {path!r} is not valid; expected a finite number from {-LORA_SCALE_MAX:g} to "
        f"{LORA_SCALE_MAX:g} (1: as trained), or two, the UNet's and the text encoder's (FILE=0.8,0.4)."
    )


def check_lora_settings(lora: Any) -> None:
    """Raise OptionError unless `lora` maps file names to scales `lora_scale_problem` finds nothing wrong
    with (the files themselves are checked as the model loads, `models.lora.check_lora`)."""
    if not isinstance(lora, dict):
        raise OptionError("lora", f"{shown(lora)} is not valid; expected FILE=SCALE pairs, e.g. style.safetensors=0.8.")
    for path, scale in lora.items():
        _text(None, "lora", path)
        problem = lora_scale_problem(path, scale)
        if problem:
            raise OptionError("lora", problem)


def embedding_token_problem(path: str, token: Any) -> str | None:
    """What is wrong with the token given for an embedding file (not text, empty, more than one word, an
    embedding file's name: the two given the other way round), or None."""
    if isinstance(token, str) and token.lower().endswith(EMBEDDING_SUFFIXES):
        return (
            f"token {token!r} for {path!r} names a file; each embedding file is given first, then its token "
            f"({token}=<my-style>; in a config file, embeddings: {{{token}: <my-style>}})."
        )
    if token is None or (isinstance(token, str) and len(token.split()) == 1 and token == token.strip()):
        return None
    return (
        f"token {shown(token)} for {path!r} is not valid; expected one word without spaces, such as <my-style> (the "
        "prompt's word that stands for the embedding)."
    )


def check_embedding_settings(embeddings: Any) -> None:
    """Raise OptionError unless `embeddings` maps file names to tokens: one word each, or None for the
    file's own (the files themselves are checked as the model loads, `models.embeddings.check_embedding`)."""
    if not isinstance(embeddings, dict):
        raise OptionError(
            "embedding", f"{shown(embeddings)} is not valid; expected FILE=TOKEN pairs, e.g. style.pt=<my-style>."
        )
    for path, token in embeddings.items():
        _text(None, "embeddings", path)
        problem = embedding_token_problem(path, token)
        if problem:
            raise OptionError("embedding", problem)


def _bool_ok(section: str | None, attr: str, value: Any) -> None:
    """Raise OptionError unless `value` is true or false (YAML's "sometimes" is neither)."""
    if not isinstance(value, bool):
        raise OptionError(_where(section, attr), f"{shown(value)} is not true or false.")


def _bounds_ok(section: str, attr: str, value: Any) -> None:
    pair = value if isinstance(value, list | tuple) else (0.0, value)
    if len(pair) != 2:
        per_target = f", or {PER_TARGET_WINDOWS}" if attr in ("cross_replace", "self_replace") else ""
        given = list(value) if isinstance(value, tuple) else value
        raise OptionError(
            _where(section, attr), f"{shown(given)} is not valid; expected a fraction or [start, end]{per_target}."
        )
    for v in pair:
        check_number(section, attr, v, 0.0, 1.0)
    if pair[0] > pair[1]:
        raise OptionError(_where(section, attr), f"{shown(value)} is not valid; start must not exceed end.")


def _enum_ok(section: str | None, attr: str, value: Any, kind: type[enum.Enum]) -> None:
    try:
        kind(value)
    except ValueError:
        raise OptionError(_where(section, attr), f"{not_a_member(value, kind)}.") from None


def validate(cfg: RunConfig) -> None:
    """Check every number is finite and in range and every name is known, before any work starts.

    Raises OptionError naming the setting (its flag name where it has one), the bad value and what
    would be valid. Model-dependent checks (words, token limits, schedules, the device) come later.
    """
    v, t, e = cfg.video, cfg.tune, cfg.edit
    check_prompts(cfg.source, cfg.targets)
    _text(None, "out", cfg.out)
    for attr in ("model", "model_config", "vae", "workspace", "save_tuned"):  # None: the bundled model, ...
        if getattr(cfg, attr) is not None:
            _text(None, attr, getattr(cfg, attr))
    for attr, example in (
        ("out", "outputs/rabbit"),
        ("workspace", ".videop2p-workspace"),
        ("save_tuned", "tuned/rabbit"),
    ):
        value = getattr(cfg, attr)  # empty (an unset shell variable): not the current folder
        if value is not None and not value.strip():
            raise OptionError(attr, f"{shown(value)} is not a folder; give one, such as {example}.")
    check_lora_settings(cfg.lora)
    check_embedding_settings(cfg.embeddings)
    check_video(v)
    check_tune(t)
    check_edit(e)
    check_subtract(*(target_pairs(attr, getattr(e, attr), len(cfg.targets)) for attr in ("blend", "subtract")))
    target_thresholds(e.threshold, len(cfg.targets))
    for attr in ("cross_replace", "self_replace"):
        target_windows(getattr(e, attr), len(cfg.targets), attr)
    check_inversion(cfg.inversion)
    if cfg.inversion.guidance != e.guidance:
        raise OptionError(
            "inversion.guidance",
            f"{cfg.inversion.guidance:g} is not the edit's guidance {e.guidance:g}: null-text inversion is fitted to "
            "the guidance the edit samples with; give both the same value (--guidance, or edit.guidance alone in a "
            "config file, sets both).",
        )
    check_window(cfg.window)
    _enum_ok(None, "composite", cfg.composite, CompositeMode)
    _bool_ok(None, "png_frames", cfg.png_frames)
    check_model_settings(cfg.frame_attention, cfg.group_norm, cfg.dtype, cfg.attention_slicing, cfg.device)


def check_model_settings(
    frame_attention: Any, group_norm: Any, dtype: Any, attention_slicing: Any, device: Any
) -> None:
    """The settings a model is loaded with beside its weights (`VideoP2P.from_pretrained`'s): known frame
    attention and GroupNorm modes and dtype, a whole attention slice or None, a device's name."""
    _enum_ok(None, "frame_attention", frame_attention, FrameAttentionMode)
    _enum_ok(None, "group_norm", group_norm, GroupNormMode)
    if dtype not in DTYPES:
        raise OptionError("dtype", f"{not_one_of(dtype, DTYPES, DTYPE_ALIASES)}.")
    if attention_slicing is not None:
        check_number(None, "attention_slicing", attention_slicing, 1, whole=True, cap=COUNT_MAX)
    if not isinstance(device, str) or not device.strip():
        raise OptionError("device", f"{shown(device)} is not a device name such as cpu, cuda or cuda:1.")


def plain_path(value: Any) -> Any:
    """A path object (`pathlib.Path`, any os.PathLike) as the text settings hold; anything else as it is."""
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def plain_paths(cfg: RunConfig) -> RunConfig:
    """`cfg` with the paths a Python caller gave as `pathlib.Path` as text, as config files give them
    (the clip, the folders, the model's files, LoRA and embedding files); `cfg` itself is left as it is."""
    adapters = {
        k: {plain_path(f): v for f, v in getattr(cfg, k).items()}
        for k in ADAPTER_FILES
        if isinstance(getattr(cfg, k), dict)
    }
    folders = {
        k: plain_path(getattr(cfg, k)) for k in ("out", "model", "model_config", "vae", "workspace", "save_tuned")
    }
    video = dataclasses.replace(cfg.video, path=plain_path(cfg.video.path))
    return dataclasses.replace(cfg, video=video, **folders, **adapters)


def check_video(v: VideoConfig) -> None:
    """The clip's selection, frame rate and working size: whole numbers in range, a known resize mode
    (the clip itself is read by `VideoP2P.load_clip`, which names a missing or unreadable one)."""
    _text("video", "path", v.path)
    if v.frames == 0 and not isinstance(v.frames, bool):  # a dataclass's 0 (a file's or flag's is read as None)
        raise OptionError(
            _where("video", "frames"), "0 is not valid; expected a whole number >= 1, or None: every frame."
        )
    if v.frames is not None:
        check_number("video", "frames", v.frames, 1, whole=True, cap=COUNT_MAX)
    check_number("video", "start", v.start, 0, whole=True, cap=COUNT_MAX)
    check_number("video", "stride", v.stride, 1, whole=True, cap=COUNT_MAX)
    if v.fps is not None:
        check_number("video", "fps", v.fps, FPS_RANGE[0], FPS_RANGE[1])
    check_frame_size(v)


def check_frame_size(v: VideoConfig) -> None:
    """The working size asked for: whole sides (or None, from the aspect ratio) and a known resize mode."""
    for attr in ("width", "height"):
        if getattr(v, attr) is not None:
            check_number("video", attr, getattr(v, attr), 1, whole=True, cap=COUNT_MAX)
    _enum_ok("video", "resize", v.resize, ResizeMode)


def too_long_path(what: str, path: Any) -> str | None:
    """The message of a path too long to look up here (`too_long_reason`), naming it as `what`; None for any
    other path."""
    reason = too_long_reason(path)
    return f"{what} {reason}" if reason else None


def extra_install(extra: str) -> str:
    """The command that installs one of the package's optional extras (pyproject.toml's `ui`, `ray`, `eval`)."""
    return f"pip install 'videop2p[{extra}]'"


LOCAL_COPY = "give the path of a local copy"  # what to give for a file read here, given as a link


def unusable_path(what: str, path: Any, give: str = LOCAL_COPY) -> str | None:
    """The message of a path that names no file or folder of this machine, naming it as `what`
    (`unusable_reason`); None for any other path."""
    reason = unusable_reason(path, give)
    return f"{what} {reason}" if reason else None


def unusable_reason(path: Any, give: str = LOCAL_COPY) -> str | None:
    """What to say of a path that names no file or folder of this machine: a link (`link_reason`, which ends
    with `give`, what to give instead) or a path too long to look up (`too_long_reason`); None for any other."""
    return link_reason(path, give) or too_long_reason(path)


_LINK = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+://")  # a URL's scheme: http(s), ftp, s3, gs, file, ...


def is_link(value: Any) -> bool:
    """Whether `value` is text of a link's form, `scheme://...`, rather than a path."""
    return isinstance(value, str) and _LINK.match(value.strip()) is not None


def link_reason(path: Any, give: str) -> str | None:
    """What to say of a path given as a link (`https://...`, `s3://...`), which the file system would read as
    folders named `https:` and the host: files are read and written here by their path on this machine, so
    say it is a link and end with `give`, what to give instead (a `file://` link: its path); None for any
    other value."""
    if not is_link(path):
        return None
    parts = urlsplit(path.strip())
    if parts.scheme.lower() == "file" and parts.netloc in ("", "localhost") and parts.path:
        return f"{path!r} is a link, not a path; give its path, {unquote(parts.path)!r}."
    return f"{path!r} is a link, not a path on this machine; {give}."


def too_long_reason(path: Any) -> str | None:
    """What to say of a path too long to look up here (a part longer than a file's name may be, or the whole
    longer than a path: the system says ENAMETOOLONG rather than that it is not there), quoted by its ends where
    it is long, since the length is what is wrong; None for any other path."""
    if not isinstance(path, str | os.PathLike):  # not a path (an int would be a file descriptor): others say so
        return None
    try:
        os.stat(path)
    except OSError as e:
        if e.errno != errno.ENAMETOOLONG:
            return None
    except ValueError:  # a NUL inside: the check that reads it says so
        return None
    else:
        return None
    text = str(path)
    home = next((p for p in Path(os.path.abspath(text)).parents if os.path.isdir(p)), Path("/"))
    name_max, path_max = (
        _limit(home, name, default) for name, default in (("PC_NAME_MAX", 255), ("PC_PATH_MAX", 4096))
    )
    longest = max(len(os.fsencode(part)) for part in Path(text).parts)
    why = (
        f"a name here has at most {name_max} bytes, and a part of it has {longest}"
        if longest > name_max
        else f"a path here has at most {path_max} bytes, and it has {len(os.fsencode(text))}"
    )
    quoted = repr(text) if len(text) <= 60 else f"{text[:28]!r}…{text[-28:]!r} ({len(text)} characters)"
    return f"{quoted} names no file or folder: {why}; give a shorter one."


def _limit(folder: Path, name: str, default: int) -> int:
    """`os.pathconf`'s `name` of `folder`'s file system; `default`, the usual one, where it does not say."""
    try:
        return os.pathconf(folder, name)
    except (OSError, ValueError):
        return default


def _file_at(*paths: Path) -> Path | None:
    """The first of `paths` that is a file (or anything but a folder), else None."""
    return next((p for p in paths if p.exists() and not p.is_dir()), None)


def check_folder(what: str, path: str | os.PathLike | None, purpose: str) -> None:
    """A folder to write into is a folder or can become one: neither it nor a folder above it is a file.

    `what` names it as the user gave it (`--out`, `workspace`); `purpose` ends the message. A blank path
    (an unset shell variable) names none, not the current folder."""
    if path is None:
        return
    if not str(path).strip():
        raise ValueError(f"{what} {str(path)!r} names no folder; give one {purpose}.")
    if said := unusable_path(what, path, f"give a folder {purpose}"):
        raise ValueError(said)
    said_folder = str(path).endswith(("/", os.sep))  # `edit.mp4/`: a folder, whatever its name
    path = Path(path)
    file = _file_at(path, *path.parents)
    if file == path:
        raise ValueError(f"{what} {str(path)!r} is a file, not a folder; give a folder {purpose}.")
    if file is not None:
        raise ValueError(f"{what} {str(path)!r} lies under {str(file)!r}, a file; give a folder {purpose}.")
    if (kind := file_kind(path)) and not said_folder and not path.is_dir():  # a folder there already is one
        raise ValueError(
            f"{what} {str(path)!r} names {kind} file, not a folder; give a folder {purpose}, such as "
            f"{str(path.with_suffix(''))!r}."
        )


def file_kind(path: str | os.PathLike) -> str | None:
    """What a name's suffix says it is, "a video" or "a picture" (a clip's or a frame's suffix: `--out
    edit.mp4`, given for the edit's file, would make a folder under that name); None for another."""
    suffix = Path(path).suffix.lower()
    return "a video" if suffix in VIDEO_SUFFIXES else "a picture" if suffix in IMAGE_SUFFIXES else None


def check_file(what: str, path: str | os.PathLike | None) -> None:
    """A file to write can be written: it is not a folder and its folder is, or can become, one."""
    if path is None:
        return
    if said := unusable_path(what, path, "give a local file's path to write"):
        raise ValueError(said)
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {str(path)!r} is a folder; give a file name to write.")
    file = _file_at(*path.parents)
    if file is not None:
        raise ValueError(f"{what} {str(path)!r} lies under {str(file)!r}, a file; give a path in a folder.")


def _prompt_ok(attr: str, prompt: Any) -> None:
    """Raise OptionError unless `prompt` is text without control characters: a line break or tab inside a
    prompt is a prompt given on two lines, or two run together (a file's, flag's or form's prompt comes
    without the whitespace around it, `prompt_text`: a YAML block's closing line break is none of it)."""
    _text(None, attr, prompt)
    bad = next((ch for ch in prompt if unicodedata.category(ch) == "Cc"), None)
    if bad is not None:
        folded = "; in a YAML file, a folded block (>) joins its lines with spaces" if bad == "\n" else ""
        raise OptionError(
            attr,
            f"{prompt!r} is not valid; a prompt is one line of words separated by spaces (it holds {bad!r}{folded}).",
        )


def check_prompts(source: Any, targets: Any = ()) -> None:
    """The source prompt and the target prompts are one line of text each, a target of at least one word (a
    missing source is said by each caller its own way; the length is the model's check)."""
    _prompt_ok("source", source)
    if not isinstance(targets, list | tuple):
        raise OptionError("target", f"{shown(targets)} is not valid; expected a list of prompts.")
    for i, prompt in enumerate(targets, 1):
        _prompt_ok("target", prompt)
        if not prompt.strip():
            raise OptionError("target", f"{prompt!r} (target {i}) is empty; a prompt needs at least one word.")


def a_or_an(noun: str) -> str:
    """'a TuneConfig', 'an EditConfig', 'an ndarray' (said 'en-dee-array')."""
    return f"{'an' if noun[:1] in 'AEIOUaeiou' or noun == 'ndarray' else 'a'} {noun}"


def _config_ok(cfg: Any, kind: type) -> None:
    """A stage's settings are its own config dataclass (an API caller may pass another stage's)."""
    if not isinstance(cfg, kind):
        raise TypeError(
            f"expected {a_or_an(kind.__name__)} or a dict of its fields, got {type(cfg).__name__}"
            + (f": {repr(cfg)}" if shown(cfg) == repr(cfg) else "")  # a long or many-line repr: the kind alone
        )


def check_edit(e: EditConfig) -> None:
    """Edit mode, guidance, windows, mask settings, blend and reweighting words in range."""
    _config_ok(e, EditConfig)
    for attr in ("blend", "subtract"):
        words = getattr(e, attr)
        if words is None:
            continue
        per_target = isinstance(words, list) and _per_target(words)
        for pair in words if per_target else [words]:
            given = list(pair) if isinstance(pair, tuple) else pair
            if pair is not None and not (_is_pair(pair) and all(w.strip() for w in pair)):
                expected = "two words [source_word, target_word]" + (", or null" if per_target else "")
                raise OptionError(attr, f"{shown(given)} is not valid; expected {expected}.")
            flag = next((w for w in pair or () if w.startswith("--")), None)
            if flag is not None:  # `--blend car --out o1` reads the flag as the target word
                raise OptionError(attr, f"{shown(given)} is not valid: {flag} is a flag, not a word; give two words.")
    for attr in ("reweight", "cross_replace_words"):
        words = getattr(e, attr)
        if not isinstance(words, dict) or not all(isinstance(w, str) and w.strip() for w in words):
            raise OptionError(_where("edit", attr), f"{words!r} is not valid; expected a mapping from words.")
    _enum_ok("edit", "mode", e.mode, EditMode)
    _enum_ok("edit", "mask_norm", e.mask_norm, MaskNorm)
    check_number("edit", "guidance", e.guidance, 0.0)
    for value in e.threshold if isinstance(e.threshold, list | tuple) and e.threshold else [e.threshold]:
        check_number("edit", "threshold", value, 0.0, 1.0)
    check_number("edit", "blend_start", e.blend_start, 0.0, 1.0)
    for attr in ("decoupled", "control_frame_attention", "materialize_all"):
        _bool_ok("edit", attr, getattr(e, attr))
    for attr in ("cross_replace", "self_replace"):
        value = getattr(e, attr)
        for window in value if per_target_windows(value) else [value]:
            _bounds_ok("edit", attr, window)
    for word, bounds in e.cross_replace_words.items():
        try:
            _bounds_ok("edit", "cross_replace_words", bounds)
        except OptionError as problem:  # named with its word, as a reweighting is
            raise OptionError("cross_replace_word", f"{word}={problem.reason}") from None
    for word, factor in e.reweight.items():
        if (
            isinstance(factor, bool)
            or not isinstance(factor, int | float)
            or not math.isfinite(factor)
            or abs(factor) > REWEIGHT_MAX
        ):
            raise OptionError(
                "reweight",
                f"{word}={shown(factor)} is not valid; expected a finite factor from {-REWEIGHT_MAX:g} to {REWEIGHT_MAX:g}.",
            )
    if e.mask_side is not None:
        check_number("edit", "mask_side", e.mask_side, 1, whole=True)


def check_tune(t: TuneConfig) -> None:
    """Tuning steps, frames per step, learning rate, seed, state interval and mixed precision in range."""
    _config_ok(t, TuneConfig)
    if t.steps is not None:
        check_number("tune", "steps", t.steps, 0, whole=True, cap=COUNT_MAX)
    if t.frames is not None:
        check_number("tune", "frames", t.frames, 2, whole=True, cap=COUNT_MAX)
    check_number("tune", "lr", t.lr, 0.0, above=True)  # 0 tunes nothing: --tune-steps 0 says that
    check_number("tune", "seed", t.seed, 0, whole=True, cap=SEED_MAX)
    _bool_ok("tune", "gradient_checkpointing", t.gradient_checkpointing)
    if t.save_seconds is not None:
        check_number("tune", "save_seconds", t.save_seconds, 0.0)
    if t.mixed_precision not in ("no", "fp16", "bf16"):
        raise OptionError(
            "tune.mixed_precision", f"{not_one_of(t.mixed_precision, ('no', 'fp16', 'bf16'), _PRECISIONS)}."
        )
    if t.max_grad_norm is not None:
        check_number("tune", "max_grad_norm", t.max_grad_norm, 0.0, above=True)


def check_inversion(i: InversionConfig) -> None:
    """Inversion method, steps, null-text iterations and frames, guidance and learning rate in range."""
    _config_ok(i, InversionConfig)
    _enum_ok("inversion", "method", i.method, InversionMethod)
    check_number("inversion", "steps", i.steps, 1, whole=True)
    check_number("inversion", "inner_steps", i.inner_steps, 0, whole=True, cap=COUNT_MAX)
    if i.frames is not None:
        check_number("inversion", "frames", i.frames, 2, whole=True, cap=COUNT_MAX)
    for attr, low in (("inversion_guidance", 0.0), ("guidance", 0.0), ("early_stop", 0.0)):
        check_number("inversion", attr, getattr(i, attr), low)
    check_number("inversion", "lr", i.lr, 0.0, above=True)  # 0 fits nothing: inner_steps 0 says that


def check_window(w: WindowConfig | None) -> None:
    """A window of at least 2 frames and an overlap that leaves each window a frame of its own (None:
    the default windows, nothing to check)."""
    if w is None:
        return
    _config_ok(w, WindowConfig)
    if w.size is not None:
        if w.size == 0 and not isinstance(w.size, bool):  # a dataclass's 0 (a file's or flag's is read as None)
            raise OptionError(
                _where("window", "size"), "0 is not valid; expected a whole number >= 2, or None: the whole clip."
            )
        check_number("window", "size", w.size, 2, whole=True, cap=COUNT_MAX)
        check_number("window", "overlap", w.overlap, 0, whole=True, cap=COUNT_MAX)
        if w.overlap >= w.size:  # both named: the overlap is often the default, not given with the window
            raise OptionError(
                _where("window", "overlap"),
                f"{w.overlap} is not valid with a window of {w.size} frames; expected a whole number from 0 to "
                f"{w.size - 1} (each window needs a frame of its own), or a window of at least {w.overlap + 1} frames.",
            )
    else:
        check_number("window", "overlap", w.overlap, 0, whole=True, cap=COUNT_MAX)
    _enum_ok("window", "anchors", w.anchors, AnchorMode)
    _enum_ok("window", "blend", w.blend, WindowBlend)


PROMPT_OPTIONS = {"source": "source", "target": "targets"}  # the prompts' flags -> the RunConfig fields they fill


FLAG_PARTS = {"width": "--size width", "height": "--size height"}  # options a flag gives with another
ARGUMENTS = {"video": "video"}  # options the command line takes as an argument, not a flag: its name in the usage


def option_label(option: str) -> str:
    """How the command line names an option of an OptionError: its flag (the part of `--size` a side is),
    or the config key."""
    if option in FLAG_PARTS or option in ARGUMENTS:
        return {**FLAG_PARTS, **ARGUMENTS}[option]
    return f"--{option.replace('_', '-')}" if option in OPTIONS or option in PROMPT_OPTIONS else option


def file_key(option: str) -> str:
    """How a config or jobs file names the setting of an OptionError's `option`: its dotted key (`tune.steps`
    for tune_steps, `targets` for target); an option that is no flag is named so already."""
    section, attr = OPTIONS.get(option, (None, PROMPT_OPTIONS.get(option, option)))
    return f"{section}.{attr}" if section else attr


def as_argument(e: OptionError) -> ConfigError:
    """A bad value of a function's own argument (`fps`, `width`) named by it as the caller wrote it, where the
    check names the setting it stands for by its key (`video.fps`)."""
    return ConfigError(f"{file_key(e.option).rpartition('.')[2]}: {e.reason}")


# our setting (its file key) -> the authors' keys that give it (their file's kind, their key), the one read last first
_OFFICIAL_SETTINGS: dict[str, tuple[tuple[ConfigKind, str], ...]] = {
    "source": ((ConfigKind.P2P, "prompt"), (ConfigKind.TUNE, "train_data.prompt")),
    "targets": ((ConfigKind.P2P, "prompts"),),
    "video.path": ((ConfigKind.TUNE, "train_data.video_path"), (ConfigKind.P2P, "image_path")),  # the tune's kept
    "video.frames": ((ConfigKind.P2P, "video_len"), (ConfigKind.TUNE, "train_data.n_sample_frames")),
    "video.start": ((ConfigKind.TUNE, "train_data.sample_start_idx"),),
    "video.stride": ((ConfigKind.TUNE, "train_data.sample_frame_rate"),),
    "video.width": ((ConfigKind.TUNE, "train_data.width"),),
    "video.height": ((ConfigKind.TUNE, "train_data.height"),),
    "tune.steps": ((ConfigKind.TUNE, "max_train_steps"),),
    "tune.lr": ((ConfigKind.TUNE, "learning_rate"),),
    "tune.seed": ((ConfigKind.TUNE, "seed"),),
    "tune.mixed_precision": ((ConfigKind.TUNE, "mixed_precision"),),
    "tune.gradient_checkpointing": ((ConfigKind.TUNE, "gradient_checkpointing"),),
    "tune.max_grad_norm": ((ConfigKind.TUNE, "max_grad_norm"),),
    "model": ((ConfigKind.TUNE, "pretrained_model_path"), (ConfigKind.P2P, "pretrained_model_path")),
    "save_tuned": ((ConfigKind.TUNE, "output_dir"),),
    "dtype": ((ConfigKind.P2P, "mixed_precision"),),
    "edit.blend": ((ConfigKind.P2P, "blend_word"),),
    "edit.reweight": ((ConfigKind.P2P, "eq_params"),),
    "edit.mode": ((ConfigKind.P2P, "is_word_swap"),),
    "edit.cross_replace": ((ConfigKind.P2P, "cross_replace_steps"),),
    "edit.cross_replace_words": ((ConfigKind.P2P, "cross_replace_steps"),),
    "edit.self_replace": ((ConfigKind.P2P, "self_replace_steps"),),
}


def holds(data: Any, key: str) -> bool:
    """Whether a config file's mapping gives the dotted `key` (`tune.steps`; `video.path` by `video: clip.mp4` too)."""
    *sections, attr = key.split(".")
    for section in sections:
        data = data.get(section) if isinstance(data, dict) else None
    return (isinstance(data, dict) and attr in data) or (key == "video.path" and isinstance(data, str))


@contextlib.contextmanager
def _named_by_file(path: str | os.PathLike | None, data: dict, kind: ConfigKind) -> Iterator[None]:
    """A ConfigError raised while the config file at `path` (its mapping `data`, of `kind`) is read begins
    with its path, and an OptionError names the setting by the file's key (`run.yaml: tune.steps -1 is not
    valid`, as `given_by`); without a path, as they are."""
    try:
        yield
    except OptionError as e:
        if path is None:
            raise
        where = given_by(e.option, [ConfigFile(path, data, kind)]) or f"{path}: {file_key(e.option)}"
        raise ConfigError(f"{where} {e.reason}") from None
    except ConfigError as e:
        if path is None:
            raise
        raise ConfigError(f"{path}: {e}") from None


def given_by(option: str, files: list[ConfigFile]) -> str | None:
    """Where among config `files` the setting of an OptionError's `option` was given, as `FILE: key`: the last
    of our files whose key holds it (`run.yaml: tune.steps`), or the authors' file and key it was read from
    (`rabbit-jump-tune.yaml: train_data.n_sample_frames`); None where no file gives it."""
    key = file_key(option)
    for f in reversed([f for f in files if f.kind is ConfigKind.OURS]):
        if holds(f.data, key):
            return f"{f.path}: {key}"
    for kind, theirs in _OFFICIAL_SETTINGS.get(key, ()):
        for f in files:
            if f.kind is kind and holds(f.data, theirs):
                return f"{f.path}: {theirs}"
    return None


def default_of(option: str) -> Any:
    """The default of a flat option (CLI flag, UI field), read from the dataclasses."""
    section, attr = OPTIONS[option]
    obj = RunConfig() if section is None else getattr(RunConfig(), section)
    value = getattr(obj, attr)
    return value.value if isinstance(value, enum.Enum) else value


__all__ = [
    "AnchorMode",
    "CompositeMode",
    "ConfigError",
    "EditConfig",
    "EditMode",
    "FrameAttentionMode",
    "InversionConfig",
    "InversionMethod",
    "MaskNorm",
    "OptionError",
    "SettingError",
    "SettingProblem",
    "PRESETS",
    "PRESET_MARGINS",
    "Preset",
    "ResizeMode",
    "RunConfig",
    "TuneConfig",
    "VideoConfig",
    "WindowBlend",
    "WindowConfig",
    "as_argument",
    "default_of",
    "file_key",
    "given_by",
    "meant_key",
    "not_a_member",
    "not_one_of",
    "fill_run",
    "files_preset",
    "plain_paths",
    "check_video",
    "named_preset",
    "on_tuned_model",
    "load_config",
    "preset_config",
    "to_plain",
    "validate",
]
