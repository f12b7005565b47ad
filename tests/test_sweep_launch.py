"""launch/sweep_workers.sh: each worker's shard and, with CPUS_PER_WORKER,
the CPUs it is pinned to (a stand-in Python reports what it was given)."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "launch", "sweep_workers.sh")


def _launch(tmp_path, n, **env):
  """{shard: CPUs} of the workers that the script starts (each stand-in
  writes its own file: the workers run at the same time)."""
  fake, out = tmp_path / "python", tmp_path / "started"
  out.mkdir(exist_ok=True)
  for f in out.iterdir():
    f.unlink()
  report = tmp_path / "report.py"
  report.write_text(
      "import json, os, sys\n"
      f"with open(os.path.join({str(out)!r}, str(os.getpid())), 'w') as f:\n"
      "  json.dump([sorted(os.sched_getaffinity(0)), sys.argv[1:]], f)\n")
  fake.write_text(
      "#!/bin/bash\n"
      f'if [[ "$1" == "-c" ]]; then exec {sys.executable} "$@"; fi\n'
      f'exec {sys.executable} {report} "$@"\n')
  fake.chmod(0o755)
  subprocess.run(
      ["bash", SCRIPT, str(n), str(tmp_path / "work"), "--config=x.py"],
      env=dict(os.environ, PYTHON=str(fake), **env), check=True, timeout=60)
  workers = {}
  for f in out.iterdir():
    cpus, argv = json.loads(f.read_text())
    shard = [a for a in argv if a.startswith("--config.transfer.shard=")]
    workers[shard[0].split("=")[1]] = cpus
    assert argv[:3] == ["-m", "taskemb_jax.main", "--config=x.py"]
    assert "--config.stage=transfer" in argv
  return workers


def test_every_worker_gets_its_shard_and_all_cpus(tmp_path):
  cpus = sorted(os.sched_getaffinity(0))
  assert _launch(tmp_path, 2) == {"0/2": cpus, "1/2": cpus}


def test_cpus_per_worker_pins_worker_i_to_its_cpus_round_robin(tmp_path):
  cpus = sorted(os.sched_getaffinity(0))
  n = len(cpus) + 1  # One more worker than CPUs: the last wraps around.
  workers = _launch(tmp_path, n, CPUS_PER_WORKER="1")
  assert workers == {f"{i}/{n}": [cpus[i % len(cpus)]] for i in range(n)}
  if len(cpus) >= 2:
    workers = _launch(tmp_path, 1, CPUS_PER_WORKER="2")
    assert workers == {"0/1": cpus[:2]}
