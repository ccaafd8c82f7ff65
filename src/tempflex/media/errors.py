"""The one error type of media input."""

from __future__ import annotations

__all__ = ["MediaError"]


class MediaError(ValueError):
    """An image or video that cannot be read; the message names the source and the cause.

    A ``ValueError`` subclass, so code that guards one sample with ``except ValueError`` keeps working.
    """
