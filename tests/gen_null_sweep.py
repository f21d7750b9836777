#!/usr/bin/env python3
"""Generates the NULL sweep from the public header: for every TG_API function,
one Criterion test per pointer argument that calls the function with NULL in
that argument and valid values (tests/null_sweep_fixture.c) in the others.

A crash is a failed test (Criterion runs each test in its own process; the
sanitizer build turns every invalid access into one). A function that can fail
must also say so: NULL, -1, NaN, as include/tapegrad.h's "NULL in one
paragraph" promises, unless the header gives NULL a meaning (ALLOWED_NULL).

Run by CMake at build time (the output is build-dir only, never committed):
    gen_null_sweep.py include/tapegrad.h build/test_null_sweep.c
A new function whose argument type or name is not in the tables below stops
the build with a message: add a valid value for it here and in the fixture.
"""
import re
import sys

# A valid value for a pointer argument: (function, parameter) first, then the
# parameter's declaration ("const tg_tensor *t"), then its type alone.
BY_FUNCTION = {
    ("tg_matmul", "b"): "f.xt",
    ("tg_dataset_standardize", "mean"): "f.moments_mean",
    ("tg_dataset_standardize", "std"): "f.moments_std",
    ("tg_dataset_moments", "mean"): "f.moments_mean",
    ("tg_dataset_moments", "std"): "f.moments_std",
    ("tg_dataset_moments", "ds"): "f.ds",
    ("tg_dataset_subset", "ds"): "f.ds",
    ("tg_dataset_split", "ds"): "f.ds",
    ("tg_model_set_config_json", "json"): '"{}"',
    ("tg_config_load", "path"): "f.config_path",
    ("tg_csv_load", "path"): "f.csv_path",
    ("tg_model_save", "path"): "f.path",
    ("tg_model_load", "path"): "f.checkpoint_path",
    ("tg_load_data_for_model", "path"): "f.csv_path",
    ("tg_backward", "loss"): "f.loss",
    ("tg_backward_with", "output"): "f.loss",
    ("tg_binary_cross_entropy", "probs"): "f.p01",
    ("tg_binary_cross_entropy", "target"): "f.p01",
    ("tg_binary_cross_entropy_with_logits", "logits"): "f.x",
    ("tg_binary_cross_entropy_with_logits", "target"): "f.p01",
    ("tg_model_forward_with", "params"): "f.model_params",
    ("tg_layer_type_from_name", "name"): '"relu"',
    ("tg_stratified_folds", "ds"): "f.ds",
    ("tg_train_on_data", "train"): "f.ds",
    ("tg_train_on_data", "validation"): "f.ds",
    ("tg_training_save", "path"): "f.path",
    ("tg_check_save_path", "path"): "f.path",
    ("tg_libsvm_load", "path"): "f.libsvm_path",
    ("tg_sparse_csr_gather", "ds"): "f.sparse_ds",
    ("tg_sparse_csr_new", "row_ptr"): "f.csr_row_ptr",
    ("tg_sparse_csr_new", "col"): "f.csr_col",
    ("tg_sparse_csr_new", "values"): "f.csr_val",
}
BY_DECLARATION = {
    "tg_tensor *a": "f.x",
    "tg_tensor *b": "f.x2",
    "tg_tensor *x": "f.x",
    "tg_tensor *weight": "f.weight",
    "tg_tensor *w": "f.xt",
    "tg_tensor *bias": "f.bias",
    "tg_tensor *logits": "f.logits",
    "tg_tensor *log_probs": "f.logits",
    "tg_tensor *target": "f.target",
    "tg_tensor *loss": "f.loss",
    "tg_tensor *output": "f.loss",
    "const tg_tensor *grad_output": "f.grad_output",
    "tg_tensor *t": "f.x",
    "const tg_tensor *t": "f.x",
    "tg_tensor *const *inputs": "f.inputs",
    "tg_tensor *const *params": "f.params",
    "const int64_t *shape": "f.shape",
    "const int64_t *out_shape": "f.out_shape",
    "const int64_t *idx": "f.idx",
    "const char *images_path": "f.images_path",
    "const char *labels_path": "f.labels_path",
    "const char *json": "f.config_json",
    "const char *base_dir": "f.base_dir",
    "const float *mean": "f.mean",
    "const float *std": "f.std",
    "float *mean": "f.mean",
    "float *std": "f.std",
    "tg_dataset **first": "&f.split_first",
    "tg_dataset **second": "&f.split_second",
    "tg_dataset **train": "&f.train",
    "tg_dataset **validation": "&f.validation",
    "tg_dataset **test": "&f.test",
    "tg_tensor **x": "&f.batch_x",
    "tg_tensor **y": "&f.batch_y",
    "int64_t *n": "&f.batch_rows",
    "int *fold": "f.folds",
    "const int64_t *y": "f.metric_y",
    "const double *probs": "f.metric_probs",
    "const double *score": "f.metric_score",
    "double *fpr": "f.curve_a",
    "double *tpr": "f.curve_b",
    "double *threshold": "f.curve_c",
    "double *mean_predicted": "f.curve_a",
    "double *fraction_positive": "f.curve_b",
    "int64_t *count": "f.curve_count",
}
BY_TYPE = {
    "tg_tape *": "f.tape",
    "const tg_tape *": "f.tape",
    "const void *": "f.probs",
    "void *": "NULL",
    "tg_rng *": "&f.rng",
    "FILE *": "f.out",
    "const tg_ce_opts *": "&f.ce_opts",
    "const tg_csv_opts *": "&f.csv_opts",
    "const tg_gradcheck_opts *": "&f.gradcheck_opts",
    "const tg_optim_opts *": "&f.optim_opts",
    "const tg_custom_op *": "&f.custom_op",
    "tg_gradcheck_report *": "&f.report",
    "const tg_layer_spec *": "f.layers",
    "tg_model *": "f.model",
    "const tg_model *": "f.model",
    "tg_optimizer *": "f.opt",
    "const tg_optimizer *": "f.opt",
    "const tg_dataset *": "f.ds3",
    "tg_dataset *": "f.ds3",
    "char *const *": "f.label_names",
    "tg_eval *": "&f.eval",
    "double *": "f.probs",
    "tg_linear_layer *": "&f.layer",
    "const tg_config *": "f.cfg",
    "tg_config *": "f.cfg",
    "tg_training *": "NULL",
    "const tg_training *": "NULL",  # the fixture has no training run: both-NULL calls must fail too
    "const tg_train_opts *": "&(const tg_train_opts){ 0 }",
    "const tg_io_hooks *": "&f.hooks",
    "const tg_bce_opts *": "&f.bce_opts",
    "const tg_batcher_opts *": "&f.batcher_opts",
    "const tg_libsvm_opts *": "NULL",
    "tg_sparse_csr *": "f.csr",
    "const tg_sparse_csr *": "f.csr",
    "tg_batcher *": "f.batcher",
    "tg_metrics *": "&f.metrics",
    "const tg_batcher *": "f.batcher",
    "const char *": None,  # paths: by function above
    "tg_fn": "sweep_fn",
    "tg_progress_fn": "sweep_progress",
    "tg_lbfgs_fn": "sweep_lbfgs_fn",
    "const tg_penalty *": "&f.penalty",
    "const tg_lbfgs_opts *": "&f.lbfgs_opts",
    "tg_lbfgs_result *": "&f.lbfgs_result",
    "void * (*)(size_t)": "malloc",
    "void * (*)(void *, size_t)": "realloc",
    "void (*)(void *)": "free",
}
# Typedefs that are function pointers (NULL-able like any pointer).
POINTER_TYPEDEFS = {"tg_fn", "tg_progress_fn", "tg_lbfgs_fn"}

