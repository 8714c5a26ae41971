import os
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
