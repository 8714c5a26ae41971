"""A VAE in place of the model's own (`--vae`): an original (LDM) file, alone or inside a whole
checkpoint, a diffusers file, a VAE folder or a model folder's `vae/`, each loaded with its weights
exactly; the model's name and fingerprint follow; a VAE that does not take the model's latents, and
bad paths or files, are one-line errors before any work."""

import json
import os
import re
import subprocess
import sys

import pytest
import torch
import yaml
from diffusers import AutoencoderKL
from ldm_checkpoint import ldm_state_dict, vae_key
from safetensors.torch import save_file
from typer.testing import CliRunner

from videop2p.cli import app
from videop2p.io.writing import write_frames
from videop2p.models.loading import load_components
from videop2p.models.vae import VaeError, check_vae_spec
from videop2p.testing import assert_one_line_error
from videop2p.toy.world import Color, Shape, ToyClipSpec, ToyObject, render_clip


def _other_vae(tiny, scaling: float | None = None) -> AutoencoderKL:
    """The model's VAE architecture with other weights (and, if given, another scaling factor)."""
    config = {k: v for k, v in tiny.vae.config.items() if not k.startswith("_")}  # "_use_default_values" would win
    config |= {"scaling_factor": scaling} if scaling is not None else {}
    torch.manual_seed(7)
    return AutoencoderKL.from_config(config)


def _ldm(vae: AutoencoderKL) -> dict[str, torch.Tensor]:
    """A VAE's weights under an original (LDM) VAE file's keys, as the web UI's VAE files hold them."""
    n = len(vae.config.block_out_channels)
    out = {}
    for k, v in vae.state_dict().items():
        key = vae_key(k, n)
        if ".mid.attn_1." in key and key.endswith(".weight") and v.ndim == 2:  # ldm's 1x1 convolutions
            v = v[:, :, None, None]
        out[key] = v.contiguous()
    return out


def _assert_same(a: AutoencoderKL, b: AutoencoderKL) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k].to(sa[k].dtype)) for k in sa)


def test_each_layout_of_a_vae_replaces_the_models_own_and_names_it(tiny, tiny_folder, tmp_path):
    other = _other_vae(tiny)
    save_file(_ldm(other), tmp_path / "ft-mse.safetensors")  # the web UI's layout
    whole = {k: v for k, v in ldm_state_dict(tiny).items() if not k.startswith("first_stage_model.")}
    whole |= {f"first_stage_model.{k}": v for k, v in _ldm(other).items()}  # inside a whole checkpoint
    torch.save({"state_dict": whole}, tmp_path / "whole.ckpt")
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, tmp_path / "diffusers.safetensors")
    other.save_pretrained(tmp_path / "vae_folder")
    (tmp_path / "model_folder").mkdir()
    other.save_pretrained(tmp_path / "model_folder" / "vae")  # a model folder's vae/
    plain = load_components(str(tiny_folder))
    names = set()
    for spec in ("ft-mse.safetensors", "whole.ckpt", "diffusers.safetensors", "vae_folder", "model_folder"):
        comps = load_components(str(tiny_folder), vae=str(tmp_path / spec))
        _assert_same(comps.vae, other)
        assert comps.info.identity.startswith(f"tiny+{spec.split('.')[0]}@")
        names.add(comps.info.identity.split("@")[1])
    assert len(names) == 1 and plain.info.identity.split("@")[1] not in names  # the fingerprint is the weights'
    same = load_components(str(tiny_folder), vae=str(tiny_folder / "vae"))  # its own VAE: the same weights
    assert same.info.identity.split("@")[1] == plain.info.identity.split("@")[1]


def test_a_vae_folder_brings_its_own_scaling_factor(tiny, tiny_folder, tmp_path):
    _other_vae(tiny, scaling=0.5).save_pretrained(tmp_path / "vae")
    comps = load_components(str(tiny_folder), vae=str(tmp_path / "vae"))
    assert comps.info.scaling_factor == 0.5 != tiny.info.scaling_factor


