"""The Hugging Face hub, asked once before anything is downloaded from it.

huggingface_hub retries a request that cannot connect five times (about 25 s) before its download fails;
a machine that cannot reach the hub, or a repository the hub does not hold, is said at once from one
request without retries (`hub_files`), which also lists the repository's files, so that each part is
downloaded as its files are (`hub_load_kwargs`).
"""

from __future__ import annotations

from videop2p.models.weights import first_line, weights_load_kwargs

HUB_TIMEOUT_S = 10.0  # for the one listing request


class HubError(OSError):
    """The hub cannot be reached, or holds no repository of that id that this machine may read (an OSError,
    as huggingface_hub's own download errors are)."""


def hub_files(repo: str) -> list[str]:
    """The paths of the files of the hub repository `repo` (at its main revision), from one request without
    retries, with the user's token and the session's proxies; a HubError says why they cannot be had."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        info = HfApi().model_info(repo, expand=["siblings"], timeout=HUB_TIMEOUT_S)
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
