"""Each tinygrad_ds op as ONNX nodes: `EMIT[op name](builder, node, input names, input nodes,
batch axes) -> output name`.

Most ops are one ONNX op (conv2d -> Conv, relu -> Relu). Where the two differ, the emitter
builds ours from theirs: eval-mode batch_norm reads mean and 1/std (ONNX's BatchNormalization
reads the variance), so it is x * scale + shift with scale = invstd * weight, as the kernel
computes it; group_norm is written out (ONNX's GroupNormalization came in opset 18 and changed
meaning in 21); logsumexp subtracts the max first, as the kernel does. Shapes the exporter writes
down (reshape targets, expand shapes) carry -1 or 1 on the batch axis when it is free, so the
model runs at any batch size.
"""
from __future__ import annotations

import numpy as np

from ..errors import TdsError
from .ir import Node


class OnnxExportError(TdsError):
    """A graph that cannot be written as ONNX: the message names the op and its module."""


INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min


class Builder:
    """Collects ONNX nodes and initializers; one op node at a time (begin ... end)."""

    def __init__(self, onnx, opset: int, reserved=()):
        self.onnx, self.helper, self.opset = onnx, onnx.helper, opset
        self.nodes: list = []
        self.inits: list = []
        self._reserved = set(reserved)     # the graph's output names: given only by begin()
        self._used: set[str] = set(reserved)
        self._n: Node | None = None
        self._out = ""
        self._k = 0
        self._ints: dict[tuple, str] = {}

    # ---- values --------------------------------------------------------------------------------
    def initializer(self, array: np.ndarray, name: str) -> str:
        from onnx import numpy_helper

        name = self.unique(name)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def ints(self, values) -> str:
        """A 1-D int64 constant (shapes, axes, pads), shared between nodes."""
        key = tuple(int(v) for v in values)
        if key not in self._ints:
            self._ints[key] = self.initializer(np.array(key, np.int64), f"ints{len(self._ints)}")
        return self._ints[key]

    def scalar(self, value, dtype) -> str:
        """A 0-d constant of `dtype` for this op."""
        self._k += 1
        return self.initializer(np.array(value, dtype=dtype), f"{self._out}_c{self._k}")

    # ---- nodes ---------------------------------------------------------------------------------
    def unique(self, name: str) -> str:
        """`name`, or `name_` (and so on) when a value already has it."""
        while name in self._used:
            name += "_"
        self._used.add(name)
        return name

    def begin(self, n: Node, out: str) -> None:
        """Start op node n; its value will be called `out` (made unique unless reserved)."""
        out = out if out in self._reserved else self.unique(out)
        self._n, self._out, self._k, self._first = n, out, 0, len(self.nodes)

    def op(self, op_type: str, inputs: list[str], n_out: int = 1, **attrs):
        """Add one ONNX node; returns its output name (or names, n_out > 1)."""
        self._k += 1
        outs = [self.unique(f"{self._out}_{self._k}_{i}" if n_out > 1 else
                            f"{self._out}_{self._k}") for i in range(n_out)]
        n = self._n
        name = f"{n.module or 'top'}/{n.op}#{n.id}"
        if self._k > 1 or n_out > 1:
            name += f".{self._k}"
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(self.helper.make_node(op_type, inputs, outs, name=name, **attrs))
        return outs[0] if n_out == 1 else outs

    def end(self, out: str) -> str:
        """Name the op's result: rename the node output `out` to the op's value name."""
        for node in reversed(self.nodes[self._first:]):
            if out in node.output:
                node.output[list(node.output).index(out)] = self._out
                for later in self.nodes[self._first:]:  # (none read the last value, normally)
                    for i, name in enumerate(later.input):
                        if name == out:
                            later.input[i] = self._out
                return self._out
        self.op("Identity", [out])  # the op's input itself (a no-op copy)
        return self.end(self.nodes[-1].output[0])

    def reduce(self, op_type: str, x: str, axes, keepdims: bool) -> str:
        """ReduceX over `axes`: an attribute before opset 18 (ReduceSum: 13), an input after."""
        axes = [int(a) for a in axes]
        if op_type == "ReduceSum" or self.opset >= 18:
            return self.op(op_type, [x, self.ints(axes)], keepdims=int(keepdims))
        return self.op(op_type, [x], axes=axes, keepdims=int(keepdims))

    def reshape(self, x: str, shape) -> str:
        return self.op("Reshape", [x, self.ints(shape)])


