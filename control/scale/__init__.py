"""Training past one process: the executor setting (`--executor local|ray|ray://`), data
preparation into CSR shards by Ray tasks, training from prepared shards, and several models'
pipelines at once (docs/scale.md)."""
