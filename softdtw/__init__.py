"""softdtw: the Soft-DTW loss and divergence for NumPy, PyTorch and JAX.

``import softdtw`` loads neither torch nor jax. Pick a realization explicitly::

    import softdtw.numpy   # float64 reference
    import softdtw.torch   # pip install softdtw[torch]
    import softdtw.jax     # pip install softdtw[jax]
"""

__version__ = "0.1.0"

from . import spec  # noqa: E402  (NumPy only)

__all__ = ["__version__", "spec"]
