"""The service as a user runs it: `serve` in its own process with a worker
process, driven by a real browser (Debian's chromium via Playwright), then
SIGKILL of the worker mid-job, and restarts of the server."""

import os
import signal
import tempfile

import httpx
import pytest

import service_fixtures as sf
import synthetic
from service_fixtures import tiny_library  # noqa: F401  pylint: disable=unused-import

CHROMIUM = "/usr/bin/chromium"
# Short heartbeats; long fine-tuning of large uploads only (to kill a
# worker in it): the target trains on up to 4,000 examples for 3 epochs,
# about 1,500 steps of the tiny model (SLOW_EXAMPLES), while the browser's
# files of at most 200 examples train in a second.
TOKEN = "t0ken"
FLAGS = ("--config.serve.heartbeat_s=0.5", "--config.serve.stale_s=4",
         f"--config.serve.token={TOKEN}",
         "--config.transfer.source_examples=4000",
         "--config.transfer.all.num_epochs=3")
SLOW_EXAMPLES = 5000
XSS = "<script>window.__xss = 1</script><b>bold</b> movie reviews"


@pytest.fixture(scope="module")
def served(tiny_library, tmp_path_factory):  # noqa: F811  pylint: disable=redefined-outer-name
  root = tmp_path_factory.mktemp("served")
  work = str(root / "work")
  with sf.server(work, tiny_library, *FLAGS) as (url, proc):
    yield {"url": url, "proc": proc, "work": work, "lib": tiny_library,
           "root": root}


@pytest.fixture(scope="module")
def page():
  if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
  sync_api = pytest.importorskip("playwright.sync_api")
  with tempfile.TemporaryDirectory() as profile, \
      sync_api.sync_playwright() as p:
    context = p.chromium.launch_persistent_context(
        profile, executable_path=CHROMIUM, headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-quic",
              "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync"])
    tab = context.new_page()
    dialogs = []
    tab.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    tab.dialogs = dialogs
    yield tab
    context.close()


def test_page_upload_progress_and_ranked_table(served, page, tmp_path):
  url = served["url"]
  data = sf.classification_file(str(tmp_path / "my reviews.jsonl"))
  page.goto(url + "/")
  assert page.locator("table.formats tbody tr").count() == 4
  page.set_input_files("#file", data)
  page.select_option("#kind", "classification")
  page.fill("#description", XSS)
  page.click("#submit")
  page.wait_for_url("**/jobs/*")
  job_id = page.url.rsplit("/", 1)[1]
  assert page.text_content("#job-id") == job_id
  page.wait_for_selector("#detected")
  assert "60 examples" in page.text_content("#detected")
  assert page.locator("#job-bar").count() == 1
  page.wait_for_selector("#ranking tbody tr", timeout=120_000)
  rows = page.locator("#ranking tbody tr")
  assert rows.count() == 3
  sources = sorted(rows.nth(i).locator("td.source").text_content()
                   for i in range(3))
  assert [s.split(":")[0] for s in sources] == sorted(sf.KINDS)
  assert page.text_content("#job-state") == "done"
  assert page.eval_on_selector("#job-bar", "e => e.value") == 1
  headers = page.locator("#ranking-head th").all_text_contents()
  assert headers[:4] == ["rank", "source", "class", "score (TaskEmb)"]
  assert headers[4:] == ["TextEmb rank", "Description rank", "agreement",
                         "description"]
  # Agreement chips: one per view in every row.
  assert rows.nth(0).locator(".chip").count() == 3
  # The description is shown as text: no script ran, no element was made.
  assert page.text_content("#job-description") == XSS
  assert page.evaluate("window.__xss") is None and page.dialogs == []
  assert page.locator("#job-summary b").count() == 0
  assert page.locator("#job-summary script").count() == 0
  # The map: the library's tasks and the new one, ringed.
  assert page.locator("#job-map svg circle").count() == 4
  assert page.text_content("#job-map text.target") == \
      "my_reviews.jsonl (yours)"
  csv_href = page.get_attribute("#dl-csv", "href")
  assert csv_href == f"/api/jobs/{job_id}/result?format=csv"
  got = page.request.get(url + csv_href)
  assert got.ok and got.text().startswith("rank,source,class,score")
  # The permalink shows the same table in a new visit.
  page.goto(f"{url}/jobs/{job_id}")
  page.wait_for_selector("#ranking tbody tr")
  assert sorted(page.locator("#ranking td.source").all_text_contents()) == \
      sources


def test_page_shows_the_one_line_error_of_a_bad_file(served, page, tmp_path):
  bad = tmp_path / "bad.jsonl"
  bad.write_text('{"text": "fine", "label": "a"}\n{"text": 3, "label": "b"}\n')
  page.goto(served["url"] + "/")
  page.set_input_files("#file", str(bad))
  page.click("#submit")
  page.wait_for_selector("#submit-error:not([hidden])")
  assert page.text_content("#submit-error") == (
      "bad.jsonl:2: field 'text' missing or not a non-empty string")
  assert page.url == served["url"] + "/"


def test_page_warns_when_the_best_sources_are_of_another_class(served, page,
                                                              tmp_path):
  # Two of the library's three tasks are classification tasks: a tagging
  # task's top 3 is mostly of another class.
  folder = synthetic.write_task(str(tmp_path / "tags"), "tagging",
                                n_train=60, seed=5)
  page.goto(served["url"] + "/")
  page.set_input_files("#file", folder + "/train.conll")
  page.select_option("#kind", "tagging")
  page.click("#submit")
  page.wait_for_selector("#ranking tbody tr", timeout=120_000)
  assert page.text_content("#warnings .warning") == (
      "Warning: 2 of the best 3 sources are classification tasks, not "
      "tagging like yours: transfer across task classes is less reliable; "
      "prefer the best source of your class")
  assert page.locator("#ranking tr.other-class").count() == 2


