"""The run report's "Mistakes" and "Evidence" sections (viz/report.py places them; mistakes.py draws them).

Mistakes: the test set's most confident mistakes as one gallery and the accuracy of each class. Evidence:
the maps W_j ⊙ Z_k behind one record's class scores, for the most confident mistake (test record 0 when
there is none), or a note when the network's last dense layer reads no maps.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import numpy as np

from scratchcnn.nn.metrics import confusion_matrix
from scratchcnn.nn.network import Network
from scratchcnn.viz.figures import figures_bytes
from scratchcnn.viz.html import figure_html, pct, table
from scratchcnn.viz.mistakes import (
    evidence_left_out,
    mistakes_from_scores,
    per_class_accuracy,
    plot_evidence,
    plot_mistakes,
)

EQUATION = ("A<sub>j</sub> = Σ<sub>k</sub> Σ<sub>p,q</sub> W<sub>j</sub>(k, p, q) Z<sub>k</sub>(p, q) "
            "+ b<sub>j</sub>")


def mistakes_sections(net: Network, test: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
                      matrix: np.ndarray | None, class_names: Sequence[str]) -> str:
    """Both sections' HTML. test: the test images (N, H, W), labels (N,) and the network's class scores A (N, C)
    of them; without it only the per-class table (from a saved matrix), if there is one."""
    if test is None:
        if matrix is None:
            return ""  # the report's note already says the test set was not found
        return "\n".join(["<h2>Mistakes</h2>", '<p class="note">No gallery of mistakes and no evidence maps: they '
                          "need the test set.</p>", _per_class_table(matrix, class_names)])
    images, labels, scores = test[0], np.asarray(test[1]).astype(np.int64), test[2]
    wrong = int((scores.argmax(axis=1) != labels).sum())
    rows = mistakes_from_scores(scores, labels)
    record = rows[0].index if rows else 0
    figures = {"mistakes": plot_mistakes(images, rows, class_names, wrong=wrong)}
    why_not = evidence_left_out(net)
    if why_not is None:
        figures["evidence"] = plot_evidence(net, images[record], int(labels[record]), class_names,
                                            title=f"Evidence for test image #{record} (true class "
                                                  f"{class_names[labels[record]]}): the maps $W_j \\odot Z_k$")
    drawn = figures_bytes(figures)  # side by side, one per CPU
    if matrix is None:
        matrix = confusion_matrix(labels, scores.argmax(axis=1), len(class_names))
    intro = (f"{wrong:,} of the {len(labels):,} test images are misclassified. Below, the {len(rows)} of them the "
             "network was most sure of, highest probability first: each tile is the test image itself, its "
             "number in the test set, its true class, the predicted class and the probability P the network "
             "gave that class.")
    mistakes = ["<h2>Mistakes</h2>", f"<p>{escape(intro)}</p>",
                figure_html(drawn["mistakes"], "The most confident mistakes on the test set."),
                "<h3>Accuracy of each class</h3>", _per_class_table(matrix, class_names)]
    return "\n".join([*mistakes, _evidence_section(drawn.get("evidence"), why_not, record, bool(rows))])


def _evidence_section(png: bytes | None, why_not: str | None, record: int, is_mistake: bool) -> str:
    text = ("The last dense layer adds up one score per class over the pooled maps Z<sub>k</sub> it reads: "
            f'<span class="eq">{EQUATION}</span> (b<sub>j</sub> = 0 without a bias). Each term '
            "W<sub>j</sub>(k, p, q) Z<sub>k</sub>(p, q) is what pooled pixel (p, q) of map k did to class j: the "
            "maps W<sub>j</sub> ⊙ Z<sub>k</sub> show where the record pushed each class up (red) or down (blue), "
            "the same quantity as the explorer's Evidence panel.")
    if png is None:
        return "\n".join(["<h2>Evidence</h2>", f"<p>{text}</p>",
                          f'<p class="note">No evidence maps: {escape(why_not or "")}.</p>'])
    which = ("the most confident mistake above" if is_mistake else "the first test record (there are no mistakes)")
    caption = (f"Test image #{record}, {which}: the maps W_j ⊙ Z_k of the predicted class and of the "
               f"{'true class' if is_mistake else 'runner-up'}; above each map its sum, in each title their total "
               "A_j and the probability P_j.")
    return "\n".join(["<h2>Evidence</h2>", f"<p>{text}</p>", figure_html(png, caption)])


def _per_class_table(matrix: np.ndarray, class_names: Sequence[str]) -> str:
    """Per class: its test images, how many were right, the accuracy, and the class it was most often taken for."""
    matrix = np.asarray(matrix)
    accuracy = per_class_accuracy(matrix)
    rows = []
    for c, name in enumerate(class_names[: len(matrix)]):
        others = matrix[c].copy()
        others[c] = 0
        confused = f"{class_names[int(others.argmax())]} ({int(others.max())})" if others.max() > 0 else "–"
        rows.append([str(name), f"{int(matrix[c].sum()):,}", f"{int(matrix[c, c]):,}", pct(float(accuracy[c])),
                     confused])
    return table(["class", "test images", "right", "accuracy", "most often taken for (images)"], rows)

