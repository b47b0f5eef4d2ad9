"""The per-model part of a generated header: the state type, the descriptor's declaration and the
one-line PREFIX_* wrappers around the prefix-free edgernn_* API of c_runtime/edgernn_runtime.h.

Each wrapper is written here only for models it applies to (a bidirectional model has no
PREFIX_step, a feature model no PREFIX_step_token). The wrappers add what C cannot express
generically: compile-time array sizes for the scratch on the caller's stack and for parameters.
"""

from __future__ import annotations

from edgernn.config import Task
from edgernn.contract.model import QuantizedModel


def _fn(doc: str, signature: str, body: str) -> str:
    return f"/* {doc} */\nstatic inline {signature}\n{{\n{body}\n}}"


def _scratch(up: str, generate: bool = False) -> str:
    words = f"{up}_GENERATE_SCRATCH_WORDS" if generate else f"{up}_SCRATCH_WORDS"
    return f"    int32_t scratch[{words}];"


def state_type(qm: QuantizedModel, p: str) -> str:
    up = p.upper()
    cfg = qm.config
    if cfg.frame > 1:
        # AVR aligns uint16_t to 1 byte, Arm and RISC-V to 2: after an odd number of int8 bytes
        # the compiler would pad on some targets only, and STATE_BYTES would hold on those alone.
        odd = (cfg.num_layers * cfg.directions * cfg.hidden_size + cfg.input_size) % 2
        reserved = (
            "    uint8_t reserved; /* keeps `filled` at an even offset on every target */\n" if odd else ""
        )
        return (
            f"/* The stream's state: {up}_STATE_BYTES bytes of RAM, owned by the caller. h as below; frame\n"
            f" * holds the samples of the step being filled ({p}_push_sample), `filled` of them.\n"
            " * h[layer * DIRECTIONS + direction] is that layer and direction's hidden state (int8 at scale\n"
            " * 1/127), in the order of torch's h_n. The functions keep no other state. */\n"
            "typedef struct {\n"
            f"    int8_t h[{up}_NUM_LAYERS * {up}_NUM_DIRECTIONS][{up}_HIDDEN_SIZE];\n"
            f"    int8_t frame[{up}_INPUT_SIZE];\n"
            f"{reserved}"
            "    uint16_t filled;\n"
            f"}} {p}_state_t;"
        )
    return (
        f"/* The recurrent state: {up}_STATE_BYTES bytes of RAM, owned by the caller.\n"
        " * h[layer * DIRECTIONS + direction] is that layer and direction's hidden state (int8 at scale\n"
        " * 1/127), in the order of torch's h_n. The functions keep no other state: one state per stream,\n"
        " * several models or streams side by side, and a step called from an ISR on a state nothing else\n"
        " * touches is safe (give that ISR's stack the step's: see Memory at the top).\n"
        " * On cores with the DSP extension (M4, M7, M33) a step reads x and this state with word loads\n"
        " * that need not be aligned: leave SCB->CCR.UNALIGN_TRP clear (its reset value) or build with\n"
        " * EDGERNN_NO_DSP. */\n"
        "typedef struct {\n"
        f"    int8_t h[{up}_NUM_LAYERS * {up}_NUM_DIRECTIONS][{up}_HIDDEN_SIZE];\n"
        f"}} {p}_state_t;"
    )


