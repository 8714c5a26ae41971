import pytest
import torch

from videop2p.config import OptionError
from videop2p.control.controller import ControlPlan, EditController, Layout, TargetEdit
from videop2p.control.prompts import word_indices
from videop2p.editing import EditConfig, edit, reconstruct
from videop2p.inversion import InversionConfig, invert
from videop2p.latents import encode_prompts
from videop2p.models.t2s import T2SModel

SRC = "a red circle moving on the grass"
STEPS = 5


def _inverted(comps, frames=3, h=8, w=8, method="fast", frame_mode="first"):
    model = T2SModel.from_image_unet(comps.unet, frame_mode)
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(1, frames, 4, h, w, generator=g) * 0.5
    cond, empty = encode_prompts(comps, [SRC]), encode_prompts(comps, [""])
    inv = invert(model, comps.scheduler, z0, cond, empty, InversionConfig(method=method, steps=STEPS, progress=False))
    return model, inv


@pytest.mark.parametrize("windows", [{"cross_replace": 1.0, "self_replace": 1.0}, {}])  # full, official
def test_same_prompt_without_decoupled_guidance_reproduces_the_reconstruction(tiny, windows):
    """An identity edit guided by null-text's embeddings is its reconstruction, whatever the windows
    (docs/bundled_layout.md measures it on the suite); with decoupled guidance (official) it is not."""
    model, inv = _inverted(tiny, method="null-text")
    rec = reconstruct(model, tiny, inv, SRC)
    out = edit(model, tiny, inv, SRC, [SRC], EditConfig(decoupled=False, progress=False, **windows)).latents
    torch.testing.assert_close(out[0], rec[0], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out[1], rec[0], atol=1e-4, rtol=1e-4)
    official = edit(model, tiny, inv, SRC, [SRC], EditConfig(progress=False, **windows)).latents
    assert (official[1] - rec[0]).abs().max() > 1e-2  # the target guided by the plain empty prompt drifts


@pytest.mark.parametrize("method", ["null-text", "direct"])
def test_a_source_on_its_kept_path_edits_as_a_sampled_one_with_a_row_less(tiny, method):
    model, inv = _inverted(tiny, method=method)
    assert inv.trajectory.shape == (STEPS + 1, *inv.latent_T.shape)
    c = EditConfig(blend=("red", "blue"), decoupled=method == "direct", progress=False)
    target = "a blue circle moving on the grass"
    kept = edit(model, tiny, inv, SRC, [target], c)
    inv.trajectory, path = None, inv.trajectory  # the source sampled under its own guidance instead
    sampled = edit(model, tiny, inv, SRC, [target], c)
    if method == "null-text":  # the optimisation's own sampling is what the source branch computes
        torch.testing.assert_close(sampled.latents[0], path[0][0], atol=1e-4, rtol=1e-4)  # batching rounds apart
        torch.testing.assert_close(kept.latents, sampled.latents, atol=1e-4, rtol=1e-4)
    else:  # PnP Inversion puts the source back onto the path whatever it computed
        torch.testing.assert_close(kept.latents[0], path[0][0])
    assert kept.counts["edit"] == STEPS * 3 and sampled.counts["edit"] == STEPS * 4


