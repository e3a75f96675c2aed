"""Training curves of a Keras run: loss and accuracy per epoch, training vs validation split.

As the TensorFlow "Word embeddings" tutorial plots them from `model.fit`'s history. The training
figures are averages over each epoch (with dropout active), the validation figures are measured
after the epoch, so early in training the validation loss can sit below the training loss.
"""

from pathlib import Path

from tutorials_common.plotting import pyplot


def plot(history, path, title):
    """Two panels (loss, accuracy) from a Keras history dict; returns the PNG's path."""
    plt = pyplot()

    epochs = range(1, len(history["loss"]) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, key, label in ((axes[0], "loss", "binary cross-entropy"), (axes[1], "accuracy", "accuracy")):
        ax.plot(epochs, history[key], "o-", label="training")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], "s--", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if "val_loss" in history:
        best = min(range(len(history["val_loss"])), key=history["val_loss"].__getitem__) + 1
        for ax in axes:
            ax.axvline(best, color="grey", lw=0.8, ls=":")
        axes[0].set_title(f"best validation loss: epoch {best}", fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