def _tensor_type(dtype) -> int:
    from onnx import helper

    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def _free(shape, axis) -> list[int]:
    """The shape to write down: -1 on the free batch axis (one unknown dim, which Reshape
    infers)."""
    dims = [int(s) for s in shape]
    if axis is not None:
        dims[axis] = -1
    return dims


def _channel_shape(c: int, ndim: int) -> list[int]:
    """(C,) viewed against (N, C, ...): (1, C, 1, ...)."""
    return [1, c] + [1] * (ndim - 2)


# ---- elementwise ---------------------------------------------------------------------------------
def _simple(op_type: str, **fixed):
    def emit(b, n, ins, srcs, axes):
        return b.op(op_type, ins, **fixed)
    return emit


EMIT = {name: _simple(t) for name, t in {
    "add": "Add", "mul": "Mul", "div": "Div", "pow": "Pow", "maximum": "Max",
    "minimum": "Min", "neg": "Neg", "exp": "Exp", "log": "Log", "sqrt": "Sqrt", "abs": "Abs",
    "sign": "Sign", "relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "erf": "Erf",
    "less": "Less", "less_equal": "LessOrEqual", "equal": "Equal", "where": "Where",
    "matmul": "MatMul", "copy": "Identity",
}.items()}


def _not_equal(b, n, ins, srcs, axes):
    return b.op("Not", [b.op("Equal", ins)])


def _leaky_relu(b, n, ins, srcs, axes):
    return b.op("LeakyRelu", ins, alpha=float(n.attrs["negative_slope"]))


def _cast(b, n, ins, srcs, axes):
    return b.op("Cast", ins, to=_tensor_type(n.attrs["dtype"]))


def _full_like(b, n, ins, srcs, axes):
    from onnx import numpy_helper

    value = numpy_helper.from_array(np.array([n.attrs["value"]], dtype=n.dtype))
    return b.op("ConstantOfShape", [b.op("Shape", ins)], value=value)


# ---- movement ------------------------------------------------------------------------------------
def _reshape(b, n, ins, srcs, axes):
    return b.reshape(ins[0], _free(n.attrs["shape"], axes.get(n.id)))


def _permute(b, n, ins, srcs, axes):
    return b.op("Transpose", ins, perm=[int(a) for a in n.attrs["axes"]])


def _expand(b, n, ins, srcs, axes):
    shape = [int(s) for s in n.attrs["shape"]]
    a = axes.get(n.id)
    if a is not None:  # 1 broadcasts bidirectionally: the input's own (batch) size stays
        shape[a] = 1
    return b.op("Expand", [ins[0], b.ints(shape)])


def _concat(b, n, ins, srcs, axes):
    return b.op("Concat", ins, axis=int(n.attrs["axis"]))


def _pad(b, n, ins, srcs, axes):
    pw = n.attrs["pad_width"]
    pads = [int(p[0]) for p in pw] + [int(p[1]) for p in pw]
    value = b.scalar(n.attrs["value"], srcs[0].dtype)
    return b.op("Pad", [ins[0], b.ints(pads), value], mode="constant")


