"""Names and numbers the model never saw: protect them with in-vocabulary surrogates.

A subword model trained on Tatoeba has seen "Tom", "Mary" and "John" thousands of times
and "Anthony Hopkins" never; asked to translate the unseen name it spells out invented
pieces ("Rarj Rjjjog"). Placeholder substitution (Crego et al. 2016, "SYSTRAN's Pure
Neural Machine Translation Systems", section 5) avoids this: before translation every
span that looks like an unseen name, and every number, is replaced by a surrogate the
model copies reliably; after translation the surrogates are replaced by the original
text. Here the surrogates are the corpus' own most frequent names and round numbers,
so the model needs no retraining.

* :func:`protect` -- source text -> (text with surrogates, [(surrogate forms, original)]);
* :func:`restore` -- translation with surrogates -> translation with the originals.

A name span is a run of capitalised words in which some word is rare for the tokenizer
(it is not one piece of the vocabulary); a sentence's first word counts only when it is
followed by another capitalised word (a capitalised verb like "Pagué" is not a name). Numbers are digit groups with
`,`/`.` separators, or of two digits or more (the model writes single digits as it
should, as digits or words). Sentences with more spans than surrogates keep the rest as they are.
"""

import re

# Surrogate names and the forms a translation may give them (Tatoeba translates "Tom"
# as "Tom" or "Tomás", "Mary" as "Mary" or "María", "John" as "John" or "Juan").
NAME_SURROGATES = (("Tom", ("Tom", "Tomás")), ("John", ("John", "Juan")), ("Mary", ("Mary", "María")))
NUMBER_SURROGATES = ("30", "300", "100", "10")  # measured: copied as digits in both directions

WORD = re.compile(r"[^\W\d_][\w'’-]*")
NUMBER = re.compile(r"(?<![\w.,])(?:\d+(?:[.,]\d+)+|\d{2,})(?![\w])")  # single digits translate fine


def _is_capitalised(word):
    return word[0].isupper()


def _is_rare(word, tokenizer):
    """True when the tokenizer needs several pieces for the word (it was rare in training)."""
    return len(tokenizer.encode(word)) > 1 and len(tokenizer.encode(word.lower())) > 1


def name_spans(text, tokenizer):
    """(start, end) character spans of the unseen names in `text`."""
    words = list(WORD.finditer(text))
    spans, run = [], []

    def close():
        if run and any(_is_rare(m.group(), tokenizer) for m in run):
            first = run[0]
            sentence_start = not re.search(r"\w", text[: first.start()])  # "¿Dónde ..." starts a sentence too
            if not sentence_start or len(run) > 1:
                spans.append((run[0].start(), run[-1].end()))
        run.clear()

    for m in words:
        adjacent = run and text[run[-1].end() : m.start()].strip() == ""
        if _is_capitalised(m.group()) and (not run or adjacent):
            run.append(m)
            continue
        close()
        if _is_capitalised(m.group()):
            run.append(m)
    close()
    return spans


def protect(text, tokenizer):
    """Replace unseen names and numbers by surrogates; returns (new text, replacements)
    where each replacement is (forms the surrogate may take in a translation, original)."""
    spans = [(s, e, "name") for s, e in name_spans(text, tokenizer)]
    spans += [(m.start(), m.end(), "number") for m in NUMBER.finditer(text)]
    spans.sort()
    names = [s for s in NAME_SURROGATES if not any(re.search(rf"\b{f}\b", text) for f in s[1])]
    numbers = [n for n in NUMBER_SURROGATES if not re.search(rf"\b{n}\b", text)]
    pieces, replacements, last = [], [], 0
    for start, end, kind in spans:
        pool = names if kind == "name" else numbers
        if not pool or start < last:
            continue
        surrogate = pool.pop(0)
        forms = surrogate[1] if kind == "name" else (surrogate,)
        pieces += [text[last:start], forms[0]]
        replacements.append((forms, text[start:end]))
        last = end
    return "".join(pieces) + text[last:], replacements


def restore(translation, replacements):
    """Put the originals back where the translation has their surrogates."""
    for forms, original in replacements:
        pattern = r"\b(?:" + "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)) + r")\b"
        translation = re.sub(pattern, lambda _, original=original: original, translation)
    return translation
