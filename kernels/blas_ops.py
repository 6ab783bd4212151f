"""The matrix-product table: PyTensor's BLAS-backed ops and their operands' ranks.

Every op takes float64 or float32 operands of one dtype and calls a BLAS through the C
shim's trampolines (``build_tools/shim/aotk_shim.c``), falling back to its own loop when no
BLAS was found at load time. Outputs that a product accumulates into (``beta * y``) are
read as well as written. Numba-free, like ``scalar_ops``.
"""

from __future__ import annotations

from dataclasses import dataclass

from aotkernels.kernels.scalar_ops import FLOATS


@dataclass(frozen=True)
class BlasOp:
    name: str
    ranks: tuple[int, ...]  # inputs, then the output
    doc: str

    @property
    def nin(self) -> int:
        return len(self.ranks) - 1

    @property
    def ndim(self) -> int:
        """The signature's rank: the highest operand rank."""
        return max(self.ranks)


BLAS_DTYPES = FLOATS

BLAS_OPS: dict[str, BlasOp] = {op.name: op for op in [
    BlasOp("dot", (1, 1, 0), "out = x . y"),
    BlasOp("gemv", (2, 1, 0, 0, 1), "y = alpha * A @ x + beta * y"),
    BlasOp("gemm", (2, 2, 0, 0, 2), "C = alpha * A @ B + beta * C"),
    BlasOp("matmul", (3, 3, 3), "C[i] = A[i] @ B[i]"),
]}
