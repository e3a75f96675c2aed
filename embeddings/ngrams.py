"""Words plus hashed word bigrams: the input of the fastText-style classifier.

Joulin et al. (2017), "Bag of Tricks for Efficient Text Classification", section 2.2: a review is
its bag of words and word bigrams; bigrams are not kept in a vocabulary but hashed into a fixed
number of buckets (the hashing trick), each bucket with its own embedding row. Here:

    ids 0, 1            padding, unknown word
    ids 2 .. V-1        the words seen at least `min_count` times in the training reviews
    ids V .. V+B-1      bigram (a, b) of word ids -> V + (a * 1000003 + b) mod B

The bigram hash is a fixed arithmetic function of the two word ids (not Python's salted
``hash``), so the same run gives the same ids in every process. Words: lower case, runs of
letters, digits and apostrophes, and each punctuation mark ("!", "?", ...) as its own token.
"""

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np

from tutorials_common.cliutil import UserError

PAD, UNK = "<pad>", "<unk>"
WORD = re.compile(r"[\w']+|[^\w\s]")
PRIME = 1000003


def words(text):
    return WORD.findall(text.lower())


class NgramTokenizer:
    """Unigram vocabulary + `buckets` hashed bigram ids; `tokens` lists the words only (ids < V)."""

    kind = "ngrams"
    filename = "ngrams.json"

    def __init__(self, vocabulary, buckets):
        if vocabulary[:2] != [PAD, UNK] or buckets < 0:
            raise UserError(
                "damaged n-gram tokenizer (vocabulary must start with <pad>, <unk>; buckets >= 0)"
            )
        self.tokens = list(vocabulary)
        self.buckets = int(buckets)
        self.index = {w: i for i, w in enumerate(self.tokens)}
        self.vocab_size = len(self.tokens)

    @property
    def size(self):
        """Rows the embedding needs: words + bigram buckets."""
        return len(self.tokens) + self.buckets

    @classmethod
    def train(cls, texts, buckets=2**20, min_count=2, max_words=None):
        counts = Counter(w for t in texts for w in words(t))
        kept = [w for w, c in counts.most_common(max_words) if c >= min_count]
        return cls([PAD, UNK] + kept, buckets)

    def word_ids(self, text):
        return np.array([self.index.get(w, 1) for w in words(text)], dtype=np.int64)

    def bigram_ids(self, ids):
        if self.buckets == 0 or len(ids) < 2:
            return np.zeros(0, np.int64)
        return len(self.tokens) + (ids[:-1] * PRIME + ids[1:]) % self.buckets

    def encode_batch(self, texts):
        out = []
        for text in texts:
            ids = self.word_ids(text)
            out.append(np.concatenate([ids, self.bigram_ids(ids)]).astype(np.int32))
        return out

    def split(self, text):
        return words(text)

    def save(self, run_dir):
        (Path(run_dir) / self.filename).write_text(
            json.dumps({"buckets": self.buckets, "tokens": self.tokens}, ensure_ascii=False)
        )

    @classmethod
    def load(cls, run_dir):
        path = Path(run_dir) / cls.filename
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
            return cls(list(meta["tokens"]), int(meta["buckets"]))
        except (ValueError, KeyError, TypeError) as e:
            raise UserError(f"{path}: damaged tokenizer file ({type(e).__name__})") from None
