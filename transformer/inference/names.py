"""Names and numbers the model never saw: protect them with in-vocabulary surrogates.

A subword model trained on Tatoeba has seen "Tom", "Mary" and "John" thousands of times
and "Anthony Hopkins" never; asked to translate the unseen name it spells out invented
pieces ("Rarj Rjjjog"). Placeholder substitution (Crego et al. 2016, "SYSTRAN's Pure
Neural Machine Translation Systems", section 5) avoids this: before translation every
span that looks like an unseen name, and every number, is replaced by a surrogate the
model copies reliably; after translation the surrogates are replaced by the original
text, in the target language's convention (`number_forms.py`; "Mrs." -> "Sra."). The
surrogates are the corpus' own most frequent names, times and round numbers, so the
model needs no retraining.

* :func:`protect` -- source text -> (text with surrogates, [Replacement]);
* :func:`restore` -- translation with surrogates -> translation with the originals.

A name span is a run of capitalised words, with the titles and initials before it
("Dr. Okonkwo", "J. R. R. Tolkien"), that holds a word the model does not know as a
name. What the model knows comes from its training text (`names_words.json`, see
`names_words.py`): a capitalised word is a known name when it was seen capitalised
inside a sentence at least 3 times ("Tom", "Boston"); so "Rosa" inside a sentence is
protected although "rosa" is a word. A sentence's first word is an ordinary word, not a
name, when a training word in lower case shares its first five letters, accents aside
("Pagué": "pagar"; "Mándeme": "mande"; "Yesterday Keanu Reeves"), or, alone before a
lower-case word, when training sentences began with it; "Gwendolyn sings." and "Greta
Thunberg met ..." are protected. A run without the file falls back to the tokenizer: a name must
hold a word that is not one piece of the vocabulary, and a first word counts only when
another capitalised word follows it. Sentences with more spans than surrogates keep the
rest as they are.
"""

import re
import unicodedata
from dataclasses import dataclass
from typing import NamedTuple

from transformer.inference.number_forms import number_spans

# Surrogate names and the forms a translation may give them (Tatoeba translates "Tom"
# as "Tom" or "Tomás", "Mary" as "Mary" or "María", "John" as "John" or "Juan").
NAME_SURROGATES = (("Tom", ("Tom", "Tomás")), ("John", ("John", "Juan")), ("Mary", ("Mary", "María")))
# Numbers and times the models copy as digits, measured greedy on the number and time rows of
# tests/fixtures/names_eval.tsv (en-es, es-en kept of 16 numbers / 10 times): "500" 15, 16;
# "30" 16, 10 (es-en writes "thirty"); "1000" 1, 3. "8:30" 10, 10; "2:30" 0, 10 ("dos y
# media"); "10:00" 6, 10.
NUMBER_SURROGATES = ("500", "300", "100", "30")
TIME_SURROGATES = ("8:30", "10:00")

# Titles of each language and their translation; a feminine one gets the surrogate "Mary".
TITLES = {
    "en": {"Mr.": "Sr.", "Mrs.": "Sra.", "Ms.": "Sra.", "Miss": "Srta.", "Dr.": "Dr.", "Prof.": "Prof."},
    "es": {"Sr.": "Mr.", "Sra.": "Mrs.", "Srta.": "Miss", "Dr.": "Dr.", "Dra.": "Dr.", "Prof.": "Prof."},
}
FEMININE_TITLES = {"Mrs.", "Ms.", "Miss", "Sra.", "Srta.", "Dra."}
STEM_LENGTH = 5

WORD = re.compile(r"[^\W\d_][\w'’-]*")
POSSESSIVE = re.compile(r"['’]s$")
_DOTTED = sorted(
    {t[:-1] for titles in TITLES.values() for t in titles if t.endswith(".")}, key=len, reverse=True
)
ABBREVIATION_END = re.compile(r"(?<!\w)(?:[A-Z]|" + "|".join(_DOTTED) + r")\.$")  # text ends "Dr." or "J."
ABBREVIATION_CHARS = len(_DOTTED[0]) + 1  # the longest text ABBREVIATION_END matches ("Prof.")
WORD_CHAR = re.compile(r"\w")


