import json
import re

import pytest
import torch

from videop2p.models.loading import ModelNotFoundError, load_components, save_pretrained_folder, save_single_file


def _same_weights(a, b):
    for ma, mb in ((a.unet, b.unet), (a.vae, b.vae), (a.text_encoder, b.text_encoder)):
        sa, sb = ma.state_dict(), mb.state_dict()
        assert sa.keys() == sb.keys()
        for k in sa:
            torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0)


def test_load_saved_pipeline_folder_reports_model_facts(tiny, tmp_path):
    folder = save_pretrained_folder(tiny, tmp_path / "tiny")
    loaded = load_components(folder)
    _same_weights(tiny, loaded)
    info = loaded.info
    assert info.vae_scale_factor == 2
    assert info.scaling_factor == pytest.approx(tiny.vae.config.scaling_factor)
    assert info.prediction_type == "epsilon"
    assert info.max_tokens == 77
    assert info.cross_attention_dim == 32
    assert {layer.downsample for layer in info.attention_layers} == {1, 2}
    assert sum(layer.cross for layer in info.attention_layers) == 4
    assert info.identity.split("@")[1] == tiny.info.identity.split("@")[1]


def test_load_v_prediction_folder(tiny_v, tmp_path):
    loaded = load_components(save_pretrained_folder(tiny_v, tmp_path / "v"))
    assert loaded.info.prediction_type == "v_prediction"


def test_single_file_round_trip(tiny, tmp_path):
    path = save_single_file(tiny, tmp_path / "tiny.safetensors")
    loaded = load_components(path)
    _same_weights(tiny, loaded)
    assert loaded.info.identity.split("@")[1] == tiny.info.identity.split("@")[1]


def test_device_and_dtype_are_the_callers(tiny, tmp_path, caplog):
    loaded = load_components(save_pretrained_folder(tiny, tmp_path / "t"), dtype=torch.bfloat16)
    assert next(loaded.unet.parameters()).dtype == torch.bfloat16
    assert next(loaded.vae.parameters()).dtype == torch.bfloat16
    assert "kept in float32" not in caplog.text  # diffusers' warning of an empty list on every cast
    assert not any(p.requires_grad for p in loaded.unet.parameters())
    assert "float16 on the CPU" not in caplog.text


def test_float16_on_the_cpu_is_loaded_with_a_warning_of_its_speed_and_the_lighter_dtype_is_the_devices(
    tiny, tmp_path, caplog
):
    from videop2p.models.loading import lighter_dtype

    loaded = load_components(save_pretrained_folder(tiny, tmp_path / "t"), dtype=torch.float16)
    assert next(loaded.unet.parameters()).dtype == torch.float16  # it runs, as asked
    assert "float16 on the CPU runs several times slower than float32" in caplog.text
    assert "--dtype bfloat16" in caplog.text
    assert lighter_dtype("cpu") == "--dtype bfloat16" and lighter_dtype("cuda:1") == "--dtype float16"
    assert lighter_dtype("mps") == "--dtype float16" and "bfloat16" in lighter_dtype(None)


def test_missing_models_give_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="run `hf download no-such-org/no-such-model`"):
        load_components("no-such-org/no-such-model")
    with pytest.raises(ModelNotFoundError, match="Model file .* does not exist"):
        load_components(tmp_path / "nothing.safetensors")
    with pytest.raises(ModelNotFoundError, match="Model folder .* does not exist; give a diffusers folder"):
        load_components(tmp_path / "stable-diffusion-v1-5")  # the authors' configs name such a folder
    (tmp_path / "notsd").mkdir()
    with pytest.raises(
        ModelNotFoundError,
        match=r"notsd is not a diffusers Stable Diffusion folder: it has none of its subfolders \(expected tokenizer, "
        r"text_encoder, vae, unet, scheduler\)\.$",
    ):
        load_components(tmp_path / "notsd")
    for empty in ("", "  "):  # not the current folder
        with pytest.raises(ModelNotFoundError, match="The model is empty; .* leave --model out"):
            load_components(empty)
    original = tmp_path / "original.ckpt"  # an original-format checkpoint whose architecture is not cached
    torch.save({"state_dict": {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(4, 4, 3, 3)}}, original)
    with pytest.raises(ValueError, match=r"where neither is at hand, name it with --model-config: a diffusers folder"):
        load_components(original)


def test_the_bundled_model_has_a_name_for_configs_that_must_name_one(tmp_path, monkeypatch):
    """An authors' config names its base model; `--model videop2p-toy` runs it on the bundled one."""
    from videop2p.models.loading import BUNDLED_MODEL, bundled_model_path, check_model_path, model_location

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)  # not read as a folder of that name
    check_model_path(BUNDLED_MODEL)
    assert model_location(BUNDLED_MODEL) == model_location(None) == bundled_model_path()
    assert model_location("other/model") == "other/model"
    assert load_components(BUNDLED_MODEL).info.identity == load_components().info.identity
    with pytest.raises(ModelNotFoundError, match="or videop2p-toy for the bundled model"):
        load_components("/data/stable-diffusion/stable-diffusion-v1-5")


@pytest.mark.parametrize("name", ["not a model", "C:\\models\\sd15", "models/sd/v1-5", "runwayml/sd--v1"])
def test_a_name_that_is_neither_a_path_nor_a_hub_id_is_named_before_the_hub_is_asked(name, tmp_path, monkeypatch):
    from videop2p.models.loading import check_model_path

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelNotFoundError, match=r"is not a local path, nor a hub id \(owner/name"):
        check_model_path(name)
    check_model_path("runwayml/stable-diffusion-v1-5")  # a hub id passes: it is resolved when loaded


def test_a_folder_without_a_parts_weights_is_named_before_anything_is_read(tiny, tmp_path):
    folder = save_pretrained_folder(tiny, tmp_path / "no-vae-weights")
    for weights in (folder / "vae").glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(ModelNotFoundError, match=r"no-vae-weights/vae holds no weights \(a .safetensors or .bin"):
        load_components(folder)
    (folder / "vae" / "vae-weights.safetensors").write_bytes(b"x")  # renamed by hand: no loader reads it
    with pytest.raises(ModelNotFoundError, match=r"; it holds vae-weights.safetensors, of no name they read\.$"):
        load_components(folder)


