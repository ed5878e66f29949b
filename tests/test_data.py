"""Datasets, the DataLoader, transforms and augmentation, MixUp/CutMix, the built-in dataset and
the CIFAR-10 / MNIST readers (on tiny files written here in those formats)."""
import gzip
import struct

import numpy as np
import pytest

import tinygrad_ds as tds
import tinygrad_ds.functional as F
from tinygrad_ds import data
from tinygrad_ds.data import randaugment as RA


def rand_images(n=6, c=3, h=8, w=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, c, h, w), dtype=np.uint8), rng.integers(0, 10, n)


# ---- datasets and the loader ------------------------------------------------------------------
def test_tensor_dataset_and_loader_batches():
    x, y = rand_images(10)
    ds = data.TensorDataset(x, y)
    assert len(ds) == 10
    img, lab = ds[3]
    assert img.dtype == np.float32 and img.shape == (3, 8, 8) and img.max() <= 1.0
    np.testing.assert_allclose(img, x[3] / 255, rtol=1e-6)
    batches = list(data.DataLoader(ds, batch_size=4))
    assert [b[0].shape[0] for b in batches] == [4, 4, 2]
    xb, yb = batches[0]
    assert isinstance(xb, tds.Tensor) and xb.dtype == np.float32 and yb.dtype == np.int64
    np.testing.assert_array_equal(yb.numpy(), y[:4])
    loader = data.DataLoader(ds, batch_size=4, drop_last=True)
    assert len(loader) == 2 and len(list(loader)) == 2


def test_shuffle_is_seeded_and_covers_everything():
    x, y = rand_images(20)
    ds = data.TensorDataset(x, np.arange(20))
    a = [b[1].numpy().tolist() for b in data.DataLoader(ds, 8, shuffle=True, seed=3)]
    b = [b[1].numpy().tolist() for b in data.DataLoader(ds, 8, shuffle=True, seed=3)]
    assert a == b and sorted(sum(a, [])) == list(range(20)) and sum(a, []) != list(range(20))
    loader = data.DataLoader(ds, 8, shuffle=True, seed=3)
    e1 = [t[1].numpy().tolist() for t in loader]
    e2 = [t[1].numpy().tolist() for t in loader]
    assert e1 != e2  # a new order each epoch


