#!/usr/bin/python3
"""Checks a tapegrad checkpoint against PyTorch, both ways.

    /usr/bin/python3 tests/torch_roundtrip.py MODEL.safetensors CASES.csv [OUT.safetensors]

1. Reads MODEL.safetensors (written by tg_model_save), builds the equivalent
   torch.nn.Sequential from its __metadata__ "layers", "inputs" and "dtype",
   and loads the tensors with load_state_dict(strict=True): the names and
   shapes must match PyTorch's exactly. A training checkpoint (written by
   tg_training_save: __metadata__ has "training") loads with strict=False:
   nothing may be missing, and every unexpected key must be a "training." one.
2. Runs the network on the inputs in CASES.csv and compares with the logits
   tapegrad computed. CASES.csv has one row per example: the network's inputs
   (already standardized, as fed to tg_model_forward) followed by the expected
   logits; an optional header row (any non-numeric first cell) is skipped.
3. Writes model.state_dict() back to OUT.safetensors with the same metadata,
   for tg_model_load to read. The reference writer's layout is kept: names
   sorted, offsets contiguous from 0, header padded with spaces to 8 bytes.

Uses the safetensors package when it is installed, else reads and writes the
format with struct + json (Debian 12 does not package safetensors).
Exit status 0 when every logit agrees, 1 when one does not, 2 on bad input.
"""
import argparse
import csv
import ctypes
import json
import math
import struct
import sys

import torch

try:
    from safetensors import safe_open
    from safetensors.torch import save_file
except ImportError:  # the plain reader and writer below do the same
    safe_open = save_file = None

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64}
DTYPE_NAMES = {torch.float32: "F32", torch.float64: "F64"}
MAX_HEADER = 100_000_000


class Bad(Exception):
    pass


