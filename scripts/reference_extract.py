#!/usr/bin/env python3
"""Independent reference for `rws extract`: the projection residual computed with numpy from the
same ONNX files, written as JSON {signature: {tensor: [float, ...]}} (float64, repr-exact).

    pip install numpy onnx
    python3 scripts/reference_extract.py --init t0.onnx --standard std.onnx \
        --robust fog=fog.onnx --robust snow=snow.onnx --layers 5 > ref.json

It shares no code with rws: ONNX is read with the `onnx` package, tensors are chosen by walking
graph.node in order (Conv/ConvTranspose/Gemm/MatMul with an initializer weight, then its bias and
the BatchNormalization that consumes its output), and the residual is
d_c - (<d_c, d_std> / <d_std, d_std>) * d_std in float64, or d_c when d_std is zero.
crates/rws-lab/tests/extract.rs compares rws with its committed outputs (tests/data/extract/,
written by `cargo run -p rws-lab --example make_extract_refs`) and, with RWS_LIVE_REFERENCE=1
(.ci/run), with the script run live.
"""
import argparse
import json
import sys

import numpy as np
import onnx
from onnx import numpy_helper

WEIGHT_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def initializers(path):
    model = onnx.load(path)
    return model, {t.name: numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}


def select(model, inits, layers):
    chosen = []
    count = 0
    nodes = list(model.graph.node)
    for node in nodes:
        if node.op_type not in WEIGHT_OPS:
            continue
        if count == layers:
            break
        if len(node.input) < 2 or node.input[1] not in inits:
            continue
        count += 1
        for name in node.input[1:3]:
            if name in inits and name not in chosen:
                chosen.append(name)
        for bn in nodes:
            if bn.op_type == "BatchNormalization" and bn.input[0] == node.output[0]:
                for name in bn.input[1:5]:
                    if name in inits and name not in chosen:
                        chosen.append(name)
    return chosen


def residual(d_c, d_std):
    d_c, d_std = d_c.ravel(), d_std.ravel()
    norm2 = float(np.dot(d_std, d_std))
    if norm2 == 0.0:
        return d_c
    return d_c - (float(np.dot(d_c, d_std)) / norm2) * d_std


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--init", required=True)
    ap.add_argument("--standard", required=True)
    ap.add_argument("--robust", action="append", required=True)
    ap.add_argument("--layers", type=int, default=5)
    args = ap.parse_args()
    model0, t0 = initializers(args.init)
    names = select(model0, t0, args.layers)
    _, tstd = initializers(args.standard)
    out = {}
    for spec in args.robust:
        sig, path = spec.split("=", 1)
        _, tc = initializers(path)
        out[sig] = {n: residual(tc[n] - t0[n], tstd[n] - t0[n]).tolist() for n in names}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
