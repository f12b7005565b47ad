"""The HTTP API (FastAPI TestClient) with a real worker process on the
embedded queue: validation before queueing, jobs, results, tokens."""

import csv
import io
import json
import os

import numpy as np
import pytest
from fastapi.testclient import TestClient

import service_fixtures as sf
from service_fixtures import tiny_library  # noqa: F401  pylint: disable=unused-import
from taskemb_jax import description, formats, library
from taskemb_jax.errors import DataError
from taskemb_jax.service import app as app_lib
from taskemb_jax.service import worker as worker_lib

TOKEN = "s3cret-token"
LIMITS = {"max_examples": 500, "max_upload_mb": 1,
          "max_description_chars": 300}


@pytest.fixture(scope="module")
def api(tiny_library, tmp_path_factory):  # noqa: F811  pylint: disable=redefined-outer-name
  """(client, config, workdir) with one worker process on the same queue."""
  root = tmp_path_factory.mktemp("api")
  lib = sf.copy_library(tiny_library, str(root / "lib"))
  work = str(root / "work")
  config = sf.tiny_config(lib, token=TOKEN, **LIMITS)
  client = TestClient(app_lib.create_app(config, work))
  with client, sf.process([sf.TINY, "--config.serve.role=worker",
                           f"--config.library={lib}", f"--workdir={work}"],
                          str(root / "worker.log")):
    sf.wait_for(lambda: client.get("/api/health").json()["workers"], 90,
                "the worker")
    yield client, config, work


def _submit(client, path=None, kind="classification", description=None,
            name=None):
  files = None
  if path is not None:
    with open(path, "rb") as f:
      files = {"file": (name or os.path.basename(path), f.read())}
  data = {}
  if kind is not None and path is not None:
    data["kind"] = kind
  if description is not None:
    data["description"] = description
  return client.post("/api/jobs", files=files, data=data)


def _wait(client, job_id, states=("done", "failed", "cancelled")):
  return sf.wait_for(
      lambda: (lambda j: j if j["state"] in states else None)(
          client.get(f"/api/jobs/{job_id}").json()), 120, f"job {job_id}")


def test_health_library_and_openapi(api):
  client, config, _ = api
  h = client.get("/api/health").json()
  assert (h["broker"], h["tasks"], h["queued"], h["running"]) == (
      "sqlite", 3, 0, 0)
  assert len(h["workers"]) == 1 and h["workers"][0]["pid"] > 0
  tasks = client.get("/api/library").json()["tasks"]
  assert [t["name"].split(":")[0] for t in tasks] == list(sf.KINDS)
  assert [t["class"] for t in tasks] == ["classification", "classification",
                                         "tagging"]
  # No description in the entries: the registry's (a local folder's).
  assert all(t["description"].startswith("local folder ") for t in tasks)
  assert all(t["examples"] == 24 for t in tasks)
  points = client.get("/api/library/map").json()["points"]
  assert sorted(p["name"] for p in points) == sorted(
      library.tasks(config.library))
  spec = client.get("/openapi.json").json()
  for name in ("Submitted", "JobStatus", "JobResult", "ErrorBody",
               "RankedSource", "Health", "Library"):
    assert name in spec["components"]["schemas"]
  assert set(spec["paths"]) >= {"/api/jobs", "/api/jobs/{job_id}",
                                "/api/jobs/{job_id}/result",
                                "/api/jobs/{job_id}/publish",
                                "/api/library", "/api/health"}
  assert "swagger" in client.get("/docs").text.lower()
  page = client.get("/jobs/anything")
  assert page.status_code == 200 and "<script src=\"/static/app.js\">" in \
      page.text


