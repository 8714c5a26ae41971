"""The web editor, driven in headless Chromium (Debian's package) through Playwright."""

import json
import logging
import os
import re
import shutil
import socket
import zipfile
from pathlib import Path

import numpy as np
import pytest

from videop2p.config import OFFICIAL_TUNE_STEPS
from videop2p.io.writing import write_frames
from videop2p.ui import (
    EXAMPLES,
    Form,
    FormError,
    example_clip,
    example_prompt,
    form_to_config,
    launch,
    preset_fields,
    unpack_upload,
)

ARTIFACTS = Path(os.environ.get("VIDEOP2P_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))
EXAMPLE = "red circle on grass"
TARGET = "a blue circle moving on the grass"


def _chromium() -> str:
    path = os.environ.get("VIDEOP2P_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise FileNotFoundError("the browser test needs Debian's chromium: apt-get install -y chromium")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    port = _free_port()
    app = launch(None, tmp_path_factory.mktemp("ui"), port=port, block=False)
    yield f"http://127.0.0.1:{port}"
    app.close()


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1500})
        page.goto(server, wait_until="domcontentloaded")
        page.get_by_role("button", name="Edit", exact=True).wait_for(timeout=60_000)
        yield page
        browser.close()


@pytest.fixture
def fresh(page, server):
    """The page loaded anew, so that each test starts from the form's defaults whatever ran before it."""
    page.goto(server, wait_until="domcontentloaded")
    page.get_by_role("button", name="Edit", exact=True).wait_for(timeout=60_000)
    return page


def _fill(page, label: str, value: str) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(value)
    box.press("Tab")  # commit the value to Gradio


def _choose(page, label: str, option: str) -> None:
    page.get_by_label(label, exact=True).click()
    page.locator('[data-testid="dropdown-option"]', has_text=re.compile(rf"^\W*{re.escape(option)}$")).click()


def _run(page) -> None:
    page.get_by_role("button", name="Edit", exact=True).click()


def _close_errors(page) -> None:
    for button in page.locator(".toast-close").all():
        button.click()


def _status(page) -> str:
    return page.locator("#status").inner_text()


def _edit_and_wait(page, timeout: int = 240_000) -> str:
    """Press Edit and wait for this run's "Done" line, told from an earlier run's by its outputs folder
    (Gradio shows "processing" over the earlier text while a run or a field's event is under way)."""
    found = re.search(r"outputs in (\S+)", _status(page))
    before = found.group(1) if found else ""
    _run(page)
    page.wait_for_function(
        "before => { const s = document.querySelector('#status').innerText;"
        " const m = s.match(/outputs in (\\S+)/);"
        " return !s.includes('processing') && m !== null && m[1] !== before; }",
        arg=before,
        timeout=timeout,
    )
    return _status(page)


def _toy_swap_form(page, frames: int = 4) -> None:
    """The toy example with a colour swap at a tiny budget: 3 tuning and 4 DDIM steps, fast inversion
    (null-text's optimisation is tested in test_inversion; here it would be 3/4 of the run). Tests that
    must compute give a frame count of their own: another clip for the workspace."""
    page.get_by_label(EXAMPLE).check()
    page.wait_for_function("() => document.querySelector('#source textarea').value.length > 0", timeout=30_000)
    _fill(page, "Target prompts (one per line)", TARGET)
    _fill(page, "Blend word (source)", "circle")
    _fill(page, "Blend word (target)", "circle")
    _fill(page, "DDIM steps", "4")
    _fill(page, "Tuning steps", "3")
    _fill(page, "Frames (0: every frame)", str(frames))
    _choose(page, "Inversion", "fast")


def test_no_clip_no_prompt_shows_a_message_not_a_traceback(fresh):
    _run(fresh)
    message = fresh.get_by_text("Upload a clip (mp4, gif or a zip of frames) or choose a toy example.")
    message.first.wait_for(timeout=30_000)
    fresh.screenshot(path=str(ARTIFACTS / "ui_error_no_clip.png"), full_page=True)
    assert "Traceback" not in fresh.content()
    _close_errors(fresh)


def test_an_uploaded_clip_is_described_at_once_and_a_damaged_one_named(fresh, tmp_path):
    clip = example_clip(EXAMPLE, tmp_path, frames=3)
    zipped = tmp_path / "three.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        for f in sorted(clip.iterdir()):
            zf.write(f, f"three/{f.name}")
    fresh.locator("input[type=file]").first.set_input_files(str(zipped))
    fresh.wait_for_function("() => document.querySelector('#status').innerText.includes('three.zip')", timeout=30_000)
    said = _status(fresh)
    assert "three.zip: 64x64 as shown" in said and "3 frames" in said and "8-bit SDR" in said
    assert "Frames asks for 8, and it holds 3: set Frames to 3 or fewer (0: every frame)." in said  # the form's 8
    fresh.get_by_label(EXAMPLE).check()  # an example chosen after an upload is the clip: the upload is let go
    fresh.wait_for_function("() => document.querySelector('#status').innerText === 'Ready.'", timeout=30_000)
    assert fresh.locator("#upload").get_by_text("three.zip").count() == 0
    fresh.locator("input[type=file]").first.set_input_files(str(zipped))  # and an upload after it: no example
    fresh.wait_for_function("() => document.querySelector('#status').innerText.includes('three.zip')", timeout=30_000)
    assert not fresh.get_by_label(EXAMPLE).is_checked()
    # the model, loaded beside the page since it was served, says the size it works the clip at (its own)
    assert "Worked at 64x64 by this model (Width and Height for another)." in _status(fresh)
    for field, value, told in (  # the note follows the fields it speaks of, where it kept what the upload found
        ("Width (0: keep aspect)", "128", "Worked at 128x128 by this model"),
        ("Width (0: keep aspect)", "66", "Width 66 is not allowed by the model: sides must be positive multiples"),
        ("Width (0: keep aspect)", "0", "Worked at 64x64 by this model"),
        ("Frames (0: every frame)", "2", "An edit takes 2 of its 3 frames"),
    ):
        _fill(fresh, field, value)
        fresh.wait_for_function(f"() => document.querySelector('#status').innerText.includes({told!r})", timeout=30_000)
    (tmp_path / "cut.mp4").write_bytes(b"not a video" * 100)
    fresh.locator("#upload").get_by_role("button", name="Clear").click()  # the next clip in its place
    fresh.wait_for_function("() => document.querySelector('#status').innerText === 'Ready.'", timeout=30_000)
    fresh.locator("input[type=file]").first.set_input_files(str(tmp_path / "cut.mp4"))
    fresh.wait_for_function("() => document.querySelector('#status').innerText.includes('cut.mp4')", timeout=30_000)
    assert _status(fresh).startswith("Could not read the clip: ") and "is not a readable video" in _status(fresh)
    assert "Traceback" not in fresh.content()


def test_toy_example_swap_edit_shows_the_result_video_and_masks(fresh):
    page = fresh
    _toy_swap_form(page)
    assert page.get_by_label("Source prompt", exact=True).input_value() == example_prompt(EXAMPLE)
    status = _edit_and_wait(page)
    page.locator("#result-video video").wait_for(timeout=30_000)
    page.locator("#masks img").wait_for(timeout=30_000)
    assert "tune" in status and "computed" in status
    out = Path(re.search(r"outputs in (\S+)", status).group(1).strip("`"))
    stages = json.loads((out / "outputs.json").read_text())["stages"]
    assert stages["invert"]["unet_evaluations"] == 4  # the chosen fast inversion: one per DDIM step, no null-text
    assert page.locator("#edits img, #edits video").count() >= 1
    assert page.locator("#attention img").count() == 2  # source and target token maps
    captions = page.locator("#attention").inner_text()  # each under the prompt it belongs to
    assert example_prompt(EXAMPLE) in captions and TARGET in captions
    assert TARGET in page.locator("#masks").inner_text()  # one blend mask per target, under its prompt
    page.screenshot(path=str(ARTIFACTS / "ui_result.png"), full_page=True)
    _fill(page, "Width (0: keep aspect)", "128")  # a field changed for the next edit: no clip uploaded to say
    page.wait_for_timeout(1500)
    assert _status(page).startswith("Done") and "outputs in" in _status(page)  # the result's status stays


def test_re_edit_reuses_the_workspace_and_says_so(fresh):
    _toy_swap_form(fresh, frames=3)
    assert "Re-edit" not in _edit_and_wait(fresh)  # 3 frames: a clip no other test edits
    _fill(fresh, "Target prompts (one per line)", "a green circle moving on the grass")
    fresh.get_by_text("Long clips and output").click()  # and the edit's frames as PNGs, one zip under Downloads
    fresh.locator("#png-frames input").check()
    status = _edit_and_wait(fresh)
    assert "Re-edit of a known clip: the workspace's tune and invert result was reused." in status
    assert "a green circle moving on the grass" in fresh.locator("#masks").inner_text()  # this run's result
    out = Path(re.search(r"outputs in (\S+)", status).group(1).strip("`"))
    assert re.search(r"edit_1\s*\.zip", fresh.locator("#downloads").inner_text())  # Gradio parts name and suffix
    with zipfile.ZipFile(out / "edit_1.zip") as zf:
        assert zf.namelist() == [f"edit_1/{k}.png" for k in (1, 2, 3)]  # the 3 frames, lossless
    _fill(fresh, "Blend word (source)", "")  # no local blending: no mask to show, and no empty gallery
    _fill(fresh, "Blend word (target)", "")
    _edit_and_wait(fresh)
    fresh.locator("#masks").wait_for(state="hidden", timeout=30_000)
    fresh.locator("#edits img").first.wait_for(timeout=30_000)


def test_the_untouched_page_runs_the_official_settings(fresh, monkeypatch, tmp_path):
    """Regression: Gradio 6 shows a number left as None as 0 and sends that 0, so the page's Tuning steps (None:
    500) ran no tuning. What the page sends untouched is the config an empty config file and no flags give,
    every setting of it (the edit's prompts and the clip aside), and with the quick preset chosen, `--preset
    quick`'s."""
    from videop2p.config import preset_config, settings_of
    from videop2p.ui import Session

    sent = []

    def recorded(session, form, upload, example, progress=None):
        sent.append(form)
        raise FormError("recorded")

    monkeypatch.setattr(Session, "run", recorded)  # the server runs in this process
    fresh.get_by_label(EXAMPLE).check()
    fresh.wait_for_function("() => document.querySelector('#source textarea').value.length > 0", timeout=30_000)
    _fill(fresh, "Target prompts (one per line)", TARGET)
    _run(fresh)
    fresh.get_by_text("recorded").first.wait_for(timeout=30_000)
    _close_errors(fresh)
    _choose(fresh, "Preset", "quick")  # and the quick preset's page is `--preset quick`
    fresh.wait_for_function(
        f"() => document.querySelector('#tune-steps input').value !== '{OFFICIAL_TUNE_STEPS}'", timeout=30_000
    )
    _run(fresh)
    fresh.get_by_text("recorded").first.wait_for(timeout=30_000)
    _close_errors(fresh)
    for form, preset in zip(sent, ("official", "quick"), strict=True):
        page = form_to_config(form, "clip.mp4", tmp_path / "o", tmp_path / "ws", None)
        expected = preset_config(preset)
        expected.source, expected.targets, expected.out = page.source, page.targets, page.out
        expected.workspace, expected.video.path = page.workspace, page.video.path
        expected.tune = expected.tune.resolved()  # the number the field shows: the bundled model is an image model
        for section in ("video", "tune", "inversion", "edit", "window"):
            assert settings_of(getattr(page, section)) == settings_of(getattr(expected, section)), (preset, section)
        assert settings_of(page) == settings_of(expected), preset


def test_blend_word_not_in_prompt_is_named_in_the_page(fresh):
    _toy_swap_form(fresh)
    _fill(fresh, "Blend word (source)", "triangle")
    _fill(fresh, "Blend word (target)", "triangle")
    _run(fresh)
    fresh.get_by_text("Blend words: 'triangle' is not in the source prompt").first.wait_for(timeout=30_000)
    fresh.screenshot(path=str(ARTIFACTS / "ui_error_blend_word.png"), full_page=True)
    _close_errors(fresh)


def test_the_preset_menu_fills_the_page_fields(fresh):
    page = fresh
    want, _ = preset_fields("quick")
    note = page.locator("#preset-note")
    assert note.inner_text().strip() == "official: the authors' settings"  # at load, as after a choice
    # the steps the official settings tune (Gradio shows no blank number: its 0 was sent, and no edit was tuned)
    assert page.locator("#tune-steps input").input_value() == str(OFFICIAL_TUNE_STEPS)
    _choose(page, "Preset", "quick")
    page.wait_for_function(
        f"() => document.querySelector('#tune-steps input').value === '{want['tune_steps']}'", timeout=30_000
    )
    assert page.locator("#tune-frames input").input_value() == str(want["tune_frames"])
    assert page.locator("#null-text-frames input").input_value() == str(want["null_text_frames"] or "")  # blank: all
    assert page.locator("#tune-checkpointing input").is_checked() is want["tune_checkpointing"]
    assert note.inner_text().startswith("quick: ") and "first edit" in note.inner_text()  # its measured margin
    _choose(page, "Preset", "official")  # back: the official number again, not Gradio's 0 for none
    page.wait_for_function(
        f"() => document.querySelector('#tune-steps input').value === '{OFFICIAL_TUNE_STEPS}'", timeout=30_000
    )


# -- the form's logic, without a browser -----------------------------------------------------------
def test_form_to_config_maps_every_field(tmp_path):
    form = Form(source="a red circle moving on the grass", targets="a blue circle moving on the grass\n\n a b\n",
                blend_source="circle", blend_target="circle", reweight="blue=2, grass=0.5", steps=7, frames=5,
                cross_replace_word="blue=0.4",
                width=96, height=64, inversion="fast", mode="swap", mask_norm="range",
                frame_attention_control=True)  # fmt: skip
    cfg = form_to_config(form, "clip.mp4", tmp_path / "out", tmp_path / "ws", None)
    assert cfg.targets == ["a blue circle moving on the grass", "a b"]
    assert cfg.edit.blend == ("circle", "circle") and cfg.edit.reweight == {"blue": 2.0, "grass": 0.5}
    assert cfg.edit.cross_replace_words == {"blue": 0.4}
    assert cfg.inversion.steps == 7 and cfg.inversion.method.value == "fast" and cfg.edit.mode.value == "swap"
    assert (cfg.video.frames, cfg.video.width, cfg.video.height) == (5, 96, 64)
    assert cfg.edit.mask_norm.value == "range"
    assert cfg.edit.control_frame_attention is True and Form().frame_attention_control is False  # off: official
    form.blend_source, form.blend_target = "circle, -", "circle, -"  # a pair per target line, - for none
    cfg = form_to_config(form, "clip.mp4", tmp_path / "out", tmp_path / "ws", None)
    assert cfg.edit.blend == [("circle", "circle"), None]


def test_the_form_offers_every_option_of_run_with_its_default(tmp_path):
    import gradio as gr

    from videop2p.config import OPTIONS, RunConfig
    from videop2p.ui import SESSION_OPTIONS, WORD_PAIRS, Session, build_app

    fields = set(Form.__dataclass_fields__)
    paired = {o for o in WORD_PAIRS if {f"{o}_source", f"{o}_target"} <= fields}
    assert set(OPTIONS) - fields - paired - set(SESSION_OPTIONS) == set()  # a new flag of run needs a field
    form = Form(source="a red circle moving on the grass", targets="a blue circle moving on the grass")
    cfg = form_to_config(form, "clip.mp4", tmp_path / "out", tmp_path / "ws", None)
    official = RunConfig(source=form.source, targets=[form.targets], out=str(tmp_path / "out"))
    official.workspace, official.video.path = str(tmp_path / "ws"), "clip.mp4"
    assert cfg == official  # the form's defaults are the config dataclasses', every one
    app = build_app(Session(None, tmp_path))
    for label, name in [("Group norm", "group_norm"), ("Frames per window", "window"), ("Window overlap", "overlap"),
                        ("Anchors", "anchors"), ("Window blend", "window_blend"), ("Paste into the input", "composite"),
                        ("Lossless PNG frames", "png_frames"), ("Attention query chunk", "attention_slicing"),
                        ("Edit mode", "mode"), ("Inversion", "inversion"), ("Blend maps scaled by", "mask_norm"),
                        ("Resize", "resize"), ("Frame attention", "frame_attention"),
                        ("Recompute tuning and inversion even if the workspace has them", "force")]:  # fmt: skip
        (component,) = [b for b in app.blocks.values() if getattr(b, "label", None) == label]
        assert isinstance(component, gr.components.Component) and component.value == getattr(Form(), name), label
        if hasattr(component, "choices"):  # a menu offers each value of its choice (the edit mode's were written out)
            section, attr = OPTIONS[name]
            kind = type(getattr(RunConfig() if section is None else getattr(RunConfig(), section), attr))
            assert [value for _, value in component.choices] == [m.value for m in kind], label


def test_the_form_sets_the_long_clip_output_and_rarer_options(tmp_path):
    form = Form(source="a red circle moving on the grass", targets="a blue circle moving on the grass\na red square",
                blend_source="circle, -", blend_target="circle, -", subtract_source="grass, -",
                subtract_target="grass, -", group_norm="clip", attention_slicing=64, window=8, overlap=2,
                anchors="first+middle", window_blend="ramp", composite="off", png_frames=True)  # fmt: skip
    cfg = form_to_config(form, "clip.mp4", tmp_path, tmp_path, None)
    assert cfg.edit.subtract == [("grass", "grass"), None] and cfg.edit.blend == [("circle", "circle"), None]
    assert (cfg.group_norm.value, cfg.attention_slicing, cfg.composite.value, cfg.png_frames) == (
        "clip",
        64,
        "off",
        True,
    )
    assert (cfg.window.size, cfg.window.overlap, cfg.window.anchors.value, cfg.window.blend.value) == (
        8, 2, "first+middle", "ramp")  # fmt: skip
    from videop2p.config import LIGHTER

    lighter = form_to_config(Form(**{**vars(form), **LIGHTER}), "clip.mp4", tmp_path, tmp_path, None)
    assert (lighter.tune.frames, lighter.attention_slicing, lighter.window.size) == (4, 1024, 8)  # fields it names
    for blank in (None, 0):  # a cleared field: the whole clip at once, every query at once
        form.window, form.attention_slicing = blank, blank
        cfg = form_to_config(form, "clip.mp4", tmp_path, tmp_path, None)
        assert (cfg.window.size, cfg.attention_slicing) == (None, None)


def test_zip_folder_packs_an_edits_frames_in_their_order(tmp_path):
    import zipfile

    from videop2p.ui import zip_folder

    folder = tmp_path / "edit_1"
    folder.mkdir()
    for k in (1, 2, 10):
        (folder / f"{k}.png").write_bytes(bytes([k]) * 5)
    path = zip_folder(folder)
    assert path == tmp_path / "edit_1.zip" and sorted(p.name for p in tmp_path.iterdir()) == ["edit_1", "edit_1.zip"]
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == ["edit_1/1.png", "edit_1/2.png", "edit_1/10.png"]  # natural order
        assert zf.read("edit_1/10.png") == bytes([10]) * 5


def test_a_preset_fills_the_fields_that_give_its_settings(tmp_path):
    from videop2p.config import PRESET_MARGINS, Preset, RunConfig, preset_config

    for preset in Preset:
        values, margin = preset_fields(preset.value)
        form = Form(source="a red circle moving on the grass", targets="a blue circle moving on the grass", **values)
        cfg, want = form_to_config(form, "clip.mp4", tmp_path, tmp_path, None), preset_config(preset.value)
        assert (cfg.tune, cfg.inversion) == (want.tune, want.inversion)
        assert margin == PRESET_MARGINS.get(preset, "the authors' settings")
    assert preset_config("quick").tune != RunConfig().tune  # the quick preset does change the fields
    blank = Form(source="a red circle moving on the grass", targets="a blue circle", tune_frames=0, null_text_frames=0)
    cfg = form_to_config(blank, "clip.mp4", tmp_path, tmp_path, None)  # a cleared field reads 0: every frame
    assert (cfg.tune.frames, cfg.inversion.frames) == (None, None)
    every = Form(source="a red circle moving on the grass", targets="a blue circle", frames=0)
    assert form_to_config(every, "clip.mp4", tmp_path, tmp_path, None).video.frames is None  # as --frames 0
    with pytest.raises(FormError, match="'fastest' is not one of official, quick"):
        preset_fields("fastest")


def test_the_blend_threshold_field_takes_one_per_target(tmp_path):
    form = Form(source="a red circle moving on the grass", targets="a blue circle moving on the grass\na red square")
    form.threshold = "0.3, 0.6"  # as the blend words, one per target
    assert form_to_config(form, "clip.mp4", tmp_path, tmp_path, None).edit.threshold == [0.3, 0.6]
    form.threshold = "0.45"  # one for every target, typed
    assert form_to_config(form, "clip.mp4", tmp_path, tmp_path, None).edit.threshold == 0.45
    form.threshold = 0.2  # the form's number, as the API gives it
    assert form_to_config(form, "clip.mp4", tmp_path, tmp_path, None).edit.threshold == 0.2
    import gradio as gr

    from videop2p.ui import Session, build_app

    app = build_app(Session(None, tmp_path))
    (field,) = [b for b in app.blocks.values() if getattr(b, "label", None) == "Blend threshold"]
    assert isinstance(field, gr.Textbox) and field.value == str(Form().threshold)  # text, so "0.3, 0.6" fits


def test_the_window_fields_take_one_per_target(tmp_path):
    form = Form(source="a red circle moving on the grass", targets="a blue circle moving on the grass\na red square")
    form.cross_replace, form.self_replace = "0.2, 0.8", "0.4"
    edit = form_to_config(form, "clip.mp4", tmp_path, tmp_path, None).edit
    assert edit.cross_replace == [(0.0, 0.2), (0.0, 0.8)] and edit.self_replace == 0.4
    form.cross_replace = "0.2, 0.8, 0.5"
    with pytest.raises(FormError, match="^cross-attention window gives 3 windows for 2 target prompts"):
        form_to_config(form, "clip.mp4", tmp_path, tmp_path, None)
    form.cross_replace, form.self_replace = 0.3, "0.2, x"
    with pytest.raises(FormError, match="^temporal-attention window '0.2, x' is not valid; expected a fraction from 0"):
        form_to_config(form, "clip.mp4", tmp_path, tmp_path, None)
    import gradio as gr

    from videop2p.ui import Session, build_app

    app = build_app(Session(None, tmp_path))
    for label, default in (
        ("Cross-attention replace", Form().cross_replace),
        ("Temporal-attention replace", Form().self_replace),
    ):
        (field,) = [b for b in app.blocks.values() if getattr(b, "label", None) == label]
        assert isinstance(field, gr.Textbox) and field.value == str(default)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"source": " "}, "source prompt"),
        ({"targets": ""}, "at least one target"),
        ({"blend_source": "circle", "blend_target": ""}, "both words"),
        ({"reweight": "blue"}, "WORD=FACTOR"),
        ({"cross_replace_word": "blue=2"}, "Per-word window blue=2.0 is not valid"),
        ({"frames": -1}, "frames -1 is not valid; expected a whole number >= 1"),  # 0: every frame
        ({"tune_frames": 1}, "frames per tuning step 1 is not valid; expected a whole number >= 2"),
        ({"null_text_frames": 1}, "null-text frames 1 is not valid; expected a whole number >= 2"),
        ({"mode": "magic"}, "edit mode .magic. is not one of auto, swap, refine"),
        ({"mask_norm": "median"}, "blend maps scaled by .median. is not one of max, range"),
        ({"frames": float("nan")}, "frames nan is not valid; expected a whole number >= 1"),
        ({"frames": 2.5}, "frames 2.5 is not valid; expected a whole number >= 1"),
        ({"seed": None}, "seed is blank; enter a number"),
        ({"start": -1}, "first frame -1 is not valid; expected a whole number >= 0"),
        ({"width": float("inf")}, "width inf is not valid; expected a whole number >= 1"),
        ({"lr": None}, "learning rate is blank; enter a number"),
        ({"lr": 0}, "learning rate 0.0 is not valid; expected a finite number > 0"),
        ({"guidance": "strong"}, "guidance 'strong' is not valid; expected a finite number >= 0"),
        ({"cross_replace": 1.5}, "cross-attention window 1.5 is not valid"),
        ({"subtract_source": "grass"}, "^Subtracting from the blend mask needs both words"),
        ({"subtract_source": "grass", "subtract_target": "grass"}, "^Subtract words: .* without blend words"),
        ({"window": 8, "overlap": 8}, "^window overlap 8 is not valid with a window of 8 frames"),
        ({"window": 1}, "^frames per window 1 is not valid; expected a whole number >= 2"),
        ({"group_norm": "batch"}, "^group norm 'batch' is not one of frame, clip"),
        ({"composite": "on"}, "^paste into the input 'on' is not one of auto, sdr, off"),
        ({"anchors": "all"}, "^anchor frames 'all' is not one of first, first.middle"),
        ({"attention_slicing": 2.5}, "^attention query chunk 2.5 is not valid; expected a whole number >= 1"),
        (
            {"blend_source": "circle, grass", "blend_target": "circle"},
            "^Blend words: 'circle, grass' and 'circle' give",
        ),
        ({"blend_source": "circle, -", "blend_target": "circle, -"}, "^Blend words: gives 2 word pairs for 1 target"),
        ({"threshold": "0.3, x"}, "^blend threshold '0.3, x' is not valid; expected a number from 0 to 1, or one per"),
        ({"threshold": "0.3, 0.6"}, "^blend threshold gives 2 thresholds for 1 target prompt"),
        ({"threshold": "1.5"}, "^blend threshold 1.5 is not valid; expected a finite number from 0 to 1"),
        ({"steps": 3.0}, None),  # a whole number typed as 3.0 is 3 steps
        ({"tune_steps": None}, None),  # blank: the model's default
        ({"tune_frames": 0, "width": 0}, None),  # a cleared field: every frame, the aspect ratio kept
    ],
)
def test_bad_form_values_are_named(tmp_path, changes, message):
    form = Form(source="a red circle moving on the grass", targets="a blue circle moving on the grass")
    for k, v in changes.items():
        setattr(form, k, v)
    if message is None:
        cfg = form_to_config(form, "clip.mp4", tmp_path, tmp_path, None)
        assert (cfg.inversion.steps, cfg.tune.frames, cfg.video.width) == (form.steps, None, None)
        assert cfg.tune.steps == form.tune_steps and isinstance(cfg.inversion.steps, int)
        return
    with pytest.raises(FormError, match=message):
        form_to_config(form, "clip.mp4", tmp_path, tmp_path, None)


