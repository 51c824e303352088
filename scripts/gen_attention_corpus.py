#!/usr/bin/env python3
"""Generate the attention-fusion corpus under tests/fixtures/attention/.

Usage (from the repo root):
    bash scripts/setup_venv.sh && .venv/bin/python scripts/gen_attention_corpus.py

Each variant is a small transformer attention block (or two) written the way
one common exporter writes it: torch.onnx / Hugging Face GPT-2, BERT, Llama
(GQA via repeat_kv), older 3-D exports, fp16 models with a Cast around
Softmax, the ONNX `Attention` op (opset 23) and com.microsoft
`MultiHeadAttention`. The optimiser must fuse every one of them into one
`attention` node per block; tests/tests/attention.rs checks that and the
outputs against onnxruntime's.

Files per variant (same layout and helpers as scripts/gen_fixtures.py):
    model.onnx, inputs/<name>.npy, outputs/<name>.npy
and tests/fixtures/attention/CASES.txt lists `<variant> <attention blocks>`;
tests/fixtures/attention/README.md describes the exact node pattern of each.
Random data is seeded from the variant name, so a re-run is byte-identical.
"""

from __future__ import annotations

import sys

import numpy as np
from onnx import TensorProto, helper

from gen_fixtures import FIXTURES, Builder, f32, i64, make_model, randn, rng_for, write_fixture

B, S, E, H, D = 1, 8, 32, 4, 8  # batch, sequence, embedding, heads, head dim
NEG_MIN = float(np.finfo(np.float32).min)


class Block:
    """Shared pieces of an attention block built into a Builder."""

    def __init__(self, b: Builder, rng, prefix: str, dtype=np.float32) -> None:
        self.b, self.rng, self.p, self.dtype = b, rng, prefix, dtype

    def weight(self, name, shape, scale=0.15):
        return self.b.init(f"{self.p}.{name}", randn(self.rng, shape, scale).astype(self.dtype))

    def proj(self, x, name, n_in=E, n_out=E):
        """x @ W + b (torch Linear export: MatMul then Add)."""
        w = self.weight(f"{name}.weight", [n_in, n_out])
        bias = self.weight(f"{name}.bias", [n_out], 0.05)
        y = self.b.op("MatMul", [x, w], f"{self.p}/{name}/MatMul")
        return self.b.op("Add", [y, bias], f"{self.p}/{name}/Add")

    def heads(self, t, perm, n_heads=H):
        """[B, S, n*D] -> Reshape [B, S, n, D] -> Transpose(perm)."""
        r = self.b.op("Reshape", [t, self.b.const(i64([B, S, n_heads, D]))], f"{self.p}/Reshape")
        return self.b.op("Transpose", [r], f"{self.p}/Transpose", perm=perm)

    def merge(self, ctx):
        """[B, H, S, D] -> Transpose [B, S, H, D] -> Reshape [B, S, E]."""
        t = self.b.op("Transpose", [ctx], f"{self.p}/Transpose", perm=[0, 2, 1, 3])
        return self.b.op("Reshape", [t, self.b.const(i64([B, S, E]))], f"{self.p}/Reshape")

    def scalar(self, v):
        return self.b.const(np.asarray(v, dtype=self.dtype))


def finish(name: str, b: Builder, x_out: str, feeds: dict[str, np.ndarray], opset=17, extra_opsets=(),
           elem=TensorProto.FLOAT, extra_inputs=()):
    b.nodes[-1].output[0] = "y"
    inputs = [helper.make_tensor_value_info("x", elem, list(feeds["x"].shape))]
    inputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(feeds[n].shape)) for n in extra_inputs]
    graph = helper.make_graph(b.nodes, name, inputs, [helper.make_tensor_value_info("y", elem, [B, S, E])],
                              initializer=b.inits)
    return make_model(graph, opset, extra_opsets), feeds


def causal_bool():
    return np.tril(np.ones((S, S), dtype=bool)).reshape(1, 1, S, S)


def causal_additive(neg):
    return np.triu(np.full((S, S), neg, dtype=np.float32), k=1).reshape(1, 1, S, S)


# --------------------------------------------------------------------------- #
# the variants: (name, blocks, builder)
# --------------------------------------------------------------------------- #

