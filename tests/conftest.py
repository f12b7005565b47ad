"""Test collection order: the longest files first.

`make test` runs two pytest-xdist workers that take whole files
(`--dist loadfile`) in collection order; starting with the files that take
longest keeps one worker from finishing a long file alone at the end.
"""

# Files that each take a minute or more on 2 cores, longest first.
LONGEST_FIRST = ("test_multiprocess.py", "test_embeddings.py",
                 "test_service_processes.py", "test_resume.py",
                 "test_pipeline.py", "test_train.py", "test_sweep_workers.py",
                 "test_model.py")


def pytest_collection_modifyitems(items):
  def rank(item):
    name = item.path.name
    return (LONGEST_FIRST.index(name) if name in LONGEST_FIRST
            else len(LONGEST_FIRST))
  items.sort(key=rank)  # Stable: each file keeps its own order.
