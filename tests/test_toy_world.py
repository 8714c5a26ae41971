import json

import numpy as np
import pytest
from typer.testing import CliRunner

from videop2p.cli import app
from videop2p.testing import assert_one_line_error
from videop2p.toy.checker import read_image
from videop2p.toy.world import (
    Background,
    Color,
    Motion,
    Shape,
    Size,
    ToyClipSpec,
    ToyObject,
    caption_for,
    parse_caption,
    random_spec,
    render_clip,
)


def test_rendering_is_deterministic_from_the_seed():
    spec = ToyClipSpec([ToyObject(Shape.TRIANGLE, Color.PURPLE)], Background.SAND, Motion.BOUNCE, frames=5, seed=7)
    a, b = render_clip(spec), render_clip(spec)
    np.testing.assert_array_equal(a.frames, b.frames)
    other = render_clip(ToyClipSpec(spec.objects, spec.background, spec.motion, frames=5, seed=8))
    assert not np.array_equal(a.frames, other.frames)
    assert a.frames.shape == (5, 64, 64, 3) and a.masks.shape == (5, 1, 64, 64)


@pytest.mark.parametrize("motion", list(Motion))
def test_masks_match_the_drawn_object_and_it_moves(motion):
    spec = ToyClipSpec([ToyObject(Shape.SQUARE, Color.BLUE, Size.SMALL)], Background.SNOW, motion, frames=6, seed=3)
    clip = render_clip(spec)
    target = np.array([35, 80, 235])
    for f in range(6):
        dist = np.abs(clip.frames[f].astype(int) - target).sum(-1)
        drawn = dist < 30
        mask = clip.masks[f, 0]
        assert (drawn == mask).mean() > 0.99
    assert np.abs(np.diff(clip.centers[:, 0, 0])).sum() > 5


def test_two_objects_and_any_frame_count():
    spec = ToyClipSpec(
        [ToyObject(Shape.CIRCLE, Color.RED), ToyObject(Shape.SQUARE, Color.YELLOW, Size.SMALL)], frames=1, seed=0
    )
    clip = render_clip(spec)
    assert clip.masks.shape == (1, 2, 64, 64)
    assert not (clip.masks[0, 0] & clip.masks[0, 1]).any()
    objects, bg = parse_caption(clip.caption)
    assert bg == spec.background and [(o.shape, o.color) for o in objects] == [(o.shape, o.color) for o in spec.objects]


def test_captions_parse_back_to_parameters():
    rng = np.random.default_rng(0)
    for _ in range(50):
        spec = random_spec(rng)
        for with_size in (False, True):
            for verb in ("moving", ""):
                objects, bg = parse_caption(caption_for(spec.objects, spec.background, verb, with_size))
                assert bg == spec.background
                assert [(o.shape, o.color) for o in objects] == [(o.shape, o.color) for o in spec.objects]
                if with_size:
                    assert objects == spec.objects


def test_checker_reads_rendered_frames():
    rng = np.random.default_rng(1)
    n, right = 0, [0, 0, 0]
    for _ in range(100):
        spec = random_spec(rng, frames=3)
        clip = render_clip(spec)
        for f in range(3):
            for mask in (None, clip.masks[f, 0]):
                r = read_image(clip.frames[f], mask)
                n += 1
                right[0] += r.shape == spec.objects[0].shape
                right[1] += r.color == spec.objects[0].color
                right[2] += r.background == spec.background
    assert right[1] == n and right[2] == n
    assert right[0] >= 0.98 * n


def test_render_command_writes_clip_masks_and_json(tmp_path):
    result = CliRunner().invoke(
        app, ["toy", "render", str(tmp_path / "c"), "--shape", "triangle", "--color", "green", "--frames", "4"]
    )
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "c" / "clip.json").read_text())
    assert meta["caption"] == "a green triangle moving on the grass"
    assert len(list((tmp_path / "c" / "masks").iterdir())) == 4
    assert (tmp_path / "c" / "clip.mp4").stat().st_size > 0
    for flag, value, said in (  # named by the flag, as every other command's choices are
        ("--color", "pink", "--color 'pink' is not one of red, orange, yellow, green, blue, purple."),
        ("--object-size", "huge", "--object-size 'huge' is not one of small, big."),
        ("--shape", "circel", "--shape 'circel' is not one of circle, square, triangle (did you mean 'circle'?)."),
    ):
        bad = CliRunner().invoke(app, ["toy", "render", str(tmp_path / "d"), flag, value])
        assert bad.exit_code == 2 and bad.output == f"error: {said}\n", bad.output
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--size", "100000"], "--size 100000 is not valid; expected a whole number from 16 to 1024."),
        (["--size", "8"], "--size 8 is not valid; expected a whole number from 16 to 1024."),
        (["--seed", "-1"], "--seed -1 is not valid; expected a whole number >= 0."),
        (["--frames", "0"], "--frames 0 is not valid; expected a whole number >= 1."),
        (["--frames", "300", "--size", "1024"], "300 frames of 1024x1024 pixels are too many"),
    ],
)
def test_render_command_refuses_sizes_it_cannot_hold_in_one_line(tmp_path, flags, needle):
    result = CliRunner().invoke(app, ["toy", "render", str(tmp_path / "c"), *flags])
    assert_one_line_error(result, needle)
    assert not (tmp_path / "c").exists()
