"""LoRA files fused into a loaded model (`--lora FILE=SCALE`): the weights the LoRA formula gives, in
kohya-ss's and PEFT's layouts, several at once; the model's identity follows; bad files and scales are
one-line errors before any work."""

import json
import logging
import re
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from videop2p.cli import app
from videop2p.config import ConfigError, parse_lora
from videop2p.io.writing import write_frames
from videop2p.models.loading import load_components
from videop2p.models.lora import LoraError, check_lora
from videop2p.testing import assert_one_line_error
from videop2p.toy.world import Color, Shape, ToyClipSpec, ToyObject, render_clip

RANK = 4
UNET_LAYERS = ("attn2.to_k", "attn2.to_v", "attn1.to_q")  # ends of the UNet layers the test LoRAs adapt
TEXT_LAYERS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj")


def _pairs(tiny, seed: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """(up, down) of rank RANK for every adapted layer, keyed "unet.NAME" / "text_encoder.NAME"."""
    g = torch.Generator().manual_seed(seed)
    pairs = {}
    for part, ends in (("unet", UNET_LAYERS), ("text_encoder", TEXT_LAYERS)):
        for name, layer in getattr(tiny, part).named_modules():
            if name.endswith(ends):
                out_features, in_features = layer.weight.shape
                up, down = torch.randn(out_features, RANK, generator=g), torch.randn(RANK, in_features, generator=g)
                pairs[f"{part}.{name}"] = (up * 0.1, down * 0.1)
    return pairs


def _kohya(pairs, alpha: float) -> dict[str, torch.Tensor]:
    """kohya-ss's layout (the A1111 web UI's): lora_unet_/lora_te_text_model_ names with '_' for '.', an alpha each."""
    sd = {}
    for key, (up, down) in pairs.items():
        part, name = key.split(".", 1)
        prefix = "lora_unet_" if part == "unet" else "lora_te_text_model_"  # SD 1.x's CLIP wrapped in text_model
        stem = prefix + name.replace(".", "_")
        sd |= {f"{stem}.lora_up.weight": up, f"{stem}.lora_down.weight": down, f"{stem}.alpha": torch.tensor(alpha)}
    return sd


def _peft(pairs) -> dict[str, torch.Tensor]:
    """PEFT's layout, as diffusers' training scripts save it (no alpha: alpha = rank)."""
    return {f"{key}.lora_{ab}.weight": t for key, (up, down) in pairs.items() for ab, t in (("B", up), ("A", down))}


def _weights(components) -> dict[str, torch.Tensor]:
    return {
        f"{part}.{k}": v for part in ("unet", "text_encoder") for k, v in getattr(components, part).state_dict().items()
    }


def _expected(tiny, *loras) -> dict[str, torch.Tensor]:
    """The tiny weights plus scale * (alpha / rank) * up @ down of each (pairs, alpha, scale) in `loras`."""
    want = {k: v.clone() for k, v in _weights(tiny).items()}
    for pairs, alpha, scale in loras:
        for key, (up, down) in pairs.items():
            want[f"{key}.weight"] += scale * (alpha / RANK) * up @ down
    return want


def _assert_weights(components, want):
    got = _weights(components)
    assert got.keys() == want.keys()  # the adapters are gone: no lora_A/lora_B tensors are left
    for key, value in want.items():
        torch.testing.assert_close(got[key], value, atol=1e-6, rtol=1e-5, msg=key)


def test_a_kohya_lora_is_fused_as_its_formula_says_and_the_model_is_named_by_it(tiny, tiny_folder, tmp_path):
    pairs = _pairs(tiny, seed=1)
    save_file(_kohya(pairs, alpha=2.0), tmp_path / "style.safetensors")
    fused = load_components(tiny_folder, lora={str(tmp_path / "style.safetensors"): 0.5})
    _assert_weights(fused, _expected(tiny, (pairs, 2.0, 0.5)))  # UNet and text encoder; every other weight as it was
    plain = load_components(tiny_folder)
    assert fused.info.identity.startswith("tiny+style@") and plain.info.identity.startswith("tiny@")
    assert fused.info.fingerprint != plain.info.fingerprint  # so its tuned clips are its own in the workspace
    again = load_components(tiny_folder, lora={str(tmp_path / "style.safetensors"): 0.5})
    assert again.info.identity == fused.info.identity  # and the same LoRA finds them again
    layers = len(pairs)  # `videop2p info --lora` says what the file gave
    assert fused.info.to_dict()["loras"] == {"style.safetensors": f"LoRA {layers} at scale 0.5"}
    assert "loras" not in plain.info.to_dict()
    shown = CliRunner().invoke(
        app, ["info", "--model", str(tiny_folder), "--lora", f"{tmp_path / 'style.safetensors'}=0.5"]
    )
    assert shown.exit_code == 0 and f"loras: {{'style.safetensors': 'LoRA {layers} at scale 0.5'}}" in shown.output
    from videop2p.pipeline import VideoP2P

    style = str(tmp_path / "style.safetensors")  # the API takes what a config file takes: a file, a list, a dict
    for given in (f"{style}=0.5", [f"{style}=0.5"], {style: 0.5}):
        assert VideoP2P.from_pretrained(str(tiny_folder), lora=given).components.info.identity == fused.info.identity
    assert VideoP2P.from_pretrained(str(tiny_folder), lora=style).components.info.to_dict()["loras"] == {
        "style.safetensors": f"LoRA {layers} at scale 1"
    }


def test_peft_layout_loras_add_up_each_at_its_own_scale(tiny, tiny_folder, tmp_path):
    first, second = _pairs(tiny, seed=2), _pairs(tiny, seed=3)
    save_file(_peft(first), tmp_path / "a.safetensors")
    save_file(_kohya(second, alpha=1.0), tmp_path / "b.safetensors")
    fused = load_components(
        tiny_folder, lora={str(tmp_path / "a.safetensors"): 0.8, str(tmp_path / "b.safetensors"): -1}
    )
    _assert_weights(fused, _expected(tiny, (first, RANK, 0.8), (second, 1.0, -1.0)))
    assert fused.info.identity.startswith("tiny+a+b@")


def test_a_pickled_lora_file_is_read_once(tiny, tiny_folder, tmp_path, monkeypatch):
    """A .bin or .pt LoRA (diffusers' and PEFT's trainers write pytorch_lora_weights.bin) was read whole here, to
    see whether it is LyCORIS's, then again by diffusers' loader; its weights read here are now what the loader
    gets. Fused as its formula says, in kohya-ss's and PEFT's layouts."""
    pairs = _pairs(tiny, seed=4)
    torch.save(_kohya(pairs, alpha=2.0), tmp_path / "kohya.pt")
    torch.save(_peft(pairs), tmp_path / "peft.bin")
    load, reads = torch.load, []

    def counted(file, *args, **kwargs):
        reads.append(str(file))
        return load(file, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counted)
    for name, alpha in (("kohya.pt", 2.0), ("peft.bin", RANK)):
        _assert_weights(
            load_components(tiny_folder, lora={str(tmp_path / name): 0.5}), _expected(tiny, (pairs, alpha, 0.5))
        )
        assert reads.count(str(tmp_path / name)) == 1, reads


@pytest.fixture
def diffusers_log(caplog):
    """caplog, with diffusers' records too: its library logger does not pass them on to the root logger."""
    library = logging.getLogger("diffusers")
    library.addHandler(caplog.handler)
    yield caplog
    library.removeHandler(caplog.handler)


def test_a_lora_that_does_not_fit_the_model_is_one_line_naming_its_file(tiny, tiny_folder, tmp_path, diffusers_log):
    pairs = _pairs(tiny, seed=4)
    cases = {
        "not_lora": {"conv.weight": torch.zeros(3, 3)},  # weights, but no LoRA
        "other_layers": {  # a LoRA for UNet layers this model has not (blocks it lacks)
            k.replace("blocks_0", "blocks_7").replace("blocks_1", "blocks_7"): v
            for k, v in _kohya(pairs, 4.0).items()
            if k.startswith("lora_unet_")
        },
        "other_sizes": _kohya({k: (u.repeat(2, 1), d.repeat(1, 2)) for k, (u, d) in pairs.items()}, 4.0),
        "cut_short": _kohya(pairs, 4.0),  # written, then cut to half its bytes below
        "nan_values": _kohya({k: (up.clone().fill_(float("nan")), down) for k, (up, down) in pairs.items()}, 4.0),
    }
    for name, sd in cases.items():
        save_file(sd, tmp_path / f"{name}.safetensors")
        if name == "cut_short":
            data = (tmp_path / f"{name}.safetensors").read_bytes()
            (tmp_path / f"{name}.safetensors").write_bytes(data[: len(data) // 2])
        with pytest.raises(LoraError) as e:
            load_components(tiny_folder, lora={str(tmp_path / f"{name}.safetensors"): 1.0})
        message = str(e.value)
        assert f"{name}.safetensors" in message and "\n" not in message, (name, message)
        assert "was unsuccessful" not in diffusers_log.text, name  # diffusers' own report, a line per layer
        assert ("not this model's" in message) == (name.startswith("other")), message  # the architecture is named
        assert ("cannot be read" in message) == (name == "cut_short"), message
        assert ("holds NaN or infinite values" in message) == (name == "nan_values"), message  # not the model's
    xl = {k.replace("lora_te_", "lora_te2_"): v for k, v in _kohya(pairs, 4.0).items() if k.startswith("lora_te_")}
    save_file(xl, tmp_path / "xl_text.safetensors")  # SDXL's second text encoder only: nothing of this model
    with pytest.raises(LoraError, match="adapts no layer"):
        load_components(tiny_folder, lora={str(tmp_path / "xl_text.safetensors"): 1.0})


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        ("other", "its keys are of no LoRA layout that diffusers reads (lora_"),
        ("no_up", "it lacks lora_"),
    ],
)
def test_an_unknown_adapter_is_named_for_what_it_is(tiny, tiny_folder, tmp_path, kind, said):
    """diffusers (0.42) refuses kohya-ss-named keys it cannot convert with "The following keys have not been
    correctly renamed:" and their list after a blank line, which the one-line error cut to nothing."""
    kohya = _kohya(_pairs(tiny, seed=6), 4.0)
    weights = {
        "other": lambda: {k.replace(".lora_", ".weird_"): v for k, v in kohya.items()},
        "no_up": lambda: {k: v for k, v in kohya.items() if ".lora_up." not in k},  # a layer's down, not its up
    }[kind]()
    save_file(weights, tmp_path / f"{kind}.safetensors")
    with pytest.raises(LoraError) as e:
        load_components(tiny_folder, lora={str(tmp_path / f"{kind}.safetensors"): 1.0})
    message = str(e.value)
    assert "\n" not in message and "have not been correctly renamed" not in message, message
    assert said in message, message


def test_a_lora_saved_by_diffusers_before_0_17_without_part_names_is_fused_into_the_unet(tiny, tiny_folder, tmp_path):
    """`UNet2DConditionModel.save_attn_procs` (diffusers' LoRA scripts of early 2023, Video-P2P's time) wrote a
    LoRA's keys as the UNet's attention processors with no `unet.` before them
    (`down_blocks.0....attn1.processor.to_q_lora.down.weight`); diffusers' loader (0.42) reads only keys under a
    part's name, and it was refused as "adapts no layer ... a LoRA of another architecture?"."""
    g, pairs, sd = torch.Generator().manual_seed(13), {}, {}
    for name, layer in tiny.unet.named_modules():
        if name.endswith(("attn1.to_q", "attn2.to_v", "attn1.to_out.0")):
            up = torch.randn(layer.weight.shape[0], RANK, generator=g) * 0.1
            down = torch.randn(RANK, layer.weight.shape[1], generator=g) * 0.1
            pairs[f"unet.{name}"] = (up, down)
            attention, projection = name.removesuffix(".0").rsplit(".", 1)  # ...attn1, to_q (to_out.0: to_out)
            sd[f"{attention}.processor.{projection}_lora.down.weight"] = down
            sd[f"{attention}.processor.{projection}_lora.up.weight"] = up
    torch.save(sd, tmp_path / "pytorch_lora_weights.bin")
    save_file(sd, tmp_path / "pytorch_lora_weights.safetensors")
    want = _expected(tiny, (pairs, RANK, 0.8))  # no alpha saved: alpha = rank
    for name in ("pytorch_lora_weights.bin", "pytorch_lora_weights.safetensors"):
        _assert_weights(load_components(tiny_folder, lora={str(tmp_path / name): 0.8}), want)


def test_a_lora_saved_with_its_config_by_diffusers_is_fused_at_its_alpha(tiny, tiny_folder, tmp_path):
    """diffusers saves a LoRA's LoraConfig in the file's header (`lora_adapter_metadata`), its alpha among it: a
    UNet's own `save_lora_adapter` (keys unprefixed) and a pipeline's `save_lora_weights` (keys and config under
    `unet.`) of a LoRA of alpha 8 and rank 4 are both fused as W + scale (8 / 4) B A. The UNet's own was fused at
    alpha = rank (its keys were prefixed here and its header not read)."""
    import copy

    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = copy.deepcopy(tiny.unet)
    config = LoraConfig(r=RANK, lora_alpha=8, target_modules=["to_q", "to_v"], init_lora_weights=False)
    unet.add_adapter(config, adapter_name="style")
    unet.save_lora_adapter(str(tmp_path / "unet_own"), adapter_name="style")
    StableDiffusionPipeline.save_lora_weights(
        str(tmp_path / "pipeline"),
        unet_lora_layers=get_peft_model_state_dict(unet, adapter_name="style"),
        unet_lora_adapter_metadata=config.to_dict(),
    )
    adapter = load_file(tmp_path / "unet_own" / "pytorch_lora_weights.safetensors")
    layers = [name for name, _ in tiny.unet.named_modules() if name.endswith(("to_q", "to_v"))]
    for folder in ("unet_own", "pipeline"):
        fused = load_components(tiny_folder, lora={str(tmp_path / folder / "pytorch_lora_weights.safetensors"): 0.5})
        for name in layers:
            up, down = adapter[f"{name}.lora_B.weight"], adapter[f"{name}.lora_A.weight"]
            expected = tiny.unet.get_submodule(name).weight + 0.5 * (8 / RANK) * up @ down
            torch.testing.assert_close(fused.unet.get_submodule(name).weight, expected, msg=f"{folder} {name}")


def test_a_kohya_lora_of_text_attention_without_out_proj_is_fused_by_its_formula(tiny, tiny_folder, tmp_path):
    """diffusers (0.42) tells a kohya-ss text encoder LoRA's layout by its `out_proj` layers and refuses one of q, k
    and v alone ("Could not automatically infer state dict type"): such a file is fused here by the LoRA formula,
    each part at its scale, after a LoRA file before it that diffusers read (which stays)."""
    pairs = {k: v for k, v in _pairs(tiny, seed=14).items() if not k.endswith("out_proj")}
    first = _pairs(tiny, seed=15)
    save_file(_kohya(pairs, alpha=2.0), tmp_path / "qkv.safetensors")
    save_file(_kohya(first, alpha=4.0), tmp_path / "first.safetensors")
    want = _expected(tiny, (first, 4.0, 1.0))
    for key, (up, down) in pairs.items():
        want[f"{key}.weight"] += (0.5 if key.startswith("unet.") else -1.0) * (2.0 / RANK) * up @ down
    lora = {str(tmp_path / "first.safetensors"): 1.0, str(tmp_path / "qkv.safetensors"): (0.5, -1.0)}
    fused = load_components(tiny_folder, lora=lora)
    _assert_weights(fused, want)
    assert dict(fused.info.loras)["qkv.safetensors"] == f"LoRA {len(pairs)} at scale 0.5 (text encoder -1)"


def test_peft_dora_the_diffusers_0_17_layout_and_kohya_convolution_layers_are_fused_by_diffusers(
    tiny, tiny_folder, tmp_path
):
    """The layouts diffusers' own loader reads, as docs/adapters.md lists them: PEFT's DoRA
    (`lora_magnitude_vector`) to PEFT's own DoRA merge; diffusers 0.17-0.2x's `unet.X.lora.down` and the text
    encoder's `lora_linear_layer`; kohya-ss's (LyCORIS's LoCon) convolution layers, a 3x3 `lora_down` and a 1x1
    `lora_up`, to W + (alpha / r) up down."""
    import copy

    from peft import LoraConfig, inject_adapter_in_model

    unet = copy.deepcopy(tiny.unet)
    wanted = [n for n, m in unet.named_modules() if n.endswith(("attn1.to_q", "attn2.to_k"))]
    torch.manual_seed(15)
    inject_adapter_in_model(
        LoraConfig(r=4, lora_alpha=4, use_dora=True, init_lora_weights=False, target_modules=wanted), unet
    )
    sd = {}
    for name in wanted:
        layer = unet.get_submodule(name)
        with torch.no_grad():
            layer.lora_magnitude_vector["default"].weight.mul_(1.2)
        for key, value in (
            ("lora_A.weight", layer.lora_A["default"].weight),
            ("lora_B.weight", layer.lora_B["default"].weight),
            ("lora_magnitude_vector", layer.lora_magnitude_vector["default"].weight),
        ):
            sd[f"unet.{name}.{key}"] = value.detach().clone()
        layer.merge(adapter_names=["default"])
    save_file(sd, tmp_path / "peft-dora.safetensors")
    fused = load_components(tiny_folder, lora={str(tmp_path / "peft-dora.safetensors"): 1.0})
    for name in wanted:
        torch.testing.assert_close(
            fused.unet.get_submodule(name).weight, unet.get_submodule(name).base_layer.weight, atol=1e-5, rtol=1e-4
        )

    pairs = _pairs(tiny, seed=16)
    old = {}
    for key, (up, down) in pairs.items():
        part, name = key.split(".", 1)
        stem = f"unet.{name}.lora" if part == "unet" else f"text_encoder.{name}.lora_linear_layer"
        old |= {f"{stem}.down.weight": down, f"{stem}.up.weight": up}
    torch.save(old, tmp_path / "diffusers-0.17.bin")
    _assert_weights(
        load_components(tiny_folder, lora={str(tmp_path / "diffusers-0.17.bin"): 0.5}),
        _expected(tiny, (pairs, RANK, 0.5)),
    )

    g, conv, want = torch.Generator().manual_seed(17), {}, {k: v.clone() for k, v in _weights(tiny).items()}
    for name, layer in tiny.unet.named_modules():
        if isinstance(layer, torch.nn.Conv2d) and name.endswith(
            ("resnets.0.conv1", "conv_shortcut", "downsamplers.0.conv")
        ):
            stem = "lora_unet_" + name.replace(".", "_")
            down = torch.randn(2, layer.in_channels, *layer.kernel_size, generator=g) * 0.1
            up = torch.randn(layer.out_channels, 2, 1, 1, generator=g) * 0.1
            conv |= {f"{stem}.lora_down.weight": down, f"{stem}.lora_up.weight": up, f"{stem}.alpha": torch.tensor(1.0)}
            want[f"unet.{name}.weight"] += 0.5 * (up.flatten(1) @ down.flatten(1)).reshape(layer.weight.shape)
    assert len(conv) >= 9 and any(k.endswith("conv1.lora_down.weight") for k in conv)
    save_file(conv, tmp_path / "locon-conv.safetensors")
    _assert_weights(load_components(tiny_folder, lora={str(tmp_path / "locon-conv.safetensors"): 1.0}), want)


# LyCORIS's layers of the tests: Linear (attention, a resnet's time projection), 3x3 and 1x1 convolutions
LYCORIS_UNET = ("attn1.to_q", "attn2.to_out.0", "resnets.0.conv1", "resnets.0.time_emb_proj", "conv_shortcut")
LYCORIS_TEXT = ("self_attn.q_proj", "mlp.fc1")


def _peft_lycoris(tiny, config) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(a LyCORIS file's weights in kohya-ss's names, the weight differences peft computes from them, by the
    model's weight names "unet.NAME.weight"): peft's LoHa or LoKr layers, randomly initialised, on copies of the
    tiny UNet and text encoder; peft's own `get_delta_weight` is the reference the fused weights are held to."""
    import copy

    from peft import inject_adapter_in_model

    sd, deltas = {}, {}
    for part, ends, prefix in (("unet", LYCORIS_UNET, "lora_unet_"), ("text_encoder", TEXT_LAYERS[:1], "lora_te_")):
        model = copy.deepcopy(getattr(tiny, part))
        torch.manual_seed(11)
        wanted = [
            n for n, m in model.named_modules() if n.endswith(ends) and isinstance(m, torch.nn.Linear | torch.nn.Conv2d)
        ]
        inject_adapter_in_model(replace(config, target_modules=wanted), model)
        for name in wanted:
            layer = model.get_submodule(name)
            stem = prefix + ("text_model." if part == "text_encoder" else "") + name
            stem = stem.replace(".", "_")
            for param, values in layer.named_parameters():
                if param.endswith(".default") and values.requires_grad:
                    sd[f"{stem}.{param.split('.')[0]}"] = values.detach().clone()
            sd[f"{stem}.alpha"] = torch.tensor(float(config.alpha))
            deltas[f"{part}.{name}.weight"] = layer.get_delta_weight("default").detach()
    return sd, deltas


def _lycoris_configs():
    from peft import LoHaConfig, LoKrConfig

    return {
        "loha": LoHaConfig(r=4, alpha=2, init_weights=False),
        "loha-tucker": LoHaConfig(r=4, alpha=8, init_weights=False, use_effective_conv2d=True),
        "lokr": LoKrConfig(r=2, alpha=4, init_weights=False, decompose_factor=4),
        "lokr-both-tucker": LoKrConfig(
            r=2, alpha=1, init_weights=False, decompose_both=True, decompose_factor=8, use_effective_conv2d=True
        ),
    }


@pytest.mark.parametrize("kind", ["loha", "loha-tucker", "lokr", "lokr-both-tucker"])
def test_a_lycoris_loha_or_lokr_file_is_fused_as_peft_computes_it(tiny, tiny_folder, tmp_path, kind):
    """LyCORIS's LoHa and LoKr files (civitai's), in kohya-ss's names, which diffusers does not read for SD
    1.x/2.x: each layer's difference is the one peft's LoHa or LoKr layer computes from the same weights
    (Hadamard or Kronecker products, low-rank or Tucker factors, alpha / r), times the file's scale."""
    sd, deltas = _peft_lycoris(tiny, _lycoris_configs()[kind])
    assert any(".hada_t1" in k or ".lokr_t2" in k for k in sd) == kind.endswith("tucker")  # the layouts are tried
    save_file(sd, tmp_path / f"{kind}.safetensors")
    fused = load_components(tiny_folder, lora={str(tmp_path / f"{kind}.safetensors"): 0.7})
    want = {k: v.clone() for k, v in _weights(tiny).items()}
    for key, delta in deltas.items():
        want[key] += 0.7 * delta
    _assert_weights(fused, want)
    assert fused.info.identity.startswith(f"tiny+{kind}@")


def test_a_lokr_of_full_factors_is_not_scaled_and_a_locon_layer_beside_it_is_fused_by_diffusers(
    tiny, tiny_folder, tmp_path, caplog
):
    """A LoKr layer of full factors alone takes no alpha / r (LyCORIS's rule; the web UI and ComfyUI read it so);
    a file holding LoRA layers too (LyCORIS's LoCon writes lora_up/lora_down) has both fused, and the run says
    how many layers of each kind it read."""
    g = torch.Generator().manual_seed(3)
    layer = next(n for n, _ in tiny.unet.named_modules() if n.endswith("attn1.to_k"))
    out_features, in_features = tiny.unet.get_submodule(layer).weight.shape
    w1, w2 = torch.randn(2, 4, generator=g), torch.randn(out_features // 2, in_features // 4, generator=g)
    stem = "lora_unet_" + layer.replace(".", "_")
    pairs = dict(list(_pairs(tiny, seed=9).items())[:3])
    sd = {f"{stem}.lokr_w1": w1, f"{stem}.lokr_w2": w2, f"{stem}.alpha": torch.tensor(100.0), **_kohya(pairs, 2.0)}
    save_file(sd, tmp_path / "mixed.safetensors")
    with caplog.at_level("INFO", logger="videop2p.models.lora"):
        fused = load_components(tiny_folder, lora={str(tmp_path / "mixed.safetensors"): -0.5})
    assert "LoRA mixed.safetensors: 4 layers of tiny (LoKr 1, LoRA 3), scale -0.5" in caplog.text
    want = _expected(tiny, (pairs, 2.0, -0.5))
    want[f"unet.{layer}.weight"] += -0.5 * torch.kron(w1, w2)
    _assert_weights(fused, want)


def test_a_lycoris_file_after_a_lora_file_on_the_same_layers_adds_to_it(tiny, tiny_folder, tmp_path):
    """A kohya-ss LoRA file (read by diffusers) then a LyCORIS LoHa file adapting the same layers: the LoRA's
    adapters wrapped those layers, and the LoHa file was refused as naming layers "not this model's"; the LoRAs
    before a LyCORIS file are now fused first, and the two add up."""
    pairs = _pairs(tiny, seed=16)
    save_file(_kohya(pairs, alpha=4.0), tmp_path / "style.safetensors")
    sd, _ = _peft_lycoris(tiny, _lycoris_configs()["loha"])
    save_file(sd, tmp_path / "loha.safetensors")
    loha = _weights(load_components(tiny_folder, lora={str(tmp_path / "loha.safetensors"): 0.5}))
    want = {key: value.clone() for key, value in loha.items()}
    for key, (up, down) in pairs.items():
        want[f"{key}.weight"] += (4.0 / RANK) * up @ down
    lora = {str(tmp_path / "style.safetensors"): 1.0, str(tmp_path / "loha.safetensors"): 0.5}
    _assert_weights(load_components(tiny_folder, lora=lora), want)


def test_a_locon_layer_with_a_tucker_core_is_fused_as_its_three_convolutions_compute(tiny, tiny_folder, tmp_path):
    """LyCORIS's LoCon with a Tucker core (`lora_mid`, for a 3x3 convolution; diffusers refuses it): the fused
    difference, as a convolution, gives what lora_down, lora_mid and lora_up give in a row, times alpha / r."""
    layer = next(n for n, m in tiny.unet.named_modules() if n.endswith("resnets.0.conv1"))
    conv = tiny.unet.get_submodule(layer)
    g, rank = torch.Generator().manual_seed(4), 3
    down = torch.randn(rank, conv.in_channels, 1, 1, generator=g)
    mid = torch.randn(rank, rank, *conv.kernel_size, generator=g)
    up = torch.randn(conv.out_channels, rank, 1, 1, generator=g)
    stem = "lora_unet_" + layer.replace(".", "_")
    sd = {f"{stem}.lora_down.weight": down, f"{stem}.lora_mid.weight": mid, f"{stem}.lora_up.weight": up}
    save_file({**sd, f"{stem}.alpha": torch.tensor(6.0)}, tmp_path / "locon.safetensors")
    fused = load_components(tiny_folder, lora={str(tmp_path / "locon.safetensors"): 0.5})
    delta = fused.unet.get_submodule(layer).weight - conv.weight
    x = torch.randn(1, conv.in_channels, 9, 7, generator=g)
    in_a_row = F.conv2d(F.conv2d(F.conv2d(x, down), mid, padding=conv.padding), up)
    fused_conv = F.conv2d(x, delta, padding=conv.padding)  # float32 sums in another order: 1e-4 of the values
    torch.testing.assert_close(fused_conv, 0.5 * (6.0 / rank) * in_a_row, rtol=1e-4, atol=1e-4)
    others = {k: v for k, v in _weights(fused).items() if k != f"unet.{layer}.weight"}
    assert all(torch.equal(v, _weights(tiny)[k]) for k, v in others.items())  # that layer alone


def test_a_lycoris_full_difference_is_added_to_the_weights_and_biases_it_names(tiny, tiny_folder, tmp_path):
    """LyCORIS's "full" algorithm saves a layer's whole difference (`diff`, its bias's `diff_b`): added as it is,
    times the file's scale, with no alpha; a bias difference for a layer without a bias is named."""
    g = torch.Generator().manual_seed(5)
    named = {n: m for n, m in tiny.unet.named_modules() if n.endswith(("attn1.to_out.0", "resnets.0.conv1"))}
    sd = {}
    for name, layer in named.items():
        stem = "lora_unet_" + name.replace(".", "_")
        sd[f"{stem}.diff"] = torch.randn(layer.weight.shape, generator=g) * 0.1
        sd[f"{stem}.diff_b"] = torch.randn(layer.bias.shape, generator=g) * 0.1
        sd[f"{stem}.alpha"] = torch.tensor(64.0)  # no alpha scales a full difference
    save_file(sd, tmp_path / "full.safetensors")
    fused = load_components(tiny_folder, lora={str(tmp_path / "full.safetensors"): 0.5})
    got = {n: m for n, m in fused.unet.named_modules() if n in named}
    for name, layer in named.items():
        stem = "lora_unet_" + name.replace(".", "_")
        torch.testing.assert_close(got[name].weight, layer.weight + 0.5 * sd[f"{stem}.diff"])
        torch.testing.assert_close(got[name].bias, layer.bias + 0.5 * sd[f"{stem}.diff_b"])
    no_bias = next(n for n, m in tiny.unet.named_modules() if n.endswith("attn1.to_q"))
    stem = "lora_unet_" + no_bias.replace(".", "_")
    weight = tiny.unet.get_submodule(no_bias).weight
    save_file({f"{stem}.diff": torch.zeros_like(weight), f"{stem}.diff_b": torch.zeros(3)}, tmp_path / "b.safetensors")
    with pytest.raises(LoraError, match=r"attn1_to_q's diff_b is \(3,\) but the model's layer has no bias\.$"):
        load_components(tiny_folder, lora={str(tmp_path / "b.safetensors"): 1.0})
    save_file(
        {f"{stem}.diff": torch.zeros_like(weight), f"{stem}.dora_scale": torch.ones(3)}, tmp_path / "d.safetensors"
    )
    with pytest.raises(LoraError, match=r"attn1_to_q holds dora_scale beside Full weights, which are not fused\.$"):
        load_components(tiny_folder, lora={str(tmp_path / "d.safetensors"): 1.0})  # LyCORIS's full has no DoRA


def test_lycoris_trained_normalisation_layers_are_added_beside_its_other_layers(tiny, tiny_folder, tmp_path):
    """LyCORIS's `train_norm` saves each GroupNorm's and LayerNorm's weight and bias differences (`w_norm`,
    `b_norm`) beside the file's other layers: added times the scale, no alpha, as its NormModule merges them, in the
    UNet (resnets' GroupNorm, transformer blocks' LayerNorm) and the text encoder; the file's LoHa layers fused too.
    Such files were refused whole, as keys of no LoRA layout."""
    g = torch.Generator().manual_seed(9)
    norms = {}
    for part, prefix, ends in (
        ("unet", "lora_unet_", ("resnets.0.norm1", "transformer_blocks.0.norm1")),
        ("text_encoder", "lora_te_", ("layers.0.layer_norm1",)),
    ):
        for name, layer in getattr(tiny, part).named_modules():
            if name.endswith(ends):
                norms[f"{part}.{name}"] = (prefix + name.replace(".", "_"), layer)
    assert {type(layer) for _, layer in norms.values()} == {torch.nn.GroupNorm, torch.nn.LayerNorm}
    loha, _ = _peft_lycoris(tiny, _lycoris_configs()["loha"])
    sd = dict(loha)
    for stem, layer in norms.values():
        sd[f"{stem}.w_norm"] = 0.1 * torch.randn(layer.weight.shape, generator=g)
        sd[f"{stem}.b_norm"] = 0.1 * torch.randn(layer.bias.shape, generator=g)
    save_file(sd, tmp_path / "norm.safetensors")
    save_file(loha, tmp_path / "loha.safetensors")
    fused = load_components(tiny_folder, lora={str(tmp_path / "norm.safetensors"): 0.5})
    without = _weights(load_components(tiny_folder, lora={str(tmp_path / "loha.safetensors"): 0.5}))
    got = _weights(fused)
    for key, (stem, layer) in norms.items():
        torch.testing.assert_close(got[f"{key}.weight"], layer.weight + 0.5 * sd[f"{stem}.w_norm"], msg=key)
        torch.testing.assert_close(got[f"{key}.bias"], layer.bias + 0.5 * sd[f"{stem}.b_norm"], msg=key)
    rest = [k for k in got if k.rsplit(".", 1)[0] not in norms]
    assert all(torch.equal(got[k], without[k]) for k in rest)  # the LoHa layers as the file without norms gives
    said = dict(fused.info.loras)["norm.safetensors"]
    assert f"Norm {len(norms)}" in said and "LoHa " in said, said
    stem, layer = next(iter(norms.values()))
    bad = {f"{stem}.w_norm": torch.zeros(layer.weight.numel() + 1)}
    save_file(bad, tmp_path / "bad.safetensors")
    with pytest.raises(LoraError, match=rf"its Norm layer {stem} is \({layer.weight.numel() + 1},\) but the model's"):
        load_components(tiny_folder, lora={str(tmp_path / "bad.safetensors"): 1.0})


def _lycoris_dora(merged: torch.Tensor, magnitude: torch.Tensor, multiplier: float) -> torch.Tensor:
    """LyCORIS's `apply_weight_decompose`, written out for one layer: the norm per output where the magnitude is
    (out, 1, ...), per input where it is (1, in, ...); the rescaling taken `multiplier` of the way."""
    dims = tuple(range(1, merged.ndim)) if magnitude.shape[0] == merged.shape[0] else (0, *range(2, merged.ndim))
    norm = torch.linalg.vector_norm(merged, dim=dims, keepdim=True)
    scale = magnitude.reshape(norm.shape) / (norm + torch.finfo(torch.float32).eps)
    return merged * (multiplier * (scale - 1) + 1)


def test_a_dora_layer_is_fused_as_peft_merges_it_and_at_other_scales_as_lycoris_does(
    tiny, tiny_folder, tmp_path, caplog
):
    """A LyCORIS (or OneTrainer) file's DoRA layers (Liu et al. 2024): LoCon's lora_up/lora_down with a trained
    magnitude `dora_scale`, which diffusers' loader dropped with a warning, fusing a plain LoRA in silence. At
    scale 1 each layer is what peft's own DoRA layer merges from the same weights; at another scale, and for a
    magnitude per input, LyCORIS's rule; a LoHa layer's magnitude is applied to its difference the same way."""
    import copy

    from peft import LoraConfig, inject_adapter_in_model

    unet = copy.deepcopy(tiny.unet)
    wanted = [n for n, m in unet.named_modules() if n.endswith(LYCORIS_UNET) and isinstance(m, torch.nn.Linear)]
    torch.manual_seed(12)
    config = LoraConfig(r=4, lora_alpha=2, use_dora=True, init_lora_weights=False, target_modules=wanted)
    inject_adapter_in_model(config, unet)
    sd, stems = {}, {}
    for name in wanted:
        layer = unet.get_submodule(name)
        magnitude = layer.lora_magnitude_vector["default"].weight
        with torch.no_grad():
            magnitude.mul_(1 + 0.3 * torch.rand(magnitude.shape))  # trained away from the weight's own norm
        stems[name] = "lora_unet_" + name.replace(".", "_")
        sd |= {
            f"{stems[name]}.lora_down.weight": layer.lora_A["default"].weight.detach().clone(),
            f"{stems[name]}.lora_up.weight": layer.lora_B["default"].weight.detach().clone(),
            f"{stems[name]}.alpha": torch.tensor(2.0),
            f"{stems[name]}.dora_scale": magnitude.detach().clone()[:, None],  # (out, 1): LyCORIS's default axis
        }
    merged = {n: unet.get_submodule(n) for n in wanted}
    for name in wanted:
        merged[name].merge(adapter_names=["default"])
    save_file(sd, tmp_path / "dora.safetensors")
    with caplog.at_level("WARNING"):
        fused = load_components(tiny_folder, lora={str(tmp_path / "dora.safetensors"): 1.0})
    assert "DoRA" not in caplog.text  # diffusers' "we are going to filter out the keys" is not reached
    for name in wanted:
        got = fused.unet.get_submodule(name).weight
        torch.testing.assert_close(got, merged[name].base_layer.weight, atol=1e-5, rtol=1e-4, msg=name)

    by_input = dict(sd)  # a magnitude per input, (1, in), as OneTrainer's DoRA and LyCORIS's wd_on_out=False save it
    for key in [k for k in sd if k.endswith("dora_scale")]:
        width = sd[key.replace("dora_scale", "lora_down.weight")].shape[1]
        by_input[key] = torch.linspace(0.5, 1.5, width)[None, :]
    save_file(by_input, tmp_path / "dora-in.safetensors")
    for file, weights, multiplier in (("dora", sd, 0.6), ("dora-in", by_input, 1.0), ("dora-in", by_input, -0.4)):
        fused = load_components(tiny_folder, lora={str(tmp_path / f"{file}.safetensors"): multiplier})
        for name in wanted:
            stem = stems[name]
            delta = 0.5 * weights[f"{stem}.lora_up.weight"] @ weights[f"{stem}.lora_down.weight"]  # alpha / r = 2 / 4
            want = _lycoris_dora(
                tiny.unet.get_submodule(name).weight + delta, weights[f"{stem}.dora_scale"], multiplier
            )
            torch.testing.assert_close(fused.unet.get_submodule(name).weight, want, atol=1e-5, rtol=1e-4)

    loha, deltas = _peft_lycoris(tiny, _lycoris_configs()["loha-tucker"])  # Linear and convolution layers
    for key, delta in deltas.items():
        part, name = key.removesuffix(".weight").split(".", 1)
        stem = ("lora_unet_" if part == "unet" else "lora_te_text_model_") + name.replace(".", "_")
        loha[f"{stem}.dora_scale"] = torch.linspace(0.1, 1.0, delta.shape[0]).reshape(-1, *[1] * (delta.ndim - 1))
    save_file(loha, tmp_path / "loha-dora.safetensors")
    fused = _weights(load_components(tiny_folder, lora={str(tmp_path / "loha-dora.safetensors"): 1.0}))
    for key, delta in deltas.items():
        part, name = key.removesuffix(".weight").split(".", 1)
        stem = ("lora_unet_" if part == "unet" else "lora_te_text_model_") + name.replace(".", "_")
        want = _lycoris_dora(_weights(tiny)[key] + delta, loha[f"{stem}.dora_scale"], 1.0)
        torch.testing.assert_close(fused[key], want, atol=1e-5, rtol=1e-4, msg=key)


def test_a_lycoris_ia3_layer_scales_the_weights_as_peft_merges_it(tiny, tiny_folder, tmp_path):
    """LyCORIS's (IA)^3 files (a factor per output, or per input where `on_input`; LyCORIS trains w from 0 and
    merges W * (1 + scale * w)): at scale 1 each layer is what peft's own IA3 layer (l = 1 + w) merges, for Linear
    and convolution layers, output and input factors; at another scale, LyCORIS's rule. It was refused as keys of
    no LoRA layout."""
    import copy

    from peft import IA3Config, inject_adapter_in_model

    unet = copy.deepcopy(tiny.unet)
    wanted = [
        n
        for n, m in unet.named_modules()
        if n.endswith(LYCORIS_UNET) and isinstance(m, torch.nn.Linear | torch.nn.Conv2d)
    ]
    on_input = [n for n in wanted if n.endswith(("time_emb_proj", "conv_shortcut"))]  # peft's "feedforward" ones
    torch.manual_seed(14)
    inject_adapter_in_model(
        IA3Config(target_modules=wanted, feedforward_modules=on_input, init_ia3_weights=False), unet
    )
    sd = {}
    for name in wanted:
        layer = unet.get_submodule(name)
        stem = "lora_unet_" + name.replace(".", "_")
        sd[f"{stem}.weight"] = (layer.ia3_l["default"].detach() - 1).reshape(-1).clone()
        sd[f"{stem}.on_input"] = torch.tensor(int(name in on_input))
        layer.merge(adapter_names=["default"])
    assert len(on_input) < len(wanted) and any(isinstance(tiny.unet.get_submodule(n), torch.nn.Conv2d) for n in wanted)
    save_file(sd, tmp_path / "ia3.safetensors")
    for scale in (1.0, 0.4):
        fused = load_components(tiny_folder, lora={str(tmp_path / "ia3.safetensors"): scale})
        for name in wanted:
            stem, weight = "lora_unet_" + name.replace(".", "_"), tiny.unet.get_submodule(name).weight
            axis = 1 if name in on_input else 0
            shape = [weight.shape[d] if d == axis else 1 for d in range(weight.ndim)]
            want = (
                unet.get_submodule(name).base_layer.weight
                if scale == 1.0
                else weight * (1 + scale * sd[f"{stem}.weight"].reshape(shape))
            )
            torch.testing.assert_close(fused.unet.get_submodule(name).weight, want, atol=1e-5, rtol=1e-4, msg=name)
    stem = "lora_unet_" + wanted[0].replace(".", "_")
    save_file({**sd, f"{stem}.weight": torch.ones(3)}, tmp_path / "ia3-bad.safetensors")
    with pytest.raises(
        LoraError, match=r"its IA3 layer .*attn1_to_q has 3 factors but the model's layer has 32 outputs"
    ):
        load_components(tiny_folder, lora={str(tmp_path / "ia3-bad.safetensors"): 1.0})


def _oft_layers(tiny) -> dict[str, torch.nn.Module]:
    """The tiny model's layers the OFT tests adapt, by their weight names "unet.NAME" / "text_encoder.NAME"
    (Linear and convolution layers of 32 and 64 outputs)."""
    layers = {}
    for part, ends in (("unet", LYCORIS_UNET), ("text_encoder", TEXT_LAYERS[:1])):
        for name, layer in getattr(tiny, part).named_modules():
            if name.endswith(ends) and isinstance(layer, torch.nn.Linear | torch.nn.Conv2d):
                layers[f"{part}.{name}"] = layer
    return layers


def _kohya_stem(key: str, unet_prefix: str = "lora_unet_") -> str:
    part, name = key.split(".", 1)
    return (unet_prefix if part == "unet" else "lora_te_text_model_") + name.replace(".", "_")


def _plane_rotations(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin) of the plane rotations the Cayley transform makes of 2x2 blocks [[0, t], [0, 0]]: Q = [[0, t],
    [-t, 0]], (I + Q)(I - Q)^-1 = [[1 - t^2, 2t], [-2t, 1 - t^2]] / (1 + t^2)."""
    return (1 - t**2) / (1 + t**2), 2 * t / (1 + t**2)


def _rotated_pairs(weight: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, scale: float) -> torch.Tensor:
    """The weight whose outputs 2k, 2k+1 are mixed by M = scale (R - I) + I, R = [[cos, sin], [-sin, cos]], as
    M^T (LyCORIS's and kohya-ss's OFT merge): row 2k becomes M00 w_2k + M10 w_2k+1, row 2k+1 M01 w_2k + M11 w_2k+1."""
    pairs = weight.reshape(weight.shape[0] // 2, 2, -1)  # (k, 2, rest)
    first, second = pairs[:, 0], pairs[:, 1]
    keep, mix = (scale * (cos - 1) + 1)[:, None], (scale * sin)[:, None]
    return torch.stack([keep * first - mix * second, mix * first + keep * second], 1).reshape(weight.shape)


def test_an_oft_layer_rotates_the_outputs_block_by_block_as_lycoris_and_kohya_merge_it(tiny, tiny_folder, tmp_path):
    """OFT (Qiu et al. 2023): blocks of 2 whose Cayley transform is a known plane rotation, for Linear and
    convolution layers of the UNet and the text encoder. LyCORIS's diag-oft file (`oft_blocks`, alpha 0: no
    constraint), with its output scales `rescale`; kohya-ss's OFT (`oft_unet_` names), whose alpha * outputs
    bounds the skew part's norm; LyCORIS's files before 2.2 (`oft_diag`, the rotation itself). At scale s each
    block's rows are mixed by s (R - I) + I. These files were refused as keys of no LoRA layout."""
    layers = _oft_layers(tiny)
    assert {type(layer) for layer in layers.values()} == {torch.nn.Linear, torch.nn.Conv2d}
    t = {key: torch.linspace(0.2, 1.5, layer.weight.shape[0] // 2) for key, layer in layers.items()}
    scales = {key: torch.linspace(0.5, 1.5, layer.weight.shape[0]) for key, layer in layers.items()}

    def blocks(key):
        b = torch.zeros(len(t[key]), 2, 2)
        b[:, 0, 1] = t[key]
        return b

    lycoris, kohya, before_2_2 = {}, {}, {}
    for key, layer in layers.items():
        stem, out = _kohya_stem(key), layer.weight.shape[0]
        rescale = scales[key].reshape(out, *[1] * (layer.weight.ndim - 1))
        lycoris |= {f"{stem}.oft_blocks": blocks(key), f"{stem}.alpha": torch.tensor(0.0), f"{stem}.rescale": rescale}
        if key.startswith("unet."):  # kohya-ss's OFT adapts the UNet alone; alpha 1e-3: the bound binds
            oft = _kohya_stem(key, "oft_unet_")
            kohya |= {f"{oft}.oft_blocks": blocks(key), f"{oft}.alpha": torch.tensor(1e-3)}
        cos, sin = _plane_rotations(t[key])
        before_2_2[f"{stem}.oft_diag"] = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], 1)
    for name, sd in (("lycoris", lycoris), ("kohya", kohya), ("before-2.2", before_2_2)):
        save_file(sd, tmp_path / f"{name}.safetensors")

    for name, scale in (("lycoris", 1.0), ("lycoris", 0.5), ("kohya", 1.0), ("before-2.2", 1.0), ("before-2.2", -0.4)):
        fused = _weights(load_components(tiny_folder, lora={str(tmp_path / f"{name}.safetensors"): scale}))
        for key, layer in layers.items():
            weight, out = layer.weight, layer.weight.shape[0]
            if name == "kohya" and key.startswith("text_encoder."):
                torch.testing.assert_close(fused[f"{key}.weight"], weight)
                continue
            angle = t[key]
            if name == "kohya":  # Q's norm over the layer's blocks, sqrt(2 sum t^2), scaled down to alpha * outputs
                angle = angle * min(1.0, 1e-3 * out / float(torch.sqrt(2 * (angle**2).sum())))
            want = _rotated_pairs(weight, *_plane_rotations(angle), scale)
            if name == "lycoris":  # each output times its scale, whatever the multiplier (LyCORIS's merge)
                want = want * scales[key].reshape(out, *[1] * (weight.ndim - 1))
            torch.testing.assert_close(fused[f"{key}.weight"], want, atol=1e-5, rtol=1e-4, msg=f"{name} {key}")
            assert not torch.allclose(fused[f"{key}.weight"], weight), (name, key)


def _butterfly_order(rows: int, block: int, factor: int) -> torch.Tensor:
    """BOFT's butterfly permutation for factor i (Liu et al. 2024): the source row of each position, rows
    r and r + 2^i b/2 of each run of 2^i b made neighbours, in order: position 2 s + j of a run holds its row
    j 2^i b/2 + s."""
    stride = 2**factor * block // 2
    order = torch.empty(rows, dtype=torch.long)
    for row in range(rows):
        run, j, s = row // (2 * stride), row % (2 * stride) // stride, row % stride
        order[run * 2 * stride + 2 * s + j] = row
    return order


def test_a_boft_layer_is_its_butterfly_product_of_block_rotations(tiny, tiny_folder, tmp_path):
    """BOFT (Liu et al. 2024): `oft_blocks` of four axes (m factors, k blocks of b), the weight's outputs rotated
    by P_i^T D_i P_i for i = 0 .. m-1 in turn, P_i the butterfly permutation and D_i the block-diagonal matrix of
    factor i's rotations (s (R - I) + I at scale s). Blocks of 4 made of two 2x2 planes, whose rotations are known;
    the product of explicit permutation matrices is the reference. At scale 1 the rotation keeps every column's
    norm of a Linear layer."""
    layers, m, b = _oft_layers(tiny), 3, 4
    g = torch.Generator().manual_seed(21)
    sd, planes = {}, {}
    for key, layer in layers.items():
        out = layer.weight.shape[0]
        planes[key] = 0.2 + torch.rand(m, out // b, 2, generator=g)  # t of the planes (0, 1) and (2, 3) of each block
        blocks = torch.zeros(m, out // b, b, b)
        blocks[..., 0, 1], blocks[..., 2, 3] = planes[key][..., 0], planes[key][..., 1]
        sd |= {f"{_kohya_stem(key)}.oft_blocks": blocks, f"{_kohya_stem(key)}.alpha": torch.tensor(0.0)}
    save_file(sd, tmp_path / "boft.safetensors")
    for scale in (1.0, 0.6):
        fused = _weights(load_components(tiny_folder, lora={str(tmp_path / "boft.safetensors"): scale}))
        for key, layer in layers.items():
            out = layer.weight.shape[0]
            rotation = torch.eye(out)
            for i in range(m):
                cos, sin = _plane_rotations(planes[key][i])  # (k, 2)
                mixing = []
                for c, s in zip(cos.reshape(-1), sin.reshape(-1), strict=True):  # each plane: s (R - I) + I
                    mixing.append(scale * (torch.tensor([[c, s], [-s, c]]) - torch.eye(2)) + torch.eye(2))
                permute = torch.eye(out)[_butterfly_order(out, b, i)]  # (P W)[p] = W[order[p]]
                rotation = permute.T @ torch.block_diag(*mixing) @ permute @ rotation
            weight = layer.weight.reshape(out, -1)
            want = (rotation @ weight).reshape(layer.weight.shape)
            torch.testing.assert_close(fused[f"{key}.weight"], want, atol=1e-5, rtol=1e-4, msg=key)
            if scale == 1.0 and layer.weight.ndim == 2:
                norms = torch.linalg.vector_norm(fused[f"{key}.weight"], dim=0)
                torch.testing.assert_close(norms, torch.linalg.vector_norm(layer.weight, dim=0))


def _glora_factors(layer, layout: str, core: bool, g) -> dict[str, torch.Tensor]:
    """Random GLoRA factors of rank RANK for `layer`, as LyCORIS saves them: from 3.0, a2 (in -> r) and a1 (r -> in)
    1x1 maps, b2 (in -> r, the layer's kernel; or 1x1 with a core bm (r -> r) of the kernel), b1 (r -> out); in 2.x,
    a1 (in -> r), a2 (r -> in), b1 (in -> r), b2 (r -> out), Linear or 1x1 alone."""
    out, inputs, *kernel = layer.weight.shape
    ones = [1] * len(kernel)

    def factor(rows, cols, *k):
        return 0.1 * torch.randn(rows, cols, *(k or ones), generator=g)

    if layout == "2.x":
        return {
            "a1": factor(RANK, inputs),
            "a2": factor(inputs, RANK),
            "b1": factor(RANK, inputs),
            "b2": factor(out, RANK),
        }
    w = {"a1": factor(inputs, RANK), "a2": factor(RANK, inputs), "b1": factor(out, RANK)}
    if core:
        return w | {"b2": factor(RANK, inputs), "bm": factor(RANK, RANK, *kernel)}
    return w | {"b2": factor(RANK, inputs, *kernel)}


def _glora_change(layer, w: dict[str, torch.Tensor], layout: str, x: torch.Tensor) -> torch.Tensor:
    """What a GLoRA layer adds to `layer`'s output for `x`, as its bypass forward computes it (W A x + B x, unscaled):
    the maps applied in a row, the layer's own W (no bias) after A, B's kernel with the layer's stride and padding."""
    conv = isinstance(layer, torch.nn.Conv2d)

    def apply(t, weight, own=False):
        if not conv:
            return F.linear(t, weight.reshape(weight.shape[0], -1))
        if own:  # a kernel's map: the layer's stride and padding
            return F.conv2d(t, weight, stride=layer.stride, padding=layer.padding)
        return F.conv2d(t, weight)

    if layout == "2.x":  # A x = a2(a1(x)), B x = b2(b1(x))
        ax, bx = apply(apply(x, w["a1"]), w["a2"]), apply(apply(x, w["b1"]), w["b2"])
    else:  # A x = a1(a2(x)), B x = b1(b2(x)) or b1(bm(b2(x)))
        ax = apply(apply(x, w["a2"]), w["a1"])
        bx = (
            apply(apply(apply(x, w["b2"]), w["bm"], own=True), w["b1"])
            if "bm" in w
            else apply(apply(x, w["b2"], own=True), w["b1"])
        )
    return apply(ax, layer.weight, own=True) + bx


def test_a_glora_layer_of_either_lycoris_layout_changes_the_layer_as_its_forward_does(tiny, tiny_folder, tmp_path):
    """GLoRA (Chavan et al. 2023): a layer's output W x + b becomes W (x + s A x) + b + s B x, s the scale times
    alpha / r, fused as W + s (W A + B). LyCORIS 3.0 on saves A's and B's factors in one layout (a 3x3 convolution's
    B with its kernel, or with a Tucker core bm), 2.x in another (Linear and 1x1 layers); each file is told apart by
    its shapes and checked here against the layers' forwards on random inputs, for Linear, 1x1 and 3x3 layers of the
    UNet and the text encoder. These files were refused as keys of no LoRA layout."""
    layers = _oft_layers(tiny)
    g = torch.Generator().manual_seed(31)
    files, factors = {}, {}
    for layout, alpha in (("3.0", 2.0), ("2.x", 8.0)):
        sd, factors[layout], cores = {}, {}, 0
        for key, layer in layers.items():
            if layout == "2.x" and layer.weight[0, 0].numel() > 1:
                continue  # 2.x adapts no wider kernel
            core = layer.weight.ndim == 4 and layer.weight.shape[2] > 1 and cores < 2
            cores += core
            w = factors[layout][key] = _glora_factors(layer, layout, core, g)
            stem = _kohya_stem(key)
            sd |= {f"{stem}.{name}.weight": t for name, t in w.items()} | {f"{stem}.alpha": torch.tensor(alpha)}
        files[layout] = (sd, alpha)
        save_file(sd, tmp_path / f"glora-{layout}.safetensors")
    assert len(factors["2.x"]) < len(factors["3.0"]) and any("bm" in w for w in factors["3.0"].values())

    for layout, scale in (("3.0", 1.0), ("3.0", -0.5), ("2.x", 0.5)):
        fused = load_components(tiny_folder, lora={str(tmp_path / f"glora-{layout}.safetensors"): scale})
        modules = {
            f"{part}.{n}": m for part in ("unet", "text_encoder") for n, m in getattr(fused, part).named_modules()
        }
        s = scale * files[layout][1] / RANK
        for key, w in factors[layout].items():
            layer, got = layers[key], modules[key]
            x = torch.randn(2, layer.weight.shape[1], *([9, 9] if layer.weight.ndim == 4 else []), generator=g)
            with torch.no_grad():
                want = layer(x) + s * _glora_change(layer, w, layout, x)
                torch.testing.assert_close(got(x), want, atol=1e-5, rtol=1e-4, msg=f"{layout} {key}")
                assert not torch.allclose(got(x), layer(x), atol=1e-4), (layout, key)
        untouched = next(k for k in layers if k not in factors[layout]) if layout == "2.x" else None
        if untouched:
            torch.testing.assert_close(modules[untouched].weight, layers[untouched].weight)


def test_a_glora_file_of_no_one_layout_is_one_line_naming_what_does_not_fit(tiny, tiny_folder, tmp_path):
    layers = _oft_layers(tiny)
    g = torch.Generator().manual_seed(32)
    square = next(k for k in layers if k.endswith("attn1.to_q"))  # (32, 32)
    wide = next(k for k in layers if k.endswith("time_emb_proj"))  # (32, 128)

    def glora(key, layout, **extra):
        w = _glora_factors(layers[key], layout, False, g)
        return {f"{_kohya_stem(key)}.{name}.weight": t for name, t in w.items()} | extra

    new, old = glora(wide, "3.0"), glora(square, "2.x")
    full = {
        f"{_kohya_stem(square)}.{n}.weight": 0.1 * torch.randn(32, 32, generator=g) for n in ("a1", "a2", "b1", "b2")
    }
    a1 = f"{_kohya_stem(wide)}.a1.weight"
    cases = {
        "neither": ({**new, a1: new[a1][:100]}, "(a1 (100, 4), a2 (4, 128), b1 (32, 4), b2 (4, 128)) fits neither of"),
        "two_layouts": ({**new, **old}, "its GLoRA layers are of two layouts ("),
        "full_rank_square": (full, "whose shapes are the same in LyCORIS 2.x's layout and 3.0's"),
        "no_b2": ({k: v for k, v in new.items() if not k.endswith("b2.weight")}, "GLoRA layer "),
        "dora": ({**new, f"{_kohya_stem(wide)}.dora_scale": torch.ones(32, 1)}, "holds dora_scale beside GLoRA"),
        "nan": ({**new, a1: torch.full_like(new[a1], float("nan"))}, "holds NaN or infinite values (its layer"),
    }
    _refused_in_one_line(tiny_folder, tmp_path, cases)
    with pytest.raises(LoraError, match="lacks b2.weight"):
        load_components(tiny_folder, lora={str(tmp_path / "no_b2.safetensors"): 1.0})


def _refused_in_one_line(tiny_folder, tmp_path, cases: dict, naming: str = "") -> None:
    """Each case's weights {name: (weights, words)}, saved as NAME.safetensors, refused by `load_components` in one
    line naming the file, saying `words` (and `naming`)."""
    for name, (weights, said) in cases.items():
        save_file(weights, tmp_path / f"{name}.safetensors")
        with pytest.raises(LoraError) as e:
            load_components(tiny_folder, lora={str(tmp_path / f"{name}.safetensors"): 1.0})
        message = str(e.value)
        assert message.startswith(f"LoRA file '{tmp_path / name}.safetensors' could not be fused into tiny: "), message
        assert said in message and naming in message and "\n" not in message, (name, message)


def test_an_oft_file_that_does_not_fit_the_model_is_one_line_naming_its_layer(tiny, tiny_folder, tmp_path):
    key = next(k for k in _oft_layers(tiny) if k.endswith("attn1.to_q"))  # 32 outputs
    stem = _kohya_stem(key)
    cases = {
        "other_blocks": ({f"{stem}.oft_blocks": torch.zeros(3, 2, 2)}, "is 3 blocks of 2 but the model's layer has 32"),
        "not_square": ({f"{stem}.oft_blocks": torch.zeros(16, 2, 3)}, "oft_blocks is (16, 2, 3), no blocks of square"),
        "butterfly": (
            {f"{stem}.oft_blocks": torch.zeros(5, 8, 4, 4)},
            "is 5 butterfly factors of 8 blocks of 4 but the model's layer has 32 outputs",
        ),
        "rescale": (
            {f"{stem}.oft_blocks": torch.zeros(16, 2, 2), f"{stem}.rescale": torch.ones(3, 1)},
            "'s rescale is (3, 1) but the model's layer has 32 outputs",
        ),
        "nan": ({f"{stem}.oft_diag": torch.full((16, 2, 2), float("nan"))}, "holds NaN or infinite values (its layer"),
        "extra": (
            {f"{stem}.oft_blocks": torch.zeros(16, 2, 2), f"{stem}.oft_other": torch.ones(1)},
            "holds oft_other beside OFT weights",
        ),
    }
    _refused_in_one_line(tiny_folder, tmp_path, cases, naming=stem)


def test_a_lycoris_file_that_does_not_fit_the_model_is_one_line_naming_its_file(tiny, tiny_folder, tmp_path):
    sd, _ = _peft_lycoris(tiny, _lycoris_configs()["loha"])
    q = next(k for k in sd if k.endswith("attn1_to_q.hada_w1_a"))
    q2 = q.replace("hada_w1_a", "hada_w2_a")
    cases = {
        "other_layers": ({k.replace("blocks_0", "blocks_7"): v for k, v in sd.items()}, "are not this model's"),
        "other_sizes": ({**sd, **{k: torch.cat([sd[k], sd[k]]) for k in (q, q2)}}, "but the model's is"),
        "unequal": ({**sd, q: torch.cat([sd[q], sd[q]])}, "'s weights do not multiply (it is damaged)"),
        "no_w2_b": ({k: v for k, v in sd.items() if not k.endswith("hada_w2_b")}, "lacks hada_w2_b (it is incomplete"),
        "nan_values": ({**sd, q: torch.full_like(sd[q], float("nan"))}, "holds NaN or infinite values (its layer"),
        "dora": (
            {**sd, q.replace("hada_w1_a", "dora_scale"): torch.ones(3)},
            "attn1_to_q's dora_scale is (3,), neither one per output (",
        ),
    }
    _refused_in_one_line(tiny_folder, tmp_path, cases)


def test_a_missing_empty_or_foreign_file_and_a_bad_scale_are_refused_before_loading(tmp_path):
    (tmp_path / "empty.safetensors").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "ok.safetensors").write_bytes(b"x")
    for path, scale, needle in (
        (tmp_path / "missing.safetensors", 1.0, "does not exist"),
        (tmp_path, 1.0, "is a folder"),
        (tmp_path / "empty.safetensors", 1.0, "is empty"),
        (tmp_path / "notes.txt", 1.0, "is not one of .safetensors"),
        (tmp_path / "ok.safetensors", float("nan"), "expected a finite number from -10 to 10"),
        (tmp_path / "ok.safetensors", 11.0, "expected a finite number from -10 to 10"),
        (tmp_path / "ok.safetensors", True, "expected a finite number from -10 to 10"),
        (f"{tmp_path / 'ok.safetensors'}=O.8", 1.0, r"'O.8' is not a scale for .*ok.safetensors'; FILE=SCALE takes"),
        (f"{tmp_path / 'gone.safetensors'}=O.8", 1.0, r"'.*gone.safetensors=O.8' does not exist; give a"),
    ):
        with pytest.raises(LoraError, match=needle):
            check_lora(path, scale)


def test_a_folder_given_for_a_lora_file_names_the_file_in_it(tmp_path):
    """diffusers' LoRA trainers write a folder holding `pytorch_lora_weights.safetensors`: given the folder,
    the error names the file to give (of several, the first two and how many more)."""
    trained = tmp_path / "trained"
    trained.mkdir()
    (trained / "logs.txt").write_text("x")
    with pytest.raises(
        LoraError, match=r"'.*trained' is a folder, with no .safetensors or .bin or .pt or .ckpt file in"
    ):
        check_lora(trained, 1.0)
    (trained / "pytorch_lora_weights.safetensors").write_bytes(b"x")
    found = re.escape(repr(str(trained / "pytorch_lora_weights.safetensors")))
    with pytest.raises(LoraError, match=rf"is a folder; give the file in it, {found} \(a .safetensors or"):
        check_lora(trained, 1.0)
    for step in (500, 1000, 1500):
        (trained / f"checkpoint-{step}.safetensors").write_bytes(b"x")
    with pytest.raises(
        LoraError,
        match=r"give one of the files in it, '.*checkpoint-1000.safetensors', '.*checkpoint-1500.safetensors' and 2 more \(",
    ):
        check_lora(trained, 1.0)


def test_lora_flags_read_file_and_scale():
    assert parse_lora(["a.safetensors", "b.safetensors=0.5", "c=d.safetensors"]) == {
        "a.safetensors": 1.0,
        "b.safetensors": 0.5,
        "c=d.safetensors": 1.0,  # what follows '=' is no number: part of the name
    }
    with pytest.raises(ConfigError, match="given twice"):
        parse_lora(["a.safetensors", "a.safetensors=2"])
    assert parse_lora(["a.safetensors=0.8,0.4", "b=1,2,3"]) == {"a.safetensors": (0.8, 0.4), "b=1,2,3": 1.0}


def test_a_lora_takes_one_scale_for_the_unet_and_another_for_the_text_encoder(tiny, tiny_folder, tmp_path):
    """FILE=UNET,TEXT (ComfyUI's model and clip strengths; a pair in a config file or the API): a kohya-ss LoRA's
    UNet layers at the first, its text encoder's at the second, and so for a LyCORIS file's and a PEFT adapter's;
    a pair of other length or out of range is one line naming it."""
    from peft import LoraConfig

    pairs = _pairs(tiny, seed=11)
    save_file(_kohya(pairs, alpha=2.0), tmp_path / "style.safetensors")
    want = _expected(tiny)
    for key, (up, down) in pairs.items():
        want[f"{key}.weight"] += (0.5 if key.startswith("unet.") else -1.5) * (2.0 / RANK) * up @ down
    fused = load_components(tiny_folder, lora={str(tmp_path / "style.safetensors"): (0.5, -1.5)})
    _assert_weights(fused, want)
    assert dict(fused.info.loras)["style.safetensors"] == f"LoRA {len(pairs)} at scale 0.5 (text encoder -1.5)"
    untouched = load_components(tiny_folder, lora={str(tmp_path / "style.safetensors"): [1.0, 0.0]})
    torch.testing.assert_close(untouched.text_encoder.state_dict(), tiny.text_encoder.state_dict())
    assert not torch.equal(
        untouched.unet.state_dict()[next(iter(pairs)).removeprefix("unet.") + ".weight"],
        tiny.unet.state_dict()[next(iter(pairs)).removeprefix("unet.") + ".weight"],
    )

    sd, _ = _peft_lycoris(tiny, _lycoris_configs()["loha"])  # a LyCORIS LoHa of the UNet and the text encoder
    save_file(sd, tmp_path / "loha.safetensors")
    one = {s: _weights(load_components(tiny_folder, lora={str(tmp_path / "loha.safetensors"): s})) for s in (0.3, 0.9)}
    both = _weights(load_components(tiny_folder, lora={str(tmp_path / "loha.safetensors"): (0.3, 0.9)}))
    assert any(k.startswith("text_encoder.") and not torch.equal(one[0.9][k], one[0.3][k]) for k in both)
    for key, value in both.items():
        torch.testing.assert_close(value, one[0.9 if key.startswith("text_encoder.") else 0.3][key], msg=key)

    out = tmp_path / "dreambooth"  # a PEFT adapter of each part
    _peft_adapter(tiny.unet, LoraConfig(r=RANK, target_modules=["to_q"], init_lora_weights=False), out / "unet", 12)
    text = LoraConfig(r=RANK, target_modules=["q_proj"], init_lora_weights=False)
    _peft_adapter(tiny.text_encoder, text, out / "text_encoder", seed=13)
    alone = {s: _weights(load_components(tiny_folder, lora={str(out): s})) for s in (0.5, 2.0)}
    mixed = _weights(load_components(tiny_folder, lora={str(out): (2.0, 0.5)}))
    for key, value in mixed.items():
        torch.testing.assert_close(value, alone[0.5 if key.startswith("text_encoder.") else 2.0][key], msg=key)

    for scale in ((0.5, 11.0), (0.5,), (0.5, 0.5, 0.5), (0.5, float("nan"))):
        with pytest.raises(LoraError, match=r"or two, the UNet's and the text encoder's \(FILE=0.8,0.4\)"):
            check_lora(tmp_path / "style.safetensors", scale)


runner = CliRunner()


def test_run_with_a_lora_records_it_and_reruns_from_its_config(tiny, tiny_folder, tmp_path):
    save_file(_kohya(_pairs(tiny, seed=5), alpha=4.0), tmp_path / "style.safetensors")
    clip = render_clip(ToyClipSpec([ToyObject(Shape.CIRCLE, Color.RED)], frames=2, size=32, seed=1))
    frames = write_frames(clip.frames, tmp_path / "clip")
    (tmp_path / "job").mkdir()
    config = tmp_path / "job" / "run.yaml"  # the LoRA named beside the config file
    (tmp_path / "job" / "style.safetensors").write_bytes((tmp_path / "style.safetensors").read_bytes())
    config.write_text(yaml.safe_dump({"lora": {"style.safetensors": [0.7, 0.3]}}))  # the UNet's, the text encoder's
    common = ["--source", "a red circle moving on the grass", "--target", "a blue circle moving on the grass"]
    common += ["--model", str(tiny_folder), "--frames", "2", "--tune-steps", "1", "--steps", "2", "--inversion", "fast"]
    out = tmp_path / "out"
    args = ["run", str(frames), *common, "--config", str(config), "--out", str(out), "--quiet"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    kept = yaml.safe_load((out / "config.yaml").read_text())
    assert kept["lora"] == {str((tmp_path / "job" / "style.safetensors").resolve()): [0.7, 0.3]}
    assert json.loads((out / "outputs.json").read_text())["model"].startswith("tiny+style@")
    rerun = runner.invoke(app, ["run", "--config", str(out / "config.yaml"), "--out", str(tmp_path / "again")])
    assert rerun.exit_code == 0, rerun.output
    assert json.loads((tmp_path / "again" / "outputs.json").read_text())["stages"]["edit"]["action"] == "reused"
    for flag, needle in (
        ("nothing.safetensors=0.5", "does not exist"),
        (f"{tmp_path / 'style.safetensors'}=nan", "finite"),
        (f"{tmp_path / 'style.safetensors'}=20", "from -10 to 10"),
    ):
        bad = runner.invoke(app, ["run", str(frames), *common, "--lora", flag, "--out", str(tmp_path / "bad")])
        assert_one_line_error(bad, needle)
        assert not (tmp_path / "bad").exists()


def _hub_listing(monkeypatch, hub_cache, files: dict[str, bytes]):
    """The hub, as its client sees it, holding a repository of `files` (name -> bytes): listed by
    `HfApi.model_info`, each downloaded into the test's cache by `hf_hub_download`; the repositories
    downloaded, in order."""
    from types import SimpleNamespace

    import huggingface_hub
    from huggingface_hub import HfApi

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # read once, when it was imported
    listing = SimpleNamespace(siblings=[SimpleNamespace(rfilename=f) for f in [".gitattributes", *files]])
    monkeypatch.setattr(HfApi, "model_info", lambda self, repo, **kwargs: listing)
    downloads, cached = [], huggingface_hub.hf_hub_download

    def download(repo, filename, **kwargs):
        if kwargs.get("local_files_only"):  # a lookup in the cache, as it is
            return cached(repo, filename, **kwargs)
        downloads.append(f"{repo}/{filename}")
        path = hub_cache.root / "downloaded" / repo / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[filename])
        return str(path)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    return downloads


def test_a_lora_given_by_its_hub_repository_is_read_from_the_cache_or_downloaded(
    tiny, tiny_folder, tmp_path, hub_cache, monkeypatch
):
    """`--lora owner/name` is the repository's pytorch_lora_weights file (diffusers' trainers' name), else its one
    LoRA file; `--lora owner/name/FILE` names one. The cache is read first, with no request; a repository of
    several files asks which; offline, one the cache lacks says how to download it; a local path of the same
    name comes first."""
    pairs = _pairs(tiny, seed=7)
    save_file(_kohya(pairs, alpha=2.0), tmp_path / "style.safetensors")
    data = (tmp_path / "style.safetensors").read_bytes()
    snapshot = hub_cache.snapshot("someone/style-lora")
    (snapshot / "styles").mkdir(parents=True)
    (snapshot / "pytorch_lora_weights.safetensors").write_bytes(data)
    (snapshot / "styles" / "other.safetensors").write_bytes(data)
    (snapshot / "README.md").write_text("a style")
    want = _expected(tiny, (pairs, 2.0, 0.5))
    for spec in ("someone/style-lora", "someone/style-lora/styles/other.safetensors"):
        fused = load_components(tiny_folder, lora={spec: 0.5})
        _assert_weights(fused, want)
    assert fused.info.identity.startswith("tiny+other@") and hub_cache.connects == []
    by_repo = load_components(tiny_folder, lora={"someone/style-lora": 0.5})
    assert by_repo.info.identity.startswith("tiny+style-lora@")
    local = load_components(tiny_folder, lora={str(tmp_path / "style.safetensors"): 0.5})
    assert by_repo.info.fingerprint == local.info.fingerprint  # the same weights: the same tuned clips
    pairs_v2 = _pairs(tiny, seed=8)  # another revision of the repository holds other weights
    at_v2 = hub_cache.snapshot("someone/style-lora", "v2")
    at_v2.mkdir(parents=True)
    save_file(_kohya(pairs_v2, alpha=2.0), at_v2 / "pytorch_lora_weights.safetensors")
    for spec in (
        "someone/style-lora@v2",
        "https://huggingface.co/someone/style-lora/blob/v2/pytorch_lora_weights.safetensors",
    ):
        _assert_weights(load_components(tiny_folder, lora={spec: 0.5}), _expected(tiny, (pairs_v2, 2.0, 0.5)))
    assert hub_cache.connects == []

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (snapshot / "pytorch_lora_weights.safetensors").unlink()
    (snapshot / "second.safetensors").write_bytes(data)
    for spec, said in (
        (
            "someone/style-lora",
            "LoRA 'someone/style-lora': hub repository 'someone/style-lora' holds 2 LoRA files (second.safetensors, "
            "styles/other.safetensors); give one as someone/style-lora/FILE, e.g. someone/style-lora/second.safetensors.",
        ),
        (
            "someone/other-lora/a.safetensors",
            "LoRA file 'someone/other-lora/a.safetensors' is not a local path and could not be read from the Hugging "
            "Face hub or its cache (not in the Hugging Face cache). On a connected machine run `hf download "
            "someone/other-lora a.safetensors`, or give a local file.",
        ),
    ):
        with pytest.raises(LoraError) as error:
            load_components(tiny_folder, lora={spec: 1.0})
        assert str(error.value) == said
    readme_only = hub_cache.snapshot("someone/readme-only")
    readme_only.mkdir(parents=True)
    (readme_only / "README.md").write_text("weights to come")
    with pytest.raises(
        LoraError, match=r"\(its cached snapshot holds no LoRA file \(.safetensors, .bin, .pt, .ckpt\)\)"
    ):
        load_components(tiny_folder, lora={"someone/readme-only": 1.0})
    check_lora("someone/other-lora", 1.0)  # a hub repository's form passes the checks before loading
    with pytest.raises(LoraError, match=r"'loras/style.safetensors' does not exist; give .* owner/name/FILE\.$"):
        check_lora("loras/style.safetensors", 1.0)  # the form of a local file's path: it is one
    monkeypatch.chdir(tmp_path)
    (tmp_path / "someone" / "style-lora").mkdir(parents=True)
    with pytest.raises(LoraError, match=r"'someone/style-lora' is a folder, with no .safetensors"):
        check_lora("someone/style-lora", 1.0)  # a local path of that name comes first

    monkeypatch.delenv("HF_HUB_OFFLINE")
    downloads = _hub_listing(monkeypatch, hub_cache, {"a.safetensors": data, "b.safetensors": data})
    with pytest.raises(LoraError, match=r"holds 2 LoRA files \(a.safetensors, b.safetensors\); give one as"):
        load_components(tiny_folder, lora={"someone/new-lora": 1.0})
    with pytest.raises(LoraError, match=r"'someone/new-lora' has no file 'c.safetensors'; its LoRA files: a.saf"):
        load_components(tiny_folder, lora={"someone/new-lora/c.safetensors": 1.0})
    assert downloads == []  # what the listing says is not there is not asked for
    fused = load_components(tiny_folder, lora={"someone/new-lora/b.safetensors": 0.5})
    _assert_weights(fused, want)
    assert downloads == ["someone/new-lora/b.safetensors"]
    partial = hub_cache.snapshot("someone/partial-lora")  # a file of it downloaded before, not the one it stands for
    partial.mkdir(parents=True)
    (partial / "extra.safetensors").write_bytes(b"not these weights")
    downloads = _hub_listing(
        monkeypatch, hub_cache, {"pytorch_lora_weights.safetensors": data, "extra.safetensors": b""}
    )
    _assert_weights(load_components(tiny_folder, lora={"someone/partial-lora": 0.5}), want)  # not the cached one
    assert downloads == ["someone/partial-lora/pytorch_lora_weights.safetensors"]


def _peft_adapter(part: torch.nn.Module, config, folder, seed: int) -> None:
    """`part` (unchanged) adapted by PEFT's method `config`, its adapter's weights set at random, saved to `folder` by
    `PeftModel.save_pretrained` (adapter_config.json, adapter_model.safetensors), as PEFT's DreamBooth examples do."""
    import copy

    from peft import get_peft_model

    model = get_peft_model(copy.deepcopy(part), config)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if "videop2p" not in name and weight.requires_grad:  # the adapter's own (trainable) weights
                weight.copy_(0.05 * torch.randn(weight.shape, generator=g))
    model.save_pretrained(str(folder))


def _peft_merged(part: torch.nn.Module, folder) -> dict[str, torch.Tensor]:
    """`part`'s weights with the adapter in `folder` merged by PEFT itself, on a copy."""
    import copy

    from peft import PeftModel

    return PeftModel.from_pretrained(copy.deepcopy(part), str(folder)).merge_and_unload().state_dict()


def test_a_peft_adapter_folder_is_fused_by_peft_into_the_parts_it_adapts(tiny, tiny_folder, tmp_path):
    """PEFT's DreamBooth examples save OUT/unet and OUT/text_encoder, each an adapter folder (adapter_config.json,
    adapter_model.safetensors) of any PEFT method. Given OUT, a part's folder or its weights file, each part's
    adapter is fused as PEFT merges it (the LoRA also as its formula says), at a scale s as W + s (W' - W); the
    model is named after OUT. Such folders were refused ("is a folder"), their files fused nothing."""
    from peft import LoraConfig, OFTConfig

    lora = LoraConfig(r=RANK, lora_alpha=8, target_modules=["to_q", "to_v"], init_lora_weights=False)
    oft = OFTConfig(r=0, oft_block_size=8, target_modules=["to_k", "proj_in"])
    text = LoraConfig(r=RANK, lora_alpha=4, target_modules=["q_proj", "fc1"], init_lora_weights=False)
    out = tmp_path / "dreambooth"
    _peft_adapter(tiny.unet, oft, out / "unet", seed=1)
    _peft_adapter(tiny.text_encoder, text, out / "text_encoder", seed=2)
    _peft_adapter(tiny.unet, lora, tmp_path / "flat_lora", seed=3)  # no part folder: the UNet's by its keys
    _peft_adapter(tiny.text_encoder, text, tmp_path / "flat_text", seed=6)  # and the text encoder's
    want = {
        "unet": _peft_merged(tiny.unet, out / "unet"),
        "text_encoder": _peft_merged(tiny.text_encoder, out / "text_encoder"),
    }

    for given, scale in (
        (out, 1.0),
        (out, 0.5),
        (out / "unet", -0.4),
        (out / "unet" / "adapter_model.safetensors", 1.0),
    ):
        loaded = load_components(tiny_folder, lora={str(given): scale})
        assert loaded.info.identity.startswith("tiny+dreambooth@"), loaded.info.identity
        said = dict(loaded.info.loras)["dreambooth"]
        for part in ("unet", "text_encoder") if given == out else ("unet",):
            before, got = getattr(tiny, part).state_dict(), getattr(loaded, part).state_dict()
            assert got.keys() == before.keys()  # PEFT's layers are gone
            changed = [k for k in before if not torch.equal(want[part][k], before[k])]
            assert changed and all(k.endswith((".weight", ".bias")) for k in changed), part
            for key in before:
                expected = before[key] + scale * (want[part][key] - before[key])
                torch.testing.assert_close(got[key], expected, atol=1e-6, rtol=1e-5, msg=f"{given} {part} {key}")
        adapted = sum(name.endswith(("to_k", "proj_in")) for name, _ in tiny.unet.named_modules())
        assert said.startswith(f"PEFT OFT {adapted}"), said
        if given == out:
            assert said.endswith(f"PEFT LoRA 4 at scale {scale:g}"), said  # q_proj and fc1 of 2 layers
        else:
            torch.testing.assert_close(loaded.text_encoder.state_dict(), tiny.text_encoder.state_dict())

    flat_text = load_components(tiny_folder, lora={str(tmp_path / "flat_text"): 1.0})
    torch.testing.assert_close(
        flat_text.text_encoder.state_dict(), _peft_merged(tiny.text_encoder, tmp_path / "flat_text")
    )
    flat = load_components(tiny_folder, lora={str(tmp_path / "flat_lora"): 0.5}).unet.state_dict()
    adapter = load_file(tmp_path / "flat_lora" / "adapter_model.safetensors")
    lora_layers = [name for name, _ in tiny.unet.named_modules() if name.endswith(("to_q", "to_v"))]
    for name in lora_layers:  # W + s (alpha / r) B A
        up, down = (adapter[f"base_model.model.{name}.lora_{ab}.weight"] for ab in "BA")
        expected = tiny.unet.state_dict()[f"{name}.weight"] + 0.5 * (8 / RANK) * up @ down
        torch.testing.assert_close(flat[f"{name}.weight"], expected, atol=1e-6, rtol=1e-5, msg=name)
    assert lora_layers


def test_a_peft_adapter_that_is_damaged_or_not_of_the_model_is_one_line_naming_it(tiny, tiny_folder, tmp_path):
    """Its config unreadable or of no method, its weights missing or empty: refused before the model is read
    (`check_lora`); its layers not the model's, its weights not its config's layers, NaN: refused as PEFT fits it."""
    import shutil

    from peft import LoraConfig

    good = tmp_path / "good"
    _peft_adapter(tiny.unet, LoraConfig(r=RANK, target_modules=["to_q"], init_lora_weights=False), good, seed=4)
    config = json.loads((good / "adapter_config.json").read_text())
    weights = load_file(good / "adapter_model.safetensors")
    first = sorted(weights)[0]

    def variant(name, config_text=None, weights_sd=None, drop_weights=False):
        folder = tmp_path / name
        shutil.copytree(good, folder)
        if config_text is not None:
            (folder / "adapter_config.json").write_text(config_text)
        if weights_sd is not None:
            save_file(weights_sd, folder / "adapter_model.safetensors")
        if drop_weights:
            (folder / "adapter_model.safetensors").unlink()
        return folder

    before = {
        "not_json": (variant("not_json", config_text="{peft"), "not_json/adapter_config.json cannot be read as JSON"),
        "no_method": (
            variant("no_method", config_text="{}"),
            "no_method/adapter_config.json names no method (no peft_type",
        ),
        "no_weights": (
            variant("no_weights", drop_weights=True),
            "no_weights/ holds adapter_config.json but no adapter_model",
        ),
        "unknown": (
            variant("unknown", config_text=json.dumps({**config, "peft_type": "FOO"})),
            "unknown/adapter_config.json names the method 'FOO', which PEFT ",
        ),
    }
    (variant("empty", drop_weights=True) / "adapter_model.safetensors").write_bytes(b"")
    before["empty"] = (tmp_path / "empty", "empty/adapter_model.safetensors is empty (0 bytes)")
    for folder, said in before.values():
        with pytest.raises(LoraError) as e:
            check_lora(folder, 1.0)
        message = str(e.value)
        assert message.startswith(f"LoRA '{folder}', a PEFT adapter: {said}") and "\n" not in message, message

    other = json.dumps({**config, "target_modules": ["to_nowhere"]})
    as_loaded = {
        "other_model": (
            variant("other_model", config_text=other),
            "PEFT cannot fit its LoRA adapter to this model's unet: Target modules",
        ),
        "fewer": (variant("fewer", weights_sd={k: v for k, v in weights.items() if k != first}), "lacks weights of"),
        "garbled": (variant("garbled"), "garbled/adapter_model.safetensors cannot be read as weights"),
        "prompts": (
            variant("prompts", config_text=json.dumps({**config, "peft_type": "PROMPT_TUNING"})),
            "its PROMPT_TUNING adapter learns prompts, not weights: it has nothing to fuse",
        ),
        "sizes": (
            variant("sizes", weights_sd={**weights, first: torch.cat([weights[first]] * 2, 1)}),
            "its layers' sizes are not this model's (an adapter of another architecture",
        ),
        "nan": (
            variant("nan", weights_sd={**weights, first: torch.full_like(weights[first], float("nan"))}),
            "PEFT cannot merge its LoRA adapter: NaNs detected",
        ),
    }
    (tmp_path / "garbled" / "adapter_model.safetensors").write_bytes(b"not a safetensors file")
    for folder, said in as_loaded.values():
        with pytest.raises(LoraError) as e:
            load_components(tiny_folder, lora={str(folder): 1.0})
        message = str(e.value)
        assert message.startswith(f"LoRA '{folder}' could not be fused into tiny: ") and "\n" not in message, message
        assert said in message, message


def test_a_peft_adapter_of_a_hub_repository_is_read_with_its_config_from_the_cache_or_the_hub(
    tiny, tiny_folder, tmp_path, hub_cache, monkeypatch
):
    """A hub repository holding a PEFT adapter (`owner/name`, or its `adapter_model` file) is read as the local
    folder is, its adapter_config.json beside the weights in the cache, or downloaded there where the cache lacks
    it; weights whose config neither has, or a local copy of the weights alone, are refused in one line saying to
    give the folder (PEFT needs the config's method)."""
    from peft import LoraConfig

    local = tmp_path / "style"
    _peft_adapter(tiny.unet, LoraConfig(r=RANK, target_modules=["to_v"], init_lora_weights=False), local, seed=5)
    for repo, files in (
        ("someone/peft-style", ("adapter_config.json", "adapter_model.safetensors")),
        ("someone/weights-only", ("adapter_model.safetensors",)),
    ):
        snapshot = hub_cache.snapshot(repo)
        snapshot.mkdir(parents=True)
        for name in files:
            (snapshot / name).write_bytes((local / name).read_bytes())
    want = load_components(tiny_folder, lora={str(local): 0.5}).unet.state_dict()
    for spec in ("someone/peft-style", "someone/peft-style/adapter_model.safetensors"):
        got = load_components(tiny_folder, lora={spec: 0.5})
        layers = sum(name.endswith("to_v") for name, _ in tiny.unet.named_modules())
        assert got.info.loras == (("peft-style", f"PEFT LoRA {layers} at scale 0.5"),), got.info.loras
        for key, value in want.items():
            torch.testing.assert_close(got.unet.state_dict()[key], value, msg=f"{spec} {key}")
    with pytest.raises(LoraError, match=r"^LoRA 'someone/weights-only' is a PEFT adapter's weights \(adapter_model"):
        load_components(tiny_folder, lora={"someone/weights-only": 1.0})  # its config is not on the hub either

    import huggingface_hub

    cached = huggingface_hub.hf_hub_download

    def download(repo, filename, **kwargs):  # the hub holds the config the cache lacks: downloaded into the cache
        if kwargs.get("local_files_only") or filename != "adapter_config.json":
            return cached(repo, filename, **kwargs)
        path = hub_cache.snapshot(repo) / filename
        path.write_bytes((local / filename).read_bytes())
        return str(path)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    got = load_components(tiny_folder, lora={"someone/weights-only": 0.5})
    assert got.info.loras == (("weights-only", f"PEFT LoRA {layers} at scale 0.5"),), got.info.loras
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline, the cache alone: now it holds the config
    assert load_components(tiny_folder, lora={"someone/weights-only": 0.5}).info.loras == got.info.loras
    (tmp_path / "copied").mkdir()
    (tmp_path / "copied" / "adapter_model.safetensors").write_bytes((local / "adapter_model.safetensors").read_bytes())
    with pytest.raises(LoraError, match="is a PEFT adapter's weights without its adapter_config.json beside it"):
        check_lora(tmp_path / "copied" / "adapter_model.safetensors", 1.0)
    assert hub_cache.connects == []