def test_custom_dataset_subset_and_split():
    class Squares(data.Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.full((1, 2, 2), i, dtype=np.float32), i

    xb, yb = next(iter(data.DataLoader(Squares(), batch_size=5)))
    assert xb.shape == (5, 1, 2, 2) and yb.numpy().tolist() == [0, 1, 2, 3, 4]
    a, b = data.random_split(Squares(), [3, 2], seed=1)
    got = sorted(int(a[i][1]) for i in range(3)) + sorted(int(b[i][1]) for i in range(2))
    assert sorted(got) == [0, 1, 2, 3, 4]
    with pytest.raises(tds.TdsError, match="sum to"):
        data.random_split(Squares(), [3, 3])


# ---- transforms -------------------------------------------------------------------------------
def image(seed=0, c=3, h=16, w=16):
    return np.random.default_rng(seed).random((c, h, w), dtype=np.float32)


ALL_TRANSFORMS = [
    data.RandomCrop(padding=4), data.RandomHorizontalFlip(), data.RandomBrightness(0.3),
    data.Cutout(6), data.RandAugment(2, 9), data.RandAugment(3, 30),
    data.Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
    data.Compose([data.RandomCrop(padding=2), data.RandomHorizontalFlip(), data.Cutout(4)]),
]


@pytest.mark.parametrize("t", ALL_TRANSFORMS, ids=lambda t: type(t).__name__)
def test_transform_keeps_shape_dtype_and_is_seeded(t):
    img = image()
    a = t(img, np.random.default_rng(7))
    b = t(img, np.random.default_rng(7))
    assert a.shape == img.shape and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", list(RA.OPS))
def test_every_randaugment_op_keeps_shape_range_and_is_seeded(name):
    for c in (3, 1):
        img = image(c=c)
        a = RA.OPS[name](img, 0.7, np.random.default_rng(1), 0.0)
        b = RA.OPS[name](img, 0.7, np.random.default_rng(1), 0.0)
        assert a.shape == img.shape and a.dtype == np.float32
        assert a.min() >= 0 and a.max() <= 1
        np.testing.assert_array_equal(a, b)


def test_random_transforms_pass_through_in_eval_mode():
    img = image()
    t = data.Compose([data.RandomCrop(padding=4), data.Cutout(8), data.RandAugment(3, 20),
                      data.Normalize((0.5,), (0.5,))])
    t.eval()
    np.testing.assert_allclose(t(img, np.random.default_rng(0)), (img - 0.5) / 0.5, rtol=1e-6)
    t.train()
    assert not np.allclose(t(img, np.random.default_rng(0)), (img - 0.5) / 0.5)


def test_dataset_mode_reaches_its_transform():
    x, y = rand_images(4)
    ds = data.TensorDataset(x, y, transform=data.Compose([data.Cutout(8, fill=0.0)]))
    loader = data.DataLoader(ds, batch_size=4, seed=0)
    loader.eval()
    xb, _ = next(iter(loader))
    np.testing.assert_allclose(xb.numpy(), x / 255, rtol=1e-6)
    loader.train()
    xb, _ = next(iter(loader))
    assert not np.allclose(xb.numpy(), x / 255)


def test_geometric_ops_by_hand():
    img = np.arange(9, dtype=np.float32).reshape(1, 3, 3) / 8
    np.testing.assert_array_equal(RA.rotate(img, 90), np.rot90(img, 1, axes=(1, 2)))
    np.testing.assert_array_equal(RA.translate_x(img, 1)[0, :, 1:], img[0, :, :2])
    assert np.all(RA.translate_x(img, 1)[0, :, 0] == 0)
    np.testing.assert_array_equal(RA.translate_y(img, -1, fill=0.5)[0, 2], [0.5] * 3)
    flip = data.RandomHorizontalFlip(p=1.0)(img, np.random.default_rng(0))
    np.testing.assert_array_equal(flip, img[:, :, ::-1])
    crop = data.RandomCrop(size=3, padding=0)(img, np.random.default_rng(0))
    np.testing.assert_array_equal(crop, img)


def test_pixel_ops_by_hand():
    img = np.array([[[0.0, 0.25], [0.5, 1.0]]], dtype=np.float32)
    np.testing.assert_allclose(RA.solarize(img, 0.5), [[[0.0, 0.25], [0.5, 0.0]]])
    np.testing.assert_allclose(RA.posterize(img, 1), [[[0, 0], [128 / 255, 128 / 255]]])
    np.testing.assert_allclose(RA.autocontrast(img * 0.5 + 0.2), img, atol=1e-6)
    np.testing.assert_allclose(RA.brightness(img, 0.5), img * 0.5)
    np.testing.assert_allclose(RA.contrast(img, 0.0), np.full_like(img, img.mean()), atol=1e-6)
    rgb = image()
    grey = RA.color(rgb, 0.0)
    np.testing.assert_allclose(grey[0], grey[1]) and np.testing.assert_allclose(grey[1], grey[2])
    eq = RA.equalize(image(c=1, h=32, w=32) * 0.3)  # a dark image spreads over [0, 1]
    assert eq.max() > 0.9
    np.testing.assert_allclose(RA.sharpness(rgb, 1.0), rgb)
    np.testing.assert_allclose(RA.identity(rgb), rgb)


def test_cutout_and_brightness():
    img = np.ones((3, 10, 10), dtype=np.float32)
    out = data.Cutout(4)(img, np.random.default_rng(0))
    holes = (out == 0).all(axis=0).sum()
    assert 4 <= holes <= 16
    b = data.RandomBrightness(0.5)(img * 0.5, np.random.default_rng(0))
    assert np.ptp(b) == 0 and 0 <= b.flat[0] <= 1


# ---- MixUp / CutMix ---------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [data.MixUp, data.CutMix])
def test_mix_gives_soft_targets_cross_entropy_accepts(cls):
    x, y = rand_images(8)
    xf = x.astype(np.float32) / 255
    mix = cls(num_classes=10, alpha=1.0)
    xm, ym = mix(xf, y, np.random.default_rng(0))
    assert xm.shape == xf.shape and xm.dtype == np.float32
    assert ym.shape == (8, 10) and ym.dtype == np.float32
    np.testing.assert_allclose(ym.sum(axis=1), 1.0, rtol=1e-6)
    xm2, ym2 = mix(xf, y, np.random.default_rng(0))
    np.testing.assert_array_equal(xm, xm2) and np.testing.assert_array_equal(ym, ym2)
    loss = F.cross_entropy(tds.randn(8, 10), tds.Tensor(ym))
    assert np.isfinite(loss.item())
    mix.eval()
    xe, ye = mix(xf, y)
    assert xe is xf and ye is y


def test_cutmix_label_weight_is_the_pasted_area():
    x = np.zeros((2, 1, 10, 10), dtype=np.float32)
    x[1] = 1.0
    xm, ym = data.CutMix(2, alpha=1.0)(x, np.array([0, 1]), np.random.default_rng(4))
    # image 0 got a patch of image 1 (or vice versa): the pasted fraction is the label weight
    for i in range(2):
        frac_from_1 = xm[i].mean()
        assert ym[i, 1] == pytest.approx(frac_from_1)


def test_mix_through_the_loader():
    x, y = rand_images(8)
    loader = data.DataLoader(data.TensorDataset(x, y), batch_size=4, seed=0,
                             batch_transform=data.MixUp(10))
    xb, yb = next(iter(loader))
    assert yb.shape == (4, 10) and yb.dtype == np.float32
    loader.eval()
    xb, yb = next(iter(loader))
    assert yb.shape == (4,) and yb.dtype == np.int64


# ---- the built-in dataset ---------------------------------------------------------------------
def test_builtin_dataset_is_seeded_balanced_and_shaped():
    x, y = data.make_shapes(200, seed=5)
    x2, y2 = data.make_shapes(200, seed=5)
    assert x.shape == (200, 3, 32, 32) and x.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert np.bincount(y, minlength=10).tolist() == [20] * 10
    assert not np.array_equal(x, data.make_shapes(200, seed=6)[0])
    train, val = data.load_builtin(n_train=50, n_val=20, seed=1)
    assert len(train) == 50 and len(val) == 20 and train.classes == data.BUILTIN_CLASSES


def test_builtin_dataset_in_another_image_shape():
    train, val = data.load_builtin(n_train=20, n_val=10, seed=1, image_shape=(1, 28, 28))
    assert train.images.shape == (20, 1, 28, 28) and val.images.shape == (10, 1, 28, 28)
    assert train.images.dtype == np.uint8
    colour = data.make_shapes(20, seed=2)[0]
    grey = np.rint(colour.mean(axis=1)).astype(np.uint8)
    np.testing.assert_array_equal(train.images[:, 0, 0, 0], grey[:, 0, 0])  # nearest pixel
    np.testing.assert_array_equal(train.images[:, 0, 27, 27], grey[:, 31, 31])
    ds = data.open_dataset("builtin", n_train=20, n_val=10, image_shape=(1, 28, 28))
    assert len(ds["mean"]) == 1 and len(ds["std"]) == 1 and "grey 28x28" in ds["name"]
    assert data.open_dataset("builtin", n_train=4, n_val=2, image_shape=(3, 16, 16))[
        "train"].images.shape == (4, 3, 16, 16)
    with pytest.raises(data.DatasetError, match=r"\(2, 32, 32\)"):
        data.open_dataset("builtin", n_train=4, n_val=2, image_shape=(2, 32, 32))


def test_builtin_colour_does_not_give_the_class_away():
    # A nearest-class-mean on mean colour should be near chance: shape, not colour, is the class.
    x, y = data.make_shapes(2000, seed=0)
    feats = x.reshape(len(x), 3, -1).mean(axis=2)
    means = np.stack([feats[y == k].mean(axis=0) for k in range(10)])
    pred = np.argmin(((feats[:, None] - means[None]) ** 2).sum(-1), axis=1)
    assert (pred == y).mean() < 0.25


# ---- readers ----------------------------------------------------------------------------------
def write_cifar(folder, n=3, seed=0):
    rng = np.random.default_rng(seed)
    sub = folder / "cifar-10-batches-bin"
    sub.mkdir()
    want = {}
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        labels = rng.integers(0, 10, n).astype(np.uint8)
        pix = rng.integers(0, 256, (n, 3072)).astype(np.uint8)
        np.concatenate([labels[:, None], pix], axis=1).tofile(sub / name)
        want[name] = (labels, pix.reshape(n, 3, 32, 32))
    return want


def test_read_cifar10(tmp_path):
    want = write_cifar(tmp_path)
    x, y = data.read_cifar10(str(tmp_path), "train")
    assert x.shape == (15, 3, 32, 32) and y.shape == (15,) and y.dtype == np.int64
    np.testing.assert_array_equal(x[:3], want["data_batch_1.bin"][1])
    np.testing.assert_array_equal(y[3:6], want["data_batch_2.bin"][0])
    xt, yt = data.read_cifar10(str(tmp_path / "cifar-10-batches-bin"), "test")
    np.testing.assert_array_equal(xt, want["test_batch.bin"][1])
    d = data.open_dataset(f"cifar10:{tmp_path}")
    assert len(d["train"]) == 15 and len(d["val"]) == 3 and d["num_classes"] == 10


def test_cifar10_missing_and_truncated(tmp_path):
    write_cifar(tmp_path)
    sub = tmp_path / "cifar-10-batches-bin"
    (sub / "data_batch_3.bin").unlink()
    with pytest.raises(data.DatasetError, match=r"data_batch_3\.bin.*missing.*toronto"):
        data.read_cifar10(str(tmp_path))
    write = (sub / "data_batch_3.bin")
    write.write_bytes(b"\x01" * 3000)
    with pytest.raises(data.DatasetError, match=r"data_batch_3\.bin is truncated.*toronto"):
        data.read_cifar10(str(tmp_path))


def idx_bytes(arr, dims=None):
    dims = arr.shape if dims is None else dims
    return struct.pack(">BBBB", 0, 0, 8, len(dims)) + struct.pack(f">{len(dims)}I", *dims) \
        + arr.astype(np.uint8).tobytes()


@pytest.mark.parametrize("gz", [False, True])
def test_read_mnist(tmp_path, gz):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 5), ("t10k", 3)):
        imgs = rng.integers(0, 256, (n, 28, 28))
        labs = rng.integers(0, 10, n)
        arrays[split] = (imgs, labs)
        for kind, arr in (("images-idx3-ubyte", imgs), ("labels-idx1-ubyte", labs)):
            name = f"{split}-{kind}"
            raw = idx_bytes(arr)
            if gz:
                (tmp_path / (name + ".gz")).write_bytes(gzip.compress(raw))
            else:
                (tmp_path / name).write_bytes(raw)
    x, y = data.read_mnist(str(tmp_path), "train")
    assert x.shape == (5, 1, 28, 28) and x.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(x[:, 0], arrays["train"][0])
    np.testing.assert_array_equal(y, arrays["train"][1])
    xt, yt = data.read_mnist(str(tmp_path), "test", fashion=True)
    np.testing.assert_array_equal(yt, arrays["t10k"][1])
    d = data.open_dataset(f"mnist:{tmp_path}")
    assert d["train"][0][0].shape == (1, 28, 28)


