"""softdtw.torch's cdist_soft_dtw and soft_dtw_barycenter on tslearn's variable-length datasets:
NaN-padded tensors and arrays, nested lists, lists of series with trailing NaN rows (issue item 9)."""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import softdtw.torch as storch  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # tslearn warns at import when h5py is missing
    from tslearn.metrics import cdist_soft_dtw as ts_cdist
    from tslearn.metrics import cdist_soft_dtw_normalized as ts_cdist_normalized
    from tslearn.preprocessing import TimeSeriesResampler
    from tslearn.utils import to_time_series_dataset

FORMS = ["tensor", "tensor_extra_padding", "array", "nested_lists", "list_of_tensors", "list_of_arrays"]


def series(seed, lengths, d=2):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((k, d)) for k in lengths]


def nan_rows(s, k):
    return np.concatenate([s, np.full((k, s.shape[1]), np.nan)])


def as_form(ss, form, dtype=torch.float64):
    """The series ``ss`` as a dataset of the given form (NaN padding wherever the form allows)."""
    padded = to_time_series_dataset(ss)
    if form == "tensor_extra_padding":  # every series padded: one more all-NaN step
        padded = np.concatenate([padded, np.full((len(ss), 1, padded.shape[2]), np.nan)], axis=1)
    if form in ("tensor", "tensor_extra_padding"):
        return torch.as_tensor(padded, dtype=dtype)
    if form == "array":
        return padded
    if form == "nested_lists":
        return padded.tolist()
    with_nan = [nan_rows(s, k % 3) for k, s in enumerate(ss)]  # trailing NaN rows on some series
    if form == "list_of_arrays":
        return with_nan
    return [torch.as_tensor(s, dtype=dtype) for s in with_nan]


def expected(X, Y, gamma, normalize):
    if normalize:
        return ts_cdist_normalized(X, Y, gamma=gamma)
    return ts_cdist(X, Y, gamma=gamma)


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("with_y", [False, True])
@pytest.mark.parametrize("form", FORMS)
def test_cdist_float64_equals_tslearn(form, with_y, normalize):
    X = series(0, (3, 8, 5, 6))
    Y = series(1, (7, 2, 4)) if with_y else None
    got = storch.cdist_soft_dtw(as_form(X, form), None if Y is None else as_form(Y, form), 0.3,
                                normalize=normalize, chunk_size=5)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
    want = expected(X, Y, 0.3, normalize)
    assert got.shape == want.shape
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("form", ["tensor", "list_of_tensors"])
def test_cdist_float32_close_to_tslearn(form):
    X, Y = series(2, (4, 9, 6, 3)), series(3, (5, 8))
    got = storch.cdist_soft_dtw(as_form(X, form, torch.float32), as_form(Y, form, torch.float32), 0.5)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), ts_cdist(X, Y, gamma=0.5), rtol=1e-5, atol=1e-5)
    got = storch.cdist_soft_dtw(as_form(X, form, torch.float32), gamma=0.5, normalize=True)
    np.testing.assert_allclose(got.numpy(), ts_cdist_normalized(X, gamma=0.5), rtol=1e-5, atol=1e-5)


def test_band_on_nan_padded_tensor_equals_tslearn():
    X, Y = series(4, (6, 9, 7)), series(5, (8, 6))
    band = {"global_constraint": "sakoe_chiba", "sakoe_chiba_radius": 2}
    got = storch.cdist_soft_dtw(as_form(X, "tensor"), as_form(Y, "tensor"), 0.4, **band)
    np.testing.assert_allclose(got.numpy(), ts_cdist(X, Y, gamma=0.4, **band), rtol=1e-10, atol=1e-12)


