"""Damaged and mismatched copies of a model folder, each given to `videop2p run` as a user would.

Each case copies the model (default: the bundled toy model) into OUT, damages one thing (a weights file
cut, emptied or random; a weight removed, added, of another shape or NaN; a config, tokenizer file or
model_index.json cut or changed; a scheduler, VAE or UNet value no edit can use; a part missing) and
runs the smallest edit on the clip with it in a fresh process. A case expected to be refused must end
with exit 2 and one `error:` line naming the folder (or a file in it), before anything is written; a
case expected to run (a weight beyond the config, no model_index.json, an unknown scheduler class; and,
not damaged, layouts diffusers allows: a (height, width) sample size, a variant's weights only, `.bin`
weights) must end with exit 0 and its outputs, and say no error on its way. Anything else (a
traceback, another exit code, more lines, outputs of a refused case) is a failure. Prints a line per
case, then the count; exits 1 on any failure.

    python bench/damaged_models.py --clip ../shared/data/videop2p-clips/rabbit --out /tmp/damaged
    python bench/damaged_models.py --clip CLIP --out OUT --model FOLDER --cases unet-missing-weight
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from videop2p.models.loading import bundled_model_path

PARTS = ("text_encoder", "vae", "unet")
SOURCE, TARGET = "a rabbit is jumping on the grass", "a cat is jumping on the grass"


def weights_file(folder: Path, part: str) -> Path:
    (file,) = sorted((folder / part).glob("*.safetensors"))
    return file


def edit_weights(part: str, change: Callable[[dict], dict]) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        file = weights_file(folder, part)
        save_file(change(load_file(file)), file, metadata={"format": "pt"})

    return damage


def edit_json(file: str, change: Callable[[dict], dict]) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        path = folder / file
        path.write_text(json.dumps(change(json.loads(path.read_text()))))

    return damage


def set_keys(file: str, **values) -> Callable[[Path], None]:
    return edit_json(file, lambda config: {**config, **values})


def bytes_of(part: str, make: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        file = weights_file(folder, part)
        file.write_bytes(make(file.read_bytes()))

    return damage


def cut_text(file: str) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        text = (folder / file).read_text()
        (folder / file).write_text(text[: len(text) // 2])

    return damage


def remove(path: str) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        target = folder / path
        shutil.rmtree(target) if target.is_dir() else target.unlink()

    return damage


def as_layout(variant: str | None, suffix: str) -> Callable[[Path], None]:
    """Every part's weights rewritten as diffusers and transformers also name them: a variant's only
    (`save_pretrained(variant="fp16")`, half precision) or torch pickles (`.bin`, before safetensors)."""

    def damage(folder: Path) -> None:
        for part in PARTS:
            file = weights_file(folder, part)
            state = load_file(file)
            name = (
                file.name.removesuffix(".safetensors")
                if part != "text_encoder" or suffix == "safetensors"
                else "pytorch_model"
            )
            name = f"{name}.{variant}.{suffix}" if variant else f"{name}.{suffix}"
            if variant == "fp16":
                state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
            file.unlink()
            if suffix == "safetensors":
                save_file(state, folder / part / name, metadata={"format": "pt"})
            else:
                torch.save(state, folder / part / name)

    return damage


def drop_first(state: dict, suffix: str) -> dict:
    name = next(k for k in sorted(state) if k.endswith(suffix))
    return {k: v for k, v in state.items() if k != name}


def first_nan(state: dict) -> dict:
    name = next(k for k in sorted(state) if state[k].is_floating_point())
    return {**state, name: torch.full_like(state[name], math.nan)}


def doubled(value):
    return [v * 2 for v in value] if isinstance(value, list) else value * 2


MISSING = {"text_encoder": "final_layer_norm.weight", "vae": "decoder.conv_out.bias", "unet": "attn2.to_k.weight"}
SHAPE_KEY = {"text_encoder": "vocab_size", "vae": "block_out_channels", "unet": "block_out_channels"}


def cases() -> dict[str, tuple[Callable[[Path], None], bool]]:
    """name -> (damage, whether the run is expected to go on)."""
    out: dict[str, tuple[Callable[[Path], None], bool]] = {}
    for part in PARTS:
        out[f"{part}-cut"] = (bytes_of(part, lambda b: b[: len(b) // 2]), False)
        out[f"{part}-empty"] = (bytes_of(part, lambda b: b""), False)
        out[f"{part}-random-bytes"] = (bytes_of(part, lambda b: bytes(range(256)) * (len(b) // 256 + 1)), False)
        out[f"{part}-missing-weight"] = (edit_weights(part, lambda s, p=part: drop_first(s, MISSING[p])), False)
        out[f"{part}-nan-weight"] = (edit_weights(part, first_nan), False)
        out[f"{part}-weight-beyond-config"] = (edit_weights(part, lambda s: {**s, "extra.weight": torch.ones(3)}), True)
        out[f"{part}-config-other-shape"] = (
            edit_json(f"{part}/config.json", lambda c, p=part: {**c, SHAPE_KEY[p]: doubled(c[SHAPE_KEY[p]])}),
            False,
        )
        out[f"{part}-config-cut"] = (cut_text(f"{part}/config.json"), False)
        out[f"{part}-folder-missing"] = (remove(part), False)
    out["tokenizer-folder-missing"] = (remove("tokenizer"), False)
    out["tokenizer-json-cut"] = (cut_text("tokenizer/tokenizer.json"), False)
    out["tokenizer-no-max-length"] = (
        edit_json("tokenizer/tokenizer_config.json", lambda c: {k: v for k, v in c.items() if k != "model_max_length"}),
        False,
    )
    out["model-index-missing"] = (remove("model_index.json"), True)
    out["model-index-cut"] = (cut_text("model_index.json"), False)
    scheduler = "scheduler/scheduler_config.json"
    out["scheduler-class-unknown"] = (set_keys(scheduler, _class_name="FooScheduler"), True)
    out["scheduler-config-cut"] = (cut_text(scheduler), False)
    out["scheduler-no-timesteps"] = (set_keys(scheduler, num_train_timesteps=0), False)
    out["scheduler-betas-short"] = (set_keys(scheduler, trained_betas=[0.5, 0.5]), False)
    out["scheduler-betas-over-10-timesteps"] = (set_keys(scheduler, num_train_timesteps=10), False)
    out["scheduler-prediction-sample"] = (set_keys(scheduler, prediction_type="sample"), False)
    out["scheduler-spacing-unknown"] = (set_keys(scheduler, timestep_spacing="weird"), False)
    out["scheduler-beta-schedule-unknown"] = (set_keys(scheduler, beta_schedule="nope", trained_betas=None), False)
    out["scheduler-offset-past-schedule"] = (set_keys(scheduler, steps_offset=5000), False)
    out["vae-scaling-zero"] = (set_keys("vae/config.json", scaling_factor=0), False)
    out["vae-scaling-negative"] = (set_keys("vae/config.json", scaling_factor=-1), False)
    out["unet-sample-size-zero"] = (set_keys("unet/config.json", sample_size=0), False)
    out["unet-inpainting-channels"] = (set_keys("unet/config.json", in_channels=9), False)
    out["unet-other-text-width"] = (set_keys("unet/config.json", cross_attention_dim=48), False)
    # not damaged: layouts that diffusers allows, which must load
    out["unet-sample-size-pair"] = (set_keys("unet/config.json", sample_size=[8, 32]), True)
    out["weights-fp16-variant-only"] = (as_layout("fp16", "safetensors"), True)
    out["weights-bin-only"] = (as_layout(None, "bin"), True)
    return out


def run_case(name: str, damage, goes_on: bool, model: Path, clip: str, out: Path) -> tuple[bool, str]:
    folder = out / name
    shutil.rmtree(folder, ignore_errors=True)
    copy = folder / name  # the errors name a folder by its name or path: the case's name
    shutil.copytree(model, copy)
    damage(copy)
    edits = folder / "edits"
    args = [sys.executable, "-m", "videop2p.cli", "run", clip, "--model", str(copy)]
    args += ["--source", SOURCE, "--target", TARGET, "--tune-steps", "1", "--steps", "2", "--inversion", "fast"]
    args += ["--frames", "2", "--out", str(edits), "--workspace", str(folder / "ws"), "-q"]
    result = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    lines = (result.stdout + result.stderr).strip().splitlines()
    if goes_on:  # and says no error on its way
        said = [line for line in lines if "error" in line.lower()]
        ok = result.returncode == 0 and (edits / "outputs.json").is_file() and not said
        return ok, "ran" if ok else f"exit {result.returncode}: {(said or lines or [''])[-1]}"
    one_line = result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ")
    ok = one_line and name in lines[0] and not edits.exists()
    return ok, lines[0] if one_line else f"exit {result.returncode}, {len(lines)} lines: {lines[-1] if lines else ''}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", required=True, help="a clip `videop2p run` reads")
    parser.add_argument("--out", required=True, type=Path, help="folder for the damaged copies and their runs")
    parser.add_argument("--model", type=Path, default=None, help="a diffusers folder (default: the bundled model)")
    parser.add_argument("--cases", nargs="*", default=None, help="names of cases to run (default: all)")
    args = parser.parse_args()
    model = args.model or bundled_model_path()
    every = cases()
    unknown = sorted(set(args.cases or []) - set(every))
    if unknown:
        parser.error(f"unknown cases {unknown}; known: {', '.join(every)}")
    start, failures = time.perf_counter(), 0
    for name in args.cases or every:
        damage, goes_on = every[name]
        ok, said = run_case(name, damage, goes_on, model, args.clip, args.out)
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {said}", flush=True)
    total = len(args.cases or every)
    print(f"{total} cases, {total - failures} as expected, {failures} failures, {time.perf_counter() - start:.0f} s")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
