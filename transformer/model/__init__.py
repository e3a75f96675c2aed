"""The model, in the article's order: attention, then the layers, then the encoder-decoder."""
