"""The loss where users run it: training steps of an MLP forecaster on CPU, side by side.

    python benchmarks/bench_train.py [--widths 64 1024] [--rounds 5] [--steps 20] [--impls mse,softdtw,...]

The model maps the first half of a series (32 steps, 2 features) to its second half through a
3-layer MLP of the given width, on a batch of 512 (B, N, M, D = 512, 32, 32, 2). A step is
``zero_grad``, forward, loss, ``backward`` and an Adam step. Each loss's steps are timed in
rounds interleaved with the others (the same process, the same model sizes).

Printed per width: ms per step (the median round), and each loss's share of a step: per round,
its step time minus MSE's in the same round, the median over rounds (a width-1024 step takes
~20 ms and moves by a millisecond between rounds; the best rounds of two losses, subtracted,
read shares of 0.6 to 1.7 ms for the same loss in five runs);
then the two targets of the core's issue: the share at the widest model over the share at the
narrowest (a loss that fights the model's threads grows with the model), and each peer's share
over ours. ``softdtw-numba`` is the numba kernel (``SOFTDTW_KERNEL=numba``), the baseline the
compiled core replaces. Needs the ``bench`` extra for the peers (tslearn, pysdtw).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time

import torch

B, HALF, D = 512, 32, 2


def make_loss(name: str):
    if name == "mse":
        return torch.nn.functional.mse_loss
    if name in ("softdtw", "softdtw-numba"):
        from softdtw.torch import SoftDTWLossPyTorch

        loss = SoftDTWLossPyTorch(gamma=1.0)
        kernel = "numba" if name == "softdtw-numba" else ""

        def run(pred, target):
            os.environ["SOFTDTW_KERNEL"] = kernel  # read at each call ("" is the default, the core)
            return loss(pred, target).mean()
        return run
    if name == "tslearn":
        from tslearn.metrics import SoftDTWLossPyTorch

        loss = SoftDTWLossPyTorch(gamma=1.0)
        return lambda pred, target: loss(pred, target).mean()
    if name == "pysdtw":
        import pysdtw

        loss = pysdtw.SoftDTW(gamma=1.0, use_cuda=False)
        return lambda pred, target: loss(pred, target).mean()
    raise ValueError(name)


def make_model(width: int, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(HALF * D, width), torch.nn.ReLU(),
                               torch.nn.Linear(width, width), torch.nn.ReLU(),
                               torch.nn.Linear(width, HALF * D))


def data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 6.28, 2 * HALF)
    phase = torch.rand(B, 1, 1, generator=g) * 6.28
    series = torch.sin(t[None, :, None] * torch.tensor([1.0, 2.0]) + phase) + 0.1 * torch.randn(B, 2 * HALF, D,
                                                                                                 generator=g)
    return series[:, :HALF].reshape(B, -1).contiguous(), series[:, HALF:].contiguous()


def steps(model, opt, loss_fn, x, y, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        opt.zero_grad(set_to_none=True)
        pred = model(x).view(B, HALF, D)
        loss_fn(pred, y).backward()
        opt.step()
    return (time.perf_counter() - t) / n


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--widths", nargs="*", type=int, default=[64, 1024])
    p.add_argument("--impls", default="mse,softdtw,softdtw-numba,pysdtw,tslearn")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--steps", type=int, default=20)
    a = p.parse_args()
    impls = a.impls.split(",")
    assert impls[0] == "mse" and "softdtw" in impls, "mse first, softdtw among the impls"
    x, y = data()
    print(f"# training-step benchmark, {datetime.date.today()}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, float32, B,N,M,D = {B},{HALF},{HALF},{D}, "
          f"medians of {a.rounds} interleaved rounds of {a.steps} steps")
    share = {}
    for width in a.widths:
        setups = {}
        for name in impls:
            model = make_model(width)
            setups[name] = (model, torch.optim.Adam(model.parameters(), 1e-3), make_loss(name))
            steps(*setups[name], x, y, 3)  # warm-up (first calls, allocations)
        rounds = {name: [] for name in impls}
        for _ in range(a.rounds):
            for name in impls:
                rounds[name].append(steps(*setups[name], x, y, a.steps))
        os.environ.pop("SOFTDTW_KERNEL", None)
        print()
        print(f"width {width}: | loss | ms per step | share of the step (minus MSE's), ms |")
        print("| --- | --- | --- |")
        for name in impls:
            share[(width, name)] = statistics.median(t - m for t, m in zip(rounds[name], rounds["mse"]))
            print(f"| {name} | {statistics.median(rounds[name]) * 1e3:.2f} | {share[(width, name)] * 1e3:.2f} |")
    lo, hi = min(a.widths), max(a.widths)
    print()
    print(f"softdtw share at width {hi} / at width {lo}: {share[(hi, 'softdtw')] / share[(lo, 'softdtw')]:.2f} "
          "(target <= 1.3)")
    for name in impls[1:]:
        if name != "softdtw":
            print(f"{name} share / softdtw share at width {hi}: {share[(hi, name)] / share[(hi, 'softdtw')]:.1f}x")


if __name__ == "__main__":
    main()
