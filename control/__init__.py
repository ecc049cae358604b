"""The control plane: train, evaluate, register, promote and roll back models.

`bidscore.registry` and `bidscore.store` hold the backends chosen by URL; `control.cli` is the
`control` command built on them.
"""
