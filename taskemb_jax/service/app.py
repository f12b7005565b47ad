"""The HTTP API and the page of the task-bank service (FastAPI).

Routes (JSON everywhere; bodies are the types of `service.schemas`, which
make the OpenAPI schema at /docs):

  GET    /api/health                 queue, workers, library
  GET    /api/library                the library's tasks with descriptions
  GET    /api/library/map            2-D PCA map of the library's TaskEmb
  POST   /api/jobs                   multipart: file + kind, and/or
                                     description -> 202 {id, state}
  GET    /api/jobs/{id}              state, stage, progress, ETA, position
  GET    /api/jobs/{id}/result       the ranking (?format=csv)
  DELETE /api/jobs/{id}              cancel (token)
  POST   /api/jobs/{id}/publish      add the task to the library (token)
  GET    /, /jobs/{id}, /library     the page (static files, public API only)

An uploaded file is validated before it is queued (`pipeline.detect`); an
error a user can cause is one HTTP status with ``{"error": "<the line the
CLI prints>"}``. Uploaded file names are shown, never used as paths.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import secrets
import threading
import time
from typing import Any

import ml_collections
from fastapi import (APIRouter, Depends, FastAPI, File, Form, Request,
                     Response, UploadFile)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

import taskemb_jax
from taskemb_jax import description as description_lib
from taskemb_jax import library as library_lib
from taskemb_jax import tasks as tasks_lib
from taskemb_jax.errors import LibraryError, UserError
from taskemb_jax.records import KINDS
from taskemb_jax.service import jobs
from taskemb_jax.service import pipeline
from taskemb_jax.service import schemas
from taskemb_jax.service import worker as worker_lib

STATIC = os.path.join(os.path.dirname(__file__), "static")
_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": schemas.ErrorBody} for code in (401, 403, 404, 409, 413,
                                                    422)}


class ApiError(Exception):
  """An error answered as `status` with {"error": message}."""

  def __init__(self, status: int, message: str):
    super().__init__(message)
    self.status, self.message = status, message


@dataclasses.dataclass
class Service:
  """What the routes share: the config, the workdir and the queue."""
  config: ml_collections.ConfigDict
  workdir: str
  queue: jobs.Queue
  cache: dict[str, Any] = dataclasses.field(default_factory=dict)


def service(request: Request) -> Service:
  return request.app.state.service


def require_token(request: Request, svc: Service = Depends(service)) -> None:
  """Mutating endpoints other than submitting need config.serve.token."""
  token = svc.config.serve.token
  if not token:
    raise ApiError(403, "this endpoint is off on this server (no "
                   "config.serve.token is set)")
  header = request.headers.get("authorization", "")
  given = header[7:].strip() if header.lower().startswith("bearer ") else ""
  if not secrets.compare_digest(given.encode(), token.encode()):
    raise ApiError(401, "missing or wrong token: send 'Authorization: Bearer "
                   "<config.serve.token>'")


def get_job(job_id: str, svc: Service = Depends(service)) -> dict[str, Any]:
  job = svc.queue.store.get(job_id) if _ID.fullmatch(job_id) else None
  if job is None:
    raise ApiError(404, f"no job {job_id!r}")
  return job


router = APIRouter(prefix="/api", responses=_ERRORS)


# ----------------------------------------------------------------------------
# Library and health.


def _library(svc: Service) -> dict[str, Any]:
  """The library's tasks (loaded) and descriptions, cached per manifest."""
  lib = svc.config.library
  try:
    stamp = os.stat(os.path.join(lib, library_lib.MANIFEST)).st_mtime_ns
  except OSError:
    stamp = None
  if svc.cache.get("stamp") != stamp or "loaded" not in svc.cache:
    loaded = {n: library_lib.load(lib, n) for n in library_lib.tasks(lib)}
    svc.cache.update(stamp=stamp, loaded=loaded, map=None, descriptions={
        n: description_lib.task_description(n, t["entry"])
        for n, t in loaded.items()})
  return svc.cache


