import pytest
import torch

from videop2p.models.attention import FrameAttentionMode
from videop2p.models.t2s import T2SModel


def _video(f, h=8, w=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, f, 4, h, w, generator=g), torch.randn(1, 77, 32, generator=g)


@torch.no_grad()
def test_frame0_equals_image_model_before_tuning(tiny):
    model = T2SModel.from_image_unet(tiny.unet)
    x, text = _video(4)
    out = model(x, 500, text)
    ref = tiny.unet(x[:, 0], 500, encoder_hidden_states=text).sample
    torch.testing.assert_close(out[:, 0], ref, atol=1e-5, rtol=1e-4)


@torch.no_grad()
def test_frames_depend_on_frame0_and_themselves_only(tiny):
    model = T2SModel.from_image_unet(tiny.unet)
    x, text = _video(4)
    base = model(x, 400, text)
    x2 = x.clone()
    x2[:, 2] += 1.0  # change frame j=2
    out = model(x2, 400, text)
    for i in (1, 3):
        torch.testing.assert_close(out[:, i], base[:, i], atol=1e-5, rtol=0)
    assert (out[:, 2] - base[:, 2]).abs().max() > 1e-3
    x0 = x.clone()
    x0[:, 0] += 1.0  # change frame 0: every frame moves
    out0 = model(x0, 400, text)
    for i in range(4):
        assert (out0[:, i] - base[:, i]).abs().max() > 1e-3


@torch.no_grad()
def test_temporal_attention_mixes_frames_once_trained(tiny):
    model = T2SModel.from_image_unet(tiny.unet)
    for n, p in model.unet.named_parameters():
        if ".temporal.attn.to_out.0" in n:
            p.normal_(0, 0.1)
    x, text = _video(4)
    base = model(x, 400, text)
    x2 = x.clone()
    x2[:, 2] += 1.0
    assert (model(x2, 400, text)[:, 1] - base[:, 1]).abs().max() > 1e-4


@torch.no_grad()
def test_sparse_causal_attends_to_first_and_previous_frame(tiny):
    model = T2SModel.from_image_unet(tiny.unet, FrameAttentionMode.SPARSE_CAUSAL)
    x, text = _video(4)
    base = model(x, 400, text)
    x2 = x.clone()
    x2[:, 2] += 1.0
    out = model(x2, 400, text)
    assert (out[:, 3] - base[:, 3]).abs().max() > 1e-3  # frame 3 reads frame 2
    for i in (0, 1):  # causal: earlier frames never read later ones
        torch.testing.assert_close(out[:, i], base[:, i], atol=1e-5, rtol=0)


@pytest.mark.parametrize("frames,h,w", [(1, 8, 8), (2, 8, 8), (8, 8, 8), (17, 8, 8), (3, 8, 16)])
@torch.no_grad()
def test_any_frame_count_and_non_square_latents(tiny, frames, h, w):
    model = T2SModel.from_image_unet(tiny.unet)
    x, text = _video(frames, h, w)
    out = model(x, 10, text)
    assert out.shape == x.shape and torch.isfinite(out).all()
    ref = tiny.unet(x[:, 0], 10, encoder_hidden_states=text).sample
    torch.testing.assert_close(out[:, 0], ref, atol=1e-5, rtol=1e-4)


def test_inflation_reuses_weights_and_leaves_the_image_unet_alone(tiny):
    before = {k: v.clone() for k, v in tiny.unet.state_dict().items()}
    model = T2SModel.from_image_unet(tiny.unet)
    after = tiny.unet.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    video_state = model.unet.state_dict()
    assert torch.equal(
        video_state["down_blocks.0.attentions.0.transformer_blocks.0.block.attn1.to_q.weight"],
        before["down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight"],
    )
    temporal_out = [v for k, v in video_state.items() if ".temporal.attn.to_out.0" in k]
    assert temporal_out and all((v == 0).all() for v in temporal_out)


