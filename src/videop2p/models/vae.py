"""A VAE in place of a model's own (`--vae`), as Stable Diffusion users swap one in (e.g. SD 1.5 with
`stabilityai/sd-vae-ft-mse`, or the A1111 web UI's `vae-ft-mse-840000-ema-pruned.safetensors`).

Read from a diffusers folder (a VAE's own, or a model folder's `vae/`), a hub id, or one file (a hub
repository's too, `owner/name/FILE`, e.g. `stabilityai/sd-vae-ft-mse-original`'s): an
original (LDM) VAE checkpoint, read by diffusers with the model's own VAE config as its architecture,
or a diffusers VAE's weights. It must take the model's latents: the same latent channels and the same
downsampling. Its own `scaling_factor` is used (an original file's is the model's).
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from pathlib import Path

import torch

from videop2p.config import (
    HubFile,
    SettingProblem,
    hub_download_command,
    hub_file_of,
    hub_name,
    hub_repository,
    missing_weights_reason,
    too_long_reason,
    weights_file_problem,
)
from videop2p.models.hub import hub_file, hub_files, hub_load_kwargs, named_as_given, sorted_weights
from videop2p.models.weights import first_line, load_pretrained, load_state, read_weights_file

logger = logging.getLogger(__name__)

VAE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")


class VaeError(SettingProblem, ValueError):
    """A VAE that cannot replace the model's own; the message names the file and what is wrong (as the `vae`
    setting's problem where it is not there)."""


def check_vae_spec(spec: str | os.PathLike) -> None:
    """Refuse, before anything is read, a VAE given as a path that is missing, empty or not a weights file or
    a folder with a config (a hub id passes: it is resolved when loaded)."""
    text = str(spec).strip()
    if not text:
        raise VaeError("--vae is empty; give a VAE folder, a .safetensors/.ckpt/.pt file or a hub id.")
    if too_long := too_long_reason(text):
        raise VaeError(f"VAE {too_long}", "vae", too_long)
    path = Path(text).expanduser()
    if path.is_dir():
        if _config_folder(path) is None:
            files = sorted(f.name for f in path.iterdir() if f.is_file() and f.suffix.lower() in VAE_FILE_SUFFIXES)
            hint = f"; give its weights file instead, {str(path / files[0])!r}" if len(files) == 1 else ""
            raise VaeError(
                f"VAE folder '{spec}' has no config.json (nor vae/config.json): it is not a diffusers VAE{hint}."
            )
        return
    if path.is_file() or path.suffix.lower() in VAE_FILE_SUFFIXES:  # a hub repository's file passes
        missing = missing_weights_reason(text, VAE_FILE_SUFFIXES, "VAE weights", hub=True)
        if missing:
            raise VaeError(f"VAE file {missing}", "vae", missing)
        problem = weights_file_problem(text, "VAE", VAE_FILE_SUFFIXES, "VAE weights", hub=True)
        if problem:
            raise VaeError(problem)
        return
    if text.startswith((".", "/", "~")) or hub_repository(text) is None:
        raise VaeError(
            f"VAE '{spec}' is not a local path, nor a hub id (owner/name); give a VAE folder, a "
            f"{', '.join(VAE_FILE_SUFFIXES)} file or a hub id such as stabilityai/sd-vae-ft-mse."
        )


def _config_folder(path: Path) -> Path | None:
    """The folder of a diffusers VAE's config: `path` itself, or a model folder's `vae/`."""
    for folder in (path, path / "vae"):
        if (folder / "config.json").is_file():
            return folder
    return None


def load_vae(spec: str | os.PathLike, like, offline: bool):
    """The AutoencoderKL `spec` names (`check_vae_spec`), checked to take the latents of `like` (the model's
    own VAE): a folder or hub id by diffusers' `from_pretrained`; a file of diffusers' keys into `like`'s
    architecture; an original (LDM) file by `from_single_file` with `like`'s config."""
    from diffusers import AutoencoderKL

    check_vae_spec(spec)
    text = str(spec).strip()
    path, hub = Path(text).expanduser(), hub_file_of(text, VAE_FILE_SUFFIXES)
    try:
        if path.is_dir():
            vae = load_pretrained(AutoencoderKL, str(_config_folder(path)), f"VAE {str(spec)!r}", VaeError)
        elif path.is_file():
            vae = _vae_file(path, like)
        elif hub is not None and hub.file is not None:  # a hub repository's file, owner/name/FILE
            file = hub_file(text, "VAE", VAE_FILE_SUFFIXES, (), VaeError)
            with named_as_given(text, file, VaeError):
                vae = _vae_file(file, like)
        else:
            vae = _vae_hub(hub_repository(text), offline)
    except VaeError:
        raise
    except Exception as e:  # noqa: BLE001 (whatever diffusers raises becomes one line naming the VAE)
        raise VaeError(f"VAE '{spec}' could not be read ({first_line(e)}).") from e
    _check_fits(vae, like, spec)
    logger.info("the model's VAE replaced by %s (scaling factor %g)", spec, vae.config.scaling_factor)
    return vae


