"""SAQ's stage 1 over the 32 lanes of a FastScan block, in explicit LLVM vectors.

The same arithmetic as numba loops over 32-element arrays (LLVM emitted each as a vector loop
and a scalar one, chosen at run time by an aliasing check, with the block's values stored between
loops) took 47-54 ns a block of two segments; as one expression over <32 x float> registers,
here, it takes 10. The block's lanes that pass come back as the bits of an integer, so the
scan visits only those (numba's ``trailing_zeros`` finds each), not all 32.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .fastscan import BLOCK


@intrinsic
def stage1_lanes(typingctx, lanes, b, acc, seg, base, tau, sigmas, alive, dcur, slack):
    """The lanes of block b whose stage-1 lower bound is at most tau, as bits (lane v: bit v)
    of ``alive`` (int64), with every lane's estimate and slack written to ``dcur`` and ``slack``
    (32 float32 each):

        dcur  = base + K1 + sum_s rescale_s (seg[2, s] acc[s] + seg[3, s])
        slack = sigmas * sqrt(sum_s spread_s seg[1, s])

    ``lanes`` (blocks, 2S + 1, 32) holds rescale_s, spread_s and K1 per lane (`scan.fast_terms`),
    ``acc`` (S, 32) int32 the block's FastScan sums per segment, ``seg`` (5, S) the query's
    per-segment scale, offset and ||x_s||^2 (`scan._saq_begin`)."""
    sig = types.int64(lanes, b, acc, seg, base, tau, sigmas, alive, dcur, slack)

    def codegen(context, builder, signature, args):
        f32, i32, i64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
        floats, ints = ir.VectorType(f32, BLOCK), ir.VectorType(i32, BLOCK)
        table, sums, terms, est_out, slack_out = (context.make_array(signature.args[i])(context, builder, args[i])
                                                  for i in (0, 2, 3, 8, 9))
        block, alive = (context.cast(builder, args[i], signature.args[i], types.int64) for i in (1, 7))
        base, tau, sigmas = (context.cast(builder, args[i], signature.args[i], types.float32) for i in (4, 5, 6))
        S = builder.extract_value(sums.shape, 0)
        first = builder.mul(block, builder.extract_value(table.shape, 1))  # row (b, 0) of lanes

        def row(arr, index, vector):  # a C-contiguous row of 32 values as one vector
            at = builder.gep(arr.data, [builder.mul(index, ir.Constant(i64, BLOCK))])
            return builder.load(builder.bitcast(at, vector.as_pointer()), align=4)

        def splat(x):
            one = builder.insert_element(ir.Constant(floats, None), x, ir.Constant(i32, 0))
            return builder.shuffle_vector(one, ir.Constant(floats, None), ir.Constant(ints, [0] * BLOCK))

        def term(r, s):  # seg[r, s]
            return splat(builder.load(builder.gep(terms.data, [builder.add(builder.mul(ir.Constant(i64, r), S), s)])))

        k1 = row(table, builder.add(first, builder.mul(S, ir.Constant(i64, 2))), floats)
        est = cgutils.alloca_once_value(builder, builder.fadd(splat(base), k1))  # registers, after mem2reg
        var = cgutils.alloca_once_value(builder, ir.Constant(floats, [0.0] * BLOCK))
        with cgutils.for_range(builder, S) as loop:
            s = loop.index
            h = builder.fadd(builder.fmul(term(2, s), builder.sitofp(row(sums, s, ints), floats)), term(3, s))
            rescale = row(table, builder.add(first, s), floats)
            builder.store(builder.fadd(builder.load(est), builder.fmul(rescale, h)), est)
            spread = row(table, builder.add(first, builder.add(S, s)), floats)
            builder.store(builder.fadd(builder.load(var), builder.fmul(spread, term(1, s))), var)
        root = cgutils.get_or_insert_function(builder.module, ir.FunctionType(floats, [floats]), "llvm.sqrt.v32f32")
        d = builder.load(est)
        spread = builder.fmul(splat(sigmas), builder.call(root, [builder.load(var)]))
        builder.store(d, builder.bitcast(est_out.data, floats.as_pointer()), align=4)
        builder.store(spread, builder.bitcast(slack_out.data, floats.as_pointer()), align=4)
        below = builder.fcmp_ordered("<=", builder.fsub(d, spread), splat(tau))
        return builder.and_(builder.zext(builder.bitcast(below, i32), i64), alive)

    return sig, codegen
