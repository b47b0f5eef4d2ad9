"""The integer contract (docs/integer-contract.md): one module per job.

- `constants`: the contract's numbers, the rounding rule and the tanh LUT;
- `meta`: ModelMeta, the typed provenance of a model;
- `model`: QuantCell, QuantizedModel and its JSON form (model.int8.json);
- `bounds`: the overflow proof that every model must pass;
- `quantize`: float -> integers (weights, multipliers, shifts, input scales, the input rule);
- `reference`: the torch integer reference that every backend must match bit for bit.
"""

from edgernn.contract.bounds import cell_bounds, check_bounds, narrow_requant
from edgernn.contract.constants import (
    ACC_LIMIT,
    LUT_SIZE,
    M_LIMIT,
    MAX_SHIFT,
    OFFSET_BITS,
    Q_MAX,
    V_LIMIT,
    Z_FRAC,
    Z_MAX,
    Z_MIN,
    round_half_away,
    tanh_lut,
)
from edgernn.contract.meta import ModelMeta
from edgernn.contract.model import QuantCell, QuantizedModel
from edgernn.contract.quantize import (
    input_scales,
    quantize_cell,
    quantize_inputs,
    quantize_model,
    quantize_token_cell,
)
from edgernn.contract.reference import (
    IntResult,
    cell_step,
    input_accumulator,
    int_forward,
    int_generate,
    requantize,
)

__all__ = [
    "ACC_LIMIT",
    "LUT_SIZE",
    "MAX_SHIFT",
    "M_LIMIT",
    "OFFSET_BITS",
    "Q_MAX",
    "V_LIMIT",
    "Z_FRAC",
    "Z_MAX",
    "Z_MIN",
    "IntResult",
    "ModelMeta",
    "QuantCell",
    "QuantizedModel",
    "cell_bounds",
    "cell_step",
    "check_bounds",
    "input_accumulator",
    "input_scales",
    "int_forward",
    "int_generate",
    "narrow_requant",
    "quantize_cell",
    "quantize_inputs",
    "quantize_model",
    "quantize_token_cell",
    "requantize",
    "round_half_away",
    "tanh_lut",
]