def test_a_vae_that_does_not_take_the_models_latents_is_refused_naming_it(tiny, tiny_folder, tmp_path):
    config = {k: v for k, v in tiny.vae.config.items() if not k.startswith("_")}
    AutoencoderKL.from_config(config | {"latent_channels": 8}).save_pretrained(tmp_path / "wide")
    deeper = config | {
        "block_out_channels": [*config["block_out_channels"], config["block_out_channels"][-1]],
        "down_block_types": [*config["down_block_types"], config["down_block_types"][-1]],
        "up_block_types": [*config["up_block_types"], config["up_block_types"][-1]],
    }
    AutoencoderKL.from_config(deeper).save_pretrained(tmp_path / "deeper")
    with pytest.raises(VaeError, match="latents of 8 channels; the model takes 4"):
        load_components(str(tiny_folder), vae=str(tmp_path / "wide"))
    with pytest.raises(VaeError, match="downsamples frames by"):
        load_components(str(tiny_folder), vae=str(tmp_path / "deeper"))
    small = {k: v for k, v in list(other_weights(tiny).items())[:3]}  # diffusers' keys, most missing
    save_file(small, tmp_path / "part.safetensors")
    with pytest.raises(
        VaeError, match=r"part.safetensors': weights of the model are not in its files \(\S+ and \d+ more\)"
    ):
        load_components(str(tiny_folder), vae=str(tmp_path / "part.safetensors"))
    key = next(iter(small))
    save_file({**other_weights(tiny), key: small[key][:1]}, tmp_path / "shape.safetensors")  # one weight cut
    with pytest.raises(
        VaeError, match=rf"shape.safetensors': the weight {re.escape(key)} is \[1, .*\] in its files but"
    ):
        load_components(str(tiny_folder), vae=str(tmp_path / "shape.safetensors"))
    save_file({"foo.weight": torch.zeros(2)}, tmp_path / "foreign.safetensors")
    with pytest.raises(VaeError, match="holds no VAE weights"):
        load_components(str(tiny_folder), vae=str(tmp_path / "foreign.safetensors"))
    nan = {k: v.clone() for k, v in other_weights(tiny).items()}
    next(iter(nan.values())).fill_(float("nan"))
    save_file(nan, tmp_path / "nan.safetensors")
    with pytest.raises(Exception, match="not finite|NaN"):
        load_components(str(tiny_folder), vae=str(tmp_path / "nan.safetensors"))


def other_weights(tiny) -> dict[str, torch.Tensor]:
    return {k: v.contiguous() for k, v in _other_vae(tiny).state_dict().items()}


def test_bad_vae_paths_are_refused_before_anything_is_read(tmp_path):
    (tmp_path / "empty.safetensors").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "cut.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{")
    (tmp_path / "folder").mkdir()
    for spec, needle in (
        (tmp_path / "missing.safetensors", "does not exist"),
        (tmp_path / "empty.safetensors", "is empty"),
        (tmp_path / "notes.txt", "is not one of .safetensors"),
        (tmp_path / "folder", "has no config.json"),
        ("not a hub id!", "nor a hub id"),
        ("", "--vae is empty"),
    ):
        with pytest.raises(VaeError, match=needle):
            check_vae_spec(spec)
    with pytest.raises(VaeError, match="cannot be read as weights"):
        load_components(None, vae=str(tmp_path / "cut.safetensors"))
    check_vae_spec("stabilityai/sd-vae-ft-mse")  # a hub id passes: it is resolved when loaded
    (tmp_path / "folder" / "vae-ft-mse.safetensors").write_bytes(b"x")  # a download's folder: its file is the VAE
    with pytest.raises(
        VaeError, match=r"not a diffusers VAE; give its weights file instead, '.*vae-ft-mse.safetensors'\.$"
    ):
        check_vae_spec(tmp_path / "folder")


runner = CliRunner()


