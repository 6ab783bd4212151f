"""aotkernels: numba kernels compiled ahead of time into one native library per CPU target.

The runtime needs only numpy and ctypes::

    import aotkernels as ak
    ak.elemwise("add", x, y)            # PyTensor semantics, NumPy broadcasting
    ak.elemwise("exp", x, out=buf)      # destination passing: no allocation
    ak.cast(x, "int32")
    ak.reduce("sum", x, axis=(0, 2))    # PyTensor's CAReduce dtypes and identities

A signature missing from the library is JIT-compiled once from the same template and
cached on disk (needs ``aotkernels[jit]``); ``AOT_DISABLE_JIT=1`` makes that an error.
"""

from aotkernels.jit import KernelNotAvailable
from aotkernels.library import Library, LibraryError, default_library, load
from aotkernels.resolver import KernelError, cast, elemwise, reduce, resolve, resolve_reduce
from aotkernels.signature import ABI_VERSION, Signature

__all__ = [
    "ABI_VERSION",
    "KernelError",
    "KernelNotAvailable",
    "Library",
    "LibraryError",
    "Signature",
    "cast",
    "default_library",
    "elemwise",
    "load",
    "reduce",
    "resolve",
    "resolve_reduce",
]
__version__ = "0.1.0"
