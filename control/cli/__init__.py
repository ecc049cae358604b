"""The `control` command: one module per command group, joined in `control.cli.app`."""
