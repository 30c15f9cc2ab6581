"""Errors the library raises on purpose. The CLI prints them as one line and exits with code 1."""

from __future__ import annotations


class TrustAttrError(Exception):
    """Base class: a problem with the user's inputs or files, explained in one line."""


class ModelNotFoundError(TrustAttrError):
    """A model name or path that is neither a preset, a local checkpoint, nor reachable on the hub."""


class DataError(TrustAttrError):
    """A data file or dataset that is missing, empty, or lacks required fields."""


class ArgumentsMismatchError(TrustAttrError):
    """An artifact on disk was made with other arguments than the ones asked for now."""


class CheckpointError(TrustAttrError):
    """A checkpoint that is missing, incomplete, or corrupt."""