def test_mnist_missing_and_truncated(tmp_path):
    with pytest.raises(data.DatasetError, match=r"train-images-idx3-ubyte.*missing.*lecun"):
        data.read_mnist(str(tmp_path))
    with pytest.raises(data.DatasetError, match=r"missing.*zalandoresearch"):
        data.read_mnist(str(tmp_path), fashion=True)
    imgs = np.zeros((4, 28, 28))
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(imgs)[:-100])
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(4)))
    with pytest.raises(data.DatasetError, match=r"train-images-idx3-ubyte: truncated"):
        data.read_mnist(str(tmp_path))
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"garbage!")
    with pytest.raises(data.DatasetError, match="bad magic"):
        data.read_mnist(str(tmp_path))
    (tmp_path / "train-images-idx3-ubyte").unlink()
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(imgs))[:30])
    with pytest.raises(data.DatasetError, match=r"\.gz: cannot read"):
        data.read_mnist(str(tmp_path))


def test_open_dataset_errors(tmp_path):
    with pytest.raises(data.DatasetError, match="unknown dataset"):
        data.open_dataset("imagenet:/x")
    with pytest.raises(data.DatasetError, match="give the folder"):
        data.open_dataset("cifar10")
    with pytest.raises(data.DatasetError, match="not a folder"):
        data.open_dataset(f"mnist:{tmp_path}/nope")
    d = data.open_dataset("builtin", n_train=20, n_val=10)
    assert len(d["train"]) == 20 and d["num_classes"] == 10


