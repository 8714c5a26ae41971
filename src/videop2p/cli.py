"""The `videop2p` command line."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import platform
import signal
import sys
import threading
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperCommand

from videop2p.config import (
    COUNT_MAX,
    DEFAULT_FPS,
    DEMO_TUNE_STEPS,
    DTYPES,
    LIGHTER,
    LORA_SCALE_MAX,
    OFFICIAL_TUNE_STEPS,
    PAIR_SEP,
    PER_TARGET_PAIRS,
    PER_TARGET_THRESHOLDS,
    PER_TARGET_WINDOWS,
    PRESET_MARGINS,
    PRESETS,
    QUICK_CASES,
    REWEIGHT_MAX,
    SUITE_CASES,
    WORKSPACE_NAME,
    BatchSettings,
    ConfigError,
    ConfigFile,
    EvalSettings,
    ExportFormat,
    GroupNormMode,
    Method,
    OptionError,
    Preset,
    SettingError,
    UiSettings,
    check_embedding_settings,
    check_lora_settings,
    default_of,
    not_a_member,
    not_one_of,
    parse_embeddings,
    parse_lora,
    quick_settings,
)
from videop2p.store.files import staged_files, write_json
from videop2p.toy.settings import TOY_EVAL_SEEDS, GroundingConfig, ToyModelConfig, ToyTrainConfig, check_numbers
from videop2p.toy.world import Background, Color, Motion, Shape, Size, ToyClipSpec, ToyObject

HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}  # every command's help, as `-h` too (its subcommands inherit it)
app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    context_settings=HELP_OPTIONS,
    help="Text-driven video editing with Video-P2P.",
)
toy_app = typer.Typer(no_args_is_help=True, help="The procedural toy world and its bundled model.")
app.add_typer(toy_app, name="toy")
workspace_app = typer.Typer(
    no_args_is_help=True, help="List a workspace's tuned clips, inversions and edits, and remove them."
)
app.add_typer(workspace_app, name="workspace")

logger = logging.getLogger("videop2p")


def _print_version(value: bool) -> None:
    if value:
        from videop2p import __version__

        typer.echo(f"videop2p {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """The options before any command (the command line's help is the app's)."""


MODEL_HELP = (
    "A hub id (owner/name, at a revision owner/name@REVISION), a diffusers folder or a .safetensors/.ckpt file, a "
    "hub repository's too (owner/name/FILE), or a link to either on the hub (default: the bundled toy model, "
    "videop2p-toy)."
)
MODEL_CONFIG_HELP = (
    "For an original single-file checkpoint (--model FILE): a diffusers folder or hub id of its architecture, "
    "whose configs and tokenizer are read (default: diffusers' guess, from the hub)."
)
LORA_HELP = (
    f"LoRA weights fused into the model before tuning: FILE or FILE=SCALE, the scale from {-LORA_SCALE_MAX:g} to "
    f"{LORA_SCALE_MAX:g} (default 1; FILE=UNET,TEXT: the UNet's and the text encoder's; repeatable; diffusers', PEFT's or kohya-ss's layout, LyCORIS's LoCon, LoHa, "
    "LoKr, full, IA3, DoRA, OFT, BOFT, GLoRA, trained norms; or a folder PEFT saved an adapter of any method in). FILE may be a "
    "hub repository's: owner/name/FILE, or owner/name for its pytorch_lora_weights or one LoRA file."
)
LoraOpt = Annotated[list[str] | None, typer.Option(help=LORA_HELP)]
EMBEDDING_HELP = (
    "Textual-inversion embedding added to the model: FILE or FILE=TOKEN, the prompts' word for it (default: the "
    "token the file names, else its file name; repeatable; diffusers' or the A1111 web UI's .pt/.safetensors/.bin). "
    "FILE may be a hub repository's: owner/name/FILE, or owner/name for its learned_embeds or one embedding file."
)
EmbeddingOpt = Annotated[list[str] | None, typer.Option(help=EMBEDDING_HELP)]
VAE_HELP = (
    "A VAE in place of the model's own: a diffusers folder, a .safetensors/.ckpt/.pt file (the original or "
    "diffusers' layout; the A1111 web UI's VAE files; a hub repository's too, owner/name/FILE) or a hub id, e.g. "
    "stabilityai/sd-vae-ft-mse (default: the model's)."
)
VaeOpt = Annotated[str | None, typer.Option(help=VAE_HELP)]


def _warning_line(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: object = None,
    line: object = None,
) -> None:
    """A Python warning from a library the command uses (Pillow on a damaged frame's header, torch) as one
    log line like the command's own, instead of the file, line number and source line Python prints."""
    logging.getLogger("py.warnings").warning("%s: %s", category.__name__, " ".join(str(message).split()))


def _setup_logging(quiet: bool = False) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    warnings.showwarning = _warning_line
    # diffusers (0.42) passes huggingface_hub (1.0 and later) an argument it no longer takes, and is warned on
    # each hub id it loads: a line before every hub model's or VAE's load that no user can act on
    warnings.filterwarnings("ignore", message="The `local_dir_use_symlinks` argument is deprecated")
    for noisy in ("httpx", "urllib3", "diffusers", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # transformers says, when diffusers' pipelines are imported, which image processors of models this tool
    # never uses fall back to Pillow without torchvision (a line each, on every Stable Diffusion run)
    logging.getLogger("transformers.utils.import_utils").setLevel(logging.ERROR)
    # their loaders' tables of weights a model's files lack, hold beyond it or hold in another shape: the
    # model's load says the same in one line (`models.weights.load_pretrained`), and refuses the first two
    for loader in ("transformers.modeling_utils", "diffusers.models.modeling_utils"):
        logging.getLogger(loader).setLevel(logging.ERROR)
    # which layers a tensor-parallel plan would shard: transformers (5.25) says it when its loader's level is
    # WARNING or above, and no model here is sharded
    logging.getLogger("transformers.distributed.tensor_parallel").setLevel(logging.ERROR)
    if "HF_HUB_VERBOSITY" not in os.environ:  # two lines per retried request; the load's own error says why
        import huggingface_hub.utils.logging

        huggingface_hub.utils.logging.set_verbosity_error()


def _quiet_loaders() -> None:
    """No per-file progress bars from transformers' and diffusers' loaders in this process."""
    import diffusers.utils.logging
    import transformers.utils.logging

    transformers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.disable_progress_bar()


def _set_threads(threads: int) -> None:
    """torch's thread count for this process, when a command asks for one (0: leave it)."""
    from videop2p.config import check_number

    _check_own_flags(lambda t: check_number(None, "threads", t, 0, whole=True, cap=COUNT_MAX), threads)
    if threads:
        import torch

        torch.set_num_threads(threads)


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


LIBRARIES = ("diffusers", "transformers", "accelerate", "peft")  # what a run's models are read and tuned through


def _versions_line(torch_version: str) -> str:
    """Python's, torch's and the model libraries' versions, in one line (what a report of a problem needs: pip
    installs other releases on other Pythons, docs/dependencies.md)."""
    from importlib.metadata import version

    libraries = ", ".join(f"{name} {version(name)}" for name in LIBRARIES)  # each a dependency: installed
    return f"python {platform.python_version()}, torch {torch_version}, {libraries}"


@app.command()
def info(
    clip: Annotated[
        str | None,
        typer.Argument(
            help="A clip (video file or folder of frames): how it is read and the size the model works it at.",
            show_default=False,
        ),
    ] = None,
    model: Annotated[str | None, typer.Option(help=MODEL_HELP)] = None,
    model_config: Annotated[str | None, typer.Option(help=MODEL_CONFIG_HELP)] = None,
    lora: LoraOpt = None,
    embedding: EmbeddingOpt = None,
    vae: VaeOpt = None,
) -> None:
    """Print the version, devices, dtypes and the model that would be used; given a clip, how it is read."""
    loras, embeddings = _adapter_flags(lora, embedding)
    if clip is not None:
        _check_clip_path(clip)
    import torch

    from videop2p import __version__
    from videop2p.models.embeddings import EmbeddingError
    from videop2p.models.loading import ModelLoadError, ModelNotFoundError, bundled_model_path, load_components
    from videop2p.models.lora import LoraError
    from videop2p.models.vae import VaeError

    _setup_logging(quiet=True)  # a library's warnings as lines (what it loads is not said: the listing says it)
    lines = [f"videop2p {__version__}", _versions_line(torch.__version__)]
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    lines.append(f"devices: {', '.join(devices)}")
    dtypes = ["float32", "bfloat16 (CPU)", "float16 (CPU: runs, slower than float32)"]
    if torch.cuda.is_available():
        dtypes.append("float16 (CUDA)")
        if torch.cuda.is_bf16_supported():
            dtypes.append("bfloat16 (CUDA)")
    lines.append(f"dtypes: {', '.join(dtypes)}")
    import av

    from videop2p.io.writing import deep_writable

    hdr = (
        "HDR and 10-bit clips' edits as 10-bit video (x265)"
        if deep_writable()
        else "HDR and 10-bit clips' edits as 8-bit SDR (this FFmpeg has no x265)"
    )
    codec = ".".join(map(str, av.library_versions["libavcodec"]))
    lines.append(f"video: PyAV {av.__version__}, FFmpeg's libavcodec {codec}; {hdr}")
    lines.append(f"model: {model or f'bundled toy model, videop2p-toy ({bundled_model_path()})'}")
    _quiet_loaders()
    comps = None
    try:
        comps = load_components(model, config=model_config, lora=loras, embeddings=embeddings, vae=vae)
        for k, v in comps.info.to_dict().items():
            lines.append(f"  {k}: {v}")
        if comps.video is not None:
            frames = comps.video.frame_mode.value if comps.video.frame_mode else "not recorded: --frame-attention's"
            lines.append(
                f"  tuned: a Tune-A-Video / Video-P2P folder (frame attention {frames}, GroupNorm "
                f"{comps.video.group_norm.value}): a run edits with it as it is; --tune-steps N tunes on from it"
            )
    except (ModelNotFoundError, ModelLoadError, LoraError, EmbeddingError, VaeError) as e:
        lines.append(f"  not available: {e}")
    if clip is not None:
        lines += _clip_lines(clip, comps.info if comps is not None else None)
    typer.echo("\n".join(lines))


def _check_clip_path(clip: str) -> None:
    """A clip given to `info` that cannot be read: one line, before the model is loaded."""
    from videop2p.io.video import probe_video

    _or_fail(probe_video, clip)


def _clip_lines(clip: str, model_info) -> list[str]:
    """How `info` describes a clip: its frames, rate, sound, size and form as it is read, what reading it
    converts, and the size `model_info`'s model works it at (`VideoConfig`'s defaults for the rest)."""
    from videop2p.config import VideoConfig
    from videop2p.io.video import clip_words, declared_frames, probe_video, resolve_size, signal_words, working_words

    probe, count = probe_video(clip), declared_frames(clip)
    lines = [f"clip: {clip}", f"  {clip_words(probe, count)}"]
    lines += [f"  {signal_words(probe.deep)}", *(f"  {said}" for said in probe.conversions)]
    if model_info is not None:
        working = resolve_size(
            probe.size, None, None, model_info.native_size, model_info.size_multiple, model_info.size_step
        )
        lines.append(f"  {working_words(probe.size, working, '--size WxH for another')}")
    default = VideoConfig.frames
    if count and count > default:
        lines.append(
            f"  a run edits its first {default} frames (--frames N, --start, --stride; --frames 0: every frame)"
        )
    elif count and count < default:
        lines.append(f"  a run needs --frames {count} or fewer (the default takes {default}; --frames 0: every frame)")
    return lines


def _adapter_flags(
    lora: list[str] | None, embedding: list[str] | None
) -> tuple[dict[str, float], dict[str, str | None]]:
    """`--lora` and `--embedding` flags of a command that reads no config (info, export, ui) as
    `RunConfig.lora` and `RunConfig.embeddings`, checked."""
    kinds = (("lora", lora, parse_lora, check_lora_settings),)
    kinds += (("embedding", embedding, parse_embeddings, check_embedding_settings),)
    read = []
    for flag, items, parse, check in kinds:
        try:
            value = parse(items or [])
            check(value)
        except (OptionError, SettingError) as e:  # the check's or the parser's, said of the flag
            _fail(f"--{flag} {e.reason}")
        read.append(value)
    return read[0], read[1]


def _h(option: str, text: str, unless: str = "") -> str:
    """Help text of a flag with its default, read from the config dataclasses (the one place it lives), and
    `unless`, where another value takes its place."""
    return f"{text} (default: {default_of(option)}{unless})."


def _choices(values: Iterable[str]) -> str:
    """A choice's values (a StrEnum's members are theirs) as a help text lists them: "circle, square or triangle"."""
    *others, last = map(str, values)
    return f"{', '.join(others)} or {last}" if others else last


DEVICE_HELP = "cpu, cuda, cuda:1, mps"  # devices a run may name, as examples (`check_device`: any this machine has)
DTYPE_HELP = _choices(DTYPES)


def _flag_name(option: str) -> str:
    """An option's flag: `--name-of-it`."""
    return f"--{option.replace('_', '-')}"


def _flag(e) -> str:
    """An OptionError of a command's own setting, as its flag: `--name value is not valid; ...`."""
    return f"{_flag_name(e.option)} {e.reason}"


def _check_own_flags(check, settings) -> None:
    """A command's own check of the settings its flags fill (each named `--name`); a bad one fails in one line."""

    try:
        check(settings)
    except OptionError as e:
        _fail(_flag(e))


def _or_fail(check, *args) -> None:
    """Run a library check before any work; the ValueError it raises is the command's one-line error."""
    try:
        check(*args)
    except ValueError as e:
        _fail(str(e))


def _check_folder(flag: str, path: Path | str | None, purpose: str) -> None:
    """A folder the command writes into (a file there, or a folder it cannot write in, fails in one line,
    named by its flag: --out's before the workspace made beside it)."""
    from videop2p.config import check_folder
    from videop2p.store.files import check_writable

    _or_fail(check_folder, flag, path, purpose)
    if path is not None:
        _or_fail(check_writable, flag, path, purpose)


def _check_file(flag: str, path: Path | None) -> None:
    """A file the command writes at its end: a path it can write."""
    from videop2p.config import check_file
    from videop2p.store.files import check_file_writable

    _or_fail(check_file, flag, path)
    if path is not None:
        _or_fail(check_file_writable, flag, path)


def _check_device_dtype(device: str, dtype: str) -> None:
    """--device names a device this machine has and --dtype one of the dtypes."""
    from videop2p.config import DTYPE_ALIASES, DTYPES
    from videop2p.models.loading import check_device

    if dtype not in DTYPES:
        _fail(f"--dtype {not_one_of(dtype, DTYPES, DTYPE_ALIASES)}.")
    _or_fail(check_device, device)


def _check_flag(check, section) -> None:
    """A run's own check of a config section that carries one flag's value; a bad value fails in one line."""
    from videop2p.config import option_label

    try:
        check(section)
    except OptionError as e:
        _fail(f"{option_label(e.option)} {e.reason}")


def _presets_help() -> str:
    """Each preset with the options it sets, read from config.PRESETS."""

    def flag(name: str, value) -> str:
        name = name.replace("_", "-")
        if isinstance(value, bool):  # a switch: --name or --no-name
            return f"--{name}" if value else f"--no-{name}"
        return f"--{name} {value}"

    def flags(options: dict) -> str:
        return " ".join(flag(k, v) for k, v in options.items()) or "the defaults"

    return "; ".join(f"{p.value} ({flags(o)})" for p, o in PRESETS.items())


def _parse_size(size: str | None) -> tuple[int | None, int | None]:
    """--size's (width, height): WIDTHxHEIGHT, one number for both, or one side (`512x`, `x288`) with None for the
    other, which keeps the clip's aspect ratio."""
    if size is None:
        return None, None
    try:
        sides = size.lower().split("x") if "x" in size.lower() else [size, size]
        if len(sides) != 2 or not "".join(sides).strip():
            raise ValueError(size)
        w, h = (int(side) if side.strip() else None for side in sides)  # None: from the other and the clip
    except ValueError:
        _fail(
            f"--size {size!r} must be WIDTHxHEIGHT (e.g. 512x512), one number, or one side (512x or x288: the other "
            "keeps the aspect ratio)."
        )
    given = [v for v in (w, h) if v is not None]
    if min(given) < 1:
        _fail(f"--size {size!r} is not valid; width and height must be whole numbers >= 1.")
    if max(given) > COUNT_MAX:  # a machine's limit, named only to a value past it
        _fail(f"--size {size!r} is not valid; width and height must be whole numbers from 1 to {COUNT_MAX}.")
    return w, h


def _build_config(
    video: str | None,
    source: str | None,
    target: list[str] | None,
    config: list[Path | ConfigFile] | None,
    **flags,
):
    """The run's settings: the preset's, then the `config` files' (paths, or `ConfigFile`s read already),
    then the flags'; and the preset they start from (the flag's, else a file's, else the official)."""
    from videop2p.config import (
        OPTIONS,
        apply_options,
        files_preset,
        given_by,
        load_config,
        missing_tuned_model,
        missing_tuned_model_message,
        on_tuned_model,
        preset_config,
        prompt_text,
        read_config_files,
    )

    name = flags.pop("preset", None)
    try:  # given empty: refused by name
        flagged = None if name is None else preset_config(name)
    except OptionError as e:
        _fail(f"--preset {e.reason}")
    try:
        files = read_config_files(config or [])
        preset = Preset(name) if name is not None else files_preset(files) or Preset.OFFICIAL  # flag, file, official
        base = flagged or preset_config(preset)
        cfg = load_config(files, base) if files else base
    except ConfigError as e:
        _fail(str(e))
    if source is not None:
        cfg.source = prompt_text(source)
    if target:
        cfg.targets = [prompt_text(t) for t in target]
    size = flags.pop("size")
    flags["width"], flags["height"] = _parse_size(size)
    options = {k: v for k, v in flags.items() if k in OPTIONS and v not in ((), [])}
    try:  # --frames 0 (every frame from --start) and --window 0 (never split the clip) are read as None
        apply_options(cfg, {"video": video, **options})
    except OptionError as e:
        _fail(_flag(e))
    if size is not None:  # one side given: the other keeps the aspect ratio, whatever a config file said
        cfg.video.width, cfg.video.height = flags["width"], flags["height"]
    missing = missing_tuned_model(files, cfg.model)
    if missing is not None:
        both = f"run both at once with `videop2p run --config TUNE.yaml --config {missing[0]}`"
        _fail(missing_tuned_model_message(missing, both, "--model"))
    if preset is not Preset.OFFICIAL:  # its tuning steps are fewer than an image model's 500
        from videop2p.models.loading import is_video_model

        if is_video_model(cfg.model):
            given = flags.get("tune_steps") is not None or given_by("tune_steps", files) is not None
            cfg = on_tuned_model(cfg, preset, given)
    cfg.force = bool(flags.get("force")) or cfg.force
    cfg.quiet = bool(flags.get("quiet")) or cfg.quiet
    if cfg.workspace is None:
        from videop2p.store.workspace import default_workspace

        cfg.workspace = str(default_workspace(cfg.out))
    return cfg, preset


# `run`, `tune`, `invert` and `edit --help` group their options by what they set
CLIP_PANEL = "Clip and prompts"
MODEL_PANEL = "Model and device"
TUNE_PANEL = "Stage 1: tuning"
INVERT_PANEL = "Stage 2: inversion"
EDIT_PANEL = "Stage 3: editing"
LONG_PANEL = "Long clips and full resolution"
OUT_PANEL = "Outputs and workspace"

VideoArg = Annotated[str | None, typer.Argument(help="Clip: video file, gif/webp or folder of frames.")]
SourceOpt = Annotated[
    str | None, typer.Option("--source", help="Prompt that describes the clip.", rich_help_panel=CLIP_PANEL)
]
TargetOpt = Annotated[
    list[str] | None, typer.Option("--target", help="Edited prompt (repeat for several).", rich_help_panel=CLIP_PANEL)
]
ConfigOpt = Annotated[
    list[Path] | None,
    typer.Option("--config", help="videop2p YAML, or the official tune/p2p YAMLs.", rich_help_panel=CLIP_PANEL),
]
BlendOpt = Annotated[
    tuple[str, str] | None,
    typer.Option(
        "--blend",
        help=f"Local blending: SOURCE_WORD TARGET_WORD for every target, given once; given again, one pair per target in order; or {PER_TARGET_PAIRS.format(what='blend')}.",
        rich_help_panel=EDIT_PANEL,
    ),
]


def _setting_label(option: str, flagged: frozenset[str], files: list[ConfigFile]) -> str:
    """How a bad setting (an OptionError's `option`) is named: by the config file and key that gave it
    (`run.yaml: tune.steps`, `rabbit-jump-tune.yaml: train_data.n_sample_frames`) where no flag overrode it,
    else by its flag."""
    from videop2p.config import given_by, option_label

    return (None if option in flagged else given_by(option, files)) or option_label(option)


def _said(e: BaseException, flagged: frozenset[str], files: list[ConfigFile]) -> str:
    """A command's error in one line: a bad setting (an OptionError) named by `_setting_label`; a clip or model
    that a config file gave and that cannot be used (a `SettingProblem` of one setting) named by that file and
    key; anything else, and these given by a flag, as it says itself."""
    from videop2p.config import SettingProblem, given_by

    if isinstance(e, OptionError):
        return f"{_setting_label(e.option, flagged, files)} {e.reason}"
    if not isinstance(e, SettingProblem) or e.option is None or e.option in flagged:
        return str(e)
    where = given_by(e.option, files)
    return f"{where} {e.reason}" if where else str(e)


def _execute(
    cfg,
    stage: str,
    command: str,
    files: list[ConfigFile],
    dry_run: bool = False,
    flagged: frozenset[str] = frozenset(),
    preset: Preset = Preset.OFFICIAL,
) -> None:
    """Check the settings of `videop2p COMMAND` (read from the config `files` and the flags, `flagged` the
    options they gave, over `preset`'s), then say what the preset costs and run its stages (`edit` runs
    `run`'s), or with `dry_run` say what they would do."""
    from videop2p.config import tune_config_alone, validate

    _setup_logging(cfg.quiet)
    for what, value, give in (
        ("source prompt", cfg.source, '--source "a sentence that describes the clip"'),
        ("video", cfg.video.path, "the clip's path (a video file or a folder of frames)"),
    ):
        if not str(value or "").strip():  # an empty or blank --source too
            _fail(f"missing {what}: give {give}; see `videop2p {command} --help`.")
    try:
        validate(cfg)
    except OptionError as e:
        _fail(f"{_setting_label(e.option, flagged, files)} {e.reason}")
    if stage == "run" and not cfg.targets:  # `run` and `edit`: before the model is loaded
        give = '--target "the source prompt with your edit" (one or more)'
        tune = tune_config_alone(files)
        if tune is not None:  # its validation prompts are their tuning's samples, not edits
            _fail(
                f"missing target prompt: {tune} is a Tune-A-Video / Video-P2P tune config, which holds no edit; give "
                f"its p2p config too (`videop2p {command} --config {tune} --config P2P.yaml`) or {give}, or tune "
                f"alone with `videop2p tune --config {tune}`."
            )
        _fail(f"missing target prompt: give {give}; see `videop2p {command} --help`.")
    _check_folder(_setting_label("out", flagged, files), cfg.out, "for the outputs")
    _check_folder(_setting_label("workspace", flagged, files), cfg.workspace, "to keep tuned clips in")
    if cfg.save_tuned is not None:
        from videop2p.exporting import check_tuned_folder

        _or_fail(check_tuned_folder, cfg.save_tuned)
    _check_clip(cfg.video, files, flagged)
    if preset in PRESET_MARGINS and not cfg.quiet:  # once every setting is good: an error is one line
        typer.echo(f"preset {preset.value}: {PRESET_MARGINS[preset]}", err=True)
    _quiet_loaders()
    if dry_run:
        _run_stages(cfg, stage, command, files, flagged, dry_run=True)
        return
    resume = (
        "no result of the stopped stage was written; the same command resumes it from its kept steps "
        f"(workspace {cfg.workspace})."
    )
    with _long_run(cfg.device, resume):
        _run_stages(cfg, stage, command, files, flagged)


def _check_clip(video, files: list[ConfigFile], flagged: frozenset[str]) -> None:
    """The clip and its frame selection, before the model is loaded (seconds for a real one); a bad path or
    frame count that a config file gave is named by the file and its key (`_setting_label`)."""
    from videop2p.io.video import check_video

    try:
        check_video(video.path, video.start, video.frames, video.stride, video.fps)
    except ValueError as e:  # a VideoError, as `_or_fail` takes any library check's
        _fail(_said(e, flagged, files))


def _pipeline(cfg):
    """The pipeline a command's settings load: their model, device, dtype, workspace and architecture."""
    from videop2p.pipeline import VideoP2P

    return VideoP2P.from_pretrained(
        cfg.model,
        cfg.device,
        cfg.dtype,
        cfg.workspace,
        cfg.frame_attention.value,
        cfg.attention_slicing,
        cfg.group_norm.value,
        cfg.model_config,
        cfg.lora,
        cfg.embeddings,
        cfg.vae,
    )


def _say_dry_run(found, cfg, command: str) -> None:
    """`--dry-run`'s answer (`VideoP2P.dry_run`'s): what each stage would do, then the settings as the run's
    config.yaml would keep them; a YAML file on stdout, the plan in its comments."""
    from videop2p.outputs import settings_yaml

    lines = [f"# videop2p {command} --dry-run: nothing was computed or written; its stages would"]
    for s in found.stages:
        lines.append(f"#   {s.stage:<7} {s.action:<8} {s.entry or '(no workspace)'}")
        lines += [f"#           ({s.why})"] if s.why else []
    kept = f", as {Path(cfg.out) / 'config.yaml'} would keep them" if found.stages[-1].stage == "edit" else ""
    lines += [f"# the settings{kept} (`--config` takes this file):"]  # `tune` and `invert` write no outputs
    typer.echo("\n".join(lines))
    typer.echo(settings_yaml(found.settings), nl=False)


def _run_stages(
    cfg, stage: str, command: str, files: list[ConfigFile], flagged: frozenset[str], dry_run: bool = False
) -> None:
    """`_execute`'s work once the settings are checked (with `dry_run`, what it would do); a setting the
    loaded model refuses (a side that is no multiple of its VAE's factor) is named as `_execute` names a
    bad one, by the file or flag that gave it."""
    try:
        vp = _pipeline(cfg)
        if dry_run:
            _say_dry_run(vp.dry_run(cfg, "edit" if stage == "run" else stage), cfg, command)
            return
        cfg.tune.progress = cfg.inversion.progress = cfg.edit.progress = not cfg.quiet
        if stage == "run":
            manifest, out = vp.run(cfg), Path(cfg.out).resolve()
            typer.echo(
                f"outputs written to {out} (manifest: outputs.json; tuning and inversion kept in the workspace "
                f"{cfg.workspace})"
            )
            for name, info in manifest["stages"].items():
                typer.echo(f"  {name:7s} {info['seconds']:7.1f} s  {info.get('action', '')}")
            files = manifest["outputs"]
            typer.echo(  # what to open first
                f"side by side (source | reconstruction | edits): {out / files['side_by_side']}; "
                f"edits: {', '.join(files['edits'])}; {files['report']}"
            )
            return
        if cfg.targets:  # tune and invert alone take no targets; with them, every word is checked first
            vp.check_inputs(cfg)
        elif cfg.save_tuned is not None:
            from videop2p.exporting import check_tuned_folder, tuned_folder_size

            check_tuned_folder(cfg.save_tuned, tuned_folder_size(vp.components))
        clip = vp.load_clip(cfg.video)
        model, report = vp.tune(
            clip, cfg.source, cfg.tune, cfg.force, None, cfg.frame_attention, cfg.group_norm, cfg.window
        )
        if cfg.save_tuned is not None:
            vp.save_tuned(model, cfg.save_tuned)
        if stage == "invert":
            _, report = vp.invert(model, clip, cfg.source, cfg.inversion, cfg.force, None, cfg.window)
        typer.echo(  # the clip's key: what `workspace list` shows and `export` takes
            f"{stage}: {report.action} in {report.seconds:.1f} s; workspace {cfg.workspace}, clip {model.delta_key} "
            f"(`videop2p export {model.delta_key} DIR --workspace {cfg.workspace} --format tune-a-video` writes its "
            "tuned model as the authors' folder)"
        )
    # a ModelLoadError is a ValueError, a ModelNotFoundError a FileNotFoundError
    except (ValueError, FileNotFoundError) as e:
        _fail(_said(e, flagged, files))


def _lighter_flags(options: list[str]) -> str:
    """`config.LIGHTER`'s settings of `options` as flags, after {dtype}: the device's lighter dtype
    (models.loading.lighter_dtype), filled in when it is said."""
    return ", ".join(["{dtype}", *(f"{_flag_name(o)} {LIGHTER[o]}" for o in options)])


RUN_LIGHTER = _lighter_flags(list(LIGHTER))


class Terminated(BaseException):
    """SIGTERM during a long command (`timeout`, `kill`, a scheduler or container stopping it), raised where the
    command is so that it stops as Ctrl-C stops it: not an Exception, which a batch would take for its job's
    failure and go on."""


def _terminate(signum, frame) -> None:
    raise Terminated


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """SIGTERM raises `Terminated` while a long command runs (Python's default ends the process at once, with
    no word and no cleanup: a stage's lock and temporary files stayed); the handler before is put back after.
    Only the main thread may set one: elsewhere (a command invoked from a thread) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


@contextlib.contextmanager
def _long_run(device: str | None, resume: str, lighter: str = RUN_LIGHTER) -> Iterator[None]:
    """What stops a long command midway, as one line instead of a traceback: the disk (full,
    read-only; what was written stays valid, every write is atomic), running out of memory (with
    `lighter`: the command's flags that need less), and Ctrl-C or SIGTERM (exit 130 or 143, with `resume`:
    how the same command goes on)."""
    try:
        with _stop_on_sigterm():
            yield
    except OSError as e:
        full = " (the disk is full: free some space, or write elsewhere)" if e.errno == errno.ENOSPC else ""
        _fail(f"could not read or write a file: {e}{full}")
    except RuntimeError as e:  # typer's Exit is one too: it passes
        from videop2p.models.loading import is_out_of_memory, lighter_dtype

        if not is_out_of_memory(e):
            raise
        lighter = lighter.format(dtype=lighter_dtype(device))
        _fail(
            f"out of memory{f' on {device}' if device else ''}: {str(e).splitlines()[0]}"
            + (f" Lighter settings: {lighter} (memory per stage: docs/benchmarks.md)." if lighter else "")
        )
    except KeyboardInterrupt:
        typer.secho(f"interrupted: {resume}", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(code=130) from None
    except Terminated:
        typer.secho(f"stopped (SIGTERM): {resume}", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(code=128 + signal.SIGTERM) from None


def _stage_command(stage: str, doc: str):
    def command(
        video: VideoArg = None,
        source: SourceOpt = None,
        target: TargetOpt = None,
        config: ConfigOpt = None,
        preset: Annotated[
            str | None,
            typer.Option(
                help=f"Settings to start from, under --config and flags: {_presets_help()}; a tuned Tune-A-Video / "
                "Video-P2P model takes no tuning steps from a preset.",
                rich_help_panel=CLIP_PANEL,
            ),
        ] = None,
        model: Annotated[
            str | None,
            typer.Option(help=MODEL_HELP, rich_help_panel=MODEL_PANEL),
        ] = None,
        model_config: Annotated[str | None, typer.Option(help=MODEL_CONFIG_HELP, rich_help_panel=MODEL_PANEL)] = None,
        lora: Annotated[list[str] | None, typer.Option(help=LORA_HELP, rich_help_panel=MODEL_PANEL)] = None,
        embedding: Annotated[list[str] | None, typer.Option(help=EMBEDDING_HELP, rich_help_panel=MODEL_PANEL)] = None,
        vae: Annotated[str | None, typer.Option(help=VAE_HELP, rich_help_panel=MODEL_PANEL)] = None,
        frames: Annotated[
            int | None,
            typer.Option(
                help=_h("frames", "Number of frames (official n_sample_frames); 0: every frame"),
                rich_help_panel=CLIP_PANEL,
            ),
        ] = None,
        start: Annotated[
            int | None,
            typer.Option(help=_h("start", "First frame (official sample_start_idx)"), rich_help_panel=CLIP_PANEL),
        ] = None,
        stride: Annotated[
            int | None,
            typer.Option(help=_h("stride", "Frame stride (official sample_frame_rate)"), rich_help_panel=CLIP_PANEL),
        ] = None,
        fps: Annotated[
            float | None,
            typer.Option(
                help=f"Frames a second of a folder of frames (default: {DEFAULT_FPS:g}, as the authors' outputs; a "
                "video keeps its own).",
                rich_help_panel=CLIP_PANEL,
            ),
        ] = None,
        size: Annotated[
            str | None,
            typer.Option(
                help="WIDTHxHEIGHT, or one side (512x, x288) keeping the aspect ratio; multiples of the VAE's "
                "factor (8 for SD).",
                rich_help_panel=CLIP_PANEL,
            ),
        ] = None,
        resize: Annotated[
            str | None, typer.Option(help=_h("resize", "crop (official), pad or stretch"), rich_help_panel=CLIP_PANEL)
        ] = None,
        tune_steps: Annotated[
            int | None,
            typer.Option(
                help=f"Tuning steps (default: {OFFICIAL_TUNE_STEPS}; none on a tuned Tune-A-Video/Video-P2P folder, where N continues tuning).",
                rich_help_panel=TUNE_PANEL,
            ),
        ] = None,
        tune_frames: Annotated[
            int | None,
            typer.Option(
                help="Frames per tuning step, drawn at random with the anchor frame (default, 0: every frame).",
                rich_help_panel=TUNE_PANEL,
            ),
        ] = None,
        tune_checkpointing: Annotated[
            bool | None,
            typer.Option(
                "--tune-checkpointing/--no-tune-checkpointing",
                help=_h(
                    "tune_checkpointing",
                    "Recompute activations in the tuning backward pass: less memory, same result, slower",
                ),
                rich_help_panel=TUNE_PANEL,
            ),
        ] = None,
        lr: Annotated[
            float | None, typer.Option(help=_h("lr", "Tuning learning rate"), rich_help_panel=TUNE_PANEL)
        ] = None,
        seed: Annotated[int | None, typer.Option(help=_h("seed", "Tuning seed"), rich_help_panel=TUNE_PANEL)] = None,
        inversion: Annotated[
            str | None,
            typer.Option(
                help=_h("inversion", "null-text, fast, direct or negative-prompt"), rich_help_panel=INVERT_PANEL
            ),
        ] = None,
        steps: Annotated[int | None, typer.Option(help=_h("steps", "DDIM steps"), rich_help_panel=INVERT_PANEL)] = None,
        null_text_frames: Annotated[
            int | None,
            typer.Option(
                help="Frames the null-text loss reads per iteration, drawn with the anchor frame (default, 0: every "
                "frame).",
                rich_help_panel=INVERT_PANEL,
            ),
        ] = None,
        guidance: Annotated[
            float | None,
            typer.Option(
                help=_h("guidance", "Classifier-free guidance, of null-text inversion and of the edit"),
                rich_help_panel=INVERT_PANEL,
            ),
        ] = None,
        mode: Annotated[
            str | None, typer.Option(help=_h("mode", "auto, swap or refine"), rich_help_panel=EDIT_PANEL)
        ] = None,
        blend: BlendOpt = None,
        subtract: Annotated[
            tuple[str, str] | None,
            typer.Option(
                help=f"Words never edited: SOURCE_WORD TARGET_WORD for every target, given once; given again, one pair per target in order; or {PER_TARGET_PAIRS.format(what='subtract')}.",
                rich_help_panel=EDIT_PANEL,
            ),
        ] = None,
        reweight: Annotated[
            list[str] | None,
            typer.Option(
                help=(
                    f"WORD=FACTOR, the factor from {-REWEIGHT_MAX:g} to {REWEIGHT_MAX:g} (repeatable; each applies "
                    "to the targets whose prompt has the word)."
                ),
                rich_help_panel=EDIT_PANEL,
            ),
        ] = None,
        cross_replace_word: Annotated[
            list[str] | None,
            typer.Option(
                help=(
                    "WORD=FRACTION: a target word's own cross-attention window, in place of --cross-replace's "
                    "(repeatable; prompt-to-prompt's per-word cross_replace_steps, lion=0.4)."
                ),
                rich_help_panel=EDIT_PANEL,
            ),
        ] = None,
        cross_replace: Annotated[
            str | None,
            typer.Option(
                help=_h(
                    "cross_replace",
                    f"Fraction of steps with cross-attention replaced; given again, one per target in order; or {PER_TARGET_WINDOWS}",
                ),
                rich_help_panel=EDIT_PANEL,
            ),
        ] = None,
        self_replace: Annotated[
            str | None,
            typer.Option(
                help=_h(
                    "self_replace",
                    f"Fraction of steps with temporal maps replaced; given again, one per target in order; or {PER_TARGET_WINDOWS}",
                ),
                rich_help_panel=EDIT_PANEL,
            ),
        ] = None,
        frame_attention_control: Annotated[
            bool | None,
            typer.Option(
                "--frame-attention-control",
                help=_h(
                    "frame_attention_control",
                    "Also replace the frame-attention maps in the temporal window (ours, not the authors'): "
                    "outlines stay in place, docs/bundled_layout.md",
                ),
                rich_help_panel=EDIT_PANEL,
            ),
        ] = None,
        threshold: Annotated[
            str | None,
            typer.Option(
                help=_h(
                    "threshold",
                    f"Local-blend mask threshold; given again, one per target in order; or {PER_TARGET_THRESHOLDS}",
                ),
                rich_help_panel=EDIT_PANEL,
            ),
        ] = None,
        mask_norm: Annotated[
            str | None,
            typer.Option(
                help=_h(
                    "mask_norm",
                    "Blend maps scaled by their max (official) or range (for flat maps) before the threshold",
                ),
                rich_help_panel=EDIT_PANEL,
            ),
        ] = None,
        device: Annotated[str | None, typer.Option(help=_h("device", DEVICE_HELP), rich_help_panel=MODEL_PANEL)] = None,
        dtype: Annotated[str | None, typer.Option(help=_h("dtype", DTYPE_HELP), rich_help_panel=MODEL_PANEL)] = None,
        frame_attention: Annotated[
            str | None,
            typer.Option(
                help=_h(
                    "frame_attention",
                    "Frames that frame attention reads: first or sparse-causal",
                    "; a tuned Tune-A-Video/Video-P2P folder runs with its own where it records one",
                ),
                rich_help_panel=TUNE_PANEL,
            ),
        ] = None,
        group_norm: Annotated[
            str | None,
            typer.Option(
                help=_h(
                    "group_norm",
                    "Resnet GroupNorm statistics over the clip (official) or per frame",
                    "; a tuned Tune-A-Video/Video-P2P folder runs with its own: recorded, else clip",
                ),
                rich_help_panel=TUNE_PANEL,
            ),
        ] = None,
        attention_slicing: Annotated[
            int | None,
            typer.Option(
                help="Attend with at most N queries at a time (memory fallback).", rich_help_panel=MODEL_PANEL
            ),
        ] = None,
        window: Annotated[
            int | None,
            typer.Option(
                help=_h("window", "Frames per window on clips longer than it; 0: always the whole clip"),
                rich_help_panel=LONG_PANEL,
            ),
        ] = None,
        overlap: Annotated[
            int | None,
            typer.Option(
                help=_h("overlap", "Frames shared by consecutive windows, blended"), rich_help_panel=LONG_PANEL
            ),
        ] = None,
        anchors: Annotated[
            str | None,
            typer.Option(
                help=_h("anchors", "Frames every frame attends to: first (Video-P2P) or first+middle"),
                rich_help_panel=LONG_PANEL,
            ),
        ] = None,
        window_blend: Annotated[
            str | None,
            typer.Option(
                help=_h("window_blend", "Overlapping windows combined by a ramp (cross-fade) or uniform"),
                rich_help_panel=LONG_PANEL,
            ),
        ] = None,
        composite: Annotated[
            str | None,
            typer.Option(
                help=_h(
                    "composite",
                    "auto: edits pasted into the input at its own resolution, an HDR or 10-bit input's as "
                    "10-bit video in its own form; sdr: likewise, as 8-bit SDR video; off: working size",
                ),
                rich_help_panel=LONG_PANEL,
            ),
        ] = None,
        out: Annotated[
            str | None,
            typer.Option(
                help="Output folder (of run and edit: each edit as edit_K.mp4 and .gif, side by side, "
                "reconstruction, masks, report.md, outputs.json); the workspace is made beside it unless --workspace "
                f"names one (default: {default_of('out')}).",
                rich_help_panel=OUT_PANEL,
            ),
        ] = None,
        save_tuned: Annotated[
            str | None,
            typer.Option(
                help="Also write the tuned model to this folder as a Tune-A-Video / Video-P2P folder, which "
                "--model and the authors' scripts edit with as it is (an official tune config's output_dir).",
                rich_help_panel=OUT_PANEL,
            ),
        ] = None,
        png_frames: Annotated[
            bool | None,
            typer.Option(
                "--png-frames",
                help=_h(
                    "png_frames",
                    "Also write each edit's frames as lossless PNGs, edit_K/1.png, ... (an OpenEXR plate's: OpenEXR)",
                ),
                rich_help_panel=OUT_PANEL,
            ),
        ] = None,
        workspace: Annotated[
            str | None, typer.Option(help="Workspace root (default: beside OUT).", rich_help_panel=OUT_PANEL)
        ] = None,
        force: Annotated[
            bool, typer.Option("--force", help="Redo tuning and inversion.", rich_help_panel=OUT_PANEL)
        ] = False,
        quiet: Annotated[
            bool, typer.Option("--quiet", "-q", help="No progress bars.", rich_help_panel=OUT_PANEL)
        ] = False,
        dry_run: Annotated[
            bool,
            typer.Option(
                "--dry-run",
                help="Check every input, then say what each stage would do (reuse the workspace's work, resume "
                "it, or compute it) and print the settings as OUT/config.yaml would keep them (a config file); "
                "nothing is computed or written.",
                rich_help_panel=OUT_PANEL,
            ),
        ] = False,
    ) -> None:
        flags = {k: v for k, v in locals().items() if k not in ("video", "source", "target", "config", "dry_run")}
        from videop2p.config import read_config_files

        try:  # each config file read once: its kind decides the messages below
            files = read_config_files(config or [])
        except ConfigError as e:
            _fail(str(e))
        given = {**flags, "video": video, "source": source, "target": target}  # the argument and prompts too
        flagged = {k for k, v in given.items() if v not in (None, (), [], False)}
        flagged = frozenset(flagged | ({"width", "height"} if "size" in flagged else set()))  # --size gives both
        cfg, preset = _build_config(video, source, target, files, **flags)
        _execute(cfg, stage, doc, files, dry_run, flagged, preset)

    command.__doc__ = {
        "run": "Tune, invert and edit in one go; writes edits, pictures, report and outputs.json.",
        "tune": "Stage 1 alone: tune the T2S model on the clip (kept in the workspace).",
        "invert": "Stages 1-2: tune (or reuse) and invert the clip (kept in the workspace).",
        "edit": "Edit a clip, reusing the workspace's tuned model and inversion when present.",
    }[doc]
    return command


PER_TARGET_FLAGS = ("--blend", "--subtract", "--threshold", "--cross-replace", "--self-replace")  # one value a target


def per_target_flags(command, args: list[str]) -> list[str]:
    """`args` with a per-target flag given more than once (`--blend circle circle --blend grass snow`,
    `--cross-replace 0.2 --cross-replace 0.8`, as `--target` is given once per target) read as one value per
    target in order, written as the comma-separated form says it (`--blend circle,grass circle,snow`,
    `--cross-replace 0.2,0.8`); given once, it is every target's. Repeats with a comma inside are refused
    (UsageError): the two forms do not mix. A repeat short of its words is left to the parser to name."""
    takes = {}  # option -> how many words it takes
    for param in getattr(command, "params", []):
        for opt in getattr(param, "opts", []) + getattr(param, "secondary_opts", []):
            flag = getattr(param, "is_flag", False) or getattr(param, "count", False)
            takes[opt] = 0 if flag else param.nargs
    found: dict[str, list[tuple[int, int, list[str]]]] = {f: [] for f in PER_TARGET_FLAGS if f in takes}
    i = 0  # each occurrence: where it starts, how many arguments it is, its words
    while i < len(args) and args[i] != "--":
        name, equals, value = args[i].partition("=")
        if equals and name in found and takes[name] == 1:  # --threshold=0.3
            found[name].append((i, 1, [value]))
        elif args[i] in found:
            words = args[i + 1 : i + 1 + takes[args[i]]]
            if len(words) == takes[args[i]] and not any(w.startswith("--") for w in words):
                found[args[i]].append((i, 1 + len(words), words))
        i += 1 + max(takes.get(args[i], 0), 0)
    replaced: dict[int, list[str]] = {}
    for flag, given in found.items():
        if len(given) < 2:
            continue
        values = [words for _, _, words in given]
        if any(PAIR_SEP in w for words in values for w in words):
            said = " ".join(" ".join([flag, *words]) for words in values)
            what, example = ("two words", "circle,grass circle,snow") if takes[flag] == 2 else ("value", "0.2,0.8")
            raise UsageError(
                f"{said}: each repeated {flag} is one target's {what}; give one {what} per {flag}, or one {flag} "
                f"comma-separated ({flag} {example}), not both."
            )
        replaced[given[0][0]] = [flag, *(PAIR_SEP.join(side) for side in zip(*values, strict=True))]
        replaced |= {at: [] for at, _, _ in given[1:]}
    spans = {at: n for given in found.values() for at, n, _ in given if at in replaced}
    out, i = [], 0
    while i < len(args):
        out += replaced.get(i, [args[i]])
        i += spans.get(i, 1)
    return out


class StageCommand(TyperCommand):
    """`run`, `tune`, `invert` and `edit`: their per-target flags may be given once per target."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        return super().parse_args(ctx, per_target_flags(self, args))


for _stage in ("run", "tune", "invert", "edit"):
    app.command(_stage, cls=StageCommand)(_stage_command("run" if _stage == "edit" else _stage, _stage))


@app.command()
def export(
    entry: Annotated[
        Path,
        typer.Argument(
            help="A workspace clip folder (clip-<key>/) or its tune.safetensors; or a clip's key (or a unique start "
            "of it) in --workspace, as `videop2p workspace list` shows it."
        ),
    ],
    out: Annotated[Path, typer.Argument(help="Folder to write.")],
    fmt: Annotated[
        str,
        typer.Option(
            "--format", help="diffusers-delta (ours) or tune-a-video (the authors' folder; video-p2p names it too)."
        ),
    ] = ExportFormat.DELTA.value,
    model: Annotated[
        str | None,
        typer.Option(help="The model the clip was tuned from (default: the bundled toy model, videop2p-toy)."),
    ] = None,
    model_config: Annotated[str | None, typer.Option(help=MODEL_CONFIG_HELP)] = None,
    lora: LoraOpt = None,
    embedding: EmbeddingOpt = None,
    vae: VaeOpt = None,
    workspace: Annotated[
        Path, typer.Option("--workspace", help="The workspace an ENTRY given as a clip's key is read from.")
    ] = Path(WORKSPACE_NAME),
) -> None:
    """Write a tuned clip as our delta, or as a Tune-A-Video / Video-P2P folder their scripts load."""
    loras, embeddings = _adapter_flags(lora, embedding)
    if not entry.exists() and len(entry.parts) == 1:  # a key, as `workspace list` shows it, or its folder's name
        if not workspace.is_dir():
            _fail(
                f"{entry} is no clip folder here, and no workspace is at {workspace} to find it as a clip's key in; give "
                f"the clip's folder (WORKSPACE/clip-KEY), or its key with --workspace WORKSPACE"
                f"{_workspaces_near(workspace.parent)}."
            )
        key = str(entry).removeprefix("clip-")
        entry = _clip_by_key(_open_workspace(workspace).clips(), key, workspace, repr(str(entry))).folder
    from videop2p.exporting import check_export_folder, export_tuned, tuned_delta
    from videop2p.models.loading import load_components

    _setup_logging()
    try:
        fmt = ExportFormat(fmt)
    except ValueError:
        _fail(f"--format {not_a_member(fmt, ExportFormat)}.")
    _quiet_loaders()
    try:
        check_export_folder(out, fmt)
        tuned_delta(entry)  # before the model is loaded
        components = load_components(model, config=model_config, lora=loras, embeddings=embeddings, vae=vae)
        with _long_run(None, "nothing was written; run the same command again.", ""):  # a full disk: one line
            path = export_tuned(components, entry, out, fmt)
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
    typer.echo(f"{fmt.value} written to {path}")


WORKSPACE_HELP = f"The workspace folder (`run`'s default: {WORKSPACE_NAME} beside the output folder)."


WorkspaceOpt = Annotated[
    Path | None, typer.Option("--workspace", help="The workspace folder as `run` names it (in place of ROOT).")
]


def _workspace_root(root: Path, workspace: Path | None) -> Path:
    """The folder a `workspace` command reads: its ROOT, or `--workspace`, as `run` and `batch` name it."""
    if workspace is None:
        return root
    if root != Path(WORKSPACE_NAME) and root != workspace:
        _fail(f"give the workspace once: ROOT {str(root)!r} and --workspace {str(workspace)!r} differ.")
    return workspace


def _is_workspace(folder: Path) -> bool:
    """Whether `folder` holds a videop2p workspace: its history, or a tuned clip's folder."""
    return (folder / "events.jsonl").is_file() or any(folder.glob("clip-*/key.json"))


def _workspaces_near(folder: Path, depth: int = 3, most: int = 5) -> str:
    """The workspaces of `run`'s default name (`.videop2p-workspace`, beside an output folder) in `folder` and up
    to `depth` levels below it, said after an error that found none where it looked ("; found: outputs/...");
    "" where there are none."""
    found = [
        w
        for level in range(1, depth + 1)
        for w in sorted(folder.glob("/".join(["*"] * (level - 1) + [WORKSPACE_NAME])))
        if w.is_dir() and _is_workspace(w)
    ]
    if not found:
        return ""
    more = f" and {len(found) - most} more" if len(found) > most else ""
    return f"; found: {', '.join(str(w) for w in found[:most])}{more}"


def _open_workspace(root: Path):
    """The workspace at `root`, or a one-line error when there is none."""
    from videop2p.store.workspace import Workspace

    if not root.is_dir():
        why = "it is a file" if root.is_file() else "the folder does not exist"
        _fail(
            f"no workspace at {root}: {why}; give the folder a run kept its work in (its --workspace, or "
            f".videop2p-workspace beside its output folder){_workspaces_near(root.parent)}."
        )
    if not _is_workspace(root):
        _fail(
            f"{root} is not a videop2p workspace: it has no clip-*/ folders and no events.jsonl"
            f"{_workspaces_near(root.parent)}."
        )
    return Workspace(root)


def _clip_by_key(clips: list, wanted: str, root: Path, named: str):
    """The one clip of `root`'s `clips` whose key starts with `wanted`, or a one-line error naming it as `named`."""
    matches = [c for c in clips if c.key.startswith(wanted)]
    if len(matches) != 1:
        known = ", ".join(c.key for c in clips) or "none"
        what = "matches no clip" if not matches else f"matches {len(matches)} clips"
        _fail(f"{named} {what} of {root}; its clips: {known}.")
    return matches[0]


def _cut(text: str, width: int, left: bool = False) -> str:
    """`text` in at most `width` characters: its end (or, `left`, its start) cut to an ellipsis."""
    if len(text) <= width:
        return text
    return "…" + text[len(text) - width + 1 :] if left else text[: width - 1] + "…"


def _shown_path(path: str) -> str:
    """An absolute path as a listing shows it: from the current folder where it is under it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def _clip_record(c, apart: dict) -> dict:
    """A `workspace list --json` line: what the table's row says, unshortened, with the clip's identity."""
    return {
        "key": c.key,
        "folder": str(c.folder),
        **{name: c.seen.get(name) for name in ("model", "clip")},
        "identity": c.identity,
        "tuned": c.tuned,
        "tuning_at": c.tuning_at,
        "inversions": c.inversions,
        "edits": c.edits,
        "unfinished": c.unfinished,
        "bytes": c.size_bytes,
        "last_used": c.last_used,
        "differs_in": apart,
    }


# `workspace list`'s columns: header, and whether its cells are right-aligned (numbers)
_LIST_COLUMNS = (
    ("clip", False), ("model", False), ("video", False), ("prompt", False), ("frames", True), ("size", True),
    ("tuning", True), ("inversions", True), ("edits", True), ("unfinished", True), ("MiB", True),
    ("last used", False), ("differs in", False),
)  # fmt: skip


def _clip_cells(c, apart: dict) -> list[str]:
    """A `workspace list` row's cells, as `_LIST_COLUMNS` names them; `apart`: its tuning settings that differ
    from another kept tuning of its clip."""
    import datetime

    from videop2p.store.workspace import seen_model_name

    size = "x".join(str(n) for n in c.identity.get("size", [])) or "?"
    tune = c.identity.get("tune", {})
    steps = tune.get("steps", "?")
    if c.tuned:
        tuned = f"{steps}"
    elif c.tuning_at is not None:  # a stopped tuning: how far its kept state got
        tuned = f"{c.tuning_at}/{steps}"
    else:
        tuned = "no"
    if tuned != "no" and isinstance(tune.get("lr"), int | float):  # what tells two tunings of a clip apart
        tuned += f" lr {tune['lr']:g}"
    used = datetime.datetime.fromtimestamp(c.last_used).strftime("%Y-%m-%d %H:%M")
    prompt = _cut(str(c.identity.get("prompt", "?")), 40)
    # the name its latest run loaded it by, else the fingerprint `videop2p info` prints after a model's name
    model = _cut(seen_model_name(c.seen) or str(c.identity.get("model", "?")), 24)
    video = _cut(_shown_path(c.seen["clip"]), 32, left=True) if "clip" in c.seen else "-"  # - : not said
    differs = "  ".join(f"{k} {v}" for k, v in apart.items() if k not in ("tune.steps", "tune.lr"))  # shown already
    counts = (c.inversions, c.edits, c.unfinished)
    frames = c.identity.get("num_frames", "?")
    return [c.key, model, video, prompt, str(frames), size, tuned, *map(str, counts), f"{c.size_bytes / 2**20:.1f}",
            used, differs]  # fmt: skip


def _table(rows: list[list[str]], columns: tuple[tuple[str, bool], ...]) -> list[str]:
    """`rows` under `columns`' headers, each column as wide as its widest cell, two spaces apart."""
    cells = [[name for name, _ in columns], *rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return [
        "  ".join(
            cell.rjust(w) if right else cell.ljust(w) for cell, w, (_, right) in zip(row, widths, columns, strict=True)
        ).rstrip()
        for row in cells
    ]


@workspace_app.command(
    "list",
    help="List the tuned clips kept in a workspace: model and video (as their latest run named them), prompt, "
    "frames, size, tuning, what is kept, disk use, last use, and for a clip tuned more than once, the settings its "
    "tunings differ in.",  # one line: typer keeps breaks
)
def workspace_list(
    root: Annotated[Path, typer.Argument(help=WORKSPACE_HELP)] = Path(WORKSPACE_NAME),
    workspace: WorkspaceOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object a clip, a line each, for scripts (its key.json too).")
    ] = False,
) -> None:
    """`videop2p workspace list` (its help above)."""
    from videop2p.store.workspace import set_apart

    root = _workspace_root(root, workspace)
    clips = _open_workspace(root).clips()
    if as_json:
        for c, apart in zip(clips, set_apart([c.identity for c in clips]), strict=True):
            typer.echo(json.dumps(_clip_record(c, apart)))
        return
    rows = [_clip_cells(c, apart) for c, apart in zip(clips, set_apart([c.identity for c in clips]), strict=True)]
    for line in _table(rows, _LIST_COLUMNS):
        typer.echo(line)
    total = sum(c.size_bytes for c in clips) / 2**20
    typer.echo(f"{len(clips)} clip(s), {total:.1f} MiB in {root}")


@workspace_app.command("remove")
def workspace_remove(
    root: Annotated[Path, typer.Argument(help=WORKSPACE_HELP)] = Path(WORKSPACE_NAME),
    clip: Annotated[
        list[str] | None,
        typer.Option("--clip", help="A clip's key (or a unique start of it), as `list` shows; repeatable."),
    ] = None,
    older_than: Annotated[
        float | None, typer.Option("--older-than", help="Clips not used for more than this many days.")
    ] = None,
    unfinished: Annotated[
        bool,
        typer.Option(
            "--unfinished", help="Remove only the kept states of stopped stages (of every clip, or those chosen)."
        ),
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be removed; remove nothing.")] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """Remove tuned clips (with their inversions and edits) or the kept states of stopped stages."""
    import time

    from videop2p.config import check_number

    root = _workspace_root(root, workspace)
    if not clip and older_than is None and not unfinished:
        _fail("say what to remove: --clip KEY, --older-than DAYS or --unfinished.")
    if older_than is not None:
        _check_own_flags(lambda days: check_number(None, "older_than", days, 0.0), older_than)
    if (blank := next((c for c in clip or [] if not c.strip()), None)) is not None:  # starts every key
        _fail(
            f"--clip {blank!r} names no clip; give a key (or a unique start of one) as `videop2p workspace list` shows."
        )
    workspace = _open_workspace(root)
    clips = workspace.clips()
    chosen = clips
    if clip:
        chosen = []
        for wanted in clip:
            match = _clip_by_key(clips, wanted, root, f"--clip {wanted!r}")
            chosen += [match] if match not in chosen else []
    if older_than is not None:
        cutoff = time.time() - older_than * 86400
        chosen = [c for c in chosen if c.last_used < cutoff]
    if unfinished:
        chosen = [c for c in chosen if c.unfinished]
    freed = 0
    for c in chosen:
        what = "the kept states of" if unfinished else "clip"
        typer.echo(f"{'would remove' if dry_run else 'removed'} {what} {c.key} ({c.identity.get('prompt', '?')})")
        freed += workspace.remove(c, unfinished_only=unfinished, dry_run=dry_run)
    if not chosen:
        typer.echo("nothing to remove")
    else:
        typer.echo(f"{'would free' if dry_run else 'freed'} {freed / 2**20:.1f} MiB")


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("videop2p-demo"),
    tune_steps: Annotated[int, typer.Option(help="Tuning steps.")] = DEMO_TUNE_STEPS,
    steps: Annotated[int, typer.Option(help="DDIM steps.")] = default_of("steps"),
    device: Annotated[str, typer.Option(help=f"{DEVICE_HELP}.")] = default_of("device"),
    dtype: Annotated[str, typer.Option(help=f"{DTYPE_HELP}.")] = default_of("dtype"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Render a toy clip and make three edits with the bundled model (no download)."""
    from videop2p.config import InversionConfig, TuneConfig, check_inversion, check_tune
    from videop2p.demo import DemoSettings, run_demo

    _check_flag(check_tune, TuneConfig(steps=tune_steps))
    _check_flag(check_inversion, InversionConfig(steps=steps))
    _check_device_dtype(device, dtype)
    _check_folder("--out", out, "for the demo's outputs")
    _setup_logging(quiet)
    _quiet_loaders()
    with _long_run(device, f"the same command resumes it from its workspace ({out / 'workspace'}).", ""):
        try:
            summary = run_demo(out, DemoSettings(tune_steps, steps, device=device, dtype=dtype, quiet=quiet))
        except ValueError as e:  # the model's own limits (its scheduler's steps), a stage that diverged
            _fail(str(e))
    typer.echo(summary)


@toy_app.command("render")
def toy_render(
    out_dir: Path,
    shape: Annotated[str, typer.Option(help=_choices(Shape))] = Shape.CIRCLE.value,
    color: Annotated[str, typer.Option(help=_choices(Color))] = Color.RED.value,
    background: Annotated[str, typer.Option(help=_choices(Background))] = ToyClipSpec.background.value,
    motion: Annotated[str, typer.Option(help=_choices(Motion))] = ToyClipSpec.motion.value,
    object_size: Annotated[str, typer.Option("--object-size", help=_choices(Size))] = ToyObject.size.value,
    frames: int = ToyClipSpec.frames,
    size: int = ToyClipSpec.size,
    seed: int = ToyClipSpec.seed,
) -> None:
    """Render a toy clip: mp4, PNG frames, masks and clip.json."""
    from videop2p.io.writing import write_frames, write_mp4
    from videop2p.toy.world import parse_enum, render_clip

    _setup_logging()
    try:
        obj = ToyObject(
            parse_enum(Shape, shape), parse_enum(Color, color), parse_enum(Size, object_size, "object_size")
        )
        spec = ToyClipSpec([obj], parse_enum(Background, background), parse_enum(Motion, motion), frames, size, seed)
        clip = render_clip(spec)
    except OptionError as e:
        _fail(_flag(e))
    except ValueError as e:
        _fail(str(e))
    _check_folder("OUT_DIR", out_dir, "for the clip")
    with _long_run(None, "nothing was kept; run the same command again."), staged_files(out_dir) as stage:
        write_mp4(clip.frames, stage / "clip.mp4")
        write_frames(clip.frames, stage / "frames")
        masks = (clip.masks.any(axis=1)[..., None].repeat(3, axis=-1) * 255).astype("uint8")
        write_frames(masks, stage / "masks")
        meta = {"caption": clip.caption, "params": spec.to_dict(), "centers": clip.centers.tolist()}
        write_json(stage / "clip.json", meta)
    typer.echo(f"wrote {out_dir} ({clip.caption!r})")


def _as_flag(key: str, value=None) -> str:
    """A setting as its command-line flag, with its value when given."""
    return f"--{key.replace('_', '-')}" + ("" if value is None else f" {value!r}")


TEXT_RMS_HELP = (
    "Save the model with its text outputs rescaled so that the empty prompt's embedding has this RMS, and its "
    "cross-attention keys and values scaled back: the same model, on which null-text's fixed learning rate moves "
    "the embedding further for its size (0: as trained)."
)


def _toy_default(name: str, settings: type | None = None):
    """A toy-training default, read from its dataclass (torch-free): `settings`, else the model's or the
    training's config, whichever has the field."""
    if settings is None:
        settings = ToyModelConfig if name in ToyModelConfig.__dataclass_fields__ else ToyTrainConfig
    return getattr(settings(), name)


@toy_app.command("train")
def toy_train(
    out_dir: Path,
    vae_steps: int = _toy_default("vae_steps"),
    decoder_steps: Annotated[
        int,
        typer.Option(
            help="Steps that sharpen the VAE's decoder on whole frames, its encoder (and so the latents) frozen "
            "(0: none)."
        ),
    ] = _toy_default("decoder_steps"),
    decoder_lr: Annotated[float, typer.Option(help="Peak learning rate of the decoder steps.")] = _toy_default(
        "decoder_lr"
    ),
    decoder_splice: Annotated[
        float,
        typer.Option(
            help="Share of each decoder batch spliced from two frames' latents (one's object cells over the "
            "other), decoded into the same pixels spliced, so that local blending's pasted latents decode "
            "as pasted pixels (0: none)."
        ),
    ] = _toy_default("decoder_splice"),
    unet_steps: int = _toy_default("unet_steps"),
    dataset_size: int = _toy_default("dataset_size"),
    batch_size: int = _toy_default("batch_size"),
    seed: int = _toy_default("seed"),
    image_size: Annotated[
        int, typer.Option(help="Side of the training frames in pixels (a multiple of the model's downsampling).")
    ] = _toy_default("image_size"),
    text_layers: Annotated[
        int, typer.Option(help="CLIP text encoder depth; 0 keeps each word's embedding to itself.")
    ] = _toy_default("text_layers"),
    token_weight: Annotated[
        float, typer.Option(help="Weight of the token loss that grounds words on their regions (0: none).")
    ] = _toy_default("token_weight"),
    prediction_type: Annotated[
        str, typer.Option(help="What the UNet learns to predict: epsilon or v_prediction.")
    ] = _toy_default("prediction_type"),
    snr_shift: Annotated[
        float,
        typer.Option(
            help="Raise the log-SNR of Stable Diffusion's schedule by 2 ln(this) (1: SD's schedule; "
            "64 / the latent side: SD's layout timing, Hoogeboom et al. 2023)."
        ),
    ] = _toy_default("snr_shift"),
    zero_terminal_snr: Annotated[
        bool, typer.Option(help="Rescale the schedule so its last timestep is pure noise (needs v_prediction).")
    ] = _toy_default("zero_terminal_snr"),
    timestep_spacing: Annotated[
        str, typer.Option(help="DDIM timesteps: leading, trailing (starts at the last timestep) or linspace.")
    ] = _toy_default("timestep_spacing"),
    offset_noise: Annotated[float, typer.Option(help="Per-channel offset-noise scale (0: none).")] = _toy_default(
        "offset_noise"
    ),
    caption_dropout: Annotated[
        float, typer.Option(help="Share of empty captions, which train the unconditional branch of guidance.")
    ] = _toy_default("caption_dropout"),
    color_dropout: Annotated[
        float, typer.Option(help='Share of captions without their colour word ("a circle moving on the sand").')
    ] = _toy_default("color_dropout"),
    vae_from: Annotated[
        Path | None, typer.Option(help="Reuse this model folder's VAE instead of training one.")
    ] = None,
    init_from: Annotated[
        Path | None, typer.Option(help="Start the UNet and text encoder from this model folder (same sizes).")
    ] = None,
    unet_lr: Annotated[float, typer.Option(help="Peak learning rate of phase 2 (cosine decay).")] = _toy_default(
        "unet_lr"
    ),
    text_rms: Annotated[float, typer.Option(help=TEXT_RMS_HELP)] = _toy_default("text_rms"),
    device: Annotated[str, typer.Option(help=f"{DEVICE_HELP}.")] = default_of("device"),
    workers: Annotated[int, typer.Option(help="Processes that render the dataset.")] = 0,
    threads: int = 0,
    time_budget: Annotated[
        float,
        typer.Option(help="Seconds for the whole run; the UNet schedule is shortened to fit (0: no limit)."),
    ] = 0.0,
) -> None:
    """Train the toy model, from scratch or from --init-from (resumes from OUT_DIR/ckpt when interrupted)."""
    from videop2p.models.loading import check_device
    from videop2p.models.schedulers import check_schedule
    from videop2p.toy.world import MAX_FRAME_SIDE, MIN_FRAME_SIDE

    _setup_logging()
    _quiet_loaders()
    model = ToyModelConfig(image_size=image_size, text_layers=text_layers)
    cfg = ToyTrainConfig(
        model=model,
        vae_steps=vae_steps,
        decoder_steps=decoder_steps,
        decoder_lr=decoder_lr,
        decoder_splice=decoder_splice,
        unet_steps=unet_steps,
        dataset_size=dataset_size,
        batch_size=batch_size,
        seed=seed,
        token_weight=token_weight,
        prediction_type=prediction_type,
        snr_shift=snr_shift,
        zero_terminal_snr=zero_terminal_snr,
        timestep_spacing=timestep_spacing,
        offset_noise=offset_noise,
        caption_dropout=caption_dropout,
        color_dropout=color_dropout,
        vae_from=str(vae_from) if vae_from else None,
        init_from=str(init_from) if init_from else None,
        unet_lr=unet_lr,
        text_rms=text_rms,
        device=device,
        workers=workers,
        time_budget_s=time_budget,
    )
    if not MIN_FRAME_SIDE <= image_size <= MAX_FRAME_SIDE or image_size % model.size_step:  # before its >= 1
        _fail(
            f"--image-size {image_size} is not valid; expected a multiple of {model.size_step} from {MIN_FRAME_SIDE} "
            f"to {MAX_FRAME_SIDE} pixels (the toy world's frames)."
        )
    _check_own_flags(check_numbers, cfg)
    _check_folder("OUT_DIR", out_dir, "for the training's checkpoints and model")
    if vae_from is not None and not (vae_from / "vae").is_dir():
        _fail(f"--vae-from {vae_from}: no vae/ folder there; give a diffusers model folder.")
    if init_from is not None and not (init_from / "unet").is_dir():
        _fail(f"--init-from {init_from}: no unet/ folder there; give a diffusers model folder.")
    from videop2p.toy.train import check_starting_weights, train_toy_model

    try:
        check_schedule(prediction_type, snr_shift, zero_terminal_snr, timestep_spacing, show=_as_flag)
        check_device(device)
        check_starting_weights(cfg)
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
    _set_threads(threads)

    resume = f"the same command resumes the training from its checkpoint in {out_dir}."
    with _long_run(device, resume, "a smaller --batch-size"):
        path = train_toy_model(out_dir, cfg)
    typer.echo(f"model written to {path}")


@toy_app.command("export")
def toy_export(
    out_dir: Path,
    dest: Path,
    text_rms: Annotated[float | None, typer.Option(help=TEXT_RMS_HELP + " Default: the run's own setting.")] = None,
) -> None:
    """Write a model folder from the last checkpoint (EMA weights) of an unfinished training run."""
    from dataclasses import replace

    from videop2p.toy.train import export_checkpoint, read_train_config

    _setup_logging()
    _quiet_loaders()
    if not (out_dir / "ckpt" / "unet.pt").exists():
        _fail(f"{out_dir}: no ckpt/unet.pt there; is it a `videop2p toy train` folder?")
    cfg = read_train_config(out_dir / "train_config.json")
    if text_rms is not None:
        cfg = replace(cfg, text_rms=text_rms)
        _check_own_flags(check_numbers, cfg)
    _check_folder("DEST", dest, "for the model")
    with _long_run(None, "nothing was written; run the same command again.", ""):
        path = export_checkpoint(out_dir, dest, cfg)
    typer.echo(f"model written to {path}")


@toy_app.command("ground")
def toy_ground(
    out_dir: Path,
    init: Annotated[
        Path | None, typer.Option(help="Model folder to start from (default: the bundled toy model).")
    ] = None,
    steps: int = _toy_default("steps", GroundingConfig),
    lr: float = _toy_default("lr", GroundingConfig),
    batch_size: int = _toy_default("batch_size", GroundingConfig),
    weight: Annotated[float, typer.Option(help="Weight of the token loss beside the denoising loss.")] = _toy_default(
        "weight", GroundingConfig
    ),
    dataset_size: int = _toy_default("dataset_size", GroundingConfig),
    seed: int = _toy_default("seed", GroundingConfig),
    threads: int = 0,
) -> None:
    """Ground caption words' cross-attention on their regions (resumes from OUT_DIR/ckpt)."""
    from videop2p.models.loading import bundled_model_path
    from videop2p.toy.grounding import ground_toy_model

    _setup_logging()
    _quiet_loaders()
    cfg = GroundingConfig(
        steps=steps, lr=lr, batch_size=batch_size, weight=weight, dataset_size=dataset_size, seed=seed
    )
    _check_own_flags(check_numbers, cfg)
    _check_folder("OUT_DIR", out_dir, "for the grounding's checkpoints and model")
    if init is not None and not (init / "unet").is_dir():
        _fail(f"--init {init}: no unet/ folder there; give a diffusers model folder.")
    _set_threads(threads)
    with _long_run(None, f"the same command resumes the grounding from its checkpoint in {out_dir}.", ""):
        path = ground_toy_model(init or bundled_model_path(), out_dir, cfg)
    typer.echo(f"model written to {path}")


@app.command()
def ui(
    model: Annotated[str | None, typer.Option(help=MODEL_HELP)] = None,
    port: Annotated[int, typer.Option(help="Port to serve the editor on.")] = UiSettings.port,
    host: Annotated[
        str, typer.Option(help="Interface to listen on (0.0.0.0 to share on a network).")
    ] = UiSettings.host,
    root: Annotated[Path, typer.Option(help="Folder for the workspace, uploads and results.")] = Path(UiSettings.root),
    device: Annotated[str, typer.Option(help=f"{DEVICE_HELP}.")] = default_of("device"),
    dtype: Annotated[str, typer.Option(help=f"{DTYPE_HELP}.")] = default_of("dtype"),
    model_config: Annotated[str | None, typer.Option(help=MODEL_CONFIG_HELP)] = None,
    lora: LoraOpt = None,
    embedding: EmbeddingOpt = None,
    vae: VaeOpt = None,
) -> None:
    """Start the web editor (Gradio) on localhost."""
    from videop2p.config import check_number
    from videop2p.models.loading import check_adapter_files, check_model_config, check_model_path
    from videop2p.models.vae import check_vae_spec

    _check_own_flags(lambda p: check_number(None, "port", p, 1, 65535, whole=True), port)
    loras, embeddings = _adapter_flags(lora, embedding)
    _check_device_dtype(device, dtype)
    try:
        if model is not None:
            check_model_path(model)
        check_model_config(model, model_config)
        check_adapter_files(loras, embeddings)
        if vae is not None:
            check_vae_spec(vae)
    except (ValueError, FileNotFoundError) as e:  # ModelNotFoundError is a FileNotFoundError
        _fail(str(e))
    _check_folder("--root", root, "for the workspace, uploads and results")
    _check_listen(host, port)
    _setup_logging()
    _quiet_loaders()
    from videop2p.ui import import_gradio, launch

    try:
        import_gradio()  # before the editor's folder is made or its model loaded
    except ImportError as e:
        _fail(str(e))
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        _fail(f"--root {str(root)!r} cannot be made ({e.strerror}); give a folder you can write in.")
    typer.echo(f"videop2p editor on http://{host}:{port} (workspace and results in {root.resolve()})")
    try:
        launch(
            model,
            root,
            host,
            port,
            device,
            dtype,
            model_config=model_config,
            lora=loras,
            embeddings=embeddings,
            vae=vae,
        )
    except OSError as e:  # the port taken between the check and the start, or a platform's own refusal
        _fail(f"the editor could not listen on {host}:{port}: {str(e).splitlines()[0]}")


def _check_listen(host: str, port: int) -> None:
    """The editor can listen on `host`:`port` (a name this machine resolves, a port not in use), checked by
    binding it as the server will (SO_REUSEADDR, as uvicorn does) before the model is loaded."""
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as e:  # UnicodeError: a label idna cannot encode ('a..b')
        reason = e.strerror if isinstance(e, socket.gaierror) else "not a valid host name"
        _fail(
            f"--host {host!r} is not a name or address to listen on ({reason}); "
            "give 127.0.0.1, 0.0.0.0 or one of this machine's addresses."
        )
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as e:
            _fail(f"cannot listen on {host}:{port} ({e.strerror}); give another --port, or a --host of this machine.")


@app.command()
def batch(
    jobs_file: Annotated[
        Path, typer.Argument(help="Jobs YAML: `jobs:` (list of run settings) and optional `defaults:`.")
    ],
    executor: Annotated[str, typer.Option(help="local (one process, in order) or ray.")] = BatchSettings.executor.value,
    address: Annotated[
        str | None, typer.Option(help="Ray cluster to join (e.g. ray://head:10001); default: a local Ray.")
    ] = BatchSettings.address,
    gpus_per_task: Annotated[
        float, typer.Option(help="GPUs per Ray task (1 on GPU clusters).")
    ] = BatchSettings.num_gpus,
    cpus_per_task: Annotated[
        float, typer.Option(help="CPUs per Ray task (also torch threads there).")
    ] = BatchSettings.num_cpus,
    out: Annotated[str | None, typer.Option(help="Output root, one folder per job (default: from the file).")] = None,
    workspace: Annotated[
        str | None, typer.Option(help="Workspace root; on Ray, a path every node sees (default: from the file).")
    ] = None,
    manifest: Annotated[Path | None, typer.Option(help="JSON manifest path (default: OUT/batch.json).")] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Warnings, errors and the summary only (no line per stage).")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Check every job here, then say which would run and what each of its stages would do (reuse "
            "the workspace's work or what a job before it computes, resume it, or compute it); nothing is "
            "computed or written.",
        ),
    ] = False,
) -> None:
    """Run many edits: tuning and inversion once per clip, failures isolated, finished jobs skipped."""
    import time

    from videop2p.batch import (
        BatchError,
        dry_run_batch,
        load_jobs,
        plan_table,
        run_batch,
        summary_table,
        write_manifest,
    )
    from videop2p.config import ConfigError, Executor, check_batch

    settings = BatchSettings(executor, address, gpus_per_task, cpus_per_task)
    _check_own_flags(check_batch, settings)
    _check_file("--manifest", manifest)
    settings.executor = Executor(executor)
    _setup_logging(quiet=quiet)
    _quiet_loaders()
    if dry_run:
        try:
            plans = dry_run_batch(load_jobs(jobs_file, out, workspace)[0])
        except (BatchError, ConfigError) as e:
            _fail(str(e))
        typer.echo(plan_table(plans))
        running = sum(p.status == "run" for p in plans)
        typer.echo(
            f"{len(plans)} jobs: {running} would run, {len(plans) - running} skipped; nothing was computed or written"
        )
        return
    with _long_run(None, "the same command skips every finished job and resumes the stopped one."):
        try:
            jobs, ws = load_jobs(jobs_file, out, workspace)
            started = time.perf_counter()
            results = run_batch(jobs, ws, settings)
        except (BatchError, ConfigError) as e:
            _fail(str(e))
    seconds = time.perf_counter() - started
    path = manifest or Path(jobs[0].config.out).parent / "batch.json"
    write_manifest(results, path, settings, seconds)
    typer.echo(summary_table(results))
    counts = {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed")}
    typer.echo(
        f"{len(results)} jobs in {seconds:.1f} s ({executor}): " + ", ".join(f"{v} {k}" for k, v in counts.items())
    )
    typer.echo(f"manifest: {path}")
    if counts["failed"]:
        raise typer.Exit(code=1)


EVAL_BUDGET, QUICK_BUDGET = EvalSettings(), quick_settings()  # the evaluation's budgets, as its help says them


@app.command("eval")
def eval_command(
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help=f"{QUICK_CASES} cases of {QUICK_BUDGET.frames} frames, {QUICK_BUDGET.tune_steps} tuning and "
            f"{QUICK_BUDGET.steps} DDIM steps, method {' and '.join(QUICK_BUDGET.methods)} only: a smoke run for CI.",
        ),
    ] = False,
    cases: Annotated[
        int | None, typer.Option(help=f"Number of cases (default {SUITE_CASES}, quick {QUICK_CASES}).")
    ] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the summary as JSON here.")] = None,
    out: Annotated[Path, typer.Option(help="Folder for tables, plots and frame strips.")] = Path("videop2p-eval"),
    model: Annotated[str | None, typer.Option(help="Model (default: the bundled toy model, videop2p-toy).")] = None,
    tune_steps: Annotated[
        int | None,
        typer.Option(
            help=f"Tuning steps per clip (default {EVAL_BUDGET.tune_steps}, quick {QUICK_BUDGET.tune_steps})."
        ),
    ] = None,
    tune_frames: Annotated[
        int | None, typer.Option(help="Frames per tuning step, the anchor included (default, 0: every frame).")
    ] = None,
    steps: Annotated[
        int | None, typer.Option(help=f"DDIM steps (default {EVAL_BUDGET.steps}, quick {QUICK_BUDGET.steps}).")
    ] = None,
    null_text_frames: Annotated[
        int | None,
        typer.Option(help="Frames the null-text loss reads per iteration, the anchor included (default, 0: every)."),
    ] = None,
    methods: Annotated[
        list[str] | None, typer.Option("--method", help=f"Only these methods (repeatable): {', '.join(Method)}.")
    ] = None,
    group_norm: Annotated[
        str, typer.Option(help="Resnet GroupNorm statistics: clip (official) or frame (the kept cases in docs/).")
    ] = default_of("group_norm"),
    clip_model: Annotated[
        str | None, typer.Option(help="Local CLIP model (folder or cached hub id) for the optional CLIP metrics.")
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Read back cases that OUT/cases already holds with the same settings.")
    ] = True,
    shard: Annotated[
        str | None,
        typer.Option(help="K/N: run only the cases whose index is K modulo N (split a suite over processes)."),
    ] = None,
    device: Annotated[str, typer.Option(help=f"{DEVICE_HELP}.")] = default_of("device"),
    dtype: Annotated[str, typer.Option(help=f"{DTYPE_HELP}.")] = default_of("dtype"),
) -> None:
    """Measure edit quality on a seeded toy-world suite and compare Video-P2P with the baselines."""
    from videop2p.config import InversionConfig, TuneConfig, check_inversion, check_number, check_tune, zero_is_all
    from videop2p.evaluation import NO_PLOTS, evaluate, load_clip_scorer
    from videop2p.models.loading import load_components, parse_dtype
    from videop2p.sampling import check_steps

    _check_folder("--out", out, "for the tables, plots and frame strips")
    _check_file("--json", json_path)
    _check_device_dtype(device, dtype)
    _setup_logging()
    _quiet_loaders()
    shard_kn = _parse_shard(shard) if shard is not None else None
    if clip_model is not None and not clip_model.strip():
        _fail(
            f"--clip-model {clip_model!r} names no model; give a CLIP model's folder or cached hub id, or leave it out."
        )
    if cases is not None:
        _check_own_flags(lambda n: check_number(None, "cases", n, 1, whole=True, cap=COUNT_MAX), cases)
    n = cases or (QUICK_CASES if quick else SUITE_CASES)
    s = quick_settings() if quick else EvalSettings()
    tune_frames = zero_is_all(TuneConfig, "frames", _given(tune_frames, s.tune_frames))  # 0: every frame
    null_text_frames = zero_is_all(InversionConfig, "frames", _given(null_text_frames, s.null_text_frames))
    tune = TuneConfig(steps=_given(tune_steps, s.tune_steps), frames=tune_frames)
    inversion = InversionConfig(steps=_given(steps, s.steps), frames=null_text_frames)
    _check_flag(check_tune, tune)  # a run's own checks of the budget's flags
    _check_flag(check_inversion, inversion)
    s.tune_steps, s.tune_frames = tune.steps, tune.frames
    s.steps, s.null_text_frames = inversion.steps, inversion.frames
    if methods:  # named as the tables write them, in any case
        named = {m.value.lower(): m for m in Method}
        bad = next((m for m in methods if m.strip().lower() not in named), None)
        if bad is not None:
            _fail(f"--method {not_one_of(bad, (m.value for m in Method))}.")
        s.methods = [named[m.strip().lower()] for m in methods]
    try:
        s.group_norm = GroupNormMode(group_norm)
    except ValueError:
        _fail(f"--group-norm {not_a_member(group_norm, GroupNormMode)}.")
    try:  # before the model: a CLIP model asked for and not there is said before any work
        scorer = load_clip_scorer(clip_model)
    except ValueError as e:
        _fail(str(e))
    again = f"the cases it finished are kept in {out / 'cases'}; the same command" + (
        " reads them back and goes on." if resume else ", without --no-resume, reads them back and goes on."
    )
    with _long_run(device, again, _lighter_flags(["tune_frames", "null_text_frames"])):
        try:
            comps = load_components(model, device=device, dtype=parse_dtype(dtype))
            check_steps(comps.scheduler, s.steps)
            result = evaluate(comps, n, out, s, clip_model=scorer, resume=resume, shard=shard_kn)
        except (ValueError, FileNotFoundError) as e:  # a missing model is a FileNotFoundError (ModelNotFoundError)
            _fail(str(e))
    typer.echo((out / "summary.md").read_text(encoding="utf-8"))
    kept = f" ({result['cases_read_back']} read back from {out / 'cases'})" if result["cases_read_back"] else ""
    part = f" of shard {shard}" if shard else ""
    written = f"tables and plots in {out}" if result["plots"] else f"tables in {out} ({NO_PLOTS})"
    typer.echo(f"{result['cases']} cases{part}{kept} in {result['seconds']:.0f} s; {written}; {result['clip']}")
    if result["bars_method"] is None:
        typer.echo(f"bars not checked: they are {Method.VIDEO_P2P.value}'s (or its fast mode's), which did not run")
    for name, bar in result["bars"].items():
        verdict = "met" if bar["met"] else "MISSED"
        typer.echo(f"bar {name} >= {bar['bar']}: {bar['measured']:.3f} ({verdict}, {result['bars_method']})")
    if json_path is not None:
        write_json(json_path, result)


def _given(flag, default):
    """A flag's value where it was given (0 included), else the default."""
    return default if flag is None else flag


def _parse_shard(text: str) -> tuple[int, int]:
    """K/N, e.g. "1/4" -> (1, 4), or a CLI error naming the value."""
    k, sep, n = text.partition("/")
    try:
        shard = (int(k), int(n))
    except ValueError:
        shard = None
    if not sep or shard is None or not 0 <= shard[0] < shard[1]:
        _fail(f"--shard {text!r} must be K/N with 0 <= K < N, e.g. 0/2.")
    return shard


@toy_app.command("eval")
def toy_eval(
    model: Annotated[
        str | None, typer.Option(help="Model folder (default: the bundled toy model, videop2p-toy).")
    ] = None,
    seeds: Annotated[int, typer.Option(help="Images per caption, each from its own seed.")] = TOY_EVAL_SEEDS,
    steps: Annotated[int, typer.Option(help="DDIM steps (those of videop2p run).")] = default_of("steps"),
    guidance: Annotated[float, typer.Option(help="Classifier-free guidance (that of videop2p run).")] = default_of(
        "guidance"
    ),
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write the figures as JSON.")] = None,
    device: Annotated[str, typer.Option(help=f"{DEVICE_HELP}.")] = default_of("device"),
) -> None:
    """Judge the toy model: colour, shape and background accuracy of generated images, VAE PSNR."""
    from videop2p.models.loading import ModelLoadError, ModelNotFoundError, model_location
    from videop2p.toy.quality import check_eval_inputs, evaluate_model, format_report

    _setup_logging()
    _quiet_loaders()
    _check_file("--json", json_path)
    path = model_location(model)
    try:
        check_eval_inputs(path, seeds, steps, guidance, device)
    except OptionError as e:
        _fail(_flag(e))
    except (ValueError, FileNotFoundError) as e:  # ModelNotFoundError is a FileNotFoundError
        _fail(str(e))
    try:
        result = evaluate_model(path, seeds=seeds, steps=steps, guidance=guidance, device=device)
    except (ModelLoadError, ModelNotFoundError) as e:  # weights its configs do not make, found as it loads
        _fail(str(e))
    typer.echo(format_report(result))
    if json_path is not None:
        write_json(json_path, result)


UsageError = typer.BadParameter.__base__  # click's UsageError, from the click this typer uses (vendored or not)
EXPECTED = {"valid integer": "expected a whole number", "valid number": "expected a number"}  # typer's words -> ours


def _given_values(options: list[str], args: list[str]) -> list[str]:
    """The values given on the command line to an option under any of its names (`--opt VALUE` or
    `--opt=VALUE`), in order."""
    values = []
    for i, arg in enumerate(args):
        if arg in options and i + 1 < len(args):
            values.append(args[i + 1])
        elif arg.startswith(tuple(f"{o}=" for o in options if o.startswith("--"))):
            values.append(arg.split("=", 1)[1])
    return values


def _bad_value(param, args: list[str]) -> str | None:
    """The value of `param` that a usage error is about: the last one given (the one click reads), or
    for a repeatable option the first that its type refuses."""
    values = _given_values([o for o in getattr(param, "opts", []) if o.startswith("-")], args)
    if getattr(param, "multiple", False):
        for value in values:
            try:
                param.type.convert(value, param, None)
            except UsageError:
                return value
    return values[-1] if values else None


def _flag_taken_as_word(command, args: list[str]) -> str | None:
    """An option of `command` of several words given too few, which took the next flag as one of them
    (`--blend car --out o1` reads `--out` as the target word, then `o1` is an extra argument), or which ends
    the command line: said so, or None."""
    for param in getattr(command, "params", []):
        if not isinstance(param.nargs, int) or param.nargs < 2:
            continue
        for i, arg in enumerate(args):
            if arg not in param.opts:
                continue
            taken = args[i + 1 : i + 1 + param.nargs]
            flag = next((t for t in taken if t.startswith("--")), None)
            words = taken[: taken.index(flag)] if flag is not None else taken
            if flag is None and len(taken) == param.nargs:
                continue
            given = f"only {' '.join(repr(w) for w in words)}" if words else "none"
            where = f"before {flag}" if flag is not None else "at the end of the command"
            return f"{arg} takes {param.nargs} words; it was given {given} {where}."
    return None


def usage_line(e: Exception, args: list[str]) -> str:
    """A usage error (an unknown command or option, a value of the wrong type, a missing argument) as
    the one line every other error is: the option, the value given, what would be valid."""
    ctx = getattr(e, "ctx", None)  # None for an error of parsing (an option given too few words)
    command, named = (ctx.command, None) if ctx is not None else _named_command(args)
    message = _flag_taken_as_word(command, args) or e.format_message().strip()
    param = getattr(e, "param", None)
    opts = [o for o in getattr(param, "opts", []) if o.startswith("-")]
    value = _bad_value(param, args)
    if isinstance(e, typer.BadParameter) and value is not None:
        reason = next((ours for theirs, ours in EXPECTED.items() if theirs in e.message), e.message.rstrip("."))
        message = f"{opts[0]} {value!r} is not valid; {reason[0].lower()}{reason[1:]}."
    message = " ".join(message.split())
    message += "" if message.endswith((".", "?", "!")) else "."
    where = ctx.command_path if ctx is not None else " ".join(["videop2p", *args[:named]])  # the line's command
    return message + f" See `{where} --help`."


FOLDER_FLAGS = ("--out", "--root", "--workspace", "--save-tuned")  # flags that name a folder a command writes in
PATH_FLAGS = {  # the other flags of a path, and what it names
    "--json": "file",
    "--manifest": "file",
    "--config": "file",
    "--vae-from": "model folder",
    "--init-from": "model folder",
    "--init": "model folder",
}


WRITTEN_FLAGS = ("--json", "--manifest")  # the path flags of a file a command writes
WRITTEN_ARGUMENTS = ("out", "out_dir", "dest")  # the arguments naming a folder a command writes in


# flags whose value may be a path, as a hub id or a `TOKEN=FILE` too: none of them a name longer than a file's
NAMED_FLAGS = ("--model", "--model-config", "--vae", "--lora", "--embedding")


def path_flag_problem(args: list[str]) -> str | None:
    """The error of a path flag given an empty value (`--out "$OUT"` with OUT unset), which a path type
    reads as the current folder, or a link or a value too long to name a file (`config.unusable_path`; a path
    type would read `https://host/x` as `https:/host/x`); None where there is none."""
    from videop2p.config import too_long_path, unusable_path

    for flag, names in {**dict.fromkeys(FOLDER_FLAGS, "folder"), **PATH_FLAGS}.items():
        values = _given_values([flag], args)
        for value in values if flag == "--config" else values[-1:]:  # each file read; else the value read, the last
            if said := unusable_path(flag, value, _instead(names, flag in FOLDER_FLAGS or flag in WRITTEN_FLAGS)):
                return said
            if value.strip():
                continue
            hint = " (. for the current folder)" if flag in FOLDER_FLAGS else ""
            return f"{flag} {value!r} names no {names}; give one{hint}."
    return next(filter(None, (too_long_path(f, v) for f in NAMED_FLAGS for v in _given_values([f], args))), None)


def _instead(names: str, written: bool) -> str:
    """What to give in place of a link for a path flag or argument naming a file or folder (`names`) that a
    command writes or reads."""
    from videop2p.config import LOCAL_COPY

    if not written:
        return LOCAL_COPY
    return "give a local folder to write in" if names == "folder" else f"give a local {names} to write"


def _named_command(args: list[str]):
    """The (sub)command the command line `args` names (click's), and the index of its first own argument."""
    from typer.main import get_command

    command, i = get_command(app), 0
    while i < len(args) and args[i] in getattr(command, "commands", {}):  # down to the subcommand named
        command, i = command.commands[args[i]], i + 1
    return command, i


def path_argument_problem(args: list[str]) -> str | None:
    """The error of an argument (each names a file or folder) given a blank value (`videop2p toy render "$OUT"`
    with OUT unset), which a path type reads as the current folder, or a link or one too long to name a file;
    None where there is none."""
    from videop2p.config import unusable_path

    command, i = _named_command(args)
    params = getattr(command, "params", [])
    values = {o: p.nargs for p in params if p.param_type_name == "option" and not p.is_flag for o in p.opts}
    positionals = [p for p in params if p.param_type_name == "argument"]
    while i < len(args) and positionals:
        arg = args[i]
        if arg in values:  # an option and its value(s)
            i += 1 + max(values[arg], 1)
            continue
        if arg.startswith("-") and arg.strip() != "-":  # a flag, or --option=value
            i += 1
            continue
        param = positionals.pop(0)
        if not arg.strip():  # every argument of these commands is a path
            return f"{param.name} {arg!r} names no file or folder; give one (. for the current folder)."
        if said := unusable_path(param.name, arg, _instead("folder", param.name in WRITTEN_ARGUMENTS)):
            return said
        i += 1
    return None


def main(args: list[str] | None = None) -> None:
    """The `videop2p` command. Usage errors are one line on stderr with exit code 2, as every error
    of a command is, instead of typer's framed message."""
    args = sys.argv[1:] if args is None else list(args)
    if problem := path_flag_problem(args) or path_argument_problem(args):
        typer.secho(f"error: {problem}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    try:
        code = app(args, prog_name="videop2p", standalone_mode=False)
    except UsageError as e:
        if e.format_message():  # a command run without arguments has printed its help: nothing to add
            typer.secho(f"error: {usage_line(e, args)}", fg=typer.colors.RED, err=True)
        sys.exit(e.exit_code)
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
