"""The bundled toy model: loads with plain diffusers, draws what the caption says, edits on a CPU."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from videop2p.cli import app
from videop2p.demo import DemoSettings, edit_overlaps, run_demo
from videop2p.io.video import read_video
from videop2p.io.writing import write_frames
from videop2p.models.loading import bundled_model_path, load_components
from videop2p.models.schedulers import make_scheduler
from videop2p.toy.checker import classify_color, read_image
from videop2p.toy.data import render_dataset, to_uint8
from videop2p.toy.model import text_rms
from videop2p.toy.quality import colours_kept, pasted_round_trip
from videop2p.toy.world import Background, Color, Shape, ToyClipSpec, ToyObject, render_clip

CASES = [
    ("a red circle moving on the grass", Color.RED),
    ("a blue square moving on the sand", Color.BLUE),
    ("a yellow triangle moving on the water", Color.YELLOW),
    ("a purple circle moving on the snow", Color.PURPLE),
]


def test_bundled_model_is_found_and_reports_its_facts():
    comps = load_components(None)
    info = comps.info
    assert info.identity.startswith("videop2p-toy@")
    assert info.native_size == 64 and info.vae_scale_factor == 4
    assert info.scaling_factor != pytest.approx(0.18215)  # computed from data, not SD's constant
    total = sum(p.stat().st_size for p in bundled_model_path().rglob("*") if p.is_file())
    assert total < 40 * 2**20


def test_bundled_model_has_the_schedule_and_text_scale_its_card_gives():
    comps = load_components(None)
    sched = comps.scheduler
    assert sched.config.prediction_type == "v_prediction" and sched.config.timestep_spacing == "leading"
    assert float(sched.alphas_cumprod[-1]) == 0.0  # zero terminal SNR
    # SD's scaled-linear schedule with the log-SNR raised by 2 ln 8, then rescaled to zero terminal SNR
    made = make_scheduler("v_prediction", snr_shift=8.0, zero_terminal_snr=True, timestep_spacing="leading")
    assert torch.allclose(sched.betas, made.betas, rtol=1e-5, atol=1e-7)
    assert text_rms(comps.text_encoder, comps.tokenizer) == pytest.approx(0.322, rel=0.01)


DOCS = Path(__file__).resolve().parents[1] / "docs"
PRESET_ROWS = {  # the stored suite runs whose figures the quick preset's printed margin quotes: (folder, method)
    "the quick preset": ("speed/quick_paste_suite", "fast"),
    "the quick preset with null-text": ("speed/quick_paste_nulltext_suite", "Video-P2P"),
    "the official fast mode": ("eval/bundled_paste/cheap", "fast"),
    "official Video-P2P": ("eval/bundled_paste/vp2p", "Video-P2P"),
}


def _stored_run(folder: str, method: str, fingerprint: str) -> tuple[dict, dict]:
    """A stored suite run's summary and successes by kind for `method`, after checking that each of its 30
    kept cases was measured on the model of `fingerprint`."""
    kept = [json.loads(f.read_text())["key"] for f in sorted((DOCS / folder / "cases").glob("*.json"))]
    assert len(kept) == 30 and all(fingerprint in key for key in kept), folder  # every case on that model
    stored = json.loads((DOCS / folder / "summary.json").read_text())
    return stored["summary"][method], stored["by_kind"][method]


def test_the_quick_presets_printed_margin_is_measured_on_the_bundled_model():
    from videop2p.config import PRESET_MARGINS, Preset

    fingerprint = load_components(None).info.fingerprint
    margin = PRESET_MARGINS[Preset.QUICK]
    for row, (folder, method) in PRESET_ROWS.items():
        figures, by_kind = _stored_run(folder, method, fingerprint)
        colour = by_kind["colour swap"]
        quoted = (
            f"success {figures['edit_success']:.2f}, colour swaps {colour[0]} of {colour[1]}, reconstruction "
            f"{figures['reconstruction_psnr']:.1f} dB, background {figures['background_psnr']:.1f} dB"
        )
        assert quoted in margin, (row, quoted)


def test_the_readmes_suite_figures_are_measured_on_the_bundled_model():
    fingerprint = load_components(None).info.fingerprint
    readme = " ".join((DOCS.parent / "README.md").read_text().split())

    def edits(folder: str, method: str) -> int:
        return round(_stored_run(folder, method, fingerprint)[0]["edit_success"] * 30)

    official, official_kinds = _stored_run("eval/bundled_paste/vp2p", "Video-P2P", fingerprint)
    assert official_kinds["colour swap"][0] == official_kinds["colour swap"][1]  # "every colour swap included"
    tav, _ = _stored_run("eval/bundled_paste/cheap", "Tune-A-Video", fingerprint)
    assert (
        f"the official settings succeeds on {edits('eval/bundled_paste/vp2p', 'Video-P2P')} of 30 edits, every "
        f"colour swap included, and keeps the background outside the object at {official['background_psnr']:.1f} "
        f"dB PSNR; Tune-A-Video, without attention control, succeeds on {edits('eval/bundled_paste/cheap', 'Tune-A-Video')} "
        f"at {tav['background_psnr']:.1f} dB."
    ) in readme
    assert (
        f"it succeeds on {edits(*PRESET_ROWS['the quick preset'])} of 30 edits in fast mode and "
        f"{edits(*PRESET_ROWS['the quick preset with null-text'])} with `--inversion null-text` (within noise), "
        f"against {edits(*PRESET_ROWS['official Video-P2P'])} at the official settings"
    ) in readme


def test_the_bundled_decoder_draws_pasted_latents_in_their_own_colours():
    """Local blending pastes the source's latents beside the edit's; the decoder must draw a pasted
    object as it was, not in its new surroundings' colours (bench/vae_paste.py has the figures)."""
    images, masks, _ = render_dataset(48, 64, seed=123)  # frames the training data do not hold
    decoded, _ = pasted_round_trip(load_components(None).vae, images, masks, grow=1)  # over the next frame
    kept = colours_kept(to_uint8(decoded), images, masks)
    assert kept >= 0.95, f"{kept:.0%} of pasted objects keep their colour"