def test_zip_of_frames_is_unpacked_flat_and_a_bad_zip_is_named(tmp_path, monkeypatch):
    import zipfile

    clip = example_clip(next(iter(EXAMPLES)), tmp_path, frames=3)
    zpath = tmp_path / "frames.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in sorted(clip.iterdir()):
            zf.write(f, f"../nested/{f.name}")  # a path that must not escape
        zf.writestr("notes.txt", "ignored")
        for f in sorted(clip.iterdir()):  # what macOS adds to a zip: no pictures
            zf.writestr(f"__MACOSX/nested/._{f.name}", b"\x00\x05\x16\x07 resource fork")
    folder = unpack_upload(zpath, tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in clip.iterdir())
    stamp = folder.stat().st_mtime_ns
    assert unpack_upload(zpath, tmp_path) == folder and folder.stat().st_mtime_ns == stamp  # once: each Edit reads it
    assert [p.name for p in (tmp_path / "uploads").iterdir()] == [folder.name]  # nothing left beside it
    import videop2p.ui as ui

    session, hashed = ui.Session(None, tmp_path), []
    digest = ui._file_digest
    monkeypatch.setattr(ui, "_file_digest", lambda path: hashed.append(path) or digest(path))
    assert {session.unpacked(zpath) for _ in range(3)} == {folder} and len(hashed) == 1  # chosen, a field, an Edit
    with zipfile.ZipFile(zpath, "a") as zf:  # another zip at the same path: its own clip
        zf.writestr("more.txt", "changed")
    assert session.unpacked(zpath) != folder and len(hashed) == 2
    first = sorted(clip.iterdir())[0]
    with zipfile.ZipFile(tmp_path / "two.zip", "w") as zf:
        zf.write(first, f"a/{first.name}")
        zf.write(first, f"b/{first.name}")
    with pytest.raises(
        FormError, match=rf"^The zip two.zip holds two frames named {first.name} \(a/.* and b/.*\); zip one"
    ):
        unpack_upload(tmp_path / "two.zip", tmp_path)
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(FormError, match="bad.zip is not a readable zip"):
        unpack_upload(tmp_path / "bad.zip", tmp_path)
    with zipfile.ZipFile(tmp_path / "phone.zip", "w") as zf:  # an iPhone's photos, some of them HEIC
        zf.write(first, "IMG_0001.JPG")
        zf.writestr("IMG_0002.HEIC", b"\0\0\0\x18ftypheic")
    with pytest.raises(FormError, match=r"phone.zip holds HEIC/HEIF pictures \(IMG_0002.HEIC, ...\), which are not"):
        unpack_upload(tmp_path / "phone.zip", tmp_path)


