"""taskemb_jax: task embeddings and intermediate-task transfer in JAX/Flax."""

import setuptools

setuptools.setup(
    name="taskemb_jax",
    version="0.1.0",
    description=("Which NLP task should you fine-tune on first? TextEmb and "
                 "TaskEmb task embeddings in JAX/Flax (Vu et al., 2020)."),
    packages=setuptools.find_packages(include=["taskemb_jax", "taskemb_jax.*"]),
    python_requires=">=3.10",
    install_requires=[
        "jax>=0.6",
        "flax>=0.11",
        "optax>=0.2.4",
        "orbax-checkpoint>=0.11",
        "transformers>=4.40",  # Tokenizers and configs only.
        "tokenizers>=0.19",
        "datasets>=2.19",
        "safetensors>=0.4",
        "ml-collections>=0.1.1",
        "absl-py>=1.4",
        "numpy>=1.26",
        "matplotlib>=3.8",  # Report figures.
        # The service (taskemb_jax.service): API, server, job queue.
        "fastapi>=0.110",
        "uvicorn>=0.29",
        "python-multipart>=0.0.9",
        "huey>=2.5",
        "redis>=5",  # Client of the multi-host queue (server: redis-server).
    ],
    extras_require={
        # playwright drives Debian's chromium (.ci/run installs it), not a
        # browser of its own; httpx is FastAPI's TestClient's transport.
        "test": ["pytest>=8", "pytest-xdist>=3.5", "scikit-learn>=1.4",
                 "scipy>=1.11",
                 "httpx>=0.27", "playwright>=1.44"],
    },
    package_data={"taskemb_jax.service": ["static/*.html", "static/*.js",
                                          "static/*.css", "static/samples/*"]},
)
