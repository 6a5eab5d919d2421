#!/usr/bin/python3
"""Reference objective for the linear probe test: scikit-learn's multinomial LogisticRegression.

  sklearn_logreg.py X.bin Y.bin D L2   (X: float32 [N, D] standardized, Y: int64 [N])

Prints mean CE + L2/2 ||W||^2 at sklearn's optimum with C = 1 / (L2 * N) (same objective)."""
import sys

import numpy as np
from sklearn.linear_model import LogisticRegression

x = np.fromfile(sys.argv[1], dtype=np.float32).reshape(-1, int(sys.argv[3])).astype(np.float64)
y = np.fromfile(sys.argv[2], dtype=np.int64)
l2 = float(sys.argv[4])
n = len(y)
m = LogisticRegression(C=1.0 / (l2 * n), max_iter=10000, tol=1e-12).fit(x, y)
p = m.predict_proba(x)
print("%.10f" % (-np.log(p[np.arange(n), y]).mean() + 0.5 * l2 * (m.coef_ ** 2).sum()))
