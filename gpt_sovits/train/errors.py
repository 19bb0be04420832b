"""The trainers' errors a person can act on (all are ``core.errors.UserError``)."""

from __future__ import annotations

from core.errors import UserError


class TrainingError(UserError, RuntimeError):
    """A problem a person can act on (bad data, missing file, no space); shown without a stack trace."""


class DiskSpaceError(TrainingError):
    """Not enough free disk space to write a checkpoint or weights file; raised before writing."""


class ConfigFileError(TrainingError):
    """The --config JSON file is missing, unreadable or not an object."""
