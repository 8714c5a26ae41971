"""Training the toy model: the dataset, phase 2 with the token loss on a reused VAE, resuming and exporting."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import videop2p.toy.data as td
import videop2p.toy.train as tt
from videop2p.cli import app
from videop2p.models.loading import load_components, save_pretrained_folder
from videop2p.models.schedulers import make_scheduler
from videop2p.testing import assert_one_line_error
from videop2p.toy.data import random_caption
from videop2p.toy.model import ToyModelConfig, make_unet
from videop2p.toy.quality import pasted_round_trip
from videop2p.toy.world import random_spec, render_clip


def test_the_dataset_is_the_same_for_any_number_of_render_processes(monkeypatch):
    monkeypatch.setattr(td, "RENDER_CHUNK", 3)  # several chunks, so the pool really splits the work
    images, masks, specs = td.render_dataset(7, 16, seed=5)
    images2, masks2, specs2 = td.render_dataset(7, 16, seed=5, workers=2)
    assert images.shape == (7, 16, 16, 3) and masks.shape == (7, 16, 16) and masks.dtype == bool
    assert np.array_equal(images, images2) and np.array_equal(masks, masks2) and specs == specs2
    rng = np.random.default_rng(5)
    first = render_clip(random_spec(rng, frames=1, size=16))  # the specs are drawn as one seeded stream
    assert np.array_equal(images[0], first.frames[0]) and np.array_equal(masks[0], first.masks[0].any(0))
    assert all(m.any() and not m.all() for m in masks)  # every image has an object and a background


V_RECIPE = {
    "prediction_type": "v_prediction",
    "snr_shift": 8.0,
    "zero_terminal_snr": True,
    "timestep_spacing": "trailing",
}


def _cfg(init, steps: int, **schedule) -> tt.ToyTrainConfig:
    model = ToyModelConfig(image_size=16, unet_channels=(32, 32), unet_head_dim=8, text_hidden=32, text_layers=0)
    return tt.ToyTrainConfig(
        model=model,
        dataset_size=6,
        batch_size=2,
        unet_steps=steps,
        checkpoint_every=1,
        token_weight=0.3,
        vae_from=str(init),
        **schedule,
    )


def test_phase_two_with_the_token_loss_on_a_reused_vae_resumes_and_exports(tiny, tmp_path):
    init = save_pretrained_folder(tiny, tmp_path / "init")
    run = tmp_path / "run"
    tt.train_toy_model(run, _cfg(init, steps=1, **V_RECIPE))
    first = torch.load(run / "ckpt" / "unet.pt", weights_only=False)
    model = tt.train_toy_model(run, _cfg(init, steps=2, **V_RECIPE))  # goes on from the checkpoint of step 1
    state = torch.load(run / "ckpt" / "unet.pt", weights_only=False)
    assert first["step"] == 1 and state["step"] == 2
    legacy = tmp_path / "legacy"  # a run from before head counts were recorded is refused, not misread
    (legacy / "ckpt").mkdir(parents=True)
    (legacy / "train_config.json").write_text((run / "train_config.json").read_text())
    torch.save({k: v for k, v in state.items() if k != "heads"}, legacy / "ckpt" / "unet.pt")
    with pytest.raises(ValueError, match=r"unet\.pt was trained with 8 per block .* builds \[4, 4\]"):
        tt.export_checkpoint(legacy, tmp_path / "legacy_model")
    comps = load_components(model)
    assert comps.text_encoder.config.num_hidden_layers == 0  # each word keeps its own embedding
    # the schedule it trained with is in its folder: v-prediction, shifted for its 8x8 latents, zero terminal SNR
    assert json.loads((run / "train_config.json").read_text())["snr_shift"] == 8.0
    assert comps.info.prediction_type == "v_prediction"
    want = make_scheduler(**V_RECIPE)
    assert torch.equal(comps.scheduler.alphas_cumprod, want.alphas_cumprod) and comps.scheduler.alphas_cumprod[-1] == 0
    assert comps.scheduler.config.timestep_spacing == "trailing"
    assert comps.vae.config.scaling_factor == tiny.vae.config.scaling_factor  # the reused VAE's own factor
    for a, b in zip(comps.vae.parameters(), tiny.vae.parameters(), strict=True):
        assert torch.equal(a, b)
    # the token loss's processors are gone: the saved UNet runs diffusers' default attention
    assert {type(p).__name__ for p in comps.unet.attn_processors.values()} == {"AttnProcessor2_0"}
    widths = {m.inner_dim // m.heads for n, m in comps.unet.named_modules() if n.endswith(("attn1", "attn2"))}
    assert widths == {8}  # the configured head width, in blocks of 32 channels: 4 heads each
    # one changed word changes that word's embedding only (a causal encoder would change every later one)
    ids = comps.tokenizer(
        ["a red circle on the grass", "a blue circle on the grass"], padding="max_length", return_tensors="pt"
    ).input_ids
    with torch.no_grad():
        emb = comps.text_encoder(ids)[0]  # (2, L, D)
    differs = (emb[0] - emb[1]).abs().amax(-1) > 1e-6  # (L,)
    assert differs.nonzero().flatten().tolist() == [2]  # [start, a, red/blue, ...]

    # an unfinished run is exported from its last checkpoint with the settings it wrote
    result = CliRunner().invoke(app, ["toy", "export", str(run), str(tmp_path / "exported")])
    assert result.exit_code == 0, result.output
    exported = load_components(tmp_path / "exported")
    assert exported.text_encoder.config.num_hidden_layers == 0
    assert torch.equal(exported.scheduler.alphas_cumprod, want.alphas_cumprod)
    for a, b in zip(exported.unet.parameters(), comps.unet.parameters(), strict=True):
        assert torch.equal(a, b)  # the EMA weights, as the finished run saved them


def test_phase_two_can_start_from_a_model_of_the_same_sizes(tiny, tmp_path):
    init = save_pretrained_folder(tiny, tmp_path / "init")
    first = tt.train_toy_model(tmp_path / "a", _cfg(init, steps=1))
    cfg = _cfg(init, steps=0)
    cfg.init_from = str(first)
    again = load_components(tt.train_toy_model(tmp_path / "b", cfg))  # no step: the EMA is the starting point
    for a, b in zip(again.unet.parameters(), load_components(first).unet.parameters(), strict=True):
        assert torch.equal(a, b)
    # the same weights on larger frames
    larger = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, image_size=32))
    bigger = load_components(tt.train_toy_model(tmp_path / "big", larger))
    assert (bigger.info.native_size, bigger.info.sample_size) == (32, 2 * again.info.sample_size)
    for a, b in zip(bigger.unet.parameters(), again.unet.parameters(), strict=True):
        assert torch.equal(a, b)
    cfg.init_from = str(init)  # the tiny test model's UNet has other sizes than the configured one
    with pytest.raises(
        ValueError, match=r"init/unet: the weight \S+ is \[.*\] in its files but \[.*\] in the model; give"
    ):
        tt.train_toy_model(tmp_path / "c", cfg)
    assert not (tmp_path / "c").exists()  # refused before the dataset is rendered and anything written


def test_a_starting_vae_without_a_positive_scaling_factor_is_refused_before_anything_is_written(tiny, tmp_path):
    import json

    init = save_pretrained_folder(tiny, tmp_path / "init")
    config = json.loads((init / "vae" / "config.json").read_text())
    (init / "vae" / "config.json").write_text(json.dumps({**config, "scaling_factor": 0}))  # every latent 0
    with pytest.raises(ValueError, match=r"^init/vae: its scaling_factor 0 is not valid; expected a positive number"):
        tt.train_toy_model(tmp_path / "out", _cfg(init, steps=1))
    assert not (tmp_path / "out").exists()


def test_the_decoder_phase_sharpens_the_decoder_only_resumes_and_exports(tiny, tmp_path):
    init = save_pretrained_folder(tiny, tmp_path / "init")
    cfg = _cfg(init, steps=1)
    cfg.decoder_lr, cfg.decoder_batch = 3e-3, 6
    run = tmp_path / "run"
    images = td.render_dataset(cfg.dataset_size, cfg.model.image_size, cfg.seed)[0]
    x = td.to_tensor(images)

    def recon_loss(vae) -> float:
        with torch.no_grad():
            return torch.nn.functional.l1_loss(vae.decode(vae.encode(x).latent_dist.mean).sample, x).item()

    cfg.decoder_steps = 1
    tt.train_toy_model(run, cfg)
    assert torch.load(run / "ckpt" / "decoder.pt", weights_only=False)["step"] == 1
    cfg.decoder_steps = 30
    model = load_components(tt.train_toy_model(run, cfg))  # goes on from the checkpoint of step 1
    assert torch.load(run / "ckpt" / "decoder.pt", weights_only=False)["step"] == 30
    vae, before = model.vae, tiny.vae
    for name, p in before.state_dict().items():  # the encoder, and so every latent, is unchanged
        if name.startswith(("encoder.", "quant_conv.")):
            assert torch.equal(vae.state_dict()[name], p), name
    assert any(
        not torch.equal(a, b) for a, b in zip(vae.decoder.parameters(), before.decoder.parameters(), strict=True)
    )
    assert recon_loss(vae) < 0.9 * recon_loss(before)
    assert vae.config.scaling_factor == before.config.scaling_factor
    exported = load_components(tt.export_checkpoint(run, tmp_path / "exported"))  # the run's checkpoints
    for a, b in zip(exported.vae.parameters(), vae.parameters(), strict=True):
        assert torch.equal(a, b)


def test_object_cells_hold_any_object_pixel_grown_by_whole_cells_and_splice_pastes_them():
    mask = torch.zeros(2, 16, 16, dtype=torch.bool)
    mask[:, 5, 6] = True  # one pixel, in cell (1, 1) of 4x4 pixels
    cells = td.object_cells(mask, 4, [0, 1])
    assert cells.shape == (2, 1, 4, 4) and cells[0, 0].nonzero().tolist() == [[1, 1]]
    assert cells[1, 0, :3, :3].all() and cells[1].sum() == 9  # grown by one cell on every side
    a, b = torch.ones(2, 3, 16, 16), torch.zeros(2, 3, 16, 16)
    pasted = td.splice(a, b, cells)  # frames take the cells at their own size
    assert pasted[0, :, 4:8, 4:8].eq(1).all() and pasted[0].sum() == 3 * 16
    assert torch.equal(td.splice(a[:, :2, :4, :4], b[:, :2, :4, :4], cells)[:, :1], cells)  # latents: cell by cell


def test_the_decoder_phase_learns_to_decode_pasted_latents_as_pasted_pixels(tiny, tmp_path):
    cfg = _cfg(save_pretrained_folder(tiny, tmp_path / "init"), steps=1)
    cfg.decoder_lr, cfg.decoder_batch, cfg.decoder_steps, cfg.decoder_splice = 3e-3, 6, 30, 0.5
    images, masks, _ = td.render_dataset(cfg.dataset_size, cfg.model.image_size, cfg.seed)

    def paste_loss(vae) -> float:  # each frame's object cells over the next frame's latents
        return torch.nn.functional.l1_loss(*pasted_round_trip(vae, images, masks, grow=1)).item()

    model = load_components(tt.train_toy_model(tmp_path / "run", cfg))
    assert paste_loss(model.vae) < 0.9 * paste_loss(tiny.vae)
    mean = std = torch.zeros(2, 4, 8, 8)
    with pytest.raises(ValueError, match="decoder_splice=0.5 needs the object masks"):
        tt.train_decoder(cfg, model.vae, images[:2], (mean, std), tmp_path / "decoder.pt")


def test_the_token_loss_needs_masks(tiny, tmp_path):
    cfg = _cfg(save_pretrained_folder(tiny, tmp_path / "init"), steps=1)
    mean = std = torch.zeros(2, 4, 8, 8)
    with pytest.raises(ValueError, match="token_weight=0.3 needs the object masks"):
        tt.train_unet(cfg, (mean, std), [], 1.0, tiny.tokenizer, tmp_path / "unet.pt", masks=None)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--text-layers", "-1"], "--text-layers -1"),
        (["--vae-from", "/nowhere"], "--vae-from /nowhere"),
        (["--decoder-steps", "-5"], "--decoder-steps -5"),
        (["--vae-steps", "9" * 20], "--vae-steps 99999999999999999999 is not valid; expected a whole number from 0 to"),
        (["--decoder-lr", "nan"], "--decoder-lr nan"),
        (["--decoder-splice", "1.5"], "--decoder-splice 1.5"),
        (["--text-rms", "nan"], "--text-rms nan"),
        (["--image-size", "100"], "--image-size 100 is not valid; expected a multiple of"),
        (["--image-size", "0"], "--image-size 0 is not valid; expected a multiple of 8 from 16 to 1024"),
        (["--image-size", "100000"], "--image-size 100000 is not valid; expected a multiple of 8 from 16 to 1024"),
        (["--threads", "-1"], "--threads -1 is not valid; expected a whole number >= 0"),
        (["--unet-lr", "nan"], "--unet-lr nan"),
        (["--batch-size", "0"], "--batch-size 0"),
        (["--dataset-size", "0"], "--dataset-size 0"),
        (["--time-budget", "-5"], "--time-budget -5.0"),
        (["--token-weight", "-1"], "--token-weight -1.0"),
        (["--device", "tpu"], "device 'tpu' is not available here"),
    ],
)
def test_train_rejects_bad_options_by_name(tmp_path, args, message):
    result = CliRunner().invoke(app, ["toy", "train", str(tmp_path / "run"), *args])
    assert_one_line_error(result, message)
    assert not (tmp_path / "run").exists()  # nothing written


def test_colour_dropout_leaves_the_colour_word_out_of_that_share_of_captions():
    spec = random_spec(np.random.default_rng(0))
    colour = spec.objects[0].color.value
    rng = np.random.default_rng(1)
    kept = [colour in random_caption(spec, rng, color_dropout=0.3).split() for _ in range(2000)]
    assert 0.65 < np.mean(kept) < 0.75
    rng = np.random.default_rng(1)
    assert all(colour in random_caption(spec, rng).split() for _ in range(200))
    bare = next(c for c in (random_caption(spec, rng, 1.0) for _ in range(50)) if " on the " in c)
    assert bare.startswith(f"a {spec.objects[0].shape.value}") or bare.split()[2] == spec.objects[0].shape.value


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--prediction-type", "sample"], "--prediction-type 'sample' is not valid; expected one of epsilon"),
        (["--prediction-type", ""], "--prediction-type '' is not valid"),
        (["--snr-shift", "-2"], "--snr-shift -2.0"),
        (["--timestep-spacing", "middle"], "--timestep-spacing 'middle' is not valid"),
        (["--prediction-type", "epsilon", "--zero-terminal-snr"], "--zero-terminal-snr needs"),
        (["--color-dropout", "1.5"], "--color-dropout 1.5"),
        (["--caption-dropout", "-0.1"], "--caption-dropout -0.1"),
    ],
)
def test_train_rejects_bad_schedules_by_name(tmp_path, args, message):
    result = CliRunner().invoke(app, ["toy", "train", str(tmp_path / "run"), *args])
    assert result.exit_code != 0 and message in result.output, result.output
    assert not (tmp_path / "run").exists()


def test_export_rejects_a_folder_without_a_checkpoint(tmp_path):
    result = CliRunner().invoke(app, ["toy", "export", str(tmp_path), str(tmp_path / "out")])
    assert result.exit_code != 0 and "no ckpt/unet.pt" in result.output


def test_caption_ids_match_the_tokenizer_and_tokenize_each_caption_once(tiny):
    captions = ["a red circle on the grass", "", "a red circle on the grass", "a big blue square sliding on the snow"]
    cache: dict[str, list[int]] = {}
    ids = td.caption_ids(tiny.tokenizer, captions, cache)
    want = tiny.tokenizer(captions, padding="max_length", max_length=tiny.tokenizer.model_max_length).input_ids
    assert ids.tolist() == want and len(cache) == 3
    cache["a red circle on the grass"] = [0] * len(want[0])  # read back from the cache, not tokenized again
    assert td.caption_ids(tiny.tokenizer, captions[:1], cache).tolist() == [[0] * len(want[0])]


def test_a_head_width_that_does_not_divide_a_block_is_refused():
    with pytest.raises(ValueError, match=r"unet_head_dim=24 .*\(64, 128\)"):
        make_unet(ToyModelConfig(unet_head_dim=24), sample_size=8)
    unet = make_unet(ToyModelConfig(unet_head_dim=32), sample_size=8)
    heads = [m.heads for n, m in unet.named_modules() if n.endswith("attn1")]
    assert sorted(set(heads)) == [2, 4]  # 64 and 128 channels at width 32


def test_steps_in_budget_plans_what_fits_and_never_less_than_one_more_step():
    assert tt.steps_in_budget(step=100, total=3000, rate=10.0, seconds_left=50.0) == 600
    assert tt.steps_in_budget(step=100, total=3000, rate=10.0, seconds_left=1e6) == 3000  # never more than asked
    assert tt.steps_in_budget(step=100, total=3000, rate=10.0, seconds_left=-5.0) == 101  # past the deadline


def test_a_time_budget_shortens_the_schedule_and_a_resume_keeps_it(tiny, tmp_path, monkeypatch):
    clock = iter(range(0, 10**9, 100))  # every reading of the clock is 100 s later: 0.01 steps/s
    monkeypatch.setattr(tt.time, "monotonic", lambda: float(next(clock)))
    init = save_pretrained_folder(tiny, tmp_path / "init")
    cfg = _cfg(init, steps=50)
    cfg.checkpoint_every, cfg.time_budget_s = 5, 1500.0
    tt.train_toy_model(tmp_path / "run", cfg)
    state = torch.load(tmp_path / "run" / "ckpt" / "unet.pt", weights_only=False)
    assert 5 < state["planned"] < 50 and state["step"] == state["planned"]  # it stopped where its plan ended
    cfg.time_budget_s = 0.0
    tt.train_toy_model(tmp_path / "run", cfg)  # the resumed run keeps the shortened schedule
    assert torch.load(tmp_path / "run" / "ckpt" / "unet.pt", weights_only=False)["step"] == state["planned"]


def test_rescaled_text_is_the_same_model_on_which_null_text_moves_as_with_a_larger_learning_rate(tiny):
    import copy
    import dataclasses

    from videop2p.inversion import InversionConfig, ddim_invert, optimise_null_text
    from videop2p.latents import encode_prompts
    from videop2p.models.t2s import T2SModel
    from videop2p.sampling import ddim_schedule
    from videop2p.toy.model import rescale_text, text_rms

    factor = 0.25
    scaled = dataclasses.replace(tiny, text_encoder=copy.deepcopy(tiny.text_encoder), unet=copy.deepcopy(tiny.unet))
    rescale_text(scaled.text_encoder, scaled.unet, factor)
    prompt = "a red circle moving on the grass"
    cond, empty = encode_prompts(tiny, [prompt]), encode_prompts(tiny, [""])
    cond_s, empty_s = encode_prompts(scaled, [prompt]), encode_prompts(scaled, [""])
    torch.testing.assert_close(cond_s, cond * factor)
    assert text_rms(scaled.text_encoder, scaled.tokenizer) == pytest.approx(
        factor * text_rms(tiny.text_encoder, tiny.tokenizer), rel=1e-5
    )
    model, model_s = T2SModel.from_image_unet(tiny.unet), T2SModel.from_image_unet(scaled.unet)
    z0 = torch.randn(1, 3, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.5
    sched = ddim_schedule(tiny.scheduler, 4)
    with torch.no_grad():
        torch.testing.assert_close(model_s(z0, 500, cond_s), model(z0, 500, cond), atol=1e-5, rtol=1e-4)
    traj = ddim_invert(model, z0, cond, empty, sched, progress=False)
    c = InversionConfig(steps=4, inner_steps=3, early_stop=-1.0, progress=False)
    emb, path = optimise_null_text(model, traj, cond, empty, sched, dataclasses.replace(c, lr=c.lr / factor))
    emb_s, path_s = optimise_null_text(model_s, traj, cond_s, empty_s, sched, c)
    # the same steps in its own units (up to Adam's epsilon, which is not scale-free), so the same path
    moved, moved_s = (emb - empty).flatten(), (emb_s / factor - empty).flatten()
    assert torch.nn.functional.cosine_similarity(moved, moved_s, 0) > 0.999
    assert moved_s.norm() == pytest.approx(float(moved.norm()), rel=0.01)
    torch.testing.assert_close(path_s.stack(), path.stack(), atol=1e-3, rtol=1e-3)
    emb_plain, _ = optimise_null_text(model, traj, cond, empty, sched, c)
    assert (emb_plain - empty).norm() < 0.5 * moved.norm()  # the plain learning rate moves it less
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="text scale factor"):
            rescale_text(scaled.text_encoder, scaled.unet, bad)


def test_a_run_saves_the_text_scale_it_was_asked_for_once_and_export_can_set_it(tiny, tmp_path):
    from videop2p.toy.model import text_rms

    init = save_pretrained_folder(tiny, tmp_path / "init")
    cfg = _cfg(init, steps=1)
    cfg.text_rms = 0.3
    first = load_components(tt.train_toy_model(tmp_path / "a", cfg))
    assert text_rms(first.text_encoder, first.tokenizer) == pytest.approx(0.3, rel=1e-4)
    plain = load_components(tt.export_checkpoint(tmp_path / "a", tmp_path / "plain", _cfg(init, steps=1)))
    ids = plain.tokenizer(["a red circle"], padding="max_length", return_tensors="pt").input_ids
    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = [c.unet(z, 300, encoder_hidden_states=c.text_encoder(ids)[0]).sample for c in (first, plain)]
    torch.testing.assert_close(out[0], out[1], atol=1e-5, rtol=1e-4)  # the same model as saved without it
    again = _cfg(init, steps=0)
    again.init_from, again.text_rms = str(tmp_path / "a" / "model"), 0.3
    second = load_components(tt.train_toy_model(tmp_path / "b", again))  # no step: rescaled to 0.3, not 0.09
    assert text_rms(second.text_encoder, second.tokenizer) == pytest.approx(0.3, rel=1e-4)
    result = CliRunner().invoke(app, ["toy", "export", str(tmp_path / "a"), str(tmp_path / "e"), "--text-rms", "2"])
    assert result.exit_code == 0, result.output
    exported = load_components(tmp_path / "e")
    assert text_rms(exported.text_encoder, exported.tokenizer) == pytest.approx(2.0, rel=1e-4)
    result = CliRunner().invoke(app, ["toy", "export", str(tmp_path / "a"), str(tmp_path / "f"), "--text-rms", "-1"])
    assert result.exit_code != 0 and "--text-rms -1" in result.output and not (tmp_path / "f").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--steps", "-1"], "--steps -1 is not valid"),
        (["--lr", "nan"], "--lr nan is not valid"),
        (["--batch-size", "0"], "--batch-size 0 is not valid"),
        (["--weight", "-1"], "--weight -1.0 is not valid"),
        (["--dataset-size", "0"], "--dataset-size 0 is not valid"),
        (["--steps", "9" * 20], "--steps 99999999999999999999 is not valid"),  # a grounding that would never end
        (["--init", "."], "--init .: no unet/ folder there; give a diffusers model folder."),
    ],
)
def test_ground_rejects_bad_options_by_name_before_any_work(tmp_path, args, message):
    assert_one_line_error(CliRunner().invoke(app, ["toy", "ground", str(tmp_path / "run"), *args]), message)
    assert not (tmp_path / "run").exists()
