#!/usr/bin/env python3
"""Generate fixtures for onnxruntime's attention contrib ops under
tests/fixtures/attention_contrib/ (one op node each, outputs by onnxruntime).

Usage (from the repo root):
    .venv/bin/python scripts/gen_contrib_attention_fixtures.py

Cases (tests/tests/attention.rs imports each, checks that it becomes one
`attention` node, and compares with onnxruntime):
    mha_bias_attention_bias  MultiHeadAttention, 3-D q/k/v, packed bias [3E],
                             attention_bias [1, H, S, S]
    mha_unidirectional       MultiHeadAttention, unidirectional=1, scale=0.2
    gqa_no_cache             GroupQueryAttention, 4 query / 2 kv heads,
                             seqlens_k = S - 1, total_sequence_length = S
    gqa_past                 GroupQueryAttention, batch 1, 3 new tokens after a
                             past cache of 5 (seqlens_k = 7), present outputs
Random data is seeded from the case name, so a re-run is byte-identical.
"""

from __future__ import annotations

import sys

import numpy as np
from onnx import TensorProto, helper

from gen_fixtures import make_model, randn, rng_for, write_fixture

B, S, H, D = 2, 7, 4, 8
E = H * D


def model(name, node, inputs, feeds, inits=()):
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(feeds[n].shape)) for n in inputs]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [B, S, E])
    graph = helper.make_graph([node], name, vi, [out], initializer=list(inits))
    return make_model(graph, 17, (("com.microsoft", 1),))


def mha_bias_attention_bias():
    name = "mha_bias_attention_bias"
    rng = rng_for(name)
    feeds = {n: randn(rng, [B, S, E]) for n in ("q", "k", "v")}
    feeds["attention_bias"] = randn(rng, [1, H, S, S])
    bias = helper.make_tensor("bias", TensorProto.FLOAT, [3 * E], randn(rng, [3 * E], 0.5).ravel().tolist())
    node = helper.make_node("MultiHeadAttention", ["q", "k", "v", "bias", "", "attention_bias"], ["y"],
                            domain="com.microsoft", num_heads=H)
    return name, model(name, node, ["q", "k", "v", "attention_bias"], feeds, [bias]), feeds


def mha_unidirectional():
    name = "mha_unidirectional"
    rng = rng_for(name)
    feeds = {n: randn(rng, [B, S, E]) for n in ("q", "k", "v")}
    node = helper.make_node("MultiHeadAttention", ["q", "k", "v"], ["y"], domain="com.microsoft", num_heads=H,
                            unidirectional=1, scale=0.2)
    return name, model(name, node, ["q", "k", "v"], feeds), feeds


def gqa_no_cache():
    name = "gqa_no_cache"
    rng = rng_for(name)
    kv = 2
    feeds = {"q": randn(rng, [B, S, E]), "k": randn(rng, [B, S, kv * D]), "v": randn(rng, [B, S, kv * D])}
    seqlens = helper.make_tensor("seqlens_k", TensorProto.INT32, [B], [S - 1] * B)
    total = helper.make_tensor("total_sequence_length", TensorProto.INT32, [], [S])
    node = helper.make_node("GroupQueryAttention", ["q", "k", "v", "", "", "seqlens_k", "total_sequence_length"],
                            ["y"], domain="com.microsoft", num_heads=H, kv_num_heads=kv)
    return name, model(name, node, ["q", "k", "v"], feeds, [seqlens, total]), feeds


def gqa_past():
    name = "gqa_past"
    rng = rng_for(name)
    kv, past, b, s = 2, 5, 1, 3  # onnxruntime takes one sequence when S > 1 with a cache
    feeds = {"q": randn(rng, [b, s, E]), "k": randn(rng, [b, s, kv * D]), "v": randn(rng, [b, s, kv * D]),
             "past_key": randn(rng, [b, kv, past, D]), "past_value": randn(rng, [b, kv, past, D])}
    seqlens = helper.make_tensor("seqlens_k", TensorProto.INT32, [b], [past + s - 1] * b)
    total = helper.make_tensor("total_sequence_length", TensorProto.INT32, [], [past + s])
    node = helper.make_node("GroupQueryAttention",
                            ["q", "k", "v", "past_key", "past_value", "seqlens_k", "total_sequence_length"],
                            ["y", "present_key", "present_value"], domain="com.microsoft", num_heads=H,
                            kv_num_heads=kv)
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(feeds[n].shape)) for n in feeds]
    outs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [b, s, E])]
    outs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, [b, kv, past + s, D])
             for n in ("present_key", "present_value")]
    graph = helper.make_graph([node], name, vi, outs, initializer=[seqlens, total])
    return name, make_model(graph, 17, (("com.microsoft", 1),)), feeds


def main() -> int:
    for build in (mha_bias_attention_bias, mha_unidirectional, gqa_no_cache, gqa_past):
        name, m, feeds = build()
        outs = write_fixture(f"attention_contrib/{name}", m, feeds)
        print(f"attention_contrib/{name}: " + ", ".join(f"{k} {v.dtype}{list(v.shape)}" for k, v in outs.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
