"""The drop builder (skolon_pipeline.testing.drops): what it writes, the real reader reads back unchanged."""

from __future__ import annotations

import json

import duckdb
import pytest

from skolon_pipeline.sources import ss12000
from skolon_pipeline.sources.civic import PseudonymKey
from skolon_pipeline.testing import drops
from skolon_pipeline_tests.registry import Registry

KEY = PseudonymKey.from_secret("a drop builder test key, 0123456789abcdef")


def test_it_writes_the_entities_the_reader_reads():
    assert drops.SS12000_ENTITIES == tuple(ss12000.ENTITIES)


@pytest.fixture
def reg() -> Registry:
    r = Registry()
    school = r.school()
    students = [r.student(school, given=f"Elev {i}") for i in range(5)]
    klass = r.group(school, members=students)
    r.teach(school, klass)
    r.teach(school, r.group(school, "Undervisning", members=students[:2], name="Ma 7A"))
    return r


def _read(drop) -> tuple[dict[str, int], list[tuple[str, str]]]:
    con = duckdb.connect()
    counts = ss12000.extract_ss12000(con, "testby", drop, key=KEY)
    return counts, con.execute("SELECT file, person_id FROM persons ORDER BY file, idx").fetchall()


def test_every_layout_reads_back_as_the_same_records(reg, tmp_path):
    one_file = reg.write(tmp_path / "one-file")
    layout = {
        "persons": drops.Pages(2),  # four pages, the last with one record
        "duties": drops.Pages(1, drops.INDENTED, name="{}.json"),
        "groups": drops.OneFile(drops.JsonStyle(bom=True)),
        "activities": drops.OneFile(drops.INDENTED, array=True),
    }
    mixed = reg.write(tmp_path / "mixed", layout=layout)

    assert drops.read_ss12000(mixed) == drops.read_ss12000(one_file) == reg.entities()
    counts, persons = _read(mixed)
    assert counts == _read(one_file)[0]
    assert counts["persons"] == 7 and counts["group_memberships"] == 7 and counts["teacher_assignments"] == 2
    assert persons == [(f"persons/page-{n // 2 + 1:05d}.json", p["id"]) for n, p in enumerate(reg.persons)]
    assert (mixed / "groups.json").read_bytes().startswith(drops.BOM)
    assert sorted(p.name for p in (mixed / "duties").iterdir()) == ["1.json", "2.json"]


def test_a_page_chain_names_the_next_page_and_ends_with_null(tmp_path):
    with drops.PageChain(tmp_path / "persons", drops.Pages(2, token=lambda n: f"next-{n}")) as chain:
        chain.write_records({"id": str(i)} for i in range(4))
        chain.write_page([{"id": "4"}, {"id": "5"}, {"id": "6"}])  # a caller may cut pages itself
    pages = [json.loads(p.read_bytes()) for p in sorted((tmp_path / "persons").iterdir())]
    assert [(len(p["data"]), p["pageToken"]) for p in pages] == [(2, "next-2"), (2, "next-3"), (3, None)]


def test_an_entity_without_records_is_one_empty_page(tmp_path):
    drop = drops.write_ss12000(tmp_path, {"duties": [], "groups": []}, {"duties": drops.Pages(10)})
    assert json.loads((drop / "duties" / "page-00001.json").read_bytes()) == {"data": [], "pageToken": None}
    assert json.loads((drop / "groups.json").read_bytes()) == {"data": [], "pageToken": None}
    assert len(list((drop / "duties").iterdir())) == 1
