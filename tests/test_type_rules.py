"""The op table's type rules agree with PyTensor's scalar ops for every dtype combination."""

from __future__ import annotations

import itertools

import pytest

from aotkernels.kernels.scalar_ops import DTYPES, SCALAR_OPS

ps = pytest.importorskip("pytensor.scalar")
psm = pytest.importorskip("pytensor.scalar.math")
from aotkernels.pytensor.servers import PYTENSOR_SCALAR_OPS  # noqa: E402

PYTENSOR_NAMES = {"and": "and_", "or": "or_", "xlogx": "scalar_xlogx",
                  "xlogy0": "scalar_xlogy0"}
#: ops only one PyTensor line has as a scalar op (2.x: iv, xlogx, xlogy0)
ONE_LINE_ONLY = {"iv", "xlogx", "xlogy0"}
#: aotkernels' own ops (``check`` serves ``CheckAndRaise``)
OWN = {"check"}
#: ops no PyTensor class maps to: served by the SciPy function a scalar op's ``nfunc_spec``
#: names (PyMC's ``I0e``, ``I1e``; ``servers.scalar_op_name``)
BY_NFUNC_SPEC = {"i0e", "i1e"}


def pytensor_op(name):
    """PyTensor's instance of the op, checked against the mode's class mapping."""
    import pytensor

    attr = PYTENSOR_NAMES.get(name, name)
    op = getattr(ps, attr, None) or getattr(psm, attr, None)
    if op is None and name in ("xlogx", "xlogy0"):
        op = getattr(pytest.importorskip("pytensor.tensor.xlogx"), attr, None)
    if op is None and name in ONE_LINE_ONLY:
        pytest.skip(f"PyTensor {pytensor.__version__} has no scalar {name}")
    assert PYTENSOR_SCALAR_OPS[type(op)] == name
    return op


def test_every_op_maps_to_pytensor():
    mapped = set(PYTENSOR_SCALAR_OPS.values())
    assert mapped <= set(SCALAR_OPS)
    assert set(SCALAR_OPS) - mapped <= ONE_LINE_ONLY | OWN | BY_NFUNC_SPEC


def pytensor_out(op, ins):
    try:
        return op.output_types([ps.get_scalar_type(d) for d in ins])[0].dtype
    except TypeError:
        return None


@pytest.mark.parametrize("name", [n for n in SCALAR_OPS
                                  if n not in ("cast", *OWN, *BY_NFUNC_SPEC)])
def test_output_dtype_matches_pytensor(name):
    ours, theirs = SCALAR_OPS[name], pytensor_op(name)
    checked = 0
    for ins in itertools.product(DTYPES, repeat=ours.nin):
        try:
            got = ours.types(ins)[0]
        except TypeError:
            got = None
        assert got == pytensor_out(theirs, ins), (name, ins)
        checked += 1
    assert checked == len(DTYPES) ** ours.nin


def test_cast_takes_its_output_dtype():
    assert SCALAR_OPS["cast"].types(("float64",), "int8")[0] == "int8"
    with pytest.raises(TypeError):
        SCALAR_OPS["cast"].types(("float64",))


def test_explicit_output_must_agree_with_the_rule():
    assert SCALAR_OPS["add"].types(("int8", "int8"), "int8")[0] == "int8"
    with pytest.raises(TypeError):
        SCALAR_OPS["add"].types(("int8", "int8"), "float64")