def test_gradients_are_finite_where_used_and_zero_at_padding():
    X, Y = series(6, (3, 7, 5)), series(7, (6, 2))
    W = torch.as_tensor(np.random.default_rng(8).standard_normal((3, 2)))
    xt, yt = as_form(X, "tensor").requires_grad_(), as_form(Y, "tensor").requires_grad_()
    got = storch.cdist_soft_dtw(xt, yt, 0.7, normalize=True, chunk_size=4)
    np.testing.assert_allclose(got.detach().numpy(), ts_cdist_normalized(X, Y, gamma=0.7), rtol=1e-10, atol=1e-12)
    (W * got).sum().backward()
    # the same series unpadded, as a list: the gradients at the used positions
    xs = [torch.tensor(s, requires_grad=True) for s in X]
    ys = [torch.tensor(s, requires_grad=True) for s in Y]
    (W * storch.cdist_soft_dtw(xs, ys, 0.7, normalize=True, chunk_size=4)).sum().backward()
    for t, parts in ((xt, xs), (yt, ys)):
        assert t.grad is not None
        for k, s in enumerate(parts):
            n = s.shape[0]
            assert torch.isfinite(t.grad[k, :n]).all()
            np.testing.assert_allclose(t.grad[k, :n].numpy(), s.grad.numpy(), rtol=1e-9, atol=1e-12)
            assert (t.grad[k, n:] == 0).all() and not torch.signbit(t.grad[k, n:]).any()


def test_gradients_without_y_are_zero_at_padding():
    xt = as_form(series(9, (4, 6, 2)), "tensor").requires_grad_()
    storch.cdist_soft_dtw(xt, gamma=0.5).sum().backward()
    used = ~torch.isnan(xt.detach())
    assert torch.isfinite(xt.grad[used]).all() and (xt.grad[used] != 0).any()
    assert (xt.grad[~used] == 0).all()


def test_callers_data_are_unchanged():
    X, Y = series(10, (3, 6)), series(11, (5, 4))
    xt, ya = as_form(X, "tensor").requires_grad_(), as_form(Y, "array")
    xl = as_form(X, "list_of_tensors")
    before = [t.detach().clone() for t in [xt] + xl]
    ya_before = ya.copy()
    storch.cdist_soft_dtw(xt, ya, 1.0).sum().backward()
    storch.cdist_soft_dtw(xl, gamma=1.0)
    storch.soft_dtw_barycenter(xt, 1.0, max_iter=3)
    for t, b in zip([xt] + xl, before):
        assert torch.equal(torch.isnan(t), torch.isnan(b))
        assert torch.equal(t.detach().nan_to_num(), b.nan_to_num())
    np.testing.assert_array_equal(ya, ya_before)
    assert xt.requires_grad


def test_datasets_without_nan_are_unchanged():
    """No NaN, equal lengths: the padded tensor itself, as before (the same values to the bit)."""
    X = torch.as_tensor(np.stack(series(12, (5, 5, 5))))
    Y = torch.as_tensor(np.stack(series(13, (4, 4))))
    got = storch.cdist_soft_dtw(X.tolist(), Y.numpy(), 0.5, normalize=True)
    assert torch.equal(got, storch.cdist_soft_dtw(X, Y, 0.5, normalize=True))


NAN_INSIDE = [
    ("X", "tensor", r"X\[1\] has a NaN at time step 2"),
    ("Y", "tensor", r"Y\[1\] has a NaN at time step 2"),
    ("X", "nested_lists", r"X\[1\] has a NaN at time step 2"),
    ("X", "list_of_tensors", r"X\[1\] has a NaN at time step 2"),
]


@pytest.mark.parametrize("which, form, match", NAN_INSIDE)
def test_nan_inside_a_series_raises(which, form, match):
    ss = series(14, (4, 6, 5))
    ss[1][2, 0] = np.nan  # one feature of one step: not padding
    bad, good = as_form(ss, form), as_form(series(15, (3, 4)), "tensor")
    with pytest.raises(ValueError, match=match):
        storch.cdist_soft_dtw(bad, good) if which == "X" else storch.cdist_soft_dtw(good, bad)


def test_nan_inside_a_series_raises_in_barycenter():
    ss = series(16, (4, 6, 5))
    ss[2][:2] = np.nan  # leading NaN steps are not padding
    with pytest.raises(ValueError, match=r"X\[2\] has a NaN at time step 0"):
        storch.soft_dtw_barycenter(as_form(ss, "tensor"))


def test_all_nan_series_raises():
    X = as_form(series(17, (4, 3)), "tensor")
    X[1] = float("nan")
    with pytest.raises(ValueError, match=r"X\[1\] is all NaN"):
        storch.cdist_soft_dtw(X)
    with pytest.raises(ValueError, match=r"X\[1\] is all NaN"):
        storch.soft_dtw_barycenter(X)


