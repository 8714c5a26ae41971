import json
from pathlib import Path

from videop2p.models.tokenizer import bundled_tokenizer

FIXTURE = Path(__file__).parent / "fixtures" / "tokenizer_ids.json"


def test_bundled_tokenizer_matches_open_clip_ids_on_every_prompt():
    ref = json.loads(FIXTURE.read_text())["ids"]
    tok = bundled_tokenizer()
    assert len(ref) >= 10
    for prompt, ids in ref.items():
        assert tok(prompt, truncation=False).input_ids == ids, prompt


def test_long_prompt_is_truncated_to_the_tokenizers_limit_with_end_token():
    ref = json.loads(FIXTURE.read_text())["ids"]
    tok = bundled_tokenizer()
    prompt = max(ref, key=lambda p: len(ref[p]))
    assert len(ref[prompt]) > 77
    got = tok(prompt, truncation=True, max_length=tok.model_max_length).input_ids
    assert tok.model_max_length == 77
    assert got == ref[prompt][:76] + [49407]


def test_known_ids_from_the_issue():
    tok = bundled_tokenizer()
    assert tok("a man is driving a motorbike in the forest").input_ids == [
        49406,
        320,
        786,
        533,
        4161,
        320,
        33341,
        530,
        518,
        4167,
        49407,
    ]
    spider = tok("a Spider-Man is driving a motorbike in the forest").input_ids
    assert spider[2:5] == [7622, 268, 786]
    assert len(tok) == 49408
