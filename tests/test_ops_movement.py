"""Movement ops (reshape, flatten, transpose, permute, getitem, expand, concat, stack, pad,
split, squeeze): forward against numpy, backward through tds.gradcheck."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes

import tinygrad_ds as tds

SEEDS = st.integers(0, 2**16)
SHAPES = array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4)


def data(seed: int, shape) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def check(fn, ref, *arrays):
    """Forward in float32 and float64 against numpy on float64; backward by gradcheck."""
    for dtype in ("float32", "float64"):
        ts = [tds.Tensor(a, dtype=dtype) for a in arrays]
        out = fn(*ts)
        expected = ref(*[t.data.astype(np.float64) for t in ts])
        assert out.dtype == np.dtype(dtype) and out.shape == np.shape(expected)
        np.testing.assert_allclose(out.data, expected, rtol=1e-6)
    assert tds.gradcheck(fn, *[tds.Tensor(a, dtype="float64", requires_grad=True) for a in arrays])


@given(shape=SHAPES, seed=SEEDS, how=st.sampled_from(["flat", "reversed", "col", "infer"]))
def test_reshape(shape, seed, how):
    n = int(np.prod(shape))
    target = {"flat": (n,), "reversed": shape[::-1], "col": (n, 1), "infer": (-1,) + shape[-1:]}
    new = target[how]
    check(lambda t: t.reshape(*new), lambda a: a.reshape(new), data(seed, shape))
    check(lambda t: t.reshape(new).view(shape), lambda a: a, data(seed, shape))


@given(shape=SHAPES, seed=SEEDS, data_=st.data())
def test_flatten(shape, seed, data_):
    nd = len(shape)
    s = data_.draw(st.integers(0, nd - 1))
    e = data_.draw(st.integers(s, nd - 1))
    new = shape[:s] + (int(np.prod(shape[s:e + 1])),) + shape[e + 1:]
    check(lambda t: t.flatten(s, e), lambda a: a.reshape(new), data(seed, shape))
    check(lambda t: t.flatten(), lambda a: a.reshape(-1), data(seed, shape))


@given(shape=SHAPES, seed=SEEDS, data_=st.data())
def test_permute_and_transpose(shape, seed, data_):
    nd = len(shape)
    perm = data_.draw(st.permutations(list(range(nd))))
    d0, d1 = data_.draw(st.integers(-nd, nd - 1)), data_.draw(st.integers(-nd, nd - 1))
    x = data(seed, shape)
    check(lambda t: t.permute(*perm), lambda a: np.transpose(a, perm), x)
    check(lambda t: t.transpose(d0, d1), lambda a: np.swapaxes(a, d0, d1), x)
    check(lambda t: t.T, lambda a: a.T, x)


@st.composite
def index_for(draw, shape):
    """An index mixing ints, slices (any step), None, and at most one integer array (with
    repeats and negatives), as numpy takes it."""
    parts, used_array = [], False
    for n in shape[:draw(st.integers(1, len(shape)))]:
        kind = draw(st.sampled_from(["int", "slice", "array", "none", "full"]))
        if kind == "int":
            parts.append(draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            start = draw(st.one_of(st.none(), st.integers(-n, n)))
            stop = draw(st.one_of(st.none(), st.integers(-n, n)))
            step = draw(st.one_of(st.none(), st.sampled_from([1, 2, -1, -2])))
            parts.append(slice(start, stop, step))
        elif kind == "array" and not used_array:
            used_array = True
            parts.append(draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=5)))
        else:
            parts.append(slice(None))
        if kind == "none":
            parts.append(None)
    return tuple(parts)


@given(shape=SHAPES, seed=SEEDS, data_=st.data())
def test_getitem(shape, seed, data_):
    index = data_.draw(index_for(shape))
    np_index = tuple(np.array(i) if isinstance(i, list) else i for i in index)
    check(lambda t: t[index], lambda a: a[np_index], data(seed, shape))


def test_getitem_repeated_indices_add_their_gradients():
    x = tds.Tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[[0, 0, 2, 0]].sum().backward()
    np.testing.assert_allclose(x.grad.data, [3.0, 0.0, 1.0])
    y = tds.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    idx = tds.Tensor([1, 1])
    y[idx, 1:].sum().backward()
    np.testing.assert_allclose(y.grad.data, [[0, 0, 0], [0, 2, 2]])


def test_getitem_boolean_mask_and_ellipsis():
    x = data(1, (3, 4))
    mask = x > 0
    check(lambda t: t[tds.Tensor(mask)], lambda a: a[mask], x)
    check(lambda t: t[..., 1], lambda a: a[..., 1], x)
    check(lambda t: t[1], lambda a: a[1], x)


@given(shape=array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3), seed=SEEDS,
       data_=st.data())
def test_expand(shape, seed, data_):
    # make some axes size 1 so that they can grow, and maybe add leading axes
    ones = data_.draw(st.lists(st.booleans(), min_size=len(shape), max_size=len(shape)))
    small = tuple(1 if o else s for s, o in zip(shape, ones))
    lead = tuple(data_.draw(st.lists(st.integers(1, 3), max_size=2)))
    target = lead + shape
    check(lambda t: t.expand(*target), lambda a: np.broadcast_to(a, target), data(seed, small))
    keep = lead + tuple(-1 for _ in small)
    check(lambda t: t.expand(keep), lambda a: np.broadcast_to(a, lead + small), data(seed, small))


@given(shape=SHAPES, seed=SEEDS, data_=st.data())
def test_concat_and_stack(shape, seed, data_):
    nd = len(shape)
    axis = data_.draw(st.integers(-nd, nd - 1))
    sizes = data_.draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    ax = axis % nd
    arrays = [data(seed + i, shape[:ax] + (n,) + shape[ax + 1:]) for i, n in enumerate(sizes)]
    check(lambda *ts: tds.concat(ts, axis), lambda *a: np.concatenate(a, axis), *arrays)
    same = [data(seed + i, shape) for i in range(len(sizes))]
    saxis = data_.draw(st.integers(-nd - 1, nd))
    check(lambda *ts: tds.stack(ts, saxis), lambda *a: np.stack(a, saxis), *same)


def test_concat_with_an_input_that_needs_no_grad():
    a = tds.Tensor([1.0, 2.0], requires_grad=True)
    tds.cat([a, tds.Tensor([3.0])]).sum().backward()
    np.testing.assert_allclose(a.grad.data, [1.0, 1.0])


@given(shape=SHAPES, seed=SEEDS, data_=st.data())
def test_pad(shape, seed, data_):
    k = data_.draw(st.integers(1, len(shape)))
    padding = data_.draw(st.lists(st.integers(0, 2), min_size=2 * k, max_size=2 * k))
    value = data_.draw(st.sampled_from([0.0, 1.5]))
    pairs = [(0, 0)] * len(shape)
    for i in range(k):  # PyTorch order: the last axis first
        pairs[len(shape) - 1 - i] = (padding[2 * i], padding[2 * i + 1])
    check(lambda t: t.pad(padding, value), lambda a: np.pad(a, pairs, constant_values=value),
          data(seed, shape))


@given(shape=SHAPES, seed=SEEDS, data_=st.data())
def test_split_and_chunk(shape, seed, data_):
    nd = len(shape)
    axis = data_.draw(st.integers(-nd, nd - 1))
    n = shape[axis]
    x = data(seed, shape)
    size = data_.draw(st.integers(1, n + 1))
    cuts = list(range(size, n, size))
    for i in range(len(cuts) + 1):
        check(lambda t: t.split(size, axis)[i], lambda a: np.split(a, cuts, axis)[i], x)
    sections = [n] if n == 1 else [1, n - 1]
    parts = tds.functional.split(tds.Tensor(x), sections, axis)
    assert [p.shape[axis] for p in parts] == sections
    chunks = tds.Tensor(x).chunk(2, axis)
    np.testing.assert_allclose(np.concatenate([c.data for c in chunks], axis), x.astype(np.float32))


def test_squeeze_unsqueeze():
    x = data(2, (3, 1, 2))
    check(lambda t: t.squeeze(), lambda a: a.squeeze(), x)
    check(lambda t: t.squeeze(1), lambda a: a.squeeze(1), x)
    check(lambda t: t.squeeze(0), lambda a: a, x)  # a size-3 axis stays, as in PyTorch
    check(lambda t: t.unsqueeze(-1), lambda a: a[..., None], x)
    check(lambda t: t.unsqueeze(0), lambda a: a[None], x)


@pytest.mark.parametrize("fn", [lambda t: t.reshape(3, 2), lambda t: t.permute(1, 0),
                                lambda t: t[:, 1:], lambda t: t.expand(4, 2, 3)])
def test_movement_output_used_twice(fn):
    x = tds.Tensor(data(5, (2, 3)), dtype="float64", requires_grad=True)
    assert tds.gradcheck(lambda t: (fn(t) * fn(t)).sum(), x)
