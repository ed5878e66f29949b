"""The kernel table and its backends: coverage, dispatch, lazy numba, NUMBA_DISABLE_JIT."""
import importlib
import re
import os
import platform
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tinygrad_ds.backend as backend
from tinygrad_ds.backend import KERNELS, missing


def _load_optional_backends():
    """Backends that register themselves on import (meta, later cuda), where present."""
    for name in ("tinygrad_ds.backend.meta",):
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def test_every_registered_backend_covers_the_table():
    _load_optional_backends()
    assert "cpu" in backend.registered()
    for name in backend.registered():
        assert missing(backend.get(name)) == [], f"backend {name!r} lacks kernels"


def test_table_names_are_unique_and_documented():
    assert len(set(KERNELS)) == len(KERNELS)
    doc = backend.table.__doc__
    for name in KERNELS:  # each name in a signature line, alone or in a group sharing one
        assert re.search(rf"^\s+(\w+ )*{name}( \w+)*\s*\(", doc, re.M), \
            f"{name} has no signature in table.py's docstring"


def test_dispatch_by_type_and_by_hint():
    class FakeArray:
        pass

    class Hinted:
        backend = "fake"

    fake = type("FakeBackend", (), {name: staticmethod(lambda *a: None) for name in KERNELS})
    saved = (dict(backend._backends), dict(backend._by_type))
    try:
        backend.register_backend("fake", fake, FakeArray)
        assert backend.kernels_for(FakeArray()) is fake
        assert backend.kernels_for(Hinted()) is fake
        assert backend.kernels_for(np.zeros(2)) is backend.get("cpu")
        with pytest.raises(Exception, match="no kernel backend for arrays of type object"):
            backend.kernels_for(object())
    finally:
        backend._backends.clear()
        backend._backends.update(saved[0])
        backend._by_type.clear()
        backend._by_type.update(saved[1])


def _run(code: str, **env) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, env={**os.environ, **env}, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_import_does_not_import_numba():
    out = _run("""
        import sys
        import tinygrad_ds, tinygrad_ds.functional, tinygrad_ds.nn
        print('numba' in sys.modules)
    """)
    assert out.strip() == "False"


SMALL_RUN = """
import numpy as np
import tinygrad_ds as tds
import tinygrad_ds.functional as F
rng = np.random.default_rng(0)
x = tds.Tensor(rng.standard_normal((2, 2, 5, 5)), dtype='float64', requires_grad=True)
w = tds.Tensor(rng.standard_normal((4, 2, 3, 3)), dtype='float64', requires_grad=True)
dw = tds.Tensor(rng.standard_normal((4, 1, 3, 3)), dtype='float64', requires_grad=True)
y = F.conv2d(x, w, padding=1, stride=2)
y = F.conv2d(y, dw, padding=1, groups=4)
y = F.conv_transpose2d(y, w, stride=2)
y = F.batch_norm(y, None, None, training=True)
y = F.group_norm(F.max_pool2d(y, 2, 1), 2) + F.avg_pool2d(y, 2, 1)
y = F.layer_norm(F.adaptive_avg_pool2d(y, 1).reshape(2, 2), 2)
loss = F.cross_entropy(y, tds.Tensor([1, 0]))
for c, h in ((16, 4), (32, 8)):  # the shifted 3x3 products (and their two weight gradients)
    z = tds.Tensor(rng.standard_normal((2, c, h, h)), dtype='float64', requires_grad=True)
    wz = tds.Tensor(rng.standard_normal((c, c, 3, 3)), dtype='float64', requires_grad=True)
    loss = loss + (F.conv2d(z, wz, padding=1) ** 2).mean()
loss.backward()
print(repr(loss.item()), repr(float(np.abs(x.grad.numpy()).sum())),
      repr(float(np.abs(z.grad.numpy()).sum())), repr(float(np.abs(wz.grad.numpy()).sum())))
"""


def test_small_run_without_jit():
    """NUMBA_DISABLE_JIT=1 turns every kernel into plain Python with the same results."""
    plain = [float(v) for v in _run(SMALL_RUN, NUMBA_DISABLE_JIT="1").split()]
    compiled = [float(v) for v in _run(SMALL_RUN).split()]
    np.testing.assert_allclose(plain, compiled, rtol=1e-10)


FAULTS = """
import resource
import numpy as np
import tinygrad_ds as tds
import tinygrad_ds.functional as F
from tinygrad_ds import optim
from tinygrad_ds.backend.cpu import malloc
from tinygrad_ds.nn.models import resnet20
tds.manual_seed(0)
model = resnet20()
opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
x = tds.Tensor(np.random.default_rng(0).standard_normal((128, 3, 32, 32)).astype(np.float32))
y = tds.Tensor(np.arange(128) % 10)
def step():
    opt.zero_grad(); F.cross_entropy(model(x), y).backward(); opt.step()
step(); step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
step()
print(malloc._state["kept"], resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc thresholds")
def test_a_training_step_reuses_freed_memory_without_page_faults():
    """The CPU backend has glibc's malloc keep the arrays a step frees (backend/cpu/malloc.py):
    the next ResNet-20 step at batch 128 reuses them instead of faulting in fresh pages (glibc's
    own thresholds gave 20,000 to 40,000 faults a step, 2 to 3 us each); TDS_MALLOC_KEEP=0
    leaves malloc alone."""
    kept, faults = _run(FAULTS).split()
    assert kept == "True" and int(faults) < 500
    assert _run(FAULTS, TDS_MALLOC_KEEP="0").split()[0] == "False"
