"""sources.yaml is validated on load: a wrong key, date or duplicate id stops everything with its name."""

from __future__ import annotations

import datetime as dt
import os

import pytest

from skolon_pipeline.config import ConfigError, load_installation

GOOD = """
timezone: Europe/Stockholm
rules:
  lookahead_days: 30
  term_starts: ["2026-08-17", 2027-01-11]
sources:
  - id: lindby
    format: ss12000
    path: registries/lindby
    rules: {lookahead_days: 14, teacher_requires_group: false}
  - id: friskola-2
    format: ss12000
    path: registries/friskola
"""


def _load(tmp_path, text):
    (tmp_path / "sources.yaml").write_text(text, encoding="utf-8")
    return load_installation(tmp_path)


def test_defaults_and_per_source_overrides(tmp_path):
    inst = _load(tmp_path, GOOD)
    lindby, friskola = inst.sources
    assert lindby.rules.lookahead_days == 14 and lindby.rules.teacher_requires_group is False
    assert lindby.rules.term_starts == (dt.date(2026, 8, 17), dt.date(2027, 1, 11))
    assert friskola.rules.lookahead_days == 30 and friskola.rules.teacher_requires_group is True
    assert friskola.rules.group_types == ("Klass", "Undervisning")
    assert friskola.rules.student_requires_group is False
    assert "Förstelärare" in friskola.rules.teaching_duty_roles
    assert lindby.root == (tmp_path / "registries/lindby").resolve()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("lookahead_days: 30", "lookahed_days: 30"), "rules.lookahed_days: unknown key"),
        (("rules: {lookahead_days: 14", "rules: {lookahead: 14"), "sources[0].rules.lookahead: unknown key"),
        (('"2026-08-17"', '"2026-08-32"'), "rules.term_starts: '2026-08-32' is not a date"),
        (("id: friskola-2", "id: lindby"), "duplicate source id 'lindby'"),
        (("id: friskola-2", "id: Friskola 2"), "sources[1].id"),
        (
            ("format: ss12000\n    path: registries/friskola", "format: csv\n    path: registries/friskola"),
            "sources[1].format",
        ),
        (("timezone: Europe/Stockholm", "timezone: Europe/Lindby"), "unknown time zone 'Europe/Lindby'"),
        (("path: registries/friskola", "path: ../outside"), "sources[1].path"),
        (("path: registries/friskola", "path: /etc"), "sources[1].path"),
    ],
)
def test_configuration_errors_name_the_key(tmp_path, change, message):
    old, new = change
    assert old in GOOD
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, GOOD.replace(old, new))
    assert message in str(err.value)
    assert "sources.yaml" in str(err.value)


def test_missing_file_says_where_it_looked(tmp_path):
    with pytest.raises(ConfigError, match=r"sources\.yaml: not found"):
        load_installation(tmp_path)


def test_symlink_out_of_the_data_dir_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    data = tmp_path / "data"
    data.mkdir()
    os.symlink(outside, data / "link")
    with pytest.raises(ConfigError, match="points outside the data directory"):
        _load(data, GOOD.replace("registries/lindby", "link"))


def test_source_ids_and_oneroster_roles(tmp_path):
    (tmp_path / "sources.yaml").write_text(
        "sources:\n"
        "  - {id: a, format: ss12000, path: a}\n"
        "  - {id: b, format: oneroster, path: b, oneroster_roles: {aide: Lärare}}\n"
        "  - {id: c, format: oneroster, path: c, global_ids: true}\n",
        encoding="utf-8",
    )
    installation = load_installation(tmp_path)
    assert [s.id_prefix for s in installation.sources] == ["", "b:", ""]
    roles = dict(installation.source("b").oneroster_roles)
    assert roles["aide"] == "Lärare" and roles["teacher"] == "Lärare" and roles["principal"] == "Rektor"
    (tmp_path / "sources.yaml").write_text(
        "sources:\n  - {id: a, format: ss12000, path: a, oneroster_roles: {aide: Lärare}}\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError, match=r"oneroster_roles: only for format oneroster"):
        load_installation(tmp_path)


def test_settings_come_from_flags_then_environment_then_defaults(tmp_path, monkeypatch):
    from pathlib import Path

    from skolon_pipeline import cli
    from skolon_pipeline.config import Settings

    env = {"SKOLON_WAREHOUSE": "/srv/wh.duckdb", "SKOLON_EXPORT_DIR": "/srv/exports"}
    monkeypatch.chdir(tmp_path)
    for command in (["run"], ["approve", "--as-of", "2026-12-01"], ["export"], ["explain", "x"], ["demo"]):
        args = cli.build_parser().parse_args([*command, "--data-dir", "mydata", "--export-dir", "out"])
        before = dict(os.environ)
        assert cli.settings_from(args, environ=env) == Settings(
            tmp_path / "mydata", Path("/srv/wh.duckdb"), tmp_path / "out"
        ), command
        assert dict(os.environ) == before
    assert Settings.from_env({}) == Settings(Path("data"), Path("data/warehouse.duckdb"), Path("data/exports"))
