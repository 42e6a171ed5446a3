"""Pictures people would rather look at than read: training curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402


def plot_training_curves(history: list[dict], path: str | Path) -> Path:
    """Training loss and validation Dice against the optimiser step, one PNG with two panels.

    Args:
        history: records with `step` and any of `train_loss`, `val_dice`.
    """
    path = Path(path)
    fig, (ax_loss, ax_dice) = plt.subplots(1, 2, figsize=(10, 4))
    loss = [(h["step"], h["train_loss"]) for h in history if h.get("train_loss") is not None]
    dice = [(h["step"], h["val_dice"]) for h in history if h.get("val_dice") is not None]
    if loss:
        ax_loss.plot(*zip(*loss), color="tab:red")
    ax_loss.set(title="Training loss", xlabel="step", ylabel="loss")
    if dice:
        ax_dice.plot(*zip(*dice), marker="o", color="tab:blue")
        best = max(dice, key=lambda sd: sd[1])
        ax_dice.axhline(best[1], ls=":", color="grey")
        ax_dice.annotate(f"best {best[1]:.3f} @ {best[0]}", best, textcoords="offset points", xytext=(0, -14))
    ax_dice.set(title="Validation Dice", xlabel="step", ylabel="mean Dice", ylim=(0, 1))
    for ax in (ax_loss, ax_dice):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
