"""Writing a workspace's tuned clip for other programs: our delta, or the authors' Tune-A-Video /
Video-P2P folder (`models/tav.py` has the layout)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path

import torch

from videop2p.config import ExportFormat, FrameAttentionMode, GroupNormMode, check_folder
from videop2p.models.loading import VIDEO_FOLDER_PARTS, SDComponents, save_video_folder
from videop2p.models.t2s import T2SModel
from videop2p.models.tav import DELTA_KEY, apply_temporal, is_authors_folder
from videop2p.store.codec import read_meta
from videop2p.store.files import atomic_path, check_room, check_writable, read_json
from videop2p.store.workspace import DELTA_FILE, Workspace, is_delta_identity, seen_model_name
from videop2p.tuning import load_delta

DELTA_FILES = (DELTA_FILE, "key.json")  # what a diffusers-delta export holds
TUNED_FOLDER = "tuned-model folder (save_tuned; an official tune config's output_dir)"  # as its errors name it


def check_export_folder(out: str | Path, fmt: ExportFormat) -> None:
    """Raise unless `out` is new, empty, or an earlier export of the same format: a delta export replaces
    the whole folder, so it must not take other files with it; a tuned folder's export replaces its
    model's parts and keeps what else it holds (their `results/`, a workspace)."""
    check_folder("OUT", out, "to write the export into")
    check_writable("OUT", out, "to write the export into")
    out = Path(out)
    if not out.exists():
        return
    names = sorted(p.name for p in out.iterdir())
    earlier = set(names) <= set(DELTA_FILES) if ExportFormat(fmt) is ExportFormat.DELTA else is_authors_folder(out)
    if names and not earlier:
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise ValueError(
            f"{out} already holds other files ({shown}) and an export replaces the whole folder; "
            "give a new or empty folder."
        )


def tuned_delta(entry: str | Path) -> tuple[Path, dict]:
    """The delta file of a workspace clip (its folder or its `tune.safetensors`) and the identity it
    was tuned under; a one-line error names an entry that holds none, or a file that is not one."""
    path = Path(entry) / DELTA_FILE if Path(entry).is_dir() else Path(entry)
    give = "give a workspace clip folder (clip-<key>/, as `videop2p workspace list` shows them)"
    if not Path(entry).exists():
        raise FileNotFoundError(f"{entry} does not exist; {give}.")
    if not path.is_file():
        raise FileNotFoundError(f"{entry} holds no tuned delta (tune.safetensors); {give}.")
    identity = read_meta(path)  # CorruptFileError (a ValueError) names a file that is not ours
    if not is_delta_identity(identity):
        raise ValueError(f"{path} is not a tuned delta (its metadata has no model and frame mode).")
    return path, identity


def export_tuned(
    components: SDComponents, entry: str | Path, out: str | Path, fmt: ExportFormat = ExportFormat.DELTA
) -> Path:
    """Write a workspace's tuned clip (its folder or its `tune.safetensors`) to `out` as our delta or as
    the authors' folder; `components` must be the model it was tuned from."""
    check_export_folder(out, fmt)
    path, identity = tuned_delta(entry)
    if identity.get("model") != components.info.fingerprint:
        name = None
        if path.parent.name.startswith("clip-"):  # a workspace's clip folder: its history names the model
            _, seen = Workspace(path.parent.parent).history()
            name = seen_model_name(seen.get(path.parent.name, {}))
        named = f" ({name!r}, as its latest run named it)" if name else ""
        raise ValueError(
            f"{path} was tuned from the model with fingerprint {identity.get('model')!r}{named}, not the loaded "
            f"{components.info.identity!r}; pass the --model (and --vae, --lora, --embedding) it was tuned from."
        )
    if ExportFormat(fmt) is ExportFormat.DELTA:
        with atomic_path(Path(out), directory=True) as tmp:
            shutil.copyfile(path, tmp / DELTA_FILES[0])
            (tmp / DELTA_FILES[1]).write_text(json.dumps(identity, indent=2))
        return Path(out)
    frame_mode = FrameAttentionMode(identity["frame_mode"])
    group_norm = GroupNormMode(identity.get("group_norm", GroupNormMode.FRAME))
    model = T2SModel.from_image_unet(components.unet, frame_mode, group_norm)
    if components.video is not None:
        apply_temporal(model.unet, components.video.temporal)
    load_delta(model, path, identity)
    return save_video_folder(components, model.unet.state_dict(), frame_mode, group_norm, out)


def check_tuned_folder(path: str | Path, need: int | None = None) -> None:
    """Before tuning: `path` can take the tuned model (`save_tuned`): it is new, or holds no model part,
    or holds a tuned Tune-A-Video / Video-P2P folder (its parts are replaced, the rest kept). A base
    model's folder, or parts of one, are refused: writing there would replace them. `need`: the bytes a
    new folder takes, checked against the disk's free space."""
    check_folder(TUNED_FOLDER, path, "to write the tuned model into")
    check_writable(TUNED_FOLDER, path, "to write the tuned model into")
    path = Path(path).expanduser()
    parts = [name for name in VIDEO_FOLDER_PARTS if (path / name).exists()]
    if parts and not is_authors_folder(path):
        raise ValueError(
            f"{TUNED_FOLDER} {str(path)!r} holds {', '.join(parts)} of a model that is not a tuned Tune-A-Video / "
            "Video-P2P folder; the tuned model would replace them: give a new folder, or one holding a tuned model."
        )
    if need is not None and not parts:
        check_room(TUNED_FOLDER, path, need, "the tuned model's folder would")


def held_tuning(path: str | Path) -> str | None:
    """The workspace key of the tuning a tuned folder written here holds (None: another folder)."""
    return read_json(Path(path) / "unet" / "config.json").get(DELTA_KEY) if is_authors_folder(path) else None


def write_tuned_folder(components: SDComponents, model: T2SModel, path: str | Path) -> bool:
    """Write `model`, tuned from `components`, into folder `path` as the authors' Tune-A-Video / Video-P2P
    folder (what their `run_tuning.py` writes to its `output_dir`), which `--model PATH` and their
    `run_videop2p.py` load untuned. What else the folder holds is kept. Returns False, writing nothing,
    when the folder already holds this tuning (the same workspace key)."""
    path = Path(path).expanduser()
    check_tuned_folder(path)
    if model.delta_key is not None and held_tuning(path) == model.delta_key:
        return False
    state = model.unet.state_dict()
    parts = [*state.values(), *components.text_encoder.parameters(), *components.vae.parameters()]
    check_room(TUNED_FOLDER, path, _weight_bytes(parts), "the tuned model's folder would")
    save_video_folder(components, state, model.frame_mode, model.group_norm, path, model.delta_key)
    return True


def tuned_folder_size(components: SDComponents) -> int:
    """Bytes of the weights a tuned folder holds at least: the text encoder's, the VAE's and the image UNet's
    (the temporal layers that tuning adds come on top)."""
    return _weight_bytes(p for m in (components.text_encoder, components.vae, components.unet) for p in m.parameters())


def _weight_bytes(tensors: Iterable[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)
