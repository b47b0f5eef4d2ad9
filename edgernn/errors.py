"""Errors that the CLI turns into a one-line message and a documented exit code."""


class EdgeRNNError(Exception):
    """Base class: anything edgernn reports to a user without a traceback."""

    exit_code = 2


class InputError(EdgeRNNError):
    """Bad input from the user: a path, a data file, a checkpoint, a config (exit 2)."""

    exit_code = 2


class QuantizationError(EdgeRNNError):
    """A model that the integer contract cannot represent safely (exit 2)."""

    exit_code = 2


class CheckFailed(EdgeRNNError):
    """A verification check ran and failed (exit 1)."""

    exit_code = 1
