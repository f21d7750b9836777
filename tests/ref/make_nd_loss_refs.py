"""Writes tests/ref/nd_loss_refs.h: reference values for tg_cross_entropy and
tg_nll_loss over inputs [N, C, d1, ..., dk], read by tests/test_loss_nd.c.

Two independent oracles, neither sharing code with tapegrad:
- PyTorch 1.13 (Debian's python3-torch): torch.nn.functional.cross_entropy and
  nll_loss in float64 on seeded inputs, the loss and the gradients with
  respect to the input (and to a probability target);
- the ONNX node tests of SoftmaxCrossEntropyLoss and NegativeLogLikelihoodLoss
  (Debian's python3-onnx): their generators' own inputs and the outputs their
  numpy reference code computes, captured by replacing their `expect`.

Run from the repository root with Debian's interpreter:
    /usr/bin/python3 tests/ref/make_nd_loss_refs.py
The output is deterministic; commit it beside this script.
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nd_loss_refs.h")
torch.set_default_dtype(torch.float64)

# k = 0..3, batch 1 and more
SHAPES = [
    ("k0", [3, 4]),
    ("k0b1", [1, 5]),
    ("k1", [2, 3, 5]),
    ("k1b1", [1, 4, 3]),
    ("k2", [2, 3, 2, 3]),
    ("k2b1", [1, 3, 4, 2]),
    ("k3", [2, 3, 2, 1, 3]),
    ("k3b1", [1, 4, 2, 2, 2]),
]

# (name, op, labels variant or "prob", weighted, ignore_index, label_smoothing, reduction)
# label variants: plain; ign (a third of the positions -100); hi (some set to C + 3, the ignore_index);
# neg (some set to -1, the ignore_index); all (every position -100)
CE_OPTIONS = [
    ("mean", "plain", 0, -100, 0.0, "mean"),
    ("sum", "plain", 0, -100, 0.0, "sum"),
    ("none", "plain", 0, -100, 0.0, "none"),
    ("w_mean", "plain", 1, -100, 0.0, "mean"),
    ("w_ign_mean", "ign", 1, -100, 0.0, "mean"),
    ("w_ii1_none", "plain", 1, 1, 0.0, "none"),
    ("w_ii1_mean", "plain", 1, 1, 0.0, "mean"),
    ("hi_mean", "hi", 0, "hi", 0.0, "mean"),
    ("w_neg_sum", "neg", 1, -1, 0.0, "sum"),
    ("ls_mean", "plain", 0, -100, 0.1, "mean"),
    ("ls_ign_mean", "ign", 0, -100, 0.1, "mean"),
    ("w_ls_ign_mean", "ign", 1, -100, 0.2, "mean"),
    ("w_ls_ign_none", "ign", 1, -100, 0.2, "none"),
    ("ls_full_sum", "plain", 0, -100, 1.0, "sum"),
    ("all_mean", "all", 0, -100, 0.0, "mean"),
    ("all_sum", "all", 1, -100, 0.0, "sum"),
    ("all_none", "all", 0, -100, 0.1, "none"),
    ("prob_mean", "prob", 0, -100, 0.0, "mean"),
    ("prob_w_ls_sum", "prob", 1, -100, 0.1, "sum"),
    ("prob_w_ls_none", "prob", 1, -100, 0.3, "none"),
]
NLL_OPTIONS = [
    ("mean", "plain", 0, -100, 0.0, "mean"),
    ("w_sum", "plain", 1, -100, 0.0, "sum"),
    ("w_ign_none", "ign", 1, -100, 0.0, "none"),
    ("w_ign_mean", "ign", 1, -100, 0.0, "mean"),
    ("neg_mean", "neg", 0, -1, 0.0, "mean"),
    ("w_hi_mean", "hi", 1, "hi", 0.0, "mean"),
    ("all_sum", "all", 0, -100, 0.0, "sum"),
]


def c_doubles(values):
    out = []
    for v in values:
        v = float(v)
        out.append("NAN" if math.isnan(v) else ("INFINITY" if v == math.inf else "%.17g" % v))
    return ", ".join(out)


def c_floats(values):
    return ", ".join("%.9gf" % float(v) for v in values)


def c_ints(values):
    return ", ".join("%d" % int(v) for v in values)


class Writer:
    def __init__(self):
        self.lines = []

    def array(self, ctype, name, text):
        self.lines.append("static const %s %s[] = { %s };" % (ctype, name, text))
        return name


def shape_inputs(w, tag, shape, seed):
    """The inputs one shape's cases share."""
    rng = np.random.RandomState(seed)
    n, c = shape[0], shape[1]
    target_shape = [n] + shape[2:]
    x = rng.uniform(-3, 3, size=shape)
    labels = rng.randint(0, c, size=target_shape)
    probs = rng.uniform(0.05, 1, size=shape)
    probs = probs / probs.sum(axis=1, keepdims=True)
    weight = rng.uniform(0.1, 2, size=[c])
    upstream = rng.uniform(-2, 2, size=target_shape)
    flat = labels.reshape(-1).copy()
    variants = {"plain": flat}
    ign = flat.copy()
    ign[1::3] = -100
    variants["ign"] = ign
    hi = flat.copy()
    hi[::2] = c + 3
    variants["hi"] = hi
    neg = flat.copy()
    neg[2::3] = -1
    neg[0] = -1
    variants["neg"] = neg
    variants["all"] = np.full_like(flat, -100)
    names = {
        "x": w.array("double", "x_%s" % tag, c_doubles(x.reshape(-1))),
        "probs": w.array("double", "p_%s" % tag, c_doubles(probs.reshape(-1))),
        "weight": w.array("double", "w_%s" % tag, c_doubles(weight)),
        "upstream": w.array("double", "g_%s" % tag, c_doubles(upstream.reshape(-1))),
    }
    for v, values in variants.items():
        names["t_" + v] = w.array("int64_t", "t_%s_%s" % (tag, v), c_ints(values))
    data = dict(x=x, probs=probs, weight=weight, upstream=upstream, variants=variants, target_shape=target_shape)
    return names, data


