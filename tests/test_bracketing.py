"""order="optimal": the cheapest bracketing of the chain of Jacobians (vecjac.bracketing).

Oracles: the reverse and forward products (the optimal one must equal them); the Gustavson
count written as a loop over the inner index; and, for small hand-made chains, a brute-force
enumeration of every bracketing, each performed with scipy and its cost counted by that loop.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import vecjac as vj
from vecjac import bracketing as br
from vecjac import jacobians as jac
from vecjac.layers import Activation, Dense, Flatten
from vecjac.structure import Diagonal, Kron, product


# --- oracles ------------------------------------------------------------------------------------
def loop_count(A, B) -> int:
    """``sum_t nnz(A[:, t]) nnz(B[t, :])``, one inner index at a time (stored entries)."""
    A, B = sp.csr_array(A), sp.csr_array(B)
    total = 0
    for t in range(A.shape[1]):
        in_column = int(np.count_nonzero(A.indices == t))
        in_row = int(B.indptr[t + 1] - B.indptr[t])
        total += in_column * in_row
    return total


def all_bracketings(i: int, j: int):
    """Every binary tree over the factors i..j, as nested pairs of indices."""
    if i == j:
        yield i
        return
    for k in range(i, j):
        for left in all_bracketings(i, k):
            for right in all_bracketings(k + 1, j):
                yield (left, right)


def performed(matrices, tree):
    """Multiply the scipy matrices as ``tree`` says; return the product and the loop count."""
    if isinstance(tree, int):
        return sp.csr_array(matrices[tree]), 0
    (left, cl), (right, cr) = performed(matrices, tree[0]), performed(matrices, tree[1])
    return sp.csr_array(left @ right), cl + cr + loop_count(left, right)


def chain_of(matrices) -> list[vj.Jacobian]:
    """Jacobians dV0/dV1, dV1/dV2, ... over the given matrices."""
    return [vj.Jacobian(m, f"V{k}", f"V{k + 1}", (m.shape[0],), (m.shape[1],))
            for k, m in enumerate(matrices)]


def dense(rng, rows: int, cols: int) -> sp.csr_array:
    return sp.csr_array(rng.random((rows, cols)) + 0.5)


# --- networks -----------------------------------------------------------------------------------
def mlp() -> vj.Sequential:
    return vj.Sequential((1, 4, 4), [Flatten(), Dense(6), Activation("tanh"), Dense(5),
                                     Activation("sigmoid"), Dense(3), Activation("softmax")],
                         loss="cross_entropy")


NETWORKS = {
    "cnn-default": (lambda: vj.CNN(), [("A3", "X"), ("A3", "K1"), ("Z2", "X"), ("J", "K2"),
                                       ("J", "W3"), ("J", "X"), ("B2", "b1")]),
    "cnn-max": (lambda: vj.CNN(pool="max"), [("A3", "X"), ("J", "K1"), ("Z2", "A1")]),
    "cnn-3conv": (lambda: vj.CNN(channels=(2, 3, 4)),
                  [("A4", "X"), ("J", "K1"), ("Z3", "K2"), ("J", "b3")]),
    "dense-only": (mlp, [("A3", "B0"), ("J", "W1"), ("J", "b2"), ("Z3", "W2"), ("A2", "B0")]),
}
CASES = [(name, of, wrt) for name, (_, pairs) in NETWORKS.items() for of, wrt in pairs]


def inputs(net, rng, N: int = 3):
    X = rng.standard_normal((N,) + net.input_shape)
    return X, rng.integers(0, net.n_out, N)


@pytest.mark.parametrize("name,of,wrt", CASES, ids=[f"{n}-d{o}/d{w}" for n, o, w in CASES])
def test_optimal_equals_reverse_and_forward(name, of, wrt, rng):
    net = NETWORKS[name][0]()
    X, y = inputs(net, rng)
    optimal, report = net.jacobian(X, of, wrt, y=y, order="optimal", report=True)
    scale = np.abs(optimal.toarray()).max()
    assert scale > 0
    for order in ("reverse", "forward"):
        other = net.jacobian(X, of, wrt, y=y, order=order)
        assert other.name == optimal.name == f"d{of}/d{wrt}"
        assert np.abs(other.toarray() - optimal.toarray()).max() <= 1e-12 * scale
    # never predicted dearer than the two classical orders, both in the DP's space
    assert report.predicted_cost == report.predicted["optimal"]
    assert report.predicted_cost <= min(report.predicted["reverse"], report.predicted["forward"])


@pytest.mark.parametrize("name,of,wrt", CASES[:4], ids=[f"d{o}/d{w}" for _, o, w in CASES[:4]])
def test_report_fields(name, of, wrt, rng):
    net = NETWORKS[name][0]()
    X, y = inputs(net, rng)
    J, report = net.jacobian(X, of, wrt, y=y, order="optimal", report=True)
    assert report.order == "optimal"
    assert isinstance(report.performed_cost, int) and report.performed_cost > 0
    assert isinstance(report.predicted_cost, int) and report.predicted_cost > 0
    assert report.performed_cost == sum(step["cost"] for step in report)
    assert report.predicted_cost == sum(step["predicted"] for step in report)
    assert set(report.predicted) == {"reverse", "forward", "optimal"}
    # the bracketing names every factor once, in order, with balanced brackets
    names = report.bracketing.replace("(", " ").replace(")", " ").split()
    assert names == net._path(of, wrt)
    assert report.bracketing.count("(") == report.bracketing.count(")") == len(names) - 1
    assert report[-1]["product"] == J.name and report[-1]["bracketing"] == report.bracketing
    for step in report:
        assert {"product", "shape", "nnz", "structure", "bracketing", "cost",
                "predicted"} <= set(step)
    assert report.as_dict()["bracketing"] == report.bracketing
    # reverse and forward reports carry the same totals, their bracketings the deep trees
    _, rev = net.jacobian(X, of, wrt, y=y, order="reverse", report=True)
    assert rev.bracketing.startswith("(" * (len(names) - 1))
    assert rev.predicted == report.predicted
    assert rev.performed_cost > 0 and rev.predicted_cost == rev.predicted["reverse"]


@pytest.mark.parametrize("of,wrt", [("A3", "X"), ("J", "K1"), ("Z2", "b1")])
def test_optimal_on_flat_factors(of, wrt, rng):
    """structured=False: every factor flat, the counts-only estimate; same Jacobian."""
    net = vj.CNN(pool="max")
    X, y = inputs(net, rng)
    optimal, report = net.jacobian(X, of, wrt, y=y, order="optimal", report=True,
                                   structured=False)
    reverse = net.jacobian(X, of, wrt, y=y, order="reverse", structured=False)
    scale = np.abs(reverse.toarray()).max()
    assert np.abs(optimal.toarray() - reverse.toarray()).max() <= 1e-12 * scale
    assert report.predicted_cost <= min(report.predicted["reverse"], report.predicted["forward"])
    assert report.performed_cost > 0


def test_prediction_is_exact_when_every_sample_has_the_same_pattern(rng):
    """Average pooling, a smooth activation, random inputs: no sample differs in pattern and
    no product cancels, so the estimate is the count of the products performed."""
    net = vj.CNN(channels=(3, 4), activation="sigmoid", pool="avg")
    X, y = inputs(net, rng, N=4)
    for of, wrt in [("A3", "X"), ("A3", "K1"), ("Z2", "X"), ("J", "K1")]:
        for order in br.ORDERS:
            _, report = net.jacobian(X, of, wrt, y=y, order=order, report=True)
            assert report.predicted_cost == report.performed_cost, (of, wrt, order)
            assert all(step["cost"] == step["predicted"] for step in report)


def test_bad_order_names_the_parameter(rng):
    net = vj.CNN()
    X, _ = inputs(net, rng, N=2)
    for order in ("sideways", "Optimal", None, 3):
        with pytest.raises(ValueError, match="order must be 'reverse', 'forward' or 'optimal'"):
            net.jacobian(X, "A3", "X", order=order)


# --- the cost model -----------------------------------------------------------------------------
def test_cost_model_on_flat_operands_is_the_gustavson_count(rng):
    for density in (0.05, 0.3, 1.0):
        a = sp.random_array((13, 17), density=density, rng=rng, format="csr")
        b = sp.random_array((17, 11), density=density, rng=rng, format="csr")
        expected = loop_count(a, b)
        assert br.gustavson_count(a, b) == expected
        A, B = chain_of([a, b])
        assert br.product_cost(A, B) == expected
        assert br.ChainCosts([A, B]).split(0, 0, 1) == expected
    # explicit zeros are stored entries: the row-by-row product visits them
    a = sp.csr_array((np.array([0.0, 1.0]), np.array([0, 1]), np.array([0, 2])), shape=(1, 2))
    assert br.gustavson_count(a, sp.csr_array(np.ones((2, 3)))) == 6


def test_structured_products_cost_what_they_multiply(rng):
    M1 = sp.random_array((6, 5), density=0.4, rng=rng, format="csr")
    M2 = sp.random_array((5, 4), density=0.4, rng=rng, format="csr")
    # (I_3 (x) M1)(I_3 (x) M2) = I_3 (x) (M1 M2): one block is multiplied
    assert br.product_cost(Kron(3, M1), Kron(3, M2)) == loop_count(M1, M2)
    # a diagonal scales the other operand: nnz multiplications
    d = Diagonal(rng.random(18))
    assert br.product_cost(d, Kron(3, M1)) == 3 * M1.nnz
    # the flat fallback counts the flat operands
    flat = sp.csr_array(rng.random((2, 18)))
    assert br.product_cost(flat, Kron(3, M1)) == loop_count(flat, Kron(3, M1).materialise())


def test_products_through_the_notes_flatten_cost_nothing(rng):
    """``B2 = vec(A2)`` is the identity: a product through it is the other factor itself (no
    multiply-adds, its structure kept), in the cost model as in ``structure.product``; an
    identity that would promote the other factor's dtype is an ordinary diagonal."""
    M = sp.random_array((4, 6), density=0.5, rng=rng, format="csr")
    W, flat = Kron(3, M), jac.flatten((3, 2, 1, 3))  # identity(18)
    assert flat.structure == "identity(18)"
    assert product(W, flat._structure) is W and br.product_cost(W, flat) == 0
    assert br.ChainCosts([W, flat]).split(0, 0, 1) == 0
    same = br.ChainCosts([W, flat._structure, Diagonal(rng.random(18))])
    assert same.split(0, 0, 2) > 0 and same.split(0, 1, 2) == W.nnz  # (W I) D: only D scales
    W32 = Kron(3, M.astype(np.float32))
    assert product(W32, flat._structure).dtype == np.float64  # promoted: an ordinary product
    assert br.product_cost(W32, flat) == W32.nnz
    net = vj.CNN(input_shape=(1, 8, 8), channels=(2, 3))
    X, y = inputs(net, rng, N=3)
    J, report = net.jacobian(X, "Z3", "A2", order="optimal", report=True)
    assert J.structure.startswith("kron(I_3,") and report.performed_cost == 0
    expected = net.jacobian(X, "Z3", "A2", structured=False)
    assert (J.matrix != expected.matrix).nnz == 0