def test_bad_input_is_refused_before_queueing(api, tmp_path):
  client, _, work = api
  bad = tmp_path / "bad.jsonl"
  bad.write_text('{"text": "fine", "label": "a"}\n{"text": "broken", \n')
  r = _submit(client, str(bad))
  assert r.status_code == 422
  # The line the CLI prints, with the user's file name for the path.
  with pytest.raises(DataError) as cli:
    formats.read_file(str(bad), "classification")
  assert r.json() == {"error": str(cli.value).replace(str(bad), "bad.jsonl")}
  assert r.json()["error"].startswith("bad.jsonl:2: ")
  # A file name with a path: shown by its last component, never used.
  r = _submit(client, str(bad), name="../../../etc/passwd.jsonl")
  assert r.json()["error"].startswith("passwd.jsonl:2: ")
  assert os.listdir(os.path.join(work, "uploads")) == []
  one = sf.write_jsonl(str(tmp_path / "one.jsonl"),
                       [{"text": f"x {i}", "label": "a"} for i in range(40)])
  r = _submit(client, one)
  assert r.status_code == 422 and r.json()["error"] == (
      "task 'classification:one.jsonl': only one label in train split "
      "('a'); a classification task needs at least two")
  many = sf.classification_file(str(tmp_path / "many.jsonl"), n=501)
  assert _submit(client, many).json()["error"] == (
      "many.jsonl: 501 examples; this server takes at most 500 "
      "(config.serve.max_examples)")
  big = tmp_path / "big.jsonl"
  big.write_bytes(b'{"text": "' + b"x" * (1 << 20) + b'", "label": "a"}\n')
  r = _submit(client, str(big))
  assert r.status_code == 413 and "limit of 1 MB (config.serve.max_upload_mb)" \
      in r.json()["error"]
  ok = sf.classification_file(str(tmp_path / "ok.jsonl"))
  r = _submit(client, ok, kind=None)
  assert r.status_code == 422 and r.json()["error"].startswith("kind: None")
  r = _submit(client, ok, kind="text")
  assert r.json()["error"] == ("kind: 'text'; use one of classification, "
                               "regression, qa, tagging")
  r = _submit(client, description="x" * 301)
  assert r.json()["error"].startswith("description: 301 characters; this "
                                      "server takes at most 300")
  r = client.post("/api/jobs", data={"description": "  "})
  assert r.status_code == 422 and r.json()["error"] == (
      "submit a file (with its kind) or a description")
  assert client.get("/api/health").json()["queued"] == 0


def test_a_job_runs_once_and_its_result_is_served(api, tmp_path):
  client, config, _ = api
  path = sf.classification_file(str(tmp_path / "reviews.jsonl"))
  text = "Movie reviews <script>alert('x')</script> &amp; ratings"
  r = _submit(client, path, description=text)
  assert r.status_code == 202
  sub = r.json()
  assert sub["new"] and sub["state"] == "queued" and sub["url"] == \
      f"/jobs/{sub['id']}" and len(sub["id"]) >= 22
  assert sub["detected"]["examples"] == 60 and sub["detected"]["labels"] == {
      "negative": 30, "positive": 30}
  again = _submit(client, path, description=text)
  assert again.status_code == 200 and again.json()["id"] == sub["id"]
  assert not again.json()["new"]
  job = _wait(client, sub["id"])
  assert job["state"] == "done", job
  assert (job["progress"], job["stage"], job["attempt"], job["error"]) == (
      1.0, "done", 1, None)
  assert job["description"] == text and job["filename"] == "reviews.jsonl"
  assert job["timings"]["seconds"] > 0 and job["timings"]["traces"] >= 1
  result = client.get(f"/api/jobs/{sub['id']}/result").json()
  names = library.tasks(config.library)
  assert sorted(r["source"] for r in result["ranking"]) == names
  assert [r["rank"] for r in result["ranking"]] == [1, 2, 3]
  assert result["views"] == ["taskemb", "textemb", "description"]
  assert result["target"] == "reviews.jsonl" and result["description"] == text
  scores = [r["score"] for r in result["ranking"]]
  assert scores == sorted(scores, reverse=True)
  # The TextEmb view: cosines of the new task's TextEmb (kept for
  # publishing) with the library's, by hand.
  store = client.app.state.service.queue.store
  target = worker_lib.target_from_bytes(store.get_blob(sub["id"], "target"))
  for row in result["ranking"]:
    src = library.load(config.library, row["source"])["textemb"]
    want = float(src @ target["textemb"] / np.linalg.norm(src)
                 / np.linalg.norm(target["textemb"]))
    assert row["scores"]["textemb"] == pytest.approx(want, abs=1e-6)
  # The description view: the worker's encoder (tiny, seed 0) in-process.
  enc = description.load_encoder("tiny")
  want = description.description_scores(text, {
      n: description.task_description(n, library.load(
          config.library, n)["entry"]) for n in names}, enc)
  for row in result["ranking"]:
    assert row["scores"]["description"] == pytest.approx(
        want[row["source"]], abs=1e-5)
  points = {p["name"]: p for p in result["map"]}
  assert points["reviews.jsonl"]["target"] and len(points) == 4
  table = list(csv.DictReader(io.StringIO(client.get(
      f"/api/jobs/{sub['id']}/result", params={"format": "csv"}).text)))
  assert [(t["rank"], t["source"]) for t in table] == [
      (str(r["rank"]), r["source"]) for r in result["ranking"]]
  assert float(table[0]["textemb_score"]) == pytest.approx(
      result["ranking"][0]["scores"]["textemb"], rel=1e-5)
  dl = client.get(f"/api/jobs/{sub['id']}/result", params={"download": True})
  assert "attachment" in dl.headers["content-disposition"]
  assert json.loads(dl.text)["ranking"] == result["ranking"]


