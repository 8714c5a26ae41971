"""The Hugging Face hub, asked once before anything is downloaded from it.

huggingface_hub retries a request that cannot connect five times (about 25 s) before its download fails;
a machine that cannot reach the hub, or a repository the hub does not hold, is said at once from one
request without retries (`hub_files`), which also lists the repository's files, so that each part is
downloaded as its files are (`hub_load_kwargs`), and a model's, VAE's, LoRA's or embedding's file given by
its repository or its link is found and downloaded (`hub_file`). The Hugging Face cache is read first, with
no request.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from videop2p.config import hub_download_command, hub_file_id, hub_file_of
from videop2p.models.weights import first_line, weights_load_kwargs

HUB_TIMEOUT_S = 10.0  # for the one listing request


class HubError(OSError):
    """The hub cannot be reached, or holds no repository of that id that this machine may read (an OSError,
    as huggingface_hub's own download errors are)."""


def hub_files(repo: str, revision: str | None = None) -> list[str]:
    """The paths of the files of the hub repository `repo` (at `revision`, None: main), from one request without
    retries, with the user's token and the session's proxies; a HubError says why they cannot be had."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    try:
        info = HfApi().model_info(repo, revision=revision, expand=["siblings"], timeout=HUB_TIMEOUT_S)
    except RevisionNotFoundError:
        raise HubError(f"the hub repository {repo!r} has no revision {revision!r}") from None
    except RepositoryNotFoundError:
        raise HubError(
            f"the hub holds no model repository {repo!r} that this machine may read (a typo, or a private or gated one: "
            "`hf auth login` first)"
        ) from None
    except Exception as e:  # noqa: BLE001 (the hub client's transport errors are not OSErrors)
        raise HubError(f"the hub ({constants.ENDPOINT}) could not be reached: {first_line(e)}") from e
    return [sibling.rfilename for sibling in info.siblings or []]


def hub_load_kwargs(files: list[str]) -> dict[str, dict]:
    """`weights_load_kwargs` of each folder of a hub repository whose files are `files` (the root as "")."""
    folders: dict[str, list[str]] = {}
    for file in files:
        folder, _, name = file.rpartition("/")
        folders.setdefault(folder, []).append(name)
    return {folder: weights_load_kwargs(names) for folder, names in folders.items()}


def hub_offline() -> bool:
    """Whether HF_HUB_OFFLINE asks that the hub not be reached (the cache alone is read)."""
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes"}


def sorted_weights(files) -> list[str]:
    """Weights files' names as an error offers them: safetensors first (no code runs as they are read), by name."""
    return sorted(files, key=lambda name: (not name.lower().endswith(".safetensors"), name))


def _named_file(files: list[str], suffixes: tuple[str, ...], preferred: tuple[str, ...]) -> str | None:
    """The file of `files` a repository given alone stands for: the first of `preferred` it holds (diffusers'
    names), else its only file of `suffixes`; None where it holds none or several."""
    found = [name for name in preferred if name in files]
    candidates = [f for f in files if f.lower().endswith(suffixes)]
    return found[0] if found else candidates[0] if len(candidates) == 1 else None


def _listed_file(
    spec: str,
    files: list[str],
    kind: str,
    suffixes: tuple[str, ...],
    preferred: tuple[str, ...],
    error: type[Exception],
) -> str:
    """The file of a hub repository whose files are `files` that `spec` names (`hub_file`); an `error` where it
    names none or, given alone, the repository holds none or several of `suffixes`."""
    repo, file, _ = hub_file_id(spec, suffixes)
    wanted = (file if file in files else None) if file else _named_file(files, suffixes, preferred)
    if wanted is not None:
        return wanted
    holds = sorted_weights(f for f in files if f.lower().endswith(suffixes))
    some = ", ".join(holds[:3]) + (f" and {len(holds) - 3} more" if len(holds) > 3 else "")
    if not holds:
        raise error(f"{kind} {spec!r}: hub repository {repo!r} holds no {kind} file ({', '.join(suffixes)}).")
    if file is not None:
        raise error(f"{kind} {spec!r}: hub repository {repo!r} has no file {file!r}; its {kind} files: {some}.")
    raise error(
        f"{kind} {spec!r}: hub repository {repo!r} holds {len(holds)} {kind} files ({some}); give one as {repo}/FILE, "
        f"e.g. {repo}/{holds[0]}."
    )


def hub_file(
    spec: str, kind: str, suffixes: tuple[str, ...], preferred: tuple[str, ...], error: type[Exception]
) -> Path:
    """The local copy of the `kind` file of a hub repository `spec` names (`config.hub_file_id`): from the Hugging
    Face cache when it holds it (no request made), else downloaded, unless HF_HUB_OFFLINE is set. A repository
    given alone (`owner/name`) stands for its file named first in `preferred`, else its one file of `suffixes`.
    An `error` says in one line why it cannot be had."""
    from huggingface_hub import hf_hub_download, snapshot_download

    repo, file, revision = hub_file_id(spec, suffixes)
    reason = "not in the Hugging Face cache"
    try:
        if file is not None:
            return Path(hf_hub_download(repo, file, revision=revision, local_files_only=True))
        snapshot = Path(snapshot_download(repo, revision=revision, local_files_only=True))
        cached = [p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file()]
        named = next((name for name in preferred if name in cached), None)
        if named is not None:
            return snapshot / named
        if hub_offline() and any(f.lower().endswith(suffixes) for f in cached):  # the cache may hold part of it
            return snapshot / _listed_file(spec, cached, kind, suffixes, preferred, error)
        reason = f"its cached snapshot holds no {kind} file ({', '.join(suffixes)})"
    except OSError:  # not cached, or in part
        pass
    if not hub_offline():
        try:
            files = hub_files(repo, revision)  # one request: a hub out of reach or a repository it lacks is said
            wanted = _listed_file(spec, files, kind, suffixes, preferred, error)
            return Path(hf_hub_download(repo, wanted, revision=revision))
        except HubError as e:
            reason = str(e)
        except error:
            raise
        except Exception as e:  # noqa: BLE001 (the hub client's transport errors are not OSErrors)
            reason = first_line(e)
    raise error(
        f"{kind} file {spec!r} is not a local path and could not be read from the Hugging Face hub or its cache "
        f"({reason}). On a connected machine run `{hub_download_command(hub_file_id(spec, suffixes))}`, or give a "
        "local file."
    )


def hub_sibling(local: Path, repo: str, name: str) -> Path | None:
    """The file `name` beside `local`, a hub repository `repo`'s file in the Hugging Face cache (its folder, at its
    snapshot's commit): from the cache, else downloaded unless HF_HUB_OFFLINE is set; None where `local` is not in
    the cache's snapshot layout or the file cannot be had (the caller says what it lacks)."""
    from huggingface_hub import hf_hub_download

    parts = local.parts
    if "snapshots" not in parts[:-2]:
        return None
    at = len(parts) - 1 - parts[::-1].index("snapshots")  # .../snapshots/COMMIT/FOLDER.../FILE
    commit, folder = parts[at + 1], parts[at + 2 : -1]
    try:
        return Path(hf_hub_download(repo, "/".join((*folder, name)), revision=commit, local_files_only=hub_offline()))
    except Exception:  # noqa: BLE001 (not cached, not on the hub, or the hub out of reach: all mean none)
        return None


@contextlib.contextmanager
def named_as_given(spec: str | os.PathLike, path: Path, *errors: type[Exception]) -> Iterator[None]:
    """While the file `path` that `spec` named is read: where it is a hub repository's copy in the Hugging Face
    cache (not `spec` itself), an error of `errors` that quotes the copy's path quotes `spec` instead, the copy's
    path said after it (the user gave the repository's name, not the cache's)."""
    try:
        yield
    except errors as e:
        text, given = str(e), str(spec)
        if path == Path(given).expanduser():
            raise
        for quoted in (repr(str(path)), str(path)):
            if quoted in text:
                said = f"{given!r} (its copy in the Hugging Face cache: {path})"
                raise type(e)(text.replace(quoted, said, 1)) from None
        raise


def adapter_file(
    spec: str | os.PathLike, kind: str, suffixes: tuple[str, ...], preferred: tuple[str, ...], error: type[Exception]
) -> Path:
    """The local file a LoRA or embedding `spec` names: the local path of that name where there is one (or where
    it has no hub repository's form), else the hub repository's file (`hub_file`)."""
    if hub_file_of(spec, suffixes) is None:
        return Path(str(spec)).expanduser()
    return hub_file(str(spec), kind, suffixes, preferred, error)
