#!/usr/bin/env python3
"""Generate nanoc's ONNX test fixtures under tests/fixtures/.

Usage (from the repo root):
    bash scripts/setup_venv.sh && .venv/bin/python scripts/gen_fixtures.py

Every model is built node by node with ``onnx.helper``, checked with
``onnx.checker.check_model(full_check=True)`` and run with onnxruntime
(CPUExecutionProvider, ORT_DISABLE_ALL, one thread). For each fixture directory
``tests/fixtures/<name>/`` it writes exactly:

    model.onnx
    inputs/<input_name>.npy
    outputs/<output_name>.npy      (onnxruntime's outputs)

All random data comes from numpy Generators seeded from the fixture name, so a
re-run reproduces every file byte for byte.
"""

from __future__ import annotations

import shutil
import sys
import zlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
IR_VERSION = 8
DEFAULT_OPSET = 17
PRODUCER = "nanoc-gen_fixtures"
FILES = ("model.onnx", "inputs", "outputs")  # what the generator owns in a fixture dir


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #

def rng_for(name: str) -> np.random.Generator:
    """A generator seeded from the fixture name (stable across runs/platforms)."""
    return np.random.default_rng(zlib.crc32(name.encode()) + 20240601)


def f32(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


def i64(a) -> np.ndarray:
    return np.asarray(a, dtype=np.int64)


def randn(rng, shape, scale=1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def tensor_type(dtype) -> int:
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def make_model(graph: onnx.GraphProto, opset: int, extra_opsets=()) -> onnx.ModelProto:
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in extra_opsets],
        producer_name=PRODUCER,
        producer_version="1",
    )
    model.ir_version = IR_VERSION
    return model


def run_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(
        model.SerializeToString(), so, providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in sess.get_outputs()]
    return sess.run(names, feeds)


def save_npy(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.save(f, np.array(arr, order="C", copy=True), allow_pickle=False)  # keeps 0-d shape


def clear_fixture_dir(d: Path) -> None:
    """Remove only what this generator owns, so stray hand-placed files survive."""
    for name in FILES:
        p = d / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


# Fixtures using ops that onnxruntime registers in the default domain but
# the ONNX standard does not define (the checker would reject them).
UNCHECKED = {"ops/ort_simplified_layernorm"}


def write_fixture(name: str, model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict:
    if name not in UNCHECKED:
        onnx.checker.check_model(model, full_check=True)
    outs = run_ort(model, feeds)
    out_names = [o.name for o in model.graph.output]
    d = FIXTURES / name
    d.mkdir(parents=True, exist_ok=True)
    clear_fixture_dir(d)
    (d / "model.onnx").write_bytes(model.SerializeToString())
    for k, v in feeds.items():
        save_npy(d / "inputs" / f"{k}.npy", v)
    for k, v in zip(out_names, outs):
        if v.dtype.kind == "f" and not np.all(np.isfinite(v)):
            raise RuntimeError(f"{name}: non-finite output {k}")
        save_npy(d / "outputs" / f"{k}.npy", v)
    return {k: v for k, v in zip(out_names, outs)}


# --------------------------------------------------------------------------- #
# torch.onnx.export-like graph builder
# --------------------------------------------------------------------------- #

class Builder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._init_names: set[str] = set()
        self._consts: dict[tuple, str] = {}
        self._node_names: dict[str, int] = {}

    def init(self, name: str, arr: np.ndarray) -> str:
        assert name not in self._init_names, name
        self._init_names.add(name)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def const(self, arr) -> str:
        """A shared constant initializer (torch folds these to `onnx::...` initializers)."""
        arr = np.asarray(arr)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._consts:
            self._consts[key] = self.init(f"const_{len(self._consts)}", arr)
        return self._consts[key]

    def op(self, op_type: str, inputs: list[str], name: str, n_out: int = 1, **attrs):
        count = self._node_names.get(name, 0)
        self._node_names[name] = count + 1
        if count:
            name = f"{name}_{count}"
        outputs = [f"{name}_output_{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=name, **attrs))
        return outputs[0] if n_out == 1 else outputs


# --------------------------------------------------------------------------- #
# 1. gpt2
# --------------------------------------------------------------------------- #

def build_gpt2():
    n_layer, n_embd, n_head, vocab, ctx = 2, 64, 4, 256, 16
    head_dim = n_embd // n_head
    rng = rng_for("gpt2")
    b = Builder()

    def ln_params(prefix):
        g = b.init(f"{prefix}.weight", (1.0 + randn(rng, [n_embd], 0.1)))
        be = b.init(f"{prefix}.bias", randn(rng, [n_embd], 0.1))
        return g, be

    wte = b.init("transformer.wte.weight", randn(rng, [vocab, n_embd], 0.1))
    wpe = b.init("transformer.wpe.weight", randn(rng, [ctx, n_embd], 0.05))
    layers = []
    for i in range(n_layer):
        p = f"transformer.h.{i}"
        layers.append(dict(
            ln_1=ln_params(f"{p}.ln_1"),
            c_attn_w=b.init(f"{p}.attn.c_attn.weight", randn(rng, [n_embd, 3 * n_embd], 0.1)),
            c_attn_b=b.init(f"{p}.attn.c_attn.bias", randn(rng, [3 * n_embd], 0.05)),
            c_proj_w=b.init(f"{p}.attn.c_proj.weight", randn(rng, [n_embd, n_embd], 0.1)),
            c_proj_b=b.init(f"{p}.attn.c_proj.bias", randn(rng, [n_embd], 0.05)),
            ln_2=ln_params(f"{p}.ln_2"),
            fc_w=b.init(f"{p}.mlp.c_fc.weight", randn(rng, [n_embd, 4 * n_embd], 0.1)),
            fc_b=b.init(f"{p}.mlp.c_fc.bias", randn(rng, [4 * n_embd], 0.05)),
            proj_w=b.init(f"{p}.mlp.c_proj.weight", randn(rng, [4 * n_embd, n_embd], 0.05)),
            proj_b=b.init(f"{p}.mlp.c_proj.bias", randn(rng, [n_embd], 0.05)),
        ))
    ln_f = ln_params("transformer.ln_f")
    mask = np.tril(np.ones((ctx, ctx), dtype=bool)).reshape(1, 1, ctx, ctx)
    bias_mask = b.init("transformer.h.attn.bias", mask)  # shared causal buffer

    c0, c1, c2, c3 = (b.const(i64(v)) for v in (0, 1, 2, 3))  # scalar gather indices
    ax0 = b.const(i64([0]))

    def unsq0(x, name):
        return b.op("Unsqueeze", [x, ax0], name)

    # embeddings
    T = "/transformer"
    shape_ids = b.op("Shape", ["input_ids"], f"{T}/Shape")
    seq = b.op("Gather", [shape_ids, c1], f"{T}/Gather", axis=0)
    pos = b.op("Range", [c0, seq, c1], f"{T}/Range")
    pos = unsq0(pos, f"{T}/Unsqueeze")
    tok_emb = b.op("Gather", [wte, "input_ids"], f"{T}/wte/Gather")
    pos_emb = b.op("Gather", [wpe, pos], f"{T}/wpe/Gather")
    h = b.op("Add", [tok_emb, pos_emb], f"{T}/Add")

    for i, L in enumerate(layers):
        P = f"{T}/h.{i}"
        A = f"{P}/attn"
        x = b.op("LayerNormalization", [h, *L["ln_1"]], f"{P}/ln_1/LayerNormalization",
                 axis=-1, epsilon=1e-5)
        qkv = b.op("MatMul", [x, L["c_attn_w"]], f"{A}/c_attn/MatMul")
        qkv = b.op("Add", [L["c_attn_b"], qkv], f"{A}/c_attn/Add")
        q, k, v = b.op("Split", [qkv, b.const(i64([n_embd] * 3))], f"{A}/Split", n_out=3, axis=2)

        def split_heads(t, perm):
            s = b.op("Shape", [t], f"{A}/Shape")
            d0 = unsq0(b.op("Gather", [s, c0], f"{A}/Gather", axis=0), f"{A}/Unsqueeze")
            s = b.op("Shape", [t], f"{A}/Shape")
            d1 = unsq0(b.op("Gather", [s, c1], f"{A}/Gather", axis=0), f"{A}/Unsqueeze")
            shape = b.op("Concat", [d0, d1, b.const(i64([n_head])), b.const(i64([head_dim]))],
                         f"{A}/Concat", axis=0)
            r = b.op("Reshape", [t, shape], f"{A}/Reshape")
            return b.op("Transpose", [r], f"{A}/Transpose", perm=perm)

        qh = split_heads(q, [0, 2, 1, 3])  # [b, h, s, d]
        kh = split_heads(k, [0, 2, 3, 1])  # [b, h, d, s]
        vh = split_heads(v, [0, 2, 1, 3])  # [b, h, s, d]
        scores = b.op("MatMul", [qh, kh], f"{A}/MatMul")
        scores = b.op("Div", [scores, b.const(f32(np.sqrt(head_dim)))], f"{A}/Div")

        # causal_mask = bias[:, :, key_len - query_len : key_len, :key_len]
        q_len = b.op("Gather", [b.op("Shape", [qh], f"{A}/Shape"), c2], f"{A}/Gather", axis=0)
        k_len = b.op("Gather", [b.op("Shape", [kh], f"{A}/Shape"), c3], f"{A}/Gather", axis=0)
        start = b.op("Sub", [k_len, q_len], f"{A}/Sub")
        m = b.op("Slice", [bias_mask, unsq0(start, f"{A}/Unsqueeze"), unsq0(k_len, f"{A}/Unsqueeze"),
                           b.const(i64([2])), b.const(i64([1]))], f"{A}/Slice")
        m = b.op("Slice", [m, b.const(i64([0])), unsq0(k_len, f"{A}/Unsqueeze"),
                           b.const(i64([3])), b.const(i64([1]))], f"{A}/Slice")
        scores = b.op("Where", [m, scores, b.const(f32(-3.4028234663852886e38))], f"{A}/Where")
        probs = b.op("Softmax", [scores], f"{A}/Softmax", axis=-1)
        ctxv = b.op("MatMul", [probs, vh], f"{A}/MatMul")
        ctxv = b.op("Transpose", [ctxv], f"{A}/Transpose", perm=[0, 2, 1, 3])
        s = b.op("Shape", [ctxv], f"{A}/Shape")
        d0 = unsq0(b.op("Gather", [s, c0], f"{A}/Gather", axis=0), f"{A}/Unsqueeze")
        s = b.op("Shape", [ctxv], f"{A}/Shape")
        d1 = unsq0(b.op("Gather", [s, c1], f"{A}/Gather", axis=0), f"{A}/Unsqueeze")
        shape = b.op("Concat", [d0, d1, b.const(i64([n_embd]))], f"{A}/Concat", axis=0)
        ctxv = b.op("Reshape", [ctxv, shape], f"{A}/Reshape")
        attn = b.op("MatMul", [ctxv, L["c_proj_w"]], f"{A}/c_proj/MatMul")
        attn = b.op("Add", [L["c_proj_b"], attn], f"{A}/c_proj/Add")
        h = b.op("Add", [attn, h], f"{P}/Add")

        M = f"{P}/mlp"
        x = b.op("LayerNormalization", [h, *L["ln_2"]], f"{P}/ln_2/LayerNormalization",
                 axis=-1, epsilon=1e-5)
        x = b.op("MatMul", [x, L["fc_w"]], f"{M}/c_fc/MatMul")
        x = b.op("Add", [L["fc_b"], x], f"{M}/c_fc/Add")
        g = b.op("Div", [x, b.const(f32(1.4142135381698608))], f"{M}/act/Div")
        g = b.op("Erf", [g], f"{M}/act/Erf")
        g = b.op("Add", [g, b.const(f32(1.0))], f"{M}/act/Add")
        g = b.op("Mul", [x, g], f"{M}/act/Mul")
        g = b.op("Mul", [g, b.const(f32(0.5))], f"{M}/act/Mul")
        x = b.op("MatMul", [g, L["proj_w"]], f"{M}/c_proj/MatMul")
        x = b.op("Add", [L["proj_b"], x], f"{M}/c_proj/Add")
        h = b.op("Add", [h, x], f"{P}/Add")

    h = b.op("LayerNormalization", [h, *ln_f], f"{T}/ln_f/LayerNormalization",
             axis=-1, epsilon=1e-5)
    wte_t = b.op("Transpose", [wte], "/lm_head/Transpose", perm=[1, 0])
    logits = b.op("MatMul", [h, wte_t], "/lm_head/MatMul")
    b.nodes[-1].output[0] = "logits"

    graph = helper.make_graph(
        b.nodes,
        "gpt2_tiny",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "seq", vocab])],
        initializer=b.inits,
    )
    model = make_model(graph, DEFAULT_OPSET)
    ids = rng.integers(0, vocab, size=(1, ctx), dtype=np.int64)
    return model, {"input_ids": ids}


