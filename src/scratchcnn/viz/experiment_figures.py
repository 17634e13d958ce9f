"""Pictures of the write-up's two experiments: tuning the learning rate, and overtraining, drawn with matplotlib."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter, StrMethodFormatter

from scratchcnn.viz.figures import integer_ticks, new_figure, series


def plot_tuning(tuning: dict[str, Any]) -> Figure:
    """Learning-rate sweep: final validation accuracy per rate (log axis), and each rate's curve.

    tuning: learning_rates, validation_accuracy (None where diverged), diverged, best_learning_rate, curves.
    """
    rates = np.array(tuning["learning_rates"], float)
    final, diverged = series(tuning["validation_accuracy"]), np.array(tuning["diverged"], bool)
    best = tuning.get("best_learning_rate")
    is_best = np.isclose(rates, best) if best is not None else np.zeros(len(rates), bool)
    fig = new_figure(12.0, 4.8)
    left, right = fig.subplots(1, 2)
    _tuning_finals(left, rates, final, diverged, is_best)
    for n in np.argsort(rates):
        curve = series(tuning["curves"][n])
        right.plot(np.arange(1, len(curve) + 1), curve, marker=".", color=f"C{n % 10}",
                   label=f"η = {rates[n]:g}" + (" (diverged)" if diverged[n] else ""),
                   linestyle="--" if diverged[n] else "-", linewidth=2.5 if is_best[n] else 1.5)
    right.set(xlabel="epoch", ylabel="validation accuracy", title="Validation accuracy after each epoch")
    integer_ticks(right, y=False)
    right.legend(title="learning rate", fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    for ax in (left, right):
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1))
        ax.grid(alpha=0.3)
    fig.suptitle("Tuning the learning rate")
    return fig


def _tuning_finals(ax: Any, rates: np.ndarray, final: np.ndarray, diverged: np.ndarray, is_best: np.ndarray) -> None:
    """Final accuracy against the rate; diverged rates as red x in a shaded strip below the values."""
    ok = ~diverged & np.isfinite(final)
    order = np.argsort(rates)[ok[np.argsort(rates)]]
    ax.plot(rates[order], final[order], "o-", color="C0", label="final validation accuracy")
    if diverged.any():
        low, high = ax.get_ylim() if ok.any() else (0.0, 1.0)
        bottom = low - 0.15 * (high - low)
        ax.set_yticks([t for t in ax.get_yticks() if low <= t <= high])  # no accuracy ticks in the strip
        ax.set_ylim(bottom, high)
        ax.axhspan(bottom, low - 0.03 * (high - low), color="red", alpha=0.07, linewidth=0)
        ax.plot(rates[diverged], np.full(diverged.sum(), (bottom + low) / 2 - 0.015 * (high - low)), "x",
                color="red", markersize=11, markeredgewidth=2.5, label="diverged (loss NaN/∞)")
    for i in np.flatnonzero(is_best & ok)[:1]:
        ax.plot(rates[i], final[i], "*", color="gold", markeredgecolor="black", markersize=18,
                label=f"best: η = {rates[i]:g} ({final[i]:.1%})")
    ax.set_xscale("log")
    ax.set(xlabel="learning rate η (log scale)", ylabel="final validation accuracy",
           title="Final validation accuracy per learning rate")
    ax.legend(loc="best", fontsize=9)


def plot_overtraining(result: dict[str, Any]) -> Figure:
    """Training on few records: accuracy (left) and, when the result has them, loss (right), on those
    records (upper) and on held-out validation data (lower).

    result: train_accuracy, validation_accuracy and optionally train_loss, validation_loss, one per epoch.
    The validation loss shows overtraining more plainly than the accuracy: it rises after its minimum.
    """
    train, val = series(result["train_accuracy"]), series(result["validation_accuracy"])
    losses = [series(result.get(key) or []) for key in ("train_loss", "validation_loss")]
    with_loss = all(np.isfinite(loss).any() for loss in losses)
    n_train, n_val = result.get("train_records", "?"), result.get("validation_records", "?")
    fig = new_figure(13.0 if with_loss else 7.2, 6.4)
    axes = fig.subplots(2, 2 if with_loss else 1, sharex=True, squeeze=False)
    upper, lower = axes[:, 0]
    long = max(len(train), len(val), *(len(loss) for loss in losses)) > 100  # a log axis keeps early epochs visible
    style = "-" if long else ".-"
    upper.plot(np.arange(1, len(train) + 1), train, style, color="C0", label="training accuracy")
    lower.plot(np.arange(1, len(val) + 1), val, style, color="C1", label="validation accuracy")
    perfect = np.flatnonzero(train >= 1.0)
    if len(perfect):
        upper.axvline(perfect[0] + 1, color="0.5", linestyle=":")
        upper.annotate(f"100% from epoch {perfect[0] + 1}", (perfect[0] + 1, 1.0), xytext=(6, -16),
                       textcoords="offset points", fontsize=9)
    if np.isfinite(val).any():
        b = int(np.nanargmax(val))
        star = lower.plot(b + 1, val[b], "*", color="gold", markeredgecolor="black", markersize=15,
                          label=f"best: {val[b]:.1%} at epoch {b + 1}")
        lower.axvline(b + 1, color="0.5", linestyle=":")
        lower.legend(handles=star, loc="lower right")
    upper.set(ylabel="accuracy", title=f"Accuracy on the {n_train} training records")
    lower.set(ylabel="accuracy", title=f"Accuracy on the {n_val} validation records")
    for ax in (upper, lower):
        ax.set_ylim(0, 1.05)
        ax.yaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=0))
    if with_loss:
        _overtraining_losses(axes[0, 1], axes[1, 1], *losses, style, n_train, n_val)
    for ax in axes[1]:
        ax.set_xlabel(f"epoch ({n_train} records each{', log scale' if long else ''})")
    for ax in axes.flat:
        if long:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))  # 1, 10, 100 rather than 10⁰, 10¹, 10²
        else:
            integer_ticks(ax, y=False)
        ax.grid(alpha=0.3, which="major")
    fig.suptitle(f"Overtraining: many epochs on only {n_train} training records")
    return fig


def _overtraining_losses(upper: Any, lower: Any, train: np.ndarray, val: np.ndarray, style: str,
                         n_train: Any, n_val: Any) -> None:
    """Mean cross-entropy per epoch: training (log scale: it falls by orders of magnitude towards 0)
    and validation, with its minimum marked — after it the network is overtraining."""
    upper.plot(np.arange(1, len(train) + 1), train, style, color="C0", label="training loss")
    if np.all(train[np.isfinite(train)] > 0):
        upper.set_yscale("log")
    lower.plot(np.arange(1, len(val) + 1), val, style, color="C1", label="validation loss")
    b = int(np.nanargmin(val))
    lowest = lower.plot(b + 1, val[b], "v", color="gold", markeredgecolor="black", markersize=12,
                        label=f"lowest: {val[b]:.3f} at epoch {b + 1}")
    lower.axvline(b + 1, color="0.5", linestyle=":")
    lower.legend(handles=lowest, loc="best")
    upper.set(ylabel="loss (cross-entropy, log scale)" if upper.get_yscale() == "log" else "loss (cross-entropy)",
              title=f"Loss on the {n_train} training records")
    lower.set(ylabel="loss (cross-entropy)", title=f"Loss on the {n_val} validation records")