def _vae_file(path: Path, like):
    """A VAE from one weights file: diffusers' keys (`encoder.down_blocks...`) loaded strictly into `like`'s
    architecture, else an original (LDM) VAE (`encoder.down.0...`, or a whole checkpoint's
    `first_stage_model.`) read by diffusers with `like`'s config."""
    from diffusers import AutoencoderKL

    weights = _read_weights(path)
    if any(k.startswith("encoder.down_blocks.") for k in weights):
        vae = AutoencoderKL.from_config(like.config)
        load_state(vae, weights, f"VAE file '{path}'", VaeError, "give a VAE of the model's architecture.")
        return vae
    if not any(k.startswith(("encoder.down.", "first_stage_model.")) for k in weights):
        raise VaeError(f"VAE file '{path}' holds no VAE weights (its keys start {sorted(weights)[:2]}).")
    with tempfile.TemporaryDirectory() as config:
        like.save_config(config)  # the model's VAE architecture, as the web UI takes a VAE file for its model
        return AutoencoderKL.from_single_file(str(path), config=config, local_files_only=True)


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A weights file's tensors by name: safetensors, or a torch pickle read with weights only (no code runs;
    a checkpoint's `state_dict` unwrapped)."""
    weights = read_weights_file(path, "VAE", VaeError)
    if isinstance(weights, dict) and isinstance(weights.get("state_dict"), dict):
        weights = weights["state_dict"]
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise VaeError(f"VAE file '{path}' holds no weights by name.")
    return weights


def _vae_hub(hub: HubFile, offline: bool):
    """A hub repository's VAE (at its revision), a VAE repository's or a model repository's `vae/`: from its
    snapshot in the Hugging Face cache when that holds one (no request made; found in it as in a local folder,
    `_config_folder`), else downloaded, unless `offline`."""
    from diffusers import AutoencoderKL
    from huggingface_hub import snapshot_download

    repo, revision, name = hub.repo, hub.revision, hub_name(hub)

    reason = "its cached snapshot holds no config.json, nor vae/config.json"
    try:
        folder = _config_folder(Path(snapshot_download(repo, revision=revision, local_files_only=True)))
        if folder is not None:
            return load_pretrained(AutoencoderKL, str(folder), f"VAE {name!r}", VaeError)
    except OSError as e:  # not cached, or in part
        reason = f"{type(e).__name__}: {first_line(e)}"
    if not offline:
        try:
            files = hub_files(repo, revision)  # one request: a hub out of reach or a missing repository is said
            if "config.json" not in files and "vae/config.json" not in files:
                held = sorted_weights(f for f in files if f.lower().endswith(VAE_FILE_SUFFIXES))
                give = f"; give one of its VAE files as {name}/FILE, e.g. {name}/{held[0]}" if held else ""
                raise VaeError(f"VAE {name!r}: its hub repository holds no config.json, nor vae/config.json{give}.")
            subfolder = None if "config.json" in files else "vae"  # a VAE repository's root, or a model's vae/
            return load_pretrained(
                AutoencoderKL,
                repo,
                f"VAE {name!r}",
                VaeError,
                subfolder=subfolder,
                revision=revision,
                **hub_load_kwargs(files).get(subfolder or "", {}),
                local_files_only=False,
            )
        except OSError as e:  # the hub out of reach, no such repository
            reason = f"{type(e).__name__}: {first_line(e)}"
    raise VaeError(
        f"VAE {name!r} is not a local path and could not be loaded from the Hugging Face hub or its cache "
        f"({reason}). On a connected machine run `{hub_download_command(hub)}`, or pass a local VAE folder or file."
    )


def check_scaling_factor(config, what: str, error: type[Exception]) -> None:
    """Refuse a VAE config (`what` names it) whose scaling factor, which multiplies its posterior into the
    diffusion's latents, is not a positive finite number: at 0 every latent is 0 and nothing is edited, and
    the UNet was trained on no other sign."""
    value = config.get("scaling_factor", 0.18215)  # diffusers' default, Stable Diffusion 1.x's
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value <= 0:
        raise error(
            f"{what}: its scaling_factor {value!r} is not valid; expected a positive number (Stable Diffusion "
            "1.x and 2.x: 0.18215)."
        )


def _check_fits(vae, like, spec) -> None:
    """Refuse a VAE whose latents are not the model's: other latent channels or another downsampling, or no
    valid scaling factor."""
    check_scaling_factor(vae.config, f"VAE '{spec}'", VaeError)
    ours, theirs = like.config, vae.config
    if theirs.latent_channels != ours.latent_channels:
        raise VaeError(
            f"VAE '{spec}' makes latents of {theirs.latent_channels} channels; the model takes {ours.latent_channels}."
        )
    if len(theirs.block_out_channels) != len(ours.block_out_channels):
        factor, model = 2 ** (len(theirs.block_out_channels) - 1), 2 ** (len(ours.block_out_channels) - 1)
        raise VaeError(f"VAE '{spec}' downsamples frames by {factor}; the model's latents are 1/{model} of them.")


def vae_name(spec: str | os.PathLike) -> str:
    """How a model with this VAE is named: the file's or folder's stem, or the hub repository's name or file's
    stem (and its revision)."""
    hub = hub_file_of(str(spec).strip(), VAE_FILE_SUFFIXES)
    if hub is not None:
        return Path(hub.file or hub.repo).stem + (f"@{hub.revision}" if hub.revision else "")
    return Path(str(spec).strip().rstrip("/")).stem or str(spec)
