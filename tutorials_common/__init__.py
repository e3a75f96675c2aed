"""Plumbing shared by the transformer, embeddings and lstm packages: the command line, subword
tokenizers, data files and the bench report."""
