"""`videop2p ui`: edit a video in the browser (Gradio), on the same `VideoP2P` pipeline and workspace.

The page builds a `RunConfig` from the form (`form_to_config`, a pure function), runs
`VideoP2P.run` with a step hook that drives the progress bar and honours Cancel, and shows the
outputs that `run` wrote. Everything the user can get wrong becomes a message in the page.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from videop2p.config import (
    DEFAULT_FPS,
    LIGHTER,
    OFFICIAL_TUNE_STEPS,
    OPTIONS,
    PER_TARGET_THRESHOLDS,
    PER_TARGET_WINDOWS,
    PRESET_MARGINS,
    AnchorMode,
    CompositeMode,
    ConfigError,
    EditMode,
    GroupNormMode,
    LoraScale,
    OptionError,
    Preset,
    RunConfig,
    TuneConfig,
    UiSettings,
    VideoConfig,
    WindowBlend,
    apply_options,
    check_frame_size,
    check_number,
    extra_install,
    lora_scale_text,
    preset_config,
    validate,
)
from videop2p.config import (
    check_video as check_video_settings,
)
from videop2p.control.controller import MaskNorm
from videop2p.inversion import InversionMethod
from videop2p.io.video import (
    IMAGE_SUFFIXES,
    UNREAD_PICTURES,
    ResizeMode,
    VideoError,
    check_video,
    clip_words,
    declared_frames,
    is_frame_name,
    natural_key,
    probe_video,
    resolve_size,
    selected_count,
    signal_words,
    working_words,
)
from videop2p.io.writing import write_frames
from videop2p.models.attention import FrameAttentionMode
from videop2p.models.loading import ModelInfo, is_out_of_memory, is_video_model, lighter_dtype, video_model_config
from videop2p.models.tav import CheckpointError, frame_mode_of, group_norm_of
from videop2p.progress import Cancelled
from videop2p.store.files import atomic_path
from videop2p.toy.world import Background, Color, Motion, Shape, ToyClipSpec, ToyObject, caption_for, render_clip

logger = logging.getLogger(__name__)

STAGE_LABELS = {
    "tune": "1/3 tuning the T2S model",
    "ddim inversion": "2/3 DDIM inversion",
    "null-text optimisation": "2/3 null-text optimisation",
    "edit": "3/3 editing",
    "write": "3/3 writing the videos",
}
# Toy clips the bundled model knows: name -> (shape, colour, background, motion)
EXAMPLES = {
    "red circle on grass": (Shape.CIRCLE, Color.RED, Background.GRASS, Motion.LINEAR),
    "blue square on sand": (Shape.SQUARE, Color.BLUE, Background.SAND, Motion.BOUNCE),
    "yellow triangle on snow": (Shape.TRIANGLE, Color.YELLOW, Background.SNOW, Motion.ARC),
}


class FormError(ValueError):
    """A form value that cannot run, with what would be valid."""


_RUN = RunConfig()  # the defaults of every field below come from the config dataclasses


@dataclass
class Form:
    """Every field of the page; defaults are the config dataclasses' (the official ones)."""

    source: str = ""
    targets: str = ""  # one prompt per line
    mode: str = _RUN.edit.mode.value
    blend_source: str = ""
    blend_target: str = ""
    reweight: str = ""  # "word=factor, word=factor"
    cross_replace_word: str = ""  # "word=fraction, word=fraction": target words' own cross-attention windows
    cross_replace: float | str = _RUN.edit.cross_replace  # or one per target, comma-separated (a text field)
    self_replace: float | str = _RUN.edit.self_replace  # or one per target, comma-separated (a text field)
    steps: int = _RUN.inversion.steps
    tune_steps: int | None = _RUN.tune.steps  # None: 500, none on a tuned video model
    inversion: str = _RUN.inversion.method.value
    seed: int = _RUN.tune.seed
    frames: int = _RUN.video.frames
    width: int | None = _RUN.video.width
    height: int | None = _RUN.video.height
    # advanced
    guidance: float = _RUN.edit.guidance
    threshold: float | str = _RUN.edit.threshold  # or one per target, comma-separated (a text field)
    mask_norm: str = _RUN.edit.mask_norm.value
    lr: float = _RUN.tune.lr
    start: int = _RUN.video.start
    stride: int = _RUN.video.stride
    fps: float | None = _RUN.video.fps  # a zip of frames' rate; None or 0 (a blank field): DEFAULT_FPS
    resize: str = _RUN.video.resize.value
    frame_attention: str = _RUN.frame_attention.value
    force: bool = _RUN.force
    tune_frames: int | None = _RUN.tune.frames  # None or 0 (a blank field): every frame
    null_text_frames: int | None = _RUN.inversion.frames  # None or 0: every frame
    tune_checkpointing: bool = _RUN.tune.gradient_checkpointing  # how tuning runs, not what it gives
    frame_attention_control: bool = _RUN.edit.control_frame_attention  # ours, not the authors'
    subtract_source: str = ""  # local blending's words whose maps are taken out of the mask
    subtract_target: str = ""
    group_norm: str = _RUN.group_norm.value
    attention_slicing: int | None = _RUN.attention_slicing  # None or 0 (blank): every query at once
    # long clips and output
    window: int | None = _RUN.window.size  # None or 0 (blank): always the whole clip
    overlap: int = _RUN.window.overlap
    anchors: str = _RUN.window.anchors.value
    window_blend: str = _RUN.window.blend.value
    composite: str = _RUN.composite.value
    png_frames: bool = _RUN.png_frames