def gpt2_where_causal():
    """HF GPT-2: fused QKV MatMul+Add, Split, heads by Reshape+Transpose (K to
    [B,H,D,S] directly), Div by sqrt(D), Where(causal, scores, finfo.min),
    Softmax, MatMul; two blocks with residuals."""
    name = "gpt2_where_causal"
    rng = rng_for(name)
    b = Builder()
    mask = b.init("attn.bias", causal_bool())
    h = "x"
    for layer in range(2):
        k_ = Block(b, rng, f"h.{layer}.attn")
        qkv = k_.proj(h, "c_attn", E, 3 * E)
        q, k, v = b.op("Split", [qkv, b.const(i64([E] * 3))], f"{k_.p}/Split", n_out=3, axis=2)
        qh, kh, vh = k_.heads(q, [0, 2, 1, 3]), k_.heads(k, [0, 2, 3, 1]), k_.heads(v, [0, 2, 1, 3])
        s = b.op("MatMul", [qh, kh], f"{k_.p}/MatMul")
        s = b.op("Div", [s, k_.scalar(np.sqrt(D))], f"{k_.p}/Div")
        s = b.op("Where", [mask, s, k_.scalar(NEG_MIN)], f"{k_.p}/Where")
        p = b.op("Softmax", [s], f"{k_.p}/Softmax", axis=-1)
        c = k_.merge(b.op("MatMul", [p, vh], f"{k_.p}/MatMul"))
        h = b.op("Add", [k_.proj(c, "c_proj"), h], f"h.{layer}/Add")
    return name, 2, finish(name, b, h, {"x": randn(rng, [B, S, E])})


def bert_padding_mask():
    """BERT: separate Q/K/V projections, K transposed after the head split
    (Transpose perm [0,1,3,2]), scores Mul by 1/sqrt(D), Add of an additive
    padding mask given as a model input [B,1,1,S] (not causal)."""
    name = "bert_padding_mask"
    rng = rng_for(name)
    b = Builder()
    k_ = Block(b, rng, "encoder.layer.0.attention")
    qh = k_.heads(k_.proj("x", "query"), [0, 2, 1, 3])
    kh = k_.heads(k_.proj("x", "key"), [0, 2, 1, 3])
    vh = k_.heads(k_.proj("x", "value"), [0, 2, 1, 3])
    kt = b.op("Transpose", [kh], f"{k_.p}/Transpose", perm=[0, 1, 3, 2])
    s = b.op("MatMul", [qh, kt], f"{k_.p}/MatMul")
    s = b.op("Mul", [s, k_.scalar(1.0 / np.sqrt(D))], f"{k_.p}/Mul")
    s = b.op("Add", [s, "attention_mask"], f"{k_.p}/Add")
    p = b.op("Softmax", [s], f"{k_.p}/Softmax", axis=-1)
    c = k_.merge(b.op("MatMul", [p, vh], f"{k_.p}/MatMul"))
    k_.proj(c, "output.dense")
    mask = np.zeros((B, 1, 1, S), dtype=np.float32)
    mask[..., S - 2:] = -10000.0  # the last two tokens are padding
    return name, 1, finish(name, b, "", {"x": randn(rng, [B, S, E]), "attention_mask": mask},
                           extra_inputs=("attention_mask",))


def scale_on_q_additive_triangle():
    """Scale applied to q before the product (q * D^-0.5), causal mask as an
    additive constant triangle of -1e4, K transposed with perm [0,1,3,2]."""
    name = "scale_on_q_additive_triangle"
    rng = rng_for(name)
    b = Builder()
    k_ = Block(b, rng, "attn")
    qh = k_.heads(k_.proj("x", "q"), [0, 2, 1, 3])
    qh = b.op("Mul", [qh, k_.scalar(D ** -0.5)], f"{k_.p}/Mul")
    kt = b.op("Transpose", [k_.heads(k_.proj("x", "k"), [0, 2, 1, 3])], f"{k_.p}/Transpose", perm=[0, 1, 3, 2])
    vh = k_.heads(k_.proj("x", "v"), [0, 2, 1, 3])
    s = b.op("MatMul", [qh, kt], f"{k_.p}/MatMul")
    s = b.op("Add", [s, b.init("causal_mask", causal_additive(-1e4))], f"{k_.p}/Add")
    p = b.op("Softmax", [s], f"{k_.p}/Softmax", axis=-1)
    k_.proj(k_.merge(b.op("MatMul", [p, vh], f"{k_.p}/MatMul")), "o")
    return name, 1, finish(name, b, "", {"x": randn(rng, [B, S, E])})


def sqrt_scale_on_q_and_k():
    """The scale split as D^-0.25 on q and on k (as some exporters do for fp16
    range), an additive -inf causal triangle."""
    name = "sqrt_scale_on_q_and_k"
    rng = rng_for(name)
    b = Builder()
    k_ = Block(b, rng, "attn")
    r = k_.scalar(D ** -0.25)
    qh = b.op("Mul", [k_.heads(k_.proj("x", "q"), [0, 2, 1, 3]), r], f"{k_.p}/Mul")
    kh = b.op("Mul", [k_.heads(k_.proj("x", "k"), [0, 2, 3, 1]), r], f"{k_.p}/Mul")
    vh = k_.heads(k_.proj("x", "v"), [0, 2, 1, 3])
    s = b.op("MatMul", [qh, kh], f"{k_.p}/MatMul")
    s = b.op("Add", [s, b.init("causal_mask", causal_additive(-np.inf))], f"{k_.p}/Add")
    p = b.op("Softmax", [s], f"{k_.p}/Softmax", axis=-1)
    k_.proj(k_.merge(b.op("MatMul", [p, vh], f"{k_.p}/MatMul")), "o")
    return name, 1, finish(name, b, "", {"x": randn(rng, [B, S, E])})


