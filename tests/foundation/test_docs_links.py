"""The documentation's links work: every relative link and image in README.md and docs/*.md
names a file or folder that exists, every `#anchor` into a Markdown file names one of its
headings, and the README stays a front page (at most 250 lines).

No network: http(s) and mailto links are not followed.
"""

import re
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README_MAX_LINES = 250

# [text](target) and ![alt](target), with an optional "title"; the text may hold `code`
# and one level of brackets (an image inside a link).
INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+[\"'(].*?[\"')])?\s*\)")
# [label]: target  (reference-style definitions)
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
FENCE = re.compile(r"^( {0,3})(```|~~~).*?^\1\2[^\n]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?)[ \t#]*$", re.MULTILINE)
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=[\"']([^\"']+)[\"']", re.IGNORECASE)


def markdown_files():
    return [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))


def strip_code(text):
    """Text without fenced code blocks and code spans, which hold no links."""
    text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    return CODE_SPAN.sub(lambda m: " " * len(m.group(0)), text)


def links(text):
    """(line number, target) of every inline link, image and reference definition."""
    prose = strip_code(text)
    found = []
    for pattern in (INLINE, REFERENCE):
        for m in pattern.finditer(prose):
            found.append((prose.count("\n", 0, m.start()) + 1, m.group(1)))
    return sorted(found)


def slug(heading):
    """GitHub's anchor for a heading: lower-case, markup removed, punctuation other than
    '-' and '_' dropped, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").strip().lower()
    text = "".join(c for c in text if c in "-_ " or unicodedata.category(c)[0] in "LNM")
    return text.replace(" ", "-")


def anchors(path):
    """Every anchor of a Markdown file: heading slugs (repeats get -1, -2, ...) and <a name>."""
    text = path.read_text(encoding="utf-8")
    seen, result = {}, set()
    for m in HEADING.finditer(FENCE.sub("", text)):
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        result.add(base if n == 0 else f"{base}-{n}")
    result.update(HTML_ANCHOR.findall(text))
    return result


def broken_links(path):
    """One line per broken link of `path`: 'FILE:LINE: TARGET (why)'."""
    problems = []
    for line, target in links(path.read_text(encoding="utf-8")):
        if not target or re.match(r"(?i)(https?:|mailto:)", target):
            continue
        where = f"{path.relative_to(ROOT)}:{line}: {target}"
        file_part, _, fragment = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            problems.append(
                f"{where} (no such file or folder: {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest})"
            )
        elif fragment and dest.is_file() and dest.suffix.lower() == ".md" and fragment not in anchors(dest):
            problems.append(f"{where} (no heading #{fragment} in {dest.relative_to(ROOT)})")
    return problems


def test_slug_follows_github():
    assert (
        slug("Training on several machines (`--strategy multiworker`)")
        == "training-on-several-machines---strategy-multiworker"
    )
    assert slug("Results (2026-11-26, 2-core CPU, no GPU)") == "results-2026-11-26-2-core-cpu-no-gpu"
    assert slug("Make targets") == "make-targets"
    assert slug("Shipped models and measured quality") == "shipped-models-and-measured-quality"


def test_link_parser_finds_every_kind():
    text = (
        'see [a](a.md) and ![b](b.png "t") and [`c`](c/#x)\n'
        "```\n[not](a link.md)\n```\n`[nor](this.md)`\n[ref]: d.md\n"
    )
    assert [t for _, t in links(text)] == ["a.md", "b.png", "c/#x", "d.md"]


def test_every_link_and_image_resolves():
    files = markdown_files()
    assert (ROOT / "docs").is_dir() and len(files) > 1, "README.md and docs/*.md expected"
    problems = [p for f in files for p in broken_links(f)]
    assert not problems, f"{len(problems)} broken link(s):\n" + "\n".join(problems)


def test_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines; keep it at most {README_MAX_LINES} "
        "and move the details to a page under docs/"
    )
