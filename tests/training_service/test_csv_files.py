"""The CSV files a novice brings, through `mlrm train --data` on this machine
and `mlrm train --remote` against the real `mlrm training-service`: each
file gets the same notes, warnings and errors both ways (naming the file,
the line and the fix, never a traceback), and a remote run that got no
sample accepted starts no job."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from mlrm.tools.datasets import to_csv, worker_activity
from tests.toolkit.files import copy_config_set
from tests.toolkit.processes import Process, env, mlrm_args
from tests.toolkit.training import NAME

pytestmark = pytest.mark.slow

REPORTED = ("note: ", "warning: ", "rejected ", "mlrm train: ", "... and ")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(mlrm_args(*args), capture_output=True, text=True, env=env(), timeout=120)


def reported(result: subprocess.CompletedProcess[str]) -> list[str]:
    """What `mlrm train` told the person about the data, in order."""
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith(REPORTED)]


def both(folder: Path, url: str, data: Path) -> tuple[subprocess.CompletedProcess[str], ...]:
    local = run("train", str(folder), "--data", str(data), "--dry-run")
    remote = run("train", folder.name, "--remote", url, "--data", str(data))
    return local, remote


def jobs(url: str, name: str = NAME) -> list[dict[str, Any]]:
    return list(requests.get(f"{url}/v1/services/{name}/jobs", timeout=5).json()["jobs"])


def semicolons(text: str) -> str:
    """The file as a German Excel saves it: ';' between cells, decimal commas."""
    return "\n".join(line.replace(",", ";").replace(".", ",") for line in text.splitlines()) + "\n"


def test_unusable_files_get_the_same_message_both_ways_and_start_no_job(
    root: Path,
    tmp_path: Path,
    cancer_rows: list[dict[str, Any]],
    training_service: Callable[..., tuple[str, Process]],
) -> None:
    url, _ = training_service(root)
    text = to_csv(cancer_rows[:60])
    header = text.splitlines()[0]
    files = {
        "empty.csv": b"",
        "header-only.csv": (header + "\n").encode(),
        "missing.csv": text.replace("mean_area,", "area,", 1).encode(),
        "no-header.csv": "\n".join(text.splitlines()[1:]).encode(),
        "bad-labels.csv": text.replace(",benign\n", ",Benign\n").replace(",malignant\n", ",bad\n").encode(),
    }
    expected = {
        "empty.csv": ":1: the file is empty: expected a header line with the column names mean_radius, ",
        "header-only.csv": ":2: no rows after the header line: add one row per sample under it.",
        "missing.csv": ":1: missing column 'mean_area' (a required input); the header has: ",
        "no-header.csv": ":1: missing columns 'mean_radius' (a required input); ",
        "bad-labels.csv": ": none of its 60 rows was accepted, so nothing was trained. Fix the rows named above",
    }
    for name, body in files.items():
        data = tmp_path / name
        data.write_bytes(body)
        local, remote = both(root / NAME, url, data)
        assert local.returncode == remote.returncode == 2, (local.stderr, remote.stdout, remote.stderr)
        said = reported(local)
        assert said == reported(remote), (name, said, remote.stderr)
        assert said[-1].startswith(f"mlrm train: {data}{expected[name]}"), said
    missing = run("train", NAME, "--remote", url, "--data", str(tmp_path / "missing.csv"))
    assert "Did you mean 'area'? Add the column or correct the header's spelling." in missing.stderr
    bad = reported(run("train", NAME, "--remote", url, "--data", str(tmp_path / "bad-labels.csv")))
    assert bad[0].startswith(f"rejected {tmp_path / 'bad-labels.csv'}:2: diagnosis: unknown label ")
    assert bad[0].endswith("expected one of malignant, benign")
    assert bad[10] == "... and 50 more rejected rows"
    assert jobs(url) == []  # nothing was accepted, so nothing was trained
    stats = requests.get(f"{url}/v1/services/{NAME}/samples/stats", timeout=5).json()
    assert stats["total"] == 0


def test_files_from_spreadsheets_are_read_with_the_same_notes_both_ways(
    root: Path,
    tmp_path: Path,
    cancer_rows: list[dict[str, Any]],
    training_service: Callable[..., tuple[str, Process]],
) -> None:
    url, _ = training_service(root)
    rows = cancer_rows[:80]
    latin = to_csv([{**r, "remark": "Größe ok"} for r in rows])
    files = {
        "excel-utf8.csv": b"\xef\xbb\xbf" + to_csv(rows).encode(),
        "latin1.csv": latin.encode("cp1252"),
        "german-excel.csv": semicolons(to_csv(rows)).encode(),
    }
    notes = {
        "excel-utf8.csv": [],
        "latin1.csv": ["note: {}:2: byte 0xF6 is not UTF-8: read the file as Windows-1252 (Latin-1). If any text "
                       "looks wrong, save the file as 'CSV UTF-8' and train again."],
        "german-excel.csv": ["note: {}:2: decimal commas read as decimal points (98,5 = 98.5) in the numeric "
                             "columns of this ';'-separated file."],
    }  # fmt: skip
    for name, body in files.items():
        data = tmp_path / name
        data.write_bytes(body)
        local, remote = both(root / NAME, url, data)
        assert local.returncode == remote.returncode == 0, (name, local.stderr, remote.stdout + remote.stderr)
        assert reported(local) == reported(remote) == [n.format(data) for n in notes[name]], (name, remote.stderr)
        assert f"posted {data}: {len(rows)} samples accepted, 0 rejected" in remote.stdout
        assert f"(logistic_regression) on {len(rows)} rows" in local.stdout
    assert [j["state"] for j in jobs(url)] == ["succeeded"] * 3


def test_a_declared_label_no_row_has_is_warned_about_both_ways(
    root: Path, tmp_path: Path, pcb_rows: list[dict[str, Any]], training_service: Callable[..., tuple[str, Process]]
) -> None:
    folder = copy_config_set("pcb-inspection", root)
    url, _ = training_service(root)
    data = tmp_path / "no-pseudo-errors.csv"
    data.write_text(to_csv([r for r in pcb_rows if r["result"] != "pseudo-error"][:300]), encoding="utf-8")
    local, remote = both(folder, url, data)
    assert local.returncode == remote.returncode == 0, (local.stderr, remote.stdout + remote.stderr)
    warning = ("warning: no training row has the label 'pseudo-error' of target.labels, so the model cannot learn to "
               "predict it. Add rows labelled 'pseudo-error', or remove it from target.labels.")  # fmt: skip
    assert reported(local) == reported(remote) == [warning]


def test_one_label_only_is_a_clear_error_not_a_traceback(tmp_path: Path, cancer_rows: list[dict[str, Any]]) -> None:
    folder = copy_config_set(NAME, tmp_path)
    data = tmp_path / "benign.csv"
    data.write_text(to_csv([r for r in cancer_rows if r["diagnosis"] == "benign"][:60]), encoding="utf-8")
    local = run("train", str(folder), "--data", str(data))
    assert local.returncode == 2
    assert reported(local)[-1] == (
        "mlrm train: every training row has the label 'benign': a classifier needs rows of at least two of "
        "target.labels (malignant, benign). Add rows with another label."
    )


def test_windowed_csv_with_an_extra_column_is_accepted_record_by_record(
    root: Path, tmp_path: Path, training_service: Callable[..., tuple[str, Process]]
) -> None:
    copy_config_set("worker-activity", root, learned=False)
    url, _ = training_service(root)
    rows = [{**r, "note": "left hand"} for r in worker_activity(rows=300, seed=3)]
    rows[5]["acc_x"] = "lots"
    rows[6] = {**rows[6], "acc_y": "x", "activity": "running"}  # two problems, one row
    posted = requests.post(
        f"{url}/v1/services/worker-activity/samples", data=to_csv(rows).encode(),
        headers={"Content-Type": "text/csv"}, timeout=10,
    )  # fmt: skip
    assert posted.status_code == 202, posted.text
    body = posted.json()
    assert (body["accepted"], body["rejected"], body["problems"]) == (298, 2, 3)
    assert [(r["index"], r["line"], len(r["errors"])) for r in body["rows"] if r["status"] == "rejected"] == [
        (5, 7, 1), (6, 8, 2)]  # fmt: skip
    stats = requests.get(f"{url}/v1/services/worker-activity/samples/stats", timeout=5).json()
    assert stats["total"] == 298 and sum(stats["labels"].values()) == 298
