"""The production registry: one DynamoDB table, keys `pk` (hash) and `sk` (range).

Item layout (all attributes are strings unless noted):

| pk | sk | what |
| --- | --- | --- |
| `MODELS` | `MODEL#<model>` | index of model names (for listing every model) |
| `MODEL#<model>` | `COUNTER` | `next_version` (N): the last version number handed out |
| `MODEL#<model>` | `VERSION#<10-digit number>` | a version: `manifest` (JSON), `artifact_uri` |
| `MODEL#<model>` | `KEY#<idempotency key>` | `version` registered with that key |
| `MODEL#<model>` | `ALIAS#<alias>` | the pointer: `version`, `generation` (N), `updated_*` |
| `MODEL#<model>` | `HISTORY#<alias>#<10-digit generation>` | one alias move |
| `MODEL#<model>` | `RUN#<first seen>#<run id>` | run record, by model (`body` JSON) |
| `RUN#<run id>` | `RUN` | run record, by id |
| `MODEL#<model>` | `PARAMS` | the saved (tuned) hyper-parameter record (`body` JSON) |
| `LOCK#<name>` | `LOCK` | `owner`, `expires_at` (N, unix seconds) |
| `EXPERIMENTS` | `EXPERIMENT#<name>` | `body` (JSON), `model`, `state`, `generation` (N) |
| `EXPERIMENT#<name>` | `HISTORY#<10-digit generation>` | one state move (`body` JSON) |
| `MODEL#<model>` | `RUNNING_EXPERIMENT` | `name` of the model's running experiment, while it runs |

Starting an experiment is one transaction that checks both versions exist, creates the
experiment (if the name is free), claims the model's `RUNNING_EXPERIMENT` item (if no other
experiment holds it) and adds the history row; stopping rewrites it conditioned on its
generation and releases the claim — so of two concurrent starts exactly one wins.

Registering a version is one transaction that advances the counter (conditioned on its old
value), writes the version and claims its idempotency key; moving an alias is one transaction
that checks the version exists, rewrites the pointer conditioned on its generation
(`ConditionExpression`) and adds the history row — so a lost race changes nothing.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from bidscore.errors import ConflictError, NotFoundError, RegistryError
from bidscore.experiments import ARMS, Experiment, ExperimentEvent
from bidscore.manifest import Manifest
from bidscore.registry.base import (
    Alias,
    AliasMove,
    Clock,
    Version,
    check_alias_move,
    check_name,
    check_run,
    event_of,
    running_conflict,
    starting,
    stopping,
    utc_now,
    version_number,
)

# Fail fast when the service is unreachable: a CLI user or a polling server should hear about
# an outage in seconds, not after botocore's default minute of retries.
_CLIENT_CONFIG = Config(
    connect_timeout=2, read_timeout=10, retries={"total_max_attempts": 2, "mode": "standard"}
)
# A register or alias move that loses only to a concurrent transaction is retried this often.
_MAX_ATTEMPTS = 50
# DynamoDB's item limit is 400 KB; keep headroom for the other attributes.
_MAX_MANIFEST_BYTES = 350_000

Item = dict[str, Any]


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: float) -> dict[str, str]:
    return {"N": repr(value) if isinstance(value, float) else str(value)}


def _pad(number: int) -> str:
    return f"{number:010d}"


def parse_url(url: str) -> tuple[str, str | None, str | None, bool]:
    """`dynamodb://TABLE?region=..&endpoint_url=..&create=1` -> (table, region, endpoint,
    create)."""
    parts = urlsplit(url)
    table = parts.netloc or parts.path.lstrip("/")
    if not table:
        raise RegistryError(f"registry URL {url!r} names no table (dynamodb://TABLE?region=..)")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - {"region", "endpoint_url", "create"}
    if unknown:
        raise RegistryError(f"registry URL {url!r}: unknown parameter(s) {sorted(unknown)}")
    create = query.get("create", "0").lower() in {"1", "true", "yes"}
    return table, query.get("region"), query.get("endpoint_url"), create


class DynamoRegistry:
    """A registry in one DynamoDB table."""

    def __init__(self, url: str, *, clock: Clock = time.time) -> None:
        self.url = url
        self._clock = clock  # lock expiry reads it; tests inject a fake
        self.table, region, endpoint_url, create = parse_url(url)
        with self._calls():
            self._client = boto3.client(
                "dynamodb", region_name=region, endpoint_url=endpoint_url, config=_CLIENT_CONFIG
            )
        self._ensure_table(create)

    # --- plumbing ---------------------------------------------------------------------------

    def _calls(self) -> AbstractContextManager[None]:
        return _boto_errors(self.table)

    def _ensure_table(self, create: bool) -> None:
        with self._calls():
            try:
                self._client.describe_table(TableName=self.table)
                return
            except ClientError as exc:
                if _code(exc) != "ResourceNotFoundException" or not create:
                    raise
            try:
                self._client.create_table(
                    TableName=self.table,
                    AttributeDefinitions=[
                        {"AttributeName": "pk", "AttributeType": "S"},
                        {"AttributeName": "sk", "AttributeType": "S"},
                    ],
                    KeySchema=[
                        {"AttributeName": "pk", "KeyType": "HASH"},
                        {"AttributeName": "sk", "KeyType": "RANGE"},
                    ],
                    BillingMode="PAY_PER_REQUEST",
                )
            except ClientError as exc:
                # Another process created it first: fine, wait for it like for our own.
                if _code(exc) != "ResourceInUseException":
                    raise
            self._client.get_waiter("table_exists").wait(
                TableName=self.table, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
            )

    def _get(self, pk: str, sk: str) -> Item | None:
        with self._calls():
            reply = self._client.get_item(
                TableName=self.table, Key={"pk": _s(pk), "sk": _s(sk)}, ConsistentRead=True
            )
        item = reply.get("Item")
        return None if item is None else dict(item)

    def _query(self, pk: str, prefix: str) -> Iterator[Item]:
        with self._calls():
            pages = self._client.get_paginator("query").paginate(
                TableName=self.table,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                ExpressionAttributeValues={":pk": _s(pk), ":prefix": _s(prefix)},
                ConsistentRead=True,
            )
            for page in pages:
                yield from (dict(item) for item in page.get("Items", []))

    def _transact(self, items: list[Any]) -> list[str] | None:
        """Run a transaction; None on success, else the cancellation reason code per item."""
        with self._calls():
            try:
                self._client.transact_write_items(TransactItems=items)
            except ClientError as exc:
                if _code(exc) != "TransactionCanceledException":
                    raise
                reasons = exc.response.get("CancellationReasons", [])
                return [str(r.get("Code", "None")) for r in reasons] or ["Unknown"] * len(items)
        return None

    # --- versions ---------------------------------------------------------------------------

    def register_version(
        self, model: str, manifest: Manifest, artifact_uri: str, *, key: str | None = None
    ) -> Version:
        check_name("model", model)
        pk = f"MODEL#{model}"
        for attempt in range(_MAX_ATTEMPTS):
            if key is not None and (existing := self.find_version(model, key)) is not None:
                return existing
            counter = self._get(pk, "COUNTER")
            last = int(counter["next_version"]["N"]) if counter else 0
            number, created_at = last + 1, utc_now()
            body = manifest.replace(model=model, version=str(number), artifact_uri=artifact_uri)
            text = json.dumps(body.to_json())
            if len(text) > _MAX_MANIFEST_BYTES:
                raise RegistryError(
                    f"manifest of {model} is {len(text)} bytes; DynamoDB allows 400 KB per item"
                )
            counter_put = _put_if_unchanged(
                self.table,
                {"pk": _s(pk), "sk": _s("COUNTER"), "next_version": _n(number)},
                "next_version",
                last,
            )
            version_item = {
                "pk": _s(pk),
                "sk": _s(f"VERSION#{_pad(number)}"),
                "model": _s(model),
                "version": _s(str(number)),
                "manifest": _s(text),
                "artifact_uri": _s(artifact_uri),
                "created_at": _s(created_at),
            }
            items: list[Item] = [
                {"Put": counter_put},
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": version_item,
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {"Put": {"TableName": self.table, "Item": {"pk": _s("MODELS"), "sk": _s(pk)}}},
            ]
            if key is not None:
                version_item["idem_key"] = _s(key)
                items.append(
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": {
                                "pk": _s(pk),
                                "sk": _s(f"KEY#{key}"),
                                "version": _s(str(number)),
                            },
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    }
                )
            if self._transact(items) is None:
                return Version(model, str(number), body, artifact_uri, created_at, key)
            # Someone else registered concurrently (the counter moved, or our key was claimed):
            # the loop re-reads both and either returns the keyed version or tries number + 1.
            _backoff(attempt)
        raise ConflictError(f"could not register a version of {model}: too much contention")

    def get_version(self, model: str, version: str) -> Version:
        number = version_number(model, version)
        item = self._get(f"MODEL#{model}", f"VERSION#{_pad(number)}")
        if item is not None:
            return _version(item)
        if self._get(f"MODEL#{model}", "COUNTER") is None:
            raise NotFoundError(f"unknown model {model!r}: no version registered")
        raise NotFoundError(f"model {model!r} has no version {version!r}")

    def find_version(self, model: str, key: str) -> Version | None:
        item = self._get(f"MODEL#{model}", f"KEY#{key}")
        return None if item is None else self.get_version(model, item["version"]["S"])

    def list_versions(self, model: str | None = None) -> list[Version]:
        if model is None:
            models = sorted(
                item["sk"]["S"].removeprefix("MODEL#") for item in self._query("MODELS", "MODEL#")
            )
        else:
            models = [model]
        return [
            _version(item) for name in models for item in self._query(f"MODEL#{name}", "VERSION#")
        ]

    # --- aliases ----------------------------------------------------------------------------

    def get_alias(self, model: str, alias: str) -> Alias | None:
        item = self._get(f"MODEL#{model}", f"ALIAS#{alias}")
        return None if item is None else _alias(item)

    def list_aliases(self, model: str) -> list[Alias]:
        aliases = [_alias(item) for item in self._query(f"MODEL#{model}", "ALIAS#")]
        return sorted(aliases, key=lambda a: a.alias)

    def set_alias(
        self,
        model: str,
        alias: str,
        version: str,
        *,
        expected_generation: int,
        actor: str,
        reason: str,
        kind: str = "promote",
    ) -> Alias:
        number = check_alias_move(model, alias, version, kind)
        pk = f"MODEL#{model}"
        for attempt in range(_MAX_ATTEMPTS):
            current = self.get_alias(model, alias)
            generation = current.generation if current else 0
            if generation != expected_generation:
                raise _conflict(model, alias, expected_generation, current)
            now, new_generation = utc_now(), generation + 1
            alias_put = _put_if_unchanged(
                self.table,
                {
                    "pk": _s(pk),
                    "sk": _s(f"ALIAS#{alias}"),
                    "model": _s(model),
                    "alias": _s(alias),
                    "version": _s(str(number)),
                    "generation": _n(new_generation),
                    "updated_at": _s(now),
                    "updated_by": _s(actor),
                },
                "generation",
                expected_generation,
            )
            move = {
                "pk": _s(pk),
                "sk": _s(f"HISTORY#{alias}#{_pad(new_generation)}"),
                "model": _s(model),
                "alias": _s(alias),
                "generation": _n(new_generation),
                "to_version": _s(str(number)),
                "actor": _s(actor),
                "reason": _s(reason),
                "kind": _s(kind),
                "at": _s(now),
            }
            if current is not None:
                move["from_version"] = _s(current.version)
            reasons = self._transact(
                [
                    {
                        "ConditionCheck": {
                            "TableName": self.table,
                            "Key": {"pk": _s(pk), "sk": _s(f"VERSION#{_pad(number)}")},
                            "ConditionExpression": "attribute_exists(pk)",
                        }
                    },
                    {"Put": alias_put},
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": move,
                            # One history row per generation: a move is never recorded twice.
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ]
            )
            if reasons is None:
                return Alias(model, alias, str(number), new_generation, now, actor)
            if reasons[0] == "ConditionalCheckFailed":
                raise NotFoundError(f"model {model!r} has no version {version!r}")
            if "ConditionalCheckFailed" in reasons[1:]:
                raise _conflict(model, alias, expected_generation, self.get_alias(model, alias))
            # TransactionConflict: another transaction was touching these items; whether it won
            # is decided by re-reading the generation at the top of the loop.
            _backoff(attempt)
        raise ConflictError(f"{model}/{alias}: too much contention, try again")

    def alias_history(self, model: str, alias: str) -> list[AliasMove]:
        return [_move(item) for item in self._query(f"MODEL#{model}", f"HISTORY#{alias}#")]

    # --- locks ------------------------------------------------------------------------------

    def acquire_lock(self, name: str, owner: str, ttl_seconds: float) -> bool:
        check_name("lock", name)
        now = self._clock()
        with self._calls():
            try:
                self._client.put_item(
                    TableName=self.table,
                    Item={
                        "pk": _s(f"LOCK#{name}"),
                        "sk": _s("LOCK"),
                        "owner": _s(owner),
                        "expires_at": _n(now + ttl_seconds),
                    },
                    ConditionExpression=(
                        "attribute_not_exists(pk) OR expires_at < :now OR #owner = :owner"
                    ),
                    ExpressionAttributeNames={"#owner": "owner"},
                    ExpressionAttributeValues={":now": _n(now), ":owner": _s(owner)},
                )
            except ClientError as exc:
                if _code(exc) == "ConditionalCheckFailedException":
                    return False
                raise
        return True

    def release_lock(self, name: str, owner: str) -> None:
        with self._calls():
            try:
                self._client.delete_item(
                    TableName=self.table,
                    Key={"pk": _s(f"LOCK#{name}"), "sk": _s("LOCK")},
                    ConditionExpression="#owner = :owner",
                    ExpressionAttributeNames={"#owner": "owner"},
                    ExpressionAttributeValues={":owner": _s(owner)},
                )
            except ClientError as exc:
                # Not ours (expired and taken over, or never held): nothing to release.
                if _code(exc) != "ConditionalCheckFailedException":
                    raise

    # --- runs -------------------------------------------------------------------------------

    def put_run(self, run: dict[str, Any]) -> None:
        run_id, model = check_run(run)
        check_name("model", model)
        existing = self._get(f"RUN#{run_id}", "RUN")
        first_seen = existing["first_seen"]["S"] if existing else utc_now()
        body = _s(json.dumps(run))
        reasons = self._transact(
            [
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": {
                            "pk": _s(f"RUN#{run_id}"),
                            "sk": _s("RUN"),
                            "model": _s(model),
                            "first_seen": _s(first_seen),
                            "body": body,
                        },
                    }
                },
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": {
                            "pk": _s(f"MODEL#{model}"),
                            "sk": _s(f"RUN#{first_seen}#{run_id}"),
                            "body": body,
                        },
                    }
                },
            ]
        )
        if reasons is not None:
            raise RegistryError(f"could not record run {run_id}: {', '.join(reasons)}")

    def get_run(self, run_id: str) -> dict[str, Any]:
        item = self._get(f"RUN#{run_id}", "RUN")
        if item is None:
            raise NotFoundError(f"unknown run {run_id!r}")
        return dict(json.loads(item["body"]["S"]))

    def list_runs(self, model: str) -> list[dict[str, Any]]:
        return [
            dict(json.loads(item["body"]["S"])) for item in self._query(f"MODEL#{model}", "RUN#")
        ]

    # --- saved hyper-parameters -------------------------------------------------------------

    def put_params(self, model: str, record: dict[str, Any]) -> None:
        check_name("model", model)
        body = json.dumps(record)
        if len(body.encode()) > _MAX_MANIFEST_BYTES:
            raise RegistryError(f"saved parameters of {model} are too large ({len(body)} bytes)")
        with self._calls():
            self._client.put_item(
                TableName=self.table,
                Item={
                    "pk": _s(f"MODEL#{model}"),
                    "sk": _s("PARAMS"),
                    "saved_at": _s(utc_now()),
                    "body": _s(body),
                },
            )

    def get_params(self, model: str) -> dict[str, Any] | None:
        item = self._get(f"MODEL#{model}", "PARAMS")
        return None if item is None else dict(json.loads(item["body"]["S"]))

    # --- experiments ------------------------------------------------------------------------

    def start_experiment(self, experiment: Experiment, *, actor: str, reason: str) -> Experiment:
        record = starting(experiment, actor, reason)
        pk = f"MODEL#{record.model}"
        checks = [
            {
                "ConditionCheck": {
                    "TableName": self.table,
                    "Key": {"pk": _s(pk), "sk": _s(f"VERSION#{_pad(int(record.version_of(arm)))}")},
                    "ConditionExpression": "attribute_exists(pk)",
                }
            }
            for arm in ARMS
        ]
        reasons = self._transact(
            [
                *checks,
                {"Put": _new(self.table, _experiment_item(record))},
                {
                    "Put": _new(
                        self.table,
                        {"pk": _s(pk), "sk": _s("RUNNING_EXPERIMENT"), "name": _s(record.name)},
                    )
                },
                {"Put": _new(self.table, _event_item(event_of(record, "start")))},
            ]
        )
        if reasons is None:
            return record
        for arm, code in zip(ARMS, reasons[:2], strict=True):
            if code == "ConditionalCheckFailed":
                version = record.version_of(arm)
                raise NotFoundError(f"model {record.model!r} has no version {version!r} ({arm})")
        if reasons[2] == "ConditionalCheckFailed":
            raise ConflictError(f"experiment {record.name!r} exists: choose another name")
        if reasons[3] == "ConditionalCheckFailed":
            holder = self._get(pk, "RUNNING_EXPERIMENT")
            raise running_conflict(record.model, _str(holder or {}, "name") or "?")
        # TransactionConflict: a concurrent start touched the same items and won.
        raise ConflictError(
            f"another experiment on model {record.model!r} was started at the same moment;"
            " see `control experiment list`"
        )

    def get_experiment(self, name: str) -> Experiment:
        item = self._get("EXPERIMENTS", f"EXPERIMENT#{name}")
        if item is None:
            raise NotFoundError(f"unknown experiment {name!r}")
        return _experiment(item)

    def list_experiments(self, model: str | None = None) -> list[Experiment]:
        every = [_experiment(item) for item in self._query("EXPERIMENTS", "EXPERIMENT#")]
        return [e for e in every if model is None or e.model == model]

    def running_experiments(self) -> list[Experiment]:
        running = [e for e in self.list_experiments() if e.running]
        return sorted(running, key=lambda e: e.model)

    def stop_experiment(
        self,
        name: str,
        *,
        expected_generation: int,
        actor: str,
        reason: str,
        promoted: str | None = None,
    ) -> Experiment:
        current = self.get_experiment(name)
        record = stopping(current, expected_generation, actor, reason, promoted)
        put = _put_if_unchanged(
            self.table, _experiment_item(record), "generation", expected_generation
        )
        reasons = self._transact(
            [
                {"Put": put},
                {
                    "Delete": {
                        "TableName": self.table,
                        "Key": {"pk": _s(f"MODEL#{record.model}"), "sk": _s("RUNNING_EXPERIMENT")},
                        "ConditionExpression": "#name = :name",
                        "ExpressionAttributeNames": {"#name": "name"},
                        "ExpressionAttributeValues": {":name": _s(name)},
                    }
                },
                {"Put": _new(self.table, _event_item(event_of(record, "stop")))},
            ]
        )
        if reasons is not None:
            latest = self.get_experiment(name)
            raise ConflictError(
                f"experiment {name!r} moved: expected generation {expected_generation},"
                f" it is now {latest.generation} ({latest.state}); read it again and retry"
            )
        return record

    def experiment_history(self, name: str) -> list[ExperimentEvent]:
        return [
            ExperimentEvent(**json.loads(item["body"]["S"]))
            for item in self._query(f"EXPERIMENT#{name}", "HISTORY#")
        ]


def _new(table: str, item: Item) -> Item:
    """A Put that only creates: it fails if the item exists."""
    return {"TableName": table, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}


def _experiment_item(experiment: Experiment) -> Item:
    return {
        "pk": _s("EXPERIMENTS"),
        "sk": _s(f"EXPERIMENT#{experiment.name}"),
        "model": _s(experiment.model),
        "state": _s(experiment.state),
        "generation": _n(experiment.generation),
        "body": _s(json.dumps(experiment.to_json())),
    }


def _event_item(event: ExperimentEvent) -> Item:
    return {
        "pk": _s(f"EXPERIMENT#{event.name}"),
        "sk": _s(f"HISTORY#{_pad(event.generation)}"),
        "body": _s(json.dumps(event.to_dict())),
    }


def _experiment(item: Item) -> Experiment:
    return Experiment.from_json(json.loads(item["body"]["S"]))


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextmanager
def _boto_errors(table: str) -> Iterator[None]:
    """Turn botocore failures into one-line RegistryErrors."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "Error"), error.get("Message", str(exc))
        if code == "ResourceNotFoundException":
            raise RegistryError(
                f"DynamoDB table {table!r} does not exist"
                " (add create=1 to the registry URL to create it)"
            ) from exc
        raise RegistryError(f"DynamoDB registry {table!r}: {code}: {message}") from exc
    except BotoCoreError as exc:
        raise RegistryError(f"DynamoDB registry {table!r} unreachable: {exc}") from exc


