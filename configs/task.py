"""Fine-tune on any registered task with the paper's defaults for its class.

  python -m taskemb_jax.main --config=configs/task.py:cola --workdir=/tmp/cola
  python -m taskemb_jax.main --config=configs/task.py:squad-1.1 --workdir=/tmp/sq

The argument after ':' is a task name (`python -m taskemb_jax.main
--config=configs/common.py --config.stage=list` lists them) or
<kind>:<path> for your own data.
"""

from configs import common
from taskemb_jax import recipe
from taskemb_jax import tasks


def get_config(task: str = "mr-polarity"):
  c = common.get_config()
  c.task = task
  family = tasks.get_task(task).family
  c.update(recipe.FAMILY_DEFAULTS[family])
  return c
