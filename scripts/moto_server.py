"""moto's server (the DynamoDB-compatible engine of the tests and local runs), with one fix.

moto 5.2 backs up a table before a transaction by deep-copying it once *per item* of the
transaction (moto/dynamodb/models/__init__.py, transact_write_items), so a 100-item
transaction copies the table 100 times and loading data through transactions is quadratic:
the demo's month of history did not finish in 3 minutes and grew moto to gigabytes. Within
one transaction the copies are identical (nothing is written until all are taken), so taking
one per table is the same backup. Everything else is moto as released.

Usage: python scripts/moto_server.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import copy
import sys
import threading

from moto.dynamodb import models
from moto.server import main

_ONE_PER_TABLE = threading.local()


class _CopyOncePerTransaction:
    """Stands in for the `copy` module inside moto.dynamodb.models."""

    def __getattr__(self, name):
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value, memo=None):
        taken = getattr(_ONE_PER_TABLE, "copies", None)
        if taken is None:
            return copy.deepcopy(value, memo)
        if id(value) not in taken:
            taken[id(value)] = copy.deepcopy(value, memo)
        return taken[id(value)]


_original = models.DynamoDBBackend.transact_write_items


def _transact_write_items(self, transact_items):
    _ONE_PER_TABLE.copies = {}
    try:
        return _original(self, transact_items)
    finally:
        _ONE_PER_TABLE.copies = None


models.copy = _CopyOncePerTransaction()
models.DynamoDBBackend.transact_write_items = _transact_write_items

if __name__ == "__main__":
    sys.exit(main())
