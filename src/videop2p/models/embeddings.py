"""Textual-inversion embeddings (Gal et al. 2023, "An Image is Worth One Word: Personalizing
Text-to-Image Generation using Textual Inversion") added to a loaded model's tokenizer and text
encoder: a new token whose input embedding is the file's vector.

A file with several vectors is several tokens, `TOKEN`, `TOKEN_1`, ..., named as diffusers'
`load_textual_inversion` names them, and a prompt's `TOKEN` stands for all of them
(`control.prompts.tokenize`), so a blend word or a reweighted word covers every vector. The files
of the Stable Diffusion ecosystem are read: diffusers' (`{token: vector}`, the token in the file),
the A1111 web UI's `.pt` (`string_to_param`) and `.safetensors` (`emb_params`), and a bare tensor;
the token of the last three is the file's name, as the web UI has it, unless one is given.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from transformers import AddedToken

from videop2p.config import (
    EMBEDDING_SUFFIXES,
    SettingProblem,
    embedding_token_problem,
    missing_weights_reason,
    weights_file_problem,
)
from videop2p.models.hub import adapter_file, named_as_given
from videop2p.models.weights import read_weights_file

logger = logging.getLogger(__name__)

_SDXL_KEYS = ("clip_l", "clip_g")  # an SDXL embedding: one vector set per text encoder


class EmbeddingError(SettingProblem, ValueError):
    """An embedding file that cannot be added to the model, or a token it cannot take (as the `embedding`
    setting's problem where the file is not there)."""


def check_embedding(path: str | os.PathLike, token: str | None = None) -> None:
    """Refuse an embedding file that is missing, empty or of a kind the loader does not read, and a
    token that is no single word, naming the value and what would be valid."""
    missing = missing_weights_reason(path, EMBEDDING_SUFFIXES, "a textual-inversion embedding", hub=True)
    if missing:
        raise EmbeddingError(f"embedding file {missing}", "embedding", missing)
    problem = weights_file_problem(path, "embedding", EMBEDDING_SUFFIXES, "a textual-inversion embedding", hub=True)
    problem = problem or embedding_token_problem(str(path), token)
    if problem:
        raise EmbeddingError(problem)


def read_embedding(path: str | os.PathLike) -> tuple[str, torch.Tensor]:
    """(the token the file names, else the file's name, as the A1111 web UI has it (a hub repository's file's
    own, not the repository's); its vectors (N, D) in float32)."""
    from diffusers.loaders.textual_inversion import TEXT_INVERSION_NAME, TEXT_INVERSION_NAME_SAFE

    names = (TEXT_INVERSION_NAME_SAFE, TEXT_INVERSION_NAME)  # a hub repository's file (sd-concepts-library's)
    p = adapter_file(path, "embedding", EMBEDDING_SUFFIXES, names, EmbeddingError)
    with named_as_given(path, p, EmbeddingError):
        data = read_weights_file(p, "embedding", EmbeddingError)
    named = None
    if isinstance(data, dict) and any(k in data for k in _SDXL_KEYS):
        raise EmbeddingError(
            f"embedding file {str(path)!r} is an SDXL embedding (clip_l and clip_g vectors); embeddings for "
            "Stable Diffusion 1.x/2.x hold one set of vectors."
        )
    if isinstance(data, dict) and isinstance(data.get("string_to_param"), dict) and data["string_to_param"]:
        vectors = next(iter(data["string_to_param"].values()))  # the A1111 web UI's .pt; its "name" is not used
    elif isinstance(data, dict) and "emb_params" in data:
        vectors = data["emb_params"]  # the A1111 web UI's .safetensors
    elif isinstance(data, dict) and len(data) == 1:
        named, vectors = next(iter(data.items()))  # diffusers': {token: vectors}
    else:
        vectors = data
    if not isinstance(vectors, torch.Tensor) or not vectors.is_floating_point() or vectors.ndim not in (1, 2):
        keys = f" (its keys: {', '.join(map(str, list(data)[:6]))})" if isinstance(data, dict) else ""
        raise EmbeddingError(
            f"embedding file {str(path)!r} holds no embedding{keys}; expected diffusers' {{token: vectors}}, the "
            "A1111 web UI's string_to_param or emb_params, or a tensor of vectors."
        )
    vectors = vectors.detach().float().reshape(-1, vectors.shape[-1])  # (N, D): one vector per token
    if vectors.shape[0] == 0 or not bool(torch.isfinite(vectors).all()):
        what = "no vectors" if vectors.shape[0] == 0 else "NaN or infinite values"
        raise EmbeddingError(f"embedding file {str(path)!r} holds {what}; it is damaged (download it again).")
    return (named if isinstance(named, str) and named else p.stem), vectors


def embedding_word(path: str | os.PathLike, given: str | None = None) -> str:
    """The word a prompt uses for the embedding file `path`: the token given, else the one its file names, else
    the file's name (`read_embedding`)."""
    return given or read_embedding(path)[0]


def vector_tokens(token: str, count: int) -> list[str]:
    """The tokens of an embedding of `count` vectors: TOKEN, TOKEN_1, ... (diffusers' names)."""
    return [token] + [f"{token}_{i}" for i in range(1, count)]


def added_tokens(tokenizer) -> dict[str, int]:
    """The tokens added to `tokenizer` beside its own specials (textual-inversion embeddings' vectors),
    each with its id, in the order they were added."""
    special = set(tokenizer.all_special_tokens)
    added = tokenizer.get_added_vocab()
    return dict(sorted(((t, i) for t, i in added.items() if t not in special), key=lambda item: item[1]))


def embedding_words(tokenizer) -> dict[str, int]:
    """The prompt words that stand for textual-inversion embeddings in `tokenizer` (`added_tokens`,
    TOKEN_1, ... counted with their TOKEN), each with its number of vectors, in the order they were added."""
    names, words = added_tokens(tokenizer), {}
    for token in names:
        base, sep, index = token.rpartition("_")
        if sep and index.isdigit() and base in names:
            continue  # a vector of `base`
        count = 1
        while f"{token}_{count}" in names:
            count += 1
        words[token] = count
    return words


def _known(tokenizer, token: str) -> bool:
    """Whether the tokenizer already reads `token` as one of its own (CLIP lower-cases what it reads)."""
    vocab = tokenizer.get_vocab()
    return any(t in vocab for t in (token, token.lower(), token.lower() + "</w>"))


def add_embeddings(tokenizer, text_encoder, embeddings: dict[str, str | None], source: str) -> None:
    """Add each embedding file of `embeddings` (path -> token, None: the token the file names, else its
    name) to `tokenizer` and `text_encoder`, in place. Every file is read and every token checked
    before either is changed: a file of another text encoder's width, a token the tokenizer already
    has, and one given twice are EmbeddingErrors naming them."""
    width = text_encoder.get_input_embeddings().weight.shape[1]
    limit = tokenizer.model_max_length - 2  # a prompt holds its start and end tokens too
    new: dict[str, torch.Tensor] = {}  # token -> vector (D,)
    for path, given in embeddings.items():  # each file and token checked by the caller first (`check_embedding`)
        named, vectors = read_embedding(path)
        token = given or named
        problem = embedding_token_problem(str(path), token)
        if problem:
            raise EmbeddingError(f"{problem.rstrip('.')}; name one with FILE=TOKEN.")
        if vectors.shape[1] != width:
            raise EmbeddingError(
                f"embedding file {str(path)!r} has vectors {vectors.shape[1]} wide but {source}'s text encoder "
                f"takes {width} (an embedding for another model: SD 1.x is 768 wide, SD 2.x 1024)."
            )
        if vectors.shape[0] > limit:
            raise EmbeddingError(
                f"embedding file {str(path)!r} has {vectors.shape[0]} vectors, more than a prompt of {source} "
                f"holds ({limit} tokens)."
            )
        for name, vector in zip(vector_tokens(token, vectors.shape[0]), vectors, strict=True):
            taken = name.lower() in (n.lower() for n in new)  # CLIP reads "<X>" as "<x>"
            if taken or _known(tokenizer, name):
                whose = "another embedding's" if taken else "a word the tokenizer has"
                other = f"<{token}>" if not token.startswith("<") else f"<{token.strip('<>')}-2>"
                raise EmbeddingError(
                    f"token {name!r} of embedding file {str(path)!r} is already {whose}; give it another with "
                    f"{Path(path).name}=TOKEN, e.g. {Path(path).name}={other}."
                )
            new[name] = vector
        logger.info("embedding %s: the word %r, %d vector(s), in %s", Path(path).name, token, len(vectors), source)
    if not new:
        return
    tokenizer.add_tokens([AddedToken(name, single_word=True) for name in new])  # matched as whole words only
    text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    weight = text_encoder.get_input_embeddings().weight  # (V, D)
    with torch.no_grad():
        for name, vector in new.items():
            weight[tokenizer.convert_tokens_to_ids(name)] = vector.to(weight.dtype)
