"""Backends: one QuantizedModel (edgernn.contract) in the forms users run.

- `onnx`: the float graph (standard ONNX RNN) and the integer graphs (whole sequence, one step);
- `c`: the generated header (codegen + wrappers), the one C build module (build), and the native
  runs that prove it (host: ctypes; sanitized: ASan/UBSan; fuzz: libFuzzer).

Every backend is checked against edgernn.contract.reference, bit for bit on the integer paths.
"""
