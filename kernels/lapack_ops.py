"""The dense-solver table: PyTensor's LAPACK-backed ops and their operands' ranks.

Every op takes float64 or float32 matrices of one dtype plus a 0-d int64 ``flags``
operand (``LOWER``, ``UNIT_DIAGONAL``, ``NAN_ON_ERROR``), so one kernel per dtype serves
every variant of an op. The kernels call LAPACK through the C shim's trampolines
(``build_tools/shim/aotk_shim.c``) and fall back to their own loops when none was bound at
load time. A matrix that is not positive definite (``cholesky``) or singular
(``solve_triangular``) makes the kernel return ``FAILED``, or, with ``NAN_ON_ERROR``, fill
its result with NaN and succeed, as PyTensor's Ops do. Numba-free, like ``blas_ops``.
"""

from __future__ import annotations

from dataclasses import dataclass

from aotkernels.kernels.scalar_ops import FLOATS

#: bits of the ``flags`` operand
LOWER, UNIT_DIAGONAL, NAN_ON_ERROR = 1, 2, 4
#: the status of a kernel whose matrix is not positive definite or singular
FAILED = 1
FLAGS_DTYPE = "int64"


@dataclass(frozen=True)
class LapackOp:
    name: str
    ranks: tuple[int, ...]  # inputs (the flags last), then the output
    doc: str
    failure: str  # what ``FAILED`` means, the message of the LinAlgError it raises

    @property
    def nin(self) -> int:
        return len(self.ranks) - 1

    @property
    def ndim(self) -> int:
        """The signature's rank: the highest operand rank."""
        return max(self.ranks)

    def in_dtypes(self, dtype: str) -> tuple[str, ...]:
        """The kernel's input dtypes for matrices of ``dtype``."""
        return (dtype,) * (self.nin - 1) + (FLAGS_DTYPE,)


LAPACK_DTYPES = FLOATS

LAPACK_OPS: dict[str, LapackOp] = {op.name: op for op in [
    LapackOp("cholesky", (2, 0, 2), "out = L with L @ L.T = a (LOWER), else U with U.T @ U = a"
             " (potrf)", "Matrix is not positive definite"),
    LapackOp("solve_triangular", (2, 2, 0, 2), "out = x with a @ x = b, a triangular (trtrs)",
             "Matrix is singular"),
]}
