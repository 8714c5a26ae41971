"""Prompt-to-prompt token bookkeeping: word indices, the replacement and refinement mappers, the equaliser.

After Hertz et al., "Prompt-to-Prompt Image Editing with Cross-Attention Control" (2022).
"""

from __future__ import annotations

import difflib
import re
import string

import torch

from videop2p.config import EditMode, OptionError
from videop2p.models.embeddings import embedding_words, vector_tokens

_PUNCT = string.punctuation


def words(prompt: str) -> list[str]:
    """The words of `prompt`, split on runs of whitespace as the tokenizer reads them. The official code
    splits on single spaces, so a space typed twice, or after the prompt, made a word of no tokens: a swap's
    words were counted and paired one for one with it (auto mode took a refinement, a forced swap was refused,
    and the end token's alignment started from the start token)."""
    return prompt.split()


def _norm(word: str) -> str:
    return word.lower().strip(_PUNCT)


def shown(prompt: str, limit: int = 60) -> str:
    """A prompt as an error message shows it: quoted, cut after `limit` characters."""
    return repr(prompt if len(prompt) <= limit else prompt[:limit] + "...")


def _vector_runs(tokenizer) -> dict[str, str]:
    """Each multi-vector embedding's word in `tokenizer` -> its tokens written out ("<x>" -> "<x> <x>_1 <x>_2")."""
    words = embedding_words(tokenizer)
    return {word: " ".join(vector_tokens(word, count)) for word, count in words.items() if count > 1}


def expand_vectors(tokenizer, text: str) -> str:
    """`text` with each multi-vector embedding's token written as all of its tokens ("<x>" -> "<x> <x>_1
    <x>_2"), whole words only, as diffusers' `maybe_convert_prompt` does; text without one is returned as is."""
    for token, run in _vector_runs(tokenizer).items():
        text = re.sub(rf"(?<!\w){re.escape(token)}(?!\w)", run, text, flags=re.IGNORECASE)
    return text


def tokenize(tokenizer, text: str | list[str], **kwargs):
    """The tokenizer's call on `text` (or a list of texts) with multi-vector embeddings written out (`expand_vectors`)."""
    if isinstance(text, list):
        return tokenizer([expand_vectors(tokenizer, t) for t in text], **kwargs)
    return tokenizer(expand_vectors(tokenizer, text), **kwargs)


def token_count(tokenizer, prompt: str) -> int:
    """Tokens of `prompt` including the start and end tokens."""
    ids = tokenize(tokenizer, prompt, truncation=False, verbose=False).input_ids  # verbose: no over-length warning
    return len(ids)


def check_prompt_length(tokenizer, prompt: str) -> None:
    """Refuse a prompt over the tokenizer's own limit (it would be cut silently)."""
    over = _over_limit(tokenizer, prompt)
    if over is not None:
        raise ValueError(f"Prompt {shown(prompt)} {over}")


def check_prompts_fit(tokenizer, source: str, targets: list[str] = ()) -> None:
    """`check_prompt_length` of a run's prompts, an OptionError naming the prompt's setting (`--target`, the
    file's `targets`) and, among several targets, which."""
    for option, prompt, which in (
        ("source", source, ""),
        *(("target", t, f" (target {k})" if len(targets) > 1 else "") for k, t in enumerate(targets, 1)),
    ):
        over = _over_limit(tokenizer, prompt)
        if over is not None:
            raise OptionError(option, f"{shown(prompt)}{which} {over}")


def _over_limit(tokenizer, prompt: str) -> str | None:
    """How far `prompt` runs over the tokenizer's own limit ("has 82 tokens ..."), None where it fits."""
    n, limit = token_count(tokenizer, prompt), tokenizer.model_max_length
    if n <= limit:
        return None
    return f"has {n} tokens (with start and end), over the tokenizer's limit of {limit} ({n - limit} too many)."


def word_tokens(tokenizer, prompt: str) -> list[list[int]]:
    """Token positions (start token = 0) of every word of `prompt`."""
    check_prompt_length(tokenizer, prompt)
    positions, cur = [], 1
    for w in words(prompt):
        n = len(tokenize(tokenizer, w, add_special_tokens=False).input_ids) if w else 0
        positions.append(list(range(cur, cur + n)))
        cur += n
    total = len(tokenize(tokenizer, prompt, add_special_tokens=False, verbose=False).input_ids)
    if cur - 1 != total:
        raise ValueError(
            f"Prompt {prompt!r} does not tokenize word by word ({cur - 1} vs {total} tokens); use single spaces between words."
        )
    return positions


class WordNotInPrompt(ValueError):
    """A word asked for (blend, subtract, reweight) that `prompt` does not have; `words` are the ones it has."""

    def __init__(self, word: str, prompt: str, words: list[str]):
        super().__init__(f"Word {word!r} is not in prompt {prompt!r}; its words are {words}.")
        self.word, self.prompt, self.words = word, prompt, words


def word_indices(tokenizer, prompt: str, word: str | int) -> list[int]:
    """Token positions of a word: by position (int), or every occurrence of a word (case and
    surrounding punctuation ignored; "Spider-Man" and "motorbike," are one word each)."""
    per_word = word_tokens(tokenizer, prompt)
    ws = words(prompt)
    if isinstance(word, int):
        if not 0 <= word < len(ws):
            raise ValueError(f"Word position {word} is outside prompt {prompt!r} with {len(ws)} words.")
        return per_word[word]
    if " " in word.strip():
        return [i for part in word.split() for i in word_indices(tokenizer, prompt, part)]
    hits = [i for k, w in enumerate(ws) if _norm(w) == _norm(word) for i in per_word[k]]
    if not hits:
        raise WordNotInPrompt(word, prompt, [_norm(w) for w in ws if w])
    return hits