# --------------------------------------------------------------------------- #
# 2. mlp
# --------------------------------------------------------------------------- #

def build_mlp():
    rng = rng_for("mlp")
    inits = [
        numpy_helper.from_array(randn(rng, [64, 32], 0.25), "fc1.weight"),
        numpy_helper.from_array(randn(rng, [64], 0.1), "fc1.bias"),
        numpy_helper.from_array(randn(rng, [64, 64], 0.2), "fc2.weight"),
        numpy_helper.from_array(randn(rng, [64], 0.1), "fc2.bias"),
        numpy_helper.from_array(randn(rng, [10, 64], 0.3), "fc3.weight"),
        numpy_helper.from_array(randn(rng, [10], 0.1), "fc3.bias"),
    ]
    nodes = [
        helper.make_node("Gemm", ["x", "fc1.weight", "fc1.bias"], ["h1"], name="fc1", transB=1),
        helper.make_node("Relu", ["h1"], ["a1"], name="relu1"),
        helper.make_node("Gemm", ["a1", "fc2.weight", "fc2.bias"], ["h2"], name="fc2",
                         alpha=0.5, beta=2.0, transB=0),
        helper.make_node("Sigmoid", ["h2"], ["a2"], name="sigmoid2"),
        helper.make_node("Gemm", ["a2", "fc3.weight", "fc3.bias"], ["h3"], name="fc3", transB=1),
        helper.make_node("Tanh", ["h3"], ["a3"], name="tanh3"),
        helper.make_node("Softmax", ["a3"], ["probs"], name="softmax", axis=1),
    ]
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 32])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [4, 10])],
        initializer=inits,
    )
    return make_model(graph, DEFAULT_OPSET), {"x": randn(rng, [4, 32])}


# --------------------------------------------------------------------------- #
# 3. cnn
# --------------------------------------------------------------------------- #

def build_cnn():
    rng = rng_for("cnn")
    I = numpy_helper.from_array
    inits = [
        I(randn(rng, [8, 3, 3, 3], 0.3), "conv1.weight"),
        I(randn(rng, [8], 0.1), "conv1.bias"),
        I(1.0 + randn(rng, [8], 0.1), "bn1.weight"),
        I(randn(rng, [8], 0.1), "bn1.bias"),
        I(randn(rng, [8], 0.1), "bn1.running_mean"),
        I(rng.uniform(0.5, 1.5, [8]).astype(np.float32), "bn1.running_var"),
        I(randn(rng, [16, 8, 3, 3], 0.15), "conv2.weight"),
        I(randn(rng, [16], 0.1), "conv2.bias"),
        I(f32(0.0), "clip.min"),
        I(f32(6.0), "clip.max"),
        I(randn(rng, [16, 1, 3, 3], 0.3), "dw.weight"),
        I(randn(rng, [16], 0.1), "dw.bias"),
        I(randn(rng, [10, 16], 0.3), "fc.weight"),
        I(randn(rng, [10], 0.1), "fc.bias"),
    ]
    N = helper.make_node
    nodes = [
        N("Conv", ["image", "conv1.weight", "conv1.bias"], ["c1"], name="conv1",
          kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        N("BatchNormalization", ["c1", "bn1.weight", "bn1.bias", "bn1.running_mean",
                                 "bn1.running_var"], ["b1"], name="bn1", epsilon=1e-5),
        N("Relu", ["b1"], ["r1"], name="relu1"),
        N("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        N("Conv", ["p1", "conv2.weight", "conv2.bias"], ["c2"], name="conv2",
          kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1], group=1, dilations=[1, 1]),
        N("Clip", ["c2", "clip.min", "clip.max"], ["r2"], name="relu6"),
        N("Conv", ["r2", "dw.weight", "dw.bias"], ["c3"], name="dwconv",
          kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=16),
        N("Relu", ["c3"], ["r3"], name="relu3"),
        N("AveragePool", ["r3"], ["p3"], name="pool3", kernel_shape=[2, 2], strides=[2, 2]),
        N("GlobalAveragePool", ["p3"], ["g"], name="gap"),
        N("Flatten", ["g"], ["f"], name="flatten", axis=1),
        N("Gemm", ["f", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        initializer=inits,
    )
    return make_model(graph, DEFAULT_OPSET), {"image": randn(rng, [1, 3, 16, 16])}


# --------------------------------------------------------------------------- #
# 4. unsupported
# --------------------------------------------------------------------------- #

UNSUPPORTED_OPS = {"Celu": 1, "Hardmax": 2, "LpNormalization": 1}


def build_qdq_cnn():
    """The CNN fixture quantised to int8 QDQ form by onnxruntime's own tool
    (quantize_static, MinMax calibration on fixed random images, per-channel
    weights, u8 activations / s8 weights)."""
    import tempfile
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    model, feeds = build_cnn()
    rng = rng_for("qdq_cnn")
    calib = [{"image": randn(rng, [1, 3, 16, 16])} for _ in range(8)]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib)

        def get_next(self):
            return next(self.it, None)

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "qdq.onnx"
        src.write_bytes(model.SerializeToString())
        quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=True)
        q = onnx.load(str(dst))
    # Drop metadata that names the tool version, so regeneration is stable.
    del q.metadata_props[:]
    return q, feeds


def build_unsupported():
    rng = rng_for("unsupported")
    N = helper.make_node
    nodes = [
        N("Relu", ["x"], ["r"], name="relu"),
        N("Celu", ["x"], ["c"], name="celu", alpha=1.0),
        N("LpNormalization", ["c"], ["l"], name="lpnorm", axis=1, p=2),
        N("Hardmax", ["l"], ["h1"], name="hardmax1", axis=1),
        N("Hardmax", ["r"], ["h2"], name="hardmax2", axis=1),
        N("Add", ["h1", "h2"], ["y"], name="add"),
    ]
    graph = helper.make_graph(
        nodes, "unsupported",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
    )
    return make_model(graph, DEFAULT_OPSET), {"x": randn(rng, [2, 4])}


# --------------------------------------------------------------------------- #
# 5. ops/<case>
# --------------------------------------------------------------------------- #

OPS: list[tuple[str, callable]] = []  # (case name, builder), filled by register_all_cases()


class Case:
    """A tiny model: graph inputs (fed), initializers (constants), nodes, outputs."""

    def __init__(self, name: str, opset: int = DEFAULT_OPSET) -> None:
        self.name = name
        self.opset = opset
        self.rng = rng_for("ops/" + name)
        self.inputs: dict[str, np.ndarray] = {}
        self.inits: dict[str, np.ndarray] = {}
        self.nodes: list[onnx.NodeProto] = []
        self.outputs: list[tuple[str, type]] = []
        self.extra_opsets: list[tuple[str, int]] = []

    def input(self, name, arr):
        self.inputs[name] = np.asarray(arr)
        return name

    def init(self, name, arr):
        self.inits[name] = np.asarray(arr)
        return name

    def node(self, op, ins, outs, **attrs):
        self.nodes.append(helper.make_node(op, ins, outs, name=f"{op.lower()}_{len(self.nodes)}", **attrs))

    def output(self, name, dtype=np.float32):
        self.outputs.append((name, dtype))

    def randn(self, shape, scale=1.0):
        return randn(self.rng, shape, scale)

    def uniform(self, lo, hi, shape):
        return self.rng.uniform(lo, hi, shape).astype(np.float32)

    def build(self, out_shapes=None) -> onnx.ModelProto:
        vis = [helper.make_tensor_value_info(k, tensor_type(v.dtype), list(v.shape))
               for k, v in self.inputs.items()]
        outs = [helper.make_tensor_value_info(n, tensor_type(dt),
                                              None if out_shapes is None else out_shapes[i])
                for i, (n, dt) in enumerate(self.outputs)]
        inits = [numpy_helper.from_array(v, k) for k, v in self.inits.items()]
        graph = helper.make_graph(self.nodes, self.name, vis, outs, initializer=inits)
        return make_model(graph, self.opset, self.extra_opsets)

    def finish(self):
        # First pass: outputs declared by type only; onnxruntime tells us their shapes.
        first = run_ort(self.build(), self.inputs)
        return self.build([list(o.shape) for o in first]), self.inputs


def single(name, op, inputs, inits=None, opset=DEFAULT_OPSET, out_dtype=np.float32,
           n_out=1, **attrs):
    """One-op case: inputs/inits are (name, array) pairs, in the op's input order."""
    c = Case(name, opset)
    ins = []
    for nm, arr in inputs:
        if nm == "":
            ins.append("")
        elif inits and nm in inits:
            ins.append(c.init(nm, arr))
        else:
            ins.append(c.input(nm, arr))
    outs = ["y"] if n_out == 1 else [f"y{i}" for i in range(n_out)]
    c.node(op, ins, outs, **attrs)
    for o in outs:
        c.output(o, out_dtype)
    return c.finish()