PRESET_FIELDS = (
    "tune_steps",
    "tune_frames",
    "tune_checkpointing",
    "inversion",
    "null_text_frames",
)  # the form fields a preset fills


def preset_fields(name: str, pretuned: bool = False) -> tuple[dict, str]:
    """The values a preset gives the form's fields (config.PRESETS through the config dataclasses; on a tuned
    video model, `pretuned`, no tuning steps of its own: `preset_config`), and what it costs against the official
    settings as measured (config.PRESET_MARGINS). The page's preset menu fills the fields; what runs is what the
    fields then say."""
    try:
        cfg = preset_config(name, pretuned)
    except OptionError as e:
        raise FormError(f"preset {e.reason}") from None
    values = {}
    for name_ in PRESET_FIELDS:  # each field's setting, where the flat options say it lives
        section, attr = OPTIONS[name_]
        value = getattr(getattr(cfg, section), attr)
        values[name_] = value.value if isinstance(value, Enum) else value
    margin = PRESET_MARGINS.get(Preset(name), "the authors' settings")
    return values, margin


def _preset_note(name: str, margin: str) -> str:
    """The line under the preset menu: the preset's name and `margin`, what it costs (`preset_fields`),
    the same at load and on change."""
    return f"**{name}**: {margin}"


def example_prompt(name: str) -> str:
    shape, color, background, _ = EXAMPLES[name]
    return caption_for([ToyObject(shape, color)], background)


def example_clip(name: str, root: Path, frames: int = 8) -> Path:
    """Frames of a bundled toy example, rendered once into `root/examples`."""
    if name not in EXAMPLES:
        raise FormError(f"Unknown example {name!r}; choose one of {', '.join(EXAMPLES)}.")
    shape, color, background, motion = EXAMPLES[name]
    folder = root / "examples" / f"{name.replace(' ', '-')}-{frames}"
    if not folder.is_dir():
        spec = ToyClipSpec([ToyObject(shape, color)], background, motion, frames=frames, size=64, seed=0)
        write_frames(render_clip(spec).frames, folder)
    return folder


def _zip_pictures(names: list[str], wanted: Callable[[str], bool]) -> list[str]:
    """A zip's files whose names `wanted` takes, less macOS's `__MACOSX/` folder, which holds no pictures."""
    return [n for n in names if not n.endswith("/") and wanted(Path(n).name) and "__MACOSX" not in Path(n).parts]


def _file_digest(path: Path) -> str:
    """A short hash of a file's bytes, read a MiB at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def unpack_upload(path: Path, root: Path) -> Path:
    """A video/gif is used as it is; a zip of frames is unpacked flat (images only, no paths outside);
    frames of the same name in two folders are refused rather than one kept. A zip is unpacked once, into
    a folder named by its bytes (written whole or not at all): choosing it and each Edit read that folder."""
    if path.suffix.lower() != ".zip":
        return path
    try:
        with zipfile.ZipFile(path) as zf:
            heif = _zip_pictures(zf.namelist(), lambda name: Path(name).suffix.lower() in UNREAD_PICTURES)
            if heif:
                raise FormError(
                    f"The zip {path.name} holds HEIC/HEIF pictures ({Path(heif[0]).name}, ...), which are not read "
                    "here; zip the frames as JPEG, PNG or AVIF."
                )
            names = _zip_pictures(zf.namelist(), is_frame_name)  # the names a folder of frames counts
            if not names:
                raise FormError(f"The zip {path.name} holds no frames ({', '.join(sorted(IMAGE_SUFFIXES))}).")
            seen: dict[str, str] = {}
            for n in names:
                if Path(n).name in seen:
                    raise FormError(
                        f"The zip {path.name} holds two frames named {Path(n).name} ({seen[Path(n).name]} and {n}); "
                        "zip one folder of frames."
                    )
                seen[Path(n).name] = n
            folder = root / "uploads" / f"{path.stem}-{_file_digest(path)}"
            if folder.is_dir():
                return folder
            with atomic_path(folder, directory=True) as tmp:
                for n in names:
                    (tmp / Path(n).name).write_bytes(zf.read(n))  # flattened: no directory traversal
    except zipfile.BadZipFile:
        raise FormError(f"The upload {path.name} is not a readable zip file.") from None
    return folder


def form_selection(frames, start, stride) -> tuple[int | None, int, int] | None:
    """The form's Frames, First frame and Frame stride as the run reads them (`_form_video`, checked by
    `config.check_video`): (frames or None for every frame, start, stride); None where one is not valid, for
    the Edit to name."""
    video = _form_video({"frames": frames, "start": start, "stride": stride}, check_video_settings)
    return None if video is None else (video.frames, video.start, video.stride)


def _form_video(given: dict, check: Callable[[VideoConfig], None]) -> VideoConfig | None:
    """The form's fields `given` read into the run's video settings as the run reads them (`_field_value`,
    `apply_options`) and passed by `check`; None where one is not valid, for the Edit to name."""
    try:
        video = apply_options(RunConfig(), {k: _field_value(k, v) for k, v in given.items()}).video
        check(video)
    except (FormError, ConfigError):
        return None
    return video


def frames_words(count: int, frames: int | None, start: int, stride: int) -> tuple[bool, str]:
    """Whether a clip of `count` frames holds the selection (`frames`, None for every one, from `start` at
    `stride`), and that in the form's words (Frames, First frame, Frame stride)."""
    taken = selected_count(count, start, frames, stride)
    if taken == 0:
        return False, f"First frame {start} is past its last frame ({count - 1}): lower First frame."
    if frames is not None and taken < frames:
        where = f" from First frame {start} at Frame stride {stride}" if (start, stride) != (0, 1) else ""
        lower = [
            f"lower {field}" for field, low in (("First frame", start == 0), ("Frame stride", stride == 1)) if not low
        ]
        remedies = ", or ".join([f"set Frames to {taken} or fewer (0: every frame)", *lower])
        return False, f"Frames asks for {frames}, and it holds {taken}{where}: {remedies}."
    return True, f"An edit takes {taken} of its {count} frames (Frames, First frame, Frame stride)."


