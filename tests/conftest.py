import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from the UI under test
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def _find_clips() -> Path:
    """The authors' sample clips live in ../shared beside the checkout (searched upwards)."""
    if os.environ.get("VIDEOP2P_CLIPS"):
        return Path(os.environ["VIDEOP2P_CLIPS"])
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "data" / "videop2p-clips"
        if candidate.is_dir():
            return candidate
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "videop2p-clips"


CLIPS = _find_clips()


@pytest.fixture(scope="session")
def clips_dir() -> Path:
    if not CLIPS.is_dir():
        raise FileNotFoundError(f"sample clips expected at {CLIPS}")
    return CLIPS


@dataclass
class HubCache:
    """A Hugging Face cache in a temporary folder, on a machine whose network refuses every connection."""

    root: Path
    connects: list  # the addresses a load tried to reach (none, where the cache holds what it needs)

    def snapshot(self, repo_id: str, revision: str = "main") -> Path:
        """The folder of `repo_id`'s snapshot at `revision` (a branch or tag, or a commit's full hash), as the
        hub's downloads lay it out: a branch's or tag's commit is in its file under `refs/`."""
        repo = self.root / f"models--{repo_id.replace('/', '--')}"
        if re.fullmatch(r"[0-9a-f]{40}", revision):
            return repo / "snapshots" / revision  # a commit's snapshot, reached by no ref
        commit = "0123abcd" * 5 if revision == "main" else hashlib.sha1(revision.encode()).hexdigest()
        ref = repo / "refs" / revision
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit)
        return repo / "snapshots" / commit


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> HubCache:
    """huggingface_hub reading a cache of the test's own, online (HF_HUB_OFFLINE unset) but with every
    connection refused, so that a load that would make a request is seen to."""
    import socket

    import huggingface_hub.constants

    cache = HubCache(tmp_path / "hub", [])
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache.root))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def refuse(sock, address):
        cache.connects.append(address)
        raise OSError("no network in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    return cache


@pytest.fixture(scope="session")
def tiny():
    from videop2p.testing import dummy_components

    return dummy_components()


@pytest.fixture(scope="session")
def tiny_folder(tiny, tmp_path_factory):
    """`tiny` saved as a diffusers folder named `tiny` (models named after it are `tiny+...`)."""
    from videop2p.models.loading import save_pretrained_folder

    return save_pretrained_folder(tiny, tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="session")
def tiny_v():
    from videop2p.testing import dummy_components

    return dummy_components(prediction_type="v_prediction")


@pytest.fixture(scope="session")
def tiny_zsnr():
    """v-prediction on a shifted, zero-terminal-SNR schedule with trailing timesteps (as the bundled model)."""
    from videop2p.testing import dummy_components

    return dummy_components(
        prediction_type="v_prediction", snr_shift=4.0, zero_terminal_snr=True, timestep_spacing="trailing"
    )
