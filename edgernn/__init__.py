"""edgernn: tiny tanh RNNs from PyTorch to bit-exact int8 ONNX and dependency-free C."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from edgernn.importer.api import import_model
    from edgernn.predict.runtime import Runtime

__all__ = ["Runtime", "__version__", "import_model"]


if not TYPE_CHECKING:  # type checkers see the imports above, so a misspelt name is an error there

    def __getattr__(name: str) -> Any:
        # `edgernn.Runtime` and `edgernn.import_model` on first use: `import edgernn` (and the CLI)
        # stays free of torch and ORT.
        if name == "Runtime":
            from edgernn.predict.runtime import Runtime

            return Runtime
        if name == "import_model":
            from edgernn.importer.api import import_model

            return import_model
        raise AttributeError(f"module 'edgernn' has no attribute {name!r}")
