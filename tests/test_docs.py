"""The README stays true: its model table is `python -m zoo list`, and it describes every registered family."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import zoo

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
TABLE_MARKER = "<!-- model-table: python -m zoo list -->\n"


def _zoo_families() -> set[str]:
    return {zoo.model_info(name).family for name in zoo.list_models() if name.split("-")[0] != "test"}


def _zoo_list() -> str:
    """`python -m zoo list` in a fresh interpreter (models that other tests register in this process stay out)."""
    result = subprocess.run([sys.executable, "-m", "zoo", "list"], capture_output=True, text=True, check=True)
    return result.stdout.rstrip("\n")


def test_model_table_is_the_registry_listing() -> None:
    start = README.index(TABLE_MARKER) + len(TABLE_MARKER)
    table = README[start : README.index("\n\n", start)]
    assert table == _zoo_list(), "README model table is stale: paste the output of `python -m zoo list`"


def test_every_family_has_a_readme_entry_and_no_other() -> None:
    models = README[README.index("## Models") : README.index("\n## ", README.index("## Models") + 1)]
    described = set(re.findall(r"^- \*\*([\w-]+)\*\* - ", models, flags=re.MULTILINE))
    assert described == _zoo_families(), "README's family list under '## Models' differs from the registry"


def test_readme_documents_checkpoints_and_the_cli() -> None:
    for text in ("checkpoint=", "zoo.load(", "python -m zoo export", "python -m zoo list", "python -m zoo info"):
        assert text in README, f"README does not mention {text}"


NOTE_CITATION = re.compile(
    r"\b([a-z_]+)\.md\b(?:,?\s+(?:sections?\s+)?([0-9]+(?:\.[0-9]+)*|[A-Z]\b)(?:\s*(?:-|and)\s*([0-9]+(?:\.[0-9]+)*))?)?"
)


def test_cited_design_notes_and_sections_are_in_docs() -> None:
    root = Path(__file__).resolve().parents[1]
    cited = []
    for folder in ("zoo", "kernels", "datasets", "benchmarks", "tests"):
        for path in sorted((root / folder).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            for match in NOTE_CITATION.finditer(text):
                sections = [section for section in match.groups()[1:] if section]
                # a design note is cited as "design note X.md" or "X.md, section N" (not e.g. a report's index.md)
                if sections or "note" in text[max(0, match.start() - 40) : match.start()].lower():
                    cited.append((path.relative_to(root), match.group(1), sections))
    assert cited, "no citation found: the pattern is broken"
    for source, note, sections in cited:
        file = root / "docs" / f"{note}.md"
        assert file.is_file(), f"{source} cites {note}.md, which is not in docs/"
        headings = re.findall(r"^#{2,3} ([0-9A-Z][0-9.]*)[. ]", file.read_text(encoding="utf-8"), flags=re.MULTILINE)
        for section in sections:
            assert section.rstrip(".") in {heading.rstrip(".") for heading in headings}, (
                f"{source} cites {note}.md section {section}, which docs/{note}.md does not have"
            )