def register_all_cases():
    R = lambda name: rng_for("ops/" + name)  # noqa: E731

    # ---- elementwise binary, with broadcasting -------------------------------
    def binary(name, op, sa, sb, b_nonzero=False, b_const=False):
        r = R(name)
        a = randn(r, sa)
        bb = randn(r, sb)
        if b_nonzero:
            bb = (np.sign(bb) + (bb == 0)) * r.uniform(0.5, 2.0, sb).astype(np.float32)
        inits = {"b"} if b_const else None
        return single(name, op, [("a", a), ("b", bb)], inits)

    for nm, op, sa, sb, kw in [
        ("add_same", "Add", [2, 3], [2, 3], {}),
        ("add_bcast_last", "Add", [2, 3, 4], [4], {}),
        ("add_bcast_col", "Add", [2, 3, 4], [3, 1], {}),
        ("add_const_rhs", "Add", [2, 3, 4], [3, 4], {"b_const": True}),
        ("add_bcast_both", "Add", [2, 1, 4], [3, 1], {}),
        ("sub_bcast_last", "Sub", [2, 3, 4], [4], {}),
        ("sub_bcast_col", "Sub", [2, 3, 4], [3, 1], {}),
        ("mul_bcast_last", "Mul", [2, 3, 4], [4], {}),
        ("mul_bcast_both", "Mul", [2, 1, 4], [3, 1], {}),
        ("div_bcast_last", "Div", [2, 3, 4], [4], {"b_nonzero": True}),
        ("div_bcast_col", "Div", [2, 3, 4], [3, 1], {"b_nonzero": True}),
        ("div_scalar_const", "Div", [2, 3, 4], [], {"b_nonzero": True, "b_const": True}),
    ]:
        OPS.append((nm, (lambda nm=nm, op=op, sa=sa, sb=sb, kw=kw: binary(nm, op, sa, sb, **kw))))

    # ---- Pow -----------------------------------------------------------------
    def pow_case(name, base, exponent):
        return single(name, "Pow", [("x", base), ("e", f32(exponent))], {"e"})

    OPS.append(("pow_2", lambda: pow_case("pow_2", randn(R("pow_2"), [2, 3, 4]), 2.0)))
    OPS.append(("pow_0_5", lambda: pow_case(
        "pow_0_5", R("pow_0_5").uniform(0.1, 4.0, [2, 3, 4]).astype(np.float32), 0.5)))
    OPS.append(("pow_3_negative_base", lambda: pow_case(
        "pow_3_negative_base", -R("pow_3_negative_base").uniform(0.2, 2.0, [2, 3, 4]).astype(np.float32), 3.0)))
    OPS.append(("pow_tensor_exponent", lambda: single(
        "pow_tensor_exponent", "Pow",
        [("x", R("pow_tensor_exponent").uniform(0.2, 2.0, [2, 3]).astype(np.float32)),
         ("e", f32([1.0, 2.0, 0.5]))])))

    # ---- elementwise unary -----------------------------------------------------
    def unary(name, op, x, opset=DEFAULT_OPSET, **attrs):
        return single(name, op, [("x", x)], opset=opset, **attrs)

    def pos(name, shape):
        return R(name).uniform(0.1, 4.0, shape).astype(np.float32)

    def nz(name, shape):
        r = R(name)
        return (np.where(r.random(shape) < 0.5, -1.0, 1.0) * r.uniform(0.25, 3.0, shape)).astype(np.float32)

    for nm, op, mk in [
        ("sqrt", "Sqrt", lambda n: pos(n, [2, 3, 4])),
        ("log", "Log", lambda n: pos(n, [2, 3, 4])),
        ("reciprocal", "Reciprocal", lambda n: nz(n, [2, 3, 4])),
        ("neg", "Neg", lambda n: randn(R(n), [2, 3, 4])),
        ("exp", "Exp", lambda n: randn(R(n), [2, 3, 4])),
        ("erf", "Erf", lambda n: randn(R(n), [2, 3, 4], 1.5)),
        ("tanh", "Tanh", lambda n: randn(R(n), [2, 3, 4], 2.0)),
        ("sigmoid", "Sigmoid", lambda n: randn(R(n), [2, 3, 4], 3.0)),
        ("relu", "Relu", lambda n: randn(R(n), [2, 3, 4])),
        ("identity", "Identity", lambda n: randn(R(n), [2, 3, 4])),
    ]:
        OPS.append((nm, (lambda nm=nm, op=op, mk=mk: unary(nm, op, mk(nm)))))

    OPS.append(("gelu_none", lambda: unary("gelu_none", "Gelu", randn(R("gelu_none"), [2, 3, 8], 2.0),
                                            opset=20)))
    OPS.append(("gelu_tanh", lambda: unary("gelu_tanh", "Gelu", randn(R("gelu_tanh"), [2, 3, 8], 2.0),
                                            opset=20, approximate="tanh")))

    # ---- Softmax -------------------------------------------------------------
    OPS.append(("softmax_axis_last", lambda: unary(
        "softmax_axis_last", "Softmax", randn(R("softmax_axis_last"), [2, 3, 5], 2.0), axis=-1)))
    OPS.append(("softmax_axis_1", lambda: unary(
        "softmax_axis_1", "Softmax", randn(R("softmax_axis_1"), [2, 3, 5], 2.0), axis=1)))
    OPS.append(("softmax_2d_default", lambda: unary(
        "softmax_2d_default", "Softmax", randn(R("softmax_2d_default"), [4, 6], 2.0))))

    # ---- LayerNormalization --------------------------------------------------
    def layernorm(name, shape, axis, with_bias=True, eps=1e-5):
        r = R(name)
        x = randn(r, shape, 2.0) + 0.5
        norm_shape = shape[axis:]
        ins = [("x", x), ("scale", 1.0 + randn(r, norm_shape, 0.2))]
        if with_bias:
            ins.append(("bias", randn(r, norm_shape, 0.2)))
        return single(name, "LayerNormalization", ins, {"scale", "bias"}, axis=axis, epsilon=eps)

    OPS.append(("layernorm_axis_last", lambda: layernorm("layernorm_axis_last", [2, 3, 8], -1)))
    OPS.append(("layernorm_axis_m2", lambda: layernorm("layernorm_axis_m2", [2, 3, 4], -2)))
    OPS.append(("layernorm_no_bias_eps", lambda: layernorm(
        "layernorm_no_bias_eps", [4, 16], -1, with_bias=False, eps=1e-3)))

    # ---- Reductions (opset 18: axes is an input) ------------------------------
    def reduce(name, op, axes, keepdims):
        r = R(name)
        ins = [("x", randn(r, [2, 3, 4]))]
        if axes is not None:
            ins.append(("axes", i64(axes)))
        return single(name, op, ins, {"axes"}, opset=18, keepdims=keepdims)

    for op in ("ReduceMean", "ReduceSum", "ReduceMax"):
        base = op.lower()
        for suffix, axes, keep in [("axes1_keepdims1", [1], 1), ("axes0_m1_keepdims0", [0, -1], 0),
                                   ("all_keepdims0", None, 0), ("all_keepdims1", None, 1)]:
            nm = f"{base}_{suffix}"
            OPS.append((nm, (lambda nm=nm, op=op, axes=axes, keep=keep: reduce(nm, op, axes, keep))))

    # ---- Reshape / Transpose / Flatten / (Un)Squeeze / Expand ---------------------
    def with_const(name, op, x, const_name, const, opset=DEFAULT_OPSET, **attrs):
        return single(name, op, [("x", x), (const_name, const)], {const_name}, opset=opset, **attrs)

    for nm, shape in [("reshape_0_m1", [0, -1]), ("reshape_0_2_m1", [0, 2, -1]),
                      ("reshape_m1_4", [-1, 4]), ("reshape_full", [4, 6])]:
        OPS.append((nm, (lambda nm=nm, shape=shape: with_const(
            nm, "Reshape", randn(R(nm), [2, 3, 4]), "shape", i64(shape)))))

    OPS.append(("transpose_0213", lambda: unary(
        "transpose_0213", "Transpose", randn(R("transpose_0213"), [2, 3, 4, 5]), perm=[0, 2, 1, 3])))
    OPS.append(("transpose_201", lambda: unary(
        "transpose_201", "Transpose", randn(R("transpose_201"), [2, 3, 4]), perm=[2, 0, 1])))
    OPS.append(("transpose_default", lambda: unary(
        "transpose_default", "Transpose", randn(R("transpose_default"), [2, 3, 4]))))

    OPS.append(("flatten_axis2", lambda: unary(
        "flatten_axis2", "Flatten", randn(R("flatten_axis2"), [2, 3, 4, 5]), axis=2)))
    OPS.append(("flatten_default", lambda: unary(
        "flatten_default", "Flatten", randn(R("flatten_default"), [2, 3, 4]))))
    OPS.append(("flatten_axis0", lambda: unary(
        "flatten_axis0", "Flatten", randn(R("flatten_axis0"), [2, 3]), axis=0)))

    OPS.append(("unsqueeze_0_3", lambda: with_const(
        "unsqueeze_0_3", "Unsqueeze", randn(R("unsqueeze_0_3"), [2, 3]), "axes", i64([0, 3]))))
    OPS.append(("unsqueeze_m1", lambda: with_const(
        "unsqueeze_m1", "Unsqueeze", randn(R("unsqueeze_m1"), [2, 3]), "axes", i64([-1]))))
    OPS.append(("squeeze_axes", lambda: with_const(
        "squeeze_axes", "Squeeze", randn(R("squeeze_axes"), [2, 1, 3, 1]), "axes", i64([1]))))
    OPS.append(("squeeze_all", lambda: unary(
        "squeeze_all", "Squeeze", randn(R("squeeze_all"), [1, 3, 1, 2]))))

    OPS.append(("expand_col", lambda: with_const(
        "expand_col", "Expand", randn(R("expand_col"), [3, 1]), "shape", i64([2, 3, 4]))))
    OPS.append(("expand_rank_up", lambda: with_const(
        "expand_rank_up", "Expand", randn(R("expand_rank_up"), [4]), "shape", i64([2, 1, 4]))))
    OPS.append(("expand_shape_ones", lambda: with_const(
        "expand_shape_ones", "Expand", randn(R("expand_shape_ones"), [3, 1]), "shape", i64([1, 4]))))

    # ---- Gather --------------------------------------------------------------
    OPS.append(("gather_axis0_neg_index", lambda: single(
        "gather_axis0_neg_index", "Gather",
        [("data", randn(R("gather_axis0_neg_index"), [10, 4])), ("indices", i64([[0, -1, 3], [9, 2, -4]]))],
        {"data"}, axis=0)))
    OPS.append(("gather_axis1", lambda: single(
        "gather_axis1", "Gather",
        [("data", randn(R("gather_axis1"), [3, 5])), ("indices", i64([4, 0, -2]))],
        {"indices"}, axis=1)))
    OPS.append(("gather_scalar_index", lambda: single(
        "gather_scalar_index", "Gather",
        [("data", randn(R("gather_scalar_index"), [3, 5])), ("indices", i64(1))],
        {"indices"}, axis=0)))

    # ---- Slice ---------------------------------------------------------------
    def slice_case(name, shape, starts, ends, axes=None, steps=None):
        r = R(name)
        ins = [("x", randn(r, shape)), ("starts", i64(starts)), ("ends", i64(ends))]
        if axes is not None:
            ins.append(("axes", i64(axes)))
        if steps is not None:
            ins.append(("steps", i64(steps)))
        return single(name, "Slice", ins, {"starts", "ends", "axes", "steps"})

    INT64_MAX = np.iinfo(np.int64).max
    INT64_MIN = np.iinfo(np.int64).min
    OPS.append(("slice_neg_starts", lambda: slice_case(
        "slice_neg_starts", [4, 6], [-3], [INT64_MAX], [1])))
    OPS.append(("slice_steps_2", lambda: slice_case(
        "slice_steps_2", [5, 7], [0, 1], [5, 7], [0, 1], [2, 2])))
    OPS.append(("slice_step_m1", lambda: slice_case(
        "slice_step_m1", [4, 5], [-1], [INT64_MIN], [0], [-1])))
    OPS.append(("slice_step_m2_axis1", lambda: slice_case(
        "slice_step_m2_axis1", [3, 8], [6], [0], [1], [-2])))
    OPS.append(("slice_no_axes", lambda: slice_case(
        "slice_no_axes", [4, 6, 3], [1, 2], [3, -1])))

    # ---- Concat / Split --------------------------------------------------------
    def concat_case():
        c = Case("concat_axis1")
        r = c.rng
        c.input("a", randn(r, [2, 1, 3]))
        c.input("b", randn(r, [2, 2, 3]))
        c.input("c", randn(r, [2, 3, 3]))
        c.node("Concat", ["a", "b", "c"], ["y"], axis=1)
        c.output("y")
        return c.finish()

    OPS.append(("concat_axis1", concat_case))
    OPS.append(("concat_axis_m1_const", lambda: single(
        "concat_axis_m1_const", "Concat",
        [("a", randn(R("concat_axis_m1_const"), [2, 3])), ("b", f32([[1.0], [2.0]]))], {"b"}, axis=-1)))

    OPS.append(("split_sizes", lambda: single(
        "split_sizes", "Split", [("x", randn(R("split_sizes"), [2, 6])), ("split", i64([1, 2, 3]))],
        {"split"}, n_out=3, axis=1)))
    OPS.append(("split_equal", lambda: single(
        "split_equal", "Split", [("x", randn(R("split_equal"), [6, 2]))], n_out=3, axis=0)))
    OPS.append(("split_num_outputs", lambda: single(
        "split_num_outputs", "Split", [("x", randn(R("split_num_outputs"), [2, 6, 2]))],
        opset=18, n_out=3, axis=1, num_outputs=3)))
    OPS.append(("split_num_outputs_uneven", lambda: single(
        "split_num_outputs_uneven", "Split", [("x", randn(R("split_num_outputs_uneven"), [2, 7]))],
        opset=18, n_out=3, axis=-1, num_outputs=3)))

    # ---- Where / Equal / Cast ----------------------------------------------------
    def where_case():
        c = Case("where_bool")
        r = c.rng
        c.input("cond", r.random([2, 3, 4]) < 0.5)
        c.input("a", randn(r, [2, 3, 4]))
        c.input("b", randn(r, [4]))
        c.node("Where", ["cond", "a", "b"], ["y"])
        c.output("y")
        return c.finish()

    OPS.append(("where_bool", where_case))

    def equal_case():
        c = Case("equal_float")
        r = c.rng
        a = r.integers(-3, 4, [3, 4]).astype(np.float32)
        b = a.copy()
        flip = r.random([3, 4]) < 0.5
        b[flip] += r.integers(1, 3, int(flip.sum())).astype(np.float32)
        c.input("a", a)
        c.input("b", b)
        c.node("Equal", ["a", "b"], ["y"])
        c.output("y", np.bool_)
        return c.finish()

    OPS.append(("equal_float", equal_case))
    OPS.append(("equal_int64_bcast", lambda: single(
        "equal_int64_bcast", "Equal",
        [("a", R("equal_int64_bcast").integers(0, 3, [2, 3]).astype(np.int64)), ("b", i64([0, 1, 2]))],
        {"b"}, out_dtype=np.bool_)))

    def cast_f2i():
        c = Case("cast_float_to_int64")
        x = c.randn([2, 5], 4.0)
        x[0, :] = [0.0, -0.0, 2.75, -2.75, 7.0]
        c.input("x", x)
        c.node("Cast", ["x"], ["y"], to=TensorProto.INT64)
        c.output("y", np.int64)
        return c.finish()

    OPS.append(("cast_float_to_int64", cast_f2i))
    OPS.append(("cast_int64_to_float", lambda: single(
        "cast_int64_to_float", "Cast", [("x", R("cast_int64_to_float").integers(-1000, 1000, [3, 4]).astype(np.int64))],
        to=TensorProto.FLOAT)))
    OPS.append(("cast_bool_to_float", lambda: single(
        "cast_bool_to_float", "Cast", [("x", R("cast_bool_to_float").random([2, 3]) < 0.5)],
        to=TensorProto.FLOAT)))

    # ---- Shape / ConstantOfShape / Range ------------------------------------------
    def shape_cos_range():
        c = Case("shape_constantofshape_range")
        c.input("x", c.randn([2, 3, 4]))
        c.init("idx2", i64(2))
        c.init("zero", i64(0))
        c.init("one", i64(1))
        c.node("Shape", ["x"], ["s"])
        c.node("ConstantOfShape", ["s"], ["filled"],
               value=numpy_helper.from_array(f32([1.5]), "value"))
        c.node("Gather", ["s", "idx2"], ["n"], axis=0)
        c.node("Range", ["zero", "n", "one"], ["r"])
        c.node("Cast", ["r"], ["rf"], to=TensorProto.FLOAT)
        c.node("Add", ["x", "filled"], ["t"])
        c.node("Add", ["t", "rf"], ["y"])
        c.output("y")
        return c.finish()

    OPS.append(("shape_constantofshape_range", shape_cos_range))
    OPS.append(("shape_output", lambda: single(
        "shape_output", "Shape", [("x", randn(R("shape_output"), [2, 3, 4]))], out_dtype=np.int64)))
    OPS.append(("shape_start_end", lambda: single(
        "shape_start_end", "Shape", [("x", randn(R("shape_start_end"), [2, 3, 4, 5]))],
        out_dtype=np.int64, start=1, end=-1)))

    def cos_int64():
        c = Case("constantofshape_int64")
        c.init("shape", i64([2, 3]))
        c.input("x", R("constantofshape_int64").integers(-5, 5, [2, 3]).astype(np.int64))
        c.node("ConstantOfShape", ["shape"], ["k"], value=numpy_helper.from_array(i64([7]), "value"))
        c.node("Add", ["x", "k"], ["y"])
        c.output("y", np.int64)
        return c.finish()

    OPS.append(("constantofshape_int64", cos_int64))

    def range_float():
        c = Case("range_float")
        c.input("x", c.randn([6]))
        c.init("start", f32(-1.0))
        c.init("limit", f32(2.0))
        c.init("delta", f32(0.5))
        c.node("Range", ["start", "limit", "delta"], ["r"])
        c.node("Add", ["x", "r"], ["y"])
        c.output("y")
        return c.finish()

    OPS.append(("range_float", range_float))

    # ---- Trilu ---------------------------------------------------------------
    def trilu(name, shape, upper, k):
        ins = [("x", randn(R(name), shape))]
        if k is not None:
            ins.append(("k", i64(k)))
        return single(name, "Trilu", ins, {"k"}, upper=upper)

    OPS.append(("trilu_upper_k1", lambda: trilu("trilu_upper_k1", [3, 4], 1, 1)))
    OPS.append(("trilu_upper_default", lambda: trilu("trilu_upper_default", [2, 4, 4], 1, None)))
    OPS.append(("trilu_lower_k0", lambda: trilu("trilu_lower_k0", [4, 3], 0, None)))
    OPS.append(("trilu_lower_km1", lambda: trilu("trilu_lower_km1", [2, 4, 5], 0, -1)))

    # ---- Conv ----------------------------------------------------------------
    def conv(name, xshape, wshape, bias=True, **attrs):
        r = R(name)
        ins = [("x", randn(r, xshape)), ("w", randn(r, wshape, 0.3))]
        if bias:
            ins.append(("b", randn(r, [wshape[0]], 0.1)))
        return single(name, "Conv", ins, {"w", "b"}, **attrs)

    OPS.append(("conv2d_basic", lambda: conv("conv2d_basic", [1, 2, 6, 6], [3, 2, 3, 3])))
    OPS.append(("conv2d_pads_strides", lambda: conv(
        "conv2d_pads_strides", [2, 3, 7, 7], [4, 3, 3, 3], pads=[1, 1, 1, 1], strides=[2, 2])))
    OPS.append(("conv2d_dilations", lambda: conv(
        "conv2d_dilations", [1, 2, 8, 8], [3, 2, 3, 3], pads=[2, 2, 2, 2], dilations=[2, 2])))
    OPS.append(("conv2d_group2", lambda: conv(
        "conv2d_group2", [1, 4, 5, 5], [6, 2, 3, 3], pads=[1, 1, 1, 1], group=2)))
    OPS.append(("conv2d_asym_pads_nobias", lambda: conv(
        "conv2d_asym_pads_nobias", [1, 2, 5, 6], [2, 2, 2, 3], bias=False,
        pads=[0, 1, 1, 0], strides=[1, 2])))
    OPS.append(("conv2d_depthwise", lambda: conv(
        "conv2d_depthwise", [1, 4, 6, 6], [4, 1, 3, 3], pads=[1, 1, 1, 1], group=4)))
    OPS.append(("conv2d_1x1", lambda: conv(
        "conv2d_1x1", [1, 8, 4, 4], [5, 8, 1, 1], kernel_shape=[1, 1])))
    OPS.append(("conv2d_autopad_same_upper", lambda: conv(
        "conv2d_autopad_same_upper", [1, 2, 5, 5], [3, 2, 3, 3], auto_pad="SAME_UPPER", strides=[2, 2])))
    OPS.append(("conv1d", lambda: conv(
        "conv1d", [1, 2, 10], [4, 2, 3], pads=[1, 1], strides=[2], kernel_shape=[3])))

    # ---- Pooling / BatchNorm ------------------------------------------------------
    def pool(name, op, xshape, **attrs):
        return single(name, op, [("x", randn(R(name), xshape))], **attrs)

    OPS.append(("maxpool_2x2", lambda: pool(
        "maxpool_2x2", "MaxPool", [1, 2, 6, 6], kernel_shape=[2, 2], strides=[2, 2])))
    OPS.append(("maxpool_pads_strides", lambda: pool(
        "maxpool_pads_strides", "MaxPool", [1, 2, 7, 7], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
        strides=[2, 2])))
    OPS.append(("maxpool_stride1_asym_pads", lambda: pool(
        "maxpool_stride1_asym_pads", "MaxPool", [2, 1, 5, 5], kernel_shape=[2, 3], pads=[0, 1, 1, 1])))
    OPS.append(("maxpool_ceil_mode", lambda: pool(
        "maxpool_ceil_mode", "MaxPool", [1, 1, 7, 7], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)))
    OPS.append(("avgpool_2x2", lambda: pool(
        "avgpool_2x2", "AveragePool", [1, 2, 6, 6], kernel_shape=[2, 2], strides=[2, 2])))
    OPS.append(("avgpool_pads_count_include_pad0", lambda: pool(
        "avgpool_pads_count_include_pad0", "AveragePool", [1, 2, 7, 7], kernel_shape=[3, 3],
        pads=[1, 1, 1, 1], strides=[2, 2], count_include_pad=0)))
    OPS.append(("avgpool_pads_count_include_pad1", lambda: pool(
        "avgpool_pads_count_include_pad1", "AveragePool", [1, 2, 7, 7], kernel_shape=[3, 3],
        pads=[1, 1, 1, 1], strides=[2, 2], count_include_pad=1)))
    OPS.append(("globalavgpool", lambda: pool("globalavgpool", "GlobalAveragePool", [2, 3, 5, 4])))

    def batchnorm():
        name = "batchnorm"
        r = R(name)
        ins = [("x", randn(r, [2, 3, 4, 4])), ("scale", 1.0 + randn(r, [3], 0.2)),
               ("bias", randn(r, [3], 0.2)), ("mean", randn(r, [3], 0.3)),
               ("var", r.uniform(0.3, 2.0, [3]).astype(np.float32))]
        return single(name, "BatchNormalization", ins, {"scale", "bias", "mean", "var"}, epsilon=1e-3)

    OPS.append(("batchnorm", batchnorm))

    # ---- Clip ----------------------------------------------------------------
    OPS.append(("clip_min_only", lambda: single(
        "clip_min_only", "Clip", [("x", randn(R("clip_min_only"), [3, 4])), ("min", f32(-0.2))], {"min"})))
    OPS.append(("clip_max_only", lambda: single(
        "clip_max_only", "Clip", [("x", randn(R("clip_max_only"), [3, 4])), ("", None), ("max", f32(0.3))],
        {"max"})))
    OPS.append(("clip_min_max", lambda: single(
        "clip_min_max", "Clip", [("x", randn(R("clip_min_max"), [3, 4])), ("min", f32(-0.5)),
                                 ("max", f32(0.5))], {"min", "max"})))

    # ---- MatMul --------------------------------------------------------------
    def matmul(name, sa, sb, b_const=False):
        r = R(name)
        return single(name, "MatMul", [("a", randn(r, sa)), ("b", randn(r, sb))],
                      {"b"} if b_const else None)

    OPS.append(("matmul_2d", lambda: matmul("matmul_2d", [3, 4], [4, 5])))
    OPS.append(("matmul_3d_2d_const", lambda: matmul("matmul_3d_2d_const", [2, 3, 4], [4, 5], True)))
    OPS.append(("matmul_4d_bcast", lambda: matmul("matmul_4d_bcast", [2, 1, 3, 4], [1, 3, 4, 5])))
    OPS.append(("matmul_1d_2d", lambda: matmul("matmul_1d_2d", [4], [4, 5])))
    OPS.append(("matmul_2d_1d", lambda: matmul("matmul_2d_1d", [3, 4], [4])))
    OPS.append(("matmul_3d_3d", lambda: matmul("matmul_3d_3d", [2, 3, 4], [2, 4, 5])))

    # ---- Gemm ----------------------------------------------------------------
    def gemm(name, sa, sb, sc, **attrs):
        r = R(name)
        ins = [("a", randn(r, sa)), ("b", randn(r, sb, 0.5))]
        if sc is not None:
            ins.append(("c", randn(r, sc, 0.5)))
        return single(name, "Gemm", ins, {"b", "c"}, **attrs)

    OPS.append(("gemm_basic_c_row", lambda: gemm("gemm_basic_c_row", [3, 4], [4, 5], [5])))
    OPS.append(("gemm_transA", lambda: gemm("gemm_transA", [4, 3], [4, 5], [5], transA=1)))
    OPS.append(("gemm_transB", lambda: gemm("gemm_transB", [3, 4], [5, 4], [5], transB=1)))
    OPS.append(("gemm_alpha_beta_full_c", lambda: gemm(
        "gemm_alpha_beta_full_c", [3, 4], [4, 5], [3, 5], alpha=0.5, beta=2.0)))
    OPS.append(("gemm_c_col_bcast", lambda: gemm("gemm_c_col_bcast", [3, 4], [4, 5], [3, 1], beta=0.5)))
    OPS.append(("gemm_both_trans_c_scalar", lambda: gemm(
        "gemm_both_trans_c_scalar", [4, 3], [5, 4], [], transA=1, transB=1, alpha=1.5)))
    OPS.append(("gemm_no_c", lambda: gemm("gemm_no_c", [3, 4], [4, 5], None, alpha=2.0)))


    register_more_elementwise_and_norm_cases(R, single, unary_fn=None)
    register_indexing_and_resampling_cases(R, single)


