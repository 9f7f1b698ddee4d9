"""Pushing a model folder written by `train_hub.py` to the Hugging Face Hub.

We upload the folder ourselves in one commit (as timm's `push_to_hf_hub` does) rather than call
`model.push_to_hub`: the mixin re-saves into a temporary folder and would drop the generated
model card, metrics and figures.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import AccessError, InputError
from .state import STATE_FILE, TEMP_PREFIX

__all__ = ["check_can_push", "check_repo_id", "push_folder", "NOT_UPLOADED"]

# A run's resumable training state (and its temp file mid-write) is scratch space, not the model.
NOT_UPLOADED = [STATE_FILE, f"{TEMP_PREFIX}*"]

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


def check_repo_id(repo_id: str, flag: str = "--repo-id") -> None:
    """Refuse, naming the `flag` it came from, a repo id the Hub would refuse."""
    if not _REPO_ID.match(repo_id) or "--" in repo_id or ".." in repo_id or repo_id.endswith(".git"):
        raise InputError(
            f"{flag} {repo_id!r} is not a valid Hub repo id: expected ORG/NAME made of letters, "
            f"digits, '-', '_' and '.', e.g. my-org/fer-custom-cnn"
        )


def check_can_push(repo_id: str | None) -> str:
    """Fail fast, before any training or building, if a push could not succeed; returns the token.

    Checks the repo id's form, that a token is configured, that HF_HUB_OFFLINE does not forbid
    the upload, and, with the Hub, that the token is valid and may write."""
    from huggingface_hub import HfApi, constants, get_token
    from huggingface_hub.errors import HfHubHTTPError

    if not repo_id:
        raise InputError("--push needs --repo-id ORG/NAME (the model repo to create or update)")
    check_repo_id(repo_id)
    token = get_token()
    if not token:
        raise AccessError(
            "--push needs a Hugging Face token with write access: run `hf auth login` "
            "or set the HF_TOKEN environment variable"
        )
    if constants.is_offline_mode():
        raise AccessError(
            "--push cannot upload while HF_HUB_OFFLINE is set: unset it to push, or leave out --push "
            "and upload the folder later with `hf upload ORG/NAME FOLDER`"
        )
    try:
        me = HfApi().whoami(token=token)
    except HfHubHTTPError as e:
        status = getattr(e.response, "status_code", None)
        if status == 401:
            raise AccessError(
                "--push: the Hub refused the Hugging Face token (401, invalid or expired): "
                "run `hf auth login --force` or set HF_TOKEN to a valid token"
            ) from None
        raise AccessError(f"--push: the Hub could not check the token (HTTP {status})") from None
    except Exception as e:  # noqa: BLE001 - httpx's transport errors share no base with OSError
        raise AccessError(
            f"--push: cannot reach the Hub to check the token ({type(e).__name__}); check the "
            f"connection, or leave out --push and upload the folder later"
        ) from None
    if me.get("auth", {}).get("accessToken", {}).get("role") == "read":
        raise AccessError("--push: the Hugging Face token is read-only; make one with write access")
    return token


def push_folder(
    folder: str | Path,
    repo_id: str,
    *,
    repo_type: str = "model",
    private: bool = False,
    commit_message: str = "Upload fer_hub model",
    space_sdk: str = "gradio",
) -> str:
    """Create `repo_id` if needed and upload `folder` as one commit; returns the commit URL.

    `repo_type="space"` creates a Space of `space_sdk` ("gradio", or "static" for the in-browser
    app; used by space/deploy.py)."""
    from huggingface_hub import HfApi

    token = check_can_push(repo_id)
    api = HfApi(token=token)
    extra = {"space_sdk": space_sdk} if repo_type == "space" else {}
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, **extra)
    commit = api.upload_folder(
        repo_id=repo_id,
        repo_type=repo_type,
        folder_path=str(folder),
        commit_message=commit_message,
        ignore_patterns=NOT_UPLOADED,
    )
    return str(getattr(commit, "commit_url", commit))