def test_a_folder_without_its_tokenizer_is_named_not_loaded_with_a_stand_in(tiny, tmp_path):
    """transformers builds a two-token tokenizer with an unbounded length from a missing or empty
    tokenizer folder instead of failing; the loader names the folder instead."""
    import shutil

    broken = save_pretrained_folder(tiny, tmp_path / "no-tokenizer")
    shutil.rmtree(broken / "tokenizer")
    with pytest.raises(ModelNotFoundError, match="it has no 'tokenizer' subfolder"):
        load_components(broken)
    (broken / "tokenizer").mkdir()
    with pytest.raises(ModelNotFoundError, match="tokenizer's files are missing or are not this model's"):
        load_components(broken)


def test_a_cached_hub_model_loads_without_a_request_even_online(tiny, hub_cache, monkeypatch):
    """A hub id is read from the Hugging Face cache first: an offline machine that has the model does not
    wait out the hub's retries (five, about 25 s), and a connected one makes no request."""
    save_pretrained_folder(tiny, hub_cache.snapshot("some-org/tiny-sd"))
    comps = load_components("some-org/tiny-sd")
    assert hub_cache.connects == [] and comps.info.fingerprint == tiny.info.fingerprint
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match=r"'some-org/other' .* \(LocalEntryNotFoundError: .*\)\. On a conn"):
        load_components("some-org/other")
    assert hub_cache.connects == []


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"in_channels": 9}, "takes 9 input channels but its VAE gives 4 latent channels (an inpainting"),
        ({"class_embed_type": "timestep"}, "conditioned on more than the text (class_embed_type='timestep'"),
        ({"cross_attention_dim": 48}, "attends to text of width 48 but its text encoder gives 32"),
    ],
)
def test_a_model_video_p2p_cannot_edit_with_is_named(overrides, needle, tmp_path):
    from videop2p.testing import dummy_components

    folder = save_pretrained_folder(dummy_components(unet_overrides=overrides), tmp_path / "other")
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # named from the configs, before any weights are read
    with pytest.raises(ValueError, match="give a text-to-image Stable Diffusion model") as e:
        load_components(folder)
    assert str(e.value).startswith("other: its UNet") and needle in str(e.value)


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_an_original_single_file_checkpoint_loads_offline_with_its_architecture_named(
    tiny, tmp_path, monkeypatch, suffix
):
    from ldm_checkpoint import ldm_state_dict
    from safetensors.torch import save_file

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    configs = save_pretrained_folder(tiny, tmp_path / "configs")
    for weights in configs.glob("*/*.safetensors"):
        weights.unlink()  # its configs and tokenizer are what is read
    original = tmp_path / f"original{suffix}"
    state = ldm_state_dict(tiny)
    save_file(state, original) if suffix == ".safetensors" else torch.save({"state_dict": state}, original)
    loaded = load_components(original, config=str(configs))
    _same_weights(tiny, loaded)
    assert loaded.info.identity.split("@")[1] == tiny.info.identity.split("@")[1]


def test_a_model_config_is_only_for_an_original_checkpoint_and_must_be_a_diffusers_folder(tiny, tmp_path):
    from videop2p.models.loading import ModelLoadError

    folder = save_pretrained_folder(tiny, tmp_path / "tiny")
    with pytest.raises(ModelLoadError, match="--model-config .* describes an original single-file checkpoint"):
        load_components(folder, config=str(folder))
    with pytest.raises(ModelLoadError, match="the model 'videop2p-toy' carries its own configs"):
        load_components(None, config=str(folder))
    original = tmp_path / "original.ckpt"
    torch.save({"state_dict": {}}, original)
    with pytest.raises(ModelNotFoundError, match="--model-config .*nowhere' is not a diffusers folder"):
        load_components(original, config=str(tmp_path / "nowhere"))
    with pytest.raises(
        ModelNotFoundError,
        match=r"^Model file '.*missing.ckpt' does not exist; give a .safetensors or .ckpt checkpoint, .*\(--model\)\.$",
    ):  # not "carries"
        load_components(tmp_path / "missing.ckpt", config=str(folder))
    torch.save({"state_dict": {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(4, 4, 3, 3)}}, original)
    with pytest.raises(  # a hub id given, not cached: it, not the advice to give one, is named
        ModelLoadError,
        match=r"with --model-config 'some-org/sd' \(.*\); give a diffusers folder of its architecture, or a hub id in",
    ):
        load_components(original, config="some-org/sd")
    with pytest.raises(ModelLoadError, match=r"with --model-config '.*tiny' \([^)]*\)\.$"):  # its own reason, no advice
        load_components(original, config=str(folder))


def test_a_folder_beside_a_model_says_which_folder_to_give(tiny, tmp_path):
    """`--model MODEL/unet` or the folder that holds MODEL: said to be no model folder, and which one is."""
    folder = save_pretrained_folder(tiny, tmp_path / "models" / "tiny")
    with pytest.raises(
        ModelNotFoundError, match=rf"it is the 'unet' part of the model folder '{re.escape(str(folder))}': give that\.$"
    ):
        load_components(folder / "unet")
    with pytest.raises(
        ModelNotFoundError, match=rf"it holds the model folder '{re.escape(str(folder))}': give that\.$"
    ):
        load_components(folder.parent)
    save_pretrained_folder(tiny, tmp_path / "models" / "other")
    with pytest.raises(ModelNotFoundError, match=r"it holds the model folders '.*other', '.*tiny': give one\.$"):
        load_components(folder.parent)


def test_weights_that_are_not_finite_are_refused_at_load_naming_the_tensor(tiny, tmp_path):
    from videop2p.models.loading import ModelLoadError

    folder = save_pretrained_folder(tiny, tmp_path / "tiny")
    unet = load_components(folder).unet
    name = "down_blocks.0.attentions.0.proj_in.weight"
    unet.get_parameter(name).data.view(-1)[0] = float("inf")
    unet.save_pretrained(folder / "unet")
    with pytest.raises(ModelLoadError, match=f"unet.{name} holds NaN or infinite values"):
        load_components(folder)


