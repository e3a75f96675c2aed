"""Using a trained model: decoding, translate/evaluate, name surrogates, attention of one sentence, export."""