def word_changes(source: str, target: str) -> list[tuple[str, list[str], list[str]]]:
    """(op, source words, target words) for each run of words that `target` replaces ("replace"),
    adds ("insert") or leaves out ("delete") of `source`, in order; words as written, compared with
    case and punctuation ignored (a double space's empty word, or a lone dash, is no word)."""
    a, b = ([w for w in words(p) if _norm(w)] for p in (source, target))
    matcher = difflib.SequenceMatcher(a=[_norm(w) for w in a], b=[_norm(w) for w in b], autojunk=False)
    return [(op, a[i1:i2], b[j1:j2]) for op, i1, i2, j1, j2 in matcher.get_opcodes() if op != "equal"]


# A changed article only agrees with the words after it ("a rabbit" -> "an origami rabbit"): it asks
# for nothing to be drawn, and its attention has no region of its own.
ARTICLES = frozenset({"a", "an", "the"})


def changed_words(source: str, target: str) -> list[str]:
    """The words of `target` that replace or add to words of `source` (case and punctuation ignored),
    in order, each once; articles left out (`ARTICLES`)."""
    changed = (_norm(w) for op, _, new in word_changes(source, target) if op != "delete" for w in new)
    return list(dict.fromkeys(w for w in changed if w not in ARTICLES))


def asks_no_change(source: str, target: str, factors: dict[str, float]) -> bool:
    """Whether `target` asks nothing of the edit: the source's words (case and punctuation ignored) and
    no factor other than 1 among `factors`, the reweighting of its own words."""
    return not word_changes(source, target) and all(f == 1.0 for f in factors.values())


def choose_mode(source: str, target: str, mode: EditMode | str = EditMode.AUTO) -> EditMode:
    """Auto: same word count and differing words -> swap, else refine; a forced swap needs equal counts
    (OptionError of `mode`)."""
    mode = EditMode(mode)
    ns, nt = len(words(source)), len(words(target))
    if mode is EditMode.SWAP and ns != nt:
        raise OptionError(
            "mode",
            f"swap needs prompts with the same number of words: {source!r} has {ns}, {target!r} has {nt}; refine "
            "(or auto, which takes it for them) edits them.",
        )
    if mode is EditMode.AUTO:
        return EditMode.SWAP if ns == nt else EditMode.REFINE
    return mode


def replacement_mapper(tokenizer, source: str, target: str) -> torch.Tensor:
    """(L, L) matrix M with target map[m] = sum_w source map[w] * M[w, m]; a swapped word of
    different token count spreads its attention evenly over the target's tokens."""
    length = tokenizer.model_max_length
    ws, wt = words(source), words(target)
    if len(ws) != len(wt):
        raise ValueError(
            f"A word swap needs prompts with the same number of words: {source!r} has {len(ws)}, {target!r} has {len(wt)}."
        )
    src, tgt = word_tokens(tokenizer, source), word_tokens(tokenizer, target)
    mapper = torch.zeros(length, length)
    mapper[0, 0] = 1.0  # start token
    for a, b in zip(src, tgt, strict=True):
        if len(a) == len(b):
            mapper[a, b] = 1.0
        else:
            for j in b:
                mapper[a, j] = 1.0 / len(b)
    i, j = (src[-1][-1] + 1 if src[-1] else 1), (tgt[-1][-1] + 1 if tgt[-1] else 1)
    while i < length and j < length:  # end token and padding, aligned
        mapper[i, j] = 1.0
        i, j = i + 1, j + 1
    while j < length:  # target longer: its last padding reads the source's last token
        mapper[length - 1, j] = 1.0
        j += 1
    return mapper


def global_alignment(x: list[int], y: list[int]) -> list[int]:
    """Needleman-Wunsch alignment (match +1, mismatch and gap -1): for each y position its x position or -1."""
    n, m = len(x), len(y)
    score = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        score[i][0] = -i
    for j in range(1, m + 1):
        score[0][j] = -j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            diag = score[i - 1][j - 1] + (1 if x[i - 1] == y[j - 1] else -1)
            score[i][j] = max(diag, score[i - 1][j] - 1, score[i][j - 1] - 1)
    out = [-1] * m
    i, j = n, m
    while i > 0 and j > 0:
        if score[i][j] == score[i - 1][j - 1] + (1 if x[i - 1] == y[j - 1] else -1):
            out[j - 1] = i - 1 if x[i - 1] == y[j - 1] else -1
            i, j = i - 1, j - 1
        elif score[i][j] == score[i][j - 1] - 1:
            j -= 1
        else:
            i -= 1
    return out


def refinement_mapper(tokenizer, source: str, target: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(index (L,), alpha (L,)): target token m reads source token index[m] where alpha[m] = 1;
    tokens new in the target (alpha 0) keep their own maps."""
    length = tokenizer.model_max_length
    word_tokens(tokenizer, source), word_tokens(tokenizer, target)  # validates both prompts
    x, y = tokenize(tokenizer, source).input_ids, tokenize(tokenizer, target).input_ids
    aligned = global_alignment(x, y)
    index = torch.zeros(length, dtype=torch.long)
    alpha = torch.ones(length)
    for j, i in enumerate(aligned):
        index[j] = max(i, 0)
        alpha[j] = float(i >= 0)
    for k, j in enumerate(range(len(y), length)):  # padding after the end token, aligned
        index[j] = min(len(x) + k, length - 1)
    return index, alpha


def equalizer(tokenizer, prompt: str, factors: dict[str | int, float]) -> torch.Tensor:
    """(L,) scale per token: `factors` maps words to their reweighting factor, 1 elsewhere."""
    eq = torch.ones(tokenizer.model_max_length)
    for word, value in factors.items():
        eq[word_indices(tokenizer, prompt, word)] = float(value)
    return eq