@pytest.mark.parametrize("method", ["fast", "null-text"])
def test_probabilities_only_where_read_edit_as_probabilities_everywhere(tiny, method):
    """Fused attention in every layer and step whose maps nobody reads gives the edit that explicit
    probabilities in every controlled layer at every step give (the official code's way)."""
    model, inv = _inverted(tiny, frames=4, method=method)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # temporal layers start as identities (zero output); give them a say
        for n, p in model.unet.named_parameters():
            if ".temporal." in n and n.endswith("to_out.0.weight"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    targets = ["a blue circle moving on the grass", "a red circle moving on the sand"]
    edits = []
    for explicit in (False, True):
        c = EditConfig(self_replace=0.6, blend=("circle", "circle"), materialize_all=explicit, progress=False)
        edits.append(edit(model, tiny, inv, SRC, targets, c).latents)
    torch.testing.assert_close(edits[0], edits[1], atol=1e-4, rtol=1e-4)  # fused and explicit softmax round apart
    c = EditConfig(self_replace=0.0, blend=("circle", "circle"), progress=False)  # maps no longer follow
    assert not torch.allclose(edit(model, tiny, inv, SRC, targets, c).latents[1:], edits[0][1:], atol=1e-4)


def test_outside_the_blend_mask_targets_equal_the_source_at_every_step(tiny):
    model, inv = _inverted(tiny)
    with torch.no_grad():  # sharpen cross-attention so that maps differ across positions
        for n, p in model.unet.named_parameters():
            if n.endswith("attn2.to_k.weight"):
                p.mul_(30)
    seen = []

    def check(info):
        if info.mask is not None:
            outside = ~info.mask.expand(-1, -1, info.latents.shape[2], -1, -1)
            src = info.latents[:1].expand_as(info.latents[1:])
            assert torch.equal(info.latents[1:][outside], src[outside])
            seen.append((info.step, float(info.mask.float().mean())))

    c = EditConfig(blend=("circle", "square"), threshold=0.9, progress=False)
    res = edit(model, tiny, inv, SRC, ["a red square moving on the grass"], c, callback=check)
    assert [s for s, _ in seen] == list(range(1, STEPS))  # from int(0.2 * 5) = 1 on
    assert 0 < seen[-1][1] < 1
    assert res.masks.shape == (1, 3, 8, 8)
    assert not torch.equal(res.latents[1], res.latents[0])


def _plan(mode, mapper, alphas=None, eq=None, window=2, steps=5, length=6):
    alpha = torch.zeros(steps + 1, length)
    alpha[:window] = 1
    return ControlPlan(targets=[TargetEdit(mode, mapper, alphas, eq, alpha, (0, 2))], store_layers=set())


def test_swap_replaces_maps_inside_the_window_only():
    length, heads, frames, n = 6, 2, 2, 4
    mapper = torch.eye(length)
    mapper[2, 2], mapper[2, 3], mapper[3, 3], mapper[3, 2] = 0.0, 1.0, 0.0, 1.0  # swap tokens 2 and 3
    ctl = EditController(_plan("swap", mapper, length=length))
    probs = torch.rand(2 * frames * heads, n, length).softmax(-1)
    for step, inside in ((0, True), (1, True), (2, False), (4, False)):
        ctl.begin_step(step, Layout(0, 2, 2))
        out = ctl.on_cross("x", probs.clone(), rows=2, heads=heads).reshape(2, frames, heads, n, length)
        src, tgt = probs.reshape(2, frames, heads, n, length)
        torch.testing.assert_close(out[0], src)
        if inside:
            torch.testing.assert_close(out[1], src[..., [0, 1, 3, 2, 4, 5]])
        else:
            torch.testing.assert_close(out[1], tgt)


def test_refine_keeps_new_tokens_and_reweight_scales_only_chosen_tokens():
    length, heads, frames, n = 6, 1, 2, 3
    index = torch.tensor([0, 1, 0, 2, 3, 4])
    alphas = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0, 1.0])
    eq = torch.ones(length)
    eq[3] = 2.0
    ctl = EditController(_plan("refine", index, alphas, eq, length=length))
    probs = torch.rand(2 * frames * heads, n, length)
    ctl.begin_step(0, Layout(0, 2, 2))
    out = ctl.on_cross("x", probs.clone(), rows=2, heads=heads).reshape(2, frames, heads, n, length)
    src, tgt = probs.reshape(2, frames, heads, n, length)
    torch.testing.assert_close(out[1][..., 2], tgt[..., 2])  # new token keeps its own map
    torch.testing.assert_close(out[1][..., 3], 2 * src[..., 2])  # aligned and reweighted x2
    torch.testing.assert_close(out[1][..., 4], src[..., 3])  # aligned, factor 1


def test_temporal_maps_follow_the_source_in_the_self_window():
    ctl = EditController(_plan("swap", torch.eye(6)))
    probs = torch.rand(3 * 4 * 2, 3, 3)  # rows=3 (1 uncond + 2 cond), N=4, heads=2, F=3
    ctl.begin_step(1, Layout(1, 2, 3))
    out = ctl.on_temporal(probs.clone(), rows=3, heads=2).reshape(3, 4, 2, 3, 3)
    p = probs.reshape(3, 4, 2, 3, 3)
    torch.testing.assert_close(out[2], p[1])
    torch.testing.assert_close(out[0], p[0])
    ctl.begin_step(2, Layout(1, 2, 3))
    torch.testing.assert_close(ctl.on_temporal(probs.clone(), 3, 2), probs)


def test_each_target_follows_the_source_in_its_own_self_window():
    alpha = torch.zeros(6, 6)
    windows = [(0, 2), (1, 4), (0, 0)]
    targets = [TargetEdit("swap", torch.eye(6), None, None, alpha, w) for w in windows]
    ctl = EditController(ControlPlan(targets=targets, store_layers=set()))
    probs = torch.rand(5 * 4 * 2, 3, 3)  # rows=5 (1 uncond + 4 cond), N=4, heads=2, F=3
    p = probs.reshape(5, 4, 2, 3, 3)
    for step in range(5):
        ctl.begin_step(step, Layout(1, 4, 5))
        out = ctl.on_temporal(probs.clone(), rows=5, heads=2).reshape(5, 4, 2, 3, 3)
        torch.testing.assert_close(out[:2], p[:2])  # the unconditional row and the source
        for k, (start, end) in enumerate(windows):
            torch.testing.assert_close(out[2 + k], p[1] if start <= step < end else p[2 + k])
        assert ctl.in_self_window() == (step < 4)