def test_barycenter_of_the_issue_is_finite():
    X = torch.tensor([[[0.0], [1.0], [2.0]], [[0.0], [1.0], [float("nan")]]], dtype=torch.float64)
    z, f = storch.soft_dtw_barycenter(X, 0.1, max_iter=100, tol=1e-8)
    assert torch.isfinite(z).all() and torch.isfinite(f)
    zl, fl = storch.soft_dtw_barycenter([X[0], X[1, :2]], 0.1, max_iter=100, tol=1e-8)
    np.testing.assert_allclose(z.numpy(), zl.numpy(), rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("form", ["tensor", "tensor_extra_padding", "nested_lists", "list_of_arrays"])
@pytest.mark.parametrize("init", [False, True])
def test_barycenter_of_nan_padded_equals_list_of_series(form, init):
    ss = [np.cumsum(s, axis=0) for s in series(18, (12, 7, 10, 5))]
    w = np.random.default_rng(19).uniform(0.5, 2.0, len(ss))
    kw = dict(weights=w, max_iter=30, tol=1e-10)
    if init:
        kw["init"] = ss[2][::2]
    z, f = storch.soft_dtw_barycenter(as_form(ss, form), 1.0, **kw)
    zl, fl = storch.soft_dtw_barycenter([torch.as_tensor(s) for s in ss], 1.0, **kw)
    assert z.dtype == torch.float64 and z.shape == ((5, 2) if init else (12, 2))
    assert torch.isfinite(z).all() and torch.isfinite(f)
    np.testing.assert_allclose(z.numpy(), zl.numpy(), rtol=1e-8, atol=1e-8)
    assert abs(float(f) - float(fl)) <= 1e-8 * abs(float(fl))


def test_barycenter_default_start_is_tslearns():
    """Variable lengths: each series resampled linearly to the longest length, then averaged."""
    ss = series(20, (6, 3, 1, 4))
    w = np.array([1.0, 2.0, 0.5, 1.5])
    z, f = storch.soft_dtw_barycenter(as_form(ss, "tensor_extra_padding"), 1.0, weights=w, max_iter=0)
    want = np.average(TimeSeriesResampler(sz=6).fit_transform(to_time_series_dataset(ss)), axis=0, weights=w)
    np.testing.assert_allclose(z.numpy(), want, rtol=1e-12, atol=1e-12)
    objective = sum(wi * ts_cdist([want], [s], gamma=1.0)[0, 0] for wi, s in zip(w, ss))
    assert abs(float(f) - objective) <= 1e-10 * abs(objective)


def test_barycenter_float32():
    ss = [np.cumsum(s, axis=0) for s in series(21, (9, 6, 8))]
    z64, _ = storch.soft_dtw_barycenter(as_form(ss, "tensor"), 1.0, max_iter=5)
    z32, _ = storch.soft_dtw_barycenter(as_form(ss, "tensor", torch.float32), 1.0, max_iter=5)
    assert z32.dtype == torch.float32 and torch.isfinite(z32).all()
    np.testing.assert_allclose(z32.numpy(), z64.numpy(), rtol=1e-3, atol=1e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_nan_padded_equals_tslearn():
    X, Y = series(22, (3, 8, 5)), series(23, (7, 2))
    xt = as_form(X, "tensor").cuda().requires_grad_()
    yl = [t.cuda() for t in as_form(Y, "list_of_tensors")]
    got = storch.cdist_soft_dtw(xt, yl, 0.3, normalize=True)
    assert got.device.type == "cuda"
    np.testing.assert_allclose(got.detach().cpu().numpy(), ts_cdist_normalized(X, Y, gamma=0.3), rtol=1e-9,
                               atol=1e-12)
    got.sum().backward()
    assert (xt.grad[torch.isnan(xt.detach())] == 0).all() and torch.isfinite(xt.grad).all()
    z, f = storch.soft_dtw_barycenter(xt, 1.0, max_iter=5)
    zc, fc = storch.soft_dtw_barycenter(xt.detach().cpu(), 1.0, max_iter=5)
    assert z.device.type == "cuda"
    np.testing.assert_allclose(z.cpu().numpy(), zc.numpy(), rtol=1e-6, atol=1e-8)
