"""Writing a workspace's tuned clip for other programs: our delta, or the authors' Tune-A-Video /
Video-P2P folder (`models/tav.py` has the layout)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from videop2p.config import ExportFormat, FrameAttentionMode, GroupNormMode, check_folder
from videop2p.models.loading import SDComponents, save_video_folder
from videop2p.models.t2s import T2SModel
from videop2p.models.tav import apply_temporal
from videop2p.store.codec import read_meta
from videop2p.store.files import atomic_path
from videop2p.store.workspace import DELTA_FILE, is_delta_identity
from videop2p.tuning import load_delta

DELTA_FILES = (DELTA_FILE, "key.json")  # what a diffusers-delta export holds


def check_export_folder(out: str | Path, fmt: ExportFormat) -> None:
    """Raise unless `out` is new, empty, or an earlier export of the same format: an export replaces
    the whole folder, so it must not take other files with it."""
    check_folder("OUT", out, "to write the export into")
    out = Path(out)
    if not out.exists():
        return
    names = sorted(p.name for p in out.iterdir())
    earlier = (
        set(names) <= set(DELTA_FILES)
        if ExportFormat(fmt) is ExportFormat.DELTA
        else (out / "model_index.json").is_file() and (out / "unet").is_dir()
    )
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
    if not path.is_file():
        raise FileNotFoundError(f"{entry} holds no tuned delta (tune.safetensors); give a workspace clip folder.")
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
        raise ValueError(
            f"{path} was tuned from the model with fingerprint {identity.get('model')!r}, not the loaded "
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
