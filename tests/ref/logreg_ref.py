#!/usr/bin/python3
"""Reference optima for tests/test_penalty.c: multinomial logistic regression
with scikit-learn's objective C * sum_i loss_i + R(W) (biases unpenalized) on
data standardized exactly as tapegrad standardizes it (float32 moments from
double sums, then (x - mean) / std in float32).

L2: scikit-learn's newton-cg (tol 1e-10), then polished with full Newton steps
in float64 (the issue allows it; newton-cg may stop a little short), until the
gradient's max norm is below 1e-9. L1: scikit-learn's saga run to a tight
tolerance (and elasticnet, l1_ratio 0.5, the same way). Writes tests/ref/logreg_ref.h; run with Debian's /usr/bin/python3
(scikit-learn 1.2). Usage: tests/ref/logreg_ref.py [output]"""
import sys, os, warnings
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.exceptions import ConvergenceWarning

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "data")


def load(name, label_col):
    raw = np.genfromtxt(os.path.join(DATA, name), delimiter=",", skip_header=1, dtype=str)
    labels = raw[:, label_col]
    x = np.delete(raw, label_col, axis=1).astype(np.float64).astype(np.float32)
    return x, labels


def standardize(x32):
    mean = x32.astype(np.float64).mean(axis=0)
    std = np.sqrt(((x32.astype(np.float64) - mean) ** 2).mean(axis=0))
    mean32, std32 = mean.astype(np.float32), std.astype(np.float32)
    std32[std32 == 0] = 1
    return ((x32 - mean32) / std32).astype(np.float32).astype(np.float64)


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def objective(W, b, X, Y, C, l1_ratio):
    """C * sum loss + l1_ratio |W|_1 + (1 - l1_ratio) |W|^2 / 2 (l2: l1_ratio 0; l1: 1)."""
    P = softmax(X @ W.T + b)
    loss = -np.sum(Y * np.log(P))
    return C * loss + l1_ratio * np.abs(W).sum() + (1 - l1_ratio) * 0.5 * np.sum(W * W)


def newton_polish(W, b, X, Y, C):
    """Full Newton steps on [W b] for the L2 objective; lstsq absorbs the intercepts' shift invariance."""
    n, d = X.shape
    K = Y.shape[1]
    Xt = np.hstack([X, np.ones((n, 1))])
    theta = np.hstack([W, b[:, None]])
    reg = np.ones(d + 1)
    reg[-1] = 0
    for _ in range(30):
        P = softmax(Xt @ theta.T)
        G = C * (P - Y).T @ Xt + theta * reg
        if np.abs(G).max() < 1e-10:
            break
        H = np.zeros((K, d + 1, K, d + 1))
        for k in range(K):
            for l in range(K):
                s = P[:, k] * ((k == l) - P[:, l])
                H[k, :, l, :] = C * (Xt.T * s) @ Xt
            H[k, :, k, :] += np.diag(reg)
        step = np.linalg.lstsq(H.reshape(K * (d + 1), -1), -G.ravel(), rcond=1e-13)[0]
        theta = theta + step.reshape(K, d + 1)
    P = softmax(Xt @ theta.T)
    G = C * (P - Y).T @ Xt + theta * reg
    assert np.abs(G).max() < 1e-8, np.abs(G).max()
    return theta[:, :d], theta[:, d], np.abs(G).max()


def binary_polish(w, b, X, y01, C):
    """Full Newton steps on [w b] for scikit-learn's binary objective C * sum loss + |w|^2 / 2 (one-output model)."""
    n, d = X.shape
    Xt = np.hstack([X, np.ones((n, 1))])
    theta = np.append(w, b)
    reg = np.ones(d + 1)
    reg[-1] = 0
    for _ in range(30):
        p = 1 / (1 + np.exp(-(Xt @ theta)))
        g = C * Xt.T @ (p - y01) + reg * theta
        if np.abs(g).max() < 1e-10:
            break
        H = C * (Xt.T * (p * (1 - p))) @ Xt + np.diag(reg)
        theta = theta + np.linalg.solve(H, -g)
    p = 1 / (1 + np.exp(-(Xt @ theta)))
    g = C * Xt.T @ (p - y01) + reg * theta
    assert np.abs(g).max() < 1e-8, np.abs(g).max()
    return theta[:d], theta[d], np.abs(g).max()


def case_binary(X, y, C):
    """The one-output model (binary_cross_entropy): scikit-learn's binary LogisticRegression, newton-cg, polished."""
    classes = np.unique(y)
    y01 = (y == classes[1]).astype(np.float64)  # the positive class sorts second, as scikit-learn's classes_[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = LogisticRegression(solver="newton-cg", tol=1e-10, C=C, max_iter=10000).fit(X, y)
    w, b, gnorm = binary_polish(m.coef_[0], m.intercept_[0], X, y01, C)
    z = X @ w + b
    p = 1 / (1 + np.exp(-z))
    loss = np.sum(y01 * np.logaddexp(0, -z) + (1 - y01) * np.logaddexp(0, z))  # softplus: no log(1 - p) of p = 1
    obj = C * loss + 0.5 * np.sum(w * w)
    return w[None, :], np.array([b]), obj, np.stack([1 - p, p], axis=1), gnorm


