"""Bad input gets a ValueError or TypeError naming the parameter and the rule, and every
Jacobian builder respects the memory budget before allocating (docs/design.md, section 5)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import scipy.sparse as sp

import vecjac as vj
from vecjac import direct
from vecjac.jacobians import (
    conv_block_wrt_input,
    conv_block_wrt_kernel,
    conv_pattern,
    conv_wrt_bias,
    conv_wrt_input,
    conv_wrt_kernel,
)

A_OK = np.ones((2, 5, 5))
K_OK = np.ones((3, 2, 3, 3))
DZ_OK = np.ones((3, 3, 3))  # stride 1, padding 0


def _entry_points(A=A_OK, K=K_OK, stride=1, padding=0, dZ=None):
    """Every public function that takes the convolution's settings, as zero-argument calls."""
    dZ = DZ_OK if dZ is None else dZ
    hk, wk = K.shape[2:] if K.ndim == 4 else (3, 3)
    hw = A.shape[-2:] if A.ndim >= 2 else (5, 5)
    return {
        "conv2d": lambda: direct.conv2d(A, K, stride=stride, padding=padding),
        "conv2d_backward": lambda: direct.conv2d_backward(dZ, A, K, stride, padding),
        "conv_wrt_input": lambda: conv_wrt_input(K, np.shape(A), stride, padding),
        "conv_wrt_kernel": lambda: conv_wrt_kernel(A, np.shape(K), stride, padding),
        "conv_pattern": lambda: conv_pattern(np.shape(A), np.shape(K), stride, padding),
        "conv_output_shape": lambda: vj.conv_output_shape(hw, (hk, wk), stride, padding),
        "conv_block_wrt_input": lambda: conv_block_wrt_input(K[0, 0], hw, stride, padding),
        "conv_block_wrt_kernel": lambda: conv_block_wrt_kernel(A[0], (hk, wk), stride, padding),
        "kernel_gradient": lambda: direct.kernel_gradient(A, dZ, (hk, wk), stride, padding),
        "input_gradient": lambda: direct.input_gradient(dZ, K, hw, stride, padding),
    }


SETTINGS = list(_entry_points())


def _call(name, **kwargs):
    return _entry_points(**kwargs)[name]()


def test_the_valid_call_of_every_entry_point_works():
    for call in _entry_points().values():
        call()


# --- kernel larger than the padded input -------------------------------------------------------
@pytest.mark.parametrize("name", [n for n in SETTINGS if n not in ("kernel_gradient",
                                                                    "input_gradient")])
@pytest.mark.parametrize(("kernel", "padding"), [((6, 3), 0), ((3, 8), 1), ((8, 8), (1, 1))])
def test_kernel_larger_than_padded_input(name, kernel, padding):
    K = np.ones((3, 2) + kernel)
    with pytest.raises(ValueError, match=r"kernel size .* is larger than the padded input"):
        _call(name, K=K, padding=padding)


def test_seed_formulas_refuse_kernel_larger_than_padded_input():
    """kernel_gradient / input_gradient validate the settings with the one shape rule too."""
    with pytest.raises(ValueError, match=r"kernel size .* is larger than the padded input"):
        direct.kernel_gradient(A_OK, DZ_OK, (6, 3))
    with pytest.raises(ValueError, match=r"kernel size .* is larger than the padded input"):
        direct.input_gradient(DZ_OK, np.ones((3, 2, 6, 3)), (5, 5))


# --- stride and padding ------------------------------------------------------------------------
@pytest.mark.parametrize("name", SETTINGS)
@pytest.mark.parametrize("stride", [0, -1, (1, 0), (-2, 1)])
def test_stride_below_one(name, stride):
    with pytest.raises(ValueError, match=r"^stride must be >= 1"):
        _call(name, stride=stride)


@pytest.mark.parametrize("name", SETTINGS)
@pytest.mark.parametrize("padding", [-1, (0, -1), (-2, 0)])
def test_negative_padding(name, padding):
    with pytest.raises(ValueError, match=r"^padding must be >= 0"):
        _call(name, padding=padding)