@pytest.mark.parametrize("frames,h,w", [(1, 8, 8), (3, 8, 8), (8, 8, 8), (17, 8, 8), (2, 8, 16)])
def test_any_frame_count_and_non_square(tiny, frames, h, w):
    model, inv = _inverted(tiny, frames, h, w)
    res = edit(
        model,
        tiny,
        inv,
        SRC,
        ["a blue circle moving on the grass"],
        EditConfig(blend=("circle", "circle"), progress=False),
    )
    assert res.latents.shape == (2, frames, 4, h, w)
    assert res.masks.shape == (1, frames, h, w)
    assert res.attention.shape[:2] == (2, frames)
    assert res.attention.shape[-1] == max(len(t) for t in res.tokens) < tiny.tokenizer.model_max_length


def test_two_targets_in_one_pass_equal_two_separate_runs(tiny):
    model, inv = _inverted(tiny)
    c = EditConfig(blend=("red", "blue"), progress=False)
    t1, t2 = "a blue circle moving on the grass", "a blue square moving on the grass"
    both = edit(model, tiny, inv, SRC, [t1, t2], c)
    one = edit(model, tiny, inv, SRC, [t1], c)
    two = edit(model, tiny, inv, SRC, [t2], c)
    # batched and separate calls round differently (other GEMM blocking): 3e-5 seen on an AVX-512 CPU
    torch.testing.assert_close(both.latents[1], one.latents[1], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(both.latents[2], two.latents[1], atol=1e-4, rtol=1e-4)
    assert both.counts["edit"] == STEPS * (3 + 2)  # fast source: no unconditional row; targets: one each


def test_each_target_blends_its_own_words_as_it_would_alone(tiny):
    """Per-target blend pairs (and a target without any) in one pass give what each target's run
    alone gives; a reweighted word applies to the targets whose prompt has it."""
    model, inv = _inverted(tiny)
    t1, t2 = "a blue circle moving on the grass", "a red circle moving on the snow"
    t3 = "a big red circle moving on the grass"
    masking = dict(threshold=0.9, mask_norm="range", progress=False)  # the random model's maps are flat
    c = EditConfig(blend=[("circle", "circle"), ("grass", "snow"), None], reweight={"big": 2.0}, **masking)
    each = edit(model, tiny, inv, SRC, [t1, t2, t3], c)
    one = edit(model, tiny, inv, SRC, [t1], EditConfig(blend=("circle", "circle"), **masking))
    two = edit(model, tiny, inv, SRC, [t2], EditConfig(blend=("grass", "snow"), **masking))
    three = edit(model, tiny, inv, SRC, [t3], EditConfig(reweight={"big": 2.0}, **masking))
    for k, alone in enumerate([one, two, three], start=1):
        torch.testing.assert_close(each.latents[k], alone.latents[1], atol=1e-4, rtol=1e-4)
    assert torch.equal(each.masks[0], one.masks[0]) and torch.equal(each.masks[1], two.masks[0])
    assert 0 < one.masks.float().mean() < 1 and 0 < two.masks.float().mean() < 1
    assert each.masks[2].all() and three.masks is None  # the target without words is edited everywhere
    shared = edit(model, tiny, inv, SRC, [t1, t2], EditConfig(blend=("circle", "circle"), **masking))
    assert not torch.allclose(shared.latents[2], two.latents[1], atol=1e-3)  # one pair for both: another edit


def test_a_change_whose_attention_lies_outside_the_blend_mask_is_reported():
    """A target whose changed word attends where its blend mask keeps the source is warned about; a
    changed word that attends inside the mask, or a target without blend words, is not."""
    from videop2p.editing import _outside_mask_warnings
    from videop2p.models.tokenizer import bundled_tokenizer

    tok = bundled_tokenizer()
    source = "a red circle moving on the grass"
    targets = ["a blue circle moving on the grass", "a red circle moving on the snow"]
    frames, side, length = 2, 8, 9
    masks = torch.zeros(2, frames, 16, 16, dtype=torch.bool)
    masks[:, :, 4:8, 4:8] = True  # the circle: a 2x2 block of the 8x8 maps
    attention = torch.full((3, frames, side, side, length), 0.01)
    blue, snow = word_indices(tok, targets[0], "blue")[0], word_indices(tok, targets[1], "snow")[0]
    attention[1, :, 2:4, 2:4, blue] = 1.0  # 'blue' on the circle
    attention[2, :, :, :, snow] = 1.0  # 'snow' everywhere
    shared = _outside_mask_warnings(tok, attention, masks, source, targets, [("circle", "circle")] * 2)
    assert len(shared) == 1 and shared[0].startswith("Target 2 changes 'snow', but 94% of that word's attention")
    own = [("circle", "circle"), None]
    assert _outside_mask_warnings(tok, attention, masks, source, targets, own) == []


def test_a_blend_mask_over_the_whole_frame_is_reported_but_one_that_keeps_the_object_is_not():
    """A background word's mask covers all but the object (95% of the frame around the demo's circle,
    grown by the max-pool): blending keeps the object, no warning. A flat map's mask covers everything."""
    from videop2p.editing import _full_mask_warnings

    masks = torch.ones(2, 4, 16, 16, dtype=torch.bool)
    masks[0, :, 7:10, 7:10] = False  # 9 of 256 cells kept: 96.5% covered
    pairs = [("grass", "snow"), ("grass", "snow")]
    found = _full_mask_warnings(masks, pairs, 0.3)
    assert len(found) == 1 and found[0].startswith("Local blending kept nothing of the source in target 2: the mask")
    assert _full_mask_warnings(masks, [("grass", "snow"), None], 0.3) == []  # a target without blend words


def test_a_target_that_asks_for_no_change_is_reported(tiny, caplog):
    """The source prompt again as a target (as written differently) is edited, with a warning kept
    with the result; a target that changes a word is not warned about, nor one whose word is reweighted
    (a reweighted word applies where it occurs)."""
    model, inv = _inverted(tiny)
    targets = ["A red circle moving on the grass.", "a red square moving on the grass"]
    with caplog.at_level("WARNING", logger="videop2p.editing"):
        res = edit(model, tiny, inv, SRC, targets, EditConfig(reweight={"square": 2.0}, progress=False))
    assert res.latents.shape[0] == 3 and torch.isfinite(res.latents).all()
    assert len(res.warnings) == 1 and res.warnings[0].startswith("Target 1 'A red circle moving on the grass.' asks")
    assert res.warnings[0] in caplog.text
    again = edit(model, tiny, inv, SRC, [SRC], EditConfig(reweight={"red": 2.0}, progress=False))
    assert again.warnings == []  # a reweighting is an edit


def test_null_text_embeddings_fitted_to_another_guidance_are_refused_before_the_edit(tiny):
    model, inv = _inverted(tiny, method="null-text")  # fitted to InversionConfig's default guidance
    fitted = InversionConfig().guidance
    with pytest.raises(ValueError, match=f"fitted to guidance {fitted:g} and the edit samples with 3"):
        edit(model, tiny, inv, SRC, ["a blue circle moving on the grass"], EditConfig(guidance=3.0, progress=False))
    assert torch.isfinite(
        edit(
            model, tiny, inv, SRC, ["a blue circle moving on the grass"], EditConfig(guidance=fitted, progress=False)
        ).latents
    ).all()
    model, fast = _inverted(tiny, method="fast")  # the source is sampled without guidance: any edit guidance
    assert torch.isfinite(
        edit(
            model, tiny, fast, SRC, ["a blue circle moving on the grass"], EditConfig(guidance=3.0, progress=False)
        ).latents
    ).all()


def test_words_to_subtract_without_blend_words_are_refused_before_the_edit(tiny):
    from videop2p.config import OptionError

    model, inv = _inverted(tiny)
    target = "a blue circle moving on the grass"
    with pytest.raises(
        OptionError, match=r"^edit.subtract: \['grass', 'grass'\] is given for the target without blend"
    ):
        edit(model, tiny, inv, SRC, [target], EditConfig(subtract=("grass", "grass"), progress=False))
    c = EditConfig(blend=("circle", "circle"), subtract=("grass", "grass"), progress=False)  # narrowing a mask
    assert edit(model, tiny, inv, SRC, [target], c).masks is not None


def test_clear_errors(tiny):
    model, inv = _inverted(tiny)
    with pytest.raises(OptionError, match="^edit.mode: swap needs prompts with the same number of words") as e:
        edit(model, tiny, inv, SRC, ["a big red circle moving on the grass"], EditConfig(mode="swap", progress=False))
    assert e.value.option == "mode"  # each app names it: --mode, the file's key, the editor's field
    with pytest.raises(OptionError, match=r"^edit.blend: 'dog' is not in the source prompt 'a red circle"):
        edit(
            model,
            tiny,
            inv,
            SRC,
            ["a blue circle moving on the grass"],
            EditConfig(blend=("dog", "circle"), progress=False),
        )
    with pytest.raises(OptionError, match=r"^edit.reweight: 'huge' is not in the target prompt .*'grass'\]\.$"):
        edit(
            model,
            tiny,
            inv,
            SRC,
            ["a blue circle moving on the grass"],
            EditConfig(reweight={"huge": 2.0}, progress=False),
        )
    with pytest.raises(
        OptionError, match=r"^edit.reweight: 'huge' is not in target 1's prompt 'a big .*other target\)\.$"
    ):
        targets = ["a big red circle moving on the grass", "a blue circle moving on the grass"]
        edit(model, tiny, inv, SRC, targets, EditConfig(reweight={"huge": 2.0}, progress=False))
    pairs = r"\[\[circle, circle\], \[grass, snow\]\] in a config file or EditConfig, .*--blend circle,grass"
    with pytest.raises(OptionError, match=rf"^edit.blend: 'blue' is not in target 2's prompt 'a big .*{pairs}.*\)\.$"):
        targets = ["a blue circle moving on the grass", "a big red circle moving on the grass"]
        edit(model, tiny, inv, SRC, targets, EditConfig(blend=("circle", "blue"), progress=False))
    with pytest.raises(ValueError, match=r"^edit.blend: gives 1 word pair for 2 target prompts; give one pair"):
        targets = ["a blue circle moving on the grass", "a big red circle moving on the grass"]
        edit(model, tiny, inv, SRC, targets, EditConfig(blend=[("circle", "circle")], progress=False))
    with pytest.raises(OptionError, match=r"^edit.blend: 'dog' is not in the source prompt 'a red [^(]*\]\.$"):
        targets = ["a blue circle moving on the grass", "a big red circle moving on the grass"]
        edit(model, tiny, inv, SRC, targets, EditConfig(blend=("dog", "circle"), progress=False))
    with pytest.raises(
        ValueError, match=r"^edit.cross_replace: 1.5 is not valid; expected a finite number from 0 to 1\.$"
    ):
        edit(
            model, tiny, inv, SRC, ["a blue circle moving on the grass"], EditConfig(cross_replace=1.5, progress=False)
        )
    with pytest.raises(
        ValueError, match=r"^edit.self_replace: -1 is not valid; expected a finite number from 0 to 1\.$"
    ):
        edit(
            model,
            tiny,
            inv,
            SRC,
            ["a blue circle moving on the grass"],
            EditConfig(self_replace=(0.2, -1), progress=False),
        )
    with pytest.raises(ValueError, match=r"^edit.threshold: 2 is not valid; expected a finite number from 0 to 1\.$"):
        targets = ["a blue circle moving on the grass", "a big red circle moving on the grass"]
        edit(model, tiny, inv, SRC, targets, EditConfig(threshold=[0.3, 2], progress=False))
    targets = ["a blue circle moving on the grass", "a big red circle moving on the grass"]
    windows = {"big": (0.0, 0.6)}  # the authors' `cross_replace_steps: {default_: .2, big: .6}`: one target's word
    c = EditConfig(cross_replace_words=windows, progress=False)
    assert edit(model, tiny, inv, SRC, targets, c).latents.shape[0] == 3
    with pytest.raises(OptionError, match=r"^edit.cross_replace_words: 'huge' is not in target 1's prompt .*\)\.$"):
        edit(model, tiny, inv, SRC, targets, EditConfig(cross_replace_words={"huge": 0.6}, progress=False))


@pytest.mark.parametrize("frame_mode", ["first", "sparse-causal"])
def test_optional_frame_attention_control_keeps_identity_edits_exact(tiny, frame_mode):
    model, inv = _inverted(tiny, method="null-text", frame_mode=frame_mode)
    rec = reconstruct(model, tiny, inv, SRC)
    c = EditConfig(cross_replace=1.0, self_replace=1.0, decoupled=False, control_frame_attention=True, progress=False)
    out = edit(model, tiny, inv, SRC, [SRC], c).latents
    torch.testing.assert_close(out[1], rec[0], atol=1e-4, rtol=1e-4)


def test_frame_maps_follow_the_source_when_asked():
    plan = _plan("swap", torch.eye(6))
    plan.control_frame_attention = True
    ctl = EditController(plan)
    ctl.begin_step(0, Layout(1, 2, 3))
    assert ctl.wants("x.attn1.processor")
    probs = torch.rand(3 * 2, 10, 4)
    out = ctl.on_frame(probs.clone(), rows=3, heads=2).reshape(3, 2, 10, 4)
    torch.testing.assert_close(out[2], probs.reshape(3, 2, 10, 4)[1])
    ctl.begin_step(3, Layout(1, 2, 3))
    assert not ctl.wants("x.attn1.processor")


def test_a_blend_mask_over_the_whole_frame_is_reported(tiny, caplog):
    model, inv = _inverted(tiny)
    c = EditConfig(blend=("circle", "square"), threshold=0.0, progress=False)  # every cell passes
    with caplog.at_level("WARNING", logger="videop2p.editing"):
        res = edit(model, tiny, inv, SRC, ["a red square moving on the grass"], c)
    assert res.masks.all()
    assert "'circle'/'square' covers 100% of the frames at threshold 0.0" in caplog.text
    assert len(res.warnings) == 1 and res.warnings[0] in caplog.text  # kept with the result
    caplog.clear()
    with caplog.at_level("WARNING", logger="videop2p.editing"):
        edit(model, tiny, inv, SRC, ["a red square moving on the grass"], EditConfig(progress=False))
    assert "Local blending" not in caplog.text  # no blending asked, nothing to report


def test_each_target_can_have_its_own_blend_threshold(tiny, caplog):
    model, inv = _inverted(tiny)
    square = "a red square moving on the grass"
    per_target = EditConfig(blend=("circle", "square"), threshold=[0.0, 1.0], progress=False)
    with caplog.at_level("WARNING", logger="videop2p.editing"):
        res = edit(model, tiny, inv, SRC, [square, square], per_target)
    assert res.masks[0].all() and not res.masks[1].any()  # 0 passes every cell, 1 none (maps scaled to at most 1)
    assert "in target 1: the mask of 'circle'/'square' covers 100% of the frames at threshold 0.0" in caplog.text
    assert "in target 2" not in caplog.text and "one per target, comma-separated" in caplog.text
    alone = edit(model, tiny, inv, SRC, [square], EditConfig(blend=("circle", "square"), threshold=1.0, progress=False))
    assert torch.equal(alone.masks[0], res.masks[1])  # the same mask as the run of that target alone
    assert torch.allclose(alone.latents[1], res.latents[2], atol=1e-5)
    same = edit(
        model,
        tiny,
        inv,
        SRC,
        [square, square],
        EditConfig(blend=("circle", "square"), threshold=[0.6, 0.6], progress=False),
    )
    scalar = edit(
        model, tiny, inv, SRC, [square, square], EditConfig(blend=("circle", "square"), threshold=0.6, progress=False)
    )
    assert torch.equal(same.masks, scalar.masks) and torch.equal(same.latents, scalar.latents)
    with pytest.raises(ValueError, match="gives 3 thresholds for 2 target prompts"):
        edit(model, tiny, inv, SRC, [square, square], EditConfig(threshold=[0.1, 0.2, 0.3], progress=False))


def test_each_target_can_have_its_own_windows(tiny):
    model, inv = _inverted(tiny)
    blue, square = "a blue circle moving on the grass", "a green circle moving on the grass"
    windows = {"cross_replace": [(0.0, 0.8), (0.2, 0.4)], "self_replace": [(0.0, 0.2), (0.4, 1.0)]}
    res = edit(model, tiny, inv, SRC, [blue, square], EditConfig(blend=("circle", "circle"), progress=False, **windows))
    for k, target in enumerate((blue, square)):  # each target as the run of it alone with its windows
        own = {name: value[k] for name, value in windows.items()}
        alone = edit(model, tiny, inv, SRC, [target], EditConfig(blend=("circle", "circle"), progress=False, **own))
        assert torch.allclose(alone.latents[1], res.latents[1 + k], atol=1e-4)  # batched with another target
        assert torch.equal(alone.masks[0], res.masks[k])
    shared = edit(model, tiny, inv, SRC, [blue, square], EditConfig(blend=("circle", "circle"), progress=False))
    for k in (1, 2):  # the windows matter, to each target
        assert (shared.latents[k] - res.latents[k]).abs().max() > 0.05
    same = EditConfig(blend=("circle", "circle"), cross_replace=[(0.0, 0.2)] * 2, self_replace=[0.5, (0.0, 0.5)])
    same.progress = False
    assert torch.equal(edit(model, tiny, inv, SRC, [blue, square], same).latents, shared.latents)
    with pytest.raises(ValueError, match="cross_replace: gives 3 windows for 2 target prompts"):
        edit(model, tiny, inv, SRC, [blue, square], EditConfig(cross_replace=[0.1, 0.2, (0, 0.3)], progress=False))


def test_the_kept_maps_are_one_sum_that_masks_as_the_official_per_layer_average():
    """One sum over the stored layers, on the prompts' token positions only, gives the official
    LocalBlend's masks (each layer's maps averaged over the steps, word maps averaged over the layers)
    and the same averaged maps on the positions it keeps."""
    torch.manual_seed(0)
    frames, heads, side, length, kept = 3, 2, 8, 10, 6
    plan = _plan("swap", torch.eye(length), length=length)
    plan.store_layers, plan.map_tokens = {"a", "b"}, kept
    ctl = EditController(plan)
    raw = {"a": [], "b": []}
    for step in range(3):
        ctl.begin_step(step, Layout(0, 2, 2))
        for name in raw:
            probs = (4 * torch.randn(2 * frames * heads, side * side, length)).softmax(-1)
            ctl.on_cross(name, probs, rows=2, heads=heads)
            raw[name].append(probs.reshape(2, frames, heads, side * side, length).mean(2))
    tokens = torch.zeros(2, length)
    tokens[0, 2], tokens[1, 3] = 1.0, 1.0
    per_layer = [torch.stack(maps).mean(0) for maps in raw.values()]  # (P, F, N, L) each
    words = torch.stack([(m * tokens[:, None, None, :]).sum(-1) for m in per_layer]).mean(0)  # (P, F, N)
    pooled = torch.nn.functional.max_pool2d(words.reshape(2 * frames, 1, side, side), 3, 1, padding=1)
    scaled = torch.nn.functional.interpolate(pooled, size=(16, 16))
    scaled = scaled / scaled.amax(dim=(2, 3), keepdim=True)
    expected = (scaled > 0.7).reshape(2, frames, 1, 16, 16)
    assert 0 < expected.sum() < expected.numel()
    assert torch.equal(ctl.blend_mask((16, 16), tokens, 0.7), expected)
    assert ctl.sums.shape == (2, frames, side * side, kept)
    torch.testing.assert_close(ctl.averaged_maps(), torch.stack(per_layer).mean(0)[..., :kept])


def _controller_with_map(word_map: torch.Tensor, norm: str) -> EditController:
    """A controller whose one stored layer holds `word_map` (y, x) on token 1 of a source and a target."""
    from videop2p.control.controller import MaskNorm

    plan = _plan("swap", torch.eye(6))
    plan.mask_norm = MaskNorm(norm)
    ctl = EditController(plan)
    maps = torch.zeros(2, 1, word_map.numel(), 6)  # (P, F, N, L)
    maps[:, 0, :, 1] = word_map.flatten()
    ctl._store(maps)
    return ctl


def test_range_normalised_masks_equal_the_official_ones_where_maps_fall_to_zero():
    torch.manual_seed(0)
    word_map = torch.rand(8, 8)
    word_map[:3, :3] = 0.0  # the map reaches zero, after the 3x3 max-pool too: min-max and max scaling agree
    tokens = torch.zeros(2, 6)
    tokens[:, 1] = 1
    official = _controller_with_map(word_map, "max").blend_mask((8, 8), tokens, 0.3)
    ranged = _controller_with_map(word_map, "range").blend_mask((8, 8), tokens, 0.3)
    assert torch.equal(official, ranged)


def test_range_normalised_masks_find_the_object_on_a_flat_map():
    word_map = torch.full((8, 8), 0.65)  # the toy model's flat maps: never below 65% of the peak
    word_map[2:4, 2:4] = 1.0  # the object
    tokens = torch.zeros(2, 6)
    tokens[:, 1] = 1
    official = _controller_with_map(word_map, "max").blend_mask((8, 8), tokens, 0.3)
    assert official.all()  # local blending would keep nothing of the source
    ranged = _controller_with_map(word_map, "range").blend_mask((8, 8), tokens, 0.3)[0, 0, 0]
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[1:5, 1:5] = True  # the object grown by the official 3x3 max-pool
    assert torch.equal(ranged, expected)


def test_an_edit_that_stops_being_finite_names_its_step_and_what_keeps_it_finite(tiny):
    from videop2p.sampling import DivergedError

    model, inv = _inverted(tiny)
    c = EditConfig(guidance=1e38, progress=False)
    with pytest.raises(
        DivergedError, match=f"The edit diverged at step \\d+ of {STEPS}: .*lower guidance than 1e\\+38"
    ):
        edit(model, tiny, inv, SRC, ["a blue circle moving on the grass"], c)


SD_LEVELS = {  # Stable Diffusion's UNet layout: three downsamplers, cross-attention at the first three levels
    "block_out_channels": (32, 32, 64, 64),
    "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    "attention_head_dim": (2, 2, 4, 4),
}


def test_a_size_the_unets_levels_leave_odd_runs_and_maps_each_level_at_its_own_size(tmp_path):
    """Any multiple of the VAE's factor runs, as diffusers' pipelines take any multiple of 8 for SD: a latent of
    5x12 cells is 3x6, 2x3 and 1x2 at the deeper levels (ceil(n / 2) per downsampler), and the blend masks and
    attention maps read from a level are laid out at that level's own size."""
    from videop2p.control.controller import map_size
    from videop2p.pipeline import VideoP2P
    from videop2p.testing import dummy_components

    comps = dummy_components(unet_overrides=SD_LEVELS)
    factor = comps.info.vae_scale_factor
    assert (comps.info.size_multiple, comps.info.size_step) == (factor, 8 * factor)
    conv = torch.nn.Conv2d(1, 1, 3, stride=2, padding=1)  # a diffusers Downsample2D's convolution
    for h, w in [(5, 12), (7, 13), (1, 9), (27, 48), (16, 16)]:
        x = torch.zeros(1, 1, h, w)
        for _ in range(4):
            assert map_size(x.shape[-2] * x.shape[-1], (h, w)) == x.shape[-2:]
            x = conv(x)
    with pytest.raises(ValueError, match="an attention map of 7 cells is at no level of a 5x12 latent"):
        map_size(7, (5, 12))

    vp = VideoP2P(comps, None)
    frames = torch.randint(0, 256, (3, 30, 60, 3), generator=torch.Generator().manual_seed(0)).numpy().astype("uint8")
    clip = vp.clip_from_frames(frames, width=12 * factor, height=5 * factor)  # latent 5x12
    model, _ = vp.tune(clip, SRC, {"steps": 1, "progress": False})
    inversion, _ = vp.invert(model, clip, SRC, {"method": "fast", "steps": 3, "progress": False})
    for side, level in [(2, (3, 6)), (1, (2, 3))]:  # the masks from the second level, then the third
        out, _ = vp.edit(
            model,
            inversion,
            SRC,
            ["a blue circle moving on the grass"],
            {"blend": ("circle", "circle"), "mask_side": side, "progress": False},
        )
        assert out.edits[0].shape == (3, 5 * factor, 12 * factor, 3)
        assert out.result.masks.shape == (1, 3, 5, 12) and out.result.attention.shape[2:4] == level


def test_what_the_api_returns_shows_its_arrays_by_shape_on_one_line(tiny, tmp_path):
    """In a notebook, a clip, an inversion and an edit show what they hold, not every pixel of every frame."""
    import dataclasses

    from videop2p.io.video import read_video
    from videop2p.io.writing import write_frames
    from videop2p.pipeline import VideoP2P
    from videop2p.store.workspace import Workspace

    vp = VideoP2P(tiny, Workspace(tmp_path / "ws"))
    factor = tiny.info.vae_scale_factor
    frames = torch.randint(0, 256, (3, 30, 60, 3), generator=torch.Generator().manual_seed(0)).numpy().astype("uint8")
    clip = vp.clip_from_frames(frames, width=12 * factor, height=5 * factor)
    model, _ = vp.tune(clip, SRC, {"steps": 1, "progress": False})
    inversion, _ = vp.invert(model, clip, SRC, {"method": "null-text", "steps": 3, "inner_steps": 1, "progress": False})
    out, _ = vp.edit(model, inversion, SRC, ["a blue circle moving on the grass"], {"progress": False})
    write_frames(frames, tmp_path / "frames")
    video = read_video(str(tmp_path / "frames"), 0, 2, 1)
    h, w, c = 5 * factor, 12 * factor, tiny.info.latent_channels
    shown = {
        f"frames=ndarray(3, {h}, {w}, 3) uint8": clip,
        "frames=ndarray(2, 30, 60, 3) uint8": video,
        f"latent_T=Tensor(1, 3, {c}, 5, 12) float32": inversion,
        f"trajectory=Rows(4, 1, 3, {c}, 5, 12) float32": inversion,
        f"edits=[ndarray(3, {h}, {w}, 3) uint8]": out,
        "masks=None": out.result,
    }
    for part, result in shown.items():
        text = repr(result)
        assert part in text and "\n" not in text and len(text) < 2000, text[:300]
        assert all(f"{f.name}=" in text for f in dataclasses.fields(result))  # every field named
    assert repr(vp) == (
        f"VideoP2P(model={tiny.info.identity!r}, device='cpu', dtype='float32', workspace={str(tmp_path / 'ws')!r})"
    )