def clip_note(
    video: Path,
    name: str,
    selection: tuple[int | None, int, int] | None = None,
    info: ModelInfo | None = None,
    size: tuple[int | None, int | None] | None = None,
) -> str:
    """What the page says of a clip as soon as it is chosen, as `videop2p info CLIP` says it: its size, rate,
    length, sound and signal, what reading it converts, whether the form's `selection` (`form_selection`)
    finds its frames in it (`frames_words`), and, with the model's `info` (once it is loaded), the size it
    works the clip at (the form's Width and Height `size`, `form_size`). A clip that cannot be read is a
    FormError."""
    try:
        probe, count = probe_video(video), declared_frames(video)
    except VideoError as e:
        raise _unreadable_clip(e) from None
    lines = [f"**{name}**: {clip_words(probe, count)}; {signal_words(probe.deep)}.", *probe.conversions]
    if count and selection is not None:
        lines.append(frames_words(count, *selection)[1])
    if info is not None and size is not None:
        try:
            working = resolve_size(probe.size, *size, info.native_size, info.size_multiple, info.size_step)
            words = working_words(probe.size, working, "Width and Height for another")
        except OptionError as e:  # a side the model cannot take: said as the Edit says it
            words = str(_field_error(e)).removesuffix(".")
        lines.append(words[0].upper() + words[1:] + ".")
    return "\n\n".join(line for line in lines if line)


def form_size(width, height) -> tuple[int | None, int | None] | None:
    """The form's Width and Height as the run reads them (`_form_video`; blank or 0: from the aspect ratio, None);
    None where one is not valid, for the Edit to name."""
    video = _form_video({"width": width, "height": height}, check_frame_size)
    return None if video is None else (video.width, video.height)


# of `ui`'s flags, the upload and the run's folders (a tuned model is taken out with `videop2p export`); every other
# option of `run` (config.OPTIONS) is a field of the form
SESSION_OPTIONS = (
    *("model", "model_config", "vae", "lora", "embedding", "device", "dtype"),
    *("video", "out", "workspace", "save_tuned"),
)
WORD_PAIRS = ("blend", "subtract")  # options given as two fields, OPTION_source and OPTION_target
WORD_NUMBERS = ("reweight", "cross_replace_word")  # options given as one text field: word=number, word=number

FIELD_NAMES = {  # option -> the form's name for it, where they differ
    "source": "Source prompt",
    "target": "Target prompt",
    "mode": "edit mode",
    "blend": "Blend words:",
    "reweight": "Reweighting",
    "cross_replace_word": "Per-word window",
    "mask_norm": "blend maps scaled by",
    "start": "first frame",
    "fps": "frame rate",
    "tune_steps": "tuning steps",
    "tune_frames": "frames per tuning step",
    "null_text_frames": "null-text frames",
    "steps": "DDIM steps",
    "lr": "learning rate",
    "cross_replace": "cross-attention window",
    "self_replace": "temporal-attention window",
    "threshold": "blend threshold",
    "subtract": "Subtract words:",
    "attention_slicing": "attention query chunk",
    "window": "frames per window",
    "overlap": "window overlap",
    "anchors": "anchor frames",
    "window_blend": "window blend",
    "composite": "paste into the input",
    "png_frames": "lossless PNG frames",
}
EXAMPLE_MAX_FRAMES = 1024  # an example clip is rendered here, so its length is bounded here
BLANK_IS_DEFAULT = {"width", "height", "tune_steps", "tune_frames", "null_text_frames", "fps"}  # blank: the default
ZERO_IS_DEFAULT = {"width", "height", "tune_frames", "null_text_frames", "fps"}  # 0 (a cleared field) too
BLANK_IS_NONE = {"attention_slicing", "window"}  # blank or 0: the setting's None (every query, the whole clip)
WHOLE = (
    "frames",
    "start",
    "stride",
    "width",
    "height",
    "seed",
    "steps",
    "tune_steps",
    "tune_frames",
    "null_text_frames",
    "attention_slicing",
    "window",
    "overlap",
)
REAL = ("lr", "cross_replace", "self_replace", "guidance", "threshold", "fps")


def _field_name(option: str) -> str:
    """The form's name for an option's field."""
    return FIELD_NAMES.get(option, option.replace("_", " "))


def _field_error(e: OptionError) -> FormError:
    """The run's check of a field, worded with the form's name for it."""
    return FormError(f"{_field_name(e.option)} {e.reason}")


