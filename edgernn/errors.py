"""Errors that the CLI turns into a one-line message and a documented exit code.

Classed by what the user should do about them:

| class              | exit | meaning                                                              |
|--------------------|------|----------------------------------------------------------------------|
| InputError         | 2    | the user's input is wrong: a path, data file, checkpoint, option     |
| QuantizationError  | 2    | the model cannot be represented by the integer contract             |
| CheckFailed        | 1    | a check ran and the answer is no (a parity mismatch, a corrupt set)  |
| ToolchainError     | 3    | a compiler, emulator or other outside tool is missing or failed      |
| InternalError      | 4    | edgernn broke its own promise (a C return code it never expects)     |

Input that is taken but likely not what the user meant is a DataWarning (`warnings.warn`): the
CLI prints it as `warning: ...` and goes on; a library caller sees a Python warning.
"""


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


class ToolchainError(EdgeRNNError):
    """An outside tool (compiler, linker, emulator, valgrind) is missing or failed (exit 3)."""

    exit_code = 3


class InternalError(EdgeRNNError):
    """A state edgernn's own code should never reach, e.g. an unexpected C return code (exit 4)."""

    exit_code = 4


class DataWarning(UserWarning):
    """Input that edgernn takes as documented but that likely means something else (integer
    sensor samples read as token ids, an array that looks transposed, a retrain beside an older
    export): the work goes on and the CLI prints `warning: ...`."""


class StaleExportWarning(DataWarning):
    """A training that replaces the checkpoint an export in the same folder was made from."""


def oneline(e: BaseException) -> str:
    """An exception's message on one line, for an error message that quotes it."""
    return " ".join(str(e).split()) or type(e).__name__
