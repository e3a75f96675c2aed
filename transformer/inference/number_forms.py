"""Numbers in a sentence and how the other language writes them (for `names.py`).

Times (7:45; Spanish also 19.30 h), percentages (3.5%, 3,5 %), decimals and digit groups
with either separator (3.5, 3,5, 1,250,000, 1.250.000) and numbers of two digits or more
(years: 1987). English writes 1,250.5 and 3.5%; Spanish 1.250,5 and 3,5 % (the Real Academia's
Ortografía, 2010); a time keeps the colon in both (19:30), and Spanish "19.30 h" becomes
English "19:30". Single digits are left alone: the model writes them as it should.
"""

import re

NUMBER = re.compile(
    r"(?<![\w.,:])(?:(?P<time>\d{1,2}[.:]\d{2}\s?h\b|\d{1,2}:\d{2}(?!\d))"
    r"|(?P<number>\d+(?:[.,]\d+)*)(?P<percent>\s?%)?)(?!\w)"
)
SEPARATORS = {"en": (",", "."), "es": (".", ",")}  # (thousands, decimal)


def convert_number(number, source, target):
    """`number` in `target`'s convention (en 1,250.5 <-> es 1.250,5); as is when either
    language is unknown or both are the same. Two different separators: the last one is
    the decimal point; the same one repeated: thousands; a lone one is a thousands
    separator only when it is the source language's and three digits follow ("1,250" in
    English, "1.250" in Spanish), else a decimal point ("3.5" or "3,5" in either)."""
    groups = re.split(r"([.,])", number)
    seps = groups[1::2]
    if not source or not target or source == target or not seps:
        return number
    if len(seps) == 1:
        decimal = not (seps[0] == SEPARATORS[source][0] and len(groups[2]) == 3)
    else:
        decimal = seps[-1] != seps[0]
    thousands, point = SEPARATORS[target]
    digits = groups[::2]
    if not decimal:
        return thousands.join(digits)
    return f"{thousands.join(digits[:-1])}{point}{digits[-1]}"


def _written(m, source, target):
    """The text of number match `m` as `target` writes it."""
    if m.group("time"):
        same = not target or target == source
        return m.group("time") if same else re.sub(r"[.:](\d\d)\s?h$", r":\1", m.group("time"))
    number = convert_number(m.group("number"), source, target)
    if not m.group("percent"):
        return number
    if not target or target == source:
        return number + m.group("percent")
    return f"{number} %" if target == "es" else f"{number}%"


def number_spans(text, source=None, target=None):
    """[(start, end, kind, text in the target language)] of the numbers in `text`; kind is
    "time", "percent" or "number"."""
    spans = []
    for m in NUMBER.finditer(text):
        kind = "time" if m.group("time") else "percent" if m.group("percent") else "number"
        if kind == "number" and len(m.group()) < 2:
            continue  # single digits translate fine
        spans.append((m.start(), m.end(), kind, _written(m, source, target)))
    return spans
