"""The PyTorch API: functional entry points and ``SoftDTWLossPyTorch`` (tslearn's drop-in)."""

from __future__ import annotations

from typing import Callable

import torch
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from .. import spec
from ._ops import BAND_KINDS, sdtw_backward, sdtw_forward

__all__ = [
    "SoftDTWLossPyTorch",
    "soft_dtw",
    "soft_dtw_alignment",
    "soft_dtw_alignment_from_cost",
    "soft_dtw_from_cost",
    "sqeuclidean_cost",
]

def _kind(t: torch.Tensor) -> str:
    if t.dtype == torch.bool:
        return "b"
    if t.dtype.is_complex:
        return "c"
    return "f" if t.dtype.is_floating_point else "i"


def _check_tensor(t, name: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    spec.check_dtype_kind(_kind(t), name)
    return t


def _dtypes(*tensors: torch.Tensor) -> tuple[torch.dtype, torch.dtype]:
    """(compute dtype, result dtype): float64 stays float64; everything else computes in float32
    (half precision too) and returns the floating input dtype (float32 for integer inputs)."""
    floats = [t.dtype for t in tensors if t.dtype.is_floating_point]
    out = floats[0] if floats else torch.float32
    for d in floats[1:]:
        out = torch.promote_types(out, d)
    return (torch.float64 if out == torch.float64 else torch.float32), out


# --------------------------------------------------------------------------- cost


def _sqeuclidean_values(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if x.shape[-1] <= 2:
        # exact: one feature at a time, (B, N, M) temporaries only
        out = (x[..., :, None, 0] - y[..., None, :, 0]) ** 2
        for d in range(1, x.shape[-1]):
            out = out + (x[..., :, None, d] - y[..., None, :, d]) ** 2
        return out
    # |x|^2 + |y|^2 - 2 x.y (one batched matmul) after centring each pair, which limits the
    # cancellation; clamped at 0
    mu = (x.sum(-2, keepdim=True) + y.sum(-2, keepdim=True)) / (x.shape[-2] + y.shape[-2])
    xc, yc = x - mu, y - mu
    sq = (xc * xc).sum(-1)[..., :, None] + (yc * yc).sum(-1)[..., None, :]
    return (sq - 2 * xc @ yc.transpose(-1, -2)).clamp_min_(0)


class _SqEuclidean(torch.autograd.Function):
    """Squared Euclidean cost with a hand-written backward: saves x and y only, never a
    (B, N, M, D) tensor; the backward is made of differentiable ops (double backward works)."""

    @staticmethod
    def forward(x, y):
        return _sqeuclidean_values(x, y)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        gx = gy = None
        if ctx.needs_input_grad[0]:
            gx = 2 * (x * g.sum(-1)[..., None] - g @ y)
        if ctx.needs_input_grad[1]:
            gy = 2 * (y * g.sum(-2)[..., None] - g.transpose(-1, -2) @ x)
        return gx, gy


def sqeuclidean_cost(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Squared Euclidean cost between the time steps of two batches of series, in PyTorch.

    .. math::

        C_{ij} = \lVert x_i - y_j \rVert^2 = \sum_d (x_{id} - y_{jd})^2

    with no factor 1/2 (tslearn's convention).

    Differentiable in ``x`` and ``y`` (to any order) without materialising a ``(B, N, M, D)``
    tensor: a sum over features for D <= 2, else one batched matrix product
    (:math:`\lVert x_i \rVert^2 + \lVert y_j \rVert^2 - 2 x_i \cdot y_j` after centring, clamped at 0).

    Parameters
    ----------
    x : Tensor, shape (..., N, D)
    y : Tensor, shape (..., M, D)
        Floating tensors with the same leading dimensions, on one device.

    Returns
    -------
    Tensor, shape (..., N, M)
        In the promoted dtype of ``x`` and ``y``.

    Examples
    --------
    >>> import torch
    >>> sqeuclidean_cost(torch.zeros(1, 2, 1), torch.tensor([[[1.0], [2.0]]]))
    tensor([[[1., 4.],
             [1., 4.]]])
    """
    if y is x:  # torch.compile cannot trace an autograd.Function given one tensor twice
        y = x.clone()
    return _SqEuclidean.apply(x, y)


# --------------------------------------------------------------------------- problem set-up


def _band(global_constraint, sakoe_chiba_radius, itakura_max_slope) -> tuple[int, float]:
    c = spec.check_constraint(global_constraint, sakoe_chiba_radius, itakura_max_slope)
    return BAND_KINDS.index(c.kind), (0.0 if c.param is None else float(c.param))


def _check_lengths(lengths, batch: int, device: torch.device, name: str):
    if lengths is None:
        return None
    if not isinstance(lengths, torch.Tensor):
        lengths = torch.as_tensor(lengths)
    if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
        raise TypeError(f"{name} must hold integers, got dtype {lengths.dtype}")
    if lengths.shape != (batch,):
        raise ValueError(f"{name} must have shape ({batch},), got {tuple(lengths.shape)}")
    if lengths.device.type != "cpu" and lengths.device != device:
        raise ValueError(f"{name} is on {lengths.device} but the series are on {device}")
    return lengths


def _unpack(t, lengths, name: str):
    if isinstance(t, PackedSequence):
        if lengths is not None:
            raise ValueError(f"{name} is a PackedSequence: its lengths come from it; do not pass {name}_lengths")
        padded, lengths = pad_packed_sequence(t, batch_first=True)
        return padded, lengths
    return t, lengths


def _value(cost, gamma, x_len, y_len, band):
    """Soft-DTW of a compute-dtype batch cost (B, N, M) through the custom op."""
    return sdtw_forward(cost, gamma, x_len, y_len, band[0], band[1])[0]


def _nan_guard(value, cost):
    # A NaN anywhere in a pair's cost makes that pair's value NaN (and no other pair's).
    return torch.where(torch.isnan(cost).any(-1).any(-1), torch.full_like(value, float("nan")), value)


def _pair_cost(x, y, dist_func, compute_dtype):
    if dist_func is None:
        return sqeuclidean_cost(x.to(compute_dtype), y.to(compute_dtype))
    cost = dist_func(x, y)
    expected = (x.shape[0], x.shape[1], y.shape[1])
    if not isinstance(cost, torch.Tensor) or tuple(cost.shape) != expected:
        got = tuple(cost.shape) if isinstance(cost, torch.Tensor) else type(cost).__name__
        raise ValueError(f"dist_func must return a tensor of shape {expected}, got {got}")
    return cost.to(compute_dtype)


def soft_dtw(x, y, gamma: float = 1.0, *, normalize: bool = False, dist_func: Callable | None = None,
             global_constraint=None, sakoe_chiba_radius=None, itakura_max_slope=None,
             x_lengths=None, y_lengths=None) -> torch.Tensor:
    r"""Soft-DTW between batches of series (or its divergence), differentiable by autograd.

    .. math::

        \mathrm{sdtw}_\gamma(x, y) = \min_{A \in \mathcal{A}_{N,M}}{}^{\gamma} \langle A, C(x, y) \rangle,
        \qquad \min{}^\gamma(a_1, \dots, a_n) = -\gamma \log \sum_i e^{-a_i / \gamma}

    over the monotone alignment paths :math:`\mathcal{A}_{N,M}` from (1, 1) to (N, M), with
    :math:`C(x, y)_{ij} = \lVert x_i - y_j \rVert^2` by default. With ``normalize=True``, the
    divergence :math:`\mathrm{sdtw}(x, y) - \tfrac12 (\mathrm{sdtw}(x, x) + \mathrm{sdtw}(y, y))`.
    CPU tensors run the numba kernel, CUDA tensors the Triton kernels, other devices a
    pure-torch loop; all through the ``softdtw::forward`` / ``softdtw::backward`` custom ops.

    Parameters
    ----------
    x : Tensor (B, N, D) or (N, D), or a PackedSequence
    y : Tensor (B, M, D) or (M, D), or a PackedSequence
        On the device of ``x``; may be an integer tensor.
    gamma : float > 0
        Smoothing; smaller is closer to DTW.
    normalize : bool
        Soft-DTW divergence ``sdtw(x, y) - (sdtw(x, x) + sdtw(y, y)) / 2`` (>= 0, 0 when x == y).
    dist_func : callable, optional
        ``dist_func(x, y) -> (B, N, M)``, differentiated by autograd; called on ``(x, x)`` and
        ``(y, y)`` too when ``normalize``. Default: squared Euclidean (:func:`sqeuclidean_cost`).
    global_constraint : str or None
        ``"sakoe_chiba"`` or ``"itakura"``: the band of allowed cells, as in tslearn 0.10
        (see docs/algorithm.md). Default None: every cell.
    sakoe_chiba_radius : int, optional
        Radius of the Sakoe-Chiba band (default 1; giving it alone selects that band).
    itakura_max_slope : float, optional
        Maximum slope of the Itakura parallelogram (default 2; giving it alone selects that band).
    x_lengths, y_lengths : int Tensor or array_like, shape (B,), optional
        Per-pair lengths of padded batches: pair ``b`` uses ``x[b, :x_lengths[b]]`` and
        ``y[b, :y_lengths[b]]``; gradients at padded positions are 0.

    Returns
    -------
    Tensor, shape (B,), or 0-d for one pair
        in the input's floating dtype, on its device: float64 computes in float64, float32 in
        float32, float16/bfloat16 compute in float32 and return the input dtype, integer inputs
        give float32.

    Examples
    --------
    >>> import torch
    >>> soft_dtw(torch.zeros(4, 3, 2), torch.arange(24.0).reshape(4, 3, 2), gamma=0.1).round()
    tensor([  55.,  451., 1279., 2539.])
    """
    x, x_lengths = _unpack(x, x_lengths, "x")
    y, y_lengths = _unpack(y, y_lengths, "y")
    _check_tensor(x, "x")
    _check_tensor(y, "y")
    gamma = spec.check_gamma(gamma)
    batched = spec.check_pair_shapes(tuple(x.shape), tuple(y.shape))
    if x.device != y.device:
        raise ValueError(f"x and y must be on the same device, got {x.device} and {y.device}")
    band = _band(global_constraint, sakoe_chiba_radius, itakura_max_slope)
    if not batched:
        x, y = x[None], y[None]
        x_lengths = None if x_lengths is None else torch.as_tensor(x_lengths).reshape(1)
        y_lengths = None if y_lengths is None else torch.as_tensor(y_lengths).reshape(1)
    batch = x.shape[0]
    xl = _check_lengths(x_lengths, batch, x.device, "x_lengths")
    yl = _check_lengths(y_lengths, batch, x.device, "y_lengths")
    compute, out = _dtypes(x, y)
    cost = _pair_cost(x, y, dist_func, compute)
    value = _nan_guard(_value(cost, gamma, xl, yl, band), cost)
    if normalize:
        cxx = _pair_cost(x, x, dist_func, compute)
        cyy = _pair_cost(y, y, dist_func, compute)
        vxx = _nan_guard(_value(cxx, gamma, xl, xl, band), cxx)
        vyy = _nan_guard(_value(cyy, gamma, yl, yl, band), cyy)
        value = value - (vxx + vyy) / 2
    value = value.to(out)
    return value if batched else value[0]


def _prepare_cost(cost, gamma, global_constraint, sakoe_chiba_radius, itakura_max_slope, x_lengths, y_lengths):
    _check_tensor(cost, "cost")
    gamma = spec.check_gamma(gamma)
    batched = spec.check_cost_shape(tuple(cost.shape))
    band = _band(global_constraint, sakoe_chiba_radius, itakura_max_slope)
    if not batched:
        cost = cost[None]
        x_lengths = None if x_lengths is None else torch.as_tensor(x_lengths).reshape(1)
        y_lengths = None if y_lengths is None else torch.as_tensor(y_lengths).reshape(1)
    xl = _check_lengths(x_lengths, cost.shape[0], cost.device, "x_lengths")
    yl = _check_lengths(y_lengths, cost.shape[0], cost.device, "y_lengths")
    compute, out = _dtypes(cost)
    return cost.to(compute), gamma, batched, band, xl, yl, out


def soft_dtw_from_cost(cost, gamma: float = 1.0, *, global_constraint=None, sakoe_chiba_radius=None,
                       itakura_max_slope=None, x_lengths=None, y_lengths=None) -> torch.Tensor:
    r"""Soft-DTW of a cost matrix (or a batch of them), differentiable in ``cost``.

    .. math::

        \mathrm{sdtw}_\gamma(C) = \min_{A \in \mathcal{A}_{N,M}}{}^{\gamma} \langle A, C \rangle
        = -\gamma \log \sum_{A \in \mathcal{A}_{N,M}} e^{-\langle A, C \rangle / \gamma}

    over the monotone alignment paths :math:`\mathcal{A}_{N,M}` from (1, 1) to (N, M),
    computed by :math:`R_{ij} = C_{ij} + \min{}^\gamma(R_{i-1,j-1}, R_{i-1,j}, R_{i,j-1})`.
    The gradient with respect to ``cost`` is the expected alignment
    (:func:`soft_dtw_alignment_from_cost`).

    Parameters
    ----------
    cost : Tensor, shape (B, N, M) or (N, M)
    gamma : float > 0
    global_constraint : str or None
        ``"sakoe_chiba"`` or ``"itakura"``: the band of allowed cells, as in tslearn 0.10
        (see docs/algorithm.md). Default None: every cell.
    sakoe_chiba_radius : int, optional
        Radius of the Sakoe-Chiba band (default 1; giving it alone selects that band).
    itakura_max_slope : float, optional
        Maximum slope of the Itakura parallelogram (default 2; giving it alone selects that band).
    x_lengths, y_lengths : int Tensor or array_like, shape (B,), optional
        Per-matrix lengths of padded batches: matrix ``b`` uses
        ``cost[b, :x_lengths[b], :y_lengths[b]]``; gradients at padded cells are 0.

    Returns
    -------
    Tensor, shape (B,), or 0-d for one matrix
        in the input's floating dtype, on its device: float64 computes in float64, float32 in
        float32, float16/bfloat16 compute in float32 and return the input dtype, integer inputs
        give float32.

    Examples
    --------
    >>> import torch
    >>> soft_dtw_from_cost(torch.tensor([[1.0, 2.0], [3.0, 1.0]]), gamma=1e-3)
    tensor(2.)
    >>> c = torch.zeros(2, 2, dtype=torch.float64, requires_grad=True)
    >>> soft_dtw_from_cost(c, gamma=1.0).backward()  # the gradient is the expected alignment
    >>> (c.grad * 3).round()  # 3 paths: (0,0)-(1,1), via (0,1), via (1,0)
    tensor([[3., 1.],
            [1., 3.]], dtype=torch.float64)
    """
    cost, gamma, batched, band, xl, yl, out = _prepare_cost(
        cost, gamma, global_constraint, sakoe_chiba_radius, itakura_max_slope, x_lengths, y_lengths)
    value = _nan_guard(_value(cost, gamma, xl, yl, band), cost).to(out)
    return value if batched else value[0]


def soft_dtw_alignment_from_cost(cost, gamma: float = 1.0, *, global_constraint=None, sakoe_chiba_radius=None,
                                 itakura_max_slope=None, x_lengths=None, y_lengths=None):
    r"""Expected alignment of a cost matrix and the soft-DTW value: ``(alignment, value)``.

    .. math::

        E = \frac{\partial\, \mathrm{sdtw}_\gamma(C)}{\partial C} = \sum_{A} p_\gamma(A)\, A,
        \qquad p_\gamma(A) \propto e^{-\langle A, C \rangle / \gamma}

    ``E[b, i, j]`` is the probability that a path drawn from the Gibbs distribution
    :math:`p_\gamma` goes through cell (i, j): in [0, 1], 1 at the first and last cells, 0
    outside a pair's lengths and band.
    Not part of the autograd graph (use ``soft_dtw_from_cost(...).backward()`` for that).

    Parameters
    ----------
    cost : Tensor, shape (B, N, M) or (N, M)
    gamma : float > 0
    global_constraint : str or None
        ``"sakoe_chiba"`` or ``"itakura"``: the band of allowed cells, as in tslearn 0.10
        (see docs/algorithm.md). Default None: every cell.
    sakoe_chiba_radius : int, optional
        Radius of the Sakoe-Chiba band (default 1; giving it alone selects that band).
    itakura_max_slope : float, optional
        Maximum slope of the Itakura parallelogram (default 2; giving it alone selects that band).
    x_lengths, y_lengths : int Tensor or array_like, shape (B,), optional
        Per-matrix lengths of padded batches: matrix ``b`` uses
        ``cost[b, :x_lengths[b], :y_lengths[b]]``; gradients at padded cells are 0.

    Returns
    -------
    alignment : Tensor, shape (B, N, M) or (N, M)
    value : Tensor, shape (B,) or 0-d
        Both in the floating dtype of ``cost`` (see :func:`soft_dtw`), on its device.

    Examples
    --------
    >>> import torch
    >>> a, v = soft_dtw_alignment_from_cost(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), gamma=1e-3)
    >>> a
    tensor([[1., 0.],
            [0., 1.]])
    """
    cost, gamma, batched, band, xl, yl, out = _prepare_cost(
        cost.detach(), gamma, global_constraint, sakoe_chiba_radius, itakura_max_slope, x_lengths, y_lengths)
    value, r, aux, xl_, yl_, lo, hi = sdtw_forward(cost, gamma, xl, yl, band[0], band[1])
    alignment, _ = sdtw_backward(r, aux, gamma, xl_, yl_, lo, hi, torch.ones_like(value), False)
    alignment, value = alignment.to(out), value.to(out)
    return (alignment, value) if batched else (alignment[0], value[0])


def soft_dtw_alignment(x, y, gamma: float = 1.0, *, dist_func: Callable | None = None, global_constraint=None,
                       sakoe_chiba_radius=None, itakura_max_slope=None, x_lengths=None, y_lengths=None):
    r"""Expected alignment between ``x`` and ``y`` and the soft-DTW value (tslearn's order).

    .. math::

        E = \frac{\partial\, \mathrm{sdtw}_\gamma(C)}{\partial C} = \sum_{A} p_\gamma(A)\, A,
        \qquad p_\gamma(A) \propto e^{-\langle A, C \rangle / \gamma}

    ``E[b, i, j]`` is the probability that a path drawn from the Gibbs distribution
    :math:`p_\gamma` goes through cell (i, j): in [0, 1], 1 at the first and last cells, 0
    outside a pair's lengths and band.
    Here :math:`C = C(x, y)`, by default :math:`C_{ij} = \lVert x_i - y_j \rVert^2`. Not part of
    the autograd graph.

    Parameters
    ----------
    x : Tensor, shape (B, N, D) or (N, D)
    y : Tensor, shape (B, M, D) or (M, D)
    gamma : float > 0
    dist_func : callable, optional
        ``dist_func(x, y) -> (B, N, M)``. Default: squared Euclidean.
    global_constraint : str or None
        ``"sakoe_chiba"`` or ``"itakura"``: the band of allowed cells, as in tslearn 0.10
        (see docs/algorithm.md). Default None: every cell.
    sakoe_chiba_radius : int, optional
        Radius of the Sakoe-Chiba band (default 1; giving it alone selects that band).
    itakura_max_slope : float, optional
        Maximum slope of the Itakura parallelogram (default 2; giving it alone selects that band).
    x_lengths, y_lengths : int Tensor or array_like, shape (B,), optional
        Per-pair lengths of padded batches: pair ``b`` uses ``x[b, :x_lengths[b]]`` and
        ``y[b, :y_lengths[b]]``; gradients at padded positions are 0.

    Returns
    -------
    alignment : Tensor, shape (B, N, M) or (N, M)
    value : Tensor, shape (B,) or 0-d
        Both in the floating dtype of the inputs (see :func:`soft_dtw`), on their device.

    Examples
    --------
    >>> import torch
    >>> a, v = soft_dtw_alignment(torch.tensor([[0.0], [1.0]]), torch.tensor([[0.0], [1.0]]), gamma=0.01)
    >>> a.round(decimals=3)
    tensor([[1., 0.],
            [0., 1.]])
    """
    _check_tensor(x, "x")
    _check_tensor(y, "y")
    batched = spec.check_pair_shapes(tuple(x.shape), tuple(y.shape))
    compute, _ = _dtypes(x, y)
    with torch.no_grad():
        cost = _pair_cost(x if batched else x[None], y if batched else y[None], dist_func, compute)
    if not batched:
        cost = cost[0]
    return soft_dtw_alignment_from_cost(cost, gamma, global_constraint=global_constraint,
                                        sakoe_chiba_radius=sakoe_chiba_radius, itakura_max_slope=itakura_max_slope,
                                        x_lengths=x_lengths, y_lengths=y_lengths)


class SoftDTWLossPyTorch(torch.nn.Module):
    r"""Soft-DTW loss function in PyTorch (a drop-in for tslearn's ``SoftDTWLossPyTorch``).

    .. math::

        \text{soft-DTW}_{\gamma}(X, Y) = \min_{\pi}{}^\gamma \sum_{(i, j) \in \pi} d(X_i, Y_j),
        \qquad \min{}^\gamma(a_1, \dots, a_n) = -\gamma \log \sum_i e^{-a_i / \gamma}

    With ``normalize=True``, the soft-DTW divergence
    :math:`D_\gamma(X, Y) = \text{soft-DTW}_\gamma(X, Y) - \frac12 (\text{soft-DTW}_\gamma(X, X) + \text{soft-DTW}_\gamma(Y, Y))`,
    which is >= 0 and exactly 0 when X = Y.

    Parameters
    ----------
    gamma : float
        Regularization parameter, > 0. Lower is closer to DTW.
    normalize : bool
        Use the soft-DTW divergence. Default False.
    dist_func : callable, optional
        ``dist_func(x, y)`` on (B, N, D), (B, M, D) returning (B, N, M), differentiated by
        autograd. Default: squared Euclidean (computed without a (B, N, M, D) tensor).
    global_constraint : str or None
        ``"sakoe_chiba"`` or ``"itakura"`` (tslearn 0.10's bands), or None for every cell.
    sakoe_chiba_radius : int, optional (default 1 when the band is "sakoe_chiba")
    itakura_max_slope : float, optional (default 2 when the band is "itakura")

    Examples
    --------
    >>> import torch
    >>> from softdtw.torch import SoftDTWLossPyTorch
    >>> soft_dtw_loss = SoftDTWLossPyTorch(gamma=0.1)
    >>> x = torch.zeros((4, 3, 2), requires_grad=True)
    >>> y = torch.arange(0, 24).reshape(4, 3, 2)
    >>> soft_dtw_loss_mean_value = soft_dtw_loss(x, y).mean()
    >>> print(soft_dtw_loss_mean_value)
    tensor(1081., grad_fn=<MeanBackward0>)
    >>> soft_dtw_loss_mean_value.backward()
    >>> print(x.grad.shape)
    torch.Size([4, 3, 2])
    >>> print(x.grad)
    tensor([[[  0.0000,  -0.5000],
             [ -1.0000,  -1.5000],
             [ -2.0000,  -2.5001]],
    <BLANKLINE>
            [[ -3.0000,  -3.5000],
             [ -4.0000,  -4.5000],
             [ -5.0000,  -5.5000]],
    <BLANKLINE>
            [[ -6.0000,  -6.5000],
             [ -7.0000,  -7.5000],
             [ -8.0000,  -8.5000]],
    <BLANKLINE>
            [[ -9.0000,  -9.5000],
             [-10.0000, -10.5000],
             [-11.0000, -11.5000]]])

    References
    ----------
    M. Cuturi and M. Blondel, "Soft-DTW: a Differentiable Loss Function for Time-Series", ICML 2017.
    M. Blondel, A. Mensch and J.-P. Vert, "Differentiable Divergences Between Time Series", AISTATS 2021.
    """

    def __init__(self, gamma: float = 1.0, normalize: bool = False, dist_func: Callable | None = None,
                 global_constraint=None, sakoe_chiba_radius=None, itakura_max_slope=None):
        super().__init__()
        self.gamma = spec.check_gamma(gamma)
        spec.check_constraint(global_constraint, sakoe_chiba_radius, itakura_max_slope)
        self.normalize = normalize
        self.dist_func = dist_func
        self.global_constraint = global_constraint
        self.sakoe_chiba_radius = sakoe_chiba_radius
        self.itakura_max_slope = itakura_max_slope

    def forward(self, x, y, x_lengths=None, y_lengths=None) -> torch.Tensor:
        """Per-pair losses for a batch; no reduction (take ``.mean()`` for a scalar loss).

        Parameters
        ----------
        x : Tensor (B, N, D) or a PackedSequence
        y : Tensor (B, M, D) or a PackedSequence
        x_lengths, y_lengths : int Tensor (B,), optional
            Per-pair lengths of padded batches (see :func:`soft_dtw`).

        Returns
        -------
        Tensor, shape (B,)
            :func:`soft_dtw` with this module's settings, in the inputs' floating dtype.

        Examples
        --------
        >>> import torch
        >>> loss = SoftDTWLossPyTorch(gamma=1.0)
        >>> loss(torch.zeros(2, 1, 1), torch.tensor([[[1.0]], [[2.0]]]))
        tensor([1., 4.])
        """
        return soft_dtw(x, y, self.gamma, normalize=self.normalize, dist_func=self.dist_func,
                        global_constraint=self.global_constraint, sakoe_chiba_radius=self.sakoe_chiba_radius,
                        itakura_max_slope=self.itakura_max_slope, x_lengths=x_lengths, y_lengths=y_lengths)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, normalize={self.normalize}"
