"""Textual-inversion embeddings added to a loaded model (`--embedding FILE=TOKEN`): each ecosystem's
file layout, the token a prompt uses for it, a multi-vector embedding standing for all its vectors in
every token bookkeeping, the model's identity, saving and loading again; bad files and tokens are
one-line errors before any work."""

import json

import pytest
import torch
import yaml
from safetensors.torch import save_file
from typer.testing import CliRunner

from videop2p.cli import app
from videop2p.config import ConfigError, parse_embeddings, parse_lora
from videop2p.control.prompts import refinement_mapper, token_count, word_indices, word_tokens
from videop2p.io.writing import write_frames
from videop2p.latents import encode_prompts
from videop2p.models.embeddings import EmbeddingError, check_embedding
from videop2p.models.loading import load_components, save_pretrained_folder, save_single_file
from videop2p.testing import assert_one_line_error, dummy_components
from videop2p.toy.world import Color, Shape, ToyClipSpec, ToyObject, render_clip

WIDTH = 32  # dummy_components' text width


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_pretrained_folder(dummy_components(), tmp_path_factory.mktemp("model") / "tiny")


def _vectors(count: int, seed: int, width: int = WIDTH) -> torch.Tensor:
    return torch.randn(count, width, generator=torch.Generator().manual_seed(seed))


def _row(components, token: str) -> torch.Tensor:
    return components.text_encoder.get_input_embeddings().weight[components.tokenizer.convert_tokens_to_ids(token)]


def test_each_layout_adds_its_vectors_under_the_token_a_prompt_uses(model_dir, tmp_path):
    diffusers_vec, a1111_pt, a1111_st = _vectors(1, 1), _vectors(2, 2), _vectors(3, 3)
    torch.save({"<cat-toy>": diffusers_vec[0]}, tmp_path / "learned_embeds.bin")  # diffusers': the token in the file
    torch.save(  # the A1111 web UI's .pt: the file's name is the token, as the web UI has it
        {"string_to_param": {"*": torch.nn.Parameter(a1111_pt)}, "name": "other", "step": 3}, tmp_path / "oldstyle.pt"
    )
    save_file({"emb_params": a1111_st}, tmp_path / "neg.safetensors")  # the web UI's .safetensors
    files = {str(tmp_path / "learned_embeds.bin"): None, str(tmp_path / "oldstyle.pt"): None}
    files[str(tmp_path / "neg.safetensors")] = "<neg>"  # a token given replaces the file's
    got = load_components(model_dir, embeddings=files)
    torch.testing.assert_close(_row(got, "<cat-toy>"), diffusers_vec[0])
    for i, name in enumerate(["oldstyle", "oldstyle_1"]):
        torch.testing.assert_close(_row(got, name), a1111_pt[i])
    for i, name in enumerate(["<neg>", "<neg>_1", "<neg>_2"]):
        torch.testing.assert_close(_row(got, name), a1111_st[i])
    plain = load_components(model_dir)
    assert dict(got.info.embeddings) == {"<cat-toy>": 1, "oldstyle": 2, "<neg>": 3} and plain.info.embeddings == ()
    assert got.info.identity.startswith("tiny+learned_embeds+oldstyle+neg@")
    assert got.info.fingerprint != plain.info.fingerprint  # its tuned clips are its own in the workspace
    # every other weight is the model's own
    sd, base = got.text_encoder.state_dict(), plain.text_encoder.state_dict()
    for key, value in base.items():
        torch.testing.assert_close(sd[key][: len(value)], value, msg=key)
    assert encode_prompts(got, ["a red circle"]).equal(encode_prompts(plain, ["a red circle"]))  # unused: no change
    assert not encode_prompts(got, ["a <cat-toy> circle"]).equal(encode_prompts(plain, ["a <cat-toy> circle"]))


