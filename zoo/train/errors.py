"""The error raised for a bad training or evaluation configuration, before any training starts."""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """A recipe, override, dataset, model or checkpoint that cannot be used; the message says what and why."""
