"""Figures of soft alignments (needs matplotlib: ``pip install softdtw[plot]``).

matplotlib is imported when a function here is called, not when ``softdtw`` or ``softdtw.plot``
is imported.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import spec

__all__ = ["plot_alignment"]


def _matplotlib_pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError("softdtw.plot needs matplotlib: pip install softdtw[plot]") from e
    return plt


def _as_series(a: Any, name: str) -> np.ndarray:
    """A float64 ``(T, D)`` array from a NumPy, torch or JAX series of shape ``(T,)`` or ``(T, D)``."""
    if hasattr(a, "detach"):  # a torch tensor, possibly requiring grad or on a GPU
        a = a.detach().cpu()
    arr = np.asarray(a)
    spec.check_dtype_kind(arr.dtype.kind, name)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be one series of shape (T,) or (T, D), got shape {arr.shape}")
    return arr.astype(np.float64)


def _dtw_path(cost: np.ndarray, mask: np.ndarray | None = None) -> list[tuple[int, int]]:
    """The optimal (hard) DTW path through the ``(N, M)`` cost, from (0, 0) to (N-1, M-1).

    Cells outside ``mask`` are not used. Ties go to the diagonal, then to the step in ``i``.
    """
    n, m = cost.shape
    c = np.where(mask, cost, np.inf) if mask is not None else cost
    r = np.full((n + 1, m + 1), np.inf)
    r[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            r[i, j] = c[i - 1, j - 1] + min(r[i - 1, j - 1], r[i - 1, j], r[i, j - 1])
    i, j = n, m
    path = [(n - 1, m - 1)]
    while (i, j) != (1, 1):
        steps = ((i - 1, j - 1), (i - 1, j), (i, j - 1))
        i, j = min(steps, key=lambda s: r[s])
        path.append((i - 1, j - 1))
    return path[::-1]


def _heatmap(ax, alignment: np.ndarray, path, cmap: str):
    image = ax.imshow(alignment, origin="upper", aspect="auto", cmap=cmap, vmin=0.0, vmax=1.0,
                      interpolation="nearest")
    if path is not None:
        ii, jj = zip(*path)
        ax.plot(jj, ii, color="tab:red", linewidth=1.2, label="DTW path")
    ax.set_xlabel("j (y)")
    ax.set_ylabel("i (x)")
    return image


def plot_alignment(x, y, gamma: float = 1.0, *, ax=None, dtw_path: bool = True, global_constraint=None,
                   sakoe_chiba_radius=None, itakura_max_slope=None, cmap: str = "viridis", title: str | None = None):
    r"""Draw two series and their soft-DTW expected alignment; return the matplotlib Figure.

    The heatmap is the expected alignment

    .. math::

        E_{ij} = \frac{\partial\, \mathrm{sdtw}_\gamma(x, y)}{\partial C_{ij}}
               = \sum_{A} p_\gamma(A) A_{ij}, \qquad p_\gamma(A) \propto e^{-\langle A, C \rangle / \gamma}

    (the probability that an alignment path goes through cell (i, j)), computed in float64 by
    :func:`softdtw.numpy.soft_dtw_alignment` with the squared Euclidean cost
    :math:`C_{ij} = \lVert x_i - y_j \rVert^2`. With ``dtw_path`` the optimal hard DTW path
    (the limit of the alignment as :math:`\gamma \to 0`) is drawn on top in red.

    Parameters
    ----------
    x : array_like, shape (N,) or (N, D)
        One series (NumPy, torch or JAX; any real dtype, computed in float64).
    y : array_like, shape (M,) or (M, D)
    gamma : float > 0
        Smoothing; small values concentrate the alignment on the DTW path.
    ax : matplotlib Axes, optional
        Draw only the heatmap (and path) into this Axes. By default a new figure is made with
        ``x`` on the left (time downwards), ``y`` on top, the heatmap and a colour bar.
    dtw_path : bool
        Draw the hard DTW path (respecting the band, if any).
    global_constraint, sakoe_chiba_radius, itakura_max_slope
        Band constraint, as in :func:`softdtw.numpy.soft_dtw`.
    cmap : str
        matplotlib colour map of the heatmap (values from 0 to 1).
    title : str, optional
        Default: ``"gamma = <gamma>"``.

    Returns
    -------
    matplotlib.figure.Figure
        ``ax.figure`` when ``ax`` is given, else the new figure (made with ``matplotlib.pyplot``,
        so ``plt.show()`` shows it; close it with ``plt.close(fig)``).

    Raises
    ------
    ImportError
        When matplotlib is not installed (``pip install softdtw[plot]``).

    Examples
    --------
    >>> import numpy as np, matplotlib
    >>> matplotlib.use("Agg")
    >>> from softdtw.plot import plot_alignment
    >>> t = np.linspace(0, 2 * np.pi, 30)
    >>> fig = plot_alignment(np.sin(t), np.sin(t - 0.5), gamma=0.1)
    >>> [a.get_label() for a in fig.axes[:3]]
    ['x', 'y', 'alignment']
    >>> fig.axes[2].images[0].get_array().shape
    (30, 30)
    >>> import matplotlib.pyplot as plt; plt.close(fig)
    """
    from .numpy import soft_dtw_alignment

    plt = _matplotlib_pyplot()
    xs, ys = _as_series(x, "x"), _as_series(y, "y")
    if xs.shape[1] != ys.shape[1]:
        raise ValueError(f"x and y must have the same number of features, got {xs.shape[1]} and {ys.shape[1]}")
    band = dict(global_constraint=global_constraint, sakoe_chiba_radius=sakoe_chiba_radius,
                itakura_max_slope=itakura_max_slope)
    alignment, _ = soft_dtw_alignment(xs, ys, gamma, **band)
    path = None
    if dtw_path:
        from .numpy import sqeuclidean_cost

        mask = spec.band_mask(xs.shape[0], ys.shape[0], spec.check_constraint(**band))
        path = _dtw_path(sqeuclidean_cost(xs, ys), mask)
    title = f"gamma = {gamma:g}" if title is None else title

    if ax is not None:
        _heatmap(ax, alignment, path, cmap)
        ax.set_title(title)
        return ax.figure

    fig = plt.figure(figsize=(6.4, 5.6), layout="constrained")
    grid = fig.add_gridspec(2, 3, width_ratios=(1, 4, 0.15), height_ratios=(1, 4))
    ax_x = fig.add_subplot(grid[1, 0], label="x")
    ax_y = fig.add_subplot(grid[0, 1], label="y")
    ax_a = fig.add_subplot(grid[1, 1], sharex=ax_y, sharey=ax_x, label="alignment")
    ax_c = fig.add_subplot(grid[1, 2], label="colorbar")
    for d in range(xs.shape[1]):
        ax_x.plot(xs[:, d], np.arange(xs.shape[0]))
        ax_y.plot(np.arange(ys.shape[0]), ys[:, d])
    ax_x.set_ylabel("i (x)")
    ax_y.set_title(title)
    image = _heatmap(ax_a, alignment, path, cmap)
    ax_a.set_ylabel("")
    ax_a.tick_params(labelleft=False)
    ax_y.tick_params(labelbottom=False)
    fig.colorbar(image, cax=ax_c, label="expected alignment")
    return fig
