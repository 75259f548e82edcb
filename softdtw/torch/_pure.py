"""Pure-torch realization of the kernel contract (``softdtw.kernels``) on any device.

It drives the spec's step functions over anti-diagonals with a Python loop (one small launch
group per diagonal): slower than a dedicated kernel, but it runs wherever torch runs, so every
device works before it has its own kernel.
"""

from __future__ import annotations

import torch

from .. import spec


def valid_from_bounds(lo: torch.Tensor, hi: torch.Tensor, m: int) -> torch.Tensor:
    """``(B, N, M)`` bool mask from per-row column bounds."""
    j = torch.arange(m, device=lo.device)
    return (j >= lo[..., None]) & (j < hi[..., None])


def _terminal(diags: torch.Tensor, x_len: torch.Tensor, y_len: torch.Tensor) -> torch.Tensor:
    """``R[x_len, y_len]`` of each pair from the stacked DP diagonals ``(N + M + 1, B, N + 1)``."""
    b = torch.arange(diags.shape[1], device=diags.device)
    return diags[(x_len + y_len).long(), b, x_len.long()]


def _dp_diagonals(r: torch.Tensor) -> torch.Tensor:
    """Stored ``r`` ``(B, N, M)`` back to the DP diagonals ``(N + M + 1, B, N + 1)``."""
    c = spec.cost_diagonals(torch, r)  # r skewed with +inf padding: (N + M - 1, B, N)
    d0, d1 = spec.boundary_diagonals(torch, torch.empty(r.shape[0], r.shape[1] + 1, dtype=r.dtype, device=r.device))
    inner = spec._with_boundary(torch, c, float("inf"))
    return torch.cat([d0[None], d1[None], inner], dim=0)


def forward(cost, gamma, x_len, y_len, lo, hi):
    batch, n, m = cost.shape
    c = spec.cost_diagonals(torch, cost, valid_from_bounds(lo, hi, m))
    d0, d1 = spec.boundary_diagonals(torch, torch.empty(batch, n + 1, dtype=cost.dtype, device=cost.device))
    diags = [d0, d1]
    for k in range(2, n + m + 1):
        diags.append(spec.forward_step(torch, diags[k - 2], diags[k - 1], c[k - 2], gamma))
    stacked = torch.stack(diags)
    value = _terminal(stacked, x_len, y_len)
    r = spec.unskew(torch, torch.movedim(stacked[2:, :, 1:], 0, -1), m)
    return value, r.contiguous(), cost.new_empty((batch, 0))


def backward(r, aux, gamma, x_len, y_len, lo, hi, grad_value, need_gamma_grad):
    batch, n, m = r.shape
    diags = _dp_diagonals(r)
    zeros = r.new_zeros((batch, n + 1))
    no_weights = (zeros, zeros, zeros)
    e1 = e2 = zeros
    w1 = w2 = no_weights
    rows = torch.arange(n + 1, device=r.device)
    terminal_seed = (rows[None, :] == x_len[:, None]).to(r.dtype) * grad_value[:, None]
    terminal_diag = x_len + y_len
    gamma_grad = r.new_zeros(batch)
    e_diags = []
    for k in range(n + m, 1, -1):
        seed = torch.where((terminal_diag == k)[:, None], terminal_seed, zeros)
        e = spec.backward_step(torch, e1, e2, w1, w2, seed)
        w = spec.diagonal_weights(torch, diags[k - 2], diags[k - 1], gamma)
        if need_gamma_grad:
            gamma_grad = gamma_grad + (e * spec.neg_entropy(torch, *w)).sum(-1)
        e_diags.append(e)
        e1, e2, w1, w2 = e, e1, w, w1
    skewed = torch.stack(e_diags[::-1])[:, :, 1:]
    grad_cost = spec.unskew(torch, torch.movedim(skewed, 0, -1), m)
    return grad_cost.contiguous(), (gamma_grad if need_gamma_grad else None)