def _field_value(option: str, value):
    """A Number field's value as the run reads it: whole numbers as int, the others as float, blank as
    None where blank means the default. What does not convert is passed on as it is, for the run's own
    range checks (`config.validate`) to name; a blank field that needs a value is a FormError."""
    if (value is None and option in BLANK_IS_DEFAULT) or (value == 0 and option in ZERO_IS_DEFAULT):
        return None
    if value is None:
        raise FormError(f"{_field_name(option)} is blank; enter a number.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    if option in WHOLE:
        return int(number) if math.isfinite(number) and number.is_integer() else number
    return number


def _form_frames(form: Form) -> int:
    """The frame count a toy example is rendered with: the form's (its 0, every frame of an upload, has no
    meaning for a clip not yet rendered)."""
    frames = _field_value("frames", form.frames)
    try:
        check_number("video", "frames", frames, 1, EXAMPLE_MAX_FRAMES, whole=True)
    except OptionError as e:
        raise FormError(
            f"{_field_name(e.option)} {e.reason.rstrip('.')} for a toy example (rendered with them)."
        ) from None
    return frames


def _word_pair(what: str, source: str, target: str) -> tuple[str, str] | None:
    """A (source word, target word) pair of the form's two fields, None when both are blank; one of the two
    is a FormError. Comma-separated words give one pair per target line (`config.apply_options` reads them)."""
    pair = ((source or "").strip(), (target or "").strip())  # a field never rendered gives None
    if any(pair) and not all(pair):
        raise FormError(f"{what} needs both words (source word, target word); got {pair[0]!r} and {pair[1]!r}.")
    return pair if all(pair) else None


def form_to_config(form: Form, video: str, out: Path, workspace: Path, model: str | None) -> RunConfig:
    """The `RunConfig` of a filled form; FormError names the first bad field."""
    source = form.source.strip()
    targets = [t.strip() for t in form.targets.splitlines() if t.strip()]
    if not source:
        raise FormError("Enter the source prompt: a sentence that describes the clip.")
    if not targets:
        raise FormError("Enter at least one target prompt (one per line): the source prompt with your edit.")
    what = {"blend": "Local blending", "subtract": "Subtracting from the blend mask"}
    pairs = {o: _word_pair(what[o], getattr(form, f"{o}_source"), getattr(form, f"{o}_target")) for o in WORD_PAIRS}
    unset = [o for o in BLANK_IS_NONE if getattr(form, o) in (None, 0)]  # set to None after the others
    options = {
        "video": video,
        "model": model,
        "out": str(out),
        "workspace": str(workspace),
        "frame_attention": form.frame_attention,
        **{option: _field_value(option, getattr(form, option)) for option in WHOLE + REAL if option not in unset},
        "resize": form.resize,
        "tune_checkpointing": bool(form.tune_checkpointing),
        "inversion": form.inversion,
        "mode": form.mode,
        **pairs,
        **{o: [x for x in getattr(form, o).replace(",", "\n").splitlines() if x.strip()] for o in WORD_NUMBERS},
        "mask_norm": form.mask_norm,
        "frame_attention_control": bool(form.frame_attention_control),
        "group_norm": form.group_norm,
        "anchors": form.anchors,
        "window_blend": form.window_blend,
        "composite": form.composite,
        "png_frames": bool(form.png_frames),
    }
    try:
        cfg = apply_options(RunConfig(source=source, targets=targets, force=bool(form.force)), options)
        for option in unset:
            section, attr = OPTIONS[option]
            setattr(cfg if section is None else getattr(cfg, section), attr, None)
        validate(cfg)
    except OptionError as e:
        raise _field_error(e) from None
    return cfg


def describe_reuse(manifest: dict) -> str:
    """One line per stage, saying what the workspace saved."""
    stages = manifest["stages"]
    lines = [f"- **{k}**: {v['seconds']:.1f} s, {v.get('action', 'done')}" for k, v in stages.items() if "action" in v]
    reused = [k for k in ("tune", "invert") if stages.get(k, {}).get("action") == "reused"]
    if reused:
        lines.insert(0, f"Re-edit of a known clip: the workspace's {' and '.join(reused)} result was reused.")
    return "\n".join(lines)


def status_text(manifest: dict) -> str:
    """The page's line after an edit: what was written, what the workspace saved, and the warnings the
    run gave (a terminal shows them as they come; the page would not)."""
    text = f"**Done** — {len(manifest['targets'])} edit(s), outputs in `{manifest['out']}`\n\n"
    text += describe_reuse(manifest)
    return text + "".join(f"\n\n**Warning:** {w}" for w in manifest.get("warnings") or [])


class _Warnings(logging.Handler):
    """The library's warnings during one edit, kept for the page."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _unreadable_clip(e: Exception) -> FormError:
    """A clip the run cannot read (checked before the model loads, or read by the run), as the page says it."""
    return FormError(f"Could not read the clip: {e}")


class Session:
    """The loaded pipeline, its workspace, and the cancel flag of the running edit."""

    def __init__(
        self,
        model: str | None,
        root: Path,
        device: str = _RUN.device,
        dtype: str = _RUN.dtype,
        model_config: str | None = _RUN.model_config,
        lora: dict[str, LoraScale] | None = None,
        embeddings: dict[str, str | None] | None = None,
        vae: str | None = _RUN.vae,
    ):
        self.model, self.root, self.device, self.dtype = model, Path(root), device, dtype
        self.model_config = model_config  # an original single-file model's architecture
        self.vae = vae  # a VAE in place of the model's own
        self.lora = dict(lora or {})  # LoRA files fused into the model, with their scales
        self.embeddings = dict(embeddings or {})  # textual-inversion files added to it, with their tokens
        self.cancel = threading.Event()
        self._pipe = None
        self._lock = threading.Lock()
        self._unpacked: dict[tuple[str, int, int], Path] = {}  # an upload (path, size, mtime) -> the clip it gives

    def model_line(self) -> str:
        """The session's model as the page's header says it: its name, its LoRA files with their scales,
        and the word a prompt uses for each embedding (read from its file; a file that cannot be read is
        named, and its error is the first Edit's)."""
        from videop2p.models.embeddings import EmbeddingError, embedding_word

        parts = [f"Model: {self.model or 'videop2p-toy (bundled)'}"]
        if self.vae:
            parts.append(f"VAE: {self.vae}")
        if self.lora:
            parts.append("LoRA: " + ", ".join(f"{Path(p).name} ({lora_scale_text(s)})" for p, s in self.lora.items()))
        words = []
        for path, token in self.embeddings.items():
            try:
                words.append(f"`{embedding_word(path, token)}` ({Path(path).name})")
            except EmbeddingError:
                words.append(f"{Path(path).name} (unreadable)")
        if words:
            parts.append("embeddings, by the word a prompt uses: " + ", ".join(words))
        return " · ".join(parts)

    def default_tune_steps(self) -> int:
        """The tuning steps a run takes on this session's model when none are given (`TuneConfig.resolved`):
        the official number, none on a tuned Tune-A-Video / Video-P2P model (`is_video_model`, found without
        loading it)."""
        return TuneConfig().resolved(pretuned=is_video_model(self.model)).steps

    def default_architecture(self) -> tuple[str, str]:
        """The Frame attention and Group norm a run on this session's model takes: a tuned Tune-A-Video /
        Video-P2P model's own (recorded, else the authors' GroupNorm over the clip, as `VideoP2P.architecture`
        runs it), found without loading it; else the defaults."""
        defaults = Form()
        try:
            config = video_model_config(self.model)
            mode, norm = (None, None) if config is None else (frame_mode_of(config), group_norm_of(config))
        except CheckpointError:  # a value it records that is none: the model's load says so
            mode, norm = None, None
        return (mode.value if mode else defaults.frame_attention), (norm.value if norm else defaults.group_norm)

    def preload(self) -> None:
        """Load the model now (`launch` does, beside the page), so that the first Edit need not wait for it and a
        chosen clip's note can say the size it is worked at; a model that does not load is said by the first
        Edit, which loads it again, as without this."""
        try:
            _ = self.pipe  # loaded once, kept by the session
        except Exception:  # noqa: BLE001 (any: the Edit's own load says it in the page)
            logger.debug("the model did not load ahead of the first Edit", exc_info=True)

    def loaded_info(self) -> ModelInfo | None:
        """The model's facts once it is loaded (`preload`, or an Edit), else None."""
        return self._pipe.components.info if self._pipe is not None else None

    @property
    def pipe(self):
        from videop2p.pipeline import VideoP2P

        with self._lock:
            if self._pipe is None:
                self._pipe = VideoP2P.from_pretrained(
                    self.model,
                    self.device,
                    self.dtype,
                    self.root / "workspace",
                    model_config=self.model_config,
                    lora=self.lora,
                    embeddings=self.embeddings,
                    vae=self.vae,
                )
            return self._pipe

    def unpacked(self, upload: str | Path) -> Path:
        """The clip of an uploaded file (`unpack_upload`), found once: choosing it, each change of the fields
        its note says (`clip_note`) and each Edit read it, where a zip's bytes would be hashed again each time."""
        path = Path(upload)
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if key not in self._unpacked:
            self._unpacked[key] = unpack_upload(path, self.root)
        return self._unpacked[key]

    def run(self, form: Form, upload: str | None, example: str | None, progress=None) -> dict:
        """Validate, run and return the manifest plus the output folder; FormError for bad input."""
        self.cancel.clear()
        if upload:
            video = str(self.unpacked(upload))
        elif example:
            video = str(example_clip(example, self.root, _form_frames(form)))
        else:
            raise FormError("Upload a clip (mp4, gif or a zip of frames) or choose a toy example.")
        out = self.root / "runs" / time.strftime("%Y%m%d-%H%M%S") / f"{time.time_ns() % 10**6:06d}"
        cfg = form_to_config(form, video, out, self.root / "workspace", self.model)
        cfg.model_config, cfg.lora = self.model_config, dict(self.lora)  # the session's model, as config.yaml reruns it
        cfg.embeddings, cfg.vae = dict(self.embeddings), self.vae
        try:  # before the model is loaded (the first Edit's): a damaged upload or too few frames
            count = declared_frames(video)
            asked = cfg.video.frames, cfg.video.start, cfg.video.stride  # the form's fields, read as numbers
            holds, words = frames_words(count, *asked) if count else (True, "")
            if not holds:  # in the form's words; a file that holds fewer than it declares: `check_video`'s
                raise FormError(f"{Path(upload).name if upload else 'The example'}: {words}")
            check_video(video, cfg.video.start, cfg.video.frames, cfg.video.stride, cfg.video.fps)
        except VideoError as e:
            raise _unreadable_clip(e) from None
        try:
            vp = self.pipe
        except (ValueError, FileNotFoundError) as e:  # its files damaged, a VAE, LoRA or embedding that does not fit
            raise FormError(f"The model could not be loaded: {e}") from None
        try:
            vp.check_inputs(cfg)
        except OptionError as e:
            raise _field_error(e) from None
        except ValueError as e:
            raise FormError(str(e)) from None

        def on_step(stage: str, done: int, total: int) -> None:
            if self.cancel.is_set():
                raise Cancelled(
                    f"Cancelled during {STAGE_LABELS.get(stage, stage)}; no result of that stage was written "
                    "(Edit with the same settings resumes it from its last kept step)."
                )
            if progress is not None:
                progress((done, total), desc=STAGE_LABELS.get(stage, stage))

        warnings = _Warnings()
        library = logging.getLogger("videop2p")
        library.addHandler(warnings)
        try:
            manifest = vp.run(cfg, on_step=on_step)
        except (VideoError, FileNotFoundError) as e:
            raise _unreadable_clip(e) from None
        except OptionError as e:  # a field the loaded model cannot take: Width 66 where its VAE's factor is 8
            raise _field_error(e) from None
        except ValueError as e:
            raise FormError(str(e)) from None
        except OSError as e:
            raise FormError(f"Could not read or write a file: {e}") from None
        except RuntimeError as e:
            if not is_out_of_memory(e):
                raise
            raise FormError(
                f"Out of memory on {self.device}: {str(e).splitlines()[0]} Lighter settings: fewer frames or a "
                f"smaller size, {', '.join(f'{_field_name(o)} {v}' for o, v in LIGHTER.items())}; or start the "
                f"editor with {lighter_dtype(self.device)}."
            ) from None
        finally:
            library.removeHandler(warnings)
        every = dict.fromkeys([*warnings.messages, *manifest["warnings"]])  # a reused edit's are in its manifest
        return {**manifest, "out": str(out), "warnings": list(every)}


def zip_folder(folder: Path) -> Path:
    """`folder` (an edit's PNG frames) as `folder.zip` beside it, one download; the PNGs are stored as they
    are (already compressed), in the frames' natural order, and the zip is written atomically."""
    path = folder.with_suffix(".zip")
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for frame in sorted(folder.iterdir(), key=lambda f: natural_key(f.name)):
            zf.write(frame, f"{folder.name}/{frame.name}")
    return path


def _frame_count(gr, value: int | None, label: str, elem_id: str):
    """A field for a number of frames that may be left blank for every frame."""
    return gr.Number(value=value, precision=0, label=label, info="blank or 0: every frame", elem_id=elem_id)


UI_INSTALL = extra_install("ui")


def import_gradio():
    """Gradio, the editor's one extra: an ImportError naming how to install it where it is missing or broken."""
    try:
        import gradio
    except ImportError as e:
        raise ImportError(f"the web UI needs gradio ({e}): {UI_INSTALL}") from None
    return gradio


def build_app(session: Session):
    """The Gradio Blocks of the editor."""
    gr = import_gradio()

    defaults = Form()
    frame_mode, norm = session.default_architecture()  # a tuned video model's own
    with gr.Blocks(title="videop2p: edit a video with words") as app:
        gr.Markdown(
            "# videop2p\nDescribe the clip, write the edited prompt, and get the clip back with only that change. "
            "Video-P2P (CVPR 2024): tune, invert (kept in the workspace), edit with cross-attention control.\n\n"
            + session.model_line(),
            elem_id="model-line",
        )
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(
                    label="Clip (mp4, gif, webp or zip of frames)",
                    file_types=["video", ".gif", ".webp", ".zip"],
                    elem_id="upload",
                )
                example = gr.Radio(list(EXAMPLES), label="…or a toy example", elem_id="example")
                source = gr.Textbox(
                    label="Source prompt", placeholder="a rabbit is jumping on the grass", elem_id="source"
                )
                targets = gr.Textbox(
                    label="Target prompts (one per line)",
                    lines=2,
                    placeholder="a origami rabbit is jumping on the grass",
                    elem_id="targets",
                )
                with gr.Row():
                    mode = gr.Radio([m.value for m in EditMode], value=defaults.mode, label="Edit mode")
                    inversion = gr.Dropdown(
                        [m.value for m in InversionMethod], value=defaults.inversion, label="Inversion"
                    )
                with gr.Row():
                    per_target = " (or one per target line: rabbit, grass; - for none)"
                    blend_source = gr.Textbox(
                        label="Blend word (source)", placeholder=f"rabbit{per_target}", elem_id="blend-source"
                    )
                    blend_target = gr.Textbox(
                        label="Blend word (target)", placeholder=f"rabbit{per_target}", elem_id="blend-target"
                    )
                with gr.Row():
                    reweight = gr.Textbox(
                        label="Reweight (word=factor, …)",
                        placeholder="origami=2",
                        info="a target word's cross-attention, scaled",
                        elem_id="reweight",
                    )
                    cross_replace_word = gr.Textbox(
                        label="Per-word window (word=fraction, …)",
                        placeholder="origami=0.4",
                        info="a target word's own cross-attention replace",
                        elem_id="cross-replace-word",
                    )
                with gr.Row():
                    cross_replace = gr.Textbox(
                        value=str(defaults.cross_replace),
                        label="Cross-attention replace",
                        info=f"fraction of the steps, 0 to 1; or {PER_TARGET_WINDOWS}",
                    )
                    self_replace = gr.Textbox(
                        value=str(defaults.self_replace),
                        label="Temporal-attention replace",
                        info=f"fraction of the steps, 0 to 1; or {PER_TARGET_WINDOWS}",
                    )
                with gr.Row():
                    steps = gr.Number(value=defaults.steps, precision=0, label="DDIM steps", elem_id="steps")
                    tune_steps = gr.Number(  # the steps a run takes: Gradio shows no blank number (0 is no tuning)
                        value=session.default_tune_steps(),
                        precision=0,
                        label="Tuning steps",
                        info=f"official: {OFFICIAL_TUNE_STEPS}; on a tuned Tune-A-Video/Video-P2P model: 0 (none)",
                        elem_id="tune-steps",
                    )
                    seed = gr.Number(value=defaults.seed, precision=0, label="Seed")
                with gr.Row():
                    presets = [p.value for p in Preset]
                    preset = gr.Dropdown(presets, value=Preset.OFFICIAL.value, label="Preset", elem_id="preset")
                    tune_frames = _frame_count(gr, defaults.tune_frames, "Frames per tuning step", "tune-frames")
                    null_text_frames = _frame_count(
                        gr, defaults.null_text_frames, "Null-text frames", "null-text-frames"
                    )
                    tune_checkpointing = gr.Checkbox(
                        value=defaults.tune_checkpointing,
                        label="Recompute tuning activations",
                        info="less memory, same result, slower",
                        elem_id="tune-checkpointing",
                    )
                official = Preset.OFFICIAL.value
                preset_note = gr.Markdown(_preset_note(official, preset_fields(official)[1]), elem_id="preset-note")
                with gr.Row():
                    frames = gr.Number(
                        value=defaults.frames, precision=0, label="Frames (0: every frame)", elem_id="frames"
                    )
                    width = gr.Number(value=None, precision=0, label="Width (0: keep aspect)")
                    height = gr.Number(value=None, precision=0, label="Height (0: keep aspect)")
                with gr.Accordion("Advanced (official defaults)", open=False):
                    with gr.Row():
                        guidance = gr.Number(value=defaults.guidance, label="Guidance")
                        threshold = gr.Textbox(
                            value=str(defaults.threshold),
                            label="Blend threshold",
                            info=f"0 to 1; or {PER_TARGET_THRESHOLDS}",
                        )
                        mask_norm = gr.Dropdown(
                            [m.value for m in MaskNorm], value=defaults.mask_norm, label="Blend maps scaled by"
                        )
                        lr = gr.Number(value=defaults.lr, label="Tuning learning rate")
                    with gr.Row():
                        start = gr.Number(value=defaults.start, precision=0, label="First frame")
                        stride = gr.Number(value=defaults.stride, precision=0, label="Frame stride")
                        fps = gr.Number(
                            value=defaults.fps,
                            label="Frame rate",
                            info=f"of a zip of frames (0: {DEFAULT_FPS:g}); a video keeps its own",
                        )
                        resize = gr.Dropdown([m.value for m in ResizeMode], value=defaults.resize, label="Resize")
                        frame_attention = gr.Dropdown(
                            [m.value for m in FrameAttentionMode],
                            value=frame_mode,
                            label="Frame attention",
                        )
                        frame_attention_control = gr.Checkbox(
                            value=defaults.frame_attention_control,
                            label="Frame-attention control",
                            info="also replace the frame-attention maps (ours): outlines stay in place",
                            elem_id="frame-attention-control",
                        )
                    with gr.Row():
                        subtract_source = gr.Textbox(
                            value=defaults.subtract_source,
                            label="Subtract word (source)",
                            info="its region is taken out of the blend mask (needs blend words)",
                            elem_id="subtract-source",
                        )
                        subtract_target = gr.Textbox(
                            value=defaults.subtract_target, label="Subtract word (target)", elem_id="subtract-target"
                        )
                        group_norm = gr.Dropdown(
                            [m.value for m in GroupNormMode],
                            value=norm,
                            label="Group norm",
                            info="frame: each frame alone (ours); clip: over every frame (the authors')",
                        )
                        attention_slicing = gr.Number(
                            value=defaults.attention_slicing,
                            precision=0,
                            label="Attention query chunk",
                            info="0: every query at once; a number: less memory",
                        )
                    force = gr.Checkbox(
                        value=defaults.force, label="Recompute tuning and inversion even if the workspace has them"
                    )
                with gr.Accordion("Long clips and output", open=False):
                    with gr.Row():
                        window = gr.Number(
                            value=defaults.window,
                            precision=0,
                            label="Frames per window",
                            info="longer clips run in overlapping windows; blank or 0: always the whole clip",
                        )
                        overlap = gr.Number(value=defaults.overlap, precision=0, label="Window overlap")
                        anchors = gr.Dropdown([m.value for m in AnchorMode], value=defaults.anchors, label="Anchors")
                        window_blend = gr.Dropdown(
                            [m.value for m in WindowBlend], value=defaults.window_blend, label="Window blend"
                        )
                    with gr.Row():
                        composite = gr.Dropdown(
                            [m.value for m in CompositeMode],
                            value=defaults.composite,
                            label="Paste into the input",
                            info="auto: edits at the input's own resolution (HDR and 10-bit stay so); sdr: likewise, 8-bit SDR; off: the working size",
                        )
                        png_frames = gr.Checkbox(
                            value=defaults.png_frames,
                            label="Lossless PNG frames",
                            info="each edit's frames as PNGs too (an OpenEXR plate's: OpenEXR), one zip per edit under Downloads",
                            elem_id="png-frames",
                        )
                with gr.Row():
                    run_btn = gr.Button("Edit", variant="primary", elem_id="run")
                    cancel_btn = gr.Button("Cancel", elem_id="cancel")
            with gr.Column(scale=1):
                status = gr.Markdown("Ready.", elem_id="status")
                side_by_side = gr.Video(  # its tiles say their names: Gradio's label would cover the first's
                    label="Source | reconstruction | edits",
                    show_label=False,
                    elem_id="result-video",
                    loop=True,
                    autoplay=True,
                )
                masks = gr.Gallery(  # one per target that blends: its blend mask over the source frames
                    label="Local-blend masks", elem_id="masks", columns=4, height="auto", allow_preview=False
                )
                edits = gr.Gallery(label="Edits", elem_id="edits", columns=2, height="auto")
                attention = gr.Gallery(
                    label="Token attention maps", elem_id="attention", columns=2, height=360, object_fit="contain"
                )
                downloads = gr.File(label="Downloads", file_count="multiple", elem_id="downloads")

        fields = [
            source, targets, mode, blend_source, blend_target, reweight, cross_replace_word, cross_replace, self_replace, steps,
            tune_steps, inversion, seed, frames, width, height, guidance, threshold, mask_norm, lr, start, stride, fps, resize,
            frame_attention, force, tune_frames, null_text_frames, tune_checkpointing, frame_attention_control,
            subtract_source, subtract_target, group_norm, attention_slicing, window, overlap, anchors, window_blend,
            composite, png_frames,
        ]  # fmt: skip
        names = list(Form.__dataclass_fields__)

        def pick_example(name):  # the example is the clip now: an uploaded one would be edited in its place
            return (example_prompt(name), None) if name else (gr.update(), gr.update())

        example.input(pick_example, example, [source, upload])
        upload.upload(lambda: None, None, example)  # an uploaded clip is edited: no example chosen beside it

        def pick_clip(upload_file, frames_value, start_value, stride_value, width_value, height_value):
            if not upload_file:
                return "Ready."
            try:
                video = session.unpacked(upload_file)
                selection = form_selection(frames_value, start_value, stride_value)
                size = form_size(width_value, height_value)
                return clip_note(video, Path(upload_file).name, selection, session.loaded_info(), size)
            except FormError as e:  # said in the page at once, not at the Edit
                return str(e)

        def follow_fields(upload_file, *values):  # no clip uploaded: the status (an example's result) stays
            return pick_clip(upload_file, *values) if upload_file else gr.update()

        said = [upload, frames, start, stride, width, height]  # the note follows each: the frames taken, the size
        upload.change(pick_clip, said, status)
        for field in said[1:]:
            field.change(follow_fields, said, status)

        def pick_preset(name):
            values, margin = preset_fields(name, is_video_model(session.model))
            if values["tune_steps"] is None:  # the model's default, as a number the field shows
                values["tune_steps"] = session.default_tune_steps()
            return *(values[f] for f in PRESET_FIELDS), _preset_note(name, margin)

        by_name = dict(zip(names, fields, strict=True))  # each Form field's component
        preset.change(pick_preset, preset, [*(by_name[f] for f in PRESET_FIELDS), preset_note])

        def on_run(upload_file, example_name, *values, progress=gr.Progress()):  # noqa: B008 (Gradio injects it)
            form = Form(**dict(zip(names, values, strict=True)))
            try:
                manifest = session.run(form, upload_file, example_name, progress)
            except (FormError, Cancelled) as e:
                raise gr.Error(str(e), duration=None) from None
            root = Path(manifest["out"])
            files = manifest["outputs"]
            blended = [t for t, pair in zip(manifest["targets"], manifest["blend"] or [], strict=False) if pair]
            mask_list = [(str(root / m), t) for m, t in zip(files["masks"], blended, strict=True)]  # targets that blend
            gallery = [(str(root / g), t) for g, t in zip(files["edits_gif"], manifest["targets"], strict=True)]
            prompts = [manifest["source"], *manifest["targets"]]  # the source's maps first, then each target's
            atts = [(str(root / a), p) for a, p in zip(files["attention"], prompts, strict=False)]  # none: no maps
            for folder in files.get("edits_png", []):  # a folder is no download: each edit's PNGs as a zip
                zip_folder(root / folder)
            downloads_list = [str(p) for p in sorted(root.iterdir()) if p.is_file()]  # the zips among them
            masks_shown = gr.Gallery(value=mask_list, visible=bool(mask_list))  # no local blending: no gallery
            return status_text(manifest), str(root / files["side_by_side"]), masks_shown, gallery, atts, downloads_list

        run_event = run_btn.click(
            on_run,
            [upload, example, *fields],
            [status, side_by_side, masks, edits, attention, downloads],
            concurrency_limit=1,
        )

        def on_cancel():
            session.cancel.set()
            return "Cancelling…"

        cancel_btn.click(on_cancel, None, status, cancels=[run_event])
    return app


def launch(
    model: str | None = None,
    root: str | Path = UiSettings.root,
    host: str = UiSettings.host,
    port: int = UiSettings.port,
    device: str = _RUN.device,
    dtype: str = _RUN.dtype,
    block: bool = True,
    model_config: str | None = _RUN.model_config,
    lora: dict[str, LoraScale] | None = None,
    embeddings: dict[str, str | None] | None = None,
    vae: str | None = _RUN.vae,
):
    """Build and serve the app; returns it (running in the background when `block` is False)."""
    import_gradio()
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    session = Session(model, root, device, dtype, model_config, lora, embeddings, vae)
    app = build_app(session)
    threading.Thread(target=session.preload, name="videop2p-model", daemon=True).start()
    app.queue(default_concurrency_limit=1)
    app.launch(
        server_name=host,
        server_port=port,
        prevent_thread_lock=not block,
        allowed_paths=[str(root)],
        ssr_mode=False,
        footer_links=[],
        quiet=True,
    )
    return app
