"""The scikit-learn classifiers of feature extraction and the grids their regularisation is chosen from."""
from __future__ import annotations

import numpy as np

from ...errors import TransferkitError

CLASSIFIERS = ("logreg", "linear-svm", "rbf-svm", "knn", "ridge")

#: Default search grids. logreg/linear-svm/ridge: log-spaced, a coarser part of the range Kornblith et al. 2019
#: searched (1e-6..1e5 for C; on standardised features C > 100 is practically unregularised and only slows
#: L-BFGS down); rbf-svm: Hsu, Chang & Lin's "practical guide" C range with gamma='scale'; kNN: the usual
#: small neighbourhoods (Kornblith et al. report k in 1..30).
DEFAULT_GRIDS = {
    "logreg": {"C": np.logspace(-4, 2, 7).tolist()},
    "linear-svm": {"C": np.logspace(-5, 2, 8).tolist()},
    "rbf-svm": {"C": np.logspace(-1, 3, 5).tolist()},
    "knn": {"n_neighbors": [1, 3, 5, 10, 20]},
    "ridge": {"alpha": np.logspace(-2, 5, 8).tolist()},
}
GRID_KEYS = {"logreg": "C", "linear-svm": "C", "rbf-svm": "C", "knn": "n_neighbors", "ridge": "alpha"}


def make_estimator(classifier: str, value=None, *, standardize: bool = True, seed: int = 0):
    """The scikit-learn pipeline of ``classifier`` (one of :data:`CLASSIFIERS`) with its regularisation parameter at
    ``value`` (its default when None), after a StandardScaler when ``standardize``."""
    from sklearn.linear_model import LogisticRegression, RidgeClassifier
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC, LinearSVC

    c = classifier
    kw = {} if value is None else {GRID_KEYS[c]: value}
    clf = {
        "logreg": lambda: LogisticRegression(max_iter=1000, **kw),
        "linear-svm": lambda: LinearSVC(max_iter=5000, random_state=seed, **kw),
        "rbf-svm": lambda: SVC(kernel="rbf", gamma="scale", random_state=seed, **kw),
        "knn": lambda: KNeighborsClassifier(weights="distance", **kw),
        "ridge": lambda: RidgeClassifier(**kw),
    }[c]()
    steps = ([("scale", StandardScaler())] if standardize else []) + [("clf", clf)]
    return Pipeline(steps)


def search_grid(classifier: str, param_grid, n_train_fold: int, owner: str) -> list:
    """The values of ``classifier``'s regularisation parameter to search: ``param_grid`` (a list, one value, a dict
    keyed by the parameter, or "1,10,100" from the command line) or :data:`DEFAULT_GRIDS`; kNN's k capped by the
    training fold's size."""
    key = GRID_KEYS[classifier]
    grid = param_grid if param_grid is not None else DEFAULT_GRIDS[classifier][key]
    if isinstance(grid, dict):
        grid = grid.get(key, grid.get(f"clf__{key}"))
    if isinstance(grid, str):
        grid = [float(v) for v in grid.split(",")]
    if np.isscalar(grid):
        grid = [grid]
    grid = list(grid or [])
    if not grid:
        raise TransferkitError(f"The 'param_grid' parameter of {owner} must give values of {key!r} "
                               f"for classifier {classifier!r}; got {param_grid!r}.")
    if classifier == "knn":
        grid = sorted({min(int(k), n_train_fold) for k in grid})
    return grid
