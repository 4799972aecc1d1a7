"""The owner's personal data in the browser (ETSI EN 303 645 5.11, issue 20): in the Access dialog, a copy of
everything as a zip (a real download), the history deleted after typing the confirmation, and the audit log
saying both; no accessibility violation (axe-core), at a phone's size, a desktop's and in the dark."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import House, axe_violations, describe_violations
from tests.ui.test_login_roles import expect, log_in

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]


def test_the_owner_downloads_everything_deletes_the_history_and_reads_who_did_it(
        house: House, a11y_page: Any, tmp_path: Path, shoot: Any) -> None:
    page, _ = a11y_page
    log_in(page, house, house.username, house.password)
    page.click("#access-open")
    expect(page.locator("#data-export")).to_be_visible()
    with page.expect_download() as download:
        page.click("#data-export")
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name.startswith("hearth-data-") and saved.suffix == ".zip"
    with zipfile.ZipFile(saved) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        assert "devices.json" in archive.namelist()
    assert manifest and house.password not in saved.read_bytes().decode("latin-1")
    expect(page.locator("#access-error")).to_contain_text("Downloaded hearth-data-")

    # A wrong confirmation deletes nothing; the exact words do.
    page.fill("#data-delete-confirm", "delete")
    page.click('#data-delete-form button[type="submit"]')
    expect(page.locator("#access-error")).to_have_text("Type the words exactly as shown to delete.")
    page.fill("#data-delete-confirm", "delete personal data")
    page.click('#data-delete-form button[type="submit"]')
    expect(page.locator("#access-error")).to_have_text(
        re.compile(r"^(Deleted: .+\. Open alerts stay\.|There was no history to delete\.)$"))

    page.click("#data-audit summary")
    entries = page.locator("#data-audit-list li")
    # The delete took the older audit entries with the history (the export's among them), and says so itself.
    expect(entries.filter(has_text="data.delete")).to_have_count(1)
    expect(entries.filter(has_text="data.delete")).to_contain_text(house.username)
    assert entries.filter(has_text="data.export").count() == 0
    assert describe_violations(axe_violations(page)) == ""
    shoot(page, "personal-data", full_page=False)
