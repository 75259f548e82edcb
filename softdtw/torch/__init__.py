"""PyTorch realization of soft-DTW (``pip install softdtw[torch]``)."""

try:
    import torch  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised in a subprocess test
    raise ImportError("softdtw.torch needs PyTorch: pip install softdtw[torch]") from e