def stem(word):
    """The word's first five letters in lower case, accents removed ("Mándeme" -> "mande")."""
    letters = unicodedata.normalize("NFD", word.lower())
    return "".join(c for c in letters if not unicodedata.combining(c))[:STEM_LENGTH]


@dataclass(frozen=True)
class Lexicon:
    """What a run's training text says about its source words (`names_words.json`):
    `known`, capitalised words seen at least 3 times inside a sentence; `starts`, the
    other capitalised words that began a sentence; `stems`, the stems of the words seen
    in lower case. Without them (None) the tokenizer rule applies."""

    direction: str = None
    known: frozenset = None
    starts: frozenset = None
    stems: frozenset = None

    @property
    def languages(self):
        return tuple(self.direction.split("-")) if self.direction else (None, None)

    @property
    def has_words(self):
        return None not in (self.known, self.starts, self.stems)

    def knows_name(self, word):
        return POSSESSIVE.sub("", word) in self.known

    def is_word(self, word):
        """True when a sentence's first word is an ordinary word, not a name."""
        return word in self.starts or stem(word) in self.stems


def starts_sentence(text, position, first_word_char=None):
    """True when `position` begins a sentence: nothing but punctuation before it ("¿Dónde"),
    or an end mark, colon or opening quote that is not the dot of a title or initial. It reads
    only the spaces before `position` and a title's length before them (a long line costs no
    more per word); `first_word_char`, where the text's first letter or digit is, spares the
    search for it from the start."""
    if first_word_char is None:
        found = WORD_CHAR.search(text, 0, position)
        first_word_char = found.start() if found else len(text)
    end = position
    while end and text[end - 1].isspace():
        end -= 1
    if first_word_char >= end or text[end - 1] in '!?:;"«“¡¿':
        return True
    return text[end - 1] == "." and not ABBREVIATION_END.search(text, max(end - ABBREVIATION_CHARS, 0), end)


class Replacement(NamedTuple):
    """A protected span: the forms its surrogate may take in a translation, the source
    text, and the text that goes into the translation (the source text, converted)."""

    forms: tuple
    original: str
    translation: str


def _is_rare(word, tokenizer):
    """True when the tokenizer needs several pieces for the word (it was rare in training)."""
    word = POSSESSIVE.sub("", word)
    return len(tokenizer.encode(word)) > 1 and len(tokenizer.encode(word.lower())) > 1


def _title(text, m, lang):
    """The title ("Dr.", "Miss") that word match `m` is, else None."""
    dotted = m.group() + "." if text[m.end() : m.end() + 1] == "." else m.group()
    titles = TITLES[lang] if lang else {**TITLES["en"], **TITLES["es"]}
    return next((t for t in (dotted, m.group()) if t in titles), None)


def _is_abbreviation(text, m, lang):
    """A title, or an initial ("J.")."""
    initial = len(m.group()) == 1 and m.group().isupper() and text[m.end() : m.end() + 1] == "."
    return initial or _title(text, m, lang) is not None


def capitalised_runs(text, lang=None):
    """[(run of word matches, whether it starts a sentence)]: runs of capitalised words
    separated by spaces, or by the dot and space after a title or initial."""
    runs, run = [], []
    for m in WORD.finditer(text):
        capitalised = m.group()[0].isupper()
        if capitalised and run:
            gap = text[run[-1].end() : m.start()].strip()
            if gap == "" or (gap == "." and _is_abbreviation(text, run[-1], lang)):
                run.append(m)
                continue
        if run:
            runs.append(run)
        run = [m] if capitalised else []
    runs += [run] if run else []
    first = WORD_CHAR.search(text)
    return [(r, starts_sentence(text, r[0].start(), first.start() if first else len(text))) for r in runs]


