"""The moto server the AWS tests run against, with DynamoDB requests handled one at a time.

moto's `transact_write_items` is not atomic under concurrent requests: a transaction that
fails (a lost compare-and-set, as the registry's race tests provoke on purpose) restores a
copy of the table taken when it began, erasing what a concurrent transaction committed
meanwhile. Real DynamoDB serialises conflicting transactions; serialising every DynamoDB
request here gives the emulator that guarantee, so the registry's concurrency tests test the
registry and not the emulator's race. (S3 requests are untouched.)

Run as a script: `python tests/moto_serial.py -H 127.0.0.1 -p PORT` (moto_server's options).
"""

from __future__ import annotations

import threading
from typing import Any

from moto.dynamodb.responses import DynamoHandler
from moto.server import main

_LOCK = threading.Lock()
_call_action = DynamoHandler.call_action


def _serialised(self: DynamoHandler, *args: Any, **kwargs: Any) -> Any:
    with _LOCK:
        return _call_action(self, *args, **kwargs)


DynamoHandler.call_action = _serialised  # type: ignore[method-assign]

if __name__ == "__main__":
    main()
