"""Label issues by confident learning on out-of-sample predictions.

Every image gets predicted probabilities from a linear head (multinomial logistic regression
on its embedding, scaled to unit length and standardized) trained on the other :data:`FOLDS` - 1 folds (stratified,
seeded), so no image is judged by a model that saw its label. Then, as in Northcutt, Jiang
and Chuang, "Confident Learning: Estimating Uncertainty in Dataset Labels", JAIR 70 (2021):

- the threshold of class j is the mean probability of j over the images labelled j;
- an image is *confidently* of class j when p_j reaches that threshold; among such classes
  it counts for the most probable one (the "confident joint");
- an image labelled y that counts for another class j is a label issue, with j suggested (one
  that counts for no class is not: with classes far apart the thresholds near 1, and a
  mislabelled image predicted at 0.96 may go unflagged; it still ranks high by its score);
- issues are ranked by self-confidence: score = 1 - p_y (higher: more likely mislabelled).

The head is fit with L-BFGS in torch (already a dependency); cleanlab implements the same
rule but is AGPL-3.0, which tlf (MIT) does not depend on.
"""
from __future__ import annotations

import numpy as np
import torch

from .defaults import FOLDS
# weight penalty of the linear head on standardized features, and L-BFGS iterations per fold: on
# the flowers benchmark (docs/audit.md) penalties 1e-2 / 3e-2 / 1e-1 put 92 / 94 / 95% of the flipped
# labels among the top 2x-as-many issues, and 3e-2 flagged fewer correct labels than 1e-2
L2 = 3e-2
STEPS = 20


def stratified_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """The fold of each image: each class shuffled (seeded) and dealt round the folds."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(labels), dtype=np.int64)
    offset = 0
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        fold[members] = (np.arange(len(members)) + offset) % folds
        offset += len(members)
    return fold


def _fit_predict(x: torch.Tensor, y: torch.Tensor, test: torch.Tensor, classes: int) -> torch.Tensor:
    x, test = torch.nn.functional.normalize(x, dim=1), torch.nn.functional.normalize(test, dim=1)
    # standardized features (not pixels); a dimension nearly constant in these training folds is
    # not blown up: spreads are floored at the median spread
    centre, spread = x.mean(0), x.std(0)
    spread = spread.clamp_min(float(spread.median()) + 1e-12)
    x, test = (x - centre) / spread, (test - centre) / spread
    head = torch.nn.Linear(x.shape[1], classes)
    optimizer = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=STEPS, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(head(x), y) + L2 * head.weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return torch.softmax(head(test), dim=1)


def out_of_sample_probabilities(features: np.ndarray, labels: np.ndarray, classes: int, folds: int = FOLDS,
                                seed: int = 0) -> np.ndarray:
    """N x classes probabilities, each row from the head trained without that row's fold."""
    fold = stratified_folds(labels, folds, seed)
    x, y = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)), torch.from_numpy(labels)
    probabilities = np.zeros((len(labels), classes), dtype=np.float32)
    torch.manual_seed(seed)
    for k in range(min(folds, len(labels))):
        test = fold == k
        if test.all():
            continue
        probabilities[test] = _fit_predict(x[~test], y[~test], x[test], classes).numpy()
    return probabilities


def confident_issues(probabilities: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(issue, suggested, score)`` per image by the confident-learning rule (module docstring)."""
    n, classes = probabilities.shape
    thresholds = np.array([probabilities[labels == c, c].mean() if (labels == c).any() else 1.0
                           for c in range(classes)])
    confident = np.where(probabilities >= thresholds - 1e-9, probabilities, -1.0)
    counted = confident.argmax(axis=1)
    has_class = confident.max(axis=1) >= 0
    issue = has_class & (counted != labels)
    others = probabilities.copy()
    others[np.arange(n), labels] = -1.0
    suggested = np.where(issue, counted, others.argmax(axis=1))
    return issue, suggested, 1.0 - probabilities[np.arange(n), labels]


def label_findings(data, folds: int = FOLDS) -> tuple[list, list[dict], str]:
    """The label issues of ``data`` (:class:`tlf.audit.embeddings.Embeddings`), training and
    validation images together; every checked image ranked by its score (label_scores.csv:
    ``flagged`` marks the issues); and a note when some could not be checked."""
    from .findings import Finding
    classes = data.splits.classes
    if len(classes) < 2:
        return [], [], "label issues need two classes or more: not checked"
    labels = np.concatenate([data.labels("train"), data.labels("val")])
    counts = np.bincount(labels, minlength=len(classes))
    probabilities = out_of_sample_probabilities(np.concatenate([data.train, data.val]), labels, len(classes), folds,
                                                data.plan.seed)
    issue, suggested, score = confident_issues(probabilities, labels)
    rows = [("train", i) for i in range(len(data.train))] + [("val", i) for i in range(len(data.val))]
    ranked = sorted(({"path": data.images(split).key(i), "split": split, "label": classes[labels[r]],
                      "suggested": classes[suggested[r]], "score": round(float(score[r]), 6),
                      "p_label": round(float(probabilities[r, labels[r]]), 6),
                      "p_suggested": round(float(probabilities[r, suggested[r]]), 6), "flagged": bool(issue[r])}
                     for r, (split, i) in enumerate(rows) if counts[labels[r]] > 1), key=lambda row: -row["score"])
    found = [Finding("label", row["path"], score=row["score"], label=row["label"], suggested=row["suggested"],
                     split=row["split"], detail=f"p({row['label']}) {row['p_label']:.3f}, "
                                                f"p({row['suggested']}) {row['p_suggested']:.3f}")
             for row in ranked if row["flagged"]]
    lonely = [classes[c] for c in range(len(classes)) if counts[c] == 1]
    return found, ranked, f"classes of one image, not checked: {', '.join(lonely)}" if lonely else ""
