import numpy as np

from videop2p.evaluation import EditKind, judge, make_suite
from videop2p.toy.world import COLOR_RGB, Color, render_clip


def test_suite_is_seeded_and_covers_every_edit_kind():
    a, b = make_suite(10, seed=3), make_suite(10, seed=3)
    assert [c.target for c in a] == [c.target for c in b]
    assert {c.kind for c in a} == set(EditKind)
    for c in a:
        assert c.source != c.target


def test_judge_gives_perfect_scores_to_the_ground_truth_and_fails_an_unedited_clip():
    case = next(c for c in make_suite(5, seed=1) if c.kind is EditKind.COLOR)
    clip = render_clip(case.spec)
    unedited = judge(case, clip, clip.frames, clip.frames)
    assert unedited["edit_success"] == 0.0
    assert unedited["background_psnr"] > 90 and unedited["reconstruction_psnr"] > 90
    assert abs(unedited["colour_jitter"]) < 0.5 and unedited["position_jitter"] < 0.5  # checker-found masks
    assert unedited["object_iou"] > 0.9
    edited = clip.frames.copy()
    edited[clip.masks[:, 0]] = COLOR_RGB[Color(case.want["color"])]
    perfect = judge(case, clip, edited, clip.frames)
    assert perfect["edit_success"] == 1.0 and perfect["background_psnr"] > 90
    broken = edited.copy()
    broken[:, :8] = 0  # damage the background
    assert judge(case, clip, broken, clip.frames)["background_psnr"] < 30


def test_an_edited_object_that_moved_is_not_a_success():
    case = next(c for c in make_suite(5, seed=1) if c.kind is EditKind.COLOR)
    clip = render_clip(case.spec)
    moved = clip.frames.copy()
    background = np.median(clip.frames[:, :2].reshape(-1, 3), axis=0).astype(np.uint8)
    moved[clip.masks[:, 0]] = background  # the object vanishes from its place...
    shifted = np.roll(clip.masks[:, 0], 20, axis=1)
    moved[shifted] = COLOR_RGB[Color(case.want["color"])]  # ...and reappears, recoloured, lower down
    result = judge(case, clip, moved, clip.frames)
    assert result["edit_success"] == 0.0 and result["object_iou"] < 0.5
    assert result["position_jitter"] >= 0.0
