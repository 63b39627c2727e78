"""vswitch's own OVSDB type layer (vswitch/ovsdb/types.py, written so the
daemon does not import the `ovs` package) checked against OVS's Python
library: every column type of the schema parses to the same bounds,
constraints and references, and random values read and write the same
JSON and pass or fail the same constraints."""
import json
import random
import warnings

import pytest

from vswitch.ovsdb import model
from vswitch.ovsdb.ovs_schema import SCHEMA_JSON
from vswitch.ovsdb.types import OvsdbError, datum_json, parse_datum

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import ovs.db.data
    import ovs.db.error
    import ovs.db.schema

OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"


@pytest.fixture(scope="module")
def theirs():
    with open(OVS_SCHEMA) as f:
        return ovs.db.schema.DbSchema.from_json(json.load(f))


def test_the_kept_schema_is_ovs_schema():
    with open(OVS_SCHEMA) as f:
        assert json.loads(SCHEMA_JSON) == json.load(f)


def columns(theirs):
    for table in theirs.tables.values():
        for column in table.columns.values():
            yield table.name, column.name, column.type, model.TABLES[table.name].columns[column.name].type


def test_column_types_parse_alike(theirs):
    n = 0
    for table, name, them, us in columns(theirs):
        assert (us.n_min, us.n_max) == (them.n_min, them.n_max), (table, name)
        for ours, base in ((us.key, them.key), (us.value, them.value)):
            if base is None:
                assert ours is None
                continue
            assert ours.type == base.type.to_string(), (table, name)
            assert (ours.min, ours.max) == (base.min, base.max), (table, name)
            assert ours.ref_table == base.ref_table_name, (table, name)
            if base.ref_table_name:
                assert ours.ref_type == base.ref_type, (table, name)
            if base.enum is not None:
                assert ours.enum == {atom.value for atom in base.enum.values}, (table, name)
            else:
                assert ours.enum is None
        n += 1
    assert n > 150


def _random_atom(rng, base):
    kind = base.type.to_string()
    if kind == "integer":
        lo = base.min if base.min is not None else -10
        hi = base.max if base.max is not None else 10 ** 6
        return rng.choice([lo - 1, lo, hi, hi + 1, rng.randint(lo, min(hi, lo + 100))])
    if kind == "real":
        return rng.choice([0.5, -1.25, 3.0])
    if kind == "boolean":
        return rng.random() < .5
    if kind == "uuid":
        return ["uuid", f"{rng.getrandbits(128):032x}"[:8] + "-0000-4000-8000-000000000000"]
    if base.enum is not None and rng.random() < .8:
        return rng.choice(sorted(atom.value for atom in base.enum.values))
    return rng.choice(["", "a", "br0", "x" * 3])


def _random_json(rng, them):
    n = rng.choice([0, 1, 2, 3]) if them.n_max > 1 else rng.choice([0, 1, 1])
    if them.is_map():
        return ["map", [[_random_atom(rng, them.key), _random_atom(rng, them.value)] for _ in range(n)]]
    atoms = [_random_atom(rng, them.key) for _ in range(n)]
    return atoms[0] if n == 1 and rng.random() < .5 else ["set", atoms]


def test_values_read_and_write_alike(theirs):
    rng = random.Random(3)
    cols = list(columns(theirs))
    agreed = 0
    for _ in range(3000):
        table, name, them, us = rng.choice(cols)
        js = _random_json(rng, them)
        try:
            expected = ovs.db.data.Datum.from_json(them, js).to_json()
        except ovs.db.error.Error:
            expected = None
        try:
            got = datum_json(us, parse_datum(us, js))
        except OvsdbError:
            got = None
        assert got == expected, (table, name, js)
        agreed += expected is not None
    assert agreed > 1000
