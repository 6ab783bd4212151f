"""The public operations, one module per kernel family (the same word as in ``kernels/``
and in the catalog): ``elemwise``, ``reduce``, ``axis``, ``blas``, ``index``. Each checks
its operands and resolves its calls through ``aotkernels.call``."""
