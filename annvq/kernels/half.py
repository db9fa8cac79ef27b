"""float16 matrices read as float32: half the bytes of a product that memory bandwidth bounds.

numba has no float16 type, so the values are stored as their uint16 bits (`as_half_bits`) and
widened by LLVM's ``fpext half to float``, which AVX2 machines with F16C run as ``vcvtph2ps``,
8 values per step. `widen` lets one kernel body read float32 and float16-bits arrays alike.
"""

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload


@intrinsic
def half_to_float(typingctx, bits):
    """The float32 value of a float16 given by its uint16 bits (exact: every float16 is a float32)."""
    sig = types.float32(types.uint16)

    def codegen(context, builder, signature, args):
        return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())

    return sig, codegen


def widen(value):
    """A matrix element as float32: float16 bits are widened, float32 passes through (jitted only)."""
    raise NotImplementedError("widen is for numba kernels")


@overload(widen)
def _widen(value):
    if value == types.uint16:
        return lambda value: half_to_float(value)
    return lambda value: value


def as_half_bits(W: np.ndarray) -> np.ndarray:
    """W rounded to float16, as uint16 bits (C-contiguous) for kernels that read it through `widen`."""
    return np.ascontiguousarray(np.asarray(W, np.float32).astype(np.float16)).view(np.uint16)


def from_half_bits(W16: np.ndarray) -> np.ndarray:
    """The float32 values of `as_half_bits`' output, for BLAS."""
    return np.ascontiguousarray(W16.view(np.float16).astype(np.float32))