def _getitem(b, n, ins, srcs, axes):
    """Basic indexing (ints, slices, None, Ellipsis) as Slice, Squeeze, Unsqueeze; a single
    integer array among slices as Gather."""
    shape = srcs[0].shape
    items = n.attrs["index"] if isinstance(n.attrs["index"], tuple) else (n.attrs["index"],)
    arrays = [i for i in items if isinstance(i, (np.ndarray, list))]
    if Ellipsis in items:
        k = items.index(Ellipsis)
        used = sum(1 for i in items if i is not None and i is not Ellipsis)
        items = items[:k] + (slice(None),) * (len(shape) - used) + items[k + 1:]
    starts, ends, steps, cut, squeeze, unsqueeze = [], [], [], [], [], []
    src = out = 0
    gather = None
    for i in items:
        if i is None:
            unsqueeze.append(out)
            out += 1
            continue
        if isinstance(i, slice):
            lo, hi, step = i.indices(shape[src])
            if (lo, hi, step) != (0, shape[src], 1):
                if step < 0 and hi < 0:
                    hi = INT64_MIN  # through index 0 (ONNX reads -1 as the last index)
                starts.append(lo), ends.append(hi), steps.append(step), cut.append(src)
            out += 1
        elif isinstance(i, (int, np.integer)):  # kept negative: -1 is the last at any size
            i = int(i)
            starts.append(i), ends.append(i + 1 if i != -1 else INT64_MAX), steps.append(1)
            cut.append(src)
            squeeze.append(src)
        elif isinstance(i, (np.ndarray, list)):
            index = np.asarray(i)
            if index.dtype.kind not in "iu" or len(arrays) > 1 or squeeze or unsqueeze or \
                    any(j is None or isinstance(j, (int, np.integer)) for j in items):
                raise OnnxExportError(
                    f"indexing with {index.dtype} arrays mixed with ints or None (index "
                    f"{n.attrs['index']!r}) has no ONNX form here; one integer array among "
                    "slices has (Gather)")
            gather = (src, index.astype(np.int64))
            out += index.ndim
        else:  # (a value read while tracing, such as a tensor's data, is no constant index)
            raise OnnxExportError(f"an index item of type {type(i).__name__} (index "
                                  f"{n.attrs['index']!r}) has no ONNX form here")
        src += 1
    x = ins[0]
    if cut:
        x = b.op("Slice", [x, b.ints(starts), b.ints(ends), b.ints(cut), b.ints(steps)])
    if gather is not None:
        axis, index = gather
        x = b.op("Gather", [x, b.initializer(index, f"{b._out}_index")], axis=axis)
    if squeeze:
        x = b.op("Squeeze", [x, b.ints(squeeze)])
    if unsqueeze:
        x = b.op("Unsqueeze", [x, b.ints(unsqueeze)])
    return x


def _gather(b, n, ins, srcs, axes):
    return b.op("GatherElements", ins, axis=int(n.attrs["axis"]))


# ---- reductions and softmax ----------------------------------------------------------------------
def _reduction(op_type: str):
    def emit(b, n, ins, srcs, axes):
        x, red, keep = ins[0], tuple(n.attrs["axis"]), bool(n.attrs["keepdims"])
        if not red:  # numpy: summing over no axes is the identity (ints become int64 below)
            return b.op("Identity", [x]) if n.dtype == srcs[0].dtype else \
                b.op("Cast", [x], to=_tensor_type(n.dtype))
        if op_type == "ReduceSum" and srcs[0].dtype != n.dtype:  # int and bool sums: int64
            x = b.op("Cast", [x], to=_tensor_type(n.dtype))
        return b.reduce(op_type, x, red, keep)
    return emit


def _logsumexp(b, n, ins, srcs, axes):
    """log(sum(exp(x - m))) + m with m the max (0 where it is infinite, as the kernel)."""
    x, red, keep = ins[0], tuple(n.attrs["axis"]), bool(n.attrs["keepdims"])
    m = b.reduce("ReduceMax", x, red, True)
    finite = b.op("IsInf", [m])
    m = b.op("Where", [finite, b.scalar(0, srcs[0].dtype), m])
    s = b.reduce("ReduceSum", b.op("Exp", [b.op("Sub", [x, m])]), red, keep)
    if not keep:
        m = b.op("Squeeze", [m, b.ints(red)])
    return b.op("Add", [b.op("Log", [s]), m])