@pytest.mark.parametrize("name", SETTINGS)
@pytest.mark.parametrize("stride", [1.5, 2.0, "2", None, True, (1, 2, 3), (1.0, 1), [1]])
def test_non_int_stride(name, stride):
    with pytest.raises(TypeError, match=r"^stride must be an int or a pair of ints"):
        _call(name, stride=stride)


@pytest.mark.parametrize("name", SETTINGS)
@pytest.mark.parametrize("padding", [0.5, "1", (1, 1.5), False])
def test_non_int_padding(name, padding):
    with pytest.raises(TypeError, match=r"^padding must be an int or a pair of ints"):
        _call(name, padding=padding)


# --- channels, dimensions, dtypes, values ------------------------------------------------------
@pytest.mark.parametrize(
    "name", ["conv2d", "conv2d_backward", "conv_wrt_input", "conv_wrt_kernel", "conv_pattern"]
)
def test_channel_mismatch(name):
    with pytest.raises(ValueError, match=r"channel mismatch: .* 3 channels .* C_in = 2"):
        _call(name, A=np.ones((3, 5, 5)))


def test_channel_mismatch_of_batch():
    with pytest.raises(ValueError, match="channel mismatch"):
        direct.conv2d(np.ones((4, 1, 5, 5)), K_OK)


@pytest.mark.parametrize("A", [np.ones((5, 5)), np.ones(5), np.ones((1, 2, 2, 5, 5))])
@pytest.mark.parametrize("name", ["conv2d", "conv2d_backward", "conv_wrt_kernel"])
def test_wrong_ndim_of_A(name, A):
    with pytest.raises(ValueError, match=r"^A must have 3 or 4 dimensions, got shape"):
        _call(name, A=A)


@pytest.mark.parametrize("K", [np.ones((2, 3, 3)), np.ones((3, 3)), np.ones((1, 3, 2, 3, 3))])
@pytest.mark.parametrize("name", ["conv2d", "conv2d_backward", "conv_wrt_input"])
def test_wrong_ndim_of_K(name, K):
    with pytest.raises(ValueError, match=r"^K must have 4 dimensions, got shape"):
        _call(name, K=K)


@pytest.mark.parametrize("shape", [(5, 5), (1, 1, 2, 5, 5)])
def test_wrong_length_of_input_shape(shape):
    with pytest.raises(ValueError, match=r"^input_shape must be"):
        conv_wrt_input(K_OK, shape)


def test_wrong_length_of_kernel_shape():
    with pytest.raises(ValueError, match=r"^kernel_shape must be"):
        conv_wrt_kernel(A_OK, (2, 3, 3))


BAD_DTYPES = {
    "strings": np.full((2, 5, 5), "a"),
    "complex": np.ones((2, 5, 5), dtype=complex),
    "object": np.ones((2, 5, 5), dtype=object),
    "datetime": np.zeros((2, 5, 5), dtype="datetime64[s]"),
}


@pytest.mark.parametrize("bad", list(BAD_DTYPES.values()), ids=list(BAD_DTYPES))
@pytest.mark.parametrize("name", ["conv2d", "conv2d_backward", "conv_wrt_kernel"])
def test_non_numeric_A(name, bad):
    with pytest.raises(TypeError, match=r"^A must be a real numeric array"):
        _call(name, A=bad)


@pytest.mark.parametrize("name", ["conv2d", "conv2d_backward", "conv_wrt_input"])
@pytest.mark.parametrize("kind", ["strings", "complex", "object"])
def test_non_numeric_K(name, kind):
    bad = np.ones((3, 2, 3, 3), dtype=complex) if kind == "complex" else (
        np.full((3, 2, 3, 3), "a") if kind == "strings" else np.ones((3, 2, 3, 3), dtype=object)
    )
    with pytest.raises(TypeError, match=r"^K must be a real numeric array"):
        _call(name, K=bad)


def test_non_numeric_dZ_and_b():
    with pytest.raises(TypeError, match=r"^dZ must be a real numeric array"):
        direct.conv2d_backward(DZ_OK.astype(complex), A_OK, K_OK)
    with pytest.raises(TypeError, match=r"^b must be a real numeric array"):
        direct.conv2d(A_OK, K_OK, np.array(["a", "b", "c"]))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("name", ["conv2d", "conv2d_backward", "conv_wrt_kernel"])