def test_trainable_set_is_queries_and_temporal_layers(tiny):
    model = T2SModel.from_image_unet(tiny.unet)
    names = set(model.trainable_parameters())
    n_blocks = sum(1 for n in names if n.endswith("temporal.norm.weight"))
    assert n_blocks == 4
    assert sum(n.endswith("attn1.to_q.weight") for n in names) == n_blocks
    assert sum(n.endswith("attn2.to_q.weight") for n in names) == n_blocks
    assert not any("to_k" in n and ".temporal." not in n for n in names)


def test_v_prediction_and_sd2_style_config_inflates(tiny_v):
    model = T2SModel.from_image_unet(tiny_v.unet)
    assert tiny_v.unet.config.use_linear_projection
    x, text = _video(3)
    with torch.no_grad():
        out = model(x, 10, text)
    assert out.shape == x.shape


def test_processor_names_are_the_single_place_of_choice(tiny):
    model = T2SModel.from_image_unet(tiny.unet)
    chosen = []

    def choose(name):
        chosen.append(name)
        return None

    procs = model.set_processors(choose)
    assert set(chosen) == set(model.unet.attn_processors) == set(procs)
    kinds = {type(p).__name__ for p in procs.values()}
    assert kinds == {"FrameAttnProcessor", "CrossAttnProcessor", "TemporalAttnProcessor"}


def test_temporal_init_is_seeded_and_leaves_the_global_rng_alone(tiny):
    torch.manual_seed(1)
    state = torch.random.get_rng_state()
    a = T2SModel.from_image_unet(tiny.unet).trainable_parameters()
    assert torch.equal(torch.random.get_rng_state(), state)
    torch.manual_seed(2)  # a different global RNG state gives the same model
    b = T2SModel.from_image_unet(tiny.unet).trainable_parameters()
    assert all(torch.equal(a[k], b[k]) for k in a)
    temporal = [k for k in a if ".temporal." in k and k.endswith("to_q.weight")]
    assert temporal and a[temporal[0]].abs().sum() > 0  # random, not zero, before tuning


@torch.no_grad()
@pytest.mark.parametrize("mode", list(FrameAttentionMode))
def test_attention_slicing_gives_the_same_output(tiny, mode):
    model = T2SModel.from_image_unet(tiny.unet, mode)
    for p in model.trainable_parameters().values():  # temporal layers active, not zero
        p.add_(0.05 * torch.randn_like(p))
    z, text = _video(3, 8, 6)
    full = model(z, 10, text)
    model.set_attention_slicing(5)  # fewer queries than any layer has
    assert all(getattr(p, "query_chunk", 5) == 5 for p in model.unet.attn_processors.values())
    assert torch.allclose(model(z, 10, text), full, atol=1e-5)
    with pytest.raises(ValueError, match="query_chunk"):
        model.set_attention_slicing(0)


@torch.no_grad()
def test_clip_group_norm_takes_statistics_over_the_clip_and_equals_the_image_model_on_one_frame(tiny):
    from videop2p.config import GroupNormMode
    from videop2p.models.t2s import ClipGroupNorm

    norm = ClipGroupNorm(4, 8)
    torch.nn.init.normal_(norm.weight)
    x = torch.randn(2 * 3, 8, 5, 5)  # (B*F, C, H, W), B=2, F=3
    norm.num_frames = 3
    video = x.reshape(2, 3, 8, 5, 5).permute(0, 2, 1, 3, 4)  # (B, C, F, H, W), as the authors' resnets see it
    want = torch.nn.functional.group_norm(video, 4, norm.weight, norm.bias, norm.eps)
    torch.testing.assert_close(norm(x), want.permute(0, 2, 1, 3, 4).reshape(6, 8, 5, 5))
    clip = T2SModel.from_image_unet(tiny.unet, group_norm=GroupNormMode.CLIP)
    x, text = _video(1)
    ref = tiny.unet(x[:, 0], 500, encoder_hidden_states=text).sample
    torch.testing.assert_close(clip(x, 500, text)[:, 0], ref, atol=1e-5, rtol=1e-4)
    x, text = _video(3)
    assert not torch.allclose(clip(x, 500, text), T2SModel.from_image_unet(tiny.unet)(x, 500, text), atol=1e-4)
