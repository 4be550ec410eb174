"""A cycle counter that compiled code can read, and its calibration to nanoseconds.

``rdtsc()`` lowers to LLVM's ``llvm.readcyclecounter``, which is the ``rdtsc``
instruction on x86-64: about 20 cycles, no system call, so it can bracket every command
inside the compiled loop without distorting what it measures much. The counter ticks
at a constant rate on CPUs with ``constant_tsc``/``nonstop_tsc`` (every x86-64 server
of the last decade), which ``tsc_per_ns`` measures against ``time.perf_counter_ns``.
"""

from __future__ import annotations

import time

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def rdtsc(typingctx):  # noqa: ARG001 - numba passes the typing context
    """Current cycle counter as uint64 (only callable from numba-compiled code)."""
    sig = types.uint64()

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(64), [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.readcyclecounter")
        return builder.call(fn, [])

    return sig, codegen


@njit(cache=True)
def read_counter() -> int:
    """The cycle counter, for Python callers that calibrate it."""
    return rdtsc()


def tsc_per_ns(*, seconds: float = 0.2) -> float:
    """Counter ticks per nanosecond, measured over ``seconds`` of wall-clock time.

    Brackets a sleep with both clocks; the counter is read right next to
    ``perf_counter_ns`` so the Python call overhead (~100 ns) is negligible against
    the 0.2 s span (5e-7 relative error).
    """
    read_counter()  # compile or load before timing
    c0, t0 = read_counter(), time.perf_counter_ns()
    time.sleep(seconds)
    c1, t1 = read_counter(), time.perf_counter_ns()
    return (c1 - c0) / (t1 - t0)