def _name_span(text, run, at_start, tokenizer, lexicon):
    """(start, end, feminine title) of the name in one capitalised run, or None."""
    lang = lexicon.languages[0]
    if at_start and not _is_abbreviation(text, run[0], lang):
        first = run[0].group()
        if not lexicon.has_words:
            if len(run) == 1:  # a lone first word may be a capitalised verb ("Pagué")
                return None
        elif lexicon.is_word(first) if len(run) == 1 else stem(first) in lexicon.stems:
            run = run[1:]  # "Yesterday Keanu Reeves": the first word is an ordinary word
    head = 0  # titles and initials lead the name
    while head < len(run) and _is_abbreviation(text, run[head], lang):
        head += 1
    if head == len(run):
        return None
    words = [m.group() for m in run[head:]]
    known = lexicon.knows_name if lexicon.has_words else lambda w: not _is_rare(w, tokenizer)
    if not head and all(known(w) for w in words):
        return None
    possessive = POSSESSIVE.search(words[-1])  # "Keanu Reeves's" -> the name is "Keanu Reeves"
    end = run[-1].end() - (len(possessive.group()) if possessive else 0)
    return run[0].start(), end, _title(text, run[0], lang) in FEMININE_TITLES


def name_spans(text, tokenizer, lexicon=None):
    """(start, end) character spans of the unseen names in `text` (titles included)."""
    spans = _spans(text, tokenizer, lexicon or Lexicon())
    return [(start, end) for start, end, kind, _, _ in spans if kind == "name"]


def _translated_name(name, lexicon):
    """The name with its titles in the target language ("Mrs. Quispe" -> "Sra. Quispe")."""
    source, target = lexicon.languages
    if not target:
        return name
    for title, translation in TITLES[source].items():
        name = re.sub(rf"(?<!\w){re.escape(title)}(?!\w)", translation, name)
    return name


def _spans(text, tokenizer, lexicon):
    """[(start, end, kind, text for the translation, feminine title)] of `text`, sorted."""
    spans = []
    for run, at_start in capitalised_runs(text, lexicon.languages[0]):
        found = _name_span(text, run, at_start, tokenizer, lexicon)
        if found:
            start, end, feminine = found
            spans.append((start, end, "name", _translated_name(text[start:end], lexicon), feminine))
    spans += [(*span, False) for span in number_spans(text, *lexicon.languages)]
    return sorted(spans)


def _pools(text):
    """The surrogates of each kind that `text` does not hold already."""

    def free(forms):
        return not any(re.search(rf"(?<!\w){re.escape(f)}(?!\w)", text) for f in forms)

    numbers = [(n, (n,)) for n in NUMBER_SURROGATES if free((n,))]
    percents = [
        (n, (f"{n} por ciento", f"{n} percent", f"{n} per cent", f"{n} %", f"{n}%", n)) for n, _ in numbers
    ]
    return {
        "name": [s for s in NAME_SURROGATES if free(s[1])],
        "number": numbers,
        "percent": percents,
        "time": [(t, (t,)) for t in TIME_SURROGATES if free((t,))],
    }


def protect(text, tokenizer, lexicon=None):
    """Replace unseen names and numbers by surrogates; returns (new text, [Replacement]).

    `lexicon` (`names_words.lexicon_of(run)`) holds the run's direction and word
    statistic; without one the tokenizer rule applies and numbers keep their form."""
    lexicon = lexicon or Lexicon()
    pools, pieces, replacements, last = _pools(text), [], [], 0
    for start, end, kind, translation, feminine in _spans(text, tokenizer, lexicon):
        pool = sorted(pools[kind], key=lambda s: s[0] != "Mary") if feminine else pools[kind]
        if not pool or start < last:
            continue
        surrogate, forms = pool[0]
        _take(pools, kind, surrogate)
        pieces += [text[last:start], surrogate]
        replacements.append(Replacement(forms, text[start:end], translation))
        last = end
    return "".join(pieces) + text[last:], replacements


def _take(pools, kind, surrogate):
    """Remove `surrogate` from its pool (numbers and percentages share theirs)."""
    for key in ("number", "percent") if kind in ("number", "percent") else (kind,):
        pools[key] = [s for s in pools[key] if s[0] != surrogate]


def restore(translation, replacements):
    """Put the originals (in the target's convention) back where the translation has their surrogates."""
    for forms, _, text in replacements:
        pattern = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
        translation = re.sub(rf"(?<!\w)(?:{pattern})(?!\w)", lambda _, text=text: text, translation)
    return translation
