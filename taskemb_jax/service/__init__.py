"""The task-bank service: submit a task, get the library's tasks to fine-tune
on first. A thin shell over the stage functions the CLI runs.

  serve.py     the `serve` stage: API server + worker processes, one command
  app.py       HTTP routes (FastAPI); the page in static/ reads only them
  schemas.py   request and response bodies (the OpenAPI schema)
  jobs.py      the Huey queue (SQLite embedded, or Redis for many hosts) and
               a job's states, retries and reaper
  store.py     job records, uploads and results in the queue's backend
  worker.py    a long-lived consumer: heartbeats, progress, one job at a time
  pipeline.py  validation of an upload; a job's ranking and its views
"""
