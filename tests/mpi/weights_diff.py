#!/usr/bin/python3
"""The largest |a - b| over the floating-point tensors two safetensors files
share (read with numpy from the format's header, not with tapegrad).

usage: weights_diff.py A.safetensors B.safetensors"""
import json
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F64": np.float64}


def load(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] not in DTYPES:
            continue
        start, end = info["data_offsets"]
        tensors[name] = np.frombuffer(raw[8 + n + start:8 + n + end], dtype=DTYPES[info["dtype"]])
    return tensors


a, b = load(sys.argv[1]), load(sys.argv[2])
shared = sorted(set(a) & set(b))
if not shared or any(a[k].shape != b[k].shape for k in shared):
    sys.exit(f"weights_diff: {sys.argv[1]} and {sys.argv[2]} hold different tensors")
print(f"{max(float(np.max(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)), initial=0)) for k in shared):.3g}")
