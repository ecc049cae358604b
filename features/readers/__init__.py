"""Readers of labelled bid logs (Parquet, CSV, JSONL, daily Hive partitions, local or S3) and
of libffm text. `logs` is the entry point; `cast` conforms columns to the schema, `formats`
reads one file, `s3` lists and opens objects."""

from features.readers.cast import WEIGHT_COLUMN, LogReadError
from features.readers.logs import (
    DOWNSAMPLE_RATE_KEY,
    LABEL_COLUMNS,
    Partition,
    combine_tables,
    downsample_rate,
    list_files,
    list_partitions,
    read_libffm,
    read_logs,
)

__all__ = [
    "DOWNSAMPLE_RATE_KEY",
    "LABEL_COLUMNS",
    "WEIGHT_COLUMN",
    "LogReadError",
    "Partition",
    "combine_tables",
    "downsample_rate",
    "list_files",
    "list_partitions",
    "read_libffm",
    "read_logs",
]
