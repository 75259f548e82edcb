"""JAX realization of soft-DTW (``pip install softdtw[jax]``)."""

try:
    import jax  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised in a subprocess test
    raise ImportError("softdtw.jax needs JAX: pip install softdtw[jax]") from e
