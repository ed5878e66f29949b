"""MetaArray: numpy calls on shape-only arrays give the shapes and dtypes real arrays give."""
import numpy as np
import pytest

import tinygrad_ds as tds
from tinygrad_ds import backend
from tinygrad_ds.backend import meta as meta_backend
from tinygrad_ds.meta import MetaArray, MetaValueError

CASES = [
    lambda x: np.add(x, 1.5),
    lambda x: x * np.float64(2.0),
    lambda x: x + np.ones((4,), np.float64),
    lambda x: np.sum(x, axis=1, keepdims=True),
    lambda x: np.sum(x, axis=(0, 2)),
    lambda x: np.max(x, axis=-1),
    lambda x: np.mean(x, axis=0),
    lambda x: np.transpose(x, (2, 0, 1)),
    lambda x: x.T,
    lambda x: x.reshape(6, -1),
    lambda x: x.astype(np.float64),
    lambda x: x[:, 1],
    lambda x: x[..., None, ::2],
    lambda x: x[np.array([0, 1, 1])],
    lambda x: np.concatenate([x, x], axis=1),
    lambda x: np.stack([x, x], axis=0),
    lambda x: np.pad(x, ((0, 0), (1, 2), (3, 4))),
    lambda x: np.where(x > 0, x, 0.0),
    lambda x: np.broadcast_to(x[:, :1], (2, 3, 4)),
    lambda x: np.matmul(x, np.ones((4, 5), np.float32)),
    lambda x: np.exp(x),
    lambda x: np.squeeze(x[:, :1], axis=1),
    lambda x: np.expand_dims(x, 1),
    lambda x: np.argmax(x, axis=1),
    lambda x: (x > 0).astype(x.dtype),
    lambda x: np.zeros_like(x),
    lambda x: np.maximum(x, 0),
]


@pytest.mark.parametrize("k", range(len(CASES)))
def test_meta_matches_numpy(k):
    real = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    want = np.asarray(CASES[k](real))
    got = CASES[k](MetaArray((2, 3, 4), np.float32))
    assert isinstance(got, MetaArray)
    assert got.shape == want.shape and got.dtype == want.dtype


def test_values_are_refused():
    x = MetaArray((2, 3))
    with pytest.raises(MetaValueError, match="shape-only"):
        bool(x.sum() > 0)
    with pytest.raises(MetaValueError):
        x.item()


def test_shape_errors_as_numpy():
    with pytest.raises(ValueError):
        np.add(MetaArray((2, 3)), MetaArray((4,)))
    with pytest.raises(ValueError):
        np.matmul(MetaArray((2, 3)), MetaArray((4, 5)))


def test_meta_backend_covers_the_table_and_is_dispatched():
    assert backend.missing(meta_backend) == []
    assert backend.kernels_for(MetaArray((1,))) is meta_backend


def test_tensor_ops_on_meta_tensors():
    x = tds.Tensor._wrap(MetaArray((4, 3)))
    x.requires_grad = True
    w = tds.randn(3, 5, requires_grad=True)
    y = (x @ w).relu().log_softmax(-1).sum()
    assert isinstance(y.data, MetaArray) and y.shape == ()
    y.backward(tds.Tensor._wrap(MetaArray(())))
    assert isinstance(w.grad.data, MetaArray) and w.grad.shape == (3, 5)
