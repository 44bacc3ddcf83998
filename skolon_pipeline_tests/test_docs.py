"""The documentation stays true: every SQL query in docs/*.md runs against the demo warehouse, the README keeps
its two commands at the top and links every page of docs/."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from skolon_pipeline.demo import DEMO_NIGHT

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PLACEHOLDER = "'…'"  # how the docs write "an id of yours" / "a night of yours"


def _documented_queries() -> list[tuple[str, str]]:
    """(page, statement) for every statement of every ```sql block in docs/."""
    queries = []
    for page in sorted(DOCS.glob("*.md")):
        for block in re.findall(r"```sql\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S):
            code = re.sub(r"--[^\n]*", "", block)  # comments, whole-line or after a statement
            queries += [(page.name, s.strip()) for s in code.split(";") if s.strip()]
    return queries


QUERIES = _documented_queries()


def test_the_analysts_page_documents_queries():
    assert sum(page == "analysts.md" for page, _ in QUERIES) >= 8


@pytest.fixture(scope="module")
def excluded_person(demo_warehouse) -> str:
    with duckdb.connect(str(demo_warehouse), read_only=True) as con:
        return con.execute("SELECT min(person_id) FROM diagnostics.exclusions WHERE entity_type = 'person'").fetchone()[
            0
        ]


@pytest.mark.parametrize(("page", "sql"), QUERIES, ids=[f"{p}:{s[:60]}" for p, s in QUERIES])
def test_every_documented_query_runs_on_the_demo_warehouse(demo_warehouse, excluded_person, page, sql):
    # A placeholder after DATE is a night, any other one an id: both get a value the demo warehouse has.
    sql = sql.replace(f"DATE {PLACEHOLDER}", f"DATE '{DEMO_NIGHT}'").replace(PLACEHOLDER, f"'{excluded_person}'")
    with duckdb.connect(str(demo_warehouse), read_only=True) as con:
        con.execute(sql).fetchall()


def test_readme_starts_with_the_two_commands_and_links_every_page():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    first_block = re.search(r"```bash\n(.*?)```", readme, flags=re.S).group(1)
    assert readme.index("```bash") < readme.index("\n## ")
    assert "skolon-pipeline run --as-of 2025-12-15" in first_block and "pytest" in first_block
    for page in DOCS.glob("*.md"):
        assert f"(docs/{page.name})" in readme, f"README does not link docs/{page.name}"
    assert len(readme.splitlines()) < 150  # read in five minutes


def test_every_relative_link_in_the_docs_points_to_a_file_that_exists():
    for page in [REPO / "README.md", *DOCS.glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            assert (page.parent / target).exists(), f"{page.name} links {target}, which does not exist"
