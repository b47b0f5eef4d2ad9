"""edgernn: tiny tanh RNNs from PyTorch to bit-exact int8 ONNX and dependency-free C."""

__version__ = "0.1.0"