def test_a_chosen_clip_is_said_at_the_size_the_loaded_model_works_it_at(tmp_path):
    """The clip's note says the working size once the model is loaded (`Session.preload`, which `launch` runs
    beside the page): the model's own area, or the form's Width and Height; a model that does not load is left
    to the Edit to name."""
    from videop2p.io.video import resolve_size
    from videop2p.ui import Session, clip_note, form_size

    clip = write_frames(np.zeros((3, 48, 96, 3), np.uint8), tmp_path / "wide")
    missing = Session(str(tmp_path / "no-model"), tmp_path / "ui")
    missing.preload()  # no error: the Edit says it
    assert missing.loaded_info() is None
    assert "Worked at" not in clip_note(clip, "wide", None, missing.loaded_info(), form_size(None, None))
    session = Session(None, tmp_path / "ui")
    assert session.loaded_info() is None
    session.preload()
    info = session.loaded_info()
    assert info is not None and info.native_size == 64
    said = clip_note(clip, "wide", None, info, form_size(None, 0))  # blank and 0: the model's area, 2:1
    w, h = resolve_size((96, 48), None, None, info.native_size, info.size_multiple, info.size_step)  # as a run sizes
    assert (
        f"Worked at {w}x{h} by this model (Width and Height for another); its edits are pasted back at 96x48." in said
    )
    said = clip_note(clip, "wide", None, info, form_size(128, None))
    assert "Worked at 128x64 by this model (Width and Height for another); its edits are pasted back at 96x48." in said
    said = clip_note(clip, "wide", None, info, form_size(66, None))  # not a multiple: said as the Edit says it
    assert "Worked at" not in said and said.endswith(
        f"\n\nWidth 66 is not allowed by the model: sides must be positive multiples of {info.size_multiple}; "
        "nearest valid widths are 64 and 68."
    )
    assert form_size(2.5, None) is None and form_size(None, -1) is None