def two_rows(coef, intercept, K):
    """scikit-learn keeps one row for a binary multinomial fit; the 2-output model's rows are -v/2, +v/2."""
    if coef.shape[0] == K:
        return coef, intercept
    return np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])


def case_l2(X, y, C):
    classes = np.unique(y)
    Y = (y[:, None] == classes[None, :]).astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m = LogisticRegression(multi_class="multinomial", solver="newton-cg", tol=1e-10, C=C, max_iter=10000).fit(X, y)
    W, b = two_rows(m.coef_, m.intercept_, len(classes))
    W, b, gnorm = newton_polish(W, b, X, Y, C)
    return W, b, objective(W, b, X, Y, C, 0.0), softmax(X @ W.T + b), gnorm


def case_l1(X, y, C, l1_ratio=1.0):
    """saga, tight: l1 (l1_ratio 1) or elasticnet."""
    classes = np.unique(y)
    Y = (y[:, None] == classes[None, :]).astype(np.float64)
    penalty = "l1" if l1_ratio == 1.0 else "elasticnet"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m = LogisticRegression(multi_class="multinomial", solver="saga", penalty=penalty, tol=1e-14, C=C,
                               l1_ratio=None if penalty == "l1" else l1_ratio, max_iter=2000000).fit(X, y)
    W, b = m.coef_, m.intercept_
    return W, b, objective(W, b, X, Y, C, l1_ratio), softmax(X @ W.T + b), 0.0


def c_array(name, values, fmt="%.17g"):
    flat = np.asarray(values).ravel()
    body = ",".join(fmt % v for v in flat)
    return "static const double %s[%d] = {%s};\n" % (name, len(flat), body)


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "logreg_ref.h")
    x_iris, y_iris = load("iris.csv", -1)
    x_digits, y_digits = load("digits.csv", -1)
    x_cancer, y_cancer = load("breast_cancer.csv", -1)
    binary = y_iris != "setosa"  # versicolor against virginica: rows 51 to 150 of data/iris.csv
    sets = {"iris": (standardize(x_iris), y_iris), "iris_binary": (standardize(x_iris[binary]), y_iris[binary]),
            "digits": (standardize(x_digits), y_digits), "breast_cancer": (standardize(x_cancer), y_cancer)}
    digit_rows = np.arange(0, len(y_digits), 9)  # the probabilities of every 9th row are stored
    out = ["/* Generated by tests/ref/logreg_ref.py (scikit-learn %s): do not edit. */\n" %
           __import__("sklearn").__version__]
    cases = []
    for name in ["iris", "iris_binary", "digits"]:
        for C in [0.01, 1.0, 100.0]:
            cases.append((name, "l2", C))
    for name in ["iris_binary", "breast_cancer"]:
        for C in [0.01, 1.0, 100.0]:
            cases.append((name, "bce_l2", C))
    cases.append(("iris", "l1", 0.1))
    cases.append(("iris", "l1", 1.0))
    cases.append(("iris", "elasticnet", 1.0))
    entries = []
    for i, (name, pen, C) in enumerate(cases):
        X, y = sets[name]
        l1_ratio = {"l2": 0.0, "bce_l2": 0.0, "l1": 1.0, "elasticnet": 0.5}[pen]
        if pen == "bce_l2":
            W, b, obj, P, gnorm = case_binary(X, y, C)
        else:
            W, b, obj, P, gnorm = case_l2(X, y, C) if pen == "l2" else case_l1(X, y, C, l1_ratio)
        rows = digit_rows if name == "digits" else np.arange(len(y))
        print("%-12s %s C=%-6g objective %.15g  grad %.2e  zeros %d" % (name, pen, C, obj, gnorm, np.sum(W == 0)),
              file=sys.stderr)
        out.append(c_array("ref%d_proba" % i, P[rows], "%.12g"))
        out.append(c_array("ref%d_zero" % i, (W == 0).astype(float), "%.0f"))
        entries.append('{"%s", "%s", %.17g, %.17g, %.17g, %d, %d, %d, ref%d_proba, ref%d_zero}' %
                       (name, pen, C, l1_ratio, obj, len(rows), P.shape[1], 9 if name == "digits" else 1, i, i))
    out.append("typedef struct {\n    const char *data, *penalty;\n    double C, l1_ratio, objective;\n"
               "    int rows, classes, row_step; /* probabilities of rows 0, row_step, 2 row_step, ... */\n"
               "    const double *proba, *zero; /* [rows * classes]; [classes * features]: 1 where W is exactly 0 */\n"
               "} logreg_ref;\n")
    out.append("static const logreg_ref logreg_refs[] = {\n    " + ",\n    ".join(entries) + "\n};\n")
    with open(out_path, "w") as f:
        f.writelines(out)


if __name__ == "__main__":
    main()