def register_more_elementwise_and_norm_cases(R, single, unary_fn=None):
    """Cases for the second batch of ops (issue #3): more unary/binary
    elementwise ops, comparisons and logic, activations decomposed at
    import, and normalisations."""

    def x_of(name, shape, scale=2.0):
        return randn(R(name), shape, scale)

    def with_halves(name, shape):
        # Values that include exact .5 ties and negative zeros for rounding.
        v = randn(R(name), shape, 3.0)
        flat = v.reshape(-1)
        flat[:6] = [0.5, 1.5, 2.5, -0.5, -1.5, -2.5]
        return v

    for nm, op, mk in [
        ("abs", "Abs", lambda n: x_of(n, [2, 3, 4])),
        ("sign", "Sign", lambda n: np.concatenate([x_of(n, [20]), f32([0.0])])),
        ("floor", "Floor", lambda n: with_halves(n, [2, 3, 4])),
        ("ceil", "Ceil", lambda n: with_halves(n, [2, 3, 4])),
        ("round", "Round", lambda n: with_halves(n, [2, 3, 4])),
        ("softplus", "Softplus", lambda n: x_of(n, [2, 3, 4], 5.0)),
        ("hardswish", "HardSwish", lambda n: x_of(n, [2, 3, 4], 4.0)),
    ]:
        OPS.append((nm, (lambda nm=nm, op=op, mk=mk: single(nm, op, [("x", mk(nm))]))))

    OPS.append(("mish", lambda: single("mish", "Mish", [("x", x_of("mish", [2, 3, 4], 3.0))], opset=18)))
    OPS.append(("hardsigmoid", lambda: single(
        "hardsigmoid", "HardSigmoid", [("x", x_of("hardsigmoid", [3, 4], 4.0))], alpha=0.3, beta=0.4)))
    OPS.append(("leakyrelu", lambda: single(
        "leakyrelu", "LeakyRelu", [("x", x_of("leakyrelu", [3, 4]))], alpha=0.1)))
    OPS.append(("prelu_channel", lambda: single(
        "prelu_channel", "PRelu", [("x", x_of("prelu_channel", [2, 3, 4, 4])),
                                   ("slope", f32([[[0.1]], [[0.2]], [[-0.3]]]))], {"slope"})))
    OPS.append(("not", lambda: single(
        "not", "Not", [("x", R("not").random([3, 4]) < 0.5)], out_dtype=np.bool_)))

    def binary2(name, op, a, b, out_dtype=np.float32, **attrs):
        return single(name, op, [("a", a), ("b", b)], out_dtype=out_dtype, **attrs)

    OPS.append(("min_bcast", lambda: binary2("min_bcast", "Min", x_of("min_bcast", [2, 3, 4]),
                                             x_of("min_bcast_b", [4]))))
    OPS.append(("max_three", lambda: single("max_three", "Max", [("a", x_of("max_three", [2, 3])),
                                                                  ("b", x_of("max_three_b", [3])),
                                                                  ("c", x_of("max_three_c", [2, 1]))])))
    OPS.append(("mod_int64", lambda: binary2(
        "mod_int64", "Mod", i64([-7, -3, 0, 3, 7, 9, -9, 5]), i64([3, 3, 2, -2, -4, 4, 4, -3]),
        out_dtype=np.int64)))
    OPS.append(("mod_fmod_float", lambda: binary2(
        "mod_fmod_float", "Mod", x_of("mod_fmod_float", [3, 4], 5.0),
        (np.sign(x_of("mod_fmod_float_b", [4])) * 1.5 + 0.25).astype(np.float32), fmod=1)))
    for nm, op in [("less", "Less"), ("greater", "Greater"), ("less_or_equal", "LessOrEqual"),
                   ("greater_or_equal", "GreaterOrEqual")]:
        def cmp(nm=nm, op=op):
            a = np.round(x_of(nm, [3, 4])).astype(np.float32)
            b = np.round(x_of(nm + "_b", [4])).astype(np.float32)
            return binary2(nm, op, a, b, out_dtype=np.bool_)
        OPS.append((nm, cmp))
    OPS.append(("less_int64", lambda: binary2(
        "less_int64", "Less", i64([[1, 5, -2], [0, 7, 3]]), i64([1, 6, -3]), out_dtype=np.bool_)))
    for nm, op in [("and", "And"), ("or", "Or")]:
        OPS.append((nm, (lambda nm=nm, op=op: binary2(
            nm, op, R(nm).random([3, 4]) < 0.5, R(nm + "b").random([4]) < 0.5, out_dtype=np.bool_))))

    # ---- normalisations and log-softmax decomposed at import --------------------
    OPS.append(("logsoftmax_last", lambda: single(
        "logsoftmax_last", "LogSoftmax", [("x", x_of("logsoftmax_last", [2, 3, 5], 3.0))], axis=-1)))
    OPS.append(("logsoftmax_axis1", lambda: single(
        "logsoftmax_axis1", "LogSoftmax", [("x", x_of("logsoftmax_axis1", [2, 3, 5], 3.0))], axis=1)))

    def instnorm():
        r = R("instancenorm")
        return single("instancenorm", "InstanceNormalization",
                      [("x", randn(r, [2, 3, 4, 5])), ("scale", 1.0 + randn(r, [3], 0.2)),
                       ("bias", randn(r, [3], 0.2))], {"scale", "bias"}, epsilon=1e-4)

    OPS.append(("instancenorm", instnorm))

    def groupnorm():
        r = R("groupnorm")
        return single("groupnorm", "GroupNormalization",
                      [("x", randn(r, [2, 6, 3, 3])), ("scale", 1.0 + randn(r, [6], 0.2)),
                       ("bias", randn(r, [6], 0.2))], {"scale", "bias"}, opset=21, num_groups=3, epsilon=1e-5)

    OPS.append(("groupnorm", groupnorm))

    def rmsnorm():
        r = R("rmsnorm")
        return single("rmsnorm", "RMSNormalization",
                      [("x", randn(r, [2, 3, 8])), ("scale", 1.0 + randn(r, [8], 0.2))], {"scale"},
                      opset=23, axis=-1, epsilon=1e-5)

    OPS.append(("rmsnorm", rmsnorm))