def _drop_weight(folder, part: str, pick) -> str:
    """Remove one tensor (the first name `pick` accepts) from a saved part's weights file; its name."""
    from safetensors.torch import load_file, save_file

    (file,) = (folder / part).glob("*.safetensors")
    state = load_file(file)
    name = next(k for k in sorted(state) if pick(k))
    del state[name]
    save_file(state, file, metadata={"format": "pt"})
    return name


@pytest.mark.parametrize(
    "part, pick",
    [
        ("text_encoder", lambda k: k.endswith("final_layer_norm.weight")),
        ("vae", lambda k: k.startswith("decoder.conv_out.")),
        ("unet", lambda k: "attn2.to_k" in k),
    ],
)
def test_a_part_whose_files_lack_a_weight_is_refused_naming_it_not_loaded_at_random(tiny, tmp_path, part, pick):
    from videop2p.models.loading import ModelLoadError

    folder = save_pretrained_folder(tiny, tmp_path / "tiny")
    name = _drop_weight(folder, part, pick).removeprefix("text_model.")
    with pytest.raises(ModelLoadError, match=rf"^tiny/{part}: its files lack 1 weight that its config.json makes") as e:
        load_components(folder)  # transformers drew the text encoder's at random; diffusers left the others unloaded
    assert name in str(e.value) and len(str(e.value).splitlines()) == 1


@pytest.mark.parametrize(
    "part, key, scale, weight",
    [
        ("text_encoder", "vocab_size", 2, "token_embedding.weight"),
        ("vae", "block_out_channels", 2, "conv_in"),
        ("unet", "block_out_channels", 2, "conv_in"),
    ],
)
def test_a_part_whose_weights_are_of_another_shape_than_its_config_is_one_line(
    tiny, tmp_path, part, key, scale, weight
):
    import json

    from videop2p.models.loading import ModelLoadError

    folder = save_pretrained_folder(tiny, tmp_path / "tiny")
    config = json.loads((folder / part / "config.json").read_text())
    value = config[key]
    config[key] = [v * scale for v in value] if isinstance(value, list) else value * scale
    (folder / part / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        ModelLoadError, match=rf"^tiny/{part}: the weight \S*{weight}\S* is \[.*\] in its files but \["
    ) as e:
        load_components(folder)
    assert "different models" in str(e.value) and len(str(e.value).splitlines()) == 1


def test_weights_beyond_a_parts_config_are_left_out_and_said(tiny, tmp_path, caplog):
    from safetensors.torch import load_file, save_file

    folder = save_pretrained_folder(tiny, tmp_path / "tiny")
    (file,) = (folder / "unet").glob("*.safetensors")
    state = load_file(file)
    state["extra.weight"] = torch.ones(3)
    save_file(state, file, metadata={"format": "pt"})
    with caplog.at_level("WARNING", logger="videop2p"):
        loaded = load_components(folder)
    assert loaded.info.fingerprint == tiny.info.fingerprint
    assert "tiny/unet: its files hold weights that its config.json does not make (extra.weight)" in caplog.text


def test_a_vae_folder_that_lacks_a_weight_is_refused_naming_it(tiny, tmp_path):
    from videop2p.models.vae import VaeError

    other = save_pretrained_folder(tiny, tmp_path / "other")
    name = _drop_weight(other, "vae", lambda k: k.startswith("decoder.conv_out."))
    with pytest.raises(VaeError, match=rf"VAE '.*other.vae': its files lack 1 weight .*\({re.escape(name)}\)"):
        load_components(save_pretrained_folder(tiny, tmp_path / "tiny"), vae=str(other / "vae"))


@pytest.mark.parametrize(
    "prefix, suffix", [("model.diffusion_model.", "out.2.bias"), ("first_stage_model.", "conv_out.bias")]
)
def test_an_original_checkpoint_that_lacks_a_weight_is_one_line(tiny, tmp_path, monkeypatch, prefix, suffix):
    from ldm_checkpoint import ldm_state_dict
    from safetensors.torch import save_file

    from videop2p.models.loading import ModelLoadError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    configs = save_pretrained_folder(tiny, tmp_path / "configs")
    state = ldm_state_dict(tiny)
    del state[next(k for k in sorted(state) if k.startswith(prefix) and k.endswith(suffix))]
    save_file(state, tmp_path / "original.safetensors")
    with pytest.raises(ModelLoadError, match="original.safetensors lacks weights that its architecture makes") as e:
        load_components(tmp_path / "original.safetensors", config=str(configs))
    assert len(str(e.value).splitlines()) == 1


