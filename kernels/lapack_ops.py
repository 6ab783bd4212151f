"""The dense-solver table: PyTensor's LAPACK-backed ops and their operands' ranks.

Every op takes float64 or float32 matrices of one dtype plus a 0-d int64 ``flags``
operand (``LOWER``, ``UNIT_DIAGONAL``, ``NAN_ON_ERROR``, and for ``solve`` the structure,
``POSITIVE_DEFINITE`` or ``SYMMETRIC``, general without), so one kernel per dtype serves
every variant of an op; ``pivot_to_permutation``, on LU's integer pivots, has ``fixed``
dtypes instead. After the flags come the op's *workspaces*: memory the runtime
allocates and the kernel writes before it reads (a factorization, LAPACK's pivots and work
array; kernels cannot allocate). The kernels call LAPACK through the C shim's trampolines
(``build_tools/shim/aotk_shim.c``) and fall back to their own loops when none was bound at
load time. A matrix that is not positive definite (``cholesky``) or singular
(``solve_triangular``, ``solve``) makes the kernel return ``FAILED``, or, with
``NAN_ON_ERROR``, fill its result with NaN and succeed, as PyTensor's Ops do. ``slogdet``
never fails (a singular matrix has sign 0 and log-determinant -inf, as in NumPy);
``posdef`` (``scipy.linalg.cholesky`` succeeding, PyMC's ``PosDefMatrix``) fails only on
a non-finite element, which SciPy refuses before factoring. Numba-free,
like ``blas_ops``.
"""

from __future__ import annotations

from dataclasses import dataclass

from aotkernels.kernels.scalar_ops import FLOATS

#: bits of the ``flags`` operand
LOWER, UNIT_DIAGONAL, NAN_ON_ERROR, POSITIVE_DEFINITE, SYMMETRIC, INVERSE = 1, 2, 4, 8, 16, 32
#: items of ``solve``'s work array per row for ``SYMMETRIC`` (``sytrf``'s block size 64 of
#: reference LAPACK's ``ilaenv``, what SciPy's workspace query returns)
SYTRF_BLOCK = 64
#: the status of a kernel whose matrix is not positive definite or singular (or whose
#: pivot is out of range)
FAILED = 1
FLAGS_DTYPE = "int64"


@dataclass(frozen=True)
class LapackOp:
    name: str
    ranks: tuple[int, ...]  # inputs (the flags last), then the output
    doc: str
    failure: str  # what ``FAILED`` means, the message of the LinAlgError it raises
    workspaces: tuple[str, ...] = ()  # their dtypes ("": the matrices'), after the flags
    fixed: tuple[str, ...] = ()  # an op on integers: its inputs' and output's dtypes

    @property
    def nin(self) -> int:
        return len(self.ranks) - 1

    @property
    def ndim(self) -> int:
        """The signature's rank: the highest operand rank."""
        return max(self.ranks)

    def in_dtypes(self, dtype: str) -> tuple[str, ...]:
        """The kernel's input dtypes for matrices of ``dtype``."""
        if self.fixed:
            return self.fixed[:-1]
        matrices = self.nin - 1 - len(self.workspaces)
        return ((dtype,) * matrices + (FLAGS_DTYPE,)
                + tuple(w or dtype for w in self.workspaces))


LAPACK_DTYPES = FLOATS

LAPACK_OPS: dict[str, LapackOp] = {op.name: op for op in [
    LapackOp("cholesky", (2, 0, 2), "out = L with L @ L.T = a (LOWER), else U with U.T @ U = a"
             " (potrf)", "Matrix is not positive definite"),
    LapackOp("solve_triangular", (2, 2, 0, 2), "out = x with a @ x = b, a triangular (trtrs)",
             "Matrix is singular"),
    LapackOp("solve", (2, 2, 0, 2, 1, 1, 2), "out = x with a @ x = b: LU (getrf, getrs), or"
             " Cholesky (potrf, potrs) if POSITIVE_DEFINITE, Bunch-Kaufman (sytrf, sytrs) if"
             " SYMMETRIC; workspaces: the factorization, the pivots, sytrf's work array",
             "Matrix is singular.", ("", "int32", "")),
    LapackOp("lu_factor", (2, 0, 1, 2), "out = the LU factors of a, partial pivoting (getrf);"
             " workspace: the pivots, 0-based (SciPy's lu_factor)", "Matrix is singular.",
             ("int32",)),
    LapackOp("pivot_to_permutation", (1, 0, 1, 1), "out = the row permutation LU's pivots"
             " make (INVERSE), else its inverse; workspace: the permutation",
             "pivot out of range", ("int64",), ("int32", "int64", "int64", "int64")),
    LapackOp("cho_solve", (2, 2, 0, 2), "out = x with c @ c.T @ x = b (LOWER), else"
             " c.T @ c @ x = b, for a Cholesky factor c (potrs)", "Matrix is singular."),
    LapackOp("slogdet", (2, 0, 2, 1, 1), "out = [sign, log|det a|] from the LU factors"
             " (getrf), accumulated as NumPy's slogdet does; (0, -inf) for a singular a;"
             " workspaces: the factorization, the pivots", "", ("", "int32")),
    LapackOp("posdef", (2, 0, 2, 0), "out = 1 if a's upper triangle (LOWER: lower) has a"
             " Cholesky factor (potrf), else 0; workspace: the factor",
             "array must not contain infs or NaNs", ("",)),
]}
