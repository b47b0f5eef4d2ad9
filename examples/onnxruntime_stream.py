"""Stream raw samples through an edgernn step model with nothing but onnxruntime and numpy.

    python onnxruntime_stream.py EXPORT_DIR/model.step.raw.int8.onnx samples.csv

samples.csv: one sample per row, the model's raw features as columns (training order; an
optional header row is skipped); for a token model, one token id per row. The graph normalizes
and quantizes each sample itself; the state is carried from step to step. A framed model
(`frame` K in edgernn.config) steps once every K samples, on the K samples side by side; the
samples after the last full frame are left over, as on a device. A model imported with
`pad_to` P runs its pad steps after the last sample, up to P steps (as PREFIX_finish in C). Prints
the class after the last sample and its integer logits (logit = value * edgernn.head_scale); a
many-to-many model also prints a class per step. Metadata keys: docs/onnx.md.
"""

import csv
import json
import sys

import numpy as np
import onnxruntime as ort

sess = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
meta = sess.get_modelmeta().custom_metadata_map
cfg = json.loads(meta["edgernn.config"])
names = json.loads(meta["edgernn.class_names"]) or json.loads(meta["edgernn.vocab"])
if cfg["bidirectional"] or cfg.get("reverse"):
    sys.exit("this model reads each sequence from its end, which a stream cannot: use model.raw.int8.onnx")
with open(sys.argv[2], newline="") as f:
    rows = [r for r in csv.reader(f) if any(v.strip() for v in r)]
if rows:
    try:
        [float(v) for v in rows[0]]
    except ValueError:
        rows = rows[1:]  # a header
if not rows:
    sys.exit("no samples")
x_name = sess.get_inputs()[0].name  # "x" (raw float32 features) or "token"
frame = cfg.get("frame", 1)
width = cfg["input_size"] // frame  # features of one sample
if len(rows) < frame:
    sys.exit(f"{len(rows)} samples, fewer than one frame ({frame} samples)")
h = np.zeros((cfg["num_layers"], 1, cfg["hidden_size"]), np.int8)
samples: list[float] = []
step = 0
for n, row in enumerate(rows):
    if x_name == "token":
        x = np.array([int(row[0])], np.int64)
    elif len(row) != width:
        sys.exit(f"row {n + 1} has {len(row)} values; a sample of this model has {width}")
    else:
        samples += [float(v) for v in row]
        if len(samples) < cfg["input_size"]:
            continue  # the frame is not full yet
        x, samples = np.array([samples], np.float32), []
    h, logits = sess.run(["h_new", "logits"], {x_name: x, "h": h})
    step += 1
    c = int(np.argmax(logits[0]))  # the first of equal maxima, as edgernn's C
    if cfg["task"] == "many-to-many":
        print(f"step {step - 1}: class {c} {names[c] if c < len(names) else ''}")
# A pad step is token 0 or the all-zero int8 input, which the raw graph makes from the mean.
mean = json.loads(meta.get("edgernn.input.mean", "[]")) or [0.0] * cfg["input_size"]
pad = np.array([0], np.int64) if x_name == "token" else np.array([mean], np.float32)
for _ in range(cfg.get("pad_to", 0) - step):
    h, logits = sess.run(["h_new", "logits"], {x_name: pad, "h": h})
    c = int(np.argmax(logits[0]))
print(f"class {c} {names[c] if c < len(names) else ''}")
print("logits " + " ".join(str(int(v)) for v in logits[0]))