def register_indexing_and_resampling_cases(R, single):
    """Cases for issue #3 batch 2: CumSum, ArgMax/ArgMin, TopK,
    GatherElements, GatherND, ScatterND, Pad, DepthToSpace/SpaceToDepth,
    ConvTranspose, Resize and Einsum, with their attribute variants."""

    def x_of(name, shape, scale=1.0):
        return randn(R(name), shape, scale)

    def ties(name, shape):
        # Small integers as floats, so that ties are common.
        return np.round(randn(R(name), shape, 1.5)).astype(np.float32)

    # ---- CumSum -----------------------------------------------------------------
    def cumsum(name, x, axis, **attrs):
        return single(name, "CumSum", [("x", x), ("axis", axis)], {"axis"}, out_dtype=x.dtype.type, **attrs)

    OPS.append(("cumsum_axis1", lambda: cumsum("cumsum_axis1", x_of("cumsum_axis1", [2, 3, 4]), i64(1))))
    OPS.append(("cumsum_exclusive_last", lambda: cumsum(
        "cumsum_exclusive_last", x_of("cumsum_exclusive_last", [2, 5]), i64(-1), exclusive=1)))
    OPS.append(("cumsum_reverse_axis0", lambda: cumsum(
        "cumsum_reverse_axis0", x_of("cumsum_reverse_axis0", [4, 3]), i64(0), reverse=1)))
    OPS.append(("cumsum_exclusive_reverse", lambda: cumsum(
        "cumsum_exclusive_reverse", x_of("cumsum_exclusive_reverse", [2, 4, 3]), i64(1), exclusive=1, reverse=1)))
    OPS.append(("cumsum_int64_axis_int32", lambda: cumsum(
        "cumsum_int64_axis_int32", R("cumsum_int64_axis_int32").integers(-50, 50, [3, 4]).astype(np.int64),
        np.asarray(1, dtype=np.int32))))

    # ---- ArgMax / ArgMin (output int64) -------------------------------------------
    def arg(name, op, x, **attrs):
        return single(name, op, [("x", x)], out_dtype=np.int64, **attrs)

    OPS.append(("argmax_axis1_keepdims", lambda: arg(
        "argmax_axis1_keepdims", "ArgMax", x_of("argmax_axis1_keepdims", [2, 3, 4]), axis=1)))
    OPS.append(("argmax_last_axis_nokeep", lambda: arg(
        "argmax_last_axis_nokeep", "ArgMax", x_of("argmax_last_axis_nokeep", [3, 5]), axis=-1, keepdims=0)))
    OPS.append(("argmax_ties_select_last", lambda: arg(
        "argmax_ties_select_last", "ArgMax", ties("argmax_ties_select_last", [4, 6]), axis=1,
        select_last_index=1)))
    OPS.append(("argmax_ties_first", lambda: arg(
        "argmax_ties_first", "ArgMax", ties("argmax_ties_first", [4, 6]), axis=1, keepdims=0)))
    OPS.append(("argmin_axis0_nokeep", lambda: arg(
        "argmin_axis0_nokeep", "ArgMin", x_of("argmin_axis0_nokeep", [4, 3, 2]), axis=0, keepdims=0)))
    OPS.append(("argmin_ties_select_last", lambda: arg(
        "argmin_ties_select_last", "ArgMin", ties("argmin_ties_select_last", [3, 7]), axis=-1,
        select_last_index=1)))
    OPS.append(("argmax_int64", lambda: arg(
        "argmax_int64", "ArgMax", R("argmax_int64").integers(-5, 5, [3, 4]).astype(np.int64), axis=0)))

    # ---- TopK (values and indices) ------------------------------------------------
    def topk(name, x, k, **attrs):
        c = Case(name)
        c.input("x", x)
        c.init("k", i64([k]))
        c.node("TopK", ["x", "k"], ["values", "indices"], **attrs)
        c.output("values", x.dtype.type)
        c.output("indices", np.int64)
        return c.finish()

    OPS.append(("topk_largest_last_axis", lambda: topk(
        "topk_largest_last_axis", x_of("topk_largest_last_axis", [3, 6]), 3)))
    OPS.append(("topk_smallest_axis0", lambda: topk(
        "topk_smallest_axis0", x_of("topk_smallest_axis0", [5, 4]), 2, axis=0, largest=0)))
    OPS.append(("topk_ties_full_sort", lambda: topk(
        "topk_ties_full_sort", ties("topk_ties_full_sort", [2, 8]), 8)))
    OPS.append(("topk_ties_smallest", lambda: topk(
        "topk_ties_smallest", ties("topk_ties_smallest", [2, 3, 7]), 4, axis=2, largest=0)))
    OPS.append(("topk_middle_axis", lambda: topk(
        "topk_middle_axis", x_of("topk_middle_axis", [2, 5, 3]), 2, axis=1)))
    OPS.append(("topk_int64", lambda: topk(
        "topk_int64", R("topk_int64").integers(-20, 20, [2, 6]).astype(np.int64), 3)))

    # ---- GatherElements ----------------------------------------------------------------
    OPS.append(("gather_elements_axis0_const", lambda: single(
        "gather_elements_axis0_const", "GatherElements",
        [("data", x_of("gather_elements_axis0_const", [3, 4])), ("indices", i64([[0, 2, -1, 1], [2, -3, 1, 0]]))],
        {"indices"}, axis=0)))
    OPS.append(("gather_elements_axis1_runtime", lambda: single(
        "gather_elements_axis1_runtime", "GatherElements",
        [("data", x_of("gather_elements_axis1_runtime", [3, 4])),
         ("indices", R("gather_elements_axis1_runtime_i").integers(-4, 4, [3, 6]).astype(np.int64))], axis=1)))
    OPS.append(("gather_elements_3d_axis_m1", lambda: single(
        "gather_elements_3d_axis_m1", "GatherElements",
        [("data", x_of("gather_elements_3d_axis_m1", [2, 3, 5])),
         ("indices", R("gather_elements_3d_axis_m1_i").integers(0, 5, [2, 2, 3]).astype(np.int32))], axis=-1)))

    # ---- GatherND ---------------------------------------------------------------------------
    OPS.append(("gathernd_rows", lambda: single(
        "gathernd_rows", "GatherND", [("data", x_of("gathernd_rows", [4, 3])), ("indices", i64([[1], [3], [0]]))],
        {"indices"})))
    OPS.append(("gathernd_elements_runtime", lambda: single(
        "gathernd_elements_runtime", "GatherND",
        [("data", x_of("gathernd_elements_runtime", [2, 3, 4])), ("indices", i64([[1, 2, 3], [0, -1, 0], [1, 0, -4]]))])))
    OPS.append(("gathernd_pairs_3d_indices", lambda: single(
        "gathernd_pairs_3d_indices", "GatherND",
        [("data", x_of("gathernd_pairs_3d_indices", [2, 3, 4])), ("indices", i64([[[0, 1], [1, 2]], [[1, 0], [0, 0]]]))],
        {"indices"})))
    OPS.append(("gathernd_batch_dims1", lambda: single(
        "gathernd_batch_dims1", "GatherND",
        [("data", x_of("gathernd_batch_dims1", [2, 3, 4])), ("indices", i64([[[2], [0]], [[1], [1]]]))],
        {"indices"}, batch_dims=1)))

    # ---- ScatterND ----------------------------------------------------------------------------
    def scatter(name, data, idx, upd, idx_const=True, opset=DEFAULT_OPSET, **attrs):
        return single(name, "ScatterND", [("data", data), ("indices", idx), ("updates", upd)],
                      {"indices"} if idx_const else None, opset=opset, out_dtype=data.dtype.type, **attrs)

    OPS.append(("scatternd_rows_const_indices", lambda: scatter(
        "scatternd_rows_const_indices", x_of("scatternd_rows_const_indices", [4, 3]), i64([[3], [1]]),
        x_of("scatternd_rows_const_indices_u", [2, 3]))))
    OPS.append(("scatternd_elements_runtime_indices", lambda: scatter(
        "scatternd_elements_runtime_indices", x_of("scatternd_elements_runtime_indices", [3, 4]),
        i64([[0, 1], [2, 3], [1, -1]]), x_of("scatternd_elements_runtime_indices_u", [3]), idx_const=False)))
    OPS.append(("scatternd_add_duplicates", lambda: scatter(
        "scatternd_add_duplicates", x_of("scatternd_add_duplicates", [5, 2]), i64([[1], [4], [1]]),
        x_of("scatternd_add_duplicates_u", [3, 2]), opset=16, reduction="add")))
    OPS.append(("scatternd_mul", lambda: scatter(
        "scatternd_mul", x_of("scatternd_mul", [2, 3, 2]), i64([[0, 2], [1, 0], [0, 2]]),
        x_of("scatternd_mul_u", [3, 2]), opset=16, reduction="mul")))
    OPS.append(("scatternd_max_int64", lambda: scatter(
        "scatternd_max_int64", R("scatternd_max_int64").integers(-9, 9, [6]).astype(np.int64), i64([[2], [5], [2]]),
        i64([3, -4, 8]), opset=18, reduction="max")))
    OPS.append(("scatternd_min", lambda: scatter(
        "scatternd_min", x_of("scatternd_min", [3, 3]), i64([[2], [0]]), x_of("scatternd_min_u", [2, 3]),
        opset=18, reduction="min")))

    # ---- Pad ------------------------------------------------------------------------------------
    def pad(name, x, pads, value=None, axes=None, opset=DEFAULT_OPSET, runtime_value=False, **attrs):
        ins = [("x", x), ("pads", i64(pads))]
        inits = {"pads", "axes"}
        if value is not None or axes is not None:
            ins.append(("value", value) if value is not None else ("", None))
            if value is not None and not runtime_value:
                inits.add("value")
        if axes is not None:
            ins.append(("axes", i64(axes)))
        return single(name, "Pad", ins, inits, opset=opset, out_dtype=x.dtype.type, **attrs)

    OPS.append(("pad_constant_value", lambda: pad(
        "pad_constant_value", x_of("pad_constant_value", [2, 3]), [1, 2, 0, 1], f32(1.5))))
    OPS.append(("pad_constant_default", lambda: pad(
        "pad_constant_default", x_of("pad_constant_default", [1, 2, 3, 3]), [0, 0, 1, 2, 0, 0, 2, 1])))
    OPS.append(("pad_constant_runtime_value", lambda: pad(
        "pad_constant_runtime_value", x_of("pad_constant_runtime_value", [3, 2]), [2, 0, 1, 3], f32(-2.25),
        runtime_value=True)))
    OPS.append(("pad_reflect", lambda: pad(
        "pad_reflect", x_of("pad_reflect", [3, 4]), [1, 2, 2, 3], mode="reflect")))
    OPS.append(("pad_edge_3d", lambda: pad(
        "pad_edge_3d", x_of("pad_edge_3d", [2, 3, 4]), [1, 0, 2, 0, 2, 1], mode="edge")))
    OPS.append(("pad_negative_crop", lambda: pad(
        "pad_negative_crop", x_of("pad_negative_crop", [4, 5]), [-1, 2, 1, -2], f32(0.5))))
    OPS.append(("pad_axes_reflect_opset18", lambda: pad(
        "pad_axes_reflect_opset18", x_of("pad_axes_reflect_opset18", [2, 3, 5]), [2, 1], axes=[-1], opset=18,
        mode="reflect")))
    OPS.append(("pad_wrap_opset19", lambda: pad(
        "pad_wrap_opset19", x_of("pad_wrap_opset19", [3, 4]), [1, 3, 2, 2], opset=19, mode="wrap")))
    OPS.append(("pad_int64_edge", lambda: pad(
        "pad_int64_edge", R("pad_int64_edge").integers(-9, 9, [2, 3]).astype(np.int64), [1, 1, 1, 1], mode="edge")))

    # ---- DepthToSpace / SpaceToDepth -------------------------------------------------------------
    OPS.append(("depthtospace_dcr", lambda: single(
        "depthtospace_dcr", "DepthToSpace", [("x", x_of("depthtospace_dcr", [1, 8, 2, 3]))], blocksize=2)))
    OPS.append(("depthtospace_crd", lambda: single(
        "depthtospace_crd", "DepthToSpace", [("x", x_of("depthtospace_crd", [2, 8, 3, 2]))], blocksize=2,
        mode="CRD")))
    OPS.append(("spacetodepth", lambda: single(
        "spacetodepth", "SpaceToDepth", [("x", x_of("spacetodepth", [1, 2, 4, 6]))], blocksize=2)))

    # ---- ConvTranspose ------------------------------------------------------------------------------
    def convt(name, xshape, wshape, bias=True, **attrs):
        r = R(name)
        ins = [("x", randn(r, xshape)), ("w", randn(r, wshape, 0.3))]
        if bias:
            ins.append(("b", randn(r, [wshape[1] * attrs.get("group", 1)], 0.1)))
        return single(name, "ConvTranspose", ins, {"w", "b"}, **attrs)

    OPS.append(("convtranspose2d_basic", lambda: convt("convtranspose2d_basic", [1, 2, 3, 3], [2, 3, 3, 3])))
    OPS.append(("convtranspose2d_strides_pads_outpad", lambda: convt(
        "convtranspose2d_strides_pads_outpad", [1, 2, 3, 4], [2, 2, 3, 3], strides=[2, 2], pads=[1, 1, 1, 0],
        output_padding=[1, 1])))
    OPS.append(("convtranspose2d_group_dilation", lambda: convt(
        "convtranspose2d_group_dilation", [2, 4, 3, 3], [4, 1, 2, 3], group=2, dilations=[2, 1], strides=[1, 2])))
    OPS.append(("convtranspose2d_stride3_nobias", lambda: convt(
        "convtranspose2d_stride3_nobias", [1, 3, 2, 3], [3, 2, 2, 2], bias=False, strides=[3, 3], pads=[0, 1, 1, 0])))
    OPS.append(("convtranspose2d_autopad_same_upper", lambda: convt(
        "convtranspose2d_autopad_same_upper", [1, 2, 3, 3], [2, 2, 3, 3], strides=[2, 2], auto_pad="SAME_UPPER")))
    OPS.append(("convtranspose2d_autopad_same_lower", lambda: convt(
        "convtranspose2d_autopad_same_lower", [1, 2, 3, 3], [2, 2, 3, 3], strides=[2, 2], auto_pad="SAME_LOWER")))
    OPS.append(("convtranspose2d_output_shape", lambda: convt(
        "convtranspose2d_output_shape", [1, 2, 3, 3], [2, 2, 3, 3], strides=[2, 2], output_shape=[6, 5])))
    OPS.append(("convtranspose2d_output_shape_extends", lambda: convt(
        "convtranspose2d_output_shape_extends", [1, 1, 3, 3], [1, 2, 3, 3], strides=[3, 2], output_shape=[10, 8])))
    OPS.append(("convtranspose1d", lambda: convt(
        "convtranspose1d", [1, 3, 5], [3, 2, 3], strides=[3], pads=[1, 0], kernel_shape=[3])))
    OPS.append(("convtranspose1d_dilated_group3", lambda: convt(
        "convtranspose1d_dilated_group3", [2, 3, 4], [3, 2, 2], group=3, dilations=[3], output_padding=[1],
        strides=[2])))

    # ---- Resize ---------------------------------------------------------------------------------
    def resize(name, xshape, scales=None, sizes=None, opset=DEFAULT_OPSET, **attrs):
        ins = [("x", x_of(name, xshape)), ("", None)]
        if scales is not None:
            ins.append(("scales", f32(scales)))
        else:
            ins += [("", None), ("sizes", i64(sizes))]
        return single(name, "Resize", ins, {"scales", "sizes"}, opset=opset, **attrs)

    OPS.append(("resize_nearest_asymmetric_floor", lambda: resize(
        "resize_nearest_asymmetric_floor", [1, 2, 3, 4], scales=[1, 1, 2, 3], mode="nearest",
        coordinate_transformation_mode="asymmetric", nearest_mode="floor")))
    OPS.append(("resize_nearest_half_pixel_sizes", lambda: resize(
        "resize_nearest_half_pixel_sizes", [1, 2, 3, 4], sizes=[1, 2, 7, 5], mode="nearest")))
    OPS.append(("resize_nearest_round_prefer_floor_down", lambda: resize(
        "resize_nearest_round_prefer_floor_down", [1, 1, 6, 8], scales=[1, 1, 0.5, 0.75], mode="nearest",
        nearest_mode="round_prefer_floor")))
    OPS.append(("resize_nearest_align_corners", lambda: resize(
        "resize_nearest_align_corners", [1, 2, 3, 4], sizes=[1, 2, 5, 7], mode="nearest",
        coordinate_transformation_mode="align_corners")))
    OPS.append(("resize_nearest_pytorch_half_pixel", lambda: resize(
        "resize_nearest_pytorch_half_pixel", [2, 1, 4, 3], scales=[1, 1, 1.5, 2], mode="nearest",
        coordinate_transformation_mode="pytorch_half_pixel")))
    OPS.append(("resize_nearest_round_prefer_ceil", lambda: resize(
        "resize_nearest_round_prefer_ceil", [1, 1, 2, 3], scales=[1, 1, 2, 2], mode="nearest",
        coordinate_transformation_mode="asymmetric", nearest_mode="round_prefer_ceil")))
    OPS.append(("resize_linear_half_pixel", lambda: resize(
        "resize_linear_half_pixel", [1, 2, 3, 4], scales=[1, 1, 2, 2], mode="linear")))
    OPS.append(("resize_linear_align_corners_sizes", lambda: resize(
        "resize_linear_align_corners_sizes", [1, 2, 3, 4], sizes=[1, 2, 5, 7], mode="linear",
        coordinate_transformation_mode="align_corners")))
    OPS.append(("resize_linear_asymmetric", lambda: resize(
        "resize_linear_asymmetric", [1, 1, 4, 4], scales=[1, 1, 1.5, 2.5], mode="linear",
        coordinate_transformation_mode="asymmetric")))
    OPS.append(("resize_linear_pytorch_half_pixel_down", lambda: resize(
        "resize_linear_pytorch_half_pixel_down", [1, 2, 5, 7], sizes=[1, 2, 2, 3], mode="linear",
        coordinate_transformation_mode="pytorch_half_pixel")))
    OPS.append(("resize_linear_sizes_axes_opset18", lambda: resize(
        "resize_linear_sizes_axes_opset18", [1, 2, 3, 4], sizes=[6, 5], opset=18, axes=[2, 3], mode="linear")))
    OPS.append(("resize_nearest_not_larger_opset18", lambda: resize(
        "resize_nearest_not_larger_opset18", [1, 1, 4, 6], sizes=[7, 8], opset=18, axes=[2, 3], mode="nearest",
        keep_aspect_ratio_policy="not_larger")))
    OPS.append(("resize_linear_not_smaller_opset18", lambda: resize(
        "resize_linear_not_smaller_opset18", [1, 2, 4, 6], sizes=[7, 8], opset=18, axes=[2, 3], mode="linear",
        keep_aspect_ratio_policy="not_smaller")))
    OPS.append(("resize_linear_half_pixel_symmetric_opset19", lambda: resize(
        "resize_linear_half_pixel_symmetric_opset19", [1, 1, 4, 5], scales=[1, 1, 1.75, 0.6], opset=19,
        mode="linear", coordinate_transformation_mode="half_pixel_symmetric")))
    OPS.append(("resize_nearest_half_pixel_symmetric_opset19", lambda: resize(
        "resize_nearest_half_pixel_symmetric_opset19", [1, 2, 3, 5], sizes=[1, 2, 7, 3], opset=19,
        mode="nearest", coordinate_transformation_mode="half_pixel_symmetric")))

    # ---- Einsum -------------------------------------------------------------------------------------
    def einsum(name, eq, shapes, consts=()):
        ins = [(f"x{i}", x_of(f"{name}_{i}", s)) for i, s in enumerate(shapes)]
        return single(name, "Einsum", ins, set(consts), equation=eq)

    for nm, eq, shapes, consts in [
        ("einsum_batched_matmul", "bij,bjk->bik", [[2, 3, 4], [2, 4, 5]], ()),
        ("einsum_attention_scores", "bhqd,bhkd->bhqk", [[1, 2, 3, 4], [1, 2, 5, 4]], ()),
        ("einsum_attention_values", "bhqk,bhkd->bhqd", [[2, 2, 3, 5], [2, 2, 5, 4]], ()),
        ("einsum_transpose", "ij->ji", [[3, 4]], ()),
        ("einsum_row_sum", "ij->i", [[3, 4]], ()),
        ("einsum_sum_all", "ij->", [[3, 4]], ()),
        ("einsum_outer", "i,j->ij", [[3], [4]], ()),
        ("einsum_dot", "i,i->", [[5], [5]], ()),
        ("einsum_matvec_const", "ij,j->i", [[3, 4], [4]], ("x1",)),
        ("einsum_implicit_output", "ij,jk", [[2, 3], [3, 4]], ()),
        ("einsum_ellipsis_matmul", "...ij,...jk->...ik", [[2, 3, 4], [2, 4, 2]], ()),
        ("einsum_three_operands", "ij,jk,kl->il", [[2, 3], [3, 4], [4, 2]], ()),
        ("einsum_permute_and_sum", "abc->cb", [[2, 3, 4]], ()),
        ("einsum_bilinear", "bn,anm,bm->ba", [[2, 3], [4, 3, 5], [2, 5]], ("x1",)),
    ]:
        OPS.append((nm, (lambda nm=nm, eq=eq, shapes=shapes, consts=consts: einsum(nm, eq, shapes, consts))))