def _put_if_unchanged(table: str, item: Item, counter: str, expected: int) -> Item:
    """A Put of `item` that succeeds only if the stored item's numeric `counter` attribute
    is still `expected`, 0 meaning the item does not exist yet.

    The version counter and the alias generation are both advanced this way: the condition
    is what makes a concurrent writer's transaction lose instead of overwrite.
    """
    put: Item = {"TableName": table, "Item": item}
    if expected == 0:
        put["ConditionExpression"] = "attribute_not_exists(pk)"
    else:
        put["ConditionExpression"] = f"{counter} = :expected"
        put["ExpressionAttributeValues"] = {":expected": _n(expected)}
    return put


def _backoff(attempt: int) -> None:
    time.sleep(random.uniform(0, min(0.5, 0.01 * 2**attempt)))


def _conflict(model: str, alias: str, expected: int, current: Alias | None) -> ConflictError:
    generation = current.generation if current else 0
    now_at = f"version {current.version}" if current else "unset"
    return ConflictError(
        f"{model}/{alias} moved: expected generation {expected}, it is now {generation}"
        f" ({now_at}); read it again and retry"
    )


def _str(item: Mapping[str, Any], name: str) -> str | None:
    value = item.get(name)
    return None if value is None else str(value["S"])


def _version(item: Item) -> Version:
    return Version(
        model=item["model"]["S"],
        version=item["version"]["S"],
        manifest=Manifest.from_json(json.loads(item["manifest"]["S"])),
        artifact_uri=item["artifact_uri"]["S"],
        created_at=item["created_at"]["S"],
        key=_str(item, "idem_key"),
    )


def _alias(item: Item) -> Alias:
    return Alias(
        model=item["model"]["S"],
        alias=item["alias"]["S"],
        version=item["version"]["S"],
        generation=int(item["generation"]["N"]),
        updated_at=item["updated_at"]["S"],
        updated_by=item["updated_by"]["S"],
    )


def _move(item: Item) -> AliasMove:
    return AliasMove(
        model=item["model"]["S"],
        alias=item["alias"]["S"],
        generation=int(item["generation"]["N"]),
        from_version=_str(item, "from_version"),
        to_version=item["to_version"]["S"],
        actor=item["actor"]["S"],
        reason=item["reason"]["S"],
        at=item["at"]["S"],
        kind=item["kind"]["S"],
    )