def test_a_damaged_upload_or_too_few_frames_is_named_before_the_model_loads(tmp_path):
    from videop2p.ui import Session

    session = Session(str(tmp_path / "no-model"), tmp_path)  # loading it would fail: it is not reached
    (tmp_path / "clip.mp4").write_bytes(b"not a video" * 100)
    form = Form(source=example_prompt(EXAMPLE), targets=TARGET, frames=4)
    with pytest.raises(FormError, match="^Could not read the clip: .*clip.mp4 is not a readable video"):
        session.run(form, str(tmp_path / "clip.mp4"), None, None)
    form.start = 3  # the example is rendered with the form's 4 frames; said in the form's words
    with pytest.raises(
        FormError,
        match=r"^The example: Frames asks for 4, and it holds 1 from First frame 3 at Frame stride 1: set Frames "
        r"to 1 or fewer \(0: every frame\), or lower First frame\.$",
    ):
        session.run(form, None, EXAMPLE, None)
    clip = example_clip(EXAMPLE, tmp_path, frames=3)
    with zipfile.ZipFile(tmp_path / "three.zip", "w") as zf:
        for f in sorted(clip.iterdir()):
            zf.write(f, f.name)
    form.start = 0
    with pytest.raises(FormError, match=r"^three.zip: Frames asks for 4, and it holds 3: set Frames to 3 or fewer"):
        session.run(form, str(tmp_path / "three.zip"), None, None)
    form.start, form.frames = 0, 0  # an upload's every frame: no count to render an example with
    with pytest.raises(FormError, match=r"^frames 0 is not valid; expected a whole number from 1 to \d+ for a toy"):
        session.run(form, None, EXAMPLE, None)
    assert session._pipe is None