def test_non_finite_A(name, value):
    A = A_OK.copy()
    A[1, 2, 3] = value
    with pytest.raises(ValueError, match=r"^A contains NaN or infinite values"):
        _call(name, A=A)


@pytest.mark.parametrize("value", [np.nan, np.inf])
@pytest.mark.parametrize("name", ["conv2d", "conv2d_backward", "conv_wrt_input"])
def test_non_finite_K(name, value):
    K = K_OK.copy()
    K[0, 1, 2, 2] = value
    with pytest.raises(ValueError, match=r"^K contains NaN or infinite values"):
        _call(name, K=K)


def test_non_finite_dZ_and_b():
    dZ = DZ_OK.copy()
    dZ[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"^dZ contains NaN"):
        direct.conv2d_backward(dZ, A_OK, K_OK)
    with pytest.raises(ValueError, match=r"^b contains NaN"):
        direct.conv2d(A_OK, K_OK, [0.0, np.inf, 0.0])


def test_wrong_bias_length():
    with pytest.raises(ValueError, match=r"^b has 2 entries but K has 3 kernels"):
        direct.conv2d(A_OK, K_OK, [1.0, 2.0])


# --- upstream gradient -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("A", "dZ"),
    [
        (A_OK, np.ones((3, 3, 4))),  # one column too many
        (A_OK, np.ones((2, 3, 3))),  # wrong number of output channels
        (np.ones((2, 2, 5, 5)), np.ones((3, 3, 3, 3))),  # wrong batch size
    ],
)
def test_wrong_dZ_shape_for_conv2d_backward(A, dZ):
    with pytest.raises(ValueError, match=r"^dZ has shape .*, expected"):
        direct.conv2d_backward(dZ, A, K_OK)


def test_wrong_dZ_ndim_for_conv2d_backward():
    with pytest.raises(ValueError, match=r"^dZ must have 3 dimensions"):
        direct.conv2d_backward(np.ones((1, 3, 3, 3)), A_OK, K_OK)
    with pytest.raises(ValueError, match=r"^dZ must have 4 dimensions"):
        direct.conv2d_backward(DZ_OK, A_OK[None], K_OK)


WRONG_DZ = pytest.mark.parametrize("dZ_shape", [(3, 2, 2), (3, 4, 4), (3, 3, 2)])


@WRONG_DZ
def test_wrong_dZ_shape_for_kernel_gradient(dZ_shape):
    """The seed formula must refuse a dZ that does not fit X, the kernel size, the stride and
    the padding, naming dZ, instead of returning a silently wrong gradient."""
    with pytest.raises(ValueError, match=r"dZ"):
        direct.kernel_gradient(A_OK, np.ones(dZ_shape), (3, 3))


@WRONG_DZ
def test_wrong_dZ_shape_for_input_gradient(dZ_shape):
    with pytest.raises(ValueError, match=r"dZ"):
        direct.input_gradient(np.ones(dZ_shape), K_OK, (5, 5))


def test_dZ_channels_for_input_gradient_names_dZ():
    with pytest.raises(ValueError, match=r"dZ"):
        direct.input_gradient(np.ones((2, 3, 3)), K_OK, (5, 5))


# --- vec, unvec, order ---------------------------------------------------------------------------
@pytest.mark.parametrize(("size", "shape"), [(11, (3, 4)), (13, (3, 4)), (2, ()), (24, (2, 3, 5))])
def test_unvec_with_the_wrong_size(size, shape):
    with pytest.raises(ValueError, match=rf"^unvec: v has {size} elements but shape"):
        vj.unvec(np.zeros(size), shape)


@pytest.mark.parametrize("order", ["f", "A", "K", None])
def test_bad_order(order):
    with pytest.raises(ValueError, match=r"^order must be 'F'"):
        vj.vec(np.ones((2, 2)), order=order)
    with pytest.raises(ValueError, match=r"^order must be 'F'"):
        vj.unvec(np.ones(4), (2, 2), order=order)


