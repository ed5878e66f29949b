"""Optimizers against hand-computed steps; schedules against their closed forms; penalties."""
import math

import numpy as np
import pytest

import tinygrad_ds as tds
from tinygrad_ds import nn, optim
from tinygrad_ds.errors import TdsError


def param(*values):
    return nn.Parameter(np.array(values, dtype=np.float64), dtype="float64")


def set_grad(p, *values):
    p.grad = tds.Tensor(np.array(values, dtype=np.float64), dtype="float64")


def test_sgd_plain_step():
    p = param(1.0, -2.0)
    opt = optim.SGD([p], lr=0.1)
    set_grad(p, 0.5, 1.0)
    opt.step()
    np.testing.assert_allclose(p.data, [1.0 - 0.05, -2.0 - 0.1])


def test_sgd_momentum_dampening_weight_decay_by_hand():
    p = param(1.0)
    opt = optim.SGD([p], lr=0.1, momentum=0.9, dampening=0.5, weight_decay=0.1)
    set_grad(p, 2.0)
    opt.step()
    # step 1: d = 2 + 0.1*1 = 2.1; buf = d = 2.1; p = 1 - 0.21 = 0.79
    assert p.data[0] == pytest.approx(0.79)
    set_grad(p, 2.0)
    opt.step()
    # step 2: d = 2 + 0.079 = 2.079; buf = 0.9*2.1 + 0.5*2.079 = 2.9295; p = 0.79 - 0.29295
    assert p.data[0] == pytest.approx(0.79 - 0.29295)