def heads_3d_batched():
    """Older torch exports (nn.MultiheadAttention): heads folded into the batch,
    [B,S,E] -> Reshape [B,S,H,D] -> Transpose [B,H,S,D] -> Reshape [B*H,S,D];
    3-D MatMuls, K transposed with perm [0,2,1], Div by sqrt(D), no mask."""
    name = "heads_3d_batched"
    rng = rng_for(name)
    b = Builder()
    k_ = Block(b, rng, "attn")

    def fold(t):
        return b.op("Reshape", [k_.heads(t, [0, 2, 1, 3]), b.const(i64([B * H, S, D]))], f"{k_.p}/Reshape")

    qh, kh, vh = fold(k_.proj("x", "q")), fold(k_.proj("x", "k")), fold(k_.proj("x", "v"))
    kt = b.op("Transpose", [kh], f"{k_.p}/Transpose", perm=[0, 2, 1])
    s = b.op("Div", [b.op("MatMul", [qh, kt], f"{k_.p}/MatMul"), k_.scalar(np.sqrt(D))], f"{k_.p}/Div")
    p = b.op("Softmax", [s], f"{k_.p}/Softmax", axis=-1)
    c = b.op("MatMul", [p, vh], f"{k_.p}/MatMul")
    c = b.op("Reshape", [c, b.const(i64([B, H, S, D]))], f"{k_.p}/Reshape")
    k_.proj(k_.merge(c), "o")
    return name, 1, finish(name, b, "", {"x": randn(rng, [B, S, E])})


def fp16_cast_softmax():
    """An fp16 model: fp16 projections and scores, Cast to fp32 around Softmax
    (Cast -> Softmax -> Cast back), Where causal mask with fp16 min."""
    name = "fp16_cast_softmax"
    rng = rng_for(name)
    b = Builder()
    k_ = Block(b, rng, "attn", np.float16)
    qh = k_.heads(k_.proj("x", "q"), [0, 2, 1, 3])
    kh = k_.heads(k_.proj("x", "k"), [0, 2, 3, 1])
    vh = k_.heads(k_.proj("x", "v"), [0, 2, 1, 3])
    s = b.op("Div", [b.op("MatMul", [qh, kh], f"{k_.p}/MatMul"), k_.scalar(np.sqrt(D))], f"{k_.p}/Div")
    s = b.op("Where", [b.init("attn.bias", causal_bool()), s, k_.scalar(np.finfo(np.float16).min)],
             f"{k_.p}/Where")
    s = b.op("Cast", [s], f"{k_.p}/Cast", to=TensorProto.FLOAT)
    p = b.op("Softmax", [s], f"{k_.p}/Softmax", axis=-1)
    p = b.op("Cast", [p], f"{k_.p}/Cast", to=TensorProto.FLOAT16)
    k_.proj(k_.merge(b.op("MatMul", [p, vh], f"{k_.p}/MatMul")), "o")
    return name, 1, finish(name, b, "", {"x": randn(rng, [B, S, E]).astype(np.float16)},
                           elem=TensorProto.FLOAT16)


def llama_gqa_expand():
    """Llama (HF repeat_kv): 4 query heads, 2 KV heads; K/V [B,2,S,D] ->
    Unsqueeze(2) -> Expand [B,2,2,S,D] -> Reshape [B,4,S,D]; K transposed
    with perm [0,1,3,2]; Mul by 1/sqrt(D); additive causal finfo.min mask."""
    name = "llama_gqa_expand"
    rng = rng_for(name)
    b = Builder()
    kv, rep = 2, H // 2
    k_ = Block(b, rng, "self_attn")
    qh = k_.heads(k_.proj("x", "q_proj"), [0, 2, 1, 3])

    def repeat_kv(t):
        u = b.op("Unsqueeze", [t, b.const(i64([2]))], f"{k_.p}/Unsqueeze")
        e = b.op("Expand", [u, b.const(i64([B, kv, rep, S, D]))], f"{k_.p}/Expand")
        return b.op("Reshape", [e, b.const(i64([B, H, S, D]))], f"{k_.p}/Reshape")

    kh = repeat_kv(k_.heads(k_.proj("x", "k_proj", E, kv * D), [0, 2, 1, 3], kv))
    vh = repeat_kv(k_.heads(k_.proj("x", "v_proj", E, kv * D), [0, 2, 1, 3], kv))
    kt = b.op("Transpose", [kh], f"{k_.p}/Transpose", perm=[0, 1, 3, 2])
    s = b.op("Mul", [b.op("MatMul", [qh, kt], f"{k_.p}/MatMul"), k_.scalar(1.0 / np.sqrt(D))], f"{k_.p}/Mul")
    s = b.op("Add", [s, b.init("causal_mask", causal_additive(NEG_MIN))], f"{k_.p}/Add")
    p = b.op("Softmax", [s], f"{k_.p}/Softmax", axis=-1)
    k_.proj(k_.merge(b.op("MatMul", [p, vh], f"{k_.p}/MatMul")), "o_proj")
    return name, 1, finish(name, b, "", {"x": randn(rng, [B, S, E])})