def test_a_model_that_fails_to_load_at_the_first_edit_is_the_forms_error_and_is_tried_again(tmp_path):
    from safetensors.torch import load_file, save_file

    from videop2p.models.loading import bundled_model_path
    from videop2p.ui import Session

    damaged = shutil.copytree(bundled_model_path(), tmp_path / "damaged")  # `ui` checks only that it is a folder
    (weights,) = (damaged / "unet").glob("*.safetensors")
    tensors = load_file(weights)
    del tensors[next(k for k in sorted(tensors) if k.endswith("attn2.to_k.weight"))]
    save_file(tensors, weights, metadata={"format": "pt"})
    session = Session(str(damaged), tmp_path / "root")
    form = Form(source=example_prompt(EXAMPLE), targets=TARGET, frames=4)
    for _ in range(2):  # not kept as loaded: the next Edit reads the files again
        with pytest.raises(FormError, match=r"^The model could not be loaded: damaged/unet: its files lack 1 weight"):
            session.run(form, None, EXAMPLE, None)
    assert session._pipe is None


def test_cancel_stops_the_run_and_keeps_nothing_of_the_stopped_stage(tmp_path):
    from videop2p.progress import Cancelled
    from videop2p.ui import Session

    session = Session(None, tmp_path)
    form = Form(source=example_prompt(EXAMPLE), targets=TARGET, steps=3, tune_steps=50, frames=4)
    seen = []

    def progress(done_total, desc):
        seen.append((desc, done_total))
        if done_total[0] == 2:
            session.cancel.set()  # the user presses Cancel during tuning

    with pytest.raises(Cancelled, match="tuning.*Edit with the same settings resumes it"):
        session.run(form, None, EXAMPLE, progress)
    assert seen[0][0].endswith("tuning the T2S model") and len(seen) == 3  # stopped at the next step
    assert not list((tmp_path / "workspace").rglob("*.safetensors"))  # no tuned delta kept
    assert not list((tmp_path / "runs").rglob("outputs.json"))
    form.tune_steps, form.inversion = 2, "fast"
    manifest = session.run(form, None, EXAMPLE, None)  # the next run starts afresh
    assert manifest["stages"]["tune"]["action"] == "computed"


