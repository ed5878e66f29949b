"""Loading a user's model file: what it defines, and one clear message for each way it fails."""
import textwrap

import numpy as np
import pytest

import tinygrad_ds as tds
from tinygrad_ds.errors import ShapeError, TdsError
from tinygrad_ds.app.modelfile import (ModelFileError, load_model_file, load_model_spec,
                                   run_example)

HEADER = """\
import numpy as np
import tinygrad_ds as tds
from tinygrad_ds import nn


class Affine(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.w = nn.Parameter(np.zeros((n_in, n_out), dtype=np.float32))
        self.b = nn.Parameter(np.zeros(n_out, dtype=np.float32))

    def forward(self, x):
        return x.reshape(x.shape[0], -1) @ self.w + self.b


class Two(nn.Module):
    def __init__(self, n_in, n_mid):
        super().__init__()
        self.fc1 = Affine(n_in, n_mid)
        self.fc2 = Affine(n_mid + 1, 10)   # wrong on purpose in one test

    def forward(self, x):
        return self.fc2(self.fc1(x))
"""


def write(tmp_path, body, name="model.py"):
    p = tmp_path / name
    p.write_text(HEADER + textwrap.dedent(body))
    return str(p)


def line_of(path, needle):
    for i, line in enumerate(open(path).read().splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(needle)


def test_model_and_input_shape(tmp_path):
    p = write(tmp_path, """
        model = Affine(12, 10)
        input_shape = (2, 3, 2, 2)
    """)
    model, shape = load_model_file(p)
    assert isinstance(model, tds.nn.Module) and shape == (2, 3, 2, 2)
    assert run_example(p, model, shape).shape == (2, 10)


def test_build_model_and_example_input(tmp_path):
    p = write(tmp_path, """
        def build_model():
            return Affine(6, 10)

        example_input = tds.zeros(4, 6)
    """)
    spec = load_model_spec(p)
    assert spec.input_shape == (4, 6) and isinstance(spec.example_input, tds.Tensor)
    model, shape = load_model_file(p, input_shape=(1, 6))  # a flag overrides the file
    assert shape == (1, 6)


def test_main_guard_does_not_run(tmp_path):
    p = write(tmp_path, """
        model = Affine(2, 10)
        input_shape = (1, 2)
        if __name__ == "__main__":
            raise SystemExit("training would start here")
    """)
    load_model_file(p)


def test_missing_file():
    with pytest.raises(ModelFileError, match="nope.py: model file not found"):
        load_model_file("nope.py")


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(ModelFileError, match="is a folder, not a model file"):
        load_model_file(str(tmp_path))


def test_syntax_error_names_file_and_line(tmp_path):
    p = write(tmp_path, """
        model = Affine(2, 10
        input_shape = (1, 2)
    """)
    with pytest.raises(ModelFileError) as e:
        load_model_file(p)
    msg = str(e.value)
    assert msg.startswith(p + ":") and "syntax error" in msg


def test_error_while_running_names_line(tmp_path):
    p = write(tmp_path, """
        model = Affine(2, 10)
        oops = undefined_name + 1
        input_shape = (1, 2)
    """)
    with pytest.raises(ModelFileError) as e:
        load_model_file(p)
    msg = str(e.value)
    assert f"{p}:{line_of(p, 'undefined_name')}: NameError" in msg
    assert "undefined_name" in msg and "Traceback" not in msg


def test_error_in_build_model(tmp_path):
    p = write(tmp_path, """
        def build_model():
            return Affine(2, 10, 7)
        input_shape = (1, 2)
    """)
    with pytest.raises(ModelFileError, match=rf"{line_of(p, 'Affine(2, 10, 7)')}: TypeError"):
        load_model_file(p)


def test_no_model_no_shape_and_wrong_types(tmp_path):
    p = write(tmp_path, "input_shape = (1, 2)\n")
    with pytest.raises(ModelFileError, match="neither `model` nor `build_model"):
        load_model_file(p)
    p = write(tmp_path, "model = Affine(2, 10)\n", name="m2.py")
    with pytest.raises(ModelFileError, match="neither `input_shape` nor `example_input`"):
        load_model_file(p)
    p = write(tmp_path, "model = [Affine(2, 10)]\ninput_shape = (1, 2)\n", name="m3.py")
    line = line_of(p, "model = [")
    with pytest.raises(ModelFileError, match=rf"m3.py:{line}: `model` is a list"):
        load_model_file(p)
    p = write(tmp_path, "model = Affine(2, 10)\ninput_shape = (1, 'a')\n", name="m4.py")
    with pytest.raises(ModelFileError, match="tuple of positive ints"):
        load_model_file(p)


def test_shape_error_names_module_path_and_shapes(tmp_path):
    p = write(tmp_path, """
        model = Two(4, 5)
        input_shape = (2, 4)
    """)
    model, shape = load_model_file(p)
    with pytest.raises(ModelFileError) as e:
        run_example(p, model, shape)
    assert isinstance(e.value, ShapeError) and isinstance(e.value, TdsError)
    msg = str(e.value)
    assert "(in module fc2)" in msg
    assert "(2, 5)" in msg and "(6, 10)" in msg
    assert f"{p}:{line_of(p, 'return x.reshape')}" in msg


def test_neighbour_import(tmp_path):
    (tmp_path / "blocks.py").write_text(HEADER + "\nWIDTH = 7\n")
    p = write(tmp_path, """
        from blocks import WIDTH
        model = Affine(WIDTH, 10)
        input_shape = (1, WIDTH)
    """)
    model, shape = load_model_file(p)
    assert shape == (1, 7) and np.asarray(model.w.data).shape == (7, 10)