def wrappers(qm: QuantizedModel, p: str) -> str:
    """The PREFIX_* functions that apply to this model, each one call into the generic core."""
    cfg = qm.config
    up = p.upper()
    m = f"&{p}_model"
    st = "&st->h[0][0]"
    # A NULL st must reach edgernn_run as NULL (it returns EDGERNN_ERR_NULL), so no member access.
    st_or_null = "(int8_t *)(void *)st"
    inp = "const int32_t *tokens" if cfg.tokens else "const int8_t *x"
    run_fn, run_arg = ("edgernn_run_tokens", "tokens") if cfg.tokens else ("edgernn_run", "x")
    reset = "\n    st->filled = 0;" if cfg.frame > 1 else ""
    out = [
        _fn(
            "The all-zero state (what torch uses when no h0 is given); also the reset between sequences.",
            f"void {p}_init({p}_state_t *st)",
            f"    edgernn_init({m}, {st});{reset}",
        )
    ]
    # A reverse model reads a sequence from its end: no step in time order, only run.
    if not cfg.bidirectional and not cfg.reverse and not cfg.tokens:
        out.append(
            _fn(
                f"One time step of every layer; x is one int8 input vector ({p}_quantize_input makes one\n"
                f" * from floats). Stack: {up}_SCRATCH_BYTES bytes of accumulators.",
                f"void {p}_step({p}_state_t *st, const int8_t x[{up}_INPUT_SIZE])",
                f"{_scratch(up)}\n    (void)edgernn_step({m}, {st}, x, scratch);",
            )
        )
    if not cfg.bidirectional and not cfg.reverse and cfg.tokens:
        out.append(
            _fn(
                f"One time step reading token id `token`. Returns EDGERNN_OK, or EDGERNN_ERR_TOKEN (state\n"
                f" * untouched) when token is outside [0, {up}_VOCAB_SIZE). Stack: {up}_SCRATCH_BYTES bytes.",
                f"int {p}_step_token({p}_state_t *st, int32_t token)",
                f"{_scratch(up)}\n    return edgernn_step_token({m}, {st}, token, scratch);",
            )
        )
    buf = (
        f"buf: {up}_RUN_BUF_BYTES(steps) bytes (required)"
        if cfg.bidirectional
        else f"buf: NULL or {up}_RUN_BUF_BYTES(steps) bytes"
    )
    out.append(
        _fn(
            f"A whole sequence of `steps` steps from *st; {buf}. See {run_fn} in the runtime\n"
            " * above for the layouts, the logits and the return codes.",
            f"int {p}_run({p}_state_t *st, {inp}, size_t steps, int8_t *buf, size_t buf_bytes,\n"
            "                int32_t *logits)",
            f"{_scratch(up)}\n"
            f"    return {run_fn}({m}, {st_or_null}, {run_arg}, steps, buf, buf_bytes, logits, scratch);",
        )
    )
    # The head reads the state, except where what it reads exists only inside a run: per-step
    # outputs of a bidirectional model, and the last output of one (Readout.LAST_OUTPUT).
    if not cfg.bidirectional or (cfg.task == Task.MANY_TO_ONE and not cfg.last_output):
        out.append(
            _fn(
                f"The head on the top layer's state: int32 logits at scale {up}_HEAD_SCALE. out: not NULL;\n"
                " * the state is not changed, so the stream goes on with the next step.",
                f"void {p}_logits(const {p}_state_t *st, int32_t out[{up}_NUM_CLASSES])",
                f"    edgernn_logits({m}, {st}, out);",
            )
        )
        out.append(
            _fn(
                f"Fills logits (as {p}_logits: not NULL, state unchanged) and returns the winning class;\n"
                " * ties go to the lowest index.",
                f"int32_t {p}_classify(const {p}_state_t *st, int32_t logits[{up}_NUM_CLASSES])",
                f"    return edgernn_classify({m}, {st}, logits);",
            )
        )
    if cfg.streams_samples:
        out += _frame_wrappers(p) if cfg.frame > 1 else _sample_wrappers(p)
    if cfg.pad_to:
        out.append(_pad_wrapper(qm, p))
    if cfg.reverse:
        out.append(_reverse_wrapper(qm, p))
    if cfg.task == Task.ONE_TO_MANY:
        out.append(
            _fn(
                f"Generates up to max_len tokens after start_token (seed 0: greedy); see edgernn_generate.\n"
                f" * Stack: {up}_SCRATCH_BYTES + 4 * {up}_NUM_CLASSES bytes.",
                f"size_t {p}_generate({p}_state_t *st, int32_t start_token, int32_t *out, size_t max_len,\n"
                "                uint32_t seed)",
                f"{_scratch(up, generate=True)}\n"
                f"    return edgernn_generate({m}, {st}, start_token, out, max_len, seed, scratch);",
            )
        )
    if not cfg.tokens:
        out.append(
            _fn(
                "Float input to int8 with the model's normalisation and scales (edgernn_quantize_input).",
                f"void {p}_quantize_input(const float raw[{up}_INPUT_SIZE], int8_t xq[{up}_INPUT_SIZE])",
                f"    edgernn_quantize_input({m}, raw, xq);",
            )
        )
    out.append(
        _fn(
            f"An int32 logit as a float: logit_q * {up}_HEAD_SCALE.",
            f"float {p}_dequantize_logit(int32_t logit_q)",
            f"    return edgernn_dequantize_logit({m}, logit_q);",
        )
    )
    return "\n\n".join(out)


