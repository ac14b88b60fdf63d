"""lab/notes/reproduction.md describes every recipe of `stemdesk train --recipe`. (Moved from
tests/training/test_recipes.py.)"""

from __future__ import annotations

from stemdesk.training.recipes import PAPER_RECIPES


def test_the_reproduction_page_describes_every_recipe():
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "lab" / "notes" / "reproduction.md").read_text(encoding="utf-8")
    method = page.split("<!-- Everything below is written by lab/benchmarks/reproduction.py. -->")[0]
    for name in PAPER_RECIPES:
        short = name.rsplit("-", 1)[-1]
        assert f"`{name}`" in method or f"`-{short}`" in method, name