def mqa_tile():
    """Multi-query attention: one KV head tiled to all heads with Tile
    [1,H,1,1]; Div by sqrt(D); Where causal mask."""
    name = "mqa_tile"
    rng = rng_for(name)
    b = Builder()
    k_ = Block(b, rng, "attn")
    qh = k_.heads(k_.proj("x", "q"), [0, 2, 1, 3])
    reps = b.const(i64([1, H, 1, 1]))
    kh = b.op("Tile", [k_.heads(k_.proj("x", "k", E, D), [0, 2, 3, 1], 1), reps], f"{k_.p}/Tile")
    vh = b.op("Tile", [k_.heads(k_.proj("x", "v", E, D), [0, 2, 1, 3], 1), reps], f"{k_.p}/Tile")
    s = b.op("Div", [b.op("MatMul", [qh, kh], f"{k_.p}/MatMul"), k_.scalar(np.sqrt(D))], f"{k_.p}/Div")
    s = b.op("Where", [b.init("attn.bias", causal_bool()), s, k_.scalar(NEG_MIN)], f"{k_.p}/Where")
    p = b.op("Softmax", [s], f"{k_.p}/Softmax", axis=-1)
    k_.proj(k_.merge(b.op("MatMul", [p, vh], f"{k_.p}/MatMul")), "o")
    return name, 1, finish(name, b, "", {"x": randn(rng, [B, S, E])})


def onnx_attention_op():
    """The ONNX `Attention` op (opset 23) on 4-D q/k/v, is_causal=1, default
    scale; heads split by Reshape+Transpose around it."""
    name = "onnx_attention_op"
    rng = rng_for(name)
    b = Builder()
    k_ = Block(b, rng, "attn")
    qh, kh, vh = (k_.heads(k_.proj("x", n), [0, 2, 1, 3]) for n in ("q", "k", "v"))
    c = b.op("Attention", [qh, kh, vh], f"{k_.p}/Attention", is_causal=1)
    k_.proj(k_.merge(c), "o")
    return name, 1, finish(name, b, "", {"x": randn(rng, [B, S, E])}, opset=23)


def contrib_multihead_attention():
    """com.microsoft `MultiHeadAttention` on 3-D q/k/v [B,S,E] with
    num_heads=4 (no mask): ORT's fused-attention contrib op."""
    name = "contrib_multihead_attention"
    rng = rng_for(name)
    b = Builder()
    k_ = Block(b, rng, "attn")
    q, k, v = (k_.proj("x", n) for n in ("q", "k", "v"))
    b.nodes.append(helper.make_node("MultiHeadAttention", [q, k, v], ["attn/mha"], name="attn/MultiHeadAttention",
                                    domain="com.microsoft", num_heads=H))
    k_.proj("attn/mha", "o")
    return name, 1, finish(name, b, "", {"x": randn(rng, [B, S, E])}, extra_opsets=(("com.microsoft", 1),))


VARIANTS = [
    gpt2_where_causal,
    bert_padding_mask,
    scale_on_q_additive_triangle,
    sqrt_scale_on_q_and_k,
    heads_3d_batched,
    fp16_cast_softmax,
    llama_gqa_expand,
    mqa_tile,
    onnx_attention_op,
    contrib_multihead_attention,
]


def main() -> int:
    cases = []
    for build in VARIANTS:
        name, blocks, (model, feeds) = build()
        outs = write_fixture(f"attention/{name}", model, feeds)
        (y,) = outs.values()
        print(f"attention/{name}: {len(model.graph.node)} nodes, {blocks} block(s), y {y.dtype}{list(y.shape)}")
        cases.append(f"{name} {blocks}\n")
    (FIXTURES / "attention" / "CASES.txt").write_text("".join(cases))
    return 0


if __name__ == "__main__":
    sys.exit(main())
