"""What a gateway that follows the training service fetches: the current
version with an ETag (304 while it holds), a version's bundle with every
file's sha256, and those files and no others."""

from __future__ import annotations

from pathlib import Path

from flask.testing import FlaskClient

from mlrm.storage.versions import PARAMETERS, VersionStore, sha256
from tests.toolkit.training import NAME


def test_current_answers_304_while_the_etag_holds_and_changes_with_the_version(
    ts_client: FlaskClient, root: Path
) -> None:
    first = ts_client.get(f"/v1/services/{NAME}/current")
    assert first.status_code == 200, first.get_json()
    body, etag = first.get_json(), first.headers["ETag"]
    pointer = VersionStore(root / NAME / "learned").pointer()
    assert pointer is not None
    assert body == {"service": NAME, "version": 1, "parameters_sha256": pointer.parameters_sha256,
                    "bundle": f"/v1/services/{NAME}/versions/1/bundle"}  # fmt: skip
    assert etag == f'"1-{pointer.parameters_sha256}"' and first.headers["Cache-Control"] == "no-cache"
    same = ts_client.get(f"/v1/services/{NAME}/current", headers={"If-None-Match": etag})
    assert same.status_code == 304 and same.data == b"" and same.headers["ETag"] == etag

    store = VersionStore(root / NAME / "learned")
    record = store.read(1)
    store.write({k: v for k, v in record.parameters.items() if k not in ("version", "artifacts")}, record.files)
    moved = ts_client.get(f"/v1/services/{NAME}/current", headers={"If-None-Match": etag})
    assert moved.status_code == 200 and moved.get_json()["version"] == 2 and moved.headers["ETag"] != etag


def test_bundle_lists_every_file_with_its_digest_and_serves_only_those(ts_client: FlaskClient, root: Path) -> None:
    bundle = ts_client.get(f"/v1/services/{NAME}/versions/1/bundle").get_json()
    folder = root / NAME / "learned" / "versions" / "0001"
    names = sorted(f["name"] for f in bundle["files"])
    assert names == sorted(p.name for p in folder.iterdir()), names
    assert bundle["signed"] is False and bundle["version"] == 1
    for item in bundle["files"]:
        answer = ts_client.get(item["href"])
        assert answer.status_code == 200 and answer.mimetype == "application/octet-stream"
        assert sha256(answer.data) == item["sha256"] and len(answer.data) == item["size"]
    assert bundle["parameters_sha256"] == sha256((folder / PARAMETERS).read_bytes())

    (root / NAME / "service.yaml").with_name("secret.txt").write_text("not for gateways")
    for file in ("..", ".lock", "..%2Fservice.yaml", "service.yaml", "%2E%2E", "current.yaml"):
        answer = ts_client.get(f"/v1/services/{NAME}/versions/1/files/{file}")
        assert answer.status_code == 404, (file, answer.get_json())
    assert ts_client.get(f"/v1/services/{NAME}/versions/1/files/../../secret.txt").status_code == 404
    missing = ts_client.get(f"/v1/services/{NAME}/versions/9/bundle")
    assert missing.status_code == 404 and "no version 9" in missing.get_json()["detail"]
    assert ts_client.get(f"/v1/services/{NAME}/versions/99999999999999999999/bundle").status_code == 404


def test_a_service_never_trained_says_how_to_train_it(ts_client: FlaskClient, root: Path) -> None:
    (root / NAME / "learned" / "current.yaml").unlink()
    answer = ts_client.get(f"/v1/services/{NAME}/current")
    problem = answer.get_json()
    assert answer.status_code == 404 and problem["type"].endswith("/no-current-version")
    assert f"POST /v1/services/{NAME}/train" in problem["detail"]
