"""matplotlib for figures written to files: one place that picks the display-free backend."""


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display needed), imported on first use
    so that commands that draw nothing do not pay for matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