def _sample_wrappers(p: str) -> list[str]:
    """An unframed model's PREFIX_push_sample and PREFIX_quantize_sample: FRAME is 1, a sample is
    a step."""
    up = p.upper()
    return [
        _fn(
            f"Runs one step on the sample and returns 1 ({up}_FRAME is 1: every sample steps), as a\n"
            " * framed model's push_sample does when its frame is full.",
            f"int {p}_push_sample({p}_state_t *st, const int8_t sample[{up}_SAMPLE_SIZE])",
            f"    {p}_step(st, sample);\n    return 1;",
        ),
        _fn(
            f"One sample of floats to int8: what {p}_quantize_input does, as a sample is a step here.",
            f"void {p}_quantize_sample(const float raw[{up}_SAMPLE_SIZE], int8_t xq[{up}_SAMPLE_SIZE])",
            f"    edgernn_quantize_input(&{p}_model, raw, xq);",
        ),
    ]


def _frame_wrappers(p: str) -> list[str]:
    """A framed model's streaming calls: one sample at a time, a step every FRAME samples."""
    up = p.upper()
    return [
        _fn(
            f"Buffers one sample in *st and, when {up}_FRAME samples are in, runs one step on them.\n"
            " * Returns 1 when it stepped (the class may be read then), else 0. A sequence's last samples\n"
            " * that do not fill a frame are never stepped on, as in training (edgernn.frame).",
            f"int {p}_push_sample({p}_state_t *st, const int8_t sample[{up}_SAMPLE_SIZE])",
            f"    int8_t *slot = &st->frame[(size_t)st->filled * {up}_SAMPLE_SIZE];\n"
            "    int32_t i;\n"
            f"    for (i = 0; i < {up}_SAMPLE_SIZE; ++i) {{\n"
            "        slot[i] = sample[i];\n"
            "    }\n"
            f"    if (++st->filled < {up}_FRAME) {{\n"
            "        return 0;\n"
            "    }\n"
            "    st->filled = 0;\n"
            f"    {p}_step(st, st->frame);\n"
            "    return 1;",
        ),
        _fn(
            "One sample of floats to int8 (normalisation and scales of edgernn_quantize_input; every\n"
            " * position of a frame shares them).",
            f"void {p}_quantize_sample(const float raw[{up}_SAMPLE_SIZE], int8_t xq[{up}_SAMPLE_SIZE])",
            f"    edgernn_quantize_features(&{p}_model, raw, xq, {up}_SAMPLE_SIZE);",
        ),
    ]


def _reverse_wrapper(qm: QuantizedModel, p: str) -> str:
    """A reverse model reads a sequence from its end: the steps of a run, reversed in place."""
    up = p.upper()
    kind, width, arg = (
        ("int32_t *tokens", "1", "tokens") if qm.config.tokens else ("int8_t *x", f"{up}_INPUT_SIZE", "x")
    )
    elem = "int32_t" if qm.config.tokens else "int8_t"
    return _fn(
        f"Before {p}_run: reverses the n steps of `{arg}` in place. The model reads a sequence from its\n"
        " * last step to its first (an RNN with direction=reverse), so it needs the whole sequence.",
        f"void {p}_reverse({kind}, size_t n)",
        f"    size_t a, b, i;\n    for (a = 0, b = n; a + 1 < b; ++a) {{\n        --b;\n"
        f"        for (i = 0; i < (size_t){width}; ++i) {{\n"
        f"            const {elem} t = {arg}[a * {width} + i];\n"
        f"            {arg}[a * {width} + i] = {arg}[b * {width} + i];\n"
        f"            {arg}[b * {width} + i] = t;\n        }}\n    }}",
    )


