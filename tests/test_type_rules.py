"""The op table's type rules agree with PyTensor's scalar ops for every dtype combination."""

from __future__ import annotations

import itertools

import pytest

from aotkernels.kernels.scalar_ops import DTYPES, SCALAR_OPS

ps = pytest.importorskip("pytensor.scalar")
psm = pytest.importorskip("pytensor.scalar.math")
from aotkernels.pytensor.servers import PYTENSOR_SCALAR_OPS  # noqa: E402

PYTENSOR_NAMES = {"and": "and_", "or": "or_"}


def pytensor_op(name):
    """PyTensor's instance of the op, checked against the mode's class mapping."""
    op = getattr(ps, PYTENSOR_NAMES.get(name, name), None) or getattr(psm, name)
    assert PYTENSOR_SCALAR_OPS[type(op)] == name
    return op


def test_every_op_maps_to_pytensor():
    assert set(PYTENSOR_SCALAR_OPS.values()) == set(SCALAR_OPS)


def pytensor_out(op, ins):
    try:
        return op.output_types([ps.get_scalar_type(d) for d in ins])[0].dtype
    except TypeError:
        return None


@pytest.mark.parametrize("name", [n for n in SCALAR_OPS if n != "cast"])
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
