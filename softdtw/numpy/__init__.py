"""NumPy reference realization of soft-DTW (float64, the oracle for every other path)."""

from ._barycenter import soft_dtw_barycenter
from ._cdist import cdist_soft_dtw
from ._reference import (
    soft_dtw,
    soft_dtw_alignment,
    soft_dtw_alignment_from_cost,
    soft_dtw_from_cost,
    soft_dtw_gamma_grad_from_cost,
    soft_dtw_value_and_grad,
    sqeuclidean_cost,
)

__all__ = [
    "cdist_soft_dtw",
    "soft_dtw",
    "soft_dtw_alignment",
    "soft_dtw_alignment_from_cost",
    "soft_dtw_barycenter",
    "soft_dtw_from_cost",
    "soft_dtw_gamma_grad_from_cost",
    "soft_dtw_value_and_grad",
    "sqeuclidean_cost",
]
