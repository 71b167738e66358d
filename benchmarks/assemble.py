"""Assemble BENCHMARKS.md from the per-area sections in benchmarks/sections/ (run after updating a section).

    python benchmarks/assemble.py
"""
from pathlib import Path

ORDER = ["core", "imagenet", "finetune", "reuse", "domain", "scarce-data", "tasks-and-distillation", "deployment", "advisor",
         "tour", "reliability"]
HEADER = """# Benchmarks

Speed and accuracy figures of transferkit, each with the command that produced it. Benchmarks are scripts in
`benchmarks/` that print JSON; the sections below are kept in `benchmarks/sections/` and assembled with
`python benchmarks/assemble.py`. Ratios are measured within one run (the machines are shared and noisy); no
GPU was lent to the task that produced these figures, so all are CPU (2 cores) figures unless stated.

"""


def main():
    root = Path(__file__).resolve().parent
    parts = [HEADER]
    for name in ORDER:
        parts.append((root / "sections" / f"{name}.md").read_text().strip() + "\n\n")
    (root.parent / "BENCHMARKS.md").write_text("".join(parts))


if __name__ == "__main__":
    main()