def torch_case(w, op, tag, shape, names, data, option):
    name, variant, weighted, ignore_index, smoothing, reduction = option
    c = shape[1]
    if ignore_index == "hi":
        ignore_index = c + 3
    x = torch.tensor(data["x"], requires_grad=True)
    kw = dict(reduction=reduction)
    if weighted:
        kw["weight"] = torch.tensor(data["weight"])
    probs = None
    if variant == "prob":
        target = probs = torch.tensor(data["probs"], requires_grad=True)
    else:
        target = torch.tensor(data["variants"][variant].reshape(data["target_shape"]))
        kw["ignore_index"] = ignore_index
    if op == "ce":
        kw["label_smoothing"] = smoothing
        loss = F.cross_entropy(x, target, **kw)
    else:
        loss = F.nll_loss(x, target, **kw)
    if reduction == "none":
        assert list(loss.shape) == data["target_shape"], (name, loss.shape)
        loss.backward(torch.tensor(data["upstream"]))
    else:
        loss.backward()
    full = "%s_%s_%s" % (op, tag, name)
    loss_name = w.array("double", "loss_" + full, c_doubles(loss.detach().reshape(-1).tolist()))
    dx_name = w.array("double", "dx_" + full, c_doubles(x.grad.reshape(-1).tolist()))
    dy_name = "NULL"
    if probs is not None:
        dy_name = w.array("double", "dy_" + full, c_doubles(probs.grad.reshape(-1).tolist()))
    shape_text = c_ints(shape)
    labels = "NULL" if variant == "prob" else names["t_" + variant]
    return ('    { "%s", ND_%s, %d, { %s }, %s, %s, %s, %s, %s, %dLL, %.17g, TG_%s, %s, %d, %s, %s },'
            % (full, op.upper(), len(shape), shape_text, names["x"], labels,
               names["probs"] if variant == "prob" else "NULL", names["weight"] if weighted else "NULL",
               names["upstream"], ignore_index, smoothing, reduction.upper(), loss_name, loss.numel(), dx_name,
               dy_name))


ONNX_PICKS = {
    # name in the ONNX test suite: (op, ignore_index attribute or None, reduction)
    "test_sce_mean_3d", "test_sce_none_weights", "test_sce_mean_weight_ii_3d", "test_sce_mean_no_weight_ii_3d",
    "test_sce_mean_weight_ii_4d", "test_sce_mean_no_weight_ii_4d", "test_sce_NCd1_mean_weight_negative_ii",
    "test_sce_NCd1d2d3_sum_weight_high_ii", "test_nllloss_NCd1d2", "test_nllloss_NCd1d2_with_weight_reduction_mean",
    "test_nllloss_NCd1d2_with_weight_reduction_sum_ii", "test_nllloss_NCd1d2_no_weight_reduction_mean_ii",
    "test_nllloss_NCd1_mean_weight_negative_ii", "test_nllloss_NCd1d2d3_none_no_weight_negative_ii",
    "test_nllloss_NCd1d2d3_sum_weight_high_ii",
}