def _argmax(b, n, ins, srcs, axes):
    axis, keep = n.attrs["axis"], bool(n.attrs["keepdims"])
    if axis is None:  # the index into the flattened array
        flat = b.op("ArgMax", [b.reshape(ins[0], [-1])], axis=0, keepdims=0)
        return b.reshape(flat, [1] * len(srcs[0].shape)) if keep else flat
    return b.op("ArgMax", ins, axis=int(axis), keepdims=int(keep))


def _softmax(op_type: str):
    def emit(b, n, ins, srcs, axes):
        return b.op(op_type, ins, axis=int(n.attrs["axis"]))
    return emit


# ---- convolution and pooling ---------------------------------------------------------------------
def _conv2d(b, n, ins, srcs, axes):
    a = n.attrs
    (sh, sw), (ph, pw), (dh, dw) = a["stride"], a["padding"], a["dilation"]
    return b.op("Conv", ins, kernel_shape=list(srcs[1].shape[2:]), strides=[sh, sw],
                pads=[ph, pw, ph, pw], dilations=[dh, dw], group=int(a["groups"]))


def _conv_transpose2d(b, n, ins, srcs, axes):
    """(N, O, OH, OW), w (O, C/G, KH, KW) -> (N, C, H, W) of out_hw: ONNX's ConvTranspose
    with the output padding that gives out_hw."""
    a = n.attrs
    (sh, sw), (ph, pw), (dh, dw) = a["stride"], a["padding"], a["dilation"]
    kh, kw = srcs[1].shape[2:]
    ih, iw = srcs[0].shape[2:]
    oph = a["out_hw"][0] - ((ih - 1) * sh - 2 * ph + dh * (kh - 1) + 1)
    opw = a["out_hw"][1] - ((iw - 1) * sw - 2 * pw + dw * (kw - 1) + 1)
    if not (0 <= oph < max(sh, dh) and 0 <= opw < max(sw, dw)):
        raise OnnxExportError(f"output size {a['out_hw']} needs output padding {(oph, opw)}, "
                              f"outside [0, stride or dilation)")
    return b.op("ConvTranspose", ins, kernel_shape=[kh, kw], strides=[sh, sw],
                pads=[ph, pw, ph, pw], dilations=[dh, dw], group=int(a["groups"]),
                output_padding=[oph, opw] if (oph, opw) != (0, 0) else None)