def test_description_only(api):
  client, config, _ = api
  r = client.post("/api/jobs", data={"description": "tag each word"})
  assert r.status_code == 202 and r.json()["detected"] is None
  job = _wait(client, r.json()["id"])
  assert job["state"] == "done", job
  result = client.get(f"/api/jobs/{job['id']}/result").json()
  assert result["method"] == "description" and result["views"] == [
      "description"]
  assert result["kind"] is None and result["warnings"] == []
  assert len(result["ranking"]) == len(library.tasks(config.library))
  assert not any(p["target"] for p in result["map"])


def test_tokens_cancel_and_publish(api, tmp_path):
  client, config, work = api
  first = _submit(client, sf.classification_file(
      str(tmp_path / "a.jsonl"), seed=11)).json()["id"]
  second = _submit(client, sf.classification_file(
      str(tmp_path / "b.jsonl"), seed=12)).json()["id"]
  assert client.delete(f"/api/jobs/{second}").status_code == 401
  assert client.delete(f"/api/jobs/{second}", headers={
      "Authorization": "Bearer wrong"}).status_code == 401
  auth = {"Authorization": f"Bearer {TOKEN}"}
  r = client.delete(f"/api/jobs/{second}", headers=auth)
  assert r.status_code == 200 and r.json()["state"] in ("cancelled",
                                                         "running")
  assert _wait(client, second)["state"] == "cancelled"
  assert client.get(f"/api/jobs/{second}/result").status_code == 409
  assert _wait(client, first)["state"] == "done"
  body = {"name": "my-reviews", "description": "My <b>reviews</b>"}
  url = f"/api/jobs/{first}/publish"
  assert client.post(url, json=body).status_code == 401
  assert client.post(f"/api/jobs/{second}/publish", json=body,
                     headers=auth).status_code == 409
  r = client.post(url, json={"name": "../x"}, headers=auth)
  assert r.status_code == 422 and r.json()["error"].startswith("name: ")
  r = client.post(url, json=body, headers=auth)
  assert r.status_code == 200, r.json()
  assert r.json() == {"name": "my-reviews", "library": "lib", "tasks": 4}
  entry = library.load(config.library, "my-reviews")["entry"]
  assert entry["description"] == "My <b>reviews</b>"
  listed = {t["name"]: t for t in client.get("/api/library").json()["tasks"]}
  assert listed["my-reviews"]["description"] == "My <b>reviews</b>"
  assert client.get(f"/api/jobs/{first}").json()["published"] == "my-reviews"
  assert client.post(url, json=body, headers=auth).status_code == 409
  assert client.post(url, json={"name": "mr-polarity"},
                     headers=auth).status_code == 409  # A registry name.
  # A server without a token: both endpoints off.
  closed = TestClient(app_lib.create_app(sf.tiny_config(config.library), work,
                                         reaper=False))
  r = closed.delete(f"/api/jobs/{first}", headers=auth)
  assert r.status_code == 403 and "no config.serve.token" in r.json()["error"]
  assert closed.get(f"/api/jobs/{first}").json()["state"] == "done"
  assert client.get("/api/jobs/..%2F..%2Fetc").status_code == 404
  assert client.get("/api/jobs/" + "a" * 22).json() == {
      "error": f"no job '{'a' * 22}'"}