@router.get("/health", response_model=schemas.Health)
def health(svc: Service = Depends(service)):
  now = time.time()
  active = svc.queue.store.active()
  workers = [schemas.WorkerInfo(id=w, host=i.get("host", "?"),
                                pid=i.get("pid", 0), job=i.get("job"),
                                jobs_done=i.get("jobs_done", 0),
                                seen_s_ago=round(now - i.get("seen", 0), 1))
             for w, i in sorted(jobs.live_workers(svc.queue, now).items())]
  return schemas.Health(
      broker="redis" if svc.config.serve.broker else "sqlite",
      queue=svc.config.serve.queue,
      library=os.path.basename(os.path.normpath(svc.config.library)),
      tasks=len(_library(svc)["loaded"]), workers=workers,
      queued=sum(j["state"] == "queued" for j in active),
      running=sum(j["state"] == "running" for j in active))


@router.get("/library", response_model=schemas.Library)
def library(svc: Service = Depends(service)):
  lib = _library(svc)
  return schemas.Library(
      name=os.path.basename(os.path.normpath(svc.config.library)),
      tasks=[schemas.LibraryTask(
          name=n, class_=t["entry"].get("family", "?"),
          kind=t["entry"].get("kind"), examples=t["entry"].get("num_examples"),
          description=lib["descriptions"][n])
             for n, t in sorted(lib["loaded"].items())])


@router.get("/library/map", response_model=schemas.TaskMap)
def library_map(svc: Service = Depends(service)):
  lib = _library(svc)
  if lib["map"] is None:
    lib["map"] = pipeline.task_map(lib["loaded"])
  return schemas.TaskMap(points=lib["map"])


# ----------------------------------------------------------------------------
# Jobs.


def _read_upload(upload: UploadFile, limit: int) -> bytes:
  data = upload.file.read(limit + 1)
  if len(data) > limit:
    raise ApiError(413, f"{pipeline.shown_name(upload.filename)}: larger than "
                   f"this server's limit of {limit // 2**20} MB "
                   "(config.serve.max_upload_mb)")
  return data


def _detect(svc: Service, data: bytes, kind: str, shown: str, ext: str
            ) -> dict[str, Any]:
  """Validates the upload from a private copy named by the server."""
  folder = os.path.join(svc.workdir, "uploads")
  os.makedirs(folder, exist_ok=True)
  path = os.path.join(folder, f"{secrets.token_hex(12)}{ext}")
  try:
    with open(path, "wb") as f:
      f.write(data)
    return pipeline.detect(path, kind, shown,
                           int(svc.config.serve.max_examples))
  finally:
    with contextlib.suppress(FileNotFoundError):
      os.remove(path)


def _status(svc: Service, job: dict[str, Any]) -> schemas.JobStatus:
  position = None
  if job["state"] == "queued":
    position = jobs.positions(svc.queue).get(job["id"])
  return schemas.JobStatus(
      position=position,
      published=(job.get("published") or {}).get("name"),
      **{k: job.get(k) for k in (
          "id", "state", "stage", "progress", "eta_s", "error", "kind",
          "filename", "description", "detected", "created", "started",
          "finished", "attempt", "max_attempts", "timings")})


@router.post("/jobs", status_code=202, response_model=schemas.Submitted,
             responses={200: {"model": schemas.Submitted,
                              "description": "An earlier job of the same "
                              "content and options"}})
