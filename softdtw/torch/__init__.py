"""PyTorch realization of soft-DTW (``pip install softdtw[torch]``).

``SoftDTWLossPyTorch`` is a drop-in for tslearn's class; the functional entry points take
batches (B, N, D) or one pair (N, D). CPU tensors run the compiled core, CUDA tensors the Triton
kernels, other devices a pure-torch anti-diagonal path; all through the ``softdtw::forward`` /
``softdtw::backward`` custom ops (``torch.compile(fullgraph=True)`` friendly).
"""

try:
    import torch  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised in a subprocess test
    raise ImportError("softdtw.torch needs PyTorch: pip install softdtw[torch]") from e

from ._api import (
    SoftDTWLossPyTorch,
    soft_dtw,
    soft_dtw_alignment,
    soft_dtw_alignment_from_cost,
    soft_dtw_from_cost,
    sqeuclidean_cost,
)
from ._barycenter import soft_dtw_barycenter
from ._cdist import cdist_soft_dtw

__all__ = [
    "SoftDTWLossPyTorch",
    "cdist_soft_dtw",
    "soft_dtw",
    "soft_dtw_alignment",
    "soft_dtw_alignment_from_cost",
    "soft_dtw_barycenter",
    "soft_dtw_from_cost",
    "sqeuclidean_cost",
]


def _demo_values(x, y, gamma):
    """Values of the seed example for ``python -m softdtw.demo``."""
    out = {}
    for dtype in (torch.float32, torch.float64):
        xt = torch.as_tensor(x, dtype=dtype)
        out[f"torch {str(dtype)[6:]}"] = soft_dtw(xt, torch.as_tensor(y), gamma).numpy()
    return out