def register_quant_cases():
    """Quantisation cases (issue #3): Quantize/DequantizeLinear per tensor,
    per axis and blocked, dynamic quantisation, and the integer and QLinear
    matmul/conv ops."""
    R = lambda name: rng_for("ops/" + name)  # noqa: E731
    u8 = lambda a: np.asarray(a, dtype=np.uint8)  # noqa: E731
    s8 = lambda a: np.asarray(a, dtype=np.int8)  # noqa: E731

    def case(name, opset=DEFAULT_OPSET):
        return Case(name, opset)

    def q_per_tensor():
        c = case("quantizelinear_u8_per_tensor")
        c.input("x", c.randn([2, 3, 4], 3.0))
        c.init("s", f32(0.05)); c.init("z", u8(128))
        c.node("QuantizeLinear", ["x", "s", "z"], ["y"]); c.output("y", np.uint8)
        return c.finish()

    def q_per_axis():
        c = case("quantizelinear_i8_per_axis")
        c.input("x", c.randn([2, 3, 4], 2.0))
        c.init("s", f32([0.02, 0.05, 0.1])); c.init("z", s8([0, -3, 5]))
        c.node("QuantizeLinear", ["x", "s", "z"], ["y"], axis=1); c.output("y", np.int8)
        return c.finish()

    def q_blocked():
        c = case("quantizelinear_i8_blocked", 21)
        c.input("x", c.randn([2, 8], 2.0))
        c.init("s", f32([[0.02, 0.04], [0.03, 0.05]])); c.init("z", s8([[0, 1], [-2, 3]]))
        c.node("QuantizeLinear", ["x", "s", "z"], ["y"], axis=1, block_size=4); c.output("y", np.int8)
        return c.finish()

    def dq_u8():
        c = case("dequantizelinear_u8")
        c.input("x", u8(R("dequantizelinear_u8").integers(0, 256, [2, 3, 4])))
        c.init("s", f32(0.1)); c.init("z", u8(120))
        c.node("DequantizeLinear", ["x", "s", "z"], ["y"]); c.output("y")
        return c.finish()

    def dq_per_axis():
        c = case("dequantizelinear_i8_per_axis")
        c.input("x", s8(R("dequantizelinear_i8_per_axis").integers(-128, 128, [4, 3])))
        c.init("s", f32([0.5, 0.25, 2.0])); c.init("z", s8([1, 0, -1]))
        c.node("DequantizeLinear", ["x", "s", "z"], ["y"], axis=1); c.output("y")
        return c.finish()

    def dq_weights_matmul():
        # The QDQ weight pattern: constant int8 weights, per-channel scales, then MatMul.
        c = case("dequantize_weights_matmul")
        r = R("dequantize_weights_matmul")
        c.input("x", randn(r, [3, 6]))
        c.init("w", s8(r.integers(-127, 128, [6, 4])))
        c.init("s", f32(r.uniform(0.005, 0.02, [4]))); c.init("z", s8([0, 0, 0, 0]))
        c.node("DequantizeLinear", ["w", "s", "z"], ["wf"], axis=1)
        c.node("MatMul", ["x", "wf"], ["y"]); c.output("y")
        return c.finish()

    def dq_i32_bias():
        c = case("dequantizelinear_i32_no_zero_point")
        c.input("x", np.asarray(R("dequantizelinear_i32_no_zero_point").integers(-5000, 5000, [5]), np.int32))
        c.init("s", f32(0.001))
        c.node("DequantizeLinear", ["x", "s"], ["y"]); c.output("y")
        return c.finish()

    def dq_blocked():
        c = case("dequantizelinear_i8_blocked", 21)
        c.input("x", s8(R("dequantizelinear_i8_blocked").integers(-128, 128, [4, 6])))
        c.init("s", f32(R("dequantizelinear_i8_blocked_s").uniform(0.01, 0.1, [2, 6])))
        c.init("z", s8(np.zeros([2, 6])))
        c.node("DequantizeLinear", ["x", "s", "z"], ["y"], axis=0, block_size=2); c.output("y")
        return c.finish()

    def dynq():
        c = case("dynamicquantizelinear")
        c.input("x", c.randn([3, 5], 2.0))
        c.node("DynamicQuantizeLinear", ["x"], ["y", "y_scale", "y_zero_point"])
        c.output("y", np.uint8); c.output("y_scale"); c.output("y_zero_point", np.uint8)
        return c.finish()

    def mmi():
        c = case("matmulinteger_u8_i8")
        r = R("matmulinteger_u8_i8")
        c.input("a", u8(r.integers(0, 256, [3, 4])))
        c.init("b", s8(r.integers(-128, 128, [4, 5])))
        c.init("az", u8(130)); c.init("bz", s8([1, -2, 0, 3, -1]))
        c.node("MatMulInteger", ["a", "b", "az", "bz"], ["y"]); c.output("y", np.int32)
        return c.finish()

    def convi():
        c = case("convinteger_u8")
        r = R("convinteger_u8")
        c.input("x", u8(r.integers(0, 256, [1, 2, 5, 5])))
        c.init("w", u8(r.integers(0, 256, [3, 2, 3, 3])))
        c.init("xz", u8(128)); c.init("wz", u8(127))
        c.node("ConvInteger", ["x", "w", "xz", "wz"], ["y"], pads=[1, 1, 1, 1]); c.output("y", np.int32)
        return c.finish()

    def qlmm():
        c = case("qlinearmatmul_u8")
        r = R("qlinearmatmul_u8")
        c.input("a", u8(r.integers(0, 256, [3, 4])))
        c.init("as", f32(0.02)); c.init("az", u8(128))
        c.init("b", u8(r.integers(0, 256, [4, 5]))); c.init("bs", f32(0.03)); c.init("bz", u8(125))
        c.init("ys", f32(0.05)); c.init("yz", u8(100))
        c.node("QLinearMatMul", ["a", "as", "az", "b", "bs", "bz", "ys", "yz"], ["y"]); c.output("y", np.uint8)
        return c.finish()

    def qlconv():
        c = case("qlinearconv_u8_i8_per_channel")
        r = R("qlinearconv_u8_i8_per_channel")
        c.input("x", u8(r.integers(0, 256, [1, 2, 5, 5])))
        c.init("xs", f32(0.02)); c.init("xz", u8(128))
        # 7-bit weights ("reduce_range"): onnxruntime's u8 x s8 kernels add
        # pairs of products in int16, which saturates with full-range weights
        # and gives results that differ from the ONNX definition.
        c.init("w", s8(r.integers(-64, 64, [3, 2, 3, 3])))
        c.init("ws", f32([0.01, 0.02, 0.015])); c.init("wz", s8([0, 0, 0]))
        c.init("ys", f32(0.1)); c.init("yz", u8(120))
        c.init("b", np.asarray(r.integers(-2000, 2000, [3]), np.int32))
        c.node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"], ["y"], pads=[1, 1, 1, 1])
        c.output("y", np.uint8)
        return c.finish()

    def dyn_qdq_matmul():
        # Dynamic quantisation in QDQ form: DynamicQuantizeLinear -> DequantizeLinear, times
        # per-column int8 weights (the e-graph turns it into one integer qmatmul).
        c = case("dynamic_qdq_matmul")
        r = R("dynamic_qdq_matmul")
        c.input("x", randn(r, [7, 33]))
        c.init("w", s8(r.integers(-127, 128, [33, 17])))
        c.init("s", f32(r.uniform(0.005, 0.02, [17]))); c.init("z", s8(r.integers(-3, 4, [17])))
        c.node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"])
        c.node("DequantizeLinear", ["xq", "xs", "xz"], ["xf"])
        c.node("DequantizeLinear", ["w", "s", "z"], ["wf"], axis=1)
        c.node("MatMul", ["xf", "wf"], ["y"]); c.output("y")
        return c.finish()

    def qdq_matmul_requant():
        # Static QDQ with an int8 output: Q -> DQ -> MatMul(DQ weights, per tensor) -> Q.
        c = case("qdq_matmul_requant_i8")
        r = R("qdq_matmul_requant_i8")
        c.input("x", randn(r, [17, 33]))
        c.init("xs", f32(0.02)); c.init("xz", s8(3))
        c.init("w", s8(r.integers(-127, 128, [33, 1]))); c.init("ws", f32(0.01)); c.init("wz", s8(0))
        c.init("ys", f32(0.05)); c.init("yz", s8(-4))
        c.node("QuantizeLinear", ["x", "xs", "xz"], ["xq"])
        c.node("DequantizeLinear", ["xq", "xs", "xz"], ["xf"])
        c.node("DequantizeLinear", ["w", "ws", "wz"], ["wf"])
        c.node("MatMul", ["xf", "wf"], ["yf"])
        c.node("QuantizeLinear", ["yf", "ys", "yz"], ["y"]); c.output("y", np.int8)
        return c.finish()

    for name, fn in [("quantizelinear_u8_per_tensor", q_per_tensor), ("quantizelinear_i8_per_axis", q_per_axis),
                     ("quantizelinear_i8_blocked", q_blocked), ("dequantizelinear_u8", dq_u8),
                     ("dequantizelinear_i8_per_axis", dq_per_axis), ("dequantize_weights_matmul", dq_weights_matmul),
                     ("dequantizelinear_i32_no_zero_point", dq_i32_bias), ("dequantizelinear_i8_blocked", dq_blocked),
                     ("dynamicquantizelinear", dynq), ("matmulinteger_u8_i8", mmi), ("convinteger_u8", convi),
                     ("qlinearmatmul_u8", qlmm), ("qlinearconv_u8_i8_per_channel", qlconv),
                     ("dynamic_qdq_matmul", dyn_qdq_matmul), ("qdq_matmul_requant_i8", qdq_matmul_requant)]:
        OPS.append((name, fn))