def submit(response: Response,
           file: UploadFile | None = File(
               None, description="A task in the generic format of its kind "
               "(JSON Lines, SQuAD JSON or CoNLL columns)"),
           kind: str | None = Form(None, description=" | ".join(KINDS)),
           description: str = Form("", description="What the task is about"),
           svc: Service = Depends(service)):
  s = svc.config.serve
  description = description.strip()
  if len(description) > s.max_description_chars:
    raise ApiError(422, f"description: {len(description)} characters; this "
                   f"server takes at most {s.max_description_chars} "
                   "(config.serve.max_description_chars)")
  if file is not None and not file.filename and not file.size:
    file = None  # An empty file field of a form.
  if file is None and not description:
    raise ApiError(422, "submit a file (with its kind) or a description")
  data, detected, ext, shown = None, None, "", ""
  if file is not None:
    if kind not in KINDS:
      raise ApiError(422, f"kind: {kind!r}; use one of {', '.join(KINDS)}")
    shown = pipeline.shown_name(file.filename)
    data = _read_upload(file, int(s.max_upload_mb) * 2**20)
    ext = pipeline.extension(file.filename, kind, data[:65536])
    detected = _detect(svc, data, kind, shown, ext)
  else:
    kind = None
  key = hashlib.sha256(json.dumps([
      hashlib.sha256(data).hexdigest() if data is not None else "",
      kind or "", description, os.path.abspath(svc.config.library),
      svc.config.rank.method]).encode()).hexdigest()
  job = jobs.new_job(key, kind=kind, description=description, filename=shown,
                     ext=ext, size=len(data or b""), detected=detected,
                     max_attempts=int(s.max_attempts))
  job, new = jobs.submit(svc.queue, job, data)
  if not new:
    response.status_code = 200
  return schemas.Submitted(id=job["id"], state=job["state"], new=new,
                           url=f"/jobs/{job['id']}",
                           detected=job["detected"])


@router.get("/jobs/{job_id}", response_model=schemas.JobStatus)
def status(job: dict = Depends(get_job), svc: Service = Depends(service)):
  return _status(svc, job)


@router.get("/jobs/{job_id}/result", response_model=schemas.JobResult,
            responses={200: {"content": {"text/csv": {}}}})
def result(format: str = "json", download: bool = False,  # pylint: disable=redefined-builtin
           job: dict = Depends(get_job), svc: Service = Depends(service)):
  if job["state"] != "done":
    raise ApiError(409, f"job {job['id']} is {job['state']}; it has no "
                   "result" + (f" ({job['error']})" if job["error"] else ""))
  raw = svc.queue.store.get_blob(job["id"], "result")
  if raw is None:
    raise ApiError(404, f"job {job['id']}: its result is missing")
  body = schemas.JobResult.model_validate({**json.loads(raw),
                                           "id": job["id"]})
  name = f"ranking-{job['id'][:8]}"
  if format == "csv":
    return Response(pipeline.ranking_csv(body.model_dump(by_alias=True)),
                    media_type="text/csv",
                    headers={"Content-Disposition":
                             f'attachment; filename="{name}.csv"'})
  if format != "json":
    raise ApiError(422, f"format: {format!r}; use json or csv")
  if download:
    return Response(body.model_dump_json(by_alias=True, indent=1),
                    media_type="application/json",
                    headers={"Content-Disposition":
                             f'attachment; filename="{name}.json"'})
  return body


@router.delete("/jobs/{job_id}", response_model=schemas.Cancelled,
               dependencies=[Depends(require_token)])
def cancel(job: dict = Depends(get_job), svc: Service = Depends(service)):
  new = svc.queue.store.update(job["id"], jobs.cancel) or job
  return schemas.Cancelled(id=new["id"], state=new["state"],
                           stage=new["stage"])


@router.post("/jobs/{job_id}/publish", response_model=schemas.Published,
             dependencies=[Depends(require_token)])
