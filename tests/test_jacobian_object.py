"""The Jacobian object behaves like the sparse array it wraps, knows its layout, saves and
loads, and shows itself in notebooks.

Oracles: the flat matrix (``toarray``) for the algebra, and for ``to_dense_tensor`` the
direct convolution pushed through basis arrays in C order (what ``jacrev`` computes).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import vecjac as vj
from vecjac import jacobians as jac


@pytest.fixture
def conv(rng):
    K = rng.standard_normal((3, 2, 2, 3))
    A = rng.standard_normal((2, 2, 5, 6))
    return K, A, jac.conv_wrt_input(K, A.shape, stride=(1, 2), padding=1, of="Z2", wrt="A1")


def test_arithmetic_keeps_names_and_structure(conv):
    K, A, J = conv
    dense = J.toarray()
    for result, expected in [(J + J, 2 * dense), (J - J, 0 * dense), (2 * J, 2 * dense),
                             (J * 3, 3 * dense), (J / 2, dense / 2), (-J, -dense)]:
        assert isinstance(result, vj.Jacobian) and result.name == "dZ2/dA1"
        assert result.of_shape == J.of_shape and result.wrt_shape == J.wrt_shape
        np.testing.assert_allclose(result.toarray(), expected)
    assert (2 * J).structure == J.structure  # scaling keeps the factors
    other = jac.conv_wrt_input(K, A.shape, stride=(1, 2), padding=1, of="Z2", wrt="X")
    with pytest.raises(ValueError, match="names and shapes must be equal"):
        J + other
    with pytest.raises(TypeError):
        J + 1.0


def test_sparse_array_interface(conv):
    _, _, J = conv
    M = J.matrix
    assert J.dtype == np.float64 and J.ndim == 2 and len(J) == J.shape[0]
    assert J[3, 4] == M[3, 4]
    assert sp.issparse(J[2:5]) and (J[2:5] != M[2:5]).nnz == 0
    assert J.count_nonzero() == M.count_nonzero() and J.sum() == pytest.approx(M.sum())
    copy = J.copy()
    copy.matrix.data[:] = 0
    assert J.matrix.count_nonzero() == M.count_nonzero()
    J32 = J.astype(np.float32)
    assert J32.dtype == np.float32 and J32.name == J.name
    np.testing.assert_allclose(J32.toarray(), J.toarray(), rtol=1e-6)
    dense = np.asarray(J)
    assert dense.dtype == np.float64 and dense.shape == J.shape
    np.testing.assert_array_equal(dense, J.toarray())
    with pytest.raises(AttributeError):
        J.no_such_method  # noqa: B018


def test_transpose_is_a_jacobian(conv, rng):
    _, A, J = conv
    T = J.T
    assert isinstance(T, vj.Jacobian) and T.name == "(dZ2/dA1)^T"
    assert T.shape == J.shape[::-1] and T.T.name == "dZ2/dA1"
    v = rng.standard_normal(J.shape[0])
    np.testing.assert_allclose(T @ v, J.toarray().T @ v, rtol=1e-12)
    np.testing.assert_array_equal(T.toarray(), J.toarray().T)
    act = jac.activation(A, "tanh", of="A1", wrt="Z1")
    chained_T = act.T @ J.T  # (J @ act)^T
    assert chained_T.name == "(dZ2/dZ1)^T"
    np.testing.assert_allclose(chained_T.toarray(), (J @ act).toarray().T, rtol=1e-12)
    with pytest.raises(ValueError, match="one is transposed"):
        J @ act.T
    with pytest.raises(ValueError, match="already transposed"):
        T.gradient(np.ones(T.shape[0]))


def test_block_is_a_named_jacobian(conv):
    _, _, J = conv
    block = J.block((1, 2), (1, 0))
    assert isinstance(block, vj.Jacobian) and block.name == "dZ2[1, 2]/dA1[1, 0]"
    assert block.of_shape == J.of_shape[-2:] and block.wrt_shape == J.wrt_shape[-2:]
    assert block.nnz > 0


def test_order_is_known_and_converting_twice_is_a_no_op(conv, rng):
    _, _, J = conv
    C = vj.convert_order(J, "C")
    assert C.order == "C" and "C order" in repr(C)
    assert vj.convert_order(C, "C") is C
    np.testing.assert_array_equal(vj.convert_order(C, "F").toarray(), J.toarray())
    dZ = rng.standard_normal(J.of_shape)
    # the gradient reads and writes in the Jacobian's own order
    np.testing.assert_allclose(C.gradient(dZ), J.gradient(dZ), rtol=1e-12)
    with pytest.raises(ValueError, match="block\\(\\) splits the note's vec order"):
        C.block(0, 0)
    act = jac.activation(rng.standard_normal(J.wrt_shape), "tanh", of="A1", wrt="Z1")
    with pytest.raises(ValueError, match="convert_order one of them first"):
        C @ act
    both = C @ vj.convert_order(act, "C")
    assert both.order == "C"
    np.testing.assert_allclose(vj.convert_order(both, "F").toarray(), (J @ act).toarray(),
                               rtol=1e-12)


def test_to_dense_tensor_is_what_jacrev_returns(conv):
    K, A, J = conv
    tensor = J.to_dense_tensor()
    assert tensor.shape == J.of_shape + J.wrt_shape
    # column by column in C order, from the direct convolution alone
    for k in range(A.size):
        e = np.zeros(A.size)
        e[k] = 1.0
        column = vj.direct.conv2d(e.reshape(A.shape), K, stride=(1, 2), padding=1)
        np.testing.assert_allclose(tensor.reshape(-1, A.size)[:, k], column.ravel(),
                                   rtol=0, atol=1e-12)


def test_save_and_load(conv, tmp_path):
    _, _, J = conv
    for original in (J, vj.convert_order(J, "C"), J.T):
        path = tmp_path / "j.npz"
        original.save(path)
        back = vj.load_jacobian(path)
        assert (back.name, back.of_shape, back.wrt_shape, back.order) == (
            original.name, original.of_shape, original.wrt_shape, original.order)
        assert (back.matrix != original.matrix).nnz == 0
        assert (sp.load_npz(path) != original.matrix).nnz == 0  # a scipy file too
    sp.save_npz(tmp_path / "plain.npz", J.matrix)
    with pytest.raises(ValueError, match="holds no vecjac Jacobian"):
        vj.load_jacobian(tmp_path / "plain.npz")


def test_notebook_html(conv):
    _, _, J = conv
    page = J._repr_html_()
    assert "Jacobian dZ2/dA1" in page and "kron(I_2," in page
    assert 'src="data:image/png;base64,' in page


def test_plot_is_reachable_after_import_vecjac():
    import subprocess
    import sys

    code = ("import sys, vecjac as vj; assert 'matplotlib' not in sys.modules; "
            "assert callable(vj.plot.save_spy) and callable(vj.explore.explore_html)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_spy_draws_on_given_or_new_axes(conv, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, _, J = conv
    ax = J.spy()
    assert "Z" in ax.get_title() and ax.get_xlim()[1] == J.shape[1] - 0.5
    fig, own = plt.subplots()
    assert J.spy(own, grid=False) is own
    fig.savefig(tmp_path / "j.png")
    assert (tmp_path / "j.png").stat().st_size > 1000
    vj.plot.spy(J)  # the matrix first, the axes optional, as plt.spy
    plt.close("all")
