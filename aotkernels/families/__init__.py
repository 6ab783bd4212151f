"""The public operations, one module per kernel family (the same word as in ``kernels/``
and in the catalog): ``elemwise``, ``reduce``, ``axis``, ``blas``, ``index``, ``lapack``,
``fused`` (kernels plans fuse), ``user``. Each checks its operands and resolves its calls
through ``aotkernels.call`` (``fused``: the library or the JIT's background compiler)."""