# Non-pointer arguments by name.
SCALARS = {
    "ndim": "2", "axis": "-1", "axis0": "0", "axis1": "1", "on": "1", "i": "0", "v": "1.0", "seed": "1",
    "n": "2", "lo": "0.0", "hi": "1.0", "dtype": "TG_F64", "n_inputs": "1", "out_ndim": "2", "n_params": "2",
    "max_norm": "1.0", "lr": "0.1", "fraction": "0.2", "scale": "1.0 / 255", "in": "3", "out": "4", "bias": "1",
    "he": "0", "inputs": "3", "n_layers": "3", "classes": "3", "class_id": "0", "epoch": "0",
    "batch_size": "4", "type": "TG_LAYER_LINEAR", "k": "3", "rows": "10", "positive": "0", "bins": "4",
    "status": "TG_LBFGS_CONVERGED_GRAD",
    "cols": "3", "nnz": "2", "first": "0",
}

# Where the header gives NULL a meaning: the call may succeed.
ALLOWED_NULL = {
    ("tg_linear", "bias"), ("tg_cross_entropy", "opts"), ("tg_nll_loss", "opts"), ("tg_gradcheck", "opts"),
    ("tg_gradcheck", "report"), ("tg_csv_load", "opts"), ("tg_load_data_for_model", "opts"),
    ("tg_model_new", "rng"), ("tg_linear_layer_init", "rng"), ("tg_model_set_config_json", "json"),
    ("tg_set_allocator", "malloc_fn"), ("tg_set_allocator", "realloc_fn"), ("tg_set_allocator", "free_fn"),
    ("tg_set_io_hooks", "hooks"), ("tg_config_parse", "base_dir"), ("tg_train_config", "progress"),
    ("tg_binary_cross_entropy", "opts"), ("tg_binary_cross_entropy_with_logits", "opts"), ("tg_batcher_new", "opts"),
    ("tg_batcher_reset", "shuffle"), ("tg_batcher_next", "y"), ("tg_batcher_rows", "n"),
    ("tg_train_on_data", "validation"), ("tg_train_on_data", "progress"), ("tg_roc_curve", "threshold"),
    ("tg_calibration_curve", "count"), ("tg_train_config_opts", "opts"),
    ("tg_lbfgs_minimize", "opts"), ("tg_lbfgs_minimize", "result"), ("tg_penalty_parts", "p"),
    ("tg_penalty_parts", "l1"), ("tg_penalty_parts", "l2"),
    ("tg_libsvm_load", "opts"), ("tg_sparse_csr_gather", "idx"), ("tg_sparse_linear", "bias"),
}
# Yes/no getters: NULL answers 0 ("no").
ANSWER_ZERO = {"tg_requires_grad", "tg_tape_recording", "tg_tape_set_recording"}

