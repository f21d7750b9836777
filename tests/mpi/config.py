#!/usr/bin/python3
"""Writes a copy of an example config with its data paths made absolute and
some values replaced, for scripts/test-mpi.sh and bench/mpi.py.

usage: config.py EXAMPLE.json OUT.json [section.key=JSON ...]
   e.g. config.py examples/digits.json /tmp/d.json train.epochs=1
"""
import json
import os
import sys

source, out, *overrides = sys.argv[1:]
with open(source) as f:
    config = json.load(f)
where = os.path.dirname(os.path.abspath(source))
for key in ("train", "test", "train_labels", "test_labels"):
    path = config["data"].get(key)
    if isinstance(path, str) and not os.path.isabs(path):
        config["data"][key] = os.path.normpath(os.path.join(where, path))
for item in overrides:
    name, value = item.split("=", 1)
    *parents, last = name.split(".")
    node = config
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = json.loads(value)
with open(out, "w") as f:
    json.dump(config, f, indent=1)