def test_mnist_labels_above_9_and_overflowing_headers(tmp_path):
    # issue 15, defect 12: labels above 9 used to pass (the error came mid-training, naming no
    # file), and a header whose dimensions overflow int64 gave a raw ValueError
    imgs = np.zeros((3, 28, 28))
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(imgs))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.array([1, 12, 3])))
    with pytest.raises(data.DatasetError, match=r"train-labels-idx1-ubyte has the label 12 at "
                                                r"position 1"):
        data.read_mnist(str(tmp_path))
    huge = struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(huge + b"\0" * 10)
    with pytest.raises(data.DatasetError, match=r"train-images-idx3-ubyte: truncated: the header "
                                                r"says 4294967295 x 4294967295 x 4294967295"):
        data.read_mnist(str(tmp_path))


# ---- the built-in digits ----------------------------------------------------------------------
def test_digits_are_seeded_balanced_and_shaped():
    x, y = data.make_digits(300, seed=4)
    x2, y2 = data.make_digits(300, seed=4)
    assert x.shape == (300, 1, 28, 28) and x.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert np.bincount(y, minlength=10).tolist() == [30] * 10
    assert not np.array_equal(x, data.make_digits(300, seed=5)[0])
    # white ink on black, the digit in the middle: MNIST's layout
    assert x[:, 0, :3].mean() < 0.1 * x[:, 0, 10:18, 10:18].mean()
    train, val = data.load_digits(n_train=50, n_val=20, seed=1)
    assert len(train) == 50 and len(val) == 20 and train.classes == [str(d) for d in range(10)]
    assert not np.array_equal(train.images[:20], val.images)