def test_bad_operands_are_refused(rng):
    with pytest.raises(TypeError, match="A must be a scipy sparse"):
        br.gustavson_count(np.ones((2, 2)), sp.eye_array(2))
    with pytest.raises(ValueError, match="A has 3 columns but B has 2 rows"):
        br.gustavson_count(sp.eye_array(3), sp.eye_array(2))
    with pytest.raises(TypeError, match="b must be a Jacobian"):
        br.product_cost(sp.eye_array(2), "I")
    with pytest.raises(ValueError, match=r"factors\[0\] has 3 columns but factors\[1\]"):
        br.ChainCosts([sp.eye_array(3), sp.eye_array(2)])
    with pytest.raises(ValueError, match="at least one"):
        br.ChainCosts([])
    with pytest.raises(TypeError, match="costs must be a ChainCosts"):
        br.optimal_bracketing([sp.eye_array(2)])
    with pytest.raises(ValueError, match="order must be one of"):
        br.bracketing("sideways", 3)
    factors = chain_of([dense(rng, 2, 3), dense(rng, 3, 2)])
    with pytest.raises(ValueError, match="tree must bracket the factors 0..1"):
        br.multiply_chain(factors, (0, (1, 2)))
    with pytest.raises(ValueError, match="keeps the factors in order"):
        br.multiply_chain(factors, (1, 0))