def test_convert_order_bad_input():
    J = conv_wrt_input(K_OK, A_OK.shape)
    with pytest.raises(TypeError, match="of_shape and wrt_shape"):
        vj.convert_order(J.matrix)
    with pytest.raises(ValueError, match=r"does not match of_shape"):
        vj.convert_order(J.matrix, (3, 3, 4), A_OK.shape)
    with pytest.raises(ValueError, match=r"^order must be"):
        vj.convert_order(J, to="X")


# --- the Jacobian object ------------------------------------------------------------------------
def _layer_jacobians():
    J1 = conv_wrt_input(K_OK, A_OK.shape, of="Z1", wrt="A0")  # (3, 3, 3) <- (2, 5, 5)
    J2 = conv_wrt_input(np.ones((2, 3, 2, 2)), (3, 3, 3), of="Z2", wrt="Z1")  # (2, 2, 2) <- Z1
    return J1, J2


def test_chain_with_names_that_do_not_meet():
    J1, J2 = _layer_jacobians()
    other = vj.Jacobian(J1.matrix, "Z9", "A0", J1.of_shape, J1.wrt_shape)
    with pytest.raises(ValueError, match=r"chain rule mismatch: dZ2/dZ1 .*dZ9/dA0"):
        J2 @ other


def test_chain_with_shapes_that_do_not_meet():
    J1, J2 = _layer_jacobians()
    # same names, but Z1 declared with another (equally sized) shape
    reshaped = vj.Jacobian(J1.matrix, "Z1", "A0", (1, 3, 9), J1.wrt_shape)
    with pytest.raises(ValueError, match=r"chain rule mismatch.*\(3, 3, 3\).*\(1, 3, 9\)"):
        J2 @ reshaped


def test_chain_in_the_wrong_order():
    J1, J2 = _layer_jacobians()
    with pytest.raises(ValueError, match="chain rule mismatch"):
        J1 @ J2
    assert (J2 @ J1).name == "dZ2/dA0"


def test_jacobian_shape_must_match_its_declared_shapes():
    with pytest.raises(ValueError, match=r"^Jacobian dZ/dA: matrix shape \(4, 4\) does not match"):
        vj.Jacobian(sp.eye_array(4), "Z", "A", (2, 3), (4,))


def test_block_index_out_of_range():
    J = conv_wrt_input(K_OK, A_OK.shape)
    with pytest.raises(IndexError, match="row_block"):
        J.block(3, 0)
    with pytest.raises(IndexError, match="col_block"):
        J.block(0, (2,))


def test_gradient_with_the_wrong_cotangent():
    J = conv_wrt_input(K_OK, A_OK.shape)
    with pytest.raises(ValueError, match=r"cotangent has 26 elements"):
        J.gradient(np.ones(26))
    with pytest.raises(ValueError, match=r"gradient\(\) without a cotangent"):
        J.gradient()


# --- memory budget -----------------------------------------------------------------------------
@pytest.fixture
def restore_budget():
    old = vj.get_memory_budget()
    try:
        yield old
    finally:
        vj.set_memory_budget(old)


BUILDERS = {
    "conv_wrt_input": lambda **kw: conv_wrt_input(K_OK, A_OK.shape, 1, 1, **kw),
    "conv_wrt_kernel": lambda **kw: conv_wrt_kernel(A_OK, K_OK.shape, 2, 0, **kw),
    "conv_wrt_input batch": lambda **kw: conv_wrt_input(K_OK, (2,) + A_OK.shape, **kw),
    "conv_wrt_kernel batch": lambda **kw: conv_wrt_kernel(A_OK[None], K_OK.shape, **kw),
    "conv_wrt_bias": lambda **kw: conv_wrt_bias((3, 4, 4), **kw),
    "conv_block_wrt_input": lambda **kw: conv_block_wrt_input(K_OK[0, 0], (5, 5), **kw),
    "conv_block_wrt_kernel": lambda **kw: conv_block_wrt_kernel(A_OK[0], (3, 3), **kw),
}
builders = pytest.mark.parametrize("build", list(BUILDERS.values()), ids=list(BUILDERS))


def _check_budget_message(error, built):
    """The message gives the estimate (in bytes, at least what the result really takes) and
    both ways to raise the budget."""
    message = str(error.value)
    estimate = int(re.search(r"\((\d+) bytes\)", message).group(1))
    assert estimate >= built.nbytes
    assert f"max_bytes={estimate}" in message
    assert f"vecjac.set_memory_budget({estimate})" in message