def read_safetensors(path):
    """(tensors by name, metadata dict), checking the layout like tg_model_load."""
    if safe_open is not None:
        with safe_open(path, framework="pt") as f:
            return {name: f.get_tensor(name) for name in f.keys()}, dict(f.metadata() or {})
    if sys.byteorder != "little":
        raise Bad("this plain reader assumes a little-endian host; install safetensors")
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise Bad(f"{path}: {len(blob)} bytes, too short for the header length")
    (n,) = struct.unpack("<Q", blob[:8])
    if n >= MAX_HEADER or 8 + n > len(blob):
        raise Bad(f"{path}: header length {n} does not fit a {len(blob)}-byte file")
    header = json.loads(blob[8 : 8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    data = memoryview(blob)[8 + n :]
    tensors, end = {}, 0
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
        begin, stop = info["data_offsets"]
        dtype = DTYPES.get(info["dtype"])
        if dtype is None:
            raise Bad(f"{path}: tensor {name!r} has dtype {info['dtype']!r}, expected F32, F64 or I64")
        shape = info["shape"]
        size = math.prod(shape) * torch.tensor([], dtype=dtype).element_size()
        if begin != end or stop - begin != size:
            raise Bad(f"{path}: tensor {name!r} data_offsets {[begin, stop]} do not follow {end} "
                      f"with {size} bytes")
        end = stop
        chunk = bytearray(data[begin:stop])  # a writable copy: frombuffer shares memory
        flat = torch.frombuffer(chunk, dtype=dtype) if chunk else torch.empty(0, dtype=dtype)
        tensors[name] = flat.reshape(shape)
    if end != len(data):
        raise Bad(f"{path}: tensors end at byte {end} of a {len(data)}-byte data section")
    return tensors, metadata


def tensor_bytes(t):
    t = t.detach().contiguous().cpu()
    return ctypes.string_at(t.data_ptr(), t.numel() * t.element_size())


def write_safetensors(path, tensors, metadata):
    if save_file is not None:
        save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata=metadata)
        return
    header, offset = {"__metadata__": metadata}, 0
    names = sorted(tensors)
    for name in names:
        t = tensors[name]
        size = t.numel() * t.element_size()
        header[name] = {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name in names:
            f.write(tensor_bytes(tensors[name]))


def build_model(metadata):
    """The torch.nn.Sequential that __metadata__ describes."""
    for key in ("layers", "inputs", "dtype"):
        if key not in metadata:
            raise Bad(f"__metadata__ has no {key!r}: not a tapegrad checkpoint")
    dtype = {"float32": torch.float32, "float64": torch.float64}[metadata["dtype"]]
    width = int(metadata["inputs"])
    layers = []
    for spec in json.loads(metadata["layers"]):
        kind = spec["type"]
        if kind == "linear":
            layers.append(torch.nn.Linear(width, spec["out"], bias=spec["bias"]))
            width = spec["out"]
        elif kind in ("relu", "sigmoid", "tanh"):
            layers.append({"relu": torch.nn.ReLU, "sigmoid": torch.nn.Sigmoid, "tanh": torch.nn.Tanh}[kind]())
        else:
            raise Bad(f"unknown layer type {kind!r}")
    return torch.nn.Sequential(*layers).to(dtype), int(metadata["inputs"]), width, dtype


def read_cases(path, inputs, classes, dtype):
    xs, ys = [], []
    with open(path, newline="") as f:
        for line, row in enumerate(csv.reader(f), 1):
            if not row:
                continue
            try:
                values = [float(cell) for cell in row]
            except ValueError:
                if line == 1:
                    continue  # a header
                raise Bad(f"{path}:{line}: a non-numeric cell")
            if len(values) != inputs + classes:
                raise Bad(f"{path}:{line}: {len(values)} cells, expected {inputs} inputs + {classes} logits")
            xs.append(values[:inputs])
            ys.append(values[inputs:])
    if not xs:
        raise Bad(f"{path}: no rows")
    return torch.tensor(xs, dtype=dtype), torch.tensor(ys, dtype=dtype)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a checkpoint written by tg_model_save")
    parser.add_argument("cases", help="CSV: inputs then expected logits, one row per example")
    parser.add_argument("out", nargs="?", help="where to write the state_dict back as safetensors")
    args = parser.parse_args()
    try:
        tensors, metadata = read_safetensors(args.model)
        model, inputs, classes, dtype = build_model(metadata)
        if "training" in metadata:
            result = model.load_state_dict(tensors, strict=False)
            extra = [k for k in result.unexpected_keys if not k.startswith("training.")]
            if result.missing_keys or extra or not result.unexpected_keys:
                raise Bad(f"strict=False load: missing {result.missing_keys}, unexpected non-training keys {extra}")
            print(f"{args.model}: a training checkpoint; load_state_dict(strict=False) ignored "
                  f"{len(result.unexpected_keys)} training.* tensors")
        else:
            model.load_state_dict(tensors, strict=True)
        x, expected = read_cases(args.cases, inputs, classes, dtype)
    except (Bad, OSError, ValueError, KeyError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    with torch.no_grad():
        logits = model(x)
    # float32 sums may be taken in another order than tapegrad's: a few ulps apart
    rtol, atol = (1e-5, 1e-6) if dtype == torch.float32 else (1e-12, 1e-12)
    worst = (logits - expected).abs().max().item()
    ok = torch.allclose(logits, expected, rtol=rtol, atol=atol)
    print(f"{args.model}: {len(model)} layers, {sum(p.numel() for p in model.parameters())} parameters, "
          f"{metadata['dtype']}; {x.shape[0]} rows, max |torch - tapegrad| = {worst:.3g} "
          f"({'within' if ok else 'OUTSIDE'} rtol {rtol:g}, atol {atol:g})")

    if args.out:
        state = model.state_dict()
        write_safetensors(args.out, state, dict(metadata))
        again, _ = read_safetensors(args.out)
        same = again.keys() == state.keys() and all(torch.equal(again[k], state[k]) for k in state)
        print(f"wrote {args.out}: {len(state)} tensors ({', '.join(sorted(state))}), "
              f"{'re-read identical' if same else 'RE-READ DIFFERS'}")
        ok = ok and same
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
