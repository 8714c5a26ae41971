"""Where does null-text inversion lose a clip? After 500 tuning steps on a suite case, the relative error of each
latent of the guided null-text path against the DDIM trajectory it is fitted to, z_0 first: over the clip,
and per frame.

    python docs/eval/scripts/null_text_drift.py FOLDER CASE     # FOLDER: a model folder, or "bundled"
"""

import json
import sys

from videop2p.config import InversionConfig, TuneConfig
from videop2p.evaluation import make_suite
from videop2p.inversion import ddim_invert, optimise_null_text
from videop2p.latents import encode_posterior, encode_prompts
from videop2p.models.loading import load_components
from videop2p.models.t2s import T2SModel
from videop2p.sampling import ddim_schedule
from videop2p.toy.world import caption_for, render_clip
from videop2p.tuning import tune

folder, index = sys.argv[1], int(sys.argv[2])
comps = load_components(None if folder == "bundled" else folder)
spec = make_suite(index + 1)[index].spec
clip = render_clip(spec)
posterior = encode_posterior(comps, clip.frames)
model = T2SModel.from_image_unet(comps.unet)
text = encode_prompts(comps, [caption_for(spec.objects, spec.background)])
tune(model, comps, posterior, text, TuneConfig(steps=500, frames=len(clip.frames), progress=False))
settings = InversionConfig(progress=False)  # the official null-text inversion, as `invert` runs it
sched = ddim_schedule(comps.scheduler, settings.steps)
empty = encode_prompts(comps, [""])
ddim = ddim_invert(model, posterior[0], text, empty, sched, settings.inversion_guidance, progress=False)
_, path = optimise_null_text(model, ddim, text, empty, sched, settings)  # each (T + 1, 1, F, C, h, w), z_0 first
error = [float(((path[k] - ddim[k]) ** 2).mean() / (ddim[k] ** 2).mean()) for k in range(len(ddim))]
dims = (0, 2, 3, 4)  # every axis of (1, F, C, h, w) but the frame
per_frame = [(((path[k] - ddim[k]) ** 2).mean(dims) / (ddim[k] ** 2).mean(dims)).tolist() for k in range(len(ddim))]
print(json.dumps({"model": folder, "case": index, "timesteps": sched.timesteps, "relative_error_z0_first": error,
                  "relative_error_per_frame_z0_first": per_frame}))  # fmt: skip