def register_contrib_cases():
    """onnxruntime contrib ops (domain com.microsoft) from transformer and LLM
    exports, and MatMulNBits models made by onnxruntime's own 4-bit
    quantiser (MatMulNBitsQuantizer), asymmetric and symmetric."""
    R = lambda name: rng_for("ops/" + name)  # noqa: E731
    MS = "com.microsoft"

    def contrib(name, op, inputs, inits=(), n_out=1, **attrs):
        c = Case(name)
        c.extra_opsets = [(MS, 1)]
        ins = []
        for nm, arr in inputs:
            ins.append(c.init(nm, arr) if nm in inits else c.input(nm, arr))
        outs = ["y"] if n_out == 1 else [f"y{i}" for i in range(n_out)]
        c.nodes.append(helper.make_node(op, ins, outs, name=f"{op.lower()}_0", domain=MS, **attrs))
        for o in outs:
            c.output(o)
        return c.finish()

    def x(name, shape, scale=1.0):
        return randn(R(name), shape, scale)

    OPS.append(("ms_gelu", lambda: contrib("ms_gelu", "Gelu", [("x", x("ms_gelu", [2, 3, 8], 2.0))])))
    OPS.append(("ms_biasgelu", lambda: contrib(
        "ms_biasgelu", "BiasGelu", [("x", x("ms_biasgelu", [2, 3, 8], 2.0)), ("b", x("ms_biasgelu_b", [8]))], {"b"})))
    OPS.append(("ms_fastgelu_bias", lambda: contrib(
        "ms_fastgelu_bias", "FastGelu", [("x", x("ms_fastgelu_bias", [2, 3, 8], 2.0)),
                                        ("b", x("ms_fastgelu_bias_b", [8]))], {"b"})))
    OPS.append(("ms_quickgelu", lambda: contrib(
        "ms_quickgelu", "QuickGelu", [("x", x("ms_quickgelu", [2, 3, 8], 2.0))], alpha=1.5)))
    def simplified_ln():
        # onnxruntime registers SimplifiedLayerNormalization in the default domain.
        name = "ort_simplified_layernorm"
        c = Case(name)
        c.input("x", x(name, [2, 3, 8]))
        c.init("g", 1.0 + x("ms_sln_g", [8], 0.2))
        c.nodes.append(helper.make_node("SimplifiedLayerNormalization", ["x", "g"], ["y"], name="sln_0",
                                        axis=-1, epsilon=1e-5))
        c.output("y")
        return c.finish()

    OPS.append(("ort_simplified_layernorm", simplified_ln))
    OPS.append(("ms_skip_layernorm", lambda: contrib(
        "ms_skip_layernorm", "SkipLayerNormalization",
        [("x", x("ms_skip_layernorm", [2, 3, 8])), ("skip", x("ms_skln_s", [2, 3, 8])),
         ("g", 1.0 + x("ms_skln_g", [8], 0.2)), ("beta", x("ms_skln_b", [8], 0.2)), ("bias", x("ms_skln_bias", [8], 0.2))],
        {"g", "beta", "bias"}, epsilon=1e-5)))
    OPS.append(("ms_skip_simplified_layernorm", lambda: contrib(
        "ms_skip_simplified_layernorm", "SkipSimplifiedLayerNormalization",
        [("x", x("ms_skip_simplified_layernorm", [2, 3, 8])), ("skip", x("ms_sskln_s", [2, 3, 8])),
         ("g", 1.0 + x("ms_sskln_g", [8], 0.2))], {"g"}, epsilon=1e-5)))

    def nbits(name, symmetric, k=64, n=24, block=32, bias=False, bits=4):
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

        r = R(name)
        c = Case(name)
        c.input("x", randn(r, [3, k]))
        c.init("w", randn(r, [k, n], 0.2))
        c.node("MatMul", ["x", "w"], ["h"])
        c.node("Relu", ["h"], ["y"])
        c.output("y")
        model, feeds = c.finish()
        q = MatMulNBitsQuantizer(model, bits=bits, block_size=block, is_symmetric=symmetric)
        q.process()
        qm = q.model.model
        del qm.metadata_props[:]
        assert any(nd.op_type == "MatMulNBits" for nd in qm.graph.node), [nd.op_type for nd in qm.graph.node]
        return qm, feeds

    def caches(name, positions, half):
        r = R(name)
        freqs = r.uniform(0.1, 1.0, [half]).astype(np.float32)
        ang = np.arange(positions, dtype=np.float32)[:, None] * freqs[None, :]
        return np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)

    def rope_onnx(name, interleaved, rd):
        # ONNX RotaryEmbedding (opset 23), 4-D input [b, heads, seq, head] with position ids.
        c = Case(name, 23)
        r = R(name)
        b, h, s, d = 2, 3, 5, 8
        cos, sin = caches(name, 16, (rd or d) // 2)
        c.input("x", randn(r, [b, h, s, d]))
        c.init("cos", cos); c.init("sin", sin)
        c.input("pos", r.integers(0, 16, [b, s]).astype(np.int64))
        c.node("RotaryEmbedding", ["x", "cos", "sin", "pos"], ["y"], interleaved=interleaved,
               rotary_embedding_dim=rd)
        c.output("y")
        return c.finish()

    OPS.append(("rotary_halves", lambda: rope_onnx("rotary_halves", 0, 0)))
    OPS.append(("rotary_interleaved_partial", lambda: rope_onnx("rotary_interleaved_partial", 1, 4)))

    def rope_ms():
        name = "ms_rotary_3d_num_heads"
        c = Case(name)
        c.extra_opsets = [(MS, 1)]
        r = R(name)
        b, s, nh, d = 2, 4, 2, 6
        cos, sin = caches(name, 12, d // 2)
        c.input("x", randn(r, [b, s, nh * d]))
        c.input("pos", r.integers(0, 12, [b, s]).astype(np.int64))
        c.init("cos", cos); c.init("sin", sin)
        c.nodes.append(helper.make_node("RotaryEmbedding", ["x", "pos", "cos", "sin"], ["y"], name="rope_0",
                                        domain=MS, num_heads=nh, interleaved=0))
        c.output("y")
        return c.finish()

    OPS.append(("ms_rotary_3d_num_heads", rope_ms))
    # ---- half precision models (computed in f32 by nanoc, in half by onnxruntime) ----
    def f16_mlp():
        name = "f16_mlp"
        c = Case(name)
        r = R(name)
        c.input("x", randn(r, [3, 16]).astype(np.float16))
        c.init("w1", randn(r, [16, 12], 0.3).astype(np.float16)); c.init("b1", randn(r, [12], 0.1).astype(np.float16))
        c.init("w2", randn(r, [12, 5], 0.3).astype(np.float16))
        c.node("MatMul", ["x", "w1"], ["h"]); c.node("Add", ["h", "b1"], ["hb"]); c.node("Relu", ["hb"], ["a"])
        c.node("MatMul", ["a", "w2"], ["z"]); c.node("Softmax", ["z"], ["y"], axis=-1)
        c.output("y", np.float16)
        return c.finish()

    def f16_layernorm_gelu():
        name = "f16_layernorm_gelu"
        c = Case(name, 20)
        r = R(name)
        c.input("x", randn(r, [2, 4, 8]).astype(np.float16))
        c.init("g", (1.0 + randn(r, [8], 0.2)).astype(np.float16)); c.init("b", randn(r, [8], 0.2).astype(np.float16))
        c.node("LayerNormalization", ["x", "g", "b"], ["n"], axis=-1, epsilon=1e-5)
        c.node("Gelu", ["n"], ["y"])
        c.output("y", np.float16)
        return c.finish()

    OPS.append(("f16_mlp", f16_mlp))
    OPS.append(("f16_layernorm_gelu", f16_layernorm_gelu))
    OPS.append(("ms_matmulnbits_q4_asym", lambda: nbits("ms_matmulnbits_q4_asym", False)))
    OPS.append(("ms_matmulnbits_q4_sym_k48", lambda: nbits("ms_matmulnbits_q4_sym_k48", True, k=48, block=32)))
    # 8 bits, K = 40 in blocks of 16 (a partial last block), N = 17.
    OPS.append(("ms_matmulnbits_q8_k40", lambda: nbits("ms_matmulnbits_q8_k40", False, k=40, n=17, block=16, bits=8)))

# --------------------------------------------------------------------------- #
# main
# --------------------------------------------------------------------------- #

def summarize(name: str, model: onnx.ModelProto, feeds, outs) -> str:
    size = sum(p.stat().st_size for p in (FIXTURES / name).rglob("*") if p.is_file())
    ins = ", ".join(f"{k}{list(v.shape)}:{v.dtype}" for k, v in feeds.items())
    os_ = ", ".join(f"{k}{list(v.shape)}:{v.dtype}" for k, v in outs.items())
    return f"{name:45s} {size:8d} B  opset {model.opset_import[0].version}  in: {ins}  out: {os_}"


def main() -> int:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name, build in [("gpt2", build_gpt2), ("mlp", build_mlp), ("cnn", build_cnn),
                        ("unsupported", build_unsupported), ("qdq_cnn", build_qdq_cnn)]:
        model, feeds = build()
        outs = write_fixture(name, model, feeds)
        print(summarize(name, model, feeds, outs))

    counts: dict[str, int] = {}
    for n in build_unsupported()[0].graph.node:
        counts[n.op_type] = counts.get(n.op_type, 0) + 1
    assert {k: v for k, v in counts.items() if k in UNSUPPORTED_OPS} == UNSUPPORTED_OPS
    (FIXTURES / "unsupported" / "EXPECTED_OPS.txt").write_text(
        "".join(f"{op} {n}\n" for op, n in sorted(UNSUPPORTED_OPS.items())))

    register_all_cases()
    register_quant_cases()
    register_contrib_cases()
    names = [n for n, _ in OPS]
    dupes = {n for n in names if names.count(n) > 1}
    assert not dupes, dupes
    ops_dir = FIXTURES / "ops"
    ops_dir.mkdir(exist_ok=True)
    for name, fn in OPS:
        model, feeds = fn()
        outs = write_fixture(f"ops/{name}", model, feeds)
        line = summarize(f"ops/{name}", model, feeds, outs)
        size = sum(p.stat().st_size for p in (ops_dir / name).rglob("*") if p.is_file())
        if size > 20 * 1024:
            raise RuntimeError(f"ops/{name} is {size} bytes (> 20 KB)")
        print(line)
    # Drop case directories left over from removed cases (only if they hold nothing else).
    for d in sorted(p for p in ops_dir.iterdir() if p.is_dir()):
        if d.name not in names and all(c.name in FILES for c in d.iterdir()):
            shutil.rmtree(d)
    (ops_dir / "CASES.txt").write_text("".join(f"{n}\n" for n in sorted(names)))

    total = sum(p.stat().st_size for p in FIXTURES.rglob("*") if p.is_file())
    print(f"{len(OPS)} op cases; total fixture size {total} bytes")
    if total > 3 * 1024 * 1024:
        raise RuntimeError("fixtures exceed 3 MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
