"""Linear probe on frozen image features (paper 5.3, after CLIP appendix A.3): L2-regularized
multinomial logistic regression (scikit-learn, L-BFGS). When several inverse regularization
strengths C are given, each is fit on 80% of the training features and scored on the other 20%
(a split seeded by `seed`); the best C is then refit on all training features.
"""
from typing import Dict, Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

VALIDATION_FRACTION = 0.2


def _fit(features, labels, c: float, max_iter: int) -> LogisticRegression:
    return LogisticRegression(C=c, max_iter=max_iter).fit(features, labels)


def linear_probe(
    train_features: np.ndarray,
    train_labels: Sequence[int],
    test_features: np.ndarray,
    test_labels: Sequence[int],
    c_values: Sequence[float] = (1.0,),
    max_iter: int = 1000,
    seed: int = 0,
) -> Dict[str, float]:
    """Returns {"top1", "C"} of the probe on the test features."""
    train_labels = np.asarray(train_labels)
    best_c = float(c_values[0])
    if len(c_values) > 1:
        x_fit, x_val, y_fit, y_val = train_test_split(
            train_features, train_labels, test_size=VALIDATION_FRACTION, random_state=seed
        )
        val_scores = [_fit(x_fit, y_fit, c, max_iter).score(x_val, y_val) for c in c_values]
        best_c = float(c_values[int(np.argmax(val_scores))])
    model = _fit(train_features, train_labels, best_c, max_iter)
    return {"top1": float(model.score(test_features, np.asarray(test_labels))), "C": best_c}