# What a failure looks like, by return type (r is the result).
FAILURE = {
    "int": "r != 0", "int64_t": "r <= 0", "size_t": "r == 0", "double": "isnan(r) || r < 0",
    "uint64_t": "r == 0", "tg_dtype": "(int)r == -1",
}
RELEASE = {
    "tg_tensor *": "tg_tensor_free", "tg_dataset *": "tg_dataset_free", "tg_model *": "tg_model_free",
    "tg_training *": "tg_training_free", "tg_config *": "tg_config_free", "tg_optimizer *": "tg_optimizer_free",
    "tg_tape *": "tg_tape_free",
    "tg_batcher *": "tg_batcher_free",
    "tg_sparse_csr *": "tg_sparse_csr_free",
}


def split_args(text):
    parts, depth, cur = [], 0, ""
    for c in text:
        depth += c == "("
        depth -= c == ")"
        if c == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += c
    if cur.strip():
        parts.append(cur.strip())
    return [] if parts == ["void"] else parts


def parse_param(p):
    """(type, name, is_pointer) of one parameter declaration."""
    fp = re.match(r"(.*)\(\s*\*\s*(\w+)\s*\)\s*\((.*)\)$", p)
    if fp:  # a function pointer: void *(*malloc_fn)(size_t)
        result = re.sub(r"\s*\*\s*", " *", fp.group(1)).strip()
        return f"{result} (*)({fp.group(3)})", fp.group(2), True
    m = re.match(r"(.*?)(\w+)$", p)
    ptype = re.sub(r"\s*\*\s*", " *", m.group(1)).strip().replace("* *", "**")
    return ptype, m.group(2), "*" in ptype or ptype in POINTER_TYPEDEFS