@builders
def test_tiny_per_call_budget_is_refused(build):
    built = build()
    with pytest.raises(vj.MemoryBudgetError, match="over the memory budget of 100 B") as error:
        build(max_bytes=100)
    assert isinstance(error.value, ValueError)
    _check_budget_message(error, built)
    # the estimate suffices
    estimate = int(re.search(r"\((\d+) bytes\)", str(error.value)).group(1))
    assert build(max_bytes=estimate).nnz == built.nnz


@builders
def test_tiny_global_budget_is_refused(build, restore_budget):
    built = build()
    assert vj.set_memory_budget(100) == restore_budget
    assert vj.get_memory_budget() == 100
    with pytest.raises(vj.MemoryBudgetError) as error:
        build()
    _check_budget_message(error, built)


@pytest.mark.parametrize("name", ["conv_wrt_input", "conv_wrt_kernel batch"])
def test_per_call_budget_overrides_the_global_one(name, restore_budget):
    vj.set_memory_budget(100)
    assert BUILDERS[name](max_bytes=10**9).nnz > 0


def test_set_memory_budget_none_restores_the_default(restore_budget):
    vj.set_memory_budget(123)
    assert vj.set_memory_budget(None) == 123
    assert vj.get_memory_budget() == 4 * 2**30


@pytest.mark.parametrize("bad", [0, -5, 1.5, "100", True])
def test_set_memory_budget_refuses_nonsense(bad, restore_budget):
    with pytest.raises(ValueError, match="memory budget must be a positive int"):
        vj.set_memory_budget(bad)
    assert vj.get_memory_budget() == restore_budget


def test_huge_layer_is_refused_before_allocating():
    """A layer whose Jacobian would take terabytes is refused from its shapes alone."""
    K = np.zeros((64, 64, 3, 3))
    with pytest.raises(vj.MemoryBudgetError, match=r"\d+\.\d TiB"):
        conv_wrt_input(K, (16, 64, 512, 512), 1, 1, structured=False)
    # structured, the estimate counts what is stored: one sample's block, still far too big
    with pytest.raises(vj.MemoryBudgetError, match=r"287\.5 GiB"):
        conv_wrt_input(K, (16, 64, 512, 512), 1, 1)
    with pytest.raises(vj.MemoryBudgetError):
        conv_wrt_kernel(np.broadcast_to(np.float64(0.0), (16, 64, 512, 512)), K.shape, 1, 1)


@pytest.mark.parametrize("method", ["direct", "jacobian", "paper", "per_sample"])
@pytest.mark.parametrize("where", ["X", "K2", "b1", "W3"])
def test_gradient_paths_refuse_non_finite_inputs_and_parameters(method, where):
    """The gradient paths check X and every parameter once, then skip the per-array checks
    (vec.finite_checked): a NaN anywhere still stops them, named."""
    net = vj.CNN(input_shape=(1, 8, 8), channels=(2, 3), seed=0)
    X, y = np.random.default_rng(0).random((2, 1, 8, 8)), np.array([1, 3])
    if where == "X":
        X[1, 0, 2, 3] = np.nan
    else:
        net.params[where].flat[0] = np.inf
    run = (net.per_sample_gradients if method == "per_sample"
           else lambda X, y: net.gradients(X, y, method=method))
    with pytest.raises(ValueError, match=rf"^{where} contains NaN or infinite values"):
        run(X, y)


def test_finite_checked_skips_the_check_inside_only():
    from vecjac.vec import as_float_array, finite_checked

    bad = np.array([1.0, np.nan])
    with finite_checked():
        with finite_checked():
            assert as_float_array(bad, "x") is bad
        assert as_float_array(bad, "x") is bad  # still inside the outer context
        with pytest.raises(TypeError):  # the other checks stay
            as_float_array(np.array(["a"]), "x")
    with pytest.raises(ValueError, match="x contains NaN"):
        as_float_array(bad, "x")
    with pytest.raises(RuntimeError), finite_checked():
        raise RuntimeError
    with pytest.raises(ValueError, match="x contains NaN"):
        as_float_array(bad, "x")