def test_cancel_while_the_videos_are_written_leaves_no_outputs_and_the_next_edit_reuses_every_stage(tmp_path):
    from videop2p.progress import Cancelled
    from videop2p.ui import Session

    session = Session(None, tmp_path)
    form = Form(source=example_prompt(EXAMPLE), targets=TARGET, steps=3, tune_steps=2, frames=4, inversion="fast")
    seen = []

    def progress(done_total, desc):
        seen.append(desc)
        if desc.endswith("writing the videos") and done_total[0] == 1:
            session.cancel.set()  # the user presses Cancel once the first video is written

    with pytest.raises(Cancelled, match="writing the videos.*Edit with the same settings"):
        session.run(form, None, EXAMPLE, progress)
    assert seen[-1].endswith("writing the videos") and seen.count(seen[-1]) == 2  # none, one; stopped at the next
    assert not [p for p in (tmp_path / "runs").rglob("*") if p.is_file()]  # not one file of the stopped run
    manifest = session.run(form, None, EXAMPLE, None)
    assert [manifest["stages"][s]["action"] for s in ("tune", "invert", "edit")] == ["reused"] * 3
    assert (Path(manifest["out"]) / "side_by_side.mp4").exists()


def test_a_side_the_model_cannot_take_is_named_by_its_field_before_any_work(tmp_path):
    """Regression: Width 66 where the model's sides are multiples of 4 was said as "Could not read the clip:
    width 66 ...", found once the clip was read; it is the field's value, named before the clip is read."""
    from videop2p.ui import FormError, Session

    session = Session(None, tmp_path)
    form = Form(source=example_prompt(EXAMPLE), targets=TARGET, steps=2, tune_steps=1, frames=2, inversion="fast")
    multiple = session.pipe.components.info.size_multiple
    form.width = 16 * multiple + 2
    with pytest.raises(
        FormError, match=rf"^width {form.width} is not allowed by the model: .* multiples of {multiple};"
    ):
        session.run(form, None, EXAMPLE, None)
    assert not list(tmp_path.rglob("*.safetensors")) and not list((tmp_path / "runs").rglob("*.*"))