def declarations(header):
    text = re.sub(r"/\*.*?\*/", "", header, flags=re.S)
    text = re.sub(r"TG_DEPRECATED\([^)]*\)", "", text)
    for decl in re.findall(r"TG_API\s+([^;]*?\))\s*;", text, flags=re.S):
        decl = " ".join(decl.split())
        m = re.match(r"(.*?)\b(\w+)\s*\((.*)\)$", decl)
        ret = re.sub(r"\s*\*\s*", " *", m.group(1).strip()).strip()
        yield ret, m.group(2), [parse_param(p) for p in split_args(m.group(3))]


def value_for(fn, ptype, name, is_pointer):
    if not is_pointer:
        if name not in SCALARS:
            sys.exit(f"gen_null_sweep: no value for {fn}'s argument '{ptype} {name}': add it to SCALARS")
        return SCALARS[name]
    decl = f"{ptype}{name}" if ptype.endswith("*") else f"{ptype} {name}"
    for table, key in ((BY_FUNCTION, (fn, name)), (BY_DECLARATION, decl), (BY_TYPE, ptype)):
        if key in table and table[key] is not None:
            return table[key]
    sys.exit(f"gen_null_sweep: no valid value for {fn}'s argument '{decl}': add one to the tables")


def test_for(ret, fn, params, k):
    name = params[k][1]
    args = ["NULL" if i == k else value_for(fn, *p) for i, p in enumerate(params)]
    call = f"{fn}({', '.join(args)})"
    lines = [f"Test(null_sweep, {fn}__{name})", "{", "    sweep_fixture f;", "    sweep_setup(&f);"]
    allowed = (fn, name) in ALLOWED_NULL or params[k][0] == "void *"
    if ret == "void":
        lines.append(f"    {call};")
    else:
        lines.append(f"    {ret}{'' if ret.endswith('*') else ' '}r = {call};")
        if ret.endswith("*"):
            failure = "r == NULL"
        elif fn in ANSWER_ZERO:
            failure = "r == 0"
        else:
            failure = FAILURE[ret]
        if not allowed:
            lines.append(f'    cr_assert({failure}, "{fn} with NULL {name}: expected a failure value ({failure})");')
        lines.append(f"    {RELEASE[ret]}(r);" if ret in RELEASE else "    (void)r;")
    lines += ["    sweep_teardown(&f);", "}", ""]
    return "\n".join(lines)


def main():
    header_path, out_path = sys.argv[1], sys.argv[2]
    with open(header_path, encoding="utf-8") as h:
        decls = list(declarations(h.read()))
    out = [
        "/* GENERATED by tests/gen_null_sweep.py from include/tapegrad.h: do not edit. */",
        "#include <criterion/criterion.h>",
        "#pragma GCC diagnostic ignored \"-Wdeprecated-declarations\" /* deprecated names are swept too */",
        "#include <math.h>",
        "#include <stdlib.h>",
        "",
        '#include "null_sweep_fixture.h"',
        "",
    ]
    functions = tests = 0
    for ret, fn, params in decls:
        pointers = [k for k, p in enumerate(params) if p[2]]
        functions += 1
        for k in pointers:
            out.append(test_for(ret, fn, params, k))
            tests += 1
    out.append(f"/* {functions} functions, {tests} NULL arguments. */\n")
    with open(out_path, "w", encoding="utf-8") as o:
        o.write("\n".join(out))


if __name__ == "__main__":
    main()
