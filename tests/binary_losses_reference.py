#!/usr/bin/python3
"""Writes tests/binary_losses_reference.h: PyTorch 1.13's values and gradients (float64) for
binary_cross_entropy_with_logits, binary_cross_entropy, softplus and logsigmoid on fixed inputs.
tests/test_binary_losses.c compares tapegrad's ops with these numbers.

Run with Debian's python3-torch:  /usr/bin/python3 tests/binary_losses_reference.py > tests/binary_losses_reference.h
"""
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
gen = torch.Generator().manual_seed(13)


def uniform(shape, lo, hi):
    return lo + (hi - lo) * torch.rand(shape, generator=gen)


def targets(shape):
    """Soft targets in [0, 1] with some exact 0s and 1s."""
    y = torch.rand(shape, generator=gen)
    hard = torch.rand(shape, generator=gen)
    y = torch.where(hard < 0.25, torch.zeros(shape), y)
    return torch.where(hard > 0.75, torch.ones(shape), y)


def c_array(name, t):
    values = t.detach().reshape(-1).tolist()
    body = ", ".join("%.17g" % v for v in values)
    return "static const double %s[] = { %s };" % (name, body)


def c_shape(shape):
    return "{ %s }" % ", ".join(str(d) for d in shape) if len(shape) else "{ 0 }"


lines, rows = [], []


def emit(name, op, x, y=None, weight=None, pos_weight=None, reduction="mean", target_grad=True):
    x = x.clone().requires_grad_(True)
    if y is not None:
        y = y.clone().requires_grad_(target_grad)
    if op == "REF_BCE_LOGITS":
        out = F.binary_cross_entropy_with_logits(x, y, weight=weight, pos_weight=pos_weight, reduction=reduction)
    elif op == "REF_BCE":
        out = F.binary_cross_entropy(x, y, weight=weight, reduction=reduction)
    elif op == "REF_SOFTPLUS":
        out, reduction = F.softplus(x), "none"
    else:
        out, reduction = F.logsigmoid(x), "none"
    upstream = uniform(out.shape, -2, 2) if reduction == "none" else None
    out.backward(upstream if upstream is not None else torch.tensor(1.0))
    fields = {"x": x, "y": y, "w": weight, "pw": pos_weight, "loss": out, "upstream": upstream, "gx": x.grad,
              "gy": y.grad if y is not None and target_grad else None}
    refs = {}
    for key, t in fields.items():
        if t is None:
            refs[key] = "NULL"
        else:
            lines.append(c_array("%s_%s" % (name, key), t))
            refs[key] = "%s_%s" % (name, key)
    shape = lambda t: (t.dim(), c_shape(list(t.shape))) if t is not None else (0, "{ 0 }")
    reduction_enum = {"mean": "TG_MEAN", "sum": "TG_SUM", "none": "TG_NONE"}[reduction]
    rows.append('    { "%s", %s, %d, %s, %s, %s, %d, %s, %s, %d, %s, %s, %s, %s, %s, %s, %s },' % (
        name, op, x.dim(), c_shape(list(x.shape)), refs["x"], refs["y"], *shape(weight), refs["w"],
        *shape(pos_weight), refs["pw"], reduction_enum, refs["loss"], refs["upstream"], refs["gx"], refs["gy"]))


# binary_cross_entropy_with_logits: every shape from 0-D to 4-D, batch 1 and more, every option
L = "REF_BCE_LOGITS"
for reduction in ("mean", "sum", "none"):
    emit("logits_0d_" + reduction, L, uniform([], -3, 3), targets([]), reduction=reduction)
    emit("logits_1d_" + reduction, L, uniform([5], -3, 3), targets([5]), reduction=reduction)
    emit("logits_2d_" + reduction, L, uniform([4, 3], -4, 4), targets([4, 3]), reduction=reduction)
    emit("logits_batch1_" + reduction, L, uniform([1, 3], -4, 4), targets([1, 3]), reduction=reduction)
    emit("logits_3d_pos_weight_" + reduction, L, uniform([2, 3, 4], -4, 4), targets([2, 3, 4]),
         pos_weight=uniform([4], 0.2, 3), reduction=reduction)
    emit("logits_4d_weight_pos_weight_" + reduction, L, uniform([2, 2, 3, 2], -4, 4), targets([2, 2, 3, 2]),
         weight=uniform([2, 1, 1, 1], 0.1, 2), pos_weight=uniform([2], 0.2, 3), reduction=reduction)
