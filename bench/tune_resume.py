"""What keeping the tuning's state costs (`TuneConfig.save_seconds`): its size on disk and the seconds to
write it and to read it back, for the Stable Diffusion 1.5 architecture's trainable set (random
weights, no download) and the bundled toy model's.

    python bench/tune_resume.py [--repeats 3] [--dir DIR]

The state is the trainable weights, AdamW's two moments and step counts, the generator and the
losses (`videop2p.tuning.training_state`); a run keeps one at a time, beside its workspace entry.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sd15 import sd15_components  # noqa: E402

from videop2p.models.loading import load_components  # noqa: E402
from videop2p.models.t2s import T2SModel  # noqa: E402
from videop2p.store.workspace import StepFiles  # noqa: E402
from videop2p.tuning import restore_training_state, training_state  # noqa: E402


def measure(name: str, unet, folder: Path, repeats: int) -> None:
    model = T2SModel.from_image_unet(unet)
    params = model.trainable_parameters()
    for p in params.values():
        p.grad = torch.zeros_like(p)
    opt = torch.optim.AdamW(params.values(), lr=3e-5)
    opt.step()  # AdamW's moments exist from the first step on
    gen = torch.Generator().manual_seed(33)
    losses = [0.1] * 500
    saved = StepFiles(folder / name, {"bench": name})
    writes, reads = [], []
    for i in range(repeats):
        t0 = time.perf_counter()
        saved.save_latest("tune", 50 * (i + 1), training_state(params, opt, gen, losses, None))
        writes.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        _, state = saved.latest("tune")
        restore_training_state(state, params, opt, gen, None)
        reads.append(time.perf_counter() - t0)
    size = sum(f.stat().st_size for f in (folder / name).iterdir())
    count = sum(p.numel() for p in params.values())
    print(
        f"{name}: trainable set {count / 1e6:.1f} M parameters; kept state {size / 2**20:.0f} MiB; "
        f"write {statistics.median(writes):.2f} s, read and restore {statistics.median(reads):.2f} s "
        f"(median of {repeats})"
    )
    saved.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        measure("bundled toy model", load_components(None).unet, Path(tmp), args.repeats)
        measure("Stable Diffusion 1.5 architecture", sd15_components().unet, Path(tmp), args.repeats)


if __name__ == "__main__":
    main()
