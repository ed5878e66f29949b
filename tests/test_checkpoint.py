"""Checkpoints: save_checkpoint/read_checkpoint, Module.save/load on bad files (defects 3, 8,
14 of issue 15), optimizer state validation (defect 11), @no_grad() on a generator (defect 14),
and History.plot shown inline in Jupyter."""
import io
import json
import sys
import types
import zipfile

import numpy as np
import pytest

import tinygrad_ds as tds
from tinygrad_ds import nn, optim
from tinygrad_ds.train import History, read_checkpoint, save_checkpoint


def net():
    tds.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))


def trained(steps=2):
    model = net()
    opt = optim.Adam(model.parameters(), lr=0.01)
    sched = optim.StepLR(opt, 1, gamma=0.5)
    for _ in range(steps):
        loss = model(tds.randn(5, 4)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model, opt, sched


def test_checkpoint_round_trip_without_pickle(tmp_path):
    model, opt, sched = trained()
    path = str(tmp_path / "ck.npz")
    save_checkpoint(path, model, {"epoch": 2, "metrics": {"val_acc": 0.5},
                                  "data": {"mean": [0.1], "std": [0.3]}}, opt, sched)
    with np.load(path, allow_pickle=False) as z:  # plain arrays and one text array
        meta = json.loads(str(z["__tds_meta__"]))
    assert meta["epoch"] == 2 and meta["versions"]["numpy"] == np.__version__
    assert meta["optimizer"]["type"] == "Adam" and meta["scheduler"]["state"]["last_epoch"] == 2

    ck = read_checkpoint(path)
    assert ck.epoch == 2 and ck.metrics == {"val_acc": 0.5}
    assert ck.normalize().mean.ravel().tolist() == pytest.approx([0.1])
    other, opt2, sched2 = trained(steps=0)
    other_opt = optim.Adam(other.parameters(), lr=0.01)
    other_sched = optim.StepLR(other_opt, 1, gamma=0.5)
    ck.load_into(other)
    ck.restore_optimizer(other_opt, other_sched)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(other.state_dict()[k], v)
    assert other_opt.param_groups[0]["lr"] == opt.param_groups[0]["lr"] == 0.0025
    for a, b in zip(opt.state_dict()["state"].values(), other_opt.state_dict()["state"].values()):
        np.testing.assert_array_equal(a["exp_avg"], b["exp_avg"])
        assert a["step"] == b["step"]
    fresh = net()
    fresh.load(path)  # Module.load reads a self-describing checkpoint too
    np.testing.assert_array_equal(fresh.state_dict()["0.weight"], model.state_dict()["0.weight"])
    with pytest.raises(tds.TdsError, match="holds the state of Adam, not of SGD"):
        ck.restore_optimizer(optim.SGD(other.parameters(), lr=0.1))


def test_failed_load_changes_nothing_string_array_of_the_right_shape(tmp_path):
    # defect 3: a key holding a string array of the right shape used to raise a raw
    # ValueError after the earlier keys had been copied
    model = net()
    state = {k: v + 1 for k, v in model.state_dict().items()}
    state["2.bias"] = np.array(["a", "b", "c"])
    before = model.state_dict()
    with pytest.raises(tds.TdsError, match=r"not real numbers.*2\.bias"):
        model.load_state_dict(state)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    path = tmp_path / "s.npz"
    np.savez(path, **state)
    with pytest.raises(tds.TdsError, match=r"s\.npz.*'2\.bias'.*not real numbers"):
        model.load(str(path))
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_complex_values_are_refused(tmp_path):
    # defect 14: complex values used to load silently, dropping the imaginary part
    model = net()
    state = model.state_dict()
    state["0.bias"] = state["0.bias"] + 1j
    path = tmp_path / "c.npz"
    np.savez(path, **state)
    with pytest.raises(tds.TdsError, match=r"c\.npz.*'0\.bias'.*complex"):
        model.load(str(path))
    with pytest.raises(tds.TdsError, match=r"0\.bias: complex64"):
        model.load_state_dict(state)


def test_save_writes_exactly_the_path_given(tmp_path):
    # defect 14: save('noext') wrote noext.npz, so load('noext') failed
    model = net()
    path = tmp_path / "noext"
    model.save(str(path))
    assert path.exists() and not (tmp_path / "noext.npz").exists()
    other = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
    other.load(str(path))
    np.testing.assert_array_equal(other.state_dict()["2.weight"], model.state_dict()["2.weight"])


def test_bit_flipped_checkpoint_is_one_error_naming_the_file(tmp_path):
    # defect 8: a flipped bit used to raise a raw zipfile.BadZipFile
    model, opt, sched = trained()
    good = tmp_path / "good.npz"
    save_checkpoint(str(good), model, {"epoch": 1}, opt, sched)
    raw = good.read_bytes()
    want = model.state_dict()
    errors = 0
    for pos in range(0, len(raw), max(1, len(raw) // 97)):
        bad = bytearray(raw)
        bad[pos] ^= 0x10
        path = tmp_path / "flipped.npz"
        path.write_bytes(bytes(bad))
        fresh = net()
        try:
            fresh.load(str(path))
            read_checkpoint(str(path))
        except tds.TdsError as e:
            assert "flipped.npz" in str(e)
            errors += 1
            continue
        # a flip the format does not notice (a timestamp, an unused field) changes no value
        for k, v in fresh.state_dict().items():
            np.testing.assert_array_equal(v, want[k])
    assert errors > 50


def test_npy_header_claiming_1e11_elements(tmp_path):
    # defect 8: such a header used to raise a raw MemoryError
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False,
                                               "shape": (100_000_000_000,)})
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("0.weight.npy", buf.getvalue() + b"\0" * 16)
    with pytest.raises(tds.TdsError, match=r"huge\.npz.*'0\.weight' is corrupt.*100000000000"):
        net().load(str(path))


def test_optimizer_load_state_dict_validates_first():
    # defect 11: lr='fast' or momentum=-5 used to be accepted, and step() crashed in numpy
    model = net()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    good = opt.state_dict()
    for key, value, match in (("lr", "fast", "lr='fast' must be a finite number"),
                              ("momentum", -5, "momentum=-5 must be >= 0"),
                              ("lr", float("nan"), "must be a finite number"),
                              ("nesterov", "yes", "must be True or False"),
                              ("colour", 1, "unknown option 'colour'")):
        bad = {"state": {}, "param_groups": [{**good["param_groups"][0], key: value}]}
        with pytest.raises(tds.TdsError, match=match):
            opt.load_state_dict(bad)
        assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[0]["momentum"] == 0.9
    adam = optim.Adam(model.parameters())
    bad = adam.state_dict()
    bad["param_groups"][0]["betas"] = (0.9, 1.5)
    with pytest.raises(tds.TdsError, match=r"betas=.*\[0, 1\)"):
        adam.load_state_dict(bad)
    bad = {"state": {0: {"momentum_buffer": np.array(["x"] * 32).reshape(8, 4)}},
           "param_groups": good["param_groups"]}
    with pytest.raises(tds.TdsError, match="momentum_buffer.*not floating-point"):
        opt.load_state_dict(bad)
    opt.load_state_dict(good)  # what state_dict gave still loads


def test_no_grad_decorates_a_generator():
    # defect 14: @no_grad() on a generator had no effect inside it
    w = tds.randn(3, requires_grad=True)

    @tds.no_grad()
    def scaled(n):
        for i in range(n):
            yield w * i

    outs = []
    for y in scaled(3):
        assert tds.is_grad_enabled()  # the caller's mode between items
        outs.append(y)
    assert not any(o.requires_grad for o in outs)

    @tds.enable_grad()
    def inside():
        yield (w * 2).requires_grad

    with tds.no_grad():
        assert next(inside()) is True
        assert not tds.is_grad_enabled()

    gen = scaled(5)
    next(gen)
    gen.close()
    assert tds.is_grad_enabled()


def test_history_plot_shows_inline_in_jupyter(monkeypatch):
    h = History()
    for e in (1, 2):
        h.append({"epoch": e, "loss": 1.0 / e, "acc": 0.5 * e, "val_loss": 1.2 / e,
                  "val_acc": 0.4 * e})
    fig = h.plot(num_classes=10)  # outside Jupyter: the Figure
    assert fig.axes[1].get_ylim() == (0, 1.02)
    assert [t.get_text() for t in fig.axes[1].texts] == ["100.0%", "80.0%"]

    shown = []
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: types.SimpleNamespace(kernel=object())
    ipython.version_info = (9, 0)
    display = types.ModuleType("IPython.display")
    display.display = shown.append
    display.Image = lambda data, format: ("png", data[:4])
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", display)
    assert h.plot() is None
    assert shown == [("png", b"\x89PNG")]


def test_curves_are_honest():
    from matplotlib.colors import to_hex

    from tinygrad_ds.train import TRAIN_COLOR, VAL_COLOR

    h = History()
    h.loss_name = "cross_entropy"
    h.append({"epoch": 1, "loss": 2.3031, "acc": 0.101, "val_loss": 2.3029, "val_acc": 0.099})
    fig = h.plot(num_classes=10, title="one epoch at chance")
    loss_ax, acc_ax = fig.axes[:2]
    assert list(acc_ax.get_xticks()) == [1]  # not 0.96 ... 1.04
    assert acc_ax.get_ylim() == (0, 1.02) and loss_ax.get_ylim()[0] == 0  # no zoom on noise
    dashed = {round(line.get_ydata()[0], 4) for ax in (loss_ax, acc_ax)
              for line in ax.get_lines() if line.get_linestyle() == "--"}
    assert dashed == {0.1, round(np.log(10), 4)}  # chance: accuracy 1/10, loss ln 10
    colours = [to_hex(line.get_color()) for line in acc_ax.get_lines()[:2]]
    assert colours == [TRAIN_COLOR, VAL_COLOR]
    assert sorted(t.get_text() for t in loss_ax.texts) == ["2.303", "2.303"]
    assert fig.get_suptitle() == "one epoch at chance"
