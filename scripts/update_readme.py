"""Rewrite the generated parts of README.md (the annotation table) from the code."""

from pathlib import Path

from generator.inject.annotations import markdown_table

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- annotations:start -->", "<!-- annotations:end -->"

text = README.read_text()
head, rest = text.split(START, 1)
_, tail = rest.split(END, 1)
README.write_text(head + START + "\n" + markdown_table() + "\n" + END + tail)
print(f"updated {README}")
