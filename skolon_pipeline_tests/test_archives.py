"""A bad OneRoster archive fails only its source, with a message naming source and file, before anything is
unpacked (issue 18, item 11): an encrypted entry, Deflate64, a zip bomb, more than the configured size."""

from __future__ import annotations

import datetime as dt
import struct
import zipfile
from pathlib import Path

import pytest
import yaml

from skolon_pipeline import night
from skolon_pipeline.config import Settings, load_installation
from skolon_pipeline_tests.oneroster_drop import OneRosterDrop, oneroster_source
from skolon_pipeline_tests.registry import Registry, write_sources

NIGHT = "2026-11-02"


def _patch_entry(zip_path: Path, name: str, flags: int = 0, method: int | None = None) -> None:
    """Sets general-purpose flag bits (0x1: encrypted) or the compression method of one entry, in its local
    header and in the central directory, as an archiver writing such an entry would."""
    data = bytearray(zip_path.read_bytes())
    encoded = name.encode()
    for signature, flag_at, method_at, name_len_at, name_at in (
        (b"PK\x03\x04", 6, 8, 26, 30),
        (b"PK\x01\x02", 8, 10, 28, 46),
    ):
        start = 0
        while (pos := data.find(signature, start)) != -1:
            start = pos + 4
            length = struct.unpack_from("<H", data, pos + name_len_at)[0]
            if bytes(data[pos + name_at : pos + name_at + length]) != encoded:
                continue
            struct.pack_into("<H", data, pos + flag_at, struct.unpack_from("<H", data, pos + flag_at)[0] | flags)
            if method is not None:
                struct.pack_into("<H", data, pos + method_at, method)
    zip_path.write_bytes(bytes(data))


def _bomb(zip_path: Path, name: str, size: int) -> None:
    """Replaces an entry with `size` bytes of one repeated row: a few kilobytes packed, `size` unpacked."""
    with zipfile.ZipFile(zip_path) as src:
        entries = {i.filename: src.read(i) for i in src.infolist()}
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as out:
        for entry, content in entries.items():
            if entry != name:
                out.writestr(entry, content)
        with out.open(name, "w", force_zip64=True) as big:
            big.write(entries[name])
            row, chunk = b"x," * 16 + b"\n", None
            chunk = row * (4 * 1024**2 // len(row))
            written = 0
            while written < size:
                big.write(chunk)
                written += len(chunk)


@pytest.fixture
def data(tmp_path):
    data = tmp_path / "data"
    reg = Registry("kommun")
    school = reg.school()
    reg.group(school, members=[reg.student(school) for _ in range(3)])
    reg.write(data, drop_date=NIGHT, source_id="kommun")
    return data


def _zip_source(data: Path, source_id: str) -> Path:
    drop = OneRosterDrop()
    drop.basic()
    return drop.write(data / "registries" / source_id / NIGHT, as_zip=True)


def test_bad_archives_fail_only_their_source_naming_it_and_the_file(tmp_path, data):
    encrypted = _zip_source(data, "encrypted")
    _patch_entry(encrypted, "export/users.csv", flags=0x1)
    deflate64 = _zip_source(data, "deflate64")
    _patch_entry(deflate64, "export/enrollments.csv", method=9)
    bomb = _zip_source(data, "bomb")
    _bomb(bomb, "export/users.csv", 60 * 1024**2)
    assert bomb.stat().st_size < 1024**2
    write_sources(
        data,
        [
            {"id": "kommun", "format": "ss12000", "path": "registries/kommun"},
            *(oneroster_source(s) for s in ("encrypted", "deflate64", "bomb")),
        ],
    )
    settings = Settings(data, tmp_path / "wh" / "warehouse.duckdb", tmp_path / "exports")
    as_of = dt.date.fromisoformat(NIGHT)

    evaluated = night.run_night(load_installation(data), as_of, settings.warehouse, settings.staging_dir)

    failed = {f.source_id: f for f in evaluated.failed}
    assert set(failed) == {"encrypted", "deflate64", "bomb"}
    assert failed["encrypted"].message == (
        f"source 'encrypted': file {encrypted}: entry 'export/users.csv' is "
        "encrypted (password-protected); export the drop without a password"
    )
    assert failed["deflate64"].message.startswith(
        f"source 'deflate64': file {deflate64}: entry 'export/enrollments.csv' is compressed with Deflate64"
    )
    assert failed["bomb"].message.startswith(f"source 'bomb': file {bomb}: entry 'export/users.csv' expands")
    assert "zip bomb" in failed["bomb"].message
    for f in failed.values():
        assert f.file is not None and "\n" not in f.message
    # The healthy source is published; nothing was unpacked (no scratch folder holds a byte of the bomb).
    with __import__("duckdb").connect(str(settings.warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM roster.users WHERE source_id = 'kommun'").fetchone()[0] == 3
    leftovers = [p for p in settings.staging_dir.rglob("*") if ".scratch" in str(p)]
    assert leftovers == []


def test_an_archive_larger_than_the_configured_size_is_refused(tmp_path, data):
    big = _zip_source(data, "big")
    config = {
        "timezone": "Europe/Stockholm",
        "archives": {"max_expanded_bytes": 1000},
        "sources": [{"id": "kommun", "format": "ss12000", "path": "registries/kommun"}, oneroster_source("big")],
    }
    (data / "sources.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    settings = Settings(data, tmp_path / "wh" / "warehouse.duckdb", tmp_path / "exports")
    evaluated = night.run_night(
        load_installation(data), dt.date.fromisoformat(NIGHT), settings.warehouse, settings.staging_dir
    )
    [failed] = evaluated.failed
    assert failed.source_id == "big" and failed.file == str(big)
    assert "more than the limit of 1000 (archives.max_expanded_bytes)" in failed.message
