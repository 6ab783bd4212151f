"""The installed ``mykernels`` wheel (or, without it, the catalog from source, on the JIT)."""

import numpy as np

try:
    import mykernels as k
except ImportError:  # not installed: the catalog module itself, kernels JIT-compiled
    import mykernels_catalog as k

x = np.linspace(-3, 3, 12).reshape(3, 4)
y = np.empty_like(x)
print("mult(1.2, 3.4) =", k.mult(1.2, 3.4), " mult(3, 4) as int32 =",
      k.mult(np.int32(3), np.int32(4)))
print("square:", k.square(x[0]))
print("huber(x, 1.5, out=y):", k.huber(x, 1.5, out=y)[0])
print("logaddexp.reduce(x, axis=1):", k.logaddexp.reduce(x, axis=1),
      "NumPy:", np.logaddexp.reduce(x, axis=1))
print("matvec(x, w):", k.matvec(x, np.ones(4)), "NumPy:", x @ np.ones(4))
print("above(x[0], -1.5):", k.above(x[0], -1.5))
if hasattr(k, "info"):
    info = k.info()
    print(f"library {info['library']} (target {info['target']}: {info['reason']})")
