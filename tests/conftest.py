import importlib.util
import os

# The Triton kernels run on CPU tensors only in the interpreter, which must be chosen before
# triton is imported; on a machine with a GPU the compiled kernels are tested instead.
if importlib.util.find_spec("torch") is not None:
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
from hypothesis import HealthCheck, settings


@pytest.fixture(params=["default", "pure"])
def kernel(request, monkeypatch):
    """Run a torch test with the device's default kernel and with the pure-torch path."""
    if request.param == "pure":
        monkeypatch.setenv("SOFTDTW_KERNEL", "pure")
    else:
        monkeypatch.delenv("SOFTDTW_KERNEL", raising=False)
    return request.param

settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=40, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile("dev", deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("thorough", deadline=None, max_examples=1000, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
