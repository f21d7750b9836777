"""What the peer scripts share: reading the benchmark's data files exactly as
the C drivers do, and printing the one-line JSON records bench/run.py reads.
Kept free of torch and sklearn so each script pays only for its own imports."""
import gzip
import json
import resource
import sys

import numpy as np


def emit(**record):
    print(json.dumps(record), flush=True)


def peak_rss_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def load_csv(path):
    """A split written by bench/export_split: features, then the class id; no header."""
    a = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    return a[:, :-1].astype(np.float32), a[:, -1].astype(np.int64)


def standardize(train, *others):
    """Population moments of the training rows; a zero deviation counts as 1
    (sklearn's StandardScaler and tg_dataset_moments agree on both)."""
    mean = train.mean(axis=0, dtype=np.float64)
    std = train.std(axis=0, dtype=np.float64)
    std[std == 0] = 1
    return [((x - mean) / std).astype(np.float32) for x in (train,) + others]


def load_idx(images_path, labels_path):
    """MNIST-format IDX files, pixels scaled to [0, 1] as float32 (tg_idx_load's scale 1/255)."""
    with gzip.open(images_path, "rb") as f:
        raw = f.read()
    n, rows, cols = (int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(3))
    x = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, rows * cols)
    x = (x.astype(np.float64) * (1.0 / 255.0)).astype(np.float32)
    with gzip.open(labels_path, "rb") as f:
        y = np.frombuffer(f.read(), dtype=np.uint8, offset=8).astype(np.int64)
    if len(y) != n:
        sys.exit(f"{labels_path}: {len(y)} labels for {n} images")
    return x, y
