"""scikit-learn's side of the digits comparison, a whole script timed as a
process: load the split, StandardScaler, LogisticRegression (lbfgs,
multinomial, C = 1, run to convergence), test accuracy.

usage: sklearn_digits.py TRAIN.csv TEST.csv
"""
import sys

from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from peers import load_csv

(xtr, ytr), (xte, yte) = load_csv(sys.argv[1]), load_csv(sys.argv[2])
scaler = StandardScaler().fit(xtr)
model = LogisticRegression(solver="lbfgs", max_iter=1000).fit(scaler.transform(xtr), ytr)
print(f"iterations {int(model.n_iter_[0])}")
print(f"test accuracy {model.score(scaler.transform(xte), yte):.4f}")
