"""The file store: streaming with a hash, atomic commit, a retried job's file, retention."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from workflow_service.files.retention import purge
from workflow_service.storage import FileStore, StoredFile
from workflow_service.storage.cells import neutralise, neutralise_row

pytestmark = pytest.mark.usefixtures("connected")


def _write(store: FileStore, data: bytes, **overrides) -> StoredFile:
    fields = {
        "tenant": "acme",
        "kind": "report",
        "name": "status.csv",
        "content_type": "text/csv",
        "created_by": "olivia",
        **overrides,
    }
    with store.create(**fields) as out:
        for start in range(0, len(data), 7):  # several writes: the hash spans them all
            out.write(data[start : start + 7])
    return out.file


def test_a_file_is_stored_with_its_size_hash_and_expiry(store, clock, settings):
    data = b"id,title\n1,Access control\n" * 100
    stored = _write(store, data, job_id="job-1")

    row = StoredFile.get_by_id(stored.id)
    assert row.size == len(data)
    assert row.sha256 == hashlib.sha256(data).hexdigest()
    assert row.expires_at == clock.now + timedelta(days=30)
    with store.open(row) as handle:
        assert handle.read() == data
    assert store.full_path(row).is_relative_to(settings.files_dir)
    # No temporary file is left beside it.
    assert not list(settings.files_dir.glob(".incoming-*"))
    assert row.descriptor(rows=100) == {
        "file_id": row.id,
        "name": "status.csv",
        "content_type": "text/csv",
        "size": len(data),
        "sha256": row.sha256,
        "href": f"/files/{row.id}",
        "expires_at": "2026-03-31T12:00:00Z",
        "rows": 100,
    }


def test_a_writer_that_fails_leaves_no_row_and_no_bytes(store, settings):
    with (
        pytest.raises(RuntimeError),
        store.create(
            tenant="acme", kind="export", name="x.csv", content_type="text/csv", created_by="o"
        ) as out,
    ):
        out.write(b"half a file")
        raise RuntimeError("the job broke")
    assert StoredFile.select().count() == 0
    assert [p for p in settings.files_dir.rglob("*") if p.is_file()] == []


def test_a_retried_job_replaces_its_file_instead_of_adding_one(store, clock):
    first = _write(store, b"first attempt", job_id="job-7")
    clock.now += timedelta(minutes=1)
    second = _write(store, b"second attempt, longer", job_id="job-7")

    assert second.id == first.id
    assert StoredFile.select().count() == 1
    with store.open(second) as handle:
        assert handle.read() == b"second attempt, longer"
    assert second.sha256 == hashlib.sha256(b"second attempt, longer").hexdigest()
    # The same job id of another kind is another file.
    other = _write(store, b"x", job_id="job-7", kind="export")
    assert other.id != first.id


def test_unknown_kind_is_refused(store):
    with pytest.raises(ValueError, match="kind"):
        _write(store, b"x", kind="secret")


def test_retention_deletes_rows_and_bytes_past_their_expiry(store, clock, settings):
    old = _write(store, b"old")
    clock.now += timedelta(days=20)
    young = _write(store, b"young")
    old_path = store.full_path(old)

    clock.now += timedelta(days=10)  # old is exactly 30 days old now
    assert purge(store) == 1
    assert StoredFile.get_or_none(StoredFile.id == old.id) is None
    assert not old_path.exists()
    assert StoredFile.get_or_none(StoredFile.id == young.id) is not None

    clock.now += timedelta(days=19, hours=23)
    assert purge(store) == 0
    clock.now += timedelta(hours=1)
    assert purge(store) == 1
    assert StoredFile.select().count() == 0


def test_a_tenant_gets_only_its_own_files(store):
    mine = _write(store, b"x", tenant="acme")
    assert store.get("acme", mine.id).id == mine.id
    assert store.get("globex", mine.id) is None


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1", "'+1"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        # hidden behind whitespace or quotes, which a spreadsheet's import may trim
        (" =1+1", "' =1+1"),
        ("\n=1+1", "'\n=1+1"),
        ("\u00a0 @SUM(A1)", "'\u00a0 @SUM(A1)"),
        ('"=HYPERLINK(""http://x"")"', '\'"=HYPERLINK(""http://x"")"'),
        ("' -1", "'' -1"),
        # full-width signs, which Excel reads as = and + in East Asian input modes
        ("\uff1d1+1", "'\uff1d1+1"),
        ("\uff0b1", "'\uff0b1"),
        ("plain", "plain"),
        (" plain", " plain"),
        ("'quoted'", "'quoted'"),
        ("a=b", "a=b"),
        (-2, -2),
        (None, None),
    ],
)
def test_cells_that_would_run_as_formulas_are_neutralised(value, written):
    assert neutralise(value) == written
    assert neutralise_row([value, "x"]) == [written, "x"]


def test_settings_from_the_environment(tmp_path):
    from shared.settings import ConfigError
    from workflow_service.settings import WorkflowSettings

    dev = {"APP_ENV": "development"}
    settings = WorkflowSettings.from_env(
        {**dev, "FILES_DIR": str(tmp_path / "f"), "FILE_RETENTION_DAYS": "7"}
    )
    assert (settings.files_dir, settings.file_retention_days) == (tmp_path / "f", 7)
    defaults = WorkflowSettings.from_env(dev)
    assert (str(defaults.files_dir), defaults.file_retention_days) == ("var/files", 30)
    with pytest.raises(ConfigError, match="FILE_RETENTION_DAYS"):
        WorkflowSettings.from_env({**dev, "FILE_RETENTION_DAYS": "0"})
