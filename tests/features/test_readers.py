"""features.readers: every format, the shared samples, partitions (local and S3), and errors
that name the file, the column and the row."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import shutil
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from control.datagen import generate, write_dataset
from features import FeatureSchema, context
from features.bid import BidRequest
from features.readers import (
    LogReadError,
    Partition,
    downsample_rate,
    list_partitions,
    read_libffm,
    read_logs,
)
from features.samples import AvazuLog, CriteoLog, sample_path

RAW = list(BidRequest.schema_info().raw)


def needs_sample(name: str) -> Path:
    path = sample_path(name)
    if not path.is_file():
        pytest.skip(f"shared sample {path} not present (set BIDSCORE_SAMPLES)")
    return path


@pytest.fixture(scope="module")
def logs() -> pa.Table:
    return generate(300, seed=11, candidates=3)


# --- formats -----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl", ".csv.gz"])
def test_each_format_reads_back_the_generated_rows(tmp_path: Path, logs: pa.Table, suffix: str):
    path = tmp_path / f"logs{suffix}"
    if suffix == ".csv.gz":
        plain = tmp_path / "logs.csv"
        write_dataset(plain, 300, seed=11, candidates=3)
        path.write_bytes(gzip.compress(plain.read_bytes()))
    else:
        write_dataset(path, 300, seed=11, candidates=3)

    table = read_logs(path, required_labels=["click", "conversion"])

    assert table.num_rows == 300
    for name in [*RAW, "click", "conversion", "request_id"]:
        got, want = table[name], logs[name]
        assert got.type == want.type, name
        assert got.to_pylist() == want.to_pylist(), name


def test_declared_types_win_over_what_a_csv_looks_like(tmp_path: Path):
    class Codes(FeatureSchema):
        zip_code: str = context(default="")
        count: int = context(default=0)

    path = tmp_path / "codes.csv"
    path.write_text('zip_code,count,click\n00501,3,1\n02134,,0\n,"",0\n"", 7 ,1\n')

    table = read_logs(path, schema=Codes, required_labels=["click"])

    # Not the integers 501 and 2134; an empty cell is missing, a quoted "" is the empty string.
    assert table["zip_code"].to_pylist() == ["00501", "02134", None, ""]
    assert table["count"].to_pylist() == [3, None, None, 7]  # missing: the default applies
    assert table["click"].type == pa.int64()


def test_absent_optional_columns_arrive_as_nulls_of_their_type(tmp_path: Path, logs: pa.Table):
    path = tmp_path / "few.parquet"
    pq.write_table(logs.select(["ts", "app_id", "click"]), path)

    table = read_logs(path)

    assert table.schema.field("bid_price").type == pa.float64()
    assert table["bid_price"].null_count == 300
    assert table["app_id"].to_pylist() == logs["app_id"].to_pylist()


# --- the shared samples --------------------------------------------------------------------


def test_avazu_sample_reads_with_its_schema():
    table = read_logs(needs_sample("avazu"), schema=AvazuLog, required_labels=["click"])

    assert table.num_rows == 100
    assert table.schema.field("hour").type == pa.int64()
    assert table["hour"][0].as_py() == 14102100
    # Ids beyond int64 stay text: only declared columns are typed.
    assert table["id"][1].as_py() == "10000169349117863715"
    assert set(table["click"].to_pylist()) <= {0, 1}


def test_criteo_sample_gaps_are_missing_values():
    table = read_logs(needs_sample("criteo"), schema=CriteoLog, required_labels=["label"])

    assert table.num_rows == 200
    assert table.schema.field("I1").type == pa.float64()
    assert table["I1"].null_count > 0
    assert table["C22"].null_count > 0
    assert table["I3"][0].as_py() == 260.0


def test_libffm_sample_reads_as_a_dataset():
    dataset = read_libffm(needs_sample("libffm_train"))

    assert dataset.num_rows == 200
    assert dataset.num_fields == 18


def _corrupt_line(src: Path, dst: Path, line: int, edit: str) -> Path:
    """A copy of src with 1-based text line `line` replaced."""
    lines = src.read_text().splitlines(keepends=True)
    lines[line - 1] = edit + "\n"
    dst.write_text("".join(lines))
    return dst


def test_corrupted_avazu_copy_names_the_row_with_too_few_values(tmp_path: Path):
    src = needs_sample("avazu")
    row = src.read_text().splitlines()[37]  # data row 37
    bad = _corrupt_line(src, tmp_path / "avazu.csv", 38, row.rsplit(",", 2)[0])

    with pytest.raises(LogReadError, match=r"avazu\.csv: row 37: 22 values for 24 columns"):
        read_logs(bad, schema=AvazuLog)


def test_corrupted_avazu_copy_names_the_column_and_row_of_a_bad_value(tmp_path: Path):
    src = needs_sample("avazu")
    row = src.read_text().splitlines()[52].split(",")
    row[2] = "14x02100"  # hour
    bad = _corrupt_line(src, tmp_path / "avazu.csv", 53, ",".join(row))

    with pytest.raises(LogReadError, match=r"avazu\.csv: column 'hour', row 52: '14x02100'"):
        read_logs(bad, schema=AvazuLog)


def test_corrupted_criteo_copy_names_the_column_and_row(tmp_path: Path):
    src = needs_sample("criteo")
    row = src.read_text().splitlines()[150].split(",")
    row[5] = "lots"  # I5
    bad = _corrupt_line(src, tmp_path / "criteo.csv", 151, ",".join(row))

    with pytest.raises(
        LogReadError, match=r"criteo\.csv: column 'I5', row 150: 'lots' is not a number"
    ):
        read_logs(bad, schema=CriteoLog, required_labels=["label"])


def test_corrupted_criteo_label_names_the_row(tmp_path: Path):
    src = needs_sample("criteo")
    row = src.read_text().splitlines()[9].split(",")
    row[0] = "2"
    bad = _corrupt_line(src, tmp_path / "criteo.csv", 10, ",".join(row))

    with pytest.raises(LogReadError, match=r"column 'label', row 9: label 2 is not 0 or 1"):
        read_logs(bad, schema=CriteoLog, required_labels=["label"])


def test_corrupted_libffm_copy_names_the_line(tmp_path: Path):
    src = needs_sample("libffm_train")
    bad = _corrupt_line(src, tmp_path / "small_train.txt", 17, "1 3:oops:0.5")

    with pytest.raises(LogReadError, match=r"small_train\.txt:17"):
        read_libffm(bad)


# --- missing columns, wrong types, empty files ----------------------------------------------


def test_missing_required_column_is_named(tmp_path: Path):
    path = tmp_path / "avazu.csv"
    src = needs_sample("avazu").read_text().splitlines()
    header = src[0].split(",")
    keep = [i for i, name in enumerate(header) if name != "hour"]
    path.write_text("\n".join(",".join(line.split(",")[i] for i in keep) for line in src) + "\n")

    with pytest.raises(LogReadError, match=r"avazu\.csv: column 'hour' is missing \(required"):
        read_logs(path, schema=AvazuLog)


def test_missing_requested_label_is_named(tmp_path: Path, logs: pa.Table):
    path = tmp_path / "unlabelled.parquet"
    pq.write_table(logs.drop_columns(["click"]), path)

    read_logs(path)  # fine when no label is asked for
    with pytest.raises(LogReadError, match=r"unlabelled\.parquet: column 'click' is missing"):
        read_logs(path, required_labels=["click"])


def test_null_in_required_label_names_the_row(tmp_path: Path, logs: pa.Table):
    clicks = logs["click"].to_pylist()
    clicks[41] = None
    path = tmp_path / "holes.parquet"
    pq.write_table(
        logs.set_column(logs.schema.get_field_index("click"), "click", pa.array(clicks)), path
    )

    with pytest.raises(LogReadError, match=r"column 'click', row 42: missing value"):
        read_logs(path, required_labels=["click"])


def test_wrong_type_in_parquet_names_the_row(tmp_path: Path, logs: pa.Table):
    ts = [str(v) for v in logs["ts"].to_pylist()]
    ts[206] = "yesterday"
    path = tmp_path / "typed.parquet"
    pq.write_table(logs.set_column(logs.schema.get_field_index("ts"), "ts", pa.array(ts)), path)

    with pytest.raises(
        LogReadError, match=r"typed\.parquet: column 'ts', row 207: 'yesterday' is not an integer"
    ):
        read_logs(path)


def test_float_column_is_not_silently_read_as_text(tmp_path: Path, logs: pa.Table):
    path = tmp_path / "floats.parquet"
    pq.write_table(
        logs.set_column(logs.schema.get_field_index("app_id"), "app_id", pa.array([1.5] * 300)),
        path,
    )

    with pytest.raises(
        LogReadError, match=r"column 'app_id' holds double values, expected a string"
    ):
        read_logs(path)


def test_wrong_json_type_names_the_row(tmp_path: Path):
    path = tmp_path / "logs.jsonl"
    rows = [{"app_id": f"a{i}", "ts": i, "click": 0} for i in range(5)]
    rows[3]["app_id"] = 12345
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))

    with pytest.raises(
        LogReadError, match=r"logs\.jsonl: column 'app_id', row 4: 12345 is not a string"
    ):
        read_logs(path)


def test_broken_json_line_is_named(tmp_path: Path):
    path = tmp_path / "logs.jsonl"
    path.write_text('{"ts": 1, "click": 0}\n{"ts": 2, "click": 0\n')

    with pytest.raises(LogReadError, match=r"logs\.jsonl: row 2: not valid JSON"):
        read_logs(path)


def test_bad_weight_is_named(tmp_path: Path, logs: pa.Table):
    weights = [1.0] * 300
    weights[9] = -2.0
    path = tmp_path / "w.parquet"
    pq.write_table(logs.append_column("weight", pa.array(weights)), path)

    with pytest.raises(LogReadError, match=r"column 'weight', row 10: weight -2.0"):
        read_logs(path)


@pytest.mark.parametrize("name", ["empty.parquet", "empty.csv", "empty.jsonl"])
def test_empty_file_is_an_error(tmp_path: Path, name: str):
    path = tmp_path / name
    path.write_bytes(b"")

    with pytest.raises(LogReadError, match=rf"{name}: file is empty"):
        read_logs(path)


def test_header_only_csv_and_zero_row_parquet_are_errors(tmp_path: Path, logs: pa.Table):
    csv = tmp_path / "header.csv"
    csv.write_text("ts,app_id,click\n")
    parquet = tmp_path / "none.parquet"
    pq.write_table(logs.slice(0, 0), parquet)

    with pytest.raises(LogReadError, match=r"header\.csv: no data rows"):
        read_logs(csv)
    with pytest.raises(LogReadError, match=r"none\.parquet: no data rows"):
        read_logs(parquet)


def test_garbage_parquet_and_unknown_extension_are_errors(tmp_path: Path):
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"PAR1 this is not parquet")
    odd = tmp_path / "logs.xlsx"
    odd.write_bytes(b"x")

    with pytest.raises(LogReadError, match=r"garbage\.parquet: not a readable Parquet file"):
        read_logs(garbage)
    with pytest.raises(LogReadError, match=r"logs\.xlsx: unknown file type"):
        read_logs(odd)
    with pytest.raises(LogReadError, match=r"missing\.csv: no such file"):
        read_logs(tmp_path / "missing.csv")


# --- partitions --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def partitioned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("parts") / "logs"
    write_dataset(root, 200, seed=5, days=4, start="2026-11-01")
    return root


def test_list_partitions_gives_dates_paths_and_footer_row_counts(partitioned: Path):
    parts = list_partitions(partitioned)

    assert [p.date for p in parts] == [dt.date(2026, 11, d) for d in (1, 2, 3, 4)]
    assert all(isinstance(p, Partition) and p.rows == 200 for p in parts)
    assert parts[2].path == str(partitioned / "dt=2026-11-03")


def test_read_logs_selects_partitions_by_inclusive_date_range(partitioned: Path):
    table = read_logs(partitioned, start="2026-11-02", end=dt.date(2026, 11, 3))

    days = pc.unique(pc.divide(table["ts"], 86400)).to_pylist()
    assert table.num_rows == 400
    assert sorted(days) == [
        int(dt.datetime(2026, 11, d, tzinfo=dt.UTC).timestamp()) // 86400 for d in (2, 3)
    ]
    ts = table["ts"].to_numpy()
    assert (ts[1:] >= ts[:-1]).all()  # partitions in date order, rows sorted within a day


def test_one_partition_directory_reads_like_a_file(partitioned: Path):
    part = list_partitions(partitioned)[0]

    assert read_logs(part.path).num_rows == 200


def test_date_range_without_partitions_is_an_error(partitioned: Path):
    with pytest.raises(LogReadError, match=r"no partitions in 2027-01-01"):
        read_logs(partitioned, start="2027-01-01")
    with pytest.raises(LogReadError, match=r"start 2026-11-03 is after end 2026-11-01"):
        read_logs(partitioned, start="2026-11-03", end="2026-11-01")


def test_malformed_partition_name_is_an_error(tmp_path: Path, partitioned: Path):
    root = tmp_path / "logs"
    shutil.copytree(partitioned, root)
    (root / "dt=2026-13-01").mkdir()

    with pytest.raises(LogReadError, match=r"partition 'dt=2026-13-01' is not dt=YYYY-MM-DD"):
        list_partitions(root)


def test_mixed_downsampling_fills_weights_and_drops_the_shared_rate(tmp_path: Path):
    root = tmp_path / "logs"
    write_dataset(root, 300, seed=2, days=2, downsample_negatives=0.25)
    assert downsample_rate(read_logs(root)) == 0.25
    plain = tmp_path / "plain"
    write_dataset(plain, 300, seed=2, days=1, start="2026-11-03")
    shutil.move(plain / "dt=2026-11-03", root / "dt=2026-11-03")

    table = read_logs(root)

    tail = table.slice(table.num_rows - 300)
    assert tail["weight"].to_pylist() == [1.0] * 300
    assert downsample_rate(table) == 1.0  # mixed rates live on in the weights only


def test_several_paths_concatenate_in_order(tmp_path: Path, logs: pa.Table):
    a, b = tmp_path / "a.parquet", tmp_path / "b.csv"
    pq.write_table(logs.slice(0, 100), a)
    write_dataset(b, 50, seed=3)

    table = read_logs([a, b])

    assert table.num_rows == 150
    assert table["request_id"][0].as_py() == logs["request_id"][0].as_py()


# --- S3 -----------------------------------------------------------------------------------


@pytest.mark.aws
@pytest.mark.timeout(120)
def test_s3_partitions_read_like_local_ones(moto_server: str, partitioned: Path):
    s3 = boto3.client("s3", endpoint_url=moto_server)
    s3.create_bucket(Bucket="bidscore-logs-readers")
    for part in sorted(partitioned.glob("dt=*/part-*.parquet")):
        key = f"raw/{part.parent.name}/{part.name}"
        s3.upload_file(str(part), "bidscore-logs-readers", key)
    s3.put_object(Bucket="bidscore-logs-readers", Key="raw/_SUCCESS", Body=b"")
    root = f"s3://bidscore-logs-readers/raw?endpoint_url={moto_server}"

    parts = list_partitions(root)
    local = list_partitions(partitioned)

    assert [(p.date, p.rows) for p in parts] == [(p.date, p.rows) for p in local]
    assert (
        parts[0].path == f"s3://bidscore-logs-readers/raw/dt=2026-11-01?endpoint_url={moto_server}"
    )
    one_day = read_logs(parts[1].path, required_labels=["click"])
    assert one_day.equals(read_logs(local[1].path, required_labels=["click"]))
    ranged = read_logs(root, start="2026-11-03")
    assert ranged.num_rows == 400
    with pytest.raises(LogReadError, match=r"s3://bidscore-logs-readers/nothing"):
        read_logs(f"s3://bidscore-logs-readers/nothing?endpoint_url={moto_server}")