def test_the_runs_warnings_are_shown_in_the_page(tmp_path):
    from videop2p.ui import Session, status_text

    session = Session(None, tmp_path)
    snow = "a red circle moving on the snow"  # one blend pair for a colour swap and a background change
    form = Form(source=example_prompt(EXAMPLE), targets=f"{TARGET}\n{snow}", blend_source="circle",
                blend_target="circle", steps=3, tune_steps=2, frames=2, inversion="fast", threshold=0.0)  # fmt: skip
    manifest = session.run(form, None, EXAMPLE, None)
    text = status_text(manifest)
    assert text.startswith("**Done** — 2 edit(s)")
    assert "**Warning:** Local blending kept nothing of the source in target 1" in text  # threshold 0: all of it
    form.blend_source, form.blend_target, form.threshold = "circle, -", "circle, -", 0.3
    manifest = session.run(form, None, EXAMPLE, None)  # each target its own words: nothing to warn about
    assert manifest["warnings"] == [] and "Warning" not in status_text(manifest)
    assert not logging.getLogger("videop2p").handlers  # the page's collector is gone after the run


def test_an_edit_after_a_stopped_tuning_resumes_it(tmp_path):
    """A tuning stopped after a kept state (here kept after every step; the default keeps one every
    two minutes) is resumed by the editor's next Edit with the same settings."""
    import dataclasses

    from videop2p.progress import Cancelled
    from videop2p.ui import Session, example_clip, form_to_config

    session = Session(None, tmp_path)
    form = Form(source=example_prompt(EXAMPLE), targets=TARGET, steps=2, tune_steps=6, frames=2, inversion="fast")
    video = str(example_clip(EXAMPLE, tmp_path, 2))
    cfg = form_to_config(form, video, tmp_path / "stopped", tmp_path / "workspace", None)
    vp = session.pipe

    def stop(stage, i, total):
        if i == 4:
            raise Cancelled(stage)

    with pytest.raises(Cancelled):
        vp.tune(
            vp.load_clip(cfg.video),
            cfg.source,
            dataclasses.replace(cfg.tune, save_seconds=0),
            on_step=stop,
            frame_mode=cfg.frame_attention,
            group_norm=cfg.group_norm,
            window=cfg.window,
        )
    assert len(list((tmp_path / "workspace").rglob("tune.steps/tune-*.safetensors"))) == 1
    manifest = session.run(form, None, EXAMPLE, None)
    assert manifest["stages"]["tune"]["action"] == "resumed"
    assert manifest["stages"]["tune"]["unet_evaluations"] == 2  # only the steps after the kept state


def test_running_out_of_memory_or_disk_is_a_message_in_the_page(tmp_path, monkeypatch):
    import errno

    import torch

    from videop2p.pipeline import VideoP2P
    from videop2p.ui import FormError, Session

    session = Session(None, tmp_path)
    form = Form(source=example_prompt(EXAMPLE), targets=TARGET, steps=2, tune_steps=1, frames=2)
    for error, says in (
        (
            torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB\n..."),
            "Out of memory on cpu: CUDA out of memory. Tried to allocate 9.00 GiB Lighter settings: fewer frames or a "
            "smaller size, frames per tuning step 4, null-text frames 4, attention query chunk 1024, frames per "
            "window 8; or start the editor with",  # the form's names for config.LIGHTER's settings
        ),
        (OSError(errno.ENOSPC, "No space left on device"), "Could not read or write a file: [Errno 28]"),
    ):

        def fail(self, cfg, on_step=None, error=error):
            raise error

        monkeypatch.setattr(VideoP2P, "run", fail)
        with pytest.raises(FormError, match=re.escape(says)):
            session.run(form, None, EXAMPLE, None)
