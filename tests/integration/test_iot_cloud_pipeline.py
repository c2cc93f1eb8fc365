"""An offline cloud export submitted like any file: the pipeline builds its inventory and timeline."""

from __future__ import annotations

import zipfile
from pathlib import Path

from sqlalchemy import select

from assay.db.models import ResultRecord, SubmissionFile
from assay.db.session import get_engine, session_scope
from tests.helpers.paths import CASE_DATA
from tests.helpers.servers import local_settings, submit_file, work_once

SCRAPE = CASE_DATA / "005-Amazon-Echo-Alexa-Web-Scrape.zip"


def test_the_dfrws_alexa_scrape_becomes_a_timeline_and_its_recordings_children(tmp_path: Path) -> None:
    with zipfile.ZipFile(SCRAPE) as archive:
        members = [i for i in archive.infolist() if not i.is_dir()]
    activities = [m for m in members if m.filename.lower().endswith(".json") and m.file_size > 0]
    recordings = {Path(m.filename).name for m in members if m.filename.lower().endswith(".wav")}
    settings = local_settings(tmp_path)
    engine = get_engine(settings.database_url)
    sid, stored = submit_file(settings, SCRAPE.read_bytes(), SCRAPE.name)
    work_once(settings, "cloud-worker")
    with session_scope(engine) as session:
        [cloud] = session.scalars(
            select(ResultRecord).where(ResultRecord.sha256 == stored.sha256, ResultRecord.service == "CloudAccount")
        ).all()
        children = {Path(n.name).name for n in session.scalars(select(SubmissionFile).where(SubmissionFile.sid == sid))}
    data = cloud.body["data"]
    assert data["service"] == "alexa"
    assert len(data["timeline"]) == len(activities)
    assert all(entry["time"] for entry in data["timeline"])
    assert recordings <= children
