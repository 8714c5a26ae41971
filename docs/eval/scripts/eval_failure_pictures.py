"""Source clip above the full method's failed edit, for each case an eval run failed.

python docs/eval/scripts/eval_failure_pictures.py RUN_DIR DEST_DIR MAX_PICTURES
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from videop2p.evaluation import make_suite
from videop2p.toy.world import render_clip

run, dest = Path(sys.argv[1]), Path(sys.argv[2])
dest.mkdir(parents=True, exist_ok=True)
cases = make_suite(30)
for strip in sorted(
    run.glob("strip_failed_case*_Video-P2P.png"), key=lambda p: int(p.stem.split("case")[1].split("_")[0])
)[: int(sys.argv[3])]:
    i = int(strip.stem.split("case")[1].split("_")[0])
    src = np.concatenate(list(render_clip(cases[i].spec).frames), axis=1)
    edit = np.asarray(Image.open(strip).convert("RGB"))
    pic = Image.fromarray(np.concatenate([src, edit], axis=0)).resize(
        (src.shape[1] * 2, src.shape[0] * 4), Image.NEAREST
    )
    canvas = Image.new("RGB", (pic.width, pic.height + 22), "white")
    canvas.paste(pic, (0, 22))
    ImageDraw.Draw(canvas).text(
        (4, 4),
        f"case {i} ({cases[i].kind.value}): '{cases[i].source}' -> '{cases[i].target}' (top: source, bottom: Video-P2P)",
        fill="black",
    )
    canvas.save(dest / f"failed_case{i}.png")
    print(dest / f"failed_case{i}.png")
