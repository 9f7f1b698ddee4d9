"""The one family of errors for bad input: what was wrong, in words a user can act on.

Every entry point (`fer-hub`, `train_hub.py`, `fer-hub calibrate`, the Space, `space/deploy.py`)
catches `FerHubError` once, prints its message as one line and exits with code 2; anything else
is a bug and keeps its traceback. The subclasses also derive from the built-in error a Python
caller would expect (`except ValueError` still catches a bad image), so code written against
earlier releases keeps working.
"""

from __future__ import annotations

__all__ = ["FerHubError", "InputError", "NotFoundError", "AccessError", "RunError"]


class FerHubError(Exception):
    """Bad input from a user (a file, a folder, a setting, a model); the message says the fix.

    `reason` is the why alone and `source` (optional) the input it is about; the message is
    "source: reason". A server shows `reason` without revealing where it keeps an upload."""

    def __init__(self, reason: str, source: object = None) -> None:
        self.reason, self.source = reason, source
        super().__init__(f"{source}: {reason}" if source else reason)


class InputError(FerHubError, ValueError):
    """Input that exists but cannot be used: an unreadable image or video, a broken or
    mismatched model, a dataset in no layout fer_hub knows, a setting out of range."""


class NotFoundError(FerHubError, FileNotFoundError):
    """A file, folder, model or dataset that is not there."""


class AccessError(FerHubError, PermissionError):
    """Something fer_hub may not do: write to a folder, push without a valid token."""


class RunError(FerHubError):
    """A training run that cannot start or go on as asked: an unfinished run without --resume, a
    resume with other settings, no room for the training state."""