def test_a_single_file_of_ours_cut_or_changed_names_the_part_and_the_weight(tiny, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from videop2p.models.loading import ModelLoadError

    path = save_single_file(tiny, tmp_path / "tiny.safetensors")
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    state = load_file(path)
    missing = next(k for k in sorted(state) if k.startswith("unet.") and "attn2.to_k" in k)
    save_file({k: v for k, v in state.items() if k != missing}, tmp_path / "cut.safetensors", metadata=meta)
    with pytest.raises(
        ModelLoadError, match=rf"cut.safetensors \(unet\): weights of the model are not in its files \({missing[5:]}\)"
    ):
        load_components(tmp_path / "cut.safetensors")
    bias = next(k for k in sorted(state) if k.startswith("vae.") and k.endswith("conv_out.bias"))
    save_file({**state, bias: state[bias][:1]}, tmp_path / "changed.safetensors", metadata=meta)
    with pytest.raises(
        ModelLoadError, match=rf"changed.safetensors \(vae\): the weight {bias[4:]} is \[1\] in its files but \[3\]"
    ):
        load_components(tmp_path / "changed.safetensors")


def test_a_scheduler_config_ddim_cannot_use_is_named_before_any_weight_is_read(tiny, tmp_path):
    import json

    from videop2p.models.loading import ModelLoadError

    folder = save_pretrained_folder(tiny, tmp_path / "tiny")
    config_file = folder / "scheduler" / "scheduler_config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "trained_betas": [0.5, 0.5]}))  # diffusers indexes past their end
    (weights,) = (folder / "unet").glob("*.safetensors")
    weights.write_bytes(weights.read_bytes()[:100])  # not reached
    with pytest.raises(ModelLoadError, match=r"^tiny: its scheduler's trained_betas holds 2 values; expected one per"):
        load_components(folder)
    from videop2p.toy.quality import check_eval_inputs

    with pytest.raises(ModelLoadError, match=r"^tiny: its scheduler's trained_betas"):  # `toy eval`, before it samples
        check_eval_inputs(folder, seeds=1, steps=2, guidance=7.5, device="cpu")


@pytest.mark.parametrize(
    ("part", "key", "value", "needle"),
    [
        ("vae", "scaling_factor", 0, "other/vae: its scaling_factor 0 is not valid; expected a positive number"),
        ("vae", "scaling_factor", -0.18215, "its scaling_factor -0.18215 is not valid"),
        ("vae", "scaling_factor", float("nan"), "its scaling_factor nan is not valid"),
        ("unet", "sample_size", 0, "other: its UNet's sample_size 0 is not valid; expected a whole number"),
        ("unet", "sample_size", [32, 0], "its UNet's sample_size [32, 0] is not valid"),
        ("unet", "sample_size", [], "its UNet's sample_size [] is not valid"),
        ("unet", "sample_size", [8, 8, 8], "its UNet's sample_size [8, 8, 8] is not valid; expected a whole number"),
    ],
)
def test_a_config_number_no_edit_can_use_is_named_before_any_weight_is_read(tiny, tmp_path, part, key, value, needle):
    """A VAE scaling factor of 0 made every latent 0 and the run wrote its outputs; a sample size of 0
    ended in a ZeroDivisionError when the working size was chosen."""
    import json

    from videop2p.models.loading import ModelLoadError

    folder = save_pretrained_folder(tiny, tmp_path / "other")
    config = json.loads((folder / part / "config.json").read_text())
    (folder / part / "config.json").write_text(json.dumps({**config, key: value}))
    (weights,) = (folder / "unet").glob("*.safetensors")
    weights.write_bytes(weights.read_bytes()[:100])  # not reached
    with pytest.raises(ModelLoadError) as e:
        load_components(folder)
    assert needle in str(e.value)


@pytest.mark.parametrize(("sizes", "side"), [([8, 8], 8), ([4, 16], 8), ([6, 10], 8)])
def test_a_sample_size_of_height_and_width_is_read_as_its_area(tiny, tmp_path, sizes, side):
    """diffusers' UNet takes a (height, width) pair as its sample size; reading it ended in a TypeError
    traceback. The working size is chosen from the side of a square of its area (the clip gives the aspect)."""
    folder = save_pretrained_folder(tiny, tmp_path / "pair")
    config = json.loads((folder / "unet" / "config.json").read_text())
    (folder / "unet" / "config.json").write_text(json.dumps({**config, "sample_size": sizes}))
    info = load_components(folder).info
    assert (info.sample_size, info.native_size) == (side, side * info.vae_scale_factor)


def test_a_replacement_vae_without_a_positive_scaling_factor_is_refused(tiny, tmp_path):
    from videop2p.models.vae import VaeError

    other = save_pretrained_folder(tiny, tmp_path / "other")
    config = json.loads((other / "vae" / "config.json").read_text())
    (other / "vae" / "config.json").write_text(json.dumps({**config, "scaling_factor": 0.0}))
    with pytest.raises(VaeError, match=r"VAE '.*other.vae': its scaling_factor 0.0 is not valid"):
        load_components(save_pretrained_folder(tiny, tmp_path / "tiny"), vae=str(other / "vae"))


@pytest.mark.parametrize("file", ["model_index.json", "unet/config.json", "tokenizer/tokenizer_config.json"])
def test_a_json_file_of_the_folder_cut_short_is_named(tiny, tmp_path, file):
    from videop2p.models.loading import ModelLoadError, check_model_path

    folder = save_pretrained_folder(tiny, tmp_path / "tiny")
    text = (folder / file).read_text()
    (folder / file).write_text(text[: len(text) // 2])
    with pytest.raises(ModelLoadError, match=rf"{re.escape(str(folder / file))} is not valid JSON \(.*\); the model's"):
        check_model_path(folder)  # as every command does before loading
    with pytest.raises(ModelLoadError, match="is not valid JSON"):
        load_components(folder)


def test_a_damaged_model_in_the_hub_cache_is_named_by_its_hub_id_without_a_request(tiny, hub_cache):
    from videop2p.models.loading import ModelLoadError

    snapshot = save_pretrained_folder(tiny, hub_cache.snapshot("some-org/tiny-sd"))
    _drop_weight(snapshot, "unet", lambda k: "attn2.to_k" in k)
    with pytest.raises(ModelLoadError, match=r"^some-org/tiny-sd/unet: its files lack 1 weight"):  # not the commit hash
        load_components("some-org/tiny-sd")
    config = snapshot / "vae" / "config.json"
    config.write_text(config.read_text()[:40])
    with pytest.raises(ModelLoadError, match=r"vae.config.json is not valid JSON"):
        load_components("some-org/tiny-sd")
    assert hub_cache.connects == []


@pytest.mark.parametrize(
    ("names", "read"),
    [
        (["diffusion_pytorch_model.safetensors", "config.json"], (None, True)),
        (["diffusion_pytorch_model.fp16.safetensors", "config.json"], ("fp16", True)),
        (["model.safetensors", "model.fp16.safetensors"], (None, True)),  # plain files first, as the libraries load
        (["model.fp16-00001-of-00002.safetensors", "model.fp16-00002-of-00002.safetensors"], ("fp16", True)),
        (["model.safetensors.index.bf16.json", "model.bf16-00001-of-00002.safetensors"], ("bf16", True)),
        (["model-00001-of-00002.safetensors", "model.safetensors.index.json"], (None, True)),
        (["diffusion_pytorch_model.non_ema.bin", "diffusion_pytorch_model.fp16.bin"], ("fp16", False)),
        (["diffusion_pytorch_model.non_ema.bin", "diffusion_pytorch_model.ema.bin"], ("ema", False)),
        (["pytorch_model.bin", "model.fp16.safetensors"], (None, False)),
        (["config.json", "weights.safetensors"], None),
    ],
)
def test_how_a_parts_weights_are_read_comes_from_its_file_names(names, read):
    from videop2p.models.weights import weights_load_kwargs

    expected = {} if read is None else {"variant": read[0], "use_safetensors": read[1]}
    assert weights_load_kwargs(names) == expected


def _variant_only_folder(components, path):
    """`components` written as diffusers does with `save_pretrained(variant="fp16")`: half-precision weights
    files named `*.fp16.safetensors`, and no plain ones."""
    import copy

    save_pretrained_folder(components, path)
    for part in ("text_encoder", "vae", "unet"):
        for file in (path / part).glob("*.safetensors"):
            file.unlink()
        copy.deepcopy(getattr(components, part)).half().save_pretrained(path / part, variant="fp16")
    return path


def test_a_folder_of_fp16_variant_weights_loads_from_them(tiny, tmp_path):
    """A model written with `save_pretrained(variant="fp16")` holds only `*.fp16.safetensors` files; it was
    "no file named model.safetensors, or pytorch_model.bin, found in directory FOLDER"."""
    folder = _variant_only_folder(tiny, tmp_path / "tiny16")
    assert not list(folder.glob("*/model.safetensors")) and list(folder.glob("unet/*.fp16.safetensors"))
    loaded = load_components(folder)
    for part in ("text_encoder", "vae", "unet"):
        ours, theirs = getattr(loaded, part).state_dict(), getattr(tiny, part).state_dict()
        assert ours.keys() == theirs.keys()
        for key, value in ours.items():
            assert value.dtype == torch.float32  # read in half precision, run in the dtype asked for
            torch.testing.assert_close(value, theirs[key].half().float(), rtol=0, atol=0)


def test_a_replacement_vae_folder_or_cached_hub_model_of_fp16_variant_weights_loads(tiny, tmp_path, hub_cache):
    other = _variant_only_folder(tiny, tmp_path / "other")
    loaded = load_components(save_pretrained_folder(tiny, tmp_path / "tiny"), vae=str(other / "vae"))
    torch.testing.assert_close(loaded.vae.decoder.conv_in.weight, tiny.vae.decoder.conv_in.weight.half().float())
    _variant_only_folder(tiny, hub_cache.snapshot("some-org/tiny-fp16"))
    assert load_components("some-org/tiny-fp16").info.identity.startswith("some-org/tiny-fp16@")
    assert hub_cache.connects == []


def test_how_a_hub_repositorys_parts_are_read_comes_from_its_listing():
    from videop2p.models.hub import hub_load_kwargs

    files = [
        "model_index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/diffusion_pytorch_model.bin",
        "vae/diffusion_pytorch_model.fp16.safetensors",
        "text_encoder/config.json",
    ]
    assert hub_load_kwargs(files) == {
        "": {},
        "unet": {"variant": "fp16", "use_safetensors": True},
        "vae": {"variant": None, "use_safetensors": False},
        "text_encoder": {},
    }


def test_a_hub_id_is_listed_by_one_request_and_an_unreachable_hub_or_missing_repository_is_said_at_once(
    hub_cache, monkeypatch
):
    """huggingface_hub retried a download that could not connect five times (28 s for `videop2p run CLIP
    --model some-org/missing-model` on a machine without the hub) before the model's error; one request
    without retries now lists the repository, and its failure is the error."""
    import socket
    from types import SimpleNamespace

    import httpx2
    import huggingface_hub.constants
    import huggingface_hub.utils._http
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    from videop2p.models.hub import hub_files
    from videop2p.models.vae import VaeError

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # read once, when it was imported
    lookups, waits = [], []

    def no_name_service(host, *args, **kwargs):
        lookups.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_name_service)
    monkeypatch.setattr(huggingface_hub.utils._http.time, "sleep", waits.append)  # its retries' waits, not waited
    with pytest.raises(
        ModelNotFoundError, match=r"'some-org/missing' .*\(HubError: the hub \(https://.*\) could not be reached: "
    ):
        load_components("some-org/missing")
    assert lookups and waits == []  # asked, and not again after 1, 2, 4, 8 and 8 s
    with pytest.raises(VaeError, match=r"VAE 'some-org/vae' .*\(HubError: the hub .* could not be reached"):
        load_components(None, vae="some-org/vae")
    assert waits == []

    def not_found(self, repo, **kwargs):
        url = f"https://huggingface.co/api/models/{repo}"
        response = httpx2.Response(404, request=httpx2.Request("GET", url))  # huggingface_hub's own client
        raise RepositoryNotFoundError(f"404 Client Error for url: {url}", response=response)

    monkeypatch.setattr(HfApi, "model_info", not_found)
    with pytest.raises(
        ModelNotFoundError, match=r"the hub holds no model repository 'some-org/typo' that this machine"
    ):
        load_components("some-org/typo")
    listing = SimpleNamespace(siblings=[SimpleNamespace(rfilename=f) for f in ("model_index.json", "vae/config.json")])
    monkeypatch.setattr(HfApi, "model_info", lambda self, repo, **kwargs: listing)
    assert hub_files("some-org/sd") == ["model_index.json", "vae/config.json"]


def test_a_folder_of_bin_weights_loads_without_diffusers_error_lines(tiny, tmp_path, caplog):
    """Written by diffusers before safetensors (`pytorch_model.bin`, `diffusion_pytorch_model.bin`): it loaded,
    after diffusers logged "An error occurred while trying to fetch FOLDER: Error no file named
    diffusion_pytorch_model.safetensors" for the VAE and the UNet, which the CLI showed."""
    folder = save_pretrained_folder(tiny, tmp_path / "old")
    for part in ("text_encoder", "vae", "unet"):
        for file in (folder / part).glob("*.safetensors"):
            file.unlink()
        if part == "text_encoder":  # transformers 5 writes safetensors only
            torch.save(tiny.text_encoder.state_dict(), folder / part / "pytorch_model.bin")
        else:
            getattr(tiny, part).save_pretrained(folder / part, safe_serialization=False)
    assert list(folder.glob("unet/*.bin")) and not list(folder.glob("*/*.safetensors"))
    with caplog.at_level("WARNING"):
        loaded = load_components(folder)
    assert loaded.info.fingerprint == tiny.info.fingerprint
    assert not [r for r in caplog.records if r.name.startswith("diffusers")], caplog.text


def test_a_hub_repositorys_single_file_checkpoint_loads_from_the_cache(tiny, tmp_path, hub_cache, monkeypatch):
    """`--model owner/name/FILE.safetensors`, a checkpoint file of a hub repository (as diffusers'
    `from_single_file` takes one, and as civitai's models are mirrored on the hub): from the Hugging Face cache
    with no request, with `--model-config` naming its architecture; offline, one the cache lacks is one line
    naming its download; a local path of the same name comes first."""
    from ldm_checkpoint import ldm_state_dict
    from safetensors.torch import save_file

    from videop2p.models.loading import ModelLoadError, check_model_config, check_model_path

    configs = save_pretrained_folder(tiny, tmp_path / "configs")
    snapshot = hub_cache.snapshot("someone/sd-finetune")
    (snapshot / "checkpoints").mkdir(parents=True)
    save_file(ldm_state_dict(tiny), snapshot / "checkpoints" / "finetune-v1.safetensors")
    spec = "someone/sd-finetune/checkpoints/finetune-v1.safetensors"
    check_model_path(spec)  # passes, as a hub id does
    check_model_config(spec, str(configs))  # an original checkpoint's: an architecture may be named
    loaded = load_components(spec, config=str(configs))
    _same_weights(tiny, loaded)
    assert loaded.info.identity.startswith("finetune-v1.safetensors@") and hub_cache.connects == []
    save_pretrained_folder(tiny, hub_cache.snapshot("someone/sd-diffusers"))  # a diffusers model, by its page's link
    assert load_components("https://huggingface.co/someone/sd-diffusers").info.identity.startswith(
        "someone/sd-diffusers@"
    )
    page = "https://huggingface.co/someone/sd-finetune/blob/main/checkpoints/finetune-v1.safetensors"  # its link
    check_model_path(page)
    assert load_components(page, config=str(configs)).info.identity == loaded.info.identity
    by_link = load_components(spec, config="https://huggingface.co/someone/sd-diffusers")  # its architecture's link
    assert by_link.info.identity == loaded.info.identity and hub_cache.connects == []
    save_pretrained_folder(tiny, hub_cache.snapshot("someone/sd-arch", "v2"))  # an architecture at a revision only
    at_revision = load_components(spec, config="https://huggingface.co/someone/sd-arch/tree/v2")
    assert at_revision.info.identity == loaded.info.identity and hub_cache.connects == []
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match=r"connected machine, `hf download someone/sd-arch --revision v3`\)\.$"):
        load_components(spec, config="someone/sd-arch@v3")
    with pytest.raises(ModelNotFoundError) as other_revision:  # a download link of another revision
        load_components(page.replace("/blob/main/", "/resolve/v2/") + "?download=true", config=str(configs))
    assert (
        "On a connected machine run `hf download someone/sd-finetune checkpoints/finetune-v1.safetensors --revision v2`"
        in str(other_revision.value)
    )
    with pytest.raises(ModelNotFoundError) as missing:
        load_components("someone/sd-finetune/finetune-v2.safetensors", config=str(configs))
    assert str(missing.value) == (
        "model file 'someone/sd-finetune/finetune-v2.safetensors' is not a local path and could not be read from "
        "the Hugging Face hub or its cache (not in the Hugging Face cache). On a connected machine run `hf download "
        "someone/sd-finetune finetune-v2.safetensors`, or give a local file."
    )
    with pytest.raises(
        ModelNotFoundError,
        match=r"^Model file 'someone/finetune.safetensors' does not exist; give a .safetensors or .ckpt checkpoint, .*\(--model\)\.$",
    ):
        check_model_path("someone/finetune.safetensors")  # the form of a local file's path: it is one
    with pytest.raises(ModelLoadError, match="describes an original single-file checkpoint"):
        check_model_config("someone/sd-finetune", str(configs))  # a repository of a diffusers model carries its own


@pytest.mark.parametrize(
    "value, expected",
    [
        ("some-org/sd", ("some-org/sd", None, None)),
        ("some-org/sd@fp16", ("some-org/sd", None, "fp16")),
        ("some-org/sd@main", ("some-org/sd", None, None)),
        ("some-org/sd@refs%2Fpr%2F3/ckpt/v1.safetensors", ("some-org/sd", "ckpt/v1.safetensors", "refs/pr/3")),
        ("https://huggingface.co/some-org/sd", ("some-org/sd", None, None)),
        ("https://huggingface.co/some-org/sd/", ("some-org/sd", None, None)),
        ("https://huggingface.co/some-org/sd/tree/v2", ("some-org/sd", None, "v2")),
        ("https://hf.co/some-org/sd/tree/0123abcd/", ("some-org/sd", None, "0123abcd")),
        ("https://huggingface.co/some-org/sd/blob/v2/v1.ckpt", ("some-org/sd", "v1.ckpt", "v2")),
        ("some-org/sd@", None),  # no revision after the @
        ("some-org/sd@v2/notes.txt", None),  # a file of no weights suffix
        ("https://huggingface.co/some-org/sd/tree/v2/unet", None),  # a folder's page, not the repository's
        ("me@home/models", None),  # an @ in the owner: no hub id
    ],
)
def test_a_hub_repository_or_file_is_read_with_its_revision(value, expected):
    from videop2p.config import hub_file_id

    found = hub_file_id(value, (".safetensors", ".ckpt"))
    assert (tuple(found) if found is not None else None) == expected


def test_a_hub_model_at_a_revision_is_read_at_it_from_the_cache_and_named_with_it(
    tiny, tiny_v, tmp_path, hub_cache, monkeypatch
):
    """`--model owner/name@REVISION` (huggingface_hub's file system writes a revision so) or its page's link at
    that revision (`/tree/REVISION`): a branch, tag or commit other than main, pinned for a reproducible run,
    was read at main or refused as no hub id."""
    from videop2p.models.loading import check_model_path
    from videop2p.models.vae import VaeError

    save_pretrained_folder(tiny, hub_cache.snapshot("some-org/tiny-sd"))
    save_pretrained_folder(tiny_v, hub_cache.snapshot("some-org/tiny-sd", "v2"))
    commit = "4567cdef" * 5
    save_pretrained_folder(tiny_v, hub_cache.snapshot("some-org/tiny-sd", commit))
    assert load_components("some-org/tiny-sd").info.fingerprint == tiny.info.fingerprint
    for spec in (
        "some-org/tiny-sd@v2",
        "https://huggingface.co/some-org/tiny-sd/tree/v2",
        f"some-org/tiny-sd@{commit}",
    ):
        check_model_path(spec)
        info = load_components(spec).info
        assert info.fingerprint == tiny_v.info.fingerprint and info.prediction_type == "v_prediction", spec
    assert info.identity.startswith(f"some-org/tiny-sd@{commit}@")  # the model's name says its revision
    with_vae = load_components("some-org/tiny-sd", vae="some-org/tiny-sd@v2").info.identity  # a VAE's repository too
    assert with_vae.startswith("some-org/tiny-sd+tiny-sd@v2@") and hub_cache.connects == []
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as missing:
        load_components("https://huggingface.co/some-org/tiny-sd/tree/v3")
    assert str(missing.value).startswith("Model 'some-org/tiny-sd@v3' is not a local path and could not be loaded")
    assert "On a connected machine run `hf download some-org/tiny-sd --revision v3`" in str(missing.value)
    with pytest.raises(VaeError, match=r"run `hf download some-org/tiny-sd --revision v3`"):
        load_components("some-org/tiny-sd", vae="some-org/tiny-sd@v3")
    with pytest.raises(ModelNotFoundError, match=r"'some-org/tiny-sd@' is not a local path, nor a hub id"):
        check_model_path("some-org/tiny-sd@")


def test_a_hub_models_revision_the_hub_lacks_is_said_from_its_one_listing(hub_cache, monkeypatch):
    import httpx2
    import huggingface_hub.constants
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RevisionNotFoundError

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # read once, when it was imported
    asked = []

    def no_revision(self, repo, revision=None, **kwargs):
        asked.append((repo, revision))
        url = f"https://huggingface.co/api/models/{repo}/revision/{revision}"
        raise RevisionNotFoundError(
            f"404 for url: {url}", response=httpx2.Response(404, request=httpx2.Request("GET", url))
        )

    monkeypatch.setattr(HfApi, "model_info", no_revision)
    with pytest.raises(ModelNotFoundError) as missing:
        load_components("some-org/sd@v9")
    assert asked == [("some-org/sd", "v9")] and hub_cache.connects == []
    assert "(HubError: the hub repository 'some-org/sd' has no revision 'v9')" in str(missing.value)


def test_a_damaged_hub_file_in_the_cache_is_named_as_the_user_gave_it(tiny_folder, hub_cache):
    """A model checkpoint, VAE or embedding given as a hub repository's file whose copy in the Hugging Face cache
    cannot be read: the error names it as the user gave it (owner/name/FILE), then the copy's path, where it named
    only the cache's path, a name the user never typed. A local file of that kind keeps its own name."""
    from videop2p.models.embeddings import EmbeddingError
    from videop2p.models.loading import ModelLoadError
    from videop2p.models.vae import VaeError

    snapshot = hub_cache.snapshot("someone/damaged")
    snapshot.mkdir(parents=True)
    for name in ("model.safetensors", "vae.safetensors", "emb.safetensors"):
        (snapshot / name).write_bytes(b"\xff" * 300)  # no safetensors header
    cases = (
        ({"model": "someone/damaged/model.safetensors"}, ModelLoadError),
        ({"model": tiny_folder, "vae": "someone/damaged/vae.safetensors"}, VaeError),
        ({"model": tiny_folder, "embeddings": {"someone/damaged/emb.safetensors": None}}, EmbeddingError),
    )
    for kwargs, error in cases:
        given = next(iter(kwargs["embeddings"])) if "embeddings" in kwargs else kwargs.get("vae", kwargs["model"])
        with pytest.raises(error) as e:
            load_components(**kwargs)
        message = str(e.value)
        copy = snapshot / given.rsplit("/", 1)[1]
        assert f"{given!r} (its copy in the Hugging Face cache: {copy})" in message and "\n" not in message, message
    local = snapshot.parent.parent / "local.safetensors"
    local.write_bytes(b"\xff" * 300)
    with pytest.raises(VaeError, match=f"VAE file {str(local)!r} cannot be read as weights"):
        load_components(tiny_folder, vae=str(local))


def test_a_path_too_long_to_look_up_is_named_by_every_check_not_raised_as_an_oserror(tiny, tmp_path, capsys):
    """Python's `Path.exists` raises OSError (ENAMETOOLONG) for a name over the file system's limit: each path a
    run reads or writes is named in one line, with the limit the file system itself gives."""
    import os

    import yaml

    from videop2p.batch import BatchError, check_local_inputs, load_jobs
    from videop2p.cli import main
    from videop2p.config import check_folder, load_config
    from videop2p.io.video import VideoError
    from videop2p.io.writing import write_frames
    from videop2p.models.embeddings import EmbeddingError
    from videop2p.models.lora import LoraError
    from videop2p.models.vae import VaeError
    from videop2p.pipeline import VideoP2P
    from videop2p.store.workspace import Workspace
    from videop2p.toy.world import Color, Shape, ToyClipSpec, ToyObject, render_clip

    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    long = str(tmp_path / ("n" * (limit + 1)))
    said = f"(a name here has at most {limit} bytes, and a part of it has {limit + 1}; give a shorter one.)"
    folder = save_pretrained_folder(tiny, tmp_path / "model")
    for kind, call in (
        (ModelNotFoundError, lambda: load_components(long)),
        (VaeError, lambda: load_components(folder, vae=long)),
        (LoraError, lambda: load_components(folder, lora={long: 1.0})),
        (EmbeddingError, lambda: load_components(folder, embeddings={long: None})),
        (ValueError, lambda: check_folder("out", long, "for the outputs")),
    ):
        with pytest.raises(kind, match=f"names no file or folder: {re.escape(said[1:-1])}"):
            call()
    vp = VideoP2P(load_components(folder), Workspace(tmp_path / "ws"))
    run = {"source": "a red circle", "targets": ["a blue circle"], "out": str(tmp_path / "out")}
    with pytest.raises(VideoError, match=re.escape(said[1:-1])):
        vp.dry_run({**run, "video": long})
    config = tmp_path / "run.yaml"  # a config file's or a job's model or clip: as the check names it
    config.write_text(yaml.safe_dump({**run, "video": long, "model": long}))
    assert load_config(config).model == long
    clip = write_frames(render_clip(ToyClipSpec([ToyObject(Shape.CIRCLE, Color.RED)], frames=3, size=32)).frames,
                        tmp_path / "clip")  # fmt: skip
    config.write_text(yaml.safe_dump({**run, "video": {"path": str(clip), "frames": 3}, "model": long}))
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["run", "--config", str(config), "--dry-run"])
    line = capsys.readouterr().err.strip().splitlines()[-1]  # named by the file's key, as its other errors are
    assert line.startswith(f"error: {config}: model '") and line.endswith(said[1:-1]), line
    jobs = tmp_path / "jobs.yaml"
    job = {"video": long, "source": run["source"], "targets": run["targets"], "model": long}
    jobs.write_text(yaml.safe_dump({"jobs": [job]}))
    with pytest.raises(BatchError, match=rf"jobs\[0\] \(job-1\): video.path .*{re.escape(said[1:-1])}"):
        check_local_inputs(load_jobs(jobs)[0])
    assert not (tmp_path / "out").exists()


