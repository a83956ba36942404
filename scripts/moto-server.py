"""moto's server, with its DynamoDB requests answered one at a time.

moto answers every request on its own thread, and its conditional writes check the condition and
write the item without a lock: two writers racing on one item can both pass the same version
condition, and one update is lost. Real DynamoDB never allows that (a conditional write is atomic),
and seatsync's optimistic locking relies on it. Measured here: 48 concurrent version-conditioned
adjustments of one item on moto 5.2.5 under CI load kept 46. One lock around moto's DynamoDB
actions restores the service's guarantee; every other service keeps moto's own threading.

Usage (scripts/local-aws does this): python moto-server.py -H 127.0.0.1 -p PORT
"""

import threading

from moto.dynamodb.responses import DynamoHandler
from moto.server import main

_lock = threading.Lock()
_call_action = DynamoHandler.call_action


def _serialized_call_action(self):
    with _lock:
        return _call_action(self)


DynamoHandler.call_action = _serialized_call_action

if __name__ == "__main__":
    main()