def test_the_identity_follows_the_vectors_not_only_the_token(model_dir, tmp_path):
    one, two = tmp_path / "a" / "glossyfxstyle.pt", tmp_path / "b" / "glossyfxstyle.pt"
    for path, seed in ((one, 4), (two, 5)):
        path.parent.mkdir()
        torch.save({"string_to_param": {"*": _vectors(1, seed)}}, path)
    first = load_components(model_dir, embeddings={str(one): None})
    again = load_components(model_dir, embeddings={str(one): None})
    other = load_components(model_dir, embeddings={str(two): None})
    assert first.info.identity == again.info.identity != other.info.identity  # same name and size, other vectors
    from videop2p.pipeline import VideoP2P

    for given in (str(one), [str(one)], {str(one): None}):  # the API takes what a config file takes
        assert (
            VideoP2P.from_pretrained(str(model_dir), embeddings=given).components.info.identity == first.info.identity
        )


def test_a_multi_vector_token_stands_for_all_its_vectors(model_dir, tmp_path):
    vectors = _vectors(3, 6)
    save_file({"emb_params": vectors}, tmp_path / "style.safetensors")
    c = load_components(model_dir, embeddings={str(tmp_path / "style.safetensors"): "<s>"})
    t = c.tokenizer
    prompt = "a red circle, <s> on the grass"
    assert word_tokens(t, prompt) == [[1], [2], [3, 4], [5, 6, 7], [8], [9], [10]]  # "circle," is two; "<s>" three
    assert word_indices(t, prompt, "<s>") == [5, 6, 7]  # a blend or reweighted word covers every vector
    assert token_count(t, prompt) == token_count(t, "a red circle, x y z on the grass")
    assert word_tokens(t, "a<s>b on") == [[1, 2, 3, 4, 5], [6]]  # inside another word it is no token
    # the text encoder reads the three vectors in a row
    ids = t(prompt, padding="max_length", max_length=t.model_max_length).input_ids  # "<s>" alone: one token
    at = ids.index(t.convert_tokens_to_ids("<s>"))
    ids = ids[: at + 1] + t.convert_tokens_to_ids(["<s>_1", "<s>_2"]) + ids[at + 1 : -2]
    assert encode_prompts(c, [prompt]).equal(c.text_encoder(torch.tensor([ids]))[0])
    assert encode_prompts(c, ["A <S> circle"]).equal(encode_prompts(c, ["a <s> circle"]))  # CLIP reads lower case
    # a refinement that adds the embedding aligns the rest of the prompt, and the new tokens are new
    index, alpha = refinement_mapper(t, "a red circle on the grass", "a red <s> circle on the grass")
    assert alpha[:9].tolist() == [1, 1, 1, 0, 0, 0, 1, 1, 1] and index[6:9].tolist() == [3, 4, 5]
    # the token limit counts every vector
    fits = " ".join(["red"] * 72)
    word_tokens(t, fits + " x y z")
    with pytest.raises(ValueError, match="has 80 tokens .* limit of 77"):
        word_tokens(t, fits + " <s> <s>")


def test_a_model_saved_with_embeddings_loads_with_them(model_dir, tmp_path):
    save_file({"emb_params": _vectors(2, 7)}, tmp_path / "style.safetensors")
    c = load_components(model_dir, embeddings={str(tmp_path / "style.safetensors"): "<s>"})
    folder = load_components(save_pretrained_folder(c, tmp_path / "folder"))
    single = load_components(save_single_file(c, tmp_path / "single.safetensors"))
    for again in (folder, single):
        assert again.info.fingerprint == c.info.fingerprint and dict(again.info.embeddings) == {"<s>": 2}
        assert encode_prompts(again, ["a <s> circle"]).equal(encode_prompts(c, ["a <s> circle"]))
        assert word_indices(again.tokenizer, "a <s> circle", "<s>") == [2, 3]


