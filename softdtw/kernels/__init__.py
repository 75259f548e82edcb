"""Fast kernels (the compiled core on CPU, Triton on CUDA), tested against the NumPy reference.

Every kernel realizes the recursion of :mod:`softdtw.spec` under one contract, so that the
torch custom ops (``softdtw.torch``) can dispatch to any of them by device:

``forward(cost, gamma, x_len, y_len, lo, hi) -> (value, r, aux)``
    * ``cost``: ``(B, N, M)`` float32 or float64 (the compute dtype), never written.
    * ``gamma``: Python float > 0.
    * ``x_len``, ``y_len``: int32 ``(B,)``, pair ``b`` uses rows ``< x_len[b]`` and columns
      ``< y_len[b]``; its value is ``R[x_len[b], y_len[b]]`` (1-based DP indices).
    * ``lo``, ``hi``: int32 ``(B, N)``, row ``i`` of pair ``b`` uses columns ``lo <= j < hi``
      (from :func:`softdtw.spec.band_bounds`; it already encodes the lengths and the band).
      Cells outside are +inf cost and must cost no work where the layout allows.
    * returns ``value`` ``(B,)`` in the compute dtype, and the state for the backward: ``r``
      ``(B, N, M)`` (one float per DP cell: ``R`` itself, or ``R`` relative to per-step offsets
      kept in ``aux``) and ``aux``: O(B (N + M)) floats (may be empty, shape ``(B, 0)``).

``backward(r, aux, gamma, x_len, y_len, lo, hi, grad_value, need_gamma_grad) -> (grad_cost, grad_gamma)``
    * ``grad_value``: ``(B,)``, the upstream gradient (any values, not only ones).
    * ``grad_cost``: ``(B, N, M)`` = ``grad_value[b] * E[b]`` where ``E`` is the expected
      alignment, exactly 0 outside the used cells.
    * ``grad_gamma``: ``(B,)`` = ``grad_value[b] * d value_b / d gamma`` when
      ``need_gamma_grad``, else None.
    * The softmin weights are recomputed from the stored ``r`` (docs/algorithm.md); no cost
      matrix is needed, no weights are stored.

``aux_shape(B, N, M, dtype) -> (shape, dtype)``
    The shape and NumPy dtype of ``aux`` for a ``(B, N, M)`` cost of ``dtype`` (torch.compile's
    fake tensors need it without running the kernel); omitted when ``aux`` is ``(B, 0)``.

Finite inputs never give NaN or inf in values or gradients, for any gamma > 0.

The CPU core (:mod:`softdtw.kernels.cpu`) also takes series instead of a cost
(``forward_sqeuclidean(x, y, ...)``, ``backward_sqeuclidean(r, aux, x, y, ...) -> (grad_x, grad_y)``):
it forms the squared Euclidean cost per cell, so neither the cost matrix nor its gradient is
ever formed; its ``r`` has a shape of its own (``state_shapes``). The numba kernels
(``numba_*``), the core's predecessor, stay as the benchmark's baseline and need numba, which
softdtw does not require (the ``bench`` and ``test`` extras install it).
"""