# --- hand-made chains against brute force --------------------------------------------------------
def brute_force(matrices):
    """Every bracketing performed: ``{tree: (product, exact multiply-adds)}``."""
    return {tree: performed(matrices, tree) for tree in all_bracketings(0, len(matrices) - 1)}


def test_mixed_bracketing_ab_cd(rng):
    """Dense 10x100, 100x5, 5x100, 100x10: (A B)(C D) costs 10,500, both deep trees 20,000."""
    matrices = [dense(rng, 10, 100), dense(rng, 100, 5), dense(rng, 5, 100), dense(rng, 100, 10)]
    oracle = brute_force(matrices)
    best = min(oracle, key=lambda t: oracle[t][1])
    assert best == ((0, 1), (2, 3)) and oracle[best][1] == 10_500
    costs = br.ChainCosts(chain_of(matrices))
    tree, cost = br.optimal_bracketing(costs)
    assert tree == best and cost == oracle[best][1]
    assert costs.cost(br.reverse_bracketing(4)) == oracle[br.reverse_bracketing(4)][1] == 20_000
    assert costs.cost(br.forward_bracketing(4)) == oracle[br.forward_bracketing(4)][1] == 20_000
    J, steps = br.multiply_chain(chain_of(matrices), tree, costs)
    assert sum(s["cost"] for s in steps) == cost
    np.testing.assert_allclose(J.toarray(), oracle[best][0].toarray(), rtol=1e-12)
    assert br.format_bracketing(tree, [f.name for f in chain_of(matrices)]) == (
        "((dV0/dV1 dV1/dV2) (dV2/dV3 dV3/dV4))")


