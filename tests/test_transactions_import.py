"""`smsgw transactions import FILE.csv`: bad rows reported by line, good rows land, idempotent."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from handlers.transactions.config import TransactionsConfig
from handlers.transactions.importer import ImportError_, import_csv
from handlers.transactions.records import KEEP, RecordError, parse_record
from tests.txn_helpers import T0, on_loop, open_harness

pytestmark = pytest.mark.usefixtures("store_engine")

ROOT = Path(__file__).resolve().parent.parent
HEADER = "ref,service,status,msisdns,note_en,note_ar,updated_at\n"

# Line numbers matter: the report must point at the right line, multi-line cells included.
FEED = (
    HEADER  # 1
    + "MM-2026-000001,building_permit_renewal,received,+96891234567;92345678,Papers received,,2026-03-12 09:00\n"  # 2
    + "XX-1,parking_permit,received,91234567,,,\n"  # 3 bad ref
    + "MM-2026-000003,parking_permit,under reveiw,91234567,,,\n"  # 4 unknown status
    + "MM-2026-000004,parking_permit,received,24123456;12,,,\n"  # 5 a landline and garbage
    + "mm 2026 5,Lease contract renewal,Awaiting documents,71234567,,تم استلام الطلب,\n"  # 6 good, forgiving
    + "\n"  # 7 blank: skipped
    + "MM-2026-000008,parking_permit,received\n"  # 8 too few fields
    + 'MM-2026-000009,general_request,approved,98765432,"Collect the permit\nat the Bausher office",,\n'  # 9-10
    + "MM-2026-000011,general_request,approved,98765432,,,yesterday\n"  # 11 bad time
    + "MM-2026-000012,general_request,received,,,,\n"  # 12 new, no number
)

EXPECTED_REJECTIONS = [
    (3, "ref: not a reference like MM-2026-000123"),
    (4, ('status: unknown status "under reveiw" (did you mean "under_review"?); known: received, under_review, '
         "awaiting_documents, approved, rejected, completed")),
    (5, 'msisdns: "24123456" is not a mobile number; msisdns: "12" is not a valid phone number'),
    (8, "expected 7 fields (ref,service,status,msisdns,note_en,note_ar,updated_at), got 3"),
    (11, "updated_at: 'yesterday' is not a date and time like 2026-03-12T10:30:00+04:00 or 2026-03-12 10:30"),
    (12, "msisdns: required for a new transaction"),
]


def write(tmp_path: Path, text: str, name: str = "feed.csv", bom: bool = False) -> str:
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return str(path)


@on_loop
async def test_bad_rows_are_reported_by_line_and_good_rows_land(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, in_gateway=False)
    try:
        path = write(tmp_path, FEED, bom=True)  # as Excel saves "CSV UTF-8"
        report = await import_csv(path, h.service, h.clock)
        assert (report.inserted, report.updated, report.unchanged) == (3, 0, 0)
        assert report.rejected == EXPECTED_REJECTIONS
        assert report.summary() == "inserted 3, updated 0, unchanged 0, rejected 6; notifications 0"
        first = await h.service.get("MM-2026-000001")
        assert first is not None
        assert first.msisdns == ("96891234567", "96892345678")
        assert first.transaction.note_en == "Papers received" and first.transaction.note_ar is None
        assert h.config.iso_time(first.transaction.updated_at) == "2026-03-12T09:00:00+04:00"
        fifth = await h.service.get("MM-2026-000005")
        assert fifth is not None and fifth.transaction.service == "lease_contract_renewal"
        assert fifth.transaction.status == "awaiting_documents" and fifth.transaction.updated_at == T0
        ninth = await h.service.get("MM-2026-000009")
        assert ninth is not None and ninth.transaction.note_en == "Collect the permit at the Bausher office"
        assert ninth.changes[0].source == "csv:feed.csv"
    finally:
        await h.close()


@on_loop
async def test_reimport_changes_nothing_and_notifies_nobody(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, in_gateway=False)
    try:
        path = write(tmp_path, FEED)
        await import_csv(path, h.service, h.clock)
        h.clock.now += 3600
        again = await import_csv(path, h.service, h.clock)
        assert (again.inserted, again.updated, again.unchanged, again.notifications) == (0, 0, 3, 0)
        assert again.rejected == EXPECTED_REJECTIONS
        changed = write(tmp_path, FEED.replace("building_permit_renewal,received", "building_permit_renewal,approved")
                        .replace("2026-03-12 09:00", "2026-03-12 10:00"), "feed2.csv")
        update = await import_csv(changed, h.service, h.clock)
        assert (update.inserted, update.updated, update.unchanged, update.notifications) == (0, 1, 2, 2)
        again = await import_csv(changed, h.service, h.clock)
        assert (again.updated, again.unchanged, again.notifications) == (0, 3, 0)
        pending = await h.store.read(lambda c: c.execute("SELECT ref, msisdn, state FROM txn_notice").fetchall())
        assert pending == [("MM-2026-000001", "96891234567", "pending"), ("MM-2026-000001", "96892345678", "pending")]
    finally:
        await h.close()


@on_loop
async def test_columns_may_be_reordered_and_optional_ones_left_out(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, in_gateway=False)
    try:
        await import_csv(write(tmp_path, FEED), h.service, h.clock)
        # No note columns: the stored notes stay.  No msisdns in the cell: the numbers stay.
        path = write(tmp_path, "Status,REF,service,msisdns\nrejected,MM-2026-000001,building_permit_renewal,\n", "b.csv")
        report = await import_csv(path, h.service, h.clock)
        assert (report.updated, report.rejected) == (1, [])
        detail = await h.service.get("MM-2026-000001")
        assert detail is not None and detail.transaction.status == "rejected"
        assert detail.transaction.note_en == "Papers received" and len(detail.msisdns) == 2
    finally:
        await h.close()


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "feed.csv: the file is empty; the first line must name the columns"),
        ("ref,service,statuss,msisdns\n", "feed.csv:1: unknown column 'statuss'; missing column 'status'"),
        ("\nref,service,status\n", "feed.csv:2: missing column 'msisdns'"),
        ("ref,service,status,msisdns,ref\n", "feed.csv:1: column 'ref' appears twice"),
        (HEADER + 'MM-2026-000001,"unterminated\n', "feed.csv:2: not valid CSV in the row starting here"),
    ],
)
@on_loop
async def test_file_level_errors(tmp_path: Path, text: str, message: str) -> None:
    h = await open_harness(tmp_path, in_gateway=False)
    try:
        with pytest.raises(ImportError_) as info:
            await import_csv(write(tmp_path, text), h.service, h.clock)
        assert message in str(info.value)
    finally:
        await h.close()


@on_loop
async def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    h = await open_harness(tmp_path, in_gateway=False)
    try:
        path = tmp_path / "latin1.csv"
        path.write_bytes(HEADER.encode() + "MM-2026-000001,general_request,received,91234567,caf\xe9,,\n".encode("latin-1"))
        with pytest.raises(ImportError_, match=r"latin1.csv:2: the file is not valid UTF-8"):
            await import_csv(str(path), h.service, h.clock)
    finally:
        await h.close()


def test_record_validation_shared_with_the_api() -> None:
    """parse_record takes JSON values too; absent fields are KEEP, null notes are removed."""
    config = TransactionsConfig()
    record = parse_record({"ref": "MM-2026-000001", "service": "PARKING_PERMIT", "status": "Under-Review",
                           "msisdns": ["+968 9123 4567", "91234567"], "note_ar": None}, config, T0)
    assert (record.service, record.status, record.msisdns) == ("parking_permit", "under_review", ("96891234567",))
    assert (record.note_en, record.note_ar, record.updated_at) == (KEEP, None, None)
    with pytest.raises(RecordError) as info:
        parse_record({"ref": "MM-2026-000001", "status": 3, "msisdns": "91234567", "colour": "red",
                      "updated_at": "2027-01-01T00:00:00+04:00"}, config, T0)
    assert [field for field, _ in info.value.problems] == ["colour", "service", "status", "updated_at"]
    assert "is in the future" in info.value.reason


def _process_config(tmp_path: Path) -> Path:
    text = (ROOT / "config" / "gateway.toml").read_text(encoding="utf-8")
    text = re.sub(r'(?m)^store_path = .*$', f'store_path = "{(tmp_path / "store.sqlite3").as_posix()}"', text)
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_command_line_reports_and_exit_status(tmp_path: Path) -> None:
    """The entry point the CLI wires: rejected rows on stderr as file:line: reason, the summary on
    stdout, exit status 1 when rows were rejected and 0 when all landed; 2 for a config error."""
    config = _process_config(tmp_path)
    feed = write(tmp_path, FEED)
    command = [sys.executable, "-m", "handlers.transactions.importer", feed, "--config", str(config),
               "--transactions-config", str(ROOT / "config" / "transactions.toml")]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 1, run.stderr
    reported = [line for line in run.stderr.splitlines() if line.startswith(feed)]
    assert reported == [f"{feed}:{line}: {reason}" for line, reason in EXPECTED_REJECTIONS]
    assert "inserted 3, updated 0, unchanged 0, rejected 6; notifications 0" in run.stdout
    good = write(tmp_path, FEED.replace("received,+968", "approved,+968").split("XX-1")[0], "good.csv")
    run = subprocess.run([*command[:3], good, *command[4:]], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    assert "inserted 0, updated 1, unchanged 0, rejected 0; notifications 2" in run.stdout
    assert "2 notification(s) will be sent by the running gateway within 5 s" in run.stdout
    bad_config = tmp_path / "transactions.toml"
    bad_config.write_text("[lookups]\nmax_failed = 0\n", encoding="utf-8")
    run = subprocess.run([*command[:6], "--transactions-config", str(bad_config)], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=False)
    assert run.returncode == 2
    assert f"{bad_config}:2: lookups.max_failed: must be an integer between 1 and 1000, got 0" in run.stderr
