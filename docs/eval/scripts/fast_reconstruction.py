"""Where is the candidates' reconstruction lost? Fast-mode (DDIM inversion, guidance 1) reconstruction PSNR
of suite case 0's clip, untuned and tuned 500 steps (or the tuning steps given), for the bundled model and a
candidate folder.

    python docs/eval/scripts/fast_reconstruction.py CANDIDATE_FOLDER OUT.json
    python docs/eval/scripts/fast_reconstruction.py CANDIDATE_FOLDER OUT.json 0   # untuned only
"""

import json
import sys

from videop2p.evaluation import Case, EditKind, EvalSettings, Method, make_suite, run_case
from videop2p.models.loading import load_components
from videop2p.toy.world import caption_for, render_clip

rows = []
spec = make_suite(1)[0].spec
obj = spec.objects[0]
cap = caption_for(spec.objects, spec.background)
case = Case(spec, EditKind.COLOR, cap, cap, (obj.shape.value, obj.shape.value), {"color": obj.color.value})
for name, path in (("bundled", None), ("candidate", sys.argv[1])):
    comps = load_components(path)
    for tune in [int(n) for n in sys.argv[3:]] or (0, 500):
        m = run_case(
            comps,
            case,
            EvalSettings(tune_steps=tune, steps=50, frames=8, methods=[Method.FAST]),
            clip=render_clip(spec),
        )["fast"]
        rows.append(
            {
                "model": name,
                "tune_steps": tune,
                "reconstruction_psnr": m["reconstruction_psnr"],
                "object_iou": m["object_iou"],
            }
        )
        print(rows[-1], flush=True)
with open(sys.argv[2], "w") as f:
    json.dump(rows, f, indent=2)
