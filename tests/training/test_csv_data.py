"""mlrm.training.csv_files on its own: how text is decoded, split and mapped back to the
file's lines, and windowed config sets reading CSV columns as tabular ones do
(the CLI and the training service are tested end to end in
tests/training_service/test_csv_files.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlrm.config import load_config_set
from mlrm.tools.datasets import to_csv, worker_activity
from mlrm.training import csv_files, trainer
from tests.toolkit.files import CONFIGS


def test_text_is_utf8_without_its_mark_or_else_windows_1252_with_the_line_and_byte() -> None:
    assert csv_files.decode(b"\xef\xbb\xbfa,b\n1,2\n") == ("a,b\n1,2\n", [])
    text, notes = csv_files.decode("a,b\n1,2\nÖl,3\n".encode("cp1252"))
    assert text == "a,b\n1,2\nÖl,3\n"
    assert notes[0].line == 3 and notes[0].text.startswith("byte 0xD6 is not UTF-8")
    assert csv_files.decode(b"a\n\x81\n")[0] == "a\n\x81\n"  # undefined in Windows-1252: Latin-1 takes it


def test_the_delimiter_is_the_one_that_names_the_config_sets_columns() -> None:
    names = {"volume_pct", "result"}
    assert csv_files.choose_delimiter("volume_pct;result\n", names) == ";"
    assert csv_files.choose_delimiter("volume_pct,result\n", names) == ","
    assert csv_files.choose_delimiter("volume_pct\tresult\n", names) == "\t"
    assert csv_files.choose_delimiter("a;b,c;d\n") == ";"  # without names: the most columns


def test_an_upload_keeps_the_files_lines_so_the_services_answers_map_back() -> None:
    text = 'a,b\n\n1,"two\nlines"\n3,4\n\n5,6\n'
    upload = csv_files.Upload.of(text)
    assert upload.header_end == 1 and upload.spans == [(3, 4), (5, 5), (7, 7)]
    assert upload.chunk(0, 2) == 'a,b\n1,"two\nlines"\n3,4\n'
    assert upload.chunk(1, 3) == "a,b\n3,4\n\n5,6\n"
    assert upload.file_line(1, 4) == 7 and upload.file_line(1, 1) == 1  # chunk line 4 is the file's line 7
    assert csv_files.Upload.of("").chunk(0, 10) == ""


def test_a_windowed_config_set_ignores_extra_columns_and_counts_rejected_records() -> None:
    config = load_config_set(CONFIGS / "worker-activity")
    rows = [{**r, "note": "left hand"} for r in worker_activity(rows=400, seed=1)]
    rows[10]["acc_x"] = "lots"
    rows[11] = {**rows[11], "acc_y": "x", "activity": "running"}
    table = csv_files.parse(to_csv(rows), config)
    data = trainer.dataset(config, table.records, strings=True, invalid=table.invalid)
    assert data.ignored == ["note"] and len(data) > 0
    assert (data.total, data.rejected_rows, len(data.rejected)) == (400, 2, 3)
    assert [e.pointer for e in data.rejected] == ["/rows/10/acc_x", "/rows/11/acc_y", "/rows/11/activity"]


def test_a_row_with_more_cells_is_rejected_with_its_line(tmp_path: Path) -> None:
    config = load_config_set(CONFIGS / "breast-cancer")
    header = ",".join([f.name for f in config.inputs] + ["diagnosis"])
    row = ",".join(["1"] * len(config.inputs) + ["benign"])
    file = tmp_path / "data.csv"
    file.write_text(f"{header}\n{row}\n\n{row},9\n{row},\n", encoding="utf-8")
    table = csv_files.read_file(file, config)
    assert table.lines == [2, 4, 5] and list(table.invalid) == [1]  # an empty extra cell is harmless
    assert table.invalid[1][0].detail.startswith("line 4 has 32 cells; the header has 31 columns.")
    with pytest.raises(csv_files.CsvError, match=r"data.csv:1: column 'diagnosis' appears twice"):
        file.write_text(f"{header},diagnosis\n{row}\n", encoding="utf-8")
        csv_files.read_file(file, config)
