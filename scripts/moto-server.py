"""moto's server, with its DynamoDB requests answered one at a time.

moto answers every request on its own thread, and its conditional writes check the condition and
write the item without a lock: two writers racing on one item can both pass the same version
condition, and one update is lost. Real DynamoDB never allows that (a conditional write is atomic),
and seatsync's optimistic locking relies on it. Measured here: 48 concurrent version-conditioned
adjustments of one item on moto 5.2.5 under CI load kept 46. One lock around moto's DynamoDB
actions restores the service's guarantee; every other service keeps moto's own threading.

Second, speed: moto answers a Query on a GSI by sorting every item of the partition with
Python-level comparisons of its attribute objects, and skips to an ExclusiveStartKey the same way;
at 100,000 users one GSI query took several seconds, over the functions' 5 s DynamoDB timeout
(tools/read-bench), and a table query's sort of a 5,000-user partition could pass it on a loaded
2-core CI machine. The sort and the skip below compare the attributes' plain values instead, in the
same order (strings and binary by value, numbers numerically), as do string attributes compared
anywhere else, and moto's own comparison stays for anything else.

Usage (scripts/local-aws does this): python moto-server.py -H 127.0.0.1 -p PORT
"""

import threading
from decimal import Decimal

from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler
from moto.server import main

_lock = threading.Lock()
_call_action = DynamoHandler.call_action


def _serialized_call_action(self):
    with _lock:
        return _call_action(self)


DynamoHandler.call_action = _serialized_call_action


class _Unsortable(Exception):
    pass


def _plain(type_, value):
    if type_ in ("S", "B"):
        return (type_, value)
    if type_ == "N":
        return (type_, Decimal(value))
    raise _Unsortable(type_)


def _item_key(item, attrs):
    return tuple(_plain(item.attrs[a].type, item.attrs[a].value) for a in attrs)


_sorted_items = Table.sorted_items
_item_comes_before_dct = Table._item_comes_before_dct


def _fast_sorted_items(self, hash_key_attrs, range_key_attrs, items):
    attrs = self._generate_attr_to_sort_by(hash_key_attrs, range_key_attrs)
    try:
        keys = [_item_key(item, attrs) for item in items]
    except (_Unsortable, KeyError):
        return _sorted_items(self, hash_key_attrs, range_key_attrs, items)
    order = sorted(range(len(items)), key=keys.__getitem__)
    items[:] = [items[i] for i in order]
    return items


def _fast_item_comes_before_dct(self, item, dct, hash_key_attrs, range_key_attrs, scan_index_forward):
    try:
        for attr in self._generate_attr_to_sort_by(hash_key_attrs, range_key_attrs):
            if attr not in item.attrs:
                continue
            mine = item.attrs[attr]
            (type_, value), = dct[attr].items()
            a, b = _plain(mine.type, mine.value), _plain(type_, value)
            if a != b:
                return (a < b) == scan_index_forward
        return True
    except (_Unsortable, KeyError, ValueError, AttributeError):
        return _item_comes_before_dct(self, item, dct, hash_key_attrs, range_key_attrs, scan_index_forward)


def _string_fast_path(name):
    slow = getattr(DynamoType, name)
    compare = {"__lt__": str.__lt__, "__le__": str.__le__, "__gt__": str.__gt__, "__ge__": str.__ge__}[name]

    def fast(self, other):
        if self.type == "S" and getattr(other, "type", None) == "S":
            return compare(self.value, other.value)
        return slow(self, other)

    return fast


for _name in ("__lt__", "__le__", "__gt__", "__ge__"):
    setattr(DynamoType, _name, _string_fast_path(_name))

Table.sorted_items = _fast_sorted_items
Table._item_comes_before_dct = _fast_item_comes_before_dct

if __name__ == "__main__":
    main()
