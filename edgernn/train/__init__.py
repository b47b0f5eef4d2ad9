"""Training in PyTorch: the float model, the loop, and the checkpoint it writes.

- `model`: EdgeRNN (optional embedding -> tanh RNN -> linear head);
- `loop`: the training loop (deterministic seed, gradient clipping, early stopping);
- `checkpoint`: checkpoint.pt, loaded with weights_only=True and validated.
"""
