"""Schema helpers: value syntax, controller targets and whole-config checks."""
import pytest

from vswitch.config import schema
from vswitch.config.commands import execute
from vswitch.config.schema import SchemaError


def test_split_top_and_unquote_respect_quotes():
    assert schema.split_top('a, "b,c" ,d') == ["a", '"b,c"', "d"]
    assert schema.unquote('"x \\"y\\""') == 'x "y"'
    assert schema.split_key_value('"k=1"=v=2') == ("k=1", "v=2")
    with pytest.raises(SchemaError):
        schema.split_key_value("novalue")


@pytest.mark.parametrize("target, ok", [
    ("tcp:127.0.0.1:6653", True), ("tcp:127.0.0.1", True), ("tcp:[::1]:6653", True),
    ("ptcp:", True), ("ptcp:6653:127.0.0.1", True), ("punix:/tmp/x", True),
    ("tcp:localhost:6653", False), ("ssl:1.2.3.4:0", False), ("ptcp:abc", False),
    ("punix:", False), ("udp:1.2.3.4:1", False), ("tcp", False),
])
def test_controller_target_syntax(target, ok):
    assert schema.is_controller_target(target) is ok


def test_table_names_are_case_insensitive():
    assert schema.table_named("interface") == "Interface"
    with pytest.raises(SchemaError, match='unknown table "qos"'):
        schema.table_named("qos")


def test_validate_config_finds_broken_references():
    config, _ = execute(schema.empty_config(), [["add-br", "br0"], ["add-port", "br0", "p1"]])
    schema.validate_config(config)
    port_uuid = next(u for u, row in config["Port"].items() if row["name"] == "p1")
    dangling = {**config, "Port": {u: r for u, r in config["Port"].items() if u != port_uuid}}
    with pytest.raises(SchemaError, match="Bridge br0 refers to a missing Port"):
        schema.validate_config(dangling)
    orphan = {**config, "Bridge": {}}
    with pytest.raises(SchemaError, match="Port (br0|p1) is not in any Bridge"):
        schema.validate_config(orphan)
    renamed = {**config, "Port": {u: dict(r, name="br0") for u, r in config["Port"].items()}}
    with pytest.raises(SchemaError, match="duplicate Port name br0"):
        schema.validate_config(renamed)
    stored_runtime = {**config, "Interface": {u: dict(r, ofport=3) for u, r in config["Interface"].items()}}
    with pytest.raises(SchemaError, match="runtime column ofport cannot be stored"):
        schema.validate_config(stored_runtime)
