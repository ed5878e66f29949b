"""nn.Module: parameter walking, names, modes, state_dict and its .npz round trip, containers."""
import numpy as np
import pytest

import tinygrad_ds as tds
from tinygrad_ds import autograd, nn
from tinygrad_ds.errors import TdsError


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Linear(3, 4)
        self.bn = nn.BatchNorm1d(4)
        self.scale = nn.Parameter(np.ones(4, np.float32))
        self.note = tds.zeros(2)  # a plain Tensor attribute is neither parameter nor buffer

    def forward(self, x):
        return self.bn(self.conv(x)) * self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.layers = nn.Sequential(nn.ReLU(), nn.Linear(4, 2))
        self.extra = nn.ModuleList([nn.Identity(), nn.Dropout(0.5)])

    def forward(self, x):
        x = self.layers(self.block(x))
        for m in self.extra:
            x = m(x)
        return x


def test_parameters_are_found_by_walking_attributes():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    # As PyTorch: a module's own parameters come before its children's.
    assert names == ["block.scale", "block.conv.weight", "block.conv.bias", "block.bn.weight",
                     "block.bn.bias", "layers.1.weight", "layers.1.bias"]
    assert net.num_parameters() == 12 + 4 + 4 + 4 + 4 + 8 + 2
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in net.parameters())


def test_shared_parameter_counted_once():
    lin = nn.Linear(2, 2)
    net = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(net.parameters()) == 2
    assert net.num_parameters() == 6


def test_named_modules_paths():
    names = [n for n, _ in Net().named_modules()]
    assert names == ["", "block", "block.conv", "block.bn", "layers", "layers.0", "layers.1",
                     "extra", "extra.0", "extra.1"]


def test_train_eval_propagates():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


def test_state_dict_keys_in_pytorch_order():
    keys = list(Net().state_dict())
    assert keys == ["block.scale", "block.conv.weight", "block.conv.bias", "block.bn.weight",
                    "block.bn.bias", "block.bn.running_mean", "block.bn.running_var",
                    "block.bn.num_batches_tracked", "layers.1.weight", "layers.1.bias"]


def test_state_dict_is_a_copy():
    net = Net()
    sd = net.state_dict()
    sd["layers.1.bias"][:] = 123
    assert not np.any(net.layers[1].bias.data == 123)


def test_npz_round_trip(tmp_path):
    tds.manual_seed(0)
    a = Net()
    x = tds.randn(5, 3)
    a(x)  # training mode: moves the batch norm running statistics
    path = tmp_path / "ckpt.npz"
    a.save(str(path))
    tds.manual_seed(1)
    b = Net()
    b.load(str(path))
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        np.testing.assert_array_equal(va, vb, err_msg=k)
        assert va.dtype == vb.dtype
    assert int(b.block.bn.num_batches_tracked.item()) == 1
    a.eval(), b.eval()
    np.testing.assert_array_equal(a(x).data, b(x).data)


def test_load_mismatch_lists_missing_unexpected_and_shapes():
    sd = Net().state_dict()
    del sd["block.scale"]
    sd["block.typo"] = np.zeros(3)
    sd["layers.1.weight"] = np.zeros((3, 4), np.float32)
    with pytest.raises(TdsError) as e:
        Net().load_state_dict(sd)
    msg = str(e.value)
    assert "missing keys (1): ['block.scale']" in msg
    assert "unexpected keys (1): ['block.typo']" in msg
    assert "layers.1.weight: checkpoint (3, 4), model (2, 4)" in msg


def test_load_mismatch_changes_nothing():
    net = Net()
    before = net.state_dict()
    sd = {k: np.zeros_like(v) for k, v in before.items()}
    sd["layers.1.bias"] = np.zeros(7, np.float32)
    with pytest.raises(TdsError):
        net.load_state_dict(sd)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_load_non_strict_skips_missing_and_unexpected():
    net = Net()
    net.load_state_dict({"layers.1.bias": np.array([5.0, 6.0]), "nope": np.zeros(1)},
                        strict=False)
    np.testing.assert_array_equal(net.layers[1].bias.data, [5.0, 6.0])
    assert net.layers[1].bias.dtype == np.float32


def test_load_refuses_pickled_checkpoint(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, **{"layers.1.bias": np.array([object()], dtype=object)})
    with pytest.raises(TdsError, match="evil.npz"):
        Net().load(str(path), strict=False)


def test_load_checkpoint_of_another_model_is_short_and_says_so(tmp_path):
    other = nn.Sequential(*[nn.Linear(2, 2) for _ in range(12)])
    with pytest.raises(TdsError) as e:
        Net().load_state_dict(other.state_dict())
    msg = str(e.value)
    assert "another model" in msg and "unexpected keys (24)" in msg and "and 16 more" in msg
    assert len(msg) < 1000


def test_load_a_file_that_is_not_npz(tmp_path):
    path = tmp_path / "model.py"
    path.write_text("model = 1\n")
    with pytest.raises(TdsError, match="model.py: not an .npz file") as e:
        Net().load(str(path))
    assert "allow_pickle" not in str(e.value)


def test_load_missing_file_names_it(tmp_path):
    with pytest.raises(TdsError, match="nothere.npz"):
        Net().load(str(tmp_path / "nothere.npz"))


def test_sequential_indexing_and_append():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(seq) == 3
    assert isinstance(seq[-1], nn.Linear) and seq[-1].out_features == 1
    head = seq[:2]
    assert isinstance(head, nn.Sequential) and len(head) == 2
    assert head(tds.ones(4, 2)).shape == (4, 3)
    seq.append(nn.Sigmoid())
    assert [type(m).__name__ for m in seq] == ["Linear", "ReLU", "Linear", "Sigmoid"]
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    with pytest.raises(IndexError):
        seq[4]
    with pytest.raises(TdsError, match="nn.Module"):
        nn.Sequential(nn.ReLU(), lambda x: x)


def test_sequential_from_ordered_dict_uses_names():
    from collections import OrderedDict

    seq = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("act", nn.Tanh())]))
    assert list(seq.state_dict()) == ["fc.weight", "fc.bias"]
    assert seq(tds.ones(1, 2)).shape == (1, 2)


def test_module_list():
    ml = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(ml) == 3 and len(ml.parameters()) == 6
    ml[1] = nn.Identity()
    assert len(ml.parameters()) == 4
    assert [n for n, _ in ml.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    with pytest.raises(TdsError, match="no forward"):
        ml(tds.ones(1, 2))


def test_missing_super_init_is_a_clear_error():
    class Bad(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(1, 1)

    with pytest.raises(TdsError, match="super"):
        Bad()


def test_call_pushes_module_stack():
    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append(list(autograd.module_stack))
            return x

    probe = Probe()
    outer = nn.Sequential(probe)
    outer(tds.ones(1))
    assert seen == [[outer, probe]]
    assert autograd.module_stack == []


def test_apply_and_double():
    net = Net()
    visited = []
    net.apply(lambda m: visited.append(type(m).__name__))
    assert visited[-1] == "Net" and "Linear" in visited
    net.double()
    assert all(p.dtype == np.float64 for p in net.parameters())
    assert net.block.bn.running_mean.dtype == np.float64
    assert net.block.bn.num_batches_tracked.dtype == np.int64
    assert net(tds.randn(3, 3, dtype="float64")).dtype == np.float64


def test_zero_grad_and_backward_reaches_every_parameter():
    net = Net().eval()
    net(tds.randn(4, 3)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_repr_names_children():
    text = repr(Net())
    assert "(block): Block(" in text and "(1): Linear(in_features=4, out_features=2" in text