def test_sgd_nesterov_by_hand():
    p = param(1.0)
    opt = optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True)
    set_grad(p, 1.0)
    opt.step()  # buf = 1; d = 1 + 0.9 = 1.9
    assert p.data[0] == pytest.approx(1 - 0.19)
    set_grad(p, 1.0)
    opt.step()  # buf = 0.9 + 1 = 1.9; d = 1 + 1.71 = 2.71
    assert p.data[0] == pytest.approx(1 - 0.19 - 0.271)
    with pytest.raises(TdsError, match="Nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)


def adam_reference(p, grads, lr, b1, b2, eps, wd, decoupled, amsgrad=False):
    m = v = vmax = 0.0
    for t, g in enumerate(grads, 1):
        if decoupled:
            p = p * (1 - lr * wd)
        else:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = max(vmax, v)
        vv = vmax if amsgrad else v
        p = p - lr / (1 - b1 ** t) * m / (math.sqrt(vv) / math.sqrt(1 - b2 ** t) + eps)
    return p


@pytest.mark.parametrize("cls,decoupled", [(optim.Adam, False), (optim.AdamW, True)])
@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_and_adamw_by_hand(cls, decoupled, amsgrad):
    grads = [0.5, -1.0, 3.0, 0.1]
    p = param(2.0)
    opt = cls([p], lr=0.01, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1, amsgrad=amsgrad)
    for g in grads:
        set_grad(p, g)
        opt.step()
    want = adam_reference(2.0, grads, 0.01, 0.8, 0.9, 1e-6, 0.1, decoupled, amsgrad)
    assert p.data[0] == pytest.approx(want, rel=1e-12)


def test_adam_first_step_is_lr_times_sign():
    # With bias correction the first Adam step moves each weight by about lr, whatever |g|.
    p = param(0.0, 0.0)
    opt = optim.Adam([p], lr=0.01)
    set_grad(p, 1000.0, -0.001)
    opt.step()
    np.testing.assert_allclose(p.data, [-0.01, 0.01], rtol=1e-4)


def test_adamw_decays_weight_even_without_gradient_signal():
    p, q = param(1.0), param(1.0)
    a, w = optim.Adam([p], lr=0.1, weight_decay=0.5), optim.AdamW([q], lr=0.1, weight_decay=0.5)
    set_grad(p, 0.0)
    set_grad(q, 0.0)
    a.step()
    w.step()
    assert q.data[0] == pytest.approx(0.95)     # decoupled: 1 * (1 - 0.1 * 0.5)
    assert p.data[0] == pytest.approx(0.9, rel=1e-6)   # Adam: wd*p is a gradient, step ~ lr


def test_param_groups_zero_grad_and_missing_grads():
    a, b = param(1.0), param(1.0)
    opt = optim.SGD([{"params": [a], "lr": 1.0}, {"params": [b]}], lr=0.1)
    set_grad(a, 1.0)
    set_grad(b, 1.0)
    opt.step()
    assert a.data[0] == pytest.approx(0.0) and b.data[0] == pytest.approx(0.9)
    opt.zero_grad()
    assert a.grad is None and b.grad is None
    opt.step()  # no grads: nothing moves
    assert b.data[0] == pytest.approx(0.9)
    set_grad(a, 3.0)
    opt.zero_grad(set_to_none=False)
    assert a.grad.data[0] == 0
    with pytest.raises(TdsError, match="more than one param group"):
        optim.SGD([{"params": [a]}, {"params": [a]}], lr=0.1)
    with pytest.raises(TdsError, match="unknown option"):
        optim.SGD([{"params": [a], "momentun": 0.9}], lr=0.1)


def test_float32_stays_float32_and_module_works():
    class Lin(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(np.ones((3, 2), dtype=np.float32))

        def forward(self, x):
            return x @ self.w

    m = Lin()
    opt = optim.AdamW(m.parameters(), lr=0.1)
    m(tds.ones(4, 3)).sum().backward()
    opt.step()
    assert m.w.data.dtype == np.float32 and np.all(m.w.data < 1)


def test_step_lr_and_cosine():
    p = param(0.0)
    opt = optim.SGD([p], lr=1.0)
    s = optim.StepLR(opt, step_size=2, gamma=0.5)
    lrs = [opt.lr]
    for _ in range(5):
        s.step()
        lrs.append(opt.lr)
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]

    opt = optim.SGD([p], lr=1.0)
    c = optim.CosineAnnealingLR(opt, T_max=4, eta_min=0.1)
    got = [opt.lr]
    for _ in range(5):
        c.step()
        got.append(c.get_last_lr()[0])
    want = [0.1 + 0.9 * (1 + math.cos(math.pi * min(t, 4) / 4)) / 2 for t in range(6)]
    np.testing.assert_allclose(got, want)


def test_warmup_then_cosine_per_group():
    a, b = param(0.0), param(0.0)
    opt = optim.SGD([{"params": [a], "lr": 1.0}, {"params": [b], "lr": 0.1}], lr=0.5)
    sched = optim.LinearWarmup(opt, 4, start_factor=0.25,
                               then=optim.CosineAnnealingLR(opt, T_max=2))
    got = [sched.get_last_lr()]
    for _ in range(7):
        sched.step()
        got.append(sched.get_last_lr())
    first = [g[0] for g in got]
    np.testing.assert_allclose(first, [0.25, 0.4375, 0.625, 0.8125, 1.0, 0.5, 0.0, 0.0],
                               atol=1e-12)
    np.testing.assert_allclose([g[1] for g in got], np.array(first) * 0.1, atol=1e-12)


def test_penalties_values_and_gradients():
    w = param(1.0, -2.0)
    b = param(3.0)
    l2 = optim.l2_penalty([w, b], weight=0.5)
    assert l2.item() == pytest.approx(0.5 * (1 + 4 + 9))
    l2.backward()
    np.testing.assert_allclose(w.grad.data, [1.0, -2.0])  # d/dw 0.5 w^2 = w
    l1 = optim.l1_penalty([w, b])
    assert l1.item() == pytest.approx(6.0)
    w.grad = None
    l1.backward()
    np.testing.assert_allclose(w.grad.data, [1.0, -1.0])


def test_l2_penalty_with_sgd_equals_weight_decay():
    p, q = param(1.0, 2.0), param(1.0, 2.0)
    plain, decayed = optim.SGD([p], lr=0.1), optim.SGD([q], lr=0.1, weight_decay=0.2)
    for _ in range(3):
        p.grad = None
        ((p * p).sum() + optim.l2_penalty([p], weight=0.1)).backward()
        plain.step()
        set_grad(q, *(2 * q.data))
        decayed.step()
    np.testing.assert_allclose(p.data, q.data)


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda ps: optim.Adam(ps, lr=0.01, amsgrad=True),
])
def test_state_dict_resumes_training_exactly(make):
    """Three steps, save model, optimizer and schedule, three more steps; a fresh model and
    optimizer loaded from the saved states take the same three steps to the same weights."""
    rng = np.random.default_rng(0)
    xs = [tds.Tensor(rng.standard_normal((8, 3))) for _ in range(6)]

    def train(model, opt, sched, batches):
        for x in batches:
            opt.zero_grad()
            (model(x) ** 2).mean().backward()
            opt.step()
            sched.step()

    tds.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    opt = make(model.parameters())
    sched = optim.StepLR(opt, step_size=2, gamma=0.5)
    train(model, opt, sched, xs[:3])
    saved = (model.state_dict(), opt.state_dict(), sched.state_dict())
    train(model, opt, sched, xs[3:])

    tds.manual_seed(1)  # other initial weights: everything must come from the saved states
    again = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    again.load_state_dict(saved[0])
    opt2 = make(again.parameters())
    sched2 = optim.StepLR(opt2, step_size=2, gamma=0.5)
    opt2.load_state_dict(saved[1])
    sched2.load_state_dict(saved[2])
    assert opt2.lr == opt.param_groups[0]["initial_lr"] * 0.5  # epoch 3 of step_size 2
    train(again, opt2, sched2, xs[3:])
    for a, b in zip(model.parameters(), again.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
    assert opt2.lr == opt.lr


def test_load_state_dict_mismatch_changes_nothing():
    model = nn.Linear(3, 2)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    (model(tds.ones(1, 3)).sum()).backward()
    opt.step()
    sd = opt.state_dict()
    other = optim.SGD(nn.Linear(3, 5).parameters(), lr=0.5, momentum=0.9)
    with pytest.raises(TdsError, match=r"buffer 'momentum_buffer' of parameter 0 has shape "
                                       r"\(2, 3\), the parameter \(5, 3\)"):
        other.load_state_dict(sd)
    assert other.lr == 0.5 and other.state == {}
    with pytest.raises(TdsError, match="1 param group"):
        optim.SGD([{"params": [model.weight]}, {"params": [model.bias]}],
                  lr=0.1).load_state_dict(sd)
    with pytest.raises(TdsError, match="expected a dict with 'state'"):
        opt.load_state_dict({"weights": 1})
