"""User-facing errors: each carries a one-line message that names the file, record or field."""


class TaastError(Exception):
    """Bad input or configuration; the command line prints the message and exits with 2."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class ConfigError(TaastError):
    """A configuration field is invalid; the message starts with the field's dotted name."""


class InputError(TaastError):
    """An input file or record is malformed; the message names the file and the record."""


class StorageError(TaastError):
    """The output could not be written (a full disk, a lost mount); the message names the folder."""


class LockedError(TaastError):
    """Another taast run holds the run / output directory."""