def onnx_cases(w):
    import onnx.backend.test.case.node.negativeloglikelihoodloss as nll_mod
    import onnx.backend.test.case.node.softmaxcrossentropy as sce_mod
    captured = []

    def capture(node, inputs, outputs, name, **kwargs):
        if name in ONNX_PICKS:
            attrs = {a.name: a for a in node.attribute}
            captured.append((name, node.op_type, attrs, inputs, outputs))

    rows = []
    for mod, cls in ((sce_mod, sce_mod.SoftmaxCrossEntropyLoss), (nll_mod, nll_mod.NegativeLogLikelihoodLoss)):
        mod.expect = capture
        for attr in sorted(dir(cls)):
            if attr.startswith("export"):
                getattr(cls, attr)()
    for name, op_type, attrs, inputs, outputs in sorted(captured, key=lambda c: c[0]):
        x, labels = inputs[0], inputs[1]
        weight = inputs[2] if len(inputs) > 2 else None
        reduction = attrs["reduction"].s.decode() if "reduction" in attrs else "mean"
        ignore_index = attrs["ignore_index"].i if "ignore_index" in attrs else -100
        assert x.dtype == np.float32 and labels.dtype == np.int64
        if "ignore_index" not in attrs:
            assert (labels >= 0).all()  # nothing to ignore: -100 stands for "none"
        tag = name[len("test_"):]
        xn = w.array("float", "onnx_x_" + tag, c_floats(x.reshape(-1)))
        tn = w.array("int64_t", "onnx_t_" + tag, c_ints(labels.reshape(-1)))
        wn = w.array("float", "onnx_w_" + tag, c_floats(weight)) if weight is not None else "NULL"
        out = np.asarray(outputs[0]).reshape(-1)
        on = w.array("double", "onnx_loss_" + tag, c_doubles(out))
        op = "ND_CE" if op_type == "SoftmaxCrossEntropyLoss" else "ND_NLL"
        rows.append('    { "%s", %s, %d, { %s }, %s, %s, %s, %dLL, TG_%s, %s, %d },'
                    % (name, op, x.ndim, c_ints(x.shape), xn, tn, wn, ignore_index, reduction.upper(), on, out.size))
    assert len(rows) == len(ONNX_PICKS), sorted(ONNX_PICKS - {r.split('"')[1] for r in rows})
    return rows


def main():
    w = Writer()
    cases = []
    for seed, (tag, shape) in enumerate(SHAPES):
        names, data = shape_inputs(w, tag, shape, 1000 + seed)
        for option in CE_OPTIONS:
            cases.append(torch_case(w, "ce", tag, shape, names, data, option))
        for option in NLL_OPTIONS:
            cases.append(torch_case(w, "nll", tag, shape, names, data, option))
    onnx_rows = onnx_cases(w)
    header = [
        "/* Generated by tests/ref/make_nd_loss_refs.py (%s, numpy %s, onnx %s): do not edit, rerun it."
        % ("torch " + torch.__version__, np.__version__, __import__("onnx").__version__),
        " * PyTorch's float64 values and gradients of F.cross_entropy / F.nll_loss, and the ONNX node tests'",
        " * numpy reference outputs of SoftmaxCrossEntropyLoss / NegativeLogLikelihoodLoss. */",
        "#ifndef TAPEGRAD_ND_LOSS_REFS_H",
        "#define TAPEGRAD_ND_LOSS_REFS_H",
        "",
        "#include <math.h>",
        "#include <stddef.h>",
        "#include <stdint.h>",
        "#include <tapegrad.h>",
        "",
        "typedef enum { ND_CE, ND_NLL } nd_op;",
        "",
        "typedef struct {",
        "    const char *name;",
        "    nd_op op;",
        "    int ndim;",
        "    int64_t shape[5]; /* the input's: [N, C, d1, ..., dk] */",
        "    const double *x; /* logits (ND_CE) or log-probabilities (ND_NLL) */",
        "    const int64_t *labels; /* [N, d1, ..., dk], or NULL for probability targets */",
        "    const double *probs; /* probability targets (the input's shape), or NULL */",
        "    const double *weight; /* [C] or NULL */",
        "    const double *upstream; /* the gradient seeded into a TG_NONE loss (target's shape) */",
        "    int64_t ignore_index;",
        "    double label_smoothing;",
        "    tg_reduction reduction;",
        "    const double *loss;",
        "    int64_t n_loss;",
        "    const double *dx; /* dL/d(input) */",
        "    const double *dy; /* dL/d(probability target), or NULL */",
        "} nd_torch_case;",
        "",
        "typedef struct {",
        "    const char *name; /* the ONNX backend test's name */",
        "    nd_op op;",
        "    int ndim;",
        "    int64_t shape[5];",
        "    const float *x;",
        "    const int64_t *labels;",
        "    const float *weight; /* or NULL */",
        "    int64_t ignore_index; /* -100 where the node has none (no label is negative then) */",
        "    tg_reduction reduction;",
        "    const double *loss; /* numpy's, computed in float32 */",
        "    int64_t n_loss;",
        "} nd_onnx_case;",
        "",
        "/* clang-format off */",
    ]
    footer = ["", "static const nd_torch_case nd_torch_cases[] = {"] + cases + ["};", "",
              "static const nd_onnx_case nd_onnx_cases[] = {"] + onnx_rows + ["};",
              "/* clang-format on */", "", "#endif", ""]
    with open(OUT, "w") as f:
        f.write("\n".join(header + w.lines + footer))
    print("wrote %s: %d PyTorch cases, %d ONNX cases" % (OUT, len(cases), len(onnx_rows)), file=sys.stderr)


if __name__ == "__main__":
    main()