def test_run_with_a_vae_records_it_and_reruns_from_its_config(tiny, tiny_folder, tmp_path):
    save_file(_ldm(_other_vae(tiny)), tmp_path / "ft.safetensors")
    clip = render_clip(ToyClipSpec([ToyObject(Shape.CIRCLE, Color.RED)], frames=2, size=32, seed=1))
    frames = write_frames(clip.frames, tmp_path / "clip")
    common = ["--source", "a red circle moving on the grass", "--target", "a blue circle moving on the grass"]
    common += ["--model", str(tiny_folder), "--frames", "2", "--tune-steps", "1", "--steps", "2", "--inversion", "fast"]
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["run", str(frames), *common, "--vae", str(tmp_path / "ft.safetensors"), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((out / "config.yaml").read_text())["vae"] == str((tmp_path / "ft.safetensors").resolve())
    assert json.loads((out / "outputs.json").read_text())["model"].startswith("tiny+ft@")
    rerun = runner.invoke(app, ["run", "--config", str(out / "config.yaml"), "--out", str(tmp_path / "again")])
    assert rerun.exit_code == 0, rerun.output
    assert json.loads((tmp_path / "again" / "outputs.json").read_text())["stages"]["edit"]["action"] == "reused"
    bad = runner.invoke(
        app, ["run", str(frames), *common, "--vae", "nothing.safetensors", "--out", str(tmp_path / "bad")]
    )
    assert_one_line_error(bad, "VAE file 'nothing.safetensors' does not exist")
    assert not (tmp_path / "bad").exists()
    info = runner.invoke(app, ["info", "--model", str(tiny_folder), "--vae", str(tmp_path / "ft.safetensors")])
    assert info.exit_code == 0 and "identity: tiny+ft@" in info.output


def test_a_hub_vae_loads_from_the_cache_without_a_request_and_an_uncached_one_says_how_to_get_it(
    tiny, tiny_folder, hub_cache, monkeypatch
):
    """A hub id's VAE, a VAE repository's or a model repository's `vae/`, is read from the Hugging Face
    cache first (no request, so no wait for the hub's retries); one the cache lacks, offline, is named
    with the command that downloads it."""
    other = _other_vae(tiny)
    other.save_pretrained(hub_cache.snapshot("some-org/vae-ft"))
    other.save_pretrained(hub_cache.snapshot("some-org/sd-model") / "vae")
    for repo in ("some-org/vae-ft", "some-org/sd-model", "https://huggingface.co/some-org/vae-ft"):  # or its link
        _assert_same(load_components(str(tiny_folder), vae=repo).vae, other)
    assert hub_cache.connects == []
    env = {**os.environ, "HF_HUB_CACHE": str(hub_cache.root), "HF_HUB_OFFLINE": "1"}
    command = ["info", "--model", str(tiny_folder), "--vae", "some-org/sd-model"]
    proc = subprocess.run([sys.executable, "-m", "videop2p.cli", *command], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and "+sd-model@" in proc.stdout, proc.stderr  # in the model's identity
    assert "local_dir_use_symlinks" not in proc.stderr  # diffusers' call of huggingface_hub, warned of, not shown
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(VaeError) as missing:
        load_components(str(tiny_folder), vae="some-org/other-vae")
    message = str(missing.value)
    assert "'some-org/other-vae' is not a local path and could not be loaded from the Hugging Face hub" in message
    assert "On a connected machine run `hf download some-org/other-vae`" in message and "\n" not in message
    assert "does not appear to have a file named" not in message and hub_cache.connects == []


def test_a_hub_repositorys_vae_file_loads_from_the_cache_and_a_repository_of_files_says_which(
    tiny, tiny_folder, hub_cache, monkeypatch
):
    """The web UI's VAE files are hub repositories of weights files without a config (stabilityai's
    sd-vae-ft-mse-original): `--vae owner/name/FILE` reads one from the cache; the repository alone names them."""
    from types import SimpleNamespace

    import huggingface_hub
    from huggingface_hub import HfApi

    other = _other_vae(tiny)
    snapshot = hub_cache.snapshot("some-org/vae-original")
    snapshot.mkdir(parents=True)
    save_file(_ldm(other), snapshot / "vae-ft-840000.safetensors")
    comps = load_components(str(tiny_folder), vae="some-org/vae-original/vae-ft-840000.safetensors")
    _assert_same(comps.vae, other)
    assert comps.info.identity.startswith("tiny+vae-ft-840000@") and hub_cache.connects == []
    check_vae_spec("some-org/vae-original/vae-ft-840000.safetensors")  # passes before anything is read
    with pytest.raises(VaeError, match=r"^VAE file 'some-org/vae-ft.ckpt' does not exist; give a"):
        check_vae_spec("some-org/vae-ft.ckpt")  # the form of a local file's path: it is one
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # read once, when it was imported
    files = [".gitattributes", "README.md", "vae-ft-840000.ckpt", "vae-ft-840000.safetensors"]
    listing = SimpleNamespace(siblings=[SimpleNamespace(rfilename=f) for f in files])
    monkeypatch.setattr(HfApi, "model_info", lambda self, repo, **kwargs: listing)
    with pytest.raises(VaeError) as which:
        load_components(str(tiny_folder), vae="some-org/vae-original")
    assert str(which.value) == (
        "VAE 'some-org/vae-original': its hub repository holds no config.json, nor vae/config.json; give one of its "
        "VAE files as some-org/vae-original/FILE, e.g. some-org/vae-original/vae-ft-840000.safetensors."
    )