def test_digits_are_learnable_but_not_given_away():
    # nearest class mean on raw pixels: well above chance (the classes differ in shape), far
    # from perfect (the hands vary); a convolutional network is needed for the last few percent
    x, y = data.make_digits(2000, seed=0)
    xv, yv = data.make_digits(500, seed=1)
    f, fv = x.reshape(len(x), -1) / 255.0, xv.reshape(len(xv), -1) / 255.0
    means = np.stack([f[y == k].mean(axis=0) for k in range(10)])
    acc = (np.argmin(((fv[:, None] - means[None]) ** 2).sum(-1), axis=1) == yv).mean()
    assert 0.5 < acc < 0.95


def test_open_dataset_digits_records_how_to_reopen_it():
    d = data.open_dataset("digits", n_train=30, n_val=20, seed=2)
    assert d["name"] == "digits" and d["num_classes"] == 10
    assert d["info"] == {"spec": "digits", "n_train": 30, "n_val": 20, "seed": 2,
                         "image_shape": [1, 28, 28], "mean": list(data.digits.MEAN),
                         "std": list(data.digits.STD)}
    again = data.open_dataset(d["info"]["spec"], n_train=30, n_val=20, seed=2)
    np.testing.assert_array_equal(again["val"].images, d["val"].images)
    pix = data.make_digits(2000, seed=0)[0] / 255.0
    assert pix.mean() == pytest.approx(data.digits.MEAN[0], abs=0.01)
    assert pix.std() == pytest.approx(data.digits.STD[0], abs=0.01)
    with pytest.raises(data.DatasetError, match=r"digits are \(1, 28, 28\).*--data shapes"):
        data.open_dataset("digits", n_train=3, n_val=2, image_shape=(3, 32, 32))
    with pytest.raises(data.DatasetError, match="take no folder"):
        data.open_dataset("digits:/tmp")
    assert data.open_dataset("shapes", n_train=4, n_val=2)["info"]["image_shape"] == [3, 32, 32]


def test_loader_state_dict_restores_the_next_batches():
    x, y = rand_images(30)
    ds = data.TensorDataset(x, y, transform=data.RandomCrop(padding=2))
    a = data.DataLoader(ds, 8, shuffle=True, seed=1)
    list(a)  # one epoch drawn
    saved = a.state_dict()
    nxt = [(xb.numpy(), yb.numpy()) for xb, yb in a]
    b = data.DataLoader(ds, 8, shuffle=True, seed=99)
    b.load_state_dict(saved)
    for (xa, ya), (xb, yb) in zip(nxt, b):
        np.testing.assert_array_equal(xa, xb.numpy())
        np.testing.assert_array_equal(ya, yb.numpy())
    with pytest.raises(tds.TdsError, match="no seed of its own"):
        data.DataLoader(ds, 8).load_state_dict(saved)
