import logging

import pytest
import torch

from videop2p.config import OptionError
from videop2p.control.prompts import (
    EditMode,
    asks_no_change,
    changed_words,
    check_prompt_length,
    check_prompts_fit,
    choose_mode,
    equalizer,
    global_alignment,
    refinement_mapper,
    replacement_mapper,
    word_changes,
    word_indices,
)
from videop2p.models.tokenizer import bundled_tokenizer


@pytest.fixture(scope="module")
def tok():
    return bundled_tokenizer()


def test_changed_words_are_the_targets_replaced_and_added_words():
    assert changed_words("a rabbit is jumping on the grass", "a origami rabbit is jumping on the grass") == ["origami"]
    assert changed_words("a car is driving on the road", "a car is driving on the railway.") == ["railway"]
    assert changed_words("a man is driving", "a Spider-Man is driving") == ["spider-man"]
    assert changed_words("a red circle on the grass", "A red circle on the snow, snow") == ["snow"]  # each once
    assert changed_words("a big red circle", "a red circle") == [] == changed_words("a b", "a b")  # removals
    # an article that only agrees with a new word asks for nothing to be drawn
    assert changed_words("a rabbit is jumping", "an origami rabbit is jumping") == ["origami"]
    assert changed_words("a rabbit on a hill", "the rabbit on an orange hill") == ["orange"]


def test_word_changes_give_the_words_as_written_for_each_run_replaced_added_or_left_out():
    src = "a red circle moving on the grass"
    assert word_changes(src, "A blue circle moving on the grass.") == [("replace", ["red"], ["blue"])]
    assert word_changes(src, "a big red circle moving on the snow") == [
        ("insert", [], ["big"]),
        ("replace", ["grass"], ["snow"]),
    ]
    assert word_changes(src, "a circle moving on the grass") == [("delete", ["red"], [])]
    assert word_changes(src, src.upper()) == []


def test_a_target_asks_for_no_change_only_with_the_source_words_and_nothing_reweighted():
    src = "a red circle moving on the grass"
    assert asks_no_change(src, "A red circle moving on the grass.", {})  # case and punctuation aside
    assert asks_no_change(src, src, {"red": 1.0})  # a factor of 1 changes nothing
    assert not asks_no_change(src, src, {"red": 2.0})  # a reweighting is an edit
    assert not asks_no_change(src, src, {"red circle": 0.5, "grass": 1.0})  # of a phrase too
    assert not asks_no_change(src, "a red circle moving on the snow", {})
    assert not asks_no_change(src, "a circle moving on the grass", {})  # a word left out


def test_word_indices_multi_token_words_case_punctuation_and_repeats(tok):
    p = "a Spider-Man is driving a motorbike, in the forest"
    assert word_indices(tok, p, "spider-man") == [2, 3, 4]
    assert word_indices(tok, p, "Motorbike") == [8, 9]  # "motorbike," with its comma
    assert word_indices(tok, p, "a") == [1, 7]  # both occurrences
    assert word_indices(tok, p, 4) == [7]  # the second "a", by position
    with pytest.raises(ValueError, match="'cat' is not in prompt"):
        word_indices(tok, p, "cat")
    long = " ".join(["red"] * 80)
    with pytest.raises(ValueError, match="82 tokens .* limit of 77"):
        word_indices(tok, long, "red")


def test_a_prompt_over_the_limit_is_refused_without_the_tokenizers_own_warning(caplog):
    tok = bundled_tokenizer()  # a fresh one: transformers warns once per tokenizer
    long = " ".join(["red"] * 80)
    with caplog.at_level(logging.WARNING):
        with pytest.raises(ValueError, match="82 tokens .* limit of 77") as error:
            check_prompt_length(tok, long)
        assert f"Prompt {long[:60]!r}"[:-1] + "...' has 82 tokens" in str(error.value)  # shown cut, not whole
        with pytest.raises(ValueError, match="82 tokens .* limit of 77"):
            word_indices(tok, long, "red")
        quiet = [r.getMessage() for r in caplog.records]
        tok(long)  # the plain call warns: caplog does see the tokenizer's warning
    assert quiet == [] and "sequence length is longer" in caplog.records[-1].getMessage()