def _pool_attrs(n: Node, in_hw) -> dict:
    """kernel, strides, pads and ceil_mode (the traced output is larger than floor mode's)."""
    a = n.attrs
    (kh, kw), (sh, sw), (ph, pw) = a["kernel"], a["stride"], a["padding"]
    floor = ((in_hw[0] + 2 * ph - kh) // sh + 1, (in_hw[1] + 2 * pw - kw) // sw + 1)
    return dict(kernel_shape=[kh, kw], strides=[sh, sw], pads=[ph, pw, ph, pw],
                ceil_mode=int(tuple(a["out_hw"]) != floor))


def _max_pool2d(b, n, ins, srcs, axes):
    return b.op("MaxPool", ins, **_pool_attrs(n, srcs[0].shape[2:]))


def _avg_pool2d(b, n, ins, srcs, axes):
    attrs = _pool_attrs(n, srcs[0].shape[2:])
    return b.op("AveragePool", ins, count_include_pad=int(n.attrs.get("count_include_pad", True)),
                **attrs)


def _adaptive_avg_pool2d(b, n, ins, srcs, axes):
    """Global average pooling for (1, 1); average pooling when the windows tile the input;
    otherwise an averaging matrix on each side, A_h x A_w^T (window i spans
    floor(i H / OH) .. ceil((i + 1) H / OH), as the kernel)."""
    (h, w), (oh, ow) = srcs[0].shape[2:], n.attrs["out_hw"]
    if (oh, ow) == (1, 1):
        return b.op("GlobalAveragePool", ins)
    if h % oh == 0 and w % ow == 0:
        k = [h // oh, w // ow]
        return b.op("AveragePool", ins, kernel_shape=k, strides=k)

    def averaging(size, out):
        m = np.zeros((out, size), dtype=srcs[0].dtype)
        for i in range(out):
            lo, hi = (i * size) // out, -(-((i + 1) * size) // out)
            m[i, lo:hi] = 1.0 / (hi - lo)
        return m

    b._k += 1
    aw = b.initializer(averaging(w, ow).T.copy(), f"{b._out}_avg_w")
    ah = b.initializer(averaging(h, oh), f"{b._out}_avg_h")
    return b.op("MatMul", [ah, b.op("MatMul", [ins[0], aw])])


# ---- normalization -------------------------------------------------------------------------------
def _batch_norm(b, n, ins, srcs, axes):
    """y = x * scale + shift, scale = invstd * weight, shift = bias - mean * scale."""
    x, weight, bias, mean, invstd = ins
    shape = _channel_shape(srcs[0].shape[1], len(srcs[0].shape))
    scale = b.op("Mul", [invstd, weight])
    shift = b.op("Sub", [bias, b.op("Mul", [mean, scale])])
    y = b.op("Mul", [x, b.reshape(scale, shape)])
    return b.op("Add", [y, b.reshape(shift, shape)])


def _layer_norm(b, n, ins, srcs, axes):
    return b.op("LayerNormalization", ins, axis=-int(n.attrs["ndim"]),
                epsilon=float(n.attrs["eps"]))


def _group_norm(b, n, ins, srcs, axes):
    """Per sample and group of C/G channels: (x - mean) / sqrt(var + eps), then the
    per-channel affine."""
    x, weight, bias = ins
    shape, dtype, g = srcs[0].shape, srcs[0].dtype, int(n.attrs["groups"])
    xg = b.reshape(x, [0, g, -1])  # 0: the batch size as it comes
    xc = b.op("Sub", [xg, b.reduce("ReduceMean", xg, [2], True)])
    var = b.reduce("ReduceMean", b.op("Mul", [xc, xc]), [2], True)
    invstd = b.op("Reciprocal", [b.op("Sqrt", [b.op("Add", [var, b.scalar(n.attrs["eps"],
                                                                            dtype)])])])
    y = b.op("Reshape", [b.op("Mul", [xc, invstd]), b.op("Shape", [x])])
    cs = _channel_shape(shape[1], len(shape))
    return b.op("Add", [b.op("Mul", [y, b.reshape(weight, cs)]), b.reshape(bias, cs)])


EMIT.update({
    "not_equal": _not_equal, "leaky_relu": _leaky_relu, "cast": _cast, "full_like": _full_like,
    "reshape": _reshape, "permute": _permute, "expand": _expand, "concat": _concat,
    "pad": _pad, "getitem": _getitem, "gather": _gather,
    "sum": _reduction("ReduceSum"), "mean": _reduction("ReduceMean"),
    "max": _reduction("ReduceMax"), "logsumexp": _logsumexp,
    "argmax": _argmax, "softmax": _softmax("Softmax"), "log_softmax": _softmax("LogSoftmax"),
    "conv2d": _conv2d, "conv_transpose2d": _conv_transpose2d, "max_pool2d": _max_pool2d,
    "avg_pool2d": _avg_pool2d, "adaptive_avg_pool2d": _adaptive_avg_pool2d,
    "batch_norm": _batch_norm, "layer_norm": _layer_norm, "group_norm": _group_norm,
})
