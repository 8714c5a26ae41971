"""Phase 3 of the toy model: TokenCompose's token loss grounds caption words on their regions."""

import copy
import json

import pytest
import torch

from videop2p.models.loading import load_components, save_pretrained_folder
from videop2p.models.schedulers import make_scheduler
from videop2p.toy.grounding import (
    GroundingConfig,
    MapStore,
    attention_share,
    ground_processors,
    ground_toy_model,
    grounding_step,
    render_grounding_data,
    token_loss,
    word_regions,
)


def test_token_loss_is_zero_for_grounded_maps_and_the_missed_share_squared_for_flat_ones():
    regions = torch.zeros(1, 3, 4, 4)
    regions[0, 1, :2, :2] = 1.0  # token 1 names the top-left quarter
    supervised = torch.tensor([[False, True, False]])
    grounded = torch.zeros(1, 16, 3)
    grounded[0, :, 0] = 1.0
    grounded[0, [0, 1, 4, 5], 1] = 1.0  # all of token 1's attention inside its region
    assert token_loss([grounded], regions, supervised) == pytest.approx(0.0)
    assert attention_share([grounded], regions, supervised) == pytest.approx(1.0)
    flat = torch.full((1, 16, 3), 1 / 3)
    assert token_loss([flat], regions, supervised) == pytest.approx(0.75**2)  # 3/4 of the attention is outside
    coarse = torch.full((1, 4, 3), 1 / 3)  # a 2x2 layer sees the same regions pooled
    assert attention_share([coarse], regions, supervised) == pytest.approx(0.25)


def test_object_words_get_the_object_and_background_words_the_rest(tiny):
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[:, 1:3, 1:3] = True
    regions, supervised = word_regions(tiny.tokenizer, ["a big red circle moving on the grass", ""], masks)
    tokens = tiny.tokenizer.convert_ids_to_tokens(tiny.tokenizer("a big red circle moving on the grass").input_ids)
    named = {t.removesuffix("</w>") for t, s in zip(tokens, supervised[0].tolist(), strict=False) if s}
    assert named == {"big", "red", "circle", "grass"}
    grass = tokens.index("grass</w>")
    assert torch.equal(regions[0, grass].bool(), ~masks[0])
    assert torch.equal(regions[0, tokens.index("red</w>")].bool(), masks[0])
    assert not supervised[1].any()  # an empty caption supervises nothing


def test_the_token_loss_moves_attention_into_the_regions(tiny):
    torch.manual_seed(0)
    unet, text_encoder = copy.deepcopy(tiny.unet).train(), copy.deepcopy(tiny.text_encoder).train()
    store = MapStore()
    ground_processors(unet, store)
    images, masks, specs = render_grounding_data(4, 16, seed=0)
    with torch.no_grad():
        post = tiny.vae.encode(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1).latent_dist
    batch = {
        "mean": post.mean,
        "std": post.std * 0,
        "captions": [s.caption() for s in specs],
        "masks": torch.from_numpy(masks),
    }
    params = [p for m in (unet, text_encoder) for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=3e-3)
    shares = []
    for _ in range(12):
        _, ground, share = grounding_step(
            unet, text_encoder, tiny.tokenizer, make_scheduler(), store, batch, torch.Generator().manual_seed(0)
        )
        shares.append(share)
        opt.zero_grad()
        ground.backward()
        opt.step()
    cross_layers = [n for n in unet.attn_processors if n.endswith("attn2.processor")]
    assert len(store.maps) == len(cross_layers) == 4  # every cross-attention layer handed over its maps
    assert shares[-1] > shares[0] + 0.1, shares


def test_grounding_resumes_from_its_checkpoint_and_writes_a_loadable_model(tiny, tmp_path):
    init = save_pretrained_folder(tiny, tmp_path / "init")
    cfg = GroundingConfig(steps=2, batch_size=2, dataset_size=6, checkpoint_every=1, warmup=1)
    ground_toy_model(init, tmp_path / "run", cfg)
    cfg.steps = 3
    model = ground_toy_model(init, tmp_path / "run", cfg)
    history = json.loads((tmp_path / "run" / "grounding_history.json").read_text())
    assert [h["step"] for h in history] == [1, 2, 3]  # the second run went on from step 2
    comps = load_components(model)
    assert comps.vae.config.scaling_factor == tiny.vae.config.scaling_factor
    changed = any(not torch.equal(a, b) for a, b in zip(comps.unet.parameters(), tiny.unet.parameters(), strict=True))
    assert changed


def test_grounding_from_a_folder_that_holds_no_model_writes_nothing(tmp_path):
    (tmp_path / "init").mkdir()
    with pytest.raises(FileNotFoundError, match="init"):
        ground_toy_model(tmp_path / "init", tmp_path / "out")
    assert not (tmp_path / "out").exists()
