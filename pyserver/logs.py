"""Log set-up for the server: human-readable lines, or one JSON object per line for log
pipelines (`--log-format json`; fields: time, level, logger, pid, message, and the exception)."""

from __future__ import annotations

import logging

TEXT_FORMAT = "%(asctime)s %(levelname)s [pid %(process)d] %(name)s: %(message)s"
LOG_FORMATS = ("text", "json")


def configure(level: str, log_format: str = "text") -> None:
    handler = logging.StreamHandler()
    if log_format == "json":
        # python-json-logger comes with the serve extra: imported when asked for.
        from pythonjsonlogger.json import JsonFormatter  # noqa: PLC0415

        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
                rename_fields={
                    "asctime": "time",
                    "levelname": "level",
                    "name": "logger",
                    "process": "pid",
                },
            )
        )
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
