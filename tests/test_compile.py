"""tds.compile: each pass alone (a graph before and after), generated fused kernels, the plan
against eager execution (an MLP and a small conv net with batch norm, three optimizer steps,
train and eval), random elementwise graphs, recompilation keys and the on-disk kernel cache.

Generated kernels go to the user's cache folder (as for users), so a second run of this file is
warm; the cross-process cache test uses a folder of its own.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_ds as tds
import tinygrad_ds.functional as F
from tinygrad_ds import nn, optim
from tinygrad_ds.compile import (
    build_plan,
    eliminate_common_subexpressions,
    eliminate_dead_code,
    elide_copies,
    fold_constants,
    fold_transposes,
    fuse,
    group_source,
    load_kernel,
    simplify,
)
from tinygrad_ds.ops.state import assign

RTOL = 1e-5


def ops(g) -> list[str]:
    return [n.op for n in g.op_nodes()]


def close(a, b, rtol=RTOL):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(np.abs(a).max(initial=0.0), 1e-30)
    assert np.abs(a - b).max(initial=0.0) <= rtol * scale, np.abs(a - b).max() / scale


# ---- passes, each alone ---------------------------------------------------------------------
def test_dce_drops_unused_values_but_keeps_writes():
    bn = nn.BatchNorm1d(3)  # in train mode it writes its running statistics: not on the output

    def f(x):
        x.exp()  # unused
        bn(x)  # unused value, but the running-stat assigns must stay
        return x * 2.0

    g = tds.trace(f, (4, 3)).check()
    g2 = eliminate_dead_code(g).check()
    assert "exp" in ops(g) and "exp" not in ops(g2)
    assert ops(g2).count("assign") == ops(g).count("assign") >= 2
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    before = bn.running_mean.numpy().copy()
    np.testing.assert_array_equal(g2.run(x).numpy(), x * 2)
    assert not np.array_equal(bn.running_mean.numpy(), before)


def test_cse_merges_equal_ops_but_never_random_draws():
    drop = nn.Dropout(0.5)  # in train mode: a random mask drawn at each call

    def f(x):
        return (x * 2.0) + (x * 2.0) + drop(x) + drop(x)

    g = tds.trace(f, (4, 3)).check()
    g2 = eliminate_common_subexpressions(g).check()
    assert ops(g).count("mul") > ops(g2).count("mul")
    assert ops(g2).count("bernoulli_mask") == ops(g).count("bernoulli_mask") == 2
    x = np.ones((4, 3), np.float32)
    tds.manual_seed(1)
    a = g.run(x).numpy()
    tds.manual_seed(1)
    np.testing.assert_array_equal(g2.run(x).numpy(), a)


def test_constant_folding_computes_ops_of_constants_now():
    c = tds.Tensor(np.arange(3, dtype=np.float32))

    def f(x):
        return x * (c * 2.0 + 1.0)

    g = tds.trace(f, (4, 3)).check()
    g2 = fold_constants(g).check()
    assert ops(g) == ["mul", "add", "mul"] and ops(g2) == ["mul"]
    x = np.ones((4, 3), np.float32)
    np.testing.assert_array_equal(g2.run(x).numpy(), g.run(x).numpy())


def test_simplify_removes_identities():
    def f(x):
        y = (x * 1.0 + 0.0) / 1.0 - 0.0
        y = -y
        y = -y  # double negation
        return y.reshape(4, 3).astype(np.float32).exp()

    g = tds.trace(f, (4, 3)).check()
    g2 = simplify(g).check()
    exp = next(n for n in g2.op_nodes() if n.op == "exp")
    assert exp.inputs == (g2.inputs[0],)  # exp reads x itself now
    assert ops(eliminate_dead_code(g2)) == ["exp"]  # what simplify left unused
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_array_equal(g2.run(x).numpy(), np.exp(x))


def test_simplify_keeps_ops_that_change_shape_or_value():
    def f(x):
        return (x * 0.0) + (x.reshape(3, 4) * 1.0).reshape(4, 3)

    g2 = simplify(tds.trace(f, (4, 3))).check()
    assert ops(g2).count("mul") == 1 and ops(g2).count("reshape") == 2


def test_fold_transposes_makes_the_product_in_the_layout_its_reader_wants():
    def f(x, w):
        return (x.permute(1, 0) @ w).permute(1, 0) * 2.0  # a weight gradient's shape

    g = tds.trace(f, (5, 3), (5, 4)).check()
    g2 = fold_transposes(g).check()
    assert ops(g) == ["permute", "matmul", "permute", "mul"]
    # w.T @ x (x.T.T is x itself; x.T is left for dead-code elimination)
    assert ops(eliminate_dead_code(g2)) == ["permute", "matmul", "mul"]
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((5, 3)).astype(np.float32), rng.standard_normal((5, 4)).astype(
        np.float32)
    close(g2.run(x, w).numpy(), g.run(x, w).numpy())


def test_elide_copies_drops_the_copy_of_a_new_array_only():
    """copy(x @ w) is x @ w (the product is a new array nothing else sees); the copy of an
    input, and the copy of a product that is also returned, stay."""
    def f(x, w):
        p, q = x @ w, x @ w.permute(1, 0).permute(1, 0)
        return p.clone() * 2.0, w.clone() + 1.0, q.clone(), q

    g = tds.trace(f, (2, 3), (3, 3)).check()
    g2 = elide_copies(g).check()
    assert ops(g).count("copy") == 3 and ops(g2).count("copy") == 2
    rng = np.random.default_rng(0)
    x, w = (rng.standard_normal(s).astype(np.float32) for s in ((2, 3), (3, 3)))
    for a, b in zip(g2.run(x, w), g.run(x, w)):
        close(a.numpy(), b.numpy())


def test_a_compiled_steps_grads_have_memory_of_their_own():
    """With the weight gradients' copies elided, each .grad is still an array of its own: not
    shared with another .grad, and not written over by the next step (a .grad the user kept
    holds its step's values), equal to eager's."""
    def build():
        tds.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
        return model, optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    rng = np.random.default_rng(1)
    xs = [tds.Tensor(rng.standard_normal((4, 6)).astype(np.float32)) for _ in range(2)]
    y = tds.Tensor(np.array([0, 1, 2, 1]))
    grads = {}
    for mode in ("eager", "compiled"):
        model, opt = build()

        def step(x, y, model=model, opt=opt):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(); loss.backward(); opt.step()
            return loss
        run = tds.compile(step) if mode == "compiled" else step
        run(xs[0], y)
        first = [p.grad.numpy() for p in model.parameters()]
        kept = [g.copy() for g in first]
        run(xs[1], y)
        second = [p.grad.numpy() for p in model.parameters()]
        assert len({id(g) for g in second}) == len(second)
        assert all(not np.shares_memory(a, b) for a in first for b in second)
        for a, b in zip(first, kept):
            np.testing.assert_array_equal(a, b)
        grads[mode] = first + second
    for a, b in zip(grads["eager"], grads["compiled"]):
        close(a, b)
    assert "copy" not in [n.op for n in run.last.optimized.op_nodes()
                          if n.shape in ((5, 6), (3, 5))]


# ---- fusion and generated kernels -----------------------------------------------------------
def test_fused_group_source_compiles_and_matches():
    b = tds.Tensor(np.linspace(-1, 1, 5, dtype=np.float32))

    def f(x):
        return ((x + b).relu() * 2.0 - x.sigmoid()).maximum(x.tanh())

    g = tds.trace(f, (3, 5))
    fusion = fuse(g)
    assert len(fusion.groups) == 1
    group = fusion.groups[0]
    assert [g.nodes[m].op for m in group.members] == ["add", "relu", "mul", "sigmoid", "neg",
                                                       "add", "tanh", "maximum"]
    code, header = group_source(g, group)
    assert "def fused_add_relu_mul_sigmoid_etc(" in code and "range(5)" in code
    assert all(f"#{m} {g.nodes[m].op}(" in header for m in group.members)
    kernel = load_kernel(code)
    x = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    args = {g.inputs[0]: x, **{n.id: n.value for n in g.nodes if n.kind == "const"}}
    out = np.empty((3, 5), np.float32)
    kernel(*[args[i] for i in group.inputs], out)
    assert out.dtype == np.float32
    close(out, f(tds.Tensor(x)).numpy())


def test_fusion_does_not_cross_a_reduction_and_explains_why():
    def f(x):
        y = (x * 2.0).exp()
        return y / y.sum(axis=1, keepdims=True)

    g = tds.trace(f, (3, 4))
    fusion = fuse(g)
    grouped = {m for grp in fusion.groups for m in grp.members}
    assert not any(g.nodes[m].op == "sum" for m in grouped)
    plan = build_plan(g, fusion)
    assert plan.fallback.get("sum") == 1
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    close(plan.replay([x])[0], f(tds.Tensor(x)).numpy())


UNARY = ["neg", "exp", "relu", "sigmoid", "tanh", "abs"]
BINARY = ["add", "sub", "mul", "maximum", "minimum", "div"]
# ops that end a loop, so that a program has several loops whose outputs share the arena (and
# write over operands that die there) from the second call on
BREAKS = ["rowsum", "matmul"]
W = np.linspace(-0.5, 0.5, 16, dtype=np.float32).reshape(4, 4)


@st.composite
def elementwise_programs(draw):
    steps = draw(st.lists(st.tuples(st.sampled_from(UNARY + BINARY + ["where"] + BREAKS),
                                    st.integers(0, 10), st.integers(0, 10)),
                          min_size=1, max_size=7))
    return steps


def _program(steps):
    w = tds.Tensor(W)

    def f(x, b, s):
        vals = [x, b, s]
        for op, i, j in steps:
            a, c = vals[i % len(vals)], vals[j % len(vals)]
            if op in UNARY:
                v = getattr(a, op)() if op != "neg" else -a
            elif op == "where":
                v = tds.where(a > c, a, c * 0.5)
            elif op == "div":
                v = a / (c.abs() + 1.0)
            elif op == "rowsum":
                a = a + x * 0.0  # (3, 4) whatever a was
                v = a - a.sum(axis=-1, keepdims=True) * 0.25
            elif op == "matmul":
                v = (a + x * 0.0) @ w
            else:
                v = getattr(a, op)(c) if op in ("maximum", "minimum") else \
                    {"add": a + c, "sub": a - c, "mul": a * c}[op]
            vals.append(v)
        # the full shape, summed by an op outside the loops: the last loop's output is an
        # intermediate too (it may write over an operand that dies there)
        return (vals[-1] + x * 0.0).sum(axis=1)
    return f


@settings(max_examples=30)
@given(elementwise_programs())
def test_random_elementwise_graphs_compiled_equal_eager(steps):
    f = _program(steps)
    rng = np.random.default_rng(len(steps))
    c = tds.compile(f)
    for _ in range(2):  # the second call runs in the arena planned after the first
        x = rng.standard_normal((3, 4)).astype(np.float32)
        b = rng.standard_normal(4).astype(np.float32)
        s = np.array(rng.standard_normal(), np.float32)
        want = f(tds.Tensor(x), tds.Tensor(b), tds.Tensor(s)).numpy()
        got = c(tds.Tensor(x), tds.Tensor(b), tds.Tensor(s)).numpy()
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-6)
    assert c.last.plan.kernels, "no loop was generated"


# ---- the whole step against eager ------------------------------------------------------------
def _mlp():
    return nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                         nn.Linear(16, 5))


def _convnet():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 5))


def _trainer(build):
    tds.manual_seed(0)
    model = build()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)

    def step(x, y):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    return model, step


def _state(model) -> dict:
    return {k: np.array(v.numpy() if hasattr(v, "numpy") else v)
            for k, v in model.state_dict().items()}


@pytest.mark.parametrize("build,shape", [(_mlp, (8, 20)), (_convnet, (4, 3, 8, 8))],
                         ids=["mlp", "convnet"])
def test_compiled_training_step_equals_eager(build, shape):
    rng = np.random.default_rng(0)
    m1, step1 = _trainer(build)
    m2, step2 = _trainer(build)
    compiled = tds.compile(step2)
    for k in range(3):
        x = tds.Tensor(rng.standard_normal(shape).astype(np.float32))
        y = tds.Tensor(rng.integers(0, 5, shape[0]))
        close(compiled(x, y).numpy(), step1(x, y).numpy())
    assert len(compiled.plans) == 1 and compiled.last.calls == 3
    s1, s2 = _state(m1), _state(m2)
    for k in s1:  # parameters and batch-norm running statistics
        close(s2[k], s1[k])
    # gradients against the largest one: a conv bias before batch norm has a true gradient of
    # 0, and what both compute for it is rounding noise of the order of 1e-9
    g1 = [p.grad.numpy() for p in m1.parameters()]
    g2 = [p.grad.numpy() for p in m2.parameters()]
    scale = max(np.abs(g).max() for g in g1)
    for a, b in zip(g1, g2):
        assert np.abs(a - b).max() <= RTOL * scale
    plan = compiled.last.plan
    assert plan.kernels and any("assign" in k.name for k in plan.kernels)
    # eval mode: a new key (the modules' flags), the forward of the same model compiled
    m1.eval()
    m2.eval()
    fwd = tds.compile(m2)
    x = tds.Tensor(rng.standard_normal(shape).astype(np.float32))
    with tds.no_grad():
        close(fwd(x).numpy(), m1(x).numpy())
    close(fwd(x).numpy(), m1(x).numpy())  # with gradients on: the taped forward


def test_compiled_model_forward_keeps_the_tape_for_backward():
    tds.manual_seed(0)
    model = _mlp()
    c = tds.compile(model)
    x = tds.Tensor(np.ones((2, 20), np.float32))
    c(x).sum().backward()
    g1 = model[0].weight.grad.numpy().copy()
    for p in model.parameters():
        p.grad = None
    model(x).sum().backward()
    np.testing.assert_allclose(g1, model[0].weight.grad.numpy(), rtol=RTOL)


# ---- keys ---------------------------------------------------------------------------------------
def test_recompiles_on_a_new_key_only(caplog):
    def f(x):
        return (x * 2.0).relu()

    c = tds.compile(f)
    a = tds.Tensor(np.ones((2, 3), np.float32))
    c(a)
    entry = c.last
    c(tds.Tensor(-np.ones((2, 3), np.float32)))
    assert len(c.plans) == 1 and c.last is entry and entry.calls == 2
    with caplog.at_level(logging.INFO, logger="tinygrad_ds.compile"):
        out = c(tds.Tensor(np.ones((5, 3), np.float32)))
        c(tds.Tensor(np.ones((5, 3), np.float32)))
    assert out.shape == (5, 3) and len(c.plans) == 2
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == 1 and "input shapes" in msgs[0] and "(2, 3)" in msgs[0] and \
        "(5, 3)" in msgs[0]
    c(tds.Tensor(np.ones((2, 3)), dtype=tds.float64))  # another dtype: another plan
    assert len(c.plans) == 3


def test_parameter_shape_change_recompiles():
    lin = nn.Linear(3, 2)

    def f(x):
        return lin(x)

    c = tds.compile(f)
    x = tds.Tensor(np.ones((1, 3), np.float32))
    c(x)
    first = c.last
    lin.weight.data = np.ones((4, 3), np.float32)
    lin.bias.data = np.zeros(4, np.float32)
    out = c(x)
    assert out.shape == (1, 4)
    np.testing.assert_allclose(out.numpy(), np.full((1, 4), 3.0))
    assert c.last is not first and len(c.plans) == 1  # compiled again, in the old one's place


def test_parameter_shape_change_recompiles_a_model_and_its_backward():
    lin = nn.Linear(3, 2)
    c = tds.compile(lin)
    x = tds.Tensor(np.ones((1, 3), np.float32))
    c(x).sum().backward()
    lin.weight.data = np.ones((4, 3), np.float32)
    lin.bias.data = np.zeros(4, np.float32)
    lin.weight.grad = lin.bias.grad = None
    out = c(x)
    assert out.shape == (1, 4) and c.last.backward is not None
    (out * 2.0).sum().backward()
    np.testing.assert_allclose(lin.weight.grad.numpy(), np.full((4, 3), 2.0))
    np.testing.assert_allclose(lin.bias.grad.numpy(), np.full(4, 2.0))


def test_profile_times_each_op_and_puts_the_state_back(capsys):
    """profile(x, y) sums each step's time by op against the whole call and an eager call, and
    leaves the parameters, optimizer state and .grad as they were."""
    tds.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = tds.Tensor(np.random.default_rng(0).standard_normal((5, 2, 6, 6)).astype(np.float32))
    y = tds.Tensor(np.array([0, 1, 2, 0, 1]))

    def step(x, y):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
        return loss

    fast = tds.compile(step)
    with pytest.raises(tds.TdsError, match="no plan for inputs"):
        fast.profile(x, y)
    fast(x, y)
    before = [(p.data.copy(), p.grad.numpy().copy()) for p in model.parameters()]
    state = [b.data.copy() for _, b in model.named_buffers()]
    result = fast.profile(x, y, repeats=2)
    out = capsys.readouterr().out
    ops_seen = {what for what, _, _ in result.rows}
    assert {"conv2d", "conv2d_backward_weight", "batch_norm_stats",
            "generated loops (fused elementwise work)"} <= ops_seen
    assert dict((w, c) for w, c, _ in result.rows)["conv2d"] == 1
    assert 0 < sum(ms for _, _, ms in result.rows) < 1.5 * result.call_ms
    assert result.eager_ms > 0 and "between the steps" in out and "conv2d" in out
    for (data, grad), p in zip(before, model.parameters()):
        np.testing.assert_array_equal(p.data, data)
        np.testing.assert_array_equal(p.grad.numpy(), grad)
    for value, (_, b) in zip(state, model.named_buffers()):
        np.testing.assert_array_equal(b.data, value)


def test_explain_reports_passes_groups_launches_and_times(capsys):
    _, step = _trainer(_mlp)
    c = tds.compile(step)
    x = tds.Tensor(np.ones((4, 20), np.float32))
    y = tds.Tensor(np.zeros(4, np.int64))
    c(x, y)
    text = c.explain()
    assert text in capsys.readouterr().out
    for part in ("fold_constants", "cse", "dce", "Kernel launches per step: eager",
                 "def fused_", "matmul x", "Compile time"):
        assert part in text, part


def test_passes_can_be_switched_off():
    def f(x):
        return (x * 1.0).exp() + (x * 1.0).exp()

    x = tds.Tensor(np.ones((2, 2), np.float32))
    none = tds.compile(f, passes=[])
    none(x)
    assert not none.last.plan.kernels and [c[0] for c in none.last.counts] == ["traced"]
    some = tds.compile(f, passes=["simplify", "cse", "dce"])
    np.testing.assert_allclose(some(x).numpy(), none(x).numpy())
    assert [n.op for n in some.last.optimized.op_nodes()] == ["exp", "add"]
    with pytest.raises(tds.TdsError, match="unknown pass"):
        tds.compile(f, passes=["nope"])


# ---- the kernel cache across processes ------------------------------------------------------
def test_second_process_loads_kernels_from_the_disk_cache(tmp_path):
    script = textwrap.dedent("""
        import json, numpy as np, tinygrad_ds as tds
        from tinygrad_ds.compile import codegen
        c = tds.compile(lambda x: (x * 3.0).tanh() + 1.0)
        c(tds.Tensor(np.ones((2, 3), np.float32)))
        k = c.last.plan.kernels[0].fn
        print(json.dumps([codegen.stats["written"], sum(k.stats.cache_hits.values()),
                          sum(k.stats.cache_misses.values())]))
    """)
    env = dict(os.environ, TDS_CACHE=str(tmp_path))
    runs = [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                           text=True, check=True).stdout.splitlines()[-1] for _ in range(2)]
    import json

    first, second = (json.loads(r) for r in runs)
    assert first[0] == 1 and first[1] == 0  # written and compiled
    assert second[0] == 0 and second[1] >= 1  # found on disk, loaded from numba's cache
    assert list((tmp_path / "kernels").glob("tds_fused_mul_tanh_add_*.py"))


def test_inputs_on_another_device_get_a_plan_of_their_own_or_an_error_naming_both():
    """A compiled function given tensors on 'cuda' (numba's simulator stands in for a GPU)
    compiles a plan for that device, as for a new dtype; inputs on two devices, or inputs on
    'cuda' for a model whose parameters are on the cpu, are an error naming both devices,
    before anything runs."""
    import importlib.util
    import json

    if importlib.util.find_spec("numba.cuda") is None:
        pytest.skip("numba.cuda is not importable (pip install numba-cuda)")
    script = textwrap.dedent("""
        import json, numpy as np, tinygrad_ds as tds
        c = tds.compile(lambda x, y: (x * 2.0).relu() + y)
        x = tds.Tensor(np.ones((2, 3), np.float32))
        c(x, x)
        on_cuda = c(x.cuda(), x.cuda())
        errors = []
        try:
            c(x, x.cuda())
        except tds.TdsError as e:
            errors.append(str(e))
        m = tds.compile(tds.nn.Linear(3, 2))
        with tds.no_grad():
            m(x)
            try:
                m(x.cuda())
            except tds.TdsError as e:
                errors.append(str(e))
        print(json.dumps([errors, len(c.plans), on_cuda.device, on_cuda.numpy().tolist(),
                          len(m.plans)]))
    """)
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (mixed, params), plans, device, value, model_plans = json.loads(
        proc.stdout.strip().splitlines()[-1])
    assert "two devices, 'cpu' and 'cuda'" in mixed
    assert "inputs are on 'cuda'" in params and "parameters of its model are on 'cpu'" in params
    assert plans == 2 and device == "cuda" and value == [[3.0] * 3] * 2
    assert model_plans == 1  # refused before compiling


def test_data_dependent_control_flow_is_an_error_naming_the_line():
    def f(x):
        if float(x.sum().numpy()) > 0:  # a value, which tracing by shape does not have
            return x
        return -x

    with pytest.raises(tds.TdsError, match=r"test_compile\.py:\d+"):
        tds.compile(f)(tds.Tensor(np.ones(3, np.float32)))


# ---- writes into state: every pass and the fusion keep eager's order of reads and writes -----
def _write_then_read(x, p):
    a = p * 3.0  # read before the write
    assign(p, x * 2.0)
    return a + (p + 1.0)  # read after


def _stale_view(x, p):
    v = p.reshape(6)  # a view taken before the write sees the new values
    assign(p, p * 2.0 + x)
    return v.reshape(2, 3) * 1.5 + p


def _transposed_view(x, p):
    t = p.permute(1, 0)
    assign(p, p + x)
    return (t.permute(1, 0) + x) * 2.0


def _broadcast_read(x, p):
    y = x * p[0]  # p's first row, broadcast
    assign(p, p * 0.5 + 1.0)
    return y + p


def _two_writes(x, p):
    y = x + p
    assign(p, y * 2.0)
    assign(p, p + y)
    return y * p


@pytest.mark.parametrize("body", [_write_then_read, _stale_view, _transposed_view,
                                  _broadcast_read, _two_writes])
def test_reads_and_writes_of_state_keep_their_order(body):
    results = []
    for compiled in (False, True):
        p = tds.Tensor(np.ones((2, 3), np.float32))  # captured, then written: not a constant

        def f(x, p=p):
            return body(x, p)

        g = tds.compile(f) if compiled else f
        x = tds.Tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
        results.append([g(x).numpy().copy() for _ in range(2)] + [p.numpy().copy()])
    for want, got in zip(*results):
        np.testing.assert_allclose(got, want, rtol=RTOL)


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_batch_norm_apply_and_relu_become_one_loop(train):
    tds.manual_seed(0)
    block = nn.Sequential(nn.BatchNorm2d(4), nn.ReLU())
    block.train(train)
    x = tds.Tensor(np.random.default_rng(0).standard_normal((2, 4, 3, 3)).astype(np.float32))
    c = tds.compile(block)
    with tds.no_grad():
        got = c(x).numpy()
        block2 = block  # the same module, eager (running statistics move once more in train)
        want = block2(x).numpy()
    np.testing.assert_array_equal(got, want)  # rounded as the cpu kernel: bit for bit
    assert "fused_batch_norm_relu" in [k.name for k in c.last.plan.kernels]


def test_fusion_never_merges_groups_into_a_cycle():
    def f(x):
        h = x.exp()  # one loop
        g = x * 2.0  # another
        s = h.sum(axis=1, keepdims=True)  # made from h's loop, outside it
        return tds.where(g > 0.0, h, s)  # joins g's loop; h's may not join too (s needs it)

    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    fusion = fuse(tds.trace(f, x))
    assert len(fusion.groups) == 2
    assert not any("no order" in why for why in fusion.reasons.values())
    c = tds.compile(f)
    np.testing.assert_allclose(c(tds.Tensor(x)).numpy(), f(tds.Tensor(x)).numpy(), rtol=RTOL)


def test_resnet20_training_step_compiled_equals_eager():
    from tinygrad_ds.nn.models import resnet20

    rng = np.random.default_rng(0)
    m1, step1 = _trainer(resnet20)
    m2, step2 = _trainer(resnet20)
    compiled = tds.compile(step2)
    for _ in range(2):
        x = tds.Tensor(rng.standard_normal((2, 3, 32, 32)).astype(np.float32))
        y = tds.Tensor(rng.integers(0, 10, 2))
        close(compiled(x, y).numpy(), step1(x, y).numpy())
    s1, s2 = _state(m1), _state(m2)
    for k in s1:  # parameters, momentum-updated twice, and batch-norm running statistics
        close(s2[k], s1[k])
    names = {k.name for k in compiled.last.plan.kernels}
    assert any(name.startswith("fused_batch_norm_add_relu") for name in names)  # residual


def test_generated_loops_share_their_outer_range_among_threads(monkeypatch):
    """A generated loop's outer axis runs over [lo, hi): called with the arrays alone it
    computes everything, in parts on the kernel threads when the arrays are large; the result
    is the same on one thread and on several."""
    from tinygrad_ds.backend import threads
    from tinygrad_ds.compile import codegen

    monkeypatch.setattr(codegen.SplitKernel, "PARALLEL_ELEMENTS", 1)
    b = tds.Tensor(np.linspace(-1, 1, 6, dtype=np.float32))

    def f(x):
        return ((x + b).relu() * 2.0 - x.sigmoid()).maximum(x.tanh())

    g = tds.trace(f, (9, 4, 6))
    group = fuse(g).groups[0]
    code, _ = group_source(g, group)
    assert "range(lo, hi)" in code and "lo, hi):" in code
    kernel = load_kernel(code)
    x = np.random.default_rng(1).standard_normal((9, 4, 6)).astype(np.float32)
    args = {g.inputs[0]: x, **{n.id: n.value for n in g.nodes if n.kind == "const"}}
    outs = {}
    monkeypatch.setitem(threads._state, "explicit", True)  # (restored after the test)
    for n in (1, 3):
        monkeypatch.setitem(threads._state, "n", n)
        outs[n] = np.full((9, 4, 6), np.nan, np.float32)
        kernel(*[args[i] for i in group.inputs], outs[n])
    np.testing.assert_array_equal(outs[1], outs[3])
    close(outs[3], f(tds.Tensor(x)).numpy())


# ---- buffers planned by liveness ---------------------------------------------------------------
def test_loop_outputs_share_buffers_by_liveness_and_stay_correct():
    w = tds.Tensor(np.random.default_rng(1).standard_normal((6, 6)).astype(np.float32) * 0.3)

    def f(x):  # loops separated by products: each loop's output dies at the next product
        for _ in range(4):
            x = ((x @ w) * 2.0).tanh() + x.relu()
        return x.sum(axis=1)

    c = tds.compile(f)
    rng = np.random.default_rng(0)
    for _ in range(3):  # the first call plans the buffers; the later ones run in the arena
        x = rng.standard_normal((5, 6)).astype(np.float32)
        close(c(tds.Tensor(x)).numpy(), f(tds.Tensor(x)).numpy())
    plan = c.last.plan
    loops = [slot for s in plan.steps if s[0] == "kernel" for slot, *_ in s[3]]
    in_arena = [s for s in loops if s in plan.buffer_of]
    assert len(in_arena) >= 4 and len(plan.arena) < len(in_arena)  # shared
    assert plan.owned_bytes() == sum(b.nbytes for b in plan.arena)
    assert 0 < plan.planned_peak_bytes()


def test_a_loop_writes_over_the_operand_that_dies_there():
    def f(x):
        z = x * 3.0  # one loop; its output z dies at the second loop
        s = z.sum(axis=1, keepdims=True)  # the second loop needs this sum of z: two loops
        return (z.tanh() * s).sum()

    c = tds.compile(f)
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    for _ in range(2):
        close(c(tds.Tensor(x)).numpy(), f(tds.Tensor(x)).numpy())
    plan = c.last.plan
    shared = [(s[2], slot) for s in plan.steps if s[0] == "kernel" for slot, *_ in s[3]
              if slot in plan.buffer_of and any(plan.buffer_of.get(i) == plan.buffer_of[slot]
                                                for i in s[2])]
    assert shared, "no loop wrote over its dying operand"


def test_a_view_of_a_loop_output_that_is_returned_gets_memory_of_its_own():
    def f(x):
        return (x * 2.0).reshape(6)  # the output is a view of the loop's output

    c = tds.compile(f)
    a = c(tds.Tensor(np.ones((2, 3), np.float32)))
    b = c(tds.Tensor(np.zeros((2, 3), np.float32)))
    np.testing.assert_array_equal(a.numpy(), np.full(6, 2.0))  # not overwritten by the 2nd call
    np.testing.assert_array_equal(b.numpy(), np.zeros(6))


def test_explain_measures_peak_memory_and_puts_the_state_back(capsys):
    model, step = _trainer(_convnet)
    c = tds.compile(step)
    rng = np.random.default_rng(0)
    x = tds.Tensor(rng.standard_normal((4, 3, 8, 8)).astype(np.float32))
    y = tds.Tensor(rng.integers(0, 5, 4))
    c(x, y)
    before = _state(model)
    grads = [p.grad for p in model.parameters()]
    text = c.explain(x, y)
    for k, v in _state(model).items():  # parameters and running statistics unchanged
        np.testing.assert_array_equal(v, before[k])
    assert all(p.grad is g for p, g in zip(model.parameters(), grads))
    assert "planned peak" in text and "measured peak of one call" in text
    assert "eager" in text.split("measured peak")[1]
    with pytest.raises(tds.TdsError, match="no plan for inputs"):
        c.explain(tds.Tensor(np.ones((2, 3, 8, 8), np.float32)), y)


def test_peak_bytes_sees_numpy_allocations():
    from tinygrad_ds.compile.memory import peak_bytes

    assert peak_bytes(lambda: np.ones(1 << 20, np.float64).sum()) >= 8 << 20


# ---- a compiled model's backward ----------------------------------------------------------------
def _tiny_resnet():
    from tinygrad_ds.nn.models.resnet import resnet_cifar

    return resnet_cifar(depth=8, width=4, num_classes=5)


@pytest.mark.parametrize("build,shape", [(_mlp, (8, 20)), (_tiny_resnet, (2, 3, 8, 8))],
                         ids=["mlp", "tiny-resnet"])
def test_compiled_model_backward_is_one_tape_node_and_equals_eager(build, shape):
    from tinygrad_ds.compile.autodiff import CompiledModel

    rng = np.random.default_rng(0)
    models = []
    for _ in range(2):
        tds.manual_seed(0)
        m = build()
        m.train()
        models.append((m, optim.SGD(m.parameters(), lr=0.1, momentum=0.9)))
    (m1, opt1), (m2, opt2) = models
    c = tds.compile(m2)
    for _ in range(2):
        x = rng.standard_normal(shape).astype(np.float32)
        y = tds.Tensor(rng.integers(0, 5, shape[0]))
        out = c(tds.Tensor(x))
        assert out._node.op is CompiledModel  # the whole forward: one node of the tape
        assert len(out._node.inputs) == 1 + len(list(m2.parameters()))
        for m, opt, o in ((m1, opt1, m1(tds.Tensor(x))), (m2, opt2, out)):
            opt.zero_grad()
            F.cross_entropy(o, y).backward()
        g1 = [p.grad.numpy() for p in m1.parameters()]
        g2 = [p.grad.numpy() for p in m2.parameters()]
        scale = max(np.abs(g).max() for g in g1)  # (a bias before batch norm has gradient ~0)
        for a, b in zip(g1, g2):
            assert np.abs(a - b).max() <= RTOL * scale
        opt1.step()
        opt2.step()
    s1, s2 = _state(m1), _state(m2)
    for k in s1:  # batch-norm running statistics moved once per forward, as in eager
        close(s2[k], s1[k])
    entry = c.last
    assert entry.backward is not None and entry.backward.plan.planned  # replayed, compiled
    assert len(c.plans) == 1 and entry.calls == 2


def test_compiled_model_backward_after_an_update_is_an_error_as_in_eager():
    tds.manual_seed(0)
    model = _mlp()
    opt = optim.SGD(model.parameters(), lr=0.1)
    c = tds.compile(model)
    x = tds.Tensor(np.ones((2, 20), np.float32))
    out = c(x).sum()
    out.backward(retain_graph=True)
    opt.step()  # writes the weights the backward reads
    with pytest.raises(tds.GradError, match="written in place"):
        out.backward()
    with pytest.raises(tds.GradError, match="compiled model"):
        c(x).sum().backward(create_graph=True)


def test_compiled_model_with_dropout_called_twice_before_backward_equals_eager():
    def build():
        tds.manual_seed(0)
        return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))

    m1, m2 = build(), build()
    c = tds.compile(m2)
    rng = np.random.default_rng(0)
    x1, x2 = (tds.Tensor(rng.standard_normal((4, 6)).astype(np.float32)) for _ in range(2))
    for k in range(2):  # two tape nodes of one plan; the same random masks as eager
        for m, f in ((m1, m1), (m2, c)):
            for p in m.parameters():
                p.grad = None
            tds.manual_seed(k)
            (f(x1) * f(x2)).sum().backward()
        for p1, p2 in zip(m1.parameters(), m2.parameters()):
            close(p2.grad.numpy(), p1.grad.numpy())


def test_a_compiled_model_inside_a_compiled_step_is_traced_as_the_model():
    m1, step1 = _trainer(_mlp)
    tds.manual_seed(0)
    m2 = _mlp()
    inner = tds.compile(m2)
    opt = optim.SGD(m2.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)

    def step2(x, y):
        loss = F.cross_entropy(inner(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    outer = tds.compile(step2)
    x = tds.Tensor(np.random.default_rng(0).standard_normal((4, 20)).astype(np.float32))
    y = tds.Tensor(np.array([0, 1, 2, 3]))
    for _ in range(2):
        close(outer(x, y).numpy(), step1(x, y).numpy())
    assert "compiled_model" not in ops(outer.last.graph) and "matmul" in ops(outer.last.graph)
    assert not inner.plans  # it was only traced through
    for k, v in _state(m1).items():
        close(_state(m2)[k], v)


def test_per_channel_work_runs_once_per_channel_in_the_generated_loop():
    """batch_norm's per-channel scale and shift (float64 work on (C,) operands) are computed in
    the channel loop of the generated source, not per element; the result still matches."""
    bn = tds.nn.BatchNorm2d(3)
    bn.eval()
    bn.running_mean.data[:] = [0.5, -1.0, 2.0]
    bn.running_var.data[:] = [4.0, 0.25, 1.0]

    def f(x, r):
        return (bn(x) + r).relu()

    g = tds.trace(f, (2, 3, 4, 5), (2, 3, 4, 5))
    group = next(gr for gr in fuse(g).groups if gr.shape == (2, 3, 4, 5))
    code, _ = group_source(g, group)
    assert "fused_batch_norm_add_relu" in code
    lines = code.splitlines()
    inner = next(k for k, ln in enumerate(lines) if "for i3 in" in ln)
    scale = next(k for k, ln in enumerate(lines) if "np.float64(" in ln)
    assert scale < inner  # hoisted above the loops over the positions
    rng = np.random.default_rng(2)
    x, r = (rng.standard_normal((2, 3, 4, 5)).astype(np.float32) for _ in range(2))
    c = tds.compile(f)
    close(c(tds.Tensor(x), tds.Tensor(r)).numpy(), f(tds.Tensor(x), tds.Tensor(r)).numpy())