def test_a_link_given_for_a_path_is_named_as_a_link_by_every_check_not_read_as_folders(tiny, tmp_path, capsys):
    """A path given as a link (`https://host/clip.mp4`) reads, as a path, as folders `https:` and the host: every
    check names it as given, a link, and says what to give (a `file://` link: its path), before anything is read
    or written; the hub's own links still name hub files and repositories."""
    import numpy as np
    import yaml

    from videop2p.batch import BatchError, check_local_inputs, load_jobs
    from videop2p.cli import main
    from videop2p.config import ConfigError, check_folder, load_yaml
    from videop2p.io.video import VideoError
    from videop2p.io.writing import write_video
    from videop2p.models.embeddings import EmbeddingError
    from videop2p.models.loading import ModelLoadError, check_model_config, check_model_path
    from videop2p.models.lora import LoraError
    from videop2p.models.vae import VaeError
    from videop2p.pipeline import VideoP2P
    from videop2p.store.workspace import Workspace

    link = "https://example.com/files/clip.mp4"
    weights = "https://example.com/files/weights.safetensors"
    said = "is a link, not a path on this machine; give "
    folder = save_pretrained_folder(tiny, tmp_path / "model")
    hub_forms = "give the path of a local copy, or a hub repository's, owner/name or owner/name/FILE (or its link on"
    for kind, call, message in (
        (ModelNotFoundError, lambda: check_model_path(weights), f"Model '{weights}' {said}the path of a local copy"),
        (ModelNotFoundError, lambda: load_components("s3://bucket/sd"), f"Model 's3://bucket/sd' {said}"),
        (VaeError, lambda: load_components(folder, vae=weights), f"VAE file '{weights}' {said}{hub_forms[5:]}"),
        (LoraError, lambda: load_components(folder, lora={weights: 1.0}), f"LoRA file '{weights}' {said}"),
        (
            EmbeddingError,
            lambda: load_components(folder, embeddings={weights: None}),
            f"embedding file '{weights}' {said}",
        ),
        (ValueError, lambda: check_folder("out", link, "for the outputs"), f"out '{link}' {said}a folder for the"),
        (ConfigError, lambda: load_yaml("https://example.com/run.yaml"), "Config file 'https://example.com/run.y"),
        (VideoError, lambda: write_video(np.zeros((2, 8, 8, 3), np.uint8), link), f"Output '{link}' {said}a local"),
        (VideoError, lambda: VideoP2P(tiny).load_clip(link), f"Video path '{link}' {said}the path of a local copy."),
        (
            VideoError,
            lambda: VideoP2P(tiny).load_clip("file:///data/a%20clip.mp4"),
            "Video path 'file:///data/a%20clip.mp4' is a link, not a path; give its path, '/data/a clip.mp4'.",
        ),
    ):
        with pytest.raises(kind) as e:
            call()
        assert said.split(",")[0] in str(e.value) and str(e.value).startswith(message), e.value
    with pytest.raises(ModelLoadError, match=f"--model-config '{weights}' {said}"):  # an original checkpoint's
        from ldm_checkpoint import ldm_state_dict
        from safetensors.torch import save_file

        save_file(ldm_state_dict(tiny), tmp_path / "original.safetensors")
        check_model_config(str(tmp_path / "original.safetensors"), weights)
    check_model_path("https://huggingface.co/someone/sd")  # the hub's link to a repository: resolved when loaded
    check_model_config(str(tmp_path / "original.safetensors"), "https://huggingface.co/someone/sd")
    vp = VideoP2P(tiny, Workspace(tmp_path / "ws"))
    run = {"source": "a red circle", "targets": ["a blue circle"], "out": str(tmp_path / "out")}
    with pytest.raises(VideoError, match=f"'{link}' {said}"):
        vp.dry_run({**run, "video": link})
    config = tmp_path / "run.yaml"  # a config file's: named by its key, the link as written
    config.write_text(yaml.safe_dump({**run, "video": link}))
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["run", "--config", str(config), "--dry-run"])
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: {config}: video.path '{link}' {said}the path of a local copy."
    )
    jobs = tmp_path / "jobs.yaml"  # a job's paths are made absolute from the jobs file's folder; a link is not
    job = {"video": link, "source": run["source"], "targets": run["targets"], "save_tuned": "s3://bucket/tuned"}
    jobs.write_text(yaml.safe_dump({"jobs": [job]}))
    loaded = load_jobs(jobs)[0][0].config
    assert (loaded.video.path, loaded.save_tuned) == (link, "s3://bucket/tuned")
    with pytest.raises(BatchError, match=rf"jobs\[0\] \(job-1\): video.path '{re.escape(link)}' {said}"):
        check_local_inputs(load_jobs(jobs)[0])
    jobs.write_text(yaml.safe_dump({"out": "https://example.com/out", "jobs": [job]}))
    with pytest.raises(BatchError, match=f"'out' in {jobs}: 'https://example.com/out' {said}a local folder"):
        load_jobs(jobs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jobs.yaml", "model", "original.safetensors", "run.yaml"]