def _pad_wrapper(qm: QuantizedModel, p: str) -> str:
    """The pad steps of a pad_to model (edgernn.pad): after streaming, or into a run's input."""
    cfg = qm.config
    up = p.upper()
    if not cfg.bidirectional:
        body = f"        (void){p}_step_token(st, 0);" if cfg.tokens else f"        {p}_step(st, pad);"
        zero = "" if cfg.tokens else f"    static const int8_t pad[{up}_INPUT_SIZE] = {{0}};\n"
        return _fn(
            f"After the last of `steps_taken` steps: the pad steps up to {up}_PAD_TO (token 0, or an\n"
            " * all-zero input), as the model was measured on padded batches. Read the class after it.",
            f"void {p}_finish({p}_state_t *st, size_t steps_taken)",
            f"{zero}    size_t t;\n    for (t = steps_taken; t < {up}_PAD_TO; ++t) {{\n{body}\n    }}",
        )
    kind, width = ("int32_t *tokens", "1") if cfg.tokens else ("int8_t *x", f"{up}_INPUT_SIZE")
    arg = "tokens" if cfg.tokens else "x"
    return _fn(
        f"Before {p}_run: zero the steps n .. {up}_PAD_TO - 1 of `{arg}` (which must hold that many) and\n"
        f" * return the steps to run, max(n, {up}_PAD_TO), as the model was measured on padded batches.",
        f"size_t {p}_pad({kind}, size_t n)",
        f"    size_t i;\n    for (i = n * {width}; i < (size_t){up}_PAD_TO * {width}; ++i) {{\n"
        f"        {arg}[i] = 0;\n    }}\n    return n > {up}_PAD_TO ? n : (size_t){up}_PAD_TO;",
    )


def usage(qm: QuantizedModel, p: str) -> str:
    cfg = qm.config
    up = p.upper()
    lines = [
        "Usage (C99 or C++; no malloc, stdio, libm, memset, memcpy). In exactly one .c/.cpp file:",
        "    #define EDGERNN_IMPLEMENTATION   // the weight tables and the tanh table, once per program",
        '    #include "model.h"',
        "Every other file includes model.h alone and calls the same functions:",
        f"    static {p}_state_t st;               // {up}_STATE_BYTES of RAM, caller-owned",
        f"    {p}_init(&st);",
    ]
    if cfg.reverse:
        arg = "tokens" if cfg.tokens else "x"
        lines += [
            f"    {p}_reverse({arg}, n);                // the model reads a sequence from its end",
            f"    {p}_run(&st, {arg}, n, NULL, 0, logits);   // whole sequence; logits = the class scores",
        ]
    elif cfg.bidirectional:
        arg = "tokens" if cfg.tokens else "x"
        if cfg.pad_to:
            lines += [f"    T = {p}_pad({arg}, n);                 // n steps, then pad steps up to PAD_TO"]
        lines += [
            f"    static int8_t buf[{up}_RUN_BUF_BYTES(T)];",
            f"    {p}_run(&st, {arg}, T, buf, sizeof buf, logits);   // whole sequence",
        ]
    elif cfg.tokens:
        lines += [f"    {p}_step_token(&st, token);          // once per input token"]
    elif cfg.frame > 1:
        lines += [
            f"    {p}_quantize_sample(sample_f32, s);  // or produce int8 samples directly",
            f"    if ({p}_push_sample(&st, s)) {{ ... }} // once per sample; a step every FRAME samples",
        ]
    else:
        lines += [
            f"    {p}_quantize_input(sample_f32, x);   // or produce int8 x directly",
            f"    {p}_step(&st, x);                    // once per sample, e.g. from a sensor task",
        ]
    if cfg.task == Task.ONE_TO_MANY:
        lines.append(f"    n = {p}_generate(&st, start_token, out, max_len, seed);  // seed 0: greedy")
    elif not cfg.bidirectional and not cfg.reverse:
        when = "after the last step" if cfg.task == Task.MANY_TO_ONE else "after any step"
        if cfg.pad_to:
            lines.append(f"    {p}_finish(&st, n);                  // after n steps: the pad steps")
            when = "after finish"
        lines.append(f"    cls = {p}_classify(&st, logits);     // {when}")
    lines += [
        f"Code written for any model passes the descriptor &{p}_model to the prefix-free edgernn_*",
        "API declared below (edgernn_init, edgernn_step, edgernn_run, edgernn_classify, ...).",
    ]
    return "/*\n" + "\n".join((" * " + line).rstrip() for line in lines) + "\n */"