def publish(body: schemas.PublishRequest, job: dict = Depends(get_job),
            svc: Service = Depends(service)):
  lib = svc.config.library
  raw = svc.queue.store.get_blob(job["id"], "target")
  if job["state"] != "done" or raw is None:
    raise ApiError(409, f"job {job['id']} has no task embeddings to publish "
                   "(only a finished job with data has)")
  if body.name in library_lib.tasks(lib) or body.name in tasks_lib.TASKS:
    raise ApiError(409, f"name {body.name!r} is taken (a task of the library "
                   "or of the registry); choose another")
  target = worker_lib.target_from_bytes(raw)
  entry = target["entry"]
  task = {k: v for k, v in entry.items()
          if k not in ("textemb", "taskemb", "files", "folder")}
  task.update(name=body.name, description=body.description
              or job["description"], published={"job": job["id"],
                                                "time": time.time()})
  library_lib.add(lib, task, textemb=target["textemb"],
                  textemb_options=entry.get("textemb"),
                  taskemb=target["taskemb"] or None,
                  taskemb_options=entry.get("taskemb"))
  svc.queue.store.update(job["id"], jobs.published(body.name))
  return schemas.Published(name=body.name, library=os.path.basename(
      os.path.normpath(lib)), tasks=len(library_lib.tasks(lib)))


# ----------------------------------------------------------------------------
# The application.


def _error(status: int, message: str) -> JSONResponse:
  return JSONResponse({"error": message}, status_code=status)


def _one_line(exc: RequestValidationError) -> str:
  parts = []
  for e in exc.errors():
    where = ".".join(str(x) for x in e.get("loc", ()) if x not in ("body",))
    parts.append(f"{where or 'request'}: {e.get('msg', 'invalid')}")
  return "; ".join(parts)


def _reaper(queue: jobs.Queue, stop: threading.Event) -> None:
  period = max(0.5, float(queue.settings.stale_s) / 4)
  while not stop.wait(period):
    try:
      jobs.reap(queue)
    except Exception:  # pylint: disable=broad-except
      pass  # The next round tries again (e.g. a busy database).


def create_app(config: ml_collections.ConfigDict, workdir: str, *,
               reaper: bool = True) -> FastAPI:
  """The service's application on config (its `serve` group) and workdir."""
  svc = Service(config, workdir, jobs.open_queue(config, workdir))
  limit = int(config.serve.max_upload_mb) * 2**20

  @contextlib.asynccontextmanager
  async def lifespan(_):
    stop = threading.Event()
    if reaper:
      threading.Thread(target=_reaper, args=(svc.queue, stop),
                       daemon=True).start()
    yield
    stop.set()

  app = FastAPI(title="taskemb_jax task bank", version=taskemb_jax.__version__,
                lifespan=lifespan, description=(
                    "Submit a task (data and/or a description); get the "
                    "library's tasks to fine-tune on first."))
  app.state.service = svc
  app.include_router(router)

  @app.middleware("http")
  async def upload_limit(request: Request, call_next):
    size = request.headers.get("content-length", "")
    if request.method == "POST" and request.url.path == "/api/jobs" and \
        size.isdigit() and int(size) > limit + 2**20:
      return _error(413, f"upload of {int(size) // 2**20} MB: larger than "
                    f"this server's limit of {limit // 2**20} MB "
                    "(config.serve.max_upload_mb)")
    return await call_next(request)

  @app.exception_handler(ApiError)
  async def api_error(_, exc: ApiError):
    return _error(exc.status, exc.message)

  @app.exception_handler(UserError)
  async def user_error(_, exc: UserError):
    status = 409 if isinstance(exc, LibraryError) else 422
    return _error(status, str(exc).splitlines()[0] if str(exc) else
                  type(exc).__name__)

  @app.exception_handler(RequestValidationError)
  async def invalid(_, exc: RequestValidationError):
    return _error(422, _one_line(exc))

  @app.exception_handler(StarletteHTTPException)
  async def http_error(_, exc: StarletteHTTPException):
    return _error(exc.status_code, str(exc.detail))

  index = os.path.join(STATIC, "index.html")
  for path in ("/", "/library", "/jobs/{job_id}"):
    app.add_api_route(path, lambda: FileResponse(index),
                      include_in_schema=False)
  app.mount("/static", StaticFiles(directory=STATIC), name="static")
  return app
