"""aotkernels: numba kernels compiled ahead of time into one native library per CPU target.

The runtime needs only numpy and ctypes::

    import aotkernels as ak
    ak.elemwise("add", x, y)            # PyTensor semantics, NumPy broadcasting
    ak.elemwise("exp", x, out=buf)      # destination passing: no allocation
    ak.cast(x, "int32")
    ak.reduce("sum", x, axis=(0, 2))    # PyTensor's CAReduce dtypes and identities
    ak.softmax(x, axis=1); ak.argmax(x, axis=0); ak.cumsum(x, axis=1); ak.argsort(x)
    ak.dot(a, b)                        # BLAS through the library's trampolines
    ak.cholesky(a); ak.solve_triangular(L, b, lower=True)   # LAPACK (SciPy's) likewise
    ak.solve(a, b, assume_a="pos"); ak.cho_solve((L, True), b); ak.lu_factor(a)
    ak.slogdet(a); ak.det(a); ak.inv(a); ak.is_positive_definite(a)
    ak.join(0, x, y); ak.alloc(0.0, (3, 4))

A signature missing from the library is JIT-compiled once from the same template and
cached on disk (needs ``aotkernels[jit]``); ``AOT_DISABLE_JIT=1`` makes that an error.
"""

from aotkernels.assemble import alloc, join
from aotkernels.call import KernelError
from aotkernels.families.axis import (
    argmax,
    argmin,
    argsort,
    cumprod,
    cumsum,
    log_softmax,
    logsumexp,
    softmax,
    softmax_grad,
    sort,
)
from aotkernels.families.blas import dot, gemm, gemv, matmul
from aotkernels.families.elemwise import cast, elemwise, resolve
from aotkernels.families.index import inc, inc_points, put, put_points, take, take_points
from aotkernels.families.lapack import (
    cho_solve,
    cholesky,
    det,
    inv,
    is_positive_definite,
    lu_factor,
    pivot_to_permutation,
    slogdet,
    solve,
    solve_triangular,
)
from aotkernels.families.reduce import reduce, resolve_reduce
from aotkernels.jit import KernelNotAvailable
from aotkernels.library import Library, LibraryError, default_library, load
from aotkernels.signature import ABI_VERSION, Signature

__all__ = [
    "ABI_VERSION",
    "KernelError",
    "KernelNotAvailable",
    "Library",
    "LibraryError",
    "Signature",
    "alloc",
    "argmax",
    "argmin",
    "argsort",
    "cast",
    "cho_solve",
    "cholesky",
    "cumprod",
    "cumsum",
    "default_library",
    "det",
    "dot",
    "elemwise",
    "gemm",
    "gemv",
    "inc",
    "inc_points",
    "inv",
    "is_positive_definite",
    "join",
    "load",
    "log_softmax",
    "logsumexp",
    "lu_factor",
    "matmul",
    "pivot_to_permutation",
    "put",
    "put_points",
    "reduce",
    "resolve",
    "resolve_reduce",
    "slogdet",
    "softmax",
    "softmax_grad",
    "solve",
    "solve_triangular",
    "sort",
    "take",
    "take_points",
]
__version__ = "0.1.0"