emit("logits_0d_weight_pos_weight", L, uniform([], -3, 3), targets([]), weight=torch.tensor(0.7),
     pos_weight=torch.tensor(2.5), reduction="sum")
emit("logits_one_column", L, uniform([6, 1], -4, 4), targets([6, 1]), pos_weight=torch.tensor([3.0]))
emit("logits_2d_weight_full", L, uniform([4, 3], -4, 4), targets([4, 3]), weight=uniform([4, 3], 0, 2))
emit("logits_2d_weight_class", L, uniform([4, 3], -4, 4), targets([4, 3]), weight=uniform([3], 0, 2),
     reduction="none")
emit("logits_2d_weight_row", L, uniform([4, 3], -4, 4), targets([4, 3]), weight=uniform([4, 1], 0, 2))
emit("logits_2d_pos_weight_rows", L, uniform([4, 3], -4, 4), targets([4, 3]), pos_weight=uniform([4, 1], 0.2, 3),
     reduction="sum")
emit("logits_2d_weight_pos_weight", L, uniform([4, 3], -4, 4), targets([4, 3]), weight=uniform([3], 0.1, 2),
     pos_weight=uniform([3], 0.2, 3))
emit("logits_batch1_4d_pos_weight", L, uniform([1, 3, 1, 2], -4, 4), targets([1, 3, 1, 2]),
     pos_weight=uniform([1, 2], 0.2, 3), reduction="none")
emit("logits_large", L, torch.tensor([-60.0, -25.0, -12.0, 0.0, 12.0, 25.0, 60.0, 700.0]),
     torch.tensor([0.0, 1.0, 0.3, 0.5, 1.0, 0.0, 0.7, 1.0]), pos_weight=torch.tensor(1.7), reduction="none")

# binary_cross_entropy on probabilities (a few 0s and 1s: PyTorch clamps each log at -100)
B = "REF_BCE"
for reduction in ("mean", "sum", "none"):
    emit("probs_0d_" + reduction, B, uniform([], 0.02, 0.98), targets([]), reduction=reduction)
    emit("probs_2d_" + reduction, B, uniform([4, 3], 0.02, 0.98), targets([4, 3]), reduction=reduction)
    emit("probs_3d_weight_" + reduction, B, uniform([2, 3, 4], 0.02, 0.98), targets([2, 3, 4]),
         weight=uniform([3, 1], 0.1, 2), reduction=reduction)
emit("probs_1d", B, uniform([5], 0.02, 0.98), targets([5]))
emit("probs_batch1_4d_weight", B, uniform([1, 2, 3, 2], 0.02, 0.98), targets([1, 2, 3, 2]),
     weight=uniform([2], 0.1, 2), reduction="none")
emit("probs_4d_weight_full", B, uniform([2, 2, 2, 2], 0.02, 0.98), targets([2, 2, 2, 2]),
     weight=uniform([2, 2, 2, 2], 0.1, 2), reduction="sum")
# the clamped logs: PyTorch's target gradient is log(1 - p) - log(p) unclamped (inf at 0 and 1), so only dx here
emit("probs_clamped", B, torch.tensor([0.0, 0.0, 1.0, 1.0, 1e-50, 0.5]),
     torch.tensor([0.0, 1.0, 1.0, 0.0, 0.5, 0.25]), reduction="none", target_grad=False)

# softplus (below PyTorch's threshold 20, where it returns x itself) and logsigmoid
emit("softplus_0d", "REF_SOFTPLUS", uniform([], -5, 5))
emit("softplus_2d", "REF_SOFTPLUS", uniform([4, 3], -15, 15))
emit("softplus_4d", "REF_SOFTPLUS", uniform([1, 2, 3, 2], -5, 5))
emit("log_sigmoid_0d", "REF_LOG_SIGMOID", uniform([], -5, 5))
emit("log_sigmoid_3d", "REF_LOG_SIGMOID", uniform([2, 3, 2], -30, 30))
emit("log_sigmoid_large", "REF_LOG_SIGMOID", torch.tensor([-800.0, -40.0, -1e-3, 0.0, 1e-3, 40.0, 800.0]))

print("/* Generated by tests/binary_losses_reference.py with PyTorch %s (float64); do not edit. */" % torch.__version__)
print("/* clang-format off */")
for line in lines:
    print(line)
print("static const bce_reference bce_references[] = {")
for row in rows:
    print(row)
print("};")
print("/* clang-format on */")
