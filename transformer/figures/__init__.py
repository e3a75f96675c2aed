"""Figures: attention heat maps, training curves and data statistics, the article's demos."""
