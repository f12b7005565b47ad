"""Defaults shared by every stage; other configs import and override these.

  python -m taskemb_jax.main --config=configs/common.py --config.task=mr-polarity \
      --workdir=/tmp/mr

Per-class defaults of Vu et al. (2020) live in
`taskemb_jax.recipe.FAMILY_DEFAULTS` and are applied by `configs/task.py`
(``--config=configs/task.py:<task name>``).
"""

import ml_collections

from taskemb_jax import recipe


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  # What to run (taskemb_jax.main.STAGES): train | predict | export |
  # textemb | taskemb | build_library | rank | transfer | evaluate | report |
  # demo | list | serve.
  c.stage = "train"
  # Task registry name, or <kind>:<path> for your own files.
  c.task = "mr-polarity"
  # Folder with local task files (tasks without a public hub copy).
  c.data_dir = ""

  # --- Model ---------------------------------------------------------------
  # 'minilm-l6' (packaged pretrained), a random preset ('tiny', 'base',
  # 'large'), a Hugging Face folder or hub name ('bert-base-uncased').
  c.model = "minilm-l6"
  # Tokenizer folder or name; '' = the model's own.
  c.tokenizer = ""
  # Workdir of an earlier run whose fine-tuned encoder initialises this one.
  c.init_from = ""
  # Dropout of hidden states and attention (-1 = the checkpoint's value).
  c.dropout = -1.0
  # Compute dtype of the matmuls: float32 (the default; within 1e-4 of
  # PyTorch) | bfloat16 (opt-in and approximate: bfloat16 matmul inputs with
  # float32 accumulation; parameters, LayerNorm, softmax and the optimizer
  # stay float32; hidden states within 0.05 of float32's, gradients within
  # 5%, tests/test_model.py; faster only on CPUs with AVX-512 BF16 or AMX).
  c.dtype = "float32"

  # --- Data ----------------------------------------------------------------
  # Maximum tokens per input (QA: per window).
  c.max_length = 128
  # QA: tokens of overlap between windows of a long context
  # (-1 = min(128, max_length // 3): 128 at the paper's 384).
  c.doc_stride = -1
  # QA: the question is cut to this many tokens
  # (-1 = min(64, 3 * max_length // 8): 64 at 384).
  c.max_query_length = -1
  # Train on this many examples drawn with data_seed (0 = all;
  # the paper's LIMITED regime is 1000).
  c.train_examples = 0
  # Seed of the train-subset draw (kept fixed across restarts).
  c.data_seed = 0
  # Split to evaluate on after every epoch.
  c.eval_split = "validation"
  # Evaluate on at most this many examples (0 = all).
  c.max_eval_examples = 0

  # --- Optimisation --------------------------------------------------------
  # Peak learning rate of AdamW.
  c.learning_rate = 2e-5
  # Fraction of the steps with linear warm-up; then linear decay to 0.
  c.warmup_proportion = 0.1
  # Decoupled weight decay (not on biases and LayerNorm).
  c.weight_decay = 0.01
  # Clip gradients to this global norm.
  c.max_grad_norm = 1.0
  # Adam epsilon.
  c.adam_epsilon = 1e-8
  # Global batch size (a multiple of the number of devices).
  c.batch_size = 32
  # Batch size for evaluation and embedding passes.
  c.eval_batch_size = 64
  # Epochs of fine-tuning.
  c.num_epochs = 3
  # Model init, dropout and data order; vary it for random restarts.
  c.seed = 0
  # Save the full training state (model + optimizer) at every epoch end, to
  # resume a killed run; off = only the best model is kept (a killed run
  # starts over).
  c.save_latest = True
  # Also save the latest state every this many steps (0 = each epoch only;
  # only with save_latest).
  c.checkpoint_every_steps = 0
  # Train only the task head, keeping the encoder fixed.
  c.freeze_encoder = False
  # Persistent XLA compilation cache ('' = off); repeated runs skip compiles.
  c.compilation_cache = "~/.cache/taskemb_jax/xla"
  # Devices of the mesh (-1 = all).
  c.num_devices = -1

  # --- Task embeddings (textemb / taskemb stages) ---------------------------
  # The task library the embeddings are written to (and ranked from).
  c.library = "library"
  # Replace embeddings that the library already holds for the task; start
  # over a training, source or sweep run whose recorded identity differs.
  c.overwrite = False
  c.embed = ml_collections.ConfigDict()
  # Embed this many training examples drawn with embed.seed (0 = all).
  c.embed.num_examples = 0
  # Seed of that draw and of the sampled estimator.
  c.embed.seed = 0
  # TaskEmb's model: 'full' (fine-tuned), 'head' (only the head trained),
  # 'none' (pretrained encoder, random head).
  c.embed.finetune = "full"
  # Workdir of the fine-tuning run to use; fine-tuned there first (with this
  # config's training fields) unless finished ('' = <workdir>/finetune).
  c.embed.finetuned = ""
  # Compute dtype of that fine-tuning run ('' = dtype); the Fisher itself is
  # computed in dtype (e.g. a target fine-tuned in bfloat16 for speed and
  # embedded in float32 like the library's tasks).
  c.embed.finetune_dtype = ""
  # Fisher estimator: empirical (gold labels) | sampled (model's predictive
  # distribution) | original (the published code's batch-level estimator).
  c.embed.estimator = "empirical"
  # Label draws per example for the sampled estimator.
  c.embed.num_samples = 4
  # Standard deviation of the regression predictive distribution (sampled).
  c.embed.sigma = 0.25
  # Comma-separated components, or 'all' (see taskemb_jax.model).
  c.embed.components = "all"
  # Also the Fisher of every encoder parameter (per-example gradients; large).
  c.embed.param_fisher = False
  # Examples per vmap chunk of the parameter Fisher (bounds memory).
  c.embed.param_chunk = 8

  # --- Ranking (rank stage) -------------------------------------------------
  c.rank = ml_collections.ConfigDict()
  # textemb | taskemb | textemb+taskemb | taskemb:<component> | datasize |
  # random | description (of the tasks' descriptions). Default from the
  # offline mini-study (README): TaskEmb fused over
  # all components ranked best (all-class rho 1.75 vs 2.38 with TextEmb fused
  # in, 2.75 for TextEmb alone; no single component or layer subset did
  # better beyond the spread over restarts).
  c.rank.method = "taskemb"
  # Comma-separated TaskEmb components to fuse ('' = all shared ones: the
  # study's choice, see above).
  c.rank.components = ""
  # Sources of any class ('all') or of the target's class only ('in-class').
  c.rank.scope = "all"
  # The k of reciprocal rank fusion, sum of 1 / (k + rank).
  c.rank.rrf_k = 60.0
  # Seed of the random baseline.
  c.rank.seed = 0
  # Embed the target anew (fine-tune, TextEmb, TaskEmb with the library's
  # recipe) even if the library holds it; it is never its own source.
  c.rank.reembed = False
  # The target's description for method 'description' ('' = its own: the
  # bank's tasks carry one).
  c.rank.description = ""
  # How a target outside the library is fine-tuned: the library's recipe
  # for its class, then these typed fields (None = not set; the fields of
  # transfer.all below), then those of rank.finetune.<its class>, e.g.
  # --config.rank.finetune.train_examples=500 for a faster, rougher target,
  # --config.rank.finetune.classification.num_epochs=1 for classification
  # targets only.
  c.rank.finetune = recipe.override_group(per_class=True)
  # TextEmb and TaskEmb of such a target on this many training examples
  # (0 = embed.num_examples, the library's).
  c.rank.embed_examples = 0
  # Compute the target's TextEmb when the method does not need it (the
  # report and the service show the TextEmb view beside the ranking).
  c.rank.textemb = True

  # --- Transfer sweep (transfer stage) -------------------------------------
  c.transfer = ml_collections.ConfigDict()
  # Name of the data regime, recorded in the matrix (e.g. LIMITED->LIMITED).
  c.transfer.regime = "LIMITED->LIMITED"
  # Comma-separated source tasks.
  c.transfer.sources = ""
  # Comma-separated target tasks ('' = the sources).
  c.transfer.targets = ""
  # Training examples of a source / a target run (0 = FULL; LIMITED = 1000).
  c.transfer.source_examples = 1000
  c.transfer.target_examples = 1000
  # Random restarts of every target run (seeds 0..R-1).
  c.transfer.restarts = 3
  # Seed of the (single) fine-tuning run of each source.
  c.transfer.source_seed = 0
  # Split the target metric is reported on (best validation epoch's model).
  c.transfer.eval_split = "test"
  # Score on at most this many examples of that split (0 = all).
  c.transfer.max_eval_examples = 0
  # Keep the checkpoints of target runs (off: only result.json stays).
  c.transfer.keep_checkpoints = False
  # This worker's share of the runs, 'i/n' (run n workers for i = 0..n-1).
  c.transfer.shard = "0/1"
  # Training fields of the runs of stages that fine-tune many tasks alike
  # (transfer, build_library, rank's new target, LogME), each a typed
  # placeholder (None = not set). A run's value: the top-level field, then
  # the paper's default for the task's class (recipe.FAMILY_DEFAULTS), then
  # transfer.all, then transfer.<class>, then (target runs) transfer.target;
  # e.g. --config.transfer.all.num_epochs=2
  # --config.transfer.tagging.learning_rate=3e-4.
  # Every run.
  c.transfer.all = recipe.override_group()
  # Runs of classification (and regression) tasks.
  c.transfer.classification = recipe.override_group()
  # Runs of QA tasks.
  c.transfer.qa = recipe.override_group()
  # Runs of tagging tasks.
  c.transfer.tagging = recipe.override_group()
  # Target runs of the sweep only (sources keep the above), and per class
  # (transfer.target.qa.<field> ...).
  c.transfer.target = recipe.override_group(per_class=True)
  # Fields of each group: learning_rate, batch_size, num_epochs, max_length,
  # warmup_proportion, weight_decay, max_grad_norm, adam_epsilon,
  # eval_batch_size, max_eval_examples, save_latest, checkpoint_every_steps,
  # dropout, doc_stride, max_query_length, freeze_encoder, dtype,
  # train_examples (meanings and types as the top-level fields above).

  # --- Evaluation of rankings (evaluate stage) -----------------------------
  c.evaluate = ml_collections.ConfigDict()
  # Comma-separated transfer matrices (files or transfer workdirs; '' = the
  # workdir).
  c.evaluate.matrices = ""
  # Methods to evaluate; 'taskemb:*' = every TaskEmb component alone.
  c.evaluate.methods = ("textemb,taskemb,textemb+taskemb,taskemb:*,datasize,"
                        "random,logme,description")
  # NDCG relevance: 'metric' (target metric after transfer) or 'gain'
  # (relative gain over no intermediate task, clipped at 0).
  c.evaluate.relevance = "metric"
  # Random orders averaged for the random baseline.
  c.evaluate.random_draws = 1000
  # LogME: at most this many examples of the target runs' training data
  # (transfer.target_examples and the transfer.target groups) per source.
  c.evaluate.logme_examples = 1000
  # Embed every target of the matrix anew, as the rank stage embeds a new
  # task (rank.finetune, rank.embed_examples), into
  # <workdir>/targets/<target>/, and rank with those embeddings instead of
  # the library's: measures a target recipe against the library's.
  c.evaluate.reembed_targets = False

  # --- Report (report stage) ----------------------------------------------
  c.report = ml_collections.ConfigDict()
  # Transfer matrix (file or sweep workdir) for the gain heatmap ('' = none).
  c.report.matrix = ""
  # evaluation.md to include ('' = none).
  c.report.evaluation_md = ""
  # A second library to draw in the task map (e.g. an embedded target).
  c.report.target_library = ""
  # Mark config.task in the task map.
  c.report.highlight_target = False

  # --- Prediction / export -------------------------------------------------
  # Input file for the predict stage ('' = eval_split of the task).
  c.predict_file = ""
  # Output JSON Lines ('' = <workdir>/predictions.jsonl).
  c.predict_output = ""
  # Output folder of the export stage ('' = <workdir>/hf_export).
  c.export_dir = ""
  return c