def test_a_prompt_over_the_limit_is_named_by_its_setting_and_which_target(tok):
    """A run's prompts said "Prompt 'red red ...' has 82 tokens": not which flag, file key or target."""
    long, short = " ".join(["red"] * 80), "a red circle"
    check_prompts_fit(tok, short, [short, " ".join(["red"] * 75)])  # 77 with start and end: the limit itself
    for source, targets, option, said in (
        (long, [short], "source", "^source: 'red red .*\\.\\.\\.' has 82 tokens .*limit of 77 \\(5 too many\\)\\.$"),
        (short, [long], "target", "^targets: 'red red .*' has 82 tokens"),
        (short, [short, long], "target", "^targets: 'red red .*' \\(target 2\\) has 82 tokens"),
    ):
        with pytest.raises(OptionError, match=said) as e:
            check_prompts_fit(tok, source, targets)
        assert e.value.option == option


def test_official_swap_man_to_spider_man(tok):
    src = "a man is driving a motorbike in the forest"
    tgt = "a Spider-Man is driving a motorbike in the forest"
    assert choose_mode(src, tgt) is EditMode.SWAP
    m = replacement_mapper(tok, src, tgt)
    # man (token 2) spreads evenly over spider, -, man (tokens 2, 3, 4)
    torch.testing.assert_close(m[2, 2:5], torch.full((3,), 1 / 3))
    # every later source token i maps to target token i + 2: "is" 3 -> 5, ..., end token 10 -> 12
    for i in range(3, 11):
        assert m[i, i + 2] == 1 and m[i].sum() == 1
    assert m[0, 0] == 1 and m[1, 1] == 1
    eq = equalizer(tok, tgt, {"Spider-Man": 4})
    assert eq[2:5].tolist() == [4, 4, 4] and eq.sum() == 77 + 9


def test_official_swap_road_to_railway(tok):
    src, tgt = "a car is driving on the road", "a car is driving on the railway"
    m = replacement_mapper(tok, src, tgt)
    assert torch.equal(m, torch.eye(77))  # one token each: identity, the map of "road" drives "railway"


def test_official_refine_origami_rabbit(tok):
    src, tgt = "a rabbit is jumping on the grass", "a origami rabbit is jumping on the grass"
    assert choose_mode(src, tgt) is EditMode.REFINE
    index, alpha = refinement_mapper(tok, src, tgt)
    assert alpha[:10].tolist() == [1, 1, 0, 1, 1, 1, 1, 1, 1, 1]  # "origami" (token 2) is new
    assert index[:10].tolist()[:2] == [0, 1] and index[3:10].tolist() == [2, 3, 4, 5, 6, 7, 8]
    assert equalizer(tok, tgt, {"origami": 2})[2] == 2


def test_official_refine_children_drawing(tok):
    src, tgt = "a bird flying in the forest", "children drawing of a bird flying in the forest"
    index, alpha = refinement_mapper(tok, src, tgt)
    assert alpha[1:4].tolist() == [0, 0, 0]  # children drawing of
    assert index[4:10].tolist() == [1, 2, 3, 4, 5, 6] and alpha[4:10].tolist() == [1] * 6


def test_spaces_typed_twice_or_around_a_prompt_are_no_words(tok):
    """Regression: words were split on single spaces (as the official code splits them), so a space typed twice
    or after a prompt made a word of no tokens: auto mode took a refinement for a word swap, a forced swap was
    refused, and with such a space after both prompts the swap paired the end token and padding from token 1
    (rows summing to 2)."""
    src = "a man is driving a motorbike in the forest"
    tgt = "a Spider-Man is driving a motorbike in the forest"
    clean = replacement_mapper(tok, src, tgt)
    for s, t in ((src + " ", tgt), (src, tgt.replace(" is", "  is")), (src + " ", tgt + " "), (" " + src, " " + tgt)):
        assert choose_mode(s, t) is EditMode.SWAP and choose_mode(s, t, "swap") is EditMode.SWAP
        assert torch.equal(replacement_mapper(tok, s, t), clean), (s, t)
    assert word_indices(tok, src + "  ", "forest") == word_indices(tok, src, "forest")


def test_forced_swap_with_different_word_counts_is_an_error():
    with pytest.raises(OptionError, match="^edit.mode: swap needs prompts with the same number of words.*has 7.*has 8"):
        choose_mode("a rabbit is jumping on the grass", "a origami rabbit is jumping on the grass", "swap")


def test_global_alignment():
    assert global_alignment([1, 2, 3], [1, 9, 2, 3]) == [0, -1, 1, 2]
    assert global_alignment([1, 2, 3], [1, 3]) == [0, 2]
