r"""``from_torch``: a ``torch.nn.Sequential`` CNN as a :class:`vecjac.Sequential`, weights copied.

The two differ in two layouts only, and the conversion is these two lines of algebra:

* a dense weight is the note's ``W`` of shape ``(n_in, n_out)`` with ``Z = W^T B + b``, where
  ``torch.nn.Linear`` keeps ``weight`` of shape ``(n_out, n_in)``: ``W = weight^T``;
* vecjac's ``Flatten`` is the note's ``B = vec(A)``, column-major within each channel, and
  torch's is C order.  With ``p = order_permutation((C, H, W))``, ``vec(A) = ravel(A)[p]``, so
  ``weight^T B_torch = W^T B`` for ``W = weight^T[p]``: the first ``Linear`` after a
  ``Flatten`` has its input rows permuted.

PyTorch stays optional: it is imported inside :func:`from_torch` only.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from .layers import Activation, Conv2d, Dense, Flatten, Layer, Pool2d
from .sequential import Sequential
from .vec import order_permutation

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["from_torch"]

_INSTALL = "vecjac.from_torch needs PyTorch, which is optional: pip install torch"
_SOFTPLUS_THRESHOLD = 20.0  # torch's default; above it torch's softplus is the identity


def from_torch(model: torch.nn.Sequential, input_shape, loss: str | None = None,
               reduction: str = "sum") -> Sequential:
    r"""The :class:`vecjac.Sequential` that computes what ``model`` computes, weights copied.

    Parameters
    ----------
    model : torch.nn.Sequential
        Conv blocks, one ``Flatten``, dense blocks, in the note's order (nested
        ``Sequential`` containers are flattened); the modules and settings in the table
        below.  Its parameters are read once: later changes to either side do not carry over.
    input_shape : (C, H, W)
        One sample's shape; vecjac's layers are shaped for it (torch's are not).
    loss : {"cross_entropy", "binary_cross_entropy", "squared_error"}, optional
        As :class:`vecjac.Sequential`: a model ending in ``Softmax`` (``Sigmoid``) gives
        probabilities to the cross-entropies; one ending in ``Linear`` gives logits, as
        ``torch.nn.functional.cross_entropy`` (``binary_cross_entropy_with_logits``) takes
        them (``net.from_logits``).  ``"squared_error"`` is ``sum (y - O)^2 / 2``, half of
        ``mse_loss(..., reduction="sum")``.
    reduction : {"sum", "mean"}
        ``"mean"`` divides by the batch size ``N`` (torch's ``mse_loss`` divides by
        ``N n_out``).

    Returns
    -------
    net : Sequential
        ``float64`` (``dtype=np.float64``), whatever ``model``'s dtype: float64 is the
        precision the tests hold vecjac's three gradient methods to, and float32 or float16
        weights convert exactly.  ``net.forward(X)`` is ``model(X)`` for ``X`` of shape
        ``(N, C, H, W)``, to rounding; ``net.layers[i]`` is the ``i``-th module (``i`` from
        0, after nested containers are flattened).

    Raises
    ------
    ImportError
        torch is not installed.
    TypeError
        ``model`` is not a ``torch.nn.Sequential``, or holds a module of a class not in the
        table (exact classes: a subclass may compute something else).
    ValueError
        A supported module with an unsupported setting, one whose ``in_channels`` /
        ``in_features`` do not fit ``input_shape``, or a structure vecjac refuses (pooling
        after ``Flatten``, an activation first, ``Linear`` on feature maps, ...).  Every
        message names the module: its position (``model[2]``, ``model[1][0]`` in a nested
        container) and its ``repr``.

    Notes
    -----
    Supported modules, and the settings they must have:

    ==================  ===========================================  ==========================
    torch.nn            settings                                     vecjac.layers
    ==================  ===========================================  ==========================
    ``Conv2d``          ``padding_mode`` "zeros" or "circular",      ``Conv2d(C_out, kernel,
                        ``dilation=1``, ``groups=1``; padding an     stride, padding,
                        int or pair,                                 padding_mode)``
                        ``"valid"`` (0) or ``"same"`` with odd
                        kernel sizes (``(k - 1) / 2``, what torch
                        pads); ``bias=False`` allowed
    ``Linear``          ``bias=False`` allowed                       ``Dense(n_out)``
    ``AvgPool2d``       ``ceil_mode=False``,                         ``Pool2d("avg", kernel,
                        ``count_include_pad=True``,                  stride, padding)``
                        ``divisor_override=None``
    ``MaxPool2d``       ``dilation=1``, ``ceil_mode=False``,         ``Pool2d("max", kernel,
                        ``return_indices=False``                     stride, padding)``
    ``LPPool2d``        ``norm_type=2``, ``ceil_mode=False``         ``Pool2d("l2", kernel,
                                                                     stride)``
    ``ReLU``                                                         ``Activation("relu")``
    ``LeakyReLU``       any ``negative_slope``                       ``Activation("leaky_relu",
                                                                     negative_slope)``
    ``Sigmoid``                                                      ``Activation("sigmoid")``
    ``Tanh``                                                         ``Activation("tanh")``
    ``Softplus``        ``beta=1``, ``threshold >= 20``              ``Activation("softplus")``
    ``Softmax``         ``dim=1`` or ``-1``, on vectors              ``Activation("softmax")``
    ``Identity``                                                     ``Activation("identity")``
    ``Flatten``         ``start_dim=1``, ``end_dim=-1``, not last    ``Flatten()``
    ==================  ===========================================  ==========================

    * Weights: ``K = Conv2d.weight`` as it is, ``(C_out, C_in, h_k, w_k)`` in both;
      ``W = Linear.weight^T``, of shape ``(n_in, n_out)``, its rows permuted by
      ``order_permutation((C, H, W))`` for the first ``Linear`` after ``Flatten`` (module
      docstring).  A torch layer without bias gets vecjac's bias as zeros, which vecjac then
      treats as a parameter like any other (it has a gradient, and training moves it).
    * A model may not end in ``Flatten``: its output would be in the note's order, not
      torch's.  Torch's ``inplace`` flags are irrelevant and ignored.
    * ``Softplus``: above ``threshold`` torch returns ``x`` itself, vecjac ``log(1 + e^x)``;
      the two differ there by less than ``log(1 + e^-20) ~ 2e-9`` (and the derivatives,
      1 and ``sigmoid(x)``, by as little).
    * ``MaxPool2d``: a tie goes to the first maximum in row-major window order in both
      (vecjac's ``ties="first"``).  ``LPPool2d``: a window of zeros has gradient 0 in both.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Tanh(), nn.AvgPool2d(2),
    ...                       nn.Flatten(), nn.Linear(64, 10)).double()
    >>> net = from_torch(model, (1, 8, 8), loss="cross_entropy")
    >>> net.chain, net.from_logits
    (['J', 'Z2', 'B1', 'A1', 'I1', 'Z1'], True)
    >>> X = torch.randn(5, 1, 8, 8, dtype=torch.float64)
    >>> bool(np.allclose(net.forward(X.numpy()), model(X).detach().numpy(), atol=1e-12))
    True
    """
    try:
        import torch
    except ImportError:
        raise ImportError(_INSTALL) from None
    modules = _leaves(torch.nn, model, "model")
    if not modules:
        raise ValueError(f"model has no modules to convert: {model!r}")
    layers = [_convert(torch.nn, where, module) for where, module in modules]
    try:
        net = Sequential(input_shape, layers, loss=loss, reduction=reduction, dtype=np.float64)
    except ValueError as error:
        raise _located(error, modules) from None
    if isinstance(net.layers[-1], Flatten):
        raise ValueError(f"{_name(*modules[-1])}: the model ends in Flatten, whose output is in "
                         "torch's C order and vecjac's column-major order: end with Linear")
    _copy_params(net, modules)
    return net


# --- the model's modules ------------------------------------------------------------------
def _leaves(nn, model, where: str) -> list[tuple[str, object]]:
    """``[(position, module)]`` of a ``Sequential``, nested ``Sequential`` flattened."""
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"{where} is a {type(model).__name__}, not a torch.nn.Sequential: "
                        "from_torch converts Sequential models only")
    if type(model).forward is not nn.Sequential.forward:
        raise TypeError(f"{where}, a {type(model).__name__}, overrides Sequential.forward: "
                        "from_torch cannot tell what it computes")
    out = []
    for key, child in model.named_children():
        position = f"{where}[{key}]" if key.isdigit() else f"{where}.{key}"
        if isinstance(child, nn.Sequential):
            out += _leaves(nn, child, position)
        else:
            out.append((position, child))
    return out


def _name(where: str, module) -> str:
    return f"{where}, {module!r}"


def _located(error: ValueError, modules) -> ValueError:
    """vecjac's error on its layer ``k`` (1-based), prefixed with the torch module's name."""
    match = re.match(r"layer (\d+), ", str(error))
    if match is None or not 1 <= int(match[1]) <= len(modules):
        return error
    return ValueError(f"{_name(*modules[int(match[1]) - 1])}: vecjac refuses it as {error}")


# --- modules to layers --------------------------------------------------------------------
def _convert(nn, where: str, module) -> Layer:
    converters = {
        nn.Conv2d: _conv, nn.Linear: lambda m: Dense(m.out_features),
        nn.AvgPool2d: _avg_pool, nn.MaxPool2d: _max_pool, nn.LPPool2d: _lp_pool,
        nn.ReLU: lambda m: Activation("relu"), nn.Sigmoid: lambda m: Activation("sigmoid"),
        nn.LeakyReLU: lambda m: Activation("leaky_relu", negative_slope=m.negative_slope),
        nn.Tanh: lambda m: Activation("tanh"), nn.Softplus: _softplus, nn.Softmax: _softmax,
        nn.Identity: lambda m: Activation("identity"), nn.Flatten: _flatten,
    }
    convert = converters.get(type(module))
    if convert is None:
        supported = ", ".join(kind.__name__ for kind in converters)
        raise TypeError(f"{_name(where, module)}: {type(module).__name__} is not supported; "
                        f"from_torch converts exactly these torch.nn classes: {supported}")
    try:
        return convert(module)
    except (ValueError, TypeError) as error:
        raise type(error)(f"{_name(where, module)}: {error}") from None


def _require(ok: bool, problem: str) -> None:
    if not ok:
        raise ValueError(problem)


def _pair(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _conv(m) -> Conv2d:
    _require(m.padding_mode in ("zeros", "circular"), f"padding_mode={m.padding_mode!r} is "
             "not supported: vecjac's Conv2d pads with zeros or circularly")
    _require(_pair(m.dilation) == (1, 1), f"dilation={m.dilation} is not supported: vecjac's "
             "Conv2d has no dilation (dilation=1)")
    _require(m.groups == 1, f"groups={m.groups} is not supported: vecjac's Conv2d connects "
             "every input channel to every output channel (groups=1)")
    padding = m.padding
    if padding == "valid":
        padding = 0
    elif padding == "same":
        _require(all(k % 2 for k in m.kernel_size), f"padding='same' with the even kernel size "
                 f"{m.kernel_size} pads unevenly, which vecjac's Conv2d cannot: give an int "
                 "padding or an odd kernel size")
        padding = tuple((k - 1) // 2 for k in m.kernel_size)
    return Conv2d(m.out_channels, m.kernel_size, m.stride, padding, m.padding_mode)


def _avg_pool(m) -> Pool2d:
    _require(not m.ceil_mode, "ceil_mode=True is not supported: vecjac's pooling rounds the "
             "output size down (ceil_mode=False)")
    _require(m.count_include_pad, "count_include_pad=False is not supported: vecjac's average "
             "counts the padding zeros (count_include_pad=True)")
    _require(m.divisor_override is None, f"divisor_override={m.divisor_override} is not "
             "supported: vecjac divides by the window size (divisor_override=None)")
    return Pool2d("avg", m.kernel_size, m.stride, m.padding)


def _max_pool(m) -> Pool2d:
    _require(_pair(m.dilation) == (1, 1), f"dilation={m.dilation} is not supported: vecjac's "
             "pooling windows are contiguous (dilation=1)")
    _require(not m.ceil_mode, "ceil_mode=True is not supported: vecjac's pooling rounds the "
             "output size down (ceil_mode=False)")
    _require(not m.return_indices, "return_indices=True is not supported: the module must "
             "return the pooled maps alone (return_indices=False)")
    return Pool2d("max", m.kernel_size, m.stride, m.padding)


def _lp_pool(m) -> Pool2d:
    _require(float(m.norm_type) == 2.0, f"norm_type={m.norm_type} is not supported: vecjac's "
             "power-average pooling is the L2 norm (norm_type=2)")
    _require(not m.ceil_mode, "ceil_mode=True is not supported: vecjac's pooling rounds the "
             "output size down (ceil_mode=False)")
    return Pool2d("l2", m.kernel_size, m.stride)


def _softplus(m) -> Activation:
    _require(m.beta == 1, f"beta={m.beta} is not supported: vecjac's softplus is "
             "log(1 + e^x) (beta=1)")
    _require(m.threshold >= _SOFTPLUS_THRESHOLD, f"threshold={m.threshold} is not supported: "
             "vecjac's softplus never switches to the identity, which is within 2e-9 of "
             f"torch's for threshold >= {_SOFTPLUS_THRESHOLD:g} only")
    return Activation("softplus")


def _softmax(m) -> Activation:
    _require(m.dim in (1, -1), f"dim={m.dim} is not supported: vecjac's softmax acts over "
             "the features of each sample (dim=1 or dim=-1, on vectors)")
    return Activation("softmax")


def _flatten(m) -> Flatten:
    _require((m.start_dim, m.end_dim) == (1, -1), f"start_dim={m.start_dim}, "
             f"end_dim={m.end_dim} is not supported: vecjac's Flatten makes one vector of "
             "each sample (start_dim=1, end_dim=-1)")
    return Flatten()


# --- parameters ---------------------------------------------------------------------------
def _copy_params(net: Sequential, modules) -> None:
    """Copy the torch parameters into ``net.params``, float64, in the note's layouts."""
    permutation = None  # pending from a Flatten until the next Dense
    for i, ((where, module), layer) in enumerate(zip(modules, net.layers, strict=True)):
        names = net.param_names[i]
        if isinstance(layer, Flatten):
            permutation = order_permutation(layer.input_shape)
        elif isinstance(layer, Conv2d):
            _check_fan_in(where, module, "in_channels", module.in_channels, layer)
            net.params[names["K"]] = _array(where, module, module.weight)
            net.params[names["b"]] = _bias(where, module, layer.out_channels)
        elif isinstance(layer, Dense):
            _check_fan_in(where, module, "in_features", module.in_features, layer)
            W = _array(where, module, module.weight).T
            W = W if permutation is None else W[permutation]
            net.params[names["W"]], permutation = np.ascontiguousarray(W), None
            net.params[names["b"]] = _bias(where, module, layer.out_features)


def _check_fan_in(where: str, module, setting: str, value: int, layer: Layer) -> None:
    _require(value == layer.input_shape[0], f"{_name(where, module)}: {setting}={value} does "
             f"not fit its input, of shape {layer.input_shape} for the given input_shape")


def _array(where: str, module, tensor) -> NDArray[np.float64]:
    if not tensor.is_floating_point():
        raise TypeError(f"{_name(where, module)}: parameters must be real floating point, "
                        f"got {tensor.dtype}")
    return np.array(tensor.detach().cpu().double().numpy(), dtype=np.float64, copy=True)


def _bias(where: str, module, size: int) -> NDArray[np.float64]:
    if module.bias is None:
        return np.zeros(size, dtype=np.float64)
    return _array(where, module, module.bias)