def test_plain_diffusers_pipeline_draws_the_right_colour():
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(bundled_model_path()))
    pipe.set_progress_bar_config(disable=True)
    prompts = [p for p, _ in CASES]
    right = 0
    for seed in (0, 1):
        images = pipe(
            prompts,
            num_inference_steps=25,
            height=64,
            width=64,
            generator=torch.Generator().manual_seed(seed),
            output_type="np",
        ).images
        for (_, color), img in zip(CASES, images, strict=True):
            right += read_image((img * 255).round().astype(np.uint8)).color == color
    assert right >= 7, f"{right}/8 right colours"


def test_toy_run_end_to_end_swaps_the_colour_inside_the_object(tmp_path):
    spec = ToyClipSpec([ToyObject(Shape.CIRCLE, Color.RED)], Background.GRASS, frames=4, seed=0)
    clip = render_clip(spec)
    frames = write_frames(clip.frames, tmp_path / "clip")
    result = CliRunner().invoke(
        app,
        [
            "run",
            str(frames),
            "--source",
            "a red circle moving on the grass",
            "--target",
            "a blue circle moving on the grass",
            "--frames",
            "4",
            "--blend",
            "circle",
            "circle",
            "--tune-steps",
            "30",
            "--steps",
            "20",
            "--inversion",
            "fast",
            "--out",
            str(tmp_path / "out"),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "outputs.json").read_text())
    edited = read_video(tmp_path / "out" / "edit_1.gif").frames
    masks = clip.masks[:, 0]
    colours = [classify_color(f[m]) for f, m in zip(edited, masks, strict=True)]
    assert colours.count(Color.BLUE) >= 3, colours
    outside = ~masks
    err = np.abs(edited.astype(float) - clip.frames)[outside].mean()
    assert err < 20, err
    assert manifest["size"] == [64, 64]


@pytest.mark.slow
def test_the_demo_keeps_every_edited_circle_on_the_source_circle(tmp_path):
    """Issue 23's demo bar: in every frame of every demo edit, IoU >= 0.8 with the source object (about 2.5 min)."""
    run_demo(tmp_path, DemoSettings(quiet=True))
    overlaps = edit_overlaps(tmp_path)
    for name, r in overlaps.items():
        ious = r["iou"]
        assert min(ious) >= 0.8, (name, [round(x, 2) for x in ious])


def test_a_clip_the_model_does_not_represent_is_told_apart_from_one_it_does(tmp_path, caplog):
    """A real clip edited with the bundled model came back as coloured blotches, its report silent: the toy
    VAE reproduces it at 12.5 dB. A run now gives the reconstruction's PSNR, and a warning where it is far from
    the clip that says whether the VAE or the tuning and inversion lose it."""
    import logging

    from videop2p import RunConfig, VideoConfig, VideoP2P
    from videop2p.pipeline import FAR_DB, EditOutput

    vp = VideoP2P.from_pretrained(None, workspace=str(tmp_path / "ws"))
    toy = render_clip(ToyClipSpec([ToyObject(Shape.CIRCLE, Color.RED)], Background.GRASS, frames=2)).frames
    noise = np.random.default_rng(0).integers(0, 256, toy.shape, dtype=np.uint8)  # no toy world's frame
    said = {}
    for name, frames in (("toy", toy), ("noise", noise)):
        write_frames(frames, tmp_path / name)
        cfg = RunConfig(
            video=VideoConfig(path=str(tmp_path / name), frames=2),
            source="a red circle moving on the grass",
            targets=["a blue circle moving on the grass"],
            out=str(tmp_path / f"out-{name}"),
            quiet=True,
        )
        cfg.tune.steps, cfg.inversion.steps, cfg.inversion.method = 1, 2, "fast"
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="videop2p.pipeline"):
            manifest = vp.run(cfg)
        said[name] = ([r.getMessage() for r in caplog.records], manifest)
        report = (tmp_path / f"out-{name}" / "report.md").read_text()
        assert f"- reconstruction: {manifest['reconstruction_psnr']:.1f} dB PSNR against the clip" in report
    logged, manifest = said["toy"]
    assert manifest["reconstruction_psnr"] > 30 and manifest["warnings"] == [] and logged == []
    logged, manifest = said["noise"]
    assert manifest["reconstruction_psnr"] < FAR_DB and manifest["warnings"] == logged and len(logged) == 1
    assert logged[0].startswith(f"The reconstruction is far from the clip ({manifest['reconstruction_psnr']:.1f} dB")
    assert "the model's VAE alone reproduces the clip at " in logged[0]
    assert f"so the model ({vp.components.info.identity}) does not represent frames like these" in logged[0]
    # a VAE that keeps the clip: the tuning and the inversion lose it (a reconstruction made far by hand)
    clip = vp.load_clip(VideoConfig(path=str(tmp_path / "toy"), frames=2))
    far = EditOutput(reconstruction=255 - clip.frames, edits=[], result=None)
    for method, hint in (("fast", True), ("null-text", False)):
        rec, words = vp.reconstruction_fidelity(clip, far, method)
        assert rec < FAR_DB and "so the tuning or the inversion loses the rest" in words
        assert ("the official null-text inversion reconstructs most closely" in words) is hint
    rec, words = vp.reconstruction_fidelity(clip, EditOutput(clip.frames, [], None))  # the clip itself
    assert rec > 100 and words is None
