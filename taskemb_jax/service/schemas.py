"""Request and response bodies of the HTTP API (they make its OpenAPI schema).

Fields named ``class`` (a Python keyword) are ``class_`` here, ``class`` on
the wire.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

State = Literal["queued", "running", "done", "failed", "cancelled"]


class _Model(BaseModel):
  model_config = ConfigDict(populate_by_name=True)


class ErrorBody(_Model):
  """Every error: one line, the same the command line prints."""
  error: str


class WorkerInfo(_Model):
  id: str
  host: str
  pid: int
  job: str | None = None
  jobs_done: int = 0
  seen_s_ago: float


class Health(_Model):
  status: Literal["ok"] = "ok"
  broker: Literal["sqlite", "redis"]
  queue: str
  library: str
  tasks: int
  queued: int
  running: int
  workers: list[WorkerInfo]


class LibraryTask(_Model):
  name: str
  class_: str = Field(alias="class")
  kind: str | None = None
  examples: int | None = None
  description: str = ""


class Library(_Model):
  name: str
  tasks: list[LibraryTask]


class MapPoint(_Model):
  """A task on the 2-D PCA map of TaskEmb."""
  name: str
  class_: str = Field(alias="class")
  x: float
  y: float
  target: bool = False


class TaskMap(_Model):
  points: list[MapPoint]


class Detected(_Model):
  """What the uploaded file holds (read before the job was queued)."""
  examples: int
  kind: str
  class_: str = Field(alias="class")
  splits: dict[str, int]
  labels: dict[str, int] | None = None  # The 20 most frequent, with counts.
  num_labels: int | None = None
  range: list[float] | None = None  # Regression: smallest, largest label.
  mean: float | None = None
  tokens: int | None = None  # Tagging.
  questions: int | None = None  # QA.
  answered: int | None = None


class Submitted(_Model):
  id: str
  state: State
  new: bool  # False: an earlier job of the same content and options.
  url: str  # The job's page (permalink).
  detected: Detected | None = None


class JobStatus(_Model):
  id: str
  state: State
  stage: str
  progress: float  # 0-1.
  eta_s: float | None = None
  position: int | None = None  # Place in the queue (1 = next), if queued.
  error: str | None = None
  kind: str | None = None
  filename: str | None = None
  description: str = ""
  detected: Detected | None = None
  created: float
  started: float | None = None
  finished: float | None = None
  attempt: int
  max_attempts: int
  timings: dict[str, float] | None = None
  published: str | None = None


class RankedSource(_Model):
  rank: int
  source: str
  class_: str = Field(alias="class")
  score: float  # Of the job's method (first of `views`).
  examples: int | None = None
  description: str = ""
  scores: dict[str, float]  # Per view (method, textemb, description).
  ranks: dict[str, int]
  top_in: list[str]  # Views that have this source in their top k.


class Skipped(_Model):
  name: str
  reason: str


class JobResult(_Model):
  id: str
  target: str
  kind: str | None = None
  class_: str | None = Field(default=None, alias="class")
  method: str  # The ranking's method: taskemb (data) or description.
  views: list[str]
  top_k: int
  agreement: dict[str, int]  # "a/b": sources both views have in the top k.
  ranking: list[RankedSource]
  warnings: list[str]
  map: list[MapPoint]
  library: str
  description: str = ""
  detected: Detected | None = None
  scope: str | None = None
  skipped: list[Skipped] = []


class PublishRequest(_Model):
  name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
  description: str = Field(default="", max_length=4000)


class Published(_Model):
  name: str
  library: str
  tasks: int


class Cancelled(_Model):
  id: str
  state: State
  stage: str