def test_library_page_and_the_sample(served, page):
  url = served["url"]
  page.goto(url + "/library")
  page.wait_for_selector("#library-table tbody tr")
  assert page.locator("#library-table tbody tr").count() == 3
  assert page.locator("#library-map svg circle").count() == 3
  page.goto(url + "/")
  page.click("#try-sample")
  page.wait_for_url("**/jobs/*")
  page.wait_for_selector("#detected")
  assert "200 examples" in page.text_content("#detected")
  assert "fresh ×" in page.text_content("#job-summary")
  page.wait_for_selector("#ranking tbody tr", timeout=120_000)


def _job(url, job_id):
  return httpx.get(f"{url}/api/jobs/{job_id}", timeout=10).json()


def _kill_worker_in_training(url, job_id, attempt):
  """SIGKILLs the worker while this attempt is fine-tuning, past its start;
  its pid."""
  sf.wait_job(url, job_id, ("running",), check=lambda j: j[
      "attempt"] == attempt and j["stage"] == "fine-tuning" and j[
          "progress"] > 0.12, timeout_s=120)
  workers = httpx.get(url + "/api/health").json()["workers"]
  busy = [w for w in workers if w["job"] == job_id]
  assert len(busy) == 1, workers
  os.kill(busy[0]["pid"], signal.SIGKILL)
  return busy[0]["pid"]


def test_cancelling_a_running_job_stops_it(served, tmp_path):
  url = served["url"]
  slow = sf.classification_file(str(tmp_path / "slow.jsonl"),
                                n=SLOW_EXAMPLES, seed=4)
  job_id = httpx.post(url + "/api/jobs", data={"kind": "classification"},
                      files={"file": open(slow, "rb")}).json()["id"]
  sf.wait_job(url, job_id, ("running",), check=lambda j: j["progress"] >= 0.1)
  r = httpx.delete(f"{url}/api/jobs/{job_id}",
                   headers={"Authorization": f"Bearer {TOKEN}"})
  assert r.status_code == 200 and r.json()["stage"] == "cancelling"
  job = sf.wait_job(url, job_id, ("cancelled", "done", "failed"))
  assert (job["state"], job["error"]) == ("cancelled",
                                          "cancelled while running")
  assert job["progress"] < 1
  workers = httpx.get(url + "/api/health").json()["workers"]
  assert [w["job"] for w in workers] == [None]  # Free for the next job.


def test_killed_worker_retried_once_then_failed_and_restarts_keep_jobs(
    served, tmp_path):
  url, work, lib = served["url"], served["work"], served["lib"]
  slow = sf.classification_file(str(tmp_path / "slow.jsonl"),
                                n=SLOW_EXAMPLES, seed=3)
  job_id = httpx.post(url + "/api/jobs", data={"kind": "classification"},
                      files={"file": open(slow, "rb")}).json()["id"]
  first = _kill_worker_in_training(url, job_id, 1)
  # The server restarts its worker; the reaper queues the job again.
  job = sf.wait_job(url, job_id, ("running",),
                    check=lambda j: j["attempt"] == 2, timeout_s=120)
  assert job["error"] is None
  second = _kill_worker_in_training(url, job_id, 2)
  assert second != first
  job = sf.wait_job(url, job_id, ("failed",), timeout_s=60)
  assert "stopped responding during each of 2 attempts" in job["error"]
  assert job["attempt"] == 2
  health = httpx.get(url + "/api/health").json()
  assert (health["queued"], health["running"]) == (0, 0)
  if not _done_ids(url, served):
    # The browser tests, which leave finished jobs, were skipped (no
    # Chromium): the restarted worker finishes one of its own.
    quick = httpx.post(url + "/api/jobs", data={"kind": "classification"},
                       files={"file": open(sf.classification_file(
                           str(tmp_path / "quick.jsonl"), seed=5), "rb")}
                       ).json()["id"]
    sf.wait_job(url, quick, ("done",))
  done = [j for j in (httpx.get(f"{url}/api/jobs/{i}").json() for i in
                      _done_ids(url, served)) if j["state"] == "done"]
  assert done
  before = {j["id"]: httpx.get(f"{url}/api/jobs/{j['id']}/result").json()
            for j in done}
  sf._stop(served["proc"])  # pylint: disable=protected-access
  # A new server on the same workdir (no worker): every record is there.
  with sf.server(work, lib, *FLAGS, "--config.serve.workers=0",
                 workers=0) as (url2, _):
    assert _job(url2, job_id)["error"] == job["error"]
    for i, result in before.items():
      assert httpx.get(f"{url2}/api/jobs/{i}/result").json() == result
    queued = httpx.post(url2 + "/api/jobs", data={
        "description": "still here after a restart"}).json()["id"]
  with sf.server(work, lib, *FLAGS, "--config.serve.workers=0",
                 workers=0) as (url3, _):
    assert _job(url3, queued)["state"] == "queued"
    assert _job(url3, queued)["position"] == 1


def _done_ids(url, served):
  """Ids of the jobs the browser tests ran (from the worker's log)."""
  del url
  text = open(served["work"] + ".log", errors="replace").read()
  return sorted({line.split("job ")[1].split()[0] for line in
                 text.splitlines() if " done in " in line})
