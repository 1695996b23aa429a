"""One exception tree. The CLI maps each class to an exit code and prints one line."""

from __future__ import annotations


class AvrecError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with (1: runtime failure)."""

    exit_code = 1


class ConfigError(AvrecError):
    """Bad YAML, unknown key, bad value. Exit 2."""

    exit_code = 2


class InputError(AvrecError):
    """Bad input from the user: missing file or column, unknown user or item. Exit 2."""

    exit_code = 2


class ArtifactError(AvrecError):
    """An artifact directory is missing, of the wrong kind, or of an unknown schema. Exit 2."""

    exit_code = 2


class ModelError(AvrecError):
    """A pretrained model cannot be resolved or loaded (offline, missing weights). Exit 1."""

    exit_code = 1


class DeviceError(AvrecError):
    """The requested device (e.g. cuda) is not available. Exit 2."""

    exit_code = 2


class TooManyFailures(AvrecError):
    """A stage completed but more items failed than ``--max-failed`` allows. Exit 3."""

    exit_code = 3