def test_mixed_bracketing_cheap_middle(rng):
    """Dense A (20x30), diagonal B and C (30x30), dense D (30x20): multiplying the two
    diagonals first is cheapest, A (B C) D."""
    matrices = [dense(rng, 20, 30), sp.diags_array(rng.random(30) + 0.5, format="csr"),
                sp.diags_array(rng.random(30) + 0.5, format="csr"), dense(rng, 30, 20)]
    oracle = brute_force(matrices)
    least = min(cost for _, cost in oracle.values())
    winners = {tree for tree, (_, cost) in oracle.items() if cost == least}
    assert winners == {((0, (1, 2)), 3), (0, ((1, 2), 3))}
    costs = br.ChainCosts(chain_of(matrices))
    tree, cost = br.optimal_bracketing(costs)
    assert tree in winners and cost == least
    assert cost < min(costs.cost(br.reverse_bracketing(4)), costs.cost(br.forward_bracketing(4)))


@pytest.mark.parametrize("seed", range(6))
def test_dp_is_the_minimum_over_every_bracketing(seed):
    """Random sparse chains of 2-6 factors: the DP's cost is the least model cost over every
    enumerated bracketing, and never more than reverse or forward."""
    rng = np.random.default_rng(seed)
    L = int(rng.integers(2, 7))
    dims = rng.integers(1, 25, L + 1)
    matrices = [sp.random_array((int(dims[k]), int(dims[k + 1])), density=float(rng.random()),
                                rng=rng, format="csr") for k in range(L)]
    costs = br.ChainCosts(chain_of(matrices))
    tree, cost = br.optimal_bracketing(costs)
    assert cost == min(costs.cost(t) for t in all_bracketings(0, L - 1))
    assert cost <= costs.cost(br.reverse_bracketing(L))
    assert cost <= costs.cost(br.forward_bracketing(L))
    J, _ = br.multiply_chain(chain_of(matrices), tree)
    reference = performed(matrices, br.reverse_bracketing(L))[0].toarray()
    np.testing.assert_allclose(J.toarray(), reference, rtol=1e-12, atol=1e-14)
