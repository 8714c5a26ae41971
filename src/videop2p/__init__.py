"""videop2p: text-driven editing of real videos with Video-P2P (CVPR 2024).

The public API, loaded on first use so that `import videop2p` (and its configs) costs no torch import:

    from videop2p import VideoP2P, RunConfig
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "VideoP2P": "videop2p.pipeline",
    "Clip": "videop2p.pipeline",
    "EditOutput": "videop2p.pipeline",
    "RunConfig": "videop2p.config",
    "VideoConfig": "videop2p.config",
    "TuneConfig": "videop2p.config",
    "InversionConfig": "videop2p.config",
    "InversionMethod": "videop2p.config",
    "EditConfig": "videop2p.config",
    "EditMode": "videop2p.config",
    "load_config": "videop2p.config",
    "StageReport": "videop2p.store.workspace",
    "Workspace": "videop2p.store.workspace",
    "read_video": "videop2p.io.video",
    "write_video": "videop2p.io.writing",
}
__all__ = [  # noqa: RUF022 (grouped as in _EXPORTS)
    "__version__",
    "VideoP2P",
    "Clip",
    "EditOutput",
    "RunConfig",
    "VideoConfig",
    "TuneConfig",
    "InversionConfig",
    "InversionMethod",
    "EditConfig",
    "EditMode",
    "load_config",
    "StageReport",
    "Workspace",
    "read_video",
    "write_video",
]

if TYPE_CHECKING:
    from videop2p.config import (
        EditConfig,
        EditMode,
        InversionConfig,
        InversionMethod,
        RunConfig,
        TuneConfig,
        VideoConfig,
        load_config,
    )
    from videop2p.io.video import read_video
    from videop2p.io.writing import write_video
    from videop2p.pipeline import Clip, EditOutput, VideoP2P
    from videop2p.store.workspace import StageReport, Workspace


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'videop2p' has no attribute {name!r}")
