"""Benchmarks: `python -m transformer bench`, train-step timing, and the Keras example as the baseline."""