def test_files_that_do_not_fit_the_model_are_one_line_errors_naming_them(model_dir, tmp_path):
    cases = {
        "wide.pt": ({"string_to_param": {"*": _vectors(1, 8, width=WIDTH * 2)}}, "64 wide", "takes 32"),
        "xl.safetensors": ({"clip_l": _vectors(1, 8), "clip_g": _vectors(1, 8, 64)}, "SDXL embedding"),
        "nan.pt": ({"<n>": torch.full((WIDTH,), float("nan"))}, "NaN or infinite"),
        "keys.safetensors": ({"a": _vectors(1, 8), "b": _vectors(1, 8)}, "holds no embedding", "a, b"),
        "ints.pt": ({"<i>": torch.zeros(WIDTH, dtype=torch.long)}, "holds no embedding"),
        "circle.pt": ({"string_to_param": {"*": _vectors(1, 8)}}, "'circle'", "a word the tokenizer has", "=<circle>"),
        "many.pt": ({"<m>": _vectors(80, 8)}, "80 vectors", "75 tokens"),
        "bad name.pt": ({"string_to_param": {"*": _vectors(1, 8)}}, "one word without spaces", "FILE=TOKEN"),
    }
    for name, (content, *needles) in cases.items():
        path = tmp_path / name
        (save_file(content, path) if name.endswith(".safetensors") else torch.save(content, path))
        with pytest.raises(EmbeddingError) as e:
            load_components(model_dir, embeddings={str(path): None})
        assert name in str(e.value) and "\n" not in str(e.value) and all(n in str(e.value) for n in needles), e.value
    torch.save({"<x>": _vectors(1, 9)}, tmp_path / "x.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "x.pt").read_bytes()[:200])
    torch.save({"<x>": _vectors(1, 9), "code": torch.nn.Linear(1, 1)}, tmp_path / "pickle.pt")  # more than tensors
    (tmp_path / "noise.pt").write_bytes(bytes(range(256)) * 4)  # not a pickle at all
    for name, found in (
        ("cut.pt", ""),
        ("pickle.pt", "Unsupported global: GLOBAL torch.nn.modules.linear.Linear was not an allowed global"),
        ("noise.pt", ""),
    ):
        with pytest.raises(EmbeddingError, match="cannot be read as weights") as e:
            load_components(model_dir, embeddings={str(tmp_path / name): "<y>"})
        assert "\n" not in str(e.value) and found in str(e.value), e.value
        assert "Weights only load failed" not in str(e.value)  # torch's advice, not what it found
    torch.save({"<x>": _vectors(2, 10)}, tmp_path / "x2.pt")
    with pytest.raises(EmbeddingError, match="'<x>' of embedding file .*x2.pt' is already another embedding's"):
        load_components(model_dir, embeddings={str(tmp_path / "x.pt"): None, str(tmp_path / "x2.pt"): None})


def test_a_missing_empty_or_foreign_file_and_a_bad_token_are_refused_before_loading(tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "ok.pt").write_bytes(b"x")
    for path, token, needle in (
        (tmp_path / "missing.pt", None, "does not exist"),
        (tmp_path, None, "is a folder"),
        (tmp_path / "empty.pt", None, "is empty"),
        (tmp_path / "notes.txt", None, "is not one of .safetensors, .pt, .bin"),
        (tmp_path / "ok.pt", "two words", "one word without spaces"),
        (tmp_path / "ok.pt", "", "one word without spaces"),
        (tmp_path / "ok.pt", 5, "one word without spaces"),
    ):
        with pytest.raises(EmbeddingError, match=needle):
            check_embedding(path, token)


def test_embedding_flags_read_file_and_token():
    assert parse_embeddings(["a.pt", "learned_embeds.bin=<cat-toy>", "dir/b.pt=c.pt", "x=y/z.bin"]) == {
        "a.pt": None,
        "learned_embeds.bin": "<cat-toy>",
        "dir/b.pt=c.pt": None,  # what follows '=' holds a dot: part of the name
        "x=y/z.bin": None,
    }
    with pytest.raises(ConfigError, match="given twice"):
        parse_embeddings(["a.pt", "a.pt=<a>"])
    link = "https://huggingface.co/someone/negatives/resolve/main/bad-hands-5.pt?download=true"  # a query's `=`
    assert parse_embeddings([link]) == {link: None}
    assert parse_embeddings([f"{link}=<bad>"]) == {link: "<bad>"}


def test_a_token_given_before_its_embedding_file_is_told_the_order(tmp_path, monkeypatch):
    """`--embedding "<cat>=style.pt"` was read as one file's name ("embedding file '<cat>=style.pt' does not
    exist"), and a config file's `embeddings: {<cat>: style.pt}` as a file named `<cat>`: each says the order."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "style.pt").write_bytes(b"x")
    with pytest.raises(
        ConfigError, match=r"'<cat>=style.pt' gives the token first; give the file first, style.pt=<cat>"
    ):
        parse_embeddings(["<cat>=style.pt"])
    assert parse_embeddings(["<cat>=other.pt"]) == {"<cat>=other.pt": None}  # no such file: said missing as loaded
    with pytest.raises(ConfigError, match=r"'0.8=style.pt' gives the scale first; give the file first, style.pt=0.8"):
        parse_lora(["0.8=style.pt"])  # a LoRA's scale as well
    (tmp_path / "<cat>=style.pt").write_bytes(b"x")  # a file of that name is that file
    assert parse_embeddings(["<cat>=style.pt"]) == {"<cat>=style.pt": None}
    with pytest.raises(
        EmbeddingError, match=r"token 'style.pt' for '.*style.pt' names a file; each embedding file is given"
    ):
        check_embedding(tmp_path / "style.pt", "style.pt")
    clip = render_clip(ToyClipSpec([ToyObject(Shape.CIRCLE, Color.RED)], frames=2, size=32, seed=1))
    settings = {"video": str(write_frames(clip.frames, tmp_path / "clip")), "source": "a red circle"}
    (tmp_path / "e.yaml").write_text(yaml.safe_dump({**settings, "embeddings": {"<cat>": "style.pt"}}))
    result = runner.invoke(app, ["run", "--config", "e.yaml", "--target", "a blue circle", "--out", "o"])
    assert_one_line_error(result, "e.yaml: embeddings token 'style.pt' for '<cat>' names a file")
    assert not (tmp_path / "o").exists()


runner = CliRunner()


def test_run_with_an_embedding_records_it_reruns_and_exports_only_with_it(model_dir, tmp_path):
    (tmp_path / "job").mkdir()
    torch.save({"string_to_param": {"*": _vectors(2, 11)}}, tmp_path / "job" / "glossyfx.pt")
    clip = render_clip(ToyClipSpec([ToyObject(Shape.CIRCLE, Color.RED)], frames=2, size=32, seed=1))
    frames = write_frames(clip.frames, tmp_path / "clip")
    config = tmp_path / "job" / "run.yaml"  # the embedding named beside the config file
    config.write_text(yaml.safe_dump({"embeddings": {"glossyfx.pt": None}}))
    source = "a red circle moving on the grass"
    common = [
        "--source",
        source,
        "--target",
        "a glossyfx red circle moving on the grass",
        "--blend",
        "circle",
        "circle",
    ]
    common += ["--model", str(model_dir), "--frames", "2", "--tune-steps", "1", "--steps", "2", "--inversion", "fast"]
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(frames), *common, "--config", str(config), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    kept = yaml.safe_load((out / "config.yaml").read_text())
    assert kept["embeddings"] == {str((tmp_path / "job" / "glossyfx.pt").resolve()): None}
    manifest = json.loads((out / "outputs.json").read_text())
    assert manifest["model"].startswith("tiny+glossyfx@")
    rerun = runner.invoke(app, ["run", "--config", str(out / "config.yaml"), "--out", str(tmp_path / "again")])
    assert rerun.exit_code == 0, rerun.output
    assert json.loads((tmp_path / "again" / "outputs.json").read_text())["stages"]["edit"]["action"] == "reused"
    entry = next((tmp_path / ".videop2p-workspace").glob("clip-*"))
    plain = runner.invoke(app, ["export", str(entry), str(tmp_path / "x1"), "--model", str(model_dir)])
    assert_one_line_error(plain, "--embedding")  # tuned from the model with the embedding, not without it
    emb = ["--embedding", str(tmp_path / "job" / "glossyfx.pt")]
    exported = runner.invoke(app, ["export", str(entry), str(tmp_path / "x2"), "--model", str(model_dir), *emb])
    assert exported.exit_code == 0, exported.output
    authors = ["--format", "tune-a-video", "--model", str(model_dir), *emb]
    exported = runner.invoke(app, ["export", str(entry), str(tmp_path / "x3"), *authors])
    assert exported.exit_code == 0, exported.output
    folder = load_components(tmp_path / "x3")  # the authors' folder keeps the embedding's tokens and vectors
    assert word_indices(folder.tokenizer, "a glossyfx circle", "glossyfx") == [2, 3]
    torch.testing.assert_close(_row(folder, "glossyfx_1"), _vectors(2, 11)[1])
    assert json.loads((tmp_path / "x3" / "tokenizer" / "added_tokens.json").read_text()).keys() == {
        "glossyfx",
        "glossyfx_1",
    }  # where the authors' transformers 4.25 reads them
    for flag, needle in (
        ("nothing.pt", "does not exist"),
        (f"{tmp_path / 'job' / 'glossyfx.pt'}=two words", "one word without spaces"),
        (f"{tmp_path / 'job' / 'glossyfx.pt'}=circle", "'circle'"),
    ):
        bad = runner.invoke(app, ["run", str(frames), *common, "--embedding", flag, "--out", str(tmp_path / "bad")])
        assert_one_line_error(bad, needle)
        assert not (tmp_path / "bad").exists()
    twice = ["--embedding", "a.pt", "--embedding", "a.pt=<a>"]
    for command in (["run", str(frames), *common, "--out", str(tmp_path / "bad")], ["info"]):
        bad = runner.invoke(app, [*command, *twice])
        assert_one_line_error(bad, "error: --embedding 'a.pt' is given twice")


def test_the_web_editor_says_the_word_each_embedding_takes(tmp_path):
    from videop2p.ui import Session

    torch.save({"<cat-toy>": _vectors(1, 12)[0]}, tmp_path / "learned_embeds.bin")
    torch.save({"string_to_param": {"*": _vectors(2, 13)}}, tmp_path / "glossyfx.pt")
    (tmp_path / "cut.pt").write_bytes(b"not a pickle")
    files = {str(tmp_path / n): None for n in ("learned_embeds.bin", "glossyfx.pt", "cut.pt")}
    files[str(tmp_path / "glossyfx.pt")] = "<g>"
    line = Session(None, tmp_path, lora={"style.safetensors": 0.8}, embeddings=files).model_line()
    assert "Model: videop2p-toy" in line and "LoRA: style.safetensors (0.8)" in line
    assert "`<cat-toy>` (learned_embeds.bin), `<g>` (glossyfx.pt), cut.pt (unreadable)" in line


def test_an_embedding_given_by_its_hub_repository_is_read_from_the_cache(model_dir, hub_cache, monkeypatch):
    """`--embedding sd-concepts-library/cat-toy`, as diffusers' `load_textual_inversion` takes it: the
    repository's learned_embeds file, from the Hugging Face cache with no request; its word is the token the
    file names, else the file's name (not the repository's); offline, one the cache lacks says how to download
    it."""
    vector = _vectors(1, 21)[0]
    snapshot = hub_cache.snapshot("sd-concepts-library/cat-toy")
    snapshot.mkdir(parents=True)
    torch.save({"<cat-toy>": vector}, snapshot / "learned_embeds.bin")
    torch.save({"<cat-toy>": -vector}, snapshot / "token_identifier.pt")  # another file: the diffusers' name is read
    got = load_components(model_dir, embeddings={"sd-concepts-library/cat-toy": None})
    torch.testing.assert_close(_row(got, "<cat-toy>"), vector)
    assert got.info.identity.startswith("tiny+cat-toy@") and hub_cache.connects == []
    result = runner.invoke(app, ["info", "--model", str(model_dir), "--embedding", "sd-concepts-library/cat-toy=<toy>"])
    assert result.exit_code == 0 and "<toy>" in result.output, result.output
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline, a repository's one file the cache holds is taken
    a1111 = hub_cache.snapshot("someone/negatives")  # the A1111 web UI's file: its word is the file's name
    a1111.mkdir(parents=True)
    torch.save({"string_to_param": {"*": _vectors(2, 22)}}, a1111 / "bad-hands-5.pt")
    got = load_components(model_dir, embeddings={"someone/negatives": None})
    assert dict(got.info.embeddings) == {"bad-hands-5": 2}
    missing = runner.invoke(app, ["info", "--model", str(model_dir), "--embedding", "sd-concepts-library/gone"])
    said = "embedding file 'sd-concepts-library/gone' is not a local path and could not be read from the Hugging Face"
    line = next(line for line in missing.output.splitlines() if said in line)  # what `info` says of the model
    assert "run `hf download sd-concepts-library/gone`, or give a local file." in line and hub_cache.connects == []
