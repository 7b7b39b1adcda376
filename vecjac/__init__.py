"""vecjac: the matrix calculus of CNN back-propagation as explicit sparse Jacobians.

Every derivative of the note's 3-layer CNN is a ``scipy.sparse`` Jacobian in numerator layout
over the column-major ``vec``; the chain rule is a product of them and a gradient is a
transpose.  See README.md for a tour.
"""

from . import bracketing, curvature, data, direct, jacobians, layers, spectrum, testing
from .budget import MemoryBudgetError, get_memory_budget, set_memory_budget
from .interop import from_torch
from .jacobian import Jacobian, convert_order, load_jacobian
from .network import CNN
from .sequential import Sequential
from .train import accuracy, train
from .vec import conv_output_shape, flat_index, order_permutation, unvec, vec

__version__ = "0.1.0"

__all__ = [
    "CNN",
    "Sequential",
    "from_torch",
    "layers",
    "Jacobian",
    "load_jacobian",
    "accuracy",
    "bracketing",
    "curvature",
    "data",
    "train",
    "MemoryBudgetError",
    "conv_output_shape",
    "convert_order",
    "direct",
    "flat_index",
    "get_memory_budget",
    "jacobians",
    "order_permutation",
    "set_memory_budget",
    "spectrum",
    "testing",
    "unvec",
    "vec",
    "plot",
    "explore",
    "symbolic",
]

_LAZY = ("plot", "explore", "symbolic")  # loaded on first use (plot imports matplotlib)


def __getattr__(name: str):
    """``vj.plot``, ``vj.explore`` and ``vj.symbolic`` after a plain ``import vecjac``
    (imported on first access, so ``import vecjac`` does not pay for matplotlib)."""
    if name in _LAZY:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'vecjac' has no attribute {name!r}")
