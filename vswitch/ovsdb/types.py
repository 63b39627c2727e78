"""OVSDB types, values, conditions and mutations (RFC 7047 sections 3.2,
5.1), without the `ovs` package (importing it costs ~0.2 s of every restart).

Values ("datums") are immutable and canonical, so two equal datums compare
equal with `==`:
- a set (scalars too, as OVSDB sees them) is a sorted tuple of atoms;
- a map is a tuple of (key, value) pairs sorted by key.
Atoms are Python ints, floats, bools and strs; a uuid is its lowercase
string.  `parse_datum` reads RFC 7047 JSON notation (with named-uuids from a
symbol table) and checks the type's constraints; `datum_json` writes it as
ovsdb-server does (a one-element set as its bare atom).

Errors are `OvsdbError`s that carry the RFC's error object ("syntax error",
"constraint violation", ...); their details follow ovsdb-server's wording
where a client might match on it.
"""
import json
import re
import sys

UNLIMITED = sys.maxsize
ZERO_UUID = "00000000-0000-0000-0000-000000000000"
UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
ATOMIC_TYPES = ("integer", "real", "boolean", "string", "uuid")


class OvsdbError(Exception):
    """An RFC 7047 error object: `error` is its name, `details` the text."""

    def __init__(self, error, details=None, syntax=None):
        super().__init__(details or error)
        self.error, self.details, self.syntax = error, details, syntax

    def to_json(self):
        obj = {"error": self.error}
        if self.details is not None:
            obj["details"] = self.details
        if self.syntax is not None:
            obj["syntax"] = json.dumps(self.syntax, separators=(",", ":"), sort_keys=True)
        return obj


def syntax_error(details, syntax=None):
    return OvsdbError("syntax error", details, syntax)


def constraint(details):
    return OvsdbError("constraint violation", details)


# ---------------------------------------------------------------- types

class BaseType:
    """An atomic type with its constraints (enum, range, length, refTable)."""
    __slots__ = ("type", "enum", "min", "max", "min_length", "max_length", "ref_table", "ref_type")

    def __init__(self, type_, enum=None, min=None, max=None, min_length=0, max_length=UNLIMITED,
                 ref_table=None, ref_type="strong"):
        self.type, self.enum, self.min, self.max = type_, enum, min, max
        self.min_length, self.max_length = min_length, max_length
        self.ref_table, self.ref_type = ref_table, ref_type

    @classmethod
    def from_json(cls, js):
        if isinstance(js, str):
            js = {"type": js}
        if js.get("type") not in ATOMIC_TYPES:
            raise ValueError(f"unknown atomic type {js.get('type')!r}")
        base = cls(js["type"])
        if "enum" in js:
            plain = cls(js["type"])
            base.enum = frozenset(parse_datum(Type(plain, None, 0, UNLIMITED), js["enum"]))
        if base.type == "integer":
            base.min, base.max = js.get("minInteger"), js.get("maxInteger")
        elif base.type == "real":
            base.min, base.max = js.get("minReal"), js.get("maxReal")
        elif base.type == "string":
            base.min_length, base.max_length = js.get("minLength", 0), js.get("maxLength", UNLIMITED)
        elif base.type == "uuid":
            base.ref_table, base.ref_type = js.get("refTable"), js.get("refType", "strong")
        return base

    def without_constraints(self):
        return BaseType(self.type)

    def default(self):
        return {"integer": 0, "real": 0.0, "boolean": False, "string": "", "uuid": ZERO_UUID}[self.type]

    def describe(self):
        return self.type

    def check(self, atom):
        """Raises "constraint violation" for an atom outside the constraints
        (messages as ovsdb-server's)."""
        if self.enum is not None and atom not in self.enum:
            allowed = ", ".join(atom_text(self, a) for a in sorted(self.enum))
            raise constraint(f"{atom_text(self, atom)} is not one of the allowed values ([{allowed}])")
        if self.type in ("integer", "real"):
            lo, hi = self.min, self.max
            if (lo is None or atom >= lo) and (hi is None or atom <= hi):
                return
            if lo is not None and hi is not None:
                raise constraint(f"{atom_text(self, atom)} is not in the valid range {lo:.15g} to {hi:.15g} "
                                 "(inclusive)")
            if lo is not None:
                raise constraint(f"{atom_text(self, atom)} is less than minimum allowed value {lo:.15g}")
            raise constraint(f"{atom_text(self, atom)} is greater than maximum allowed value {hi:.15g}")
        if self.type == "string":
            n = len(atom)
            if n < self.min_length:
                raise constraint(f'"{atom}" length {n} is less than minimum allowed length {self.min_length}')
            if n > self.max_length:
                raise constraint(f'"{atom}" length {n} is greater than maximum allowed length {self.max_length}')


class Type:
    """A column type: key (and value, for a map), n_min..n_max elements."""
    __slots__ = ("key", "value", "n_min", "n_max")

    def __init__(self, key, value=None, n_min=1, n_max=1):
        self.key, self.value, self.n_min, self.n_max = key, value, n_min, n_max

    @classmethod
    def from_json(cls, js):
        if isinstance(js, str) or "key" not in js:
            return cls(BaseType.from_json(js))
        n_max = js.get("max", 1)
        return cls(BaseType.from_json(js["key"]),
                   BaseType.from_json(js["value"]) if "value" in js else None,
                   js.get("min", 1), UNLIMITED if n_max == "unlimited" else n_max)

    def is_map(self):
        return self.value is not None

    def is_scalar(self):
        return self.n_min == 1 and self.n_max == 1 and self.value is None

    def default(self):
        if self.n_min == 0:
            return ()
        if self.is_map():
            return ((self.key.default(), self.value.default()),)
        return (self.key.default(),)

    def relaxed(self, n_min=0, n_max=UNLIMITED):
        return Type(self.key, self.value, n_min, n_max)

    def describe(self):
        if self.is_scalar():
            return self.key.describe()
        if self.is_map():
            return f"map of {self.key.describe()}-{self.value.describe()} pairs"
        if self.n_max == 1:
            return f"optional {self.key.describe()}"
        bound = "" if self.n_max == UNLIMITED else f"up to {self.n_max} "
        return f"set of {bound}{self.key.describe()}s"

    def refs(self):
        """[(BaseType, is_value)] of the uuid parts that refer to a table."""
        parts = [(self.key, False)] + ([(self.value, True)] if self.value is not None else [])
        return [(base, is_value) for base, is_value in parts if base.type == "uuid" and base.ref_table]


# ---------------------------------------------------------------- JSON <-> values

def _is_int(js):
    return isinstance(js, int) and not isinstance(js, bool)


def parse_atom(base, js, symtab=None, check=True):
    """RFC 7047 <atom> of `base` -> Python atom.  A ["named-uuid", NAME]
    needs `symtab` (name -> uuid; an unknown name gets a fresh uuid there,
    as ovsdb-server does, so a reference may come before its insert)."""
    kind = base.type
    if kind == "integer" and _is_int(js) and -2 ** 63 <= js < 2 ** 63:
        atom = js
    elif kind == "real" and (_is_int(js) or isinstance(js, float)):
        atom = float(js)
    elif kind == "boolean" and isinstance(js, bool):
        atom = js
    elif kind == "string" and isinstance(js, str):
        atom = js
    elif kind == "uuid":
        if isinstance(js, list) and len(js) == 2 and js[0] == "uuid" and isinstance(js[1], str):
            if not UUID_RE.match(js[1]):
                raise syntax_error(f'"{js[1]}" is not a valid UUID', js)
            atom = js[1].lower()
        elif (isinstance(js, list) and len(js) == 2 and js[0] == "named-uuid" and isinstance(js[1], str)
              and symtab is not None):
            atom = symtab.reference(js[1])
        else:
            raise syntax_error('expected ["uuid", <string>]', js)
    else:
        raise syntax_error(f"expected {kind}", js)
    if check:
        base.check(atom)
    return atom


def parse_datum(type_, js, symtab=None, check=True):
    """RFC 7047 <value> of `type_` -> canonical datum (see the module doc)."""
    if type_.is_map():
        if not (isinstance(js, list) and len(js) == 2 and js[0] == "map" and isinstance(js[1], list)):
            raise syntax_error('expected ["map", [...]]', js)
        pairs = {}
        for item in js[1]:
            if not (isinstance(item, list) and len(item) == 2):
                raise syntax_error("expected a [key, value] pair", item)
            key = parse_atom(type_.key, item[0], symtab, check)
            if key in pairs:
                raise syntax_error("map contains duplicate key", js)
            pairs[key] = parse_atom(type_.value, item[1], symtab, check)
        _check_count(type_, len(pairs), js, "map")
        return tuple(sorted(pairs.items()))
    if isinstance(js, list) and len(js) == 2 and js[0] == "set":
        if not isinstance(js[1], list):
            raise syntax_error('expected ["set", [...]]', js)
        atoms = set()
        for item in js[1]:
            atom = parse_atom(type_.key, item, symtab, check)
            if atom in atoms:
                raise syntax_error("set contains duplicate value", js)
            atoms.add(atom)
        _check_count(type_, len(atoms), js, "set")
        return tuple(sorted(atoms))
    atom = parse_atom(type_.key, js, symtab, check)
    _check_count(type_, 1, js, "set")
    return (atom,)


def _check_count(type_, n, js, noun):
    if type_.n_min <= n <= type_.n_max:
        return
    if type_.n_min == type_.n_max:
        raise syntax_error(f"{noun} must have exactly {'one member' if type_.n_min == 1 else f'{type_.n_min} members'}"
                           f" but {n} are present", js)
    bound = "unlimited" if type_.n_max == UNLIMITED else type_.n_max
    raise syntax_error(f"{noun} must have {type_.n_min} to {bound} members but {n} are present", js)


def atom_json(base, atom):
    return ["uuid", atom] if base.type == "uuid" else atom


def _needs_quotes(text):
    """OVS's string_needs_quotes(): bare words are printed without quotes."""
    return (not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", text) or text in ("true", "false")
            or UUID_RE.match(text) is not None)


def atom_text(base, atom):
    if base.type == "string":
        return json.dumps(atom) if _needs_quotes(atom) else atom
    if base.type == "boolean":
        return "true" if atom else "false"
    if base.type == "real":
        return f"{atom:.17g}"
    return str(atom)


def datum_json(type_, datum):
    if type_.is_map():
        return ["map", [[atom_json(type_.key, k), atom_json(type_.value, v)] for k, v in datum]]
    if len(datum) == 1:
        return atom_json(type_.key, datum[0])
    return ["set", [atom_json(type_.key, a) for a in datum]]


def check_datum(type_, datum):
    """Constraints of every atom and the element count of a computed datum
    (a mutation's result)."""
    if type_.is_map():
        for key, value in datum:
            type_.key.check(key)
            type_.value.check(value)
    else:
        for atom in datum:
            type_.key.check(atom)
    n = len(datum)
    if n < type_.n_min or n > type_.n_max:
        bound = "unlimited" if type_.n_max == UNLIMITED else type_.n_max
        raise constraint(f"Attempted to store {n} elements in {type_.describe()} "
                         f"(which holds {type_.n_min} to {bound})")


def datum_text(type_, datum):
    """A datum as ovs-vsctl prints it: 5, "a", [], [1, 2], {a=b}."""
    if type_.is_map():
        return "{" + ", ".join(f"{atom_text(type_.key, k)}={atom_text(type_.value, v)}" for k, v in datum) + "}"
    if type_.n_max == 1 and len(datum) == 1:
        return atom_text(type_.key, datum[0])
    return "[" + ", ".join(atom_text(type_.key, a) for a in datum) + "]"


def referenced_uuids(type_, datum):
    """The uuids `datum` refers to, per referenced table: [(BaseType, uuid)]."""
    out = []
    for base, is_value in type_.refs():
        if type_.is_map():
            out.extend((base, pair[1] if is_value else pair[0]) for pair in datum)
        else:
            out.extend((base, atom) for atom in datum)
    return out


def without_refs(type_, datum, dead):
    """`datum` without the elements (map pairs) that refer to a uuid in `dead`."""
    refs = type_.refs()
    if not refs:
        return datum
    if type_.is_map():
        key_ref = any(not v for _, v in refs)
        value_ref = any(v for _, v in refs)
        return tuple(p for p in datum if not ((key_ref and p[0] in dead) or (value_ref and p[1] in dead)))
    return tuple(a for a in datum if a not in dead)


# ---------------------------------------------------------------- conditions

RELATIONS = ("<", "<=", "==", "!=", ">=", ">", "includes", "excludes")


def parse_condition(column_type, column_name, table_name, clause, symtab=None):
    """[column, function, value] -> (function, datum), checked against the
    column's type as ovsdb-server does."""
    function, value = clause[1], clause[2]
    if function not in RELATIONS:
        raise syntax_error(f"unknown function {json.dumps(function)}", clause)
    if function in ("<", "<=", ">", ">="):
        if column_type.key.type not in ("integer", "real") or column_type.n_max != 1 or column_type.is_map():
            raise syntax_error(f'Type mismatch: "{function}" operator may not be applied to column '
                               f"{column_name} of type {column_type.describe()}.", clause)
        return function, parse_datum(column_type.relaxed(1, 1), value, symtab)
    if function in ("includes", "excludes"):
        return function, parse_datum(column_type.relaxed(0, column_type.n_max), value, symtab)
    return function, parse_datum(column_type, value, symtab)


def evaluate(function, arg, datum):
    if function == "==":
        return datum == arg
    if function == "!=":
        return datum != arg
    if function == "includes":
        return set(arg) <= set(datum)
    if function == "excludes":
        return not set(arg) & set(datum)
    if not datum:
        return False
    a, b = datum[0], arg[0]
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[function]


# ---------------------------------------------------------------- mutations

MUTATORS = ("+=", "-=", "*=", "/=", "%=", "insert", "delete")


def parse_mutation(column_type, column_name, mutation, symtab=None):
    """[column, mutator, value] -> (mutator, argument)."""
    mutator, value = mutation[1], mutation[2]
    if mutator not in MUTATORS:
        raise syntax_error(f"Unknown mutator {json.dumps(mutator)}.", mutation)
    if mutator in ("insert", "delete"):
        if mutator == "delete" and column_type.is_map() and not (isinstance(value, list) and value
                                                                  and value[0] == "map"):
            keys = Type(column_type.key, None, 0, UNLIMITED)
            return "delete-keys", parse_datum(keys, value, symtab, check=False)
        return mutator, parse_datum(column_type.relaxed(), value, symtab, check=False)
    base = column_type.key
    if column_type.is_map() or base.type not in ("integer", "real") or (mutator == "%=" and base.type == "real"):
        raise syntax_error(f'Type mismatch: "{mutator}" operator may not be applied to column {column_name} '
                           f"of type {column_type.describe()}.", mutation)
    return mutator, parse_atom(base.without_constraints(), value, symtab)


def mutate(column_type, datum, mutator, arg):
    """The column's new value; raises domain/range/constraint errors."""
    if mutator == "insert":
        if column_type.is_map():
            merged = dict(datum)
            for key, value in arg:
                merged.setdefault(key, value)
            result = tuple(sorted(merged.items()))
        else:
            result = tuple(sorted(set(datum) | set(arg)))
    elif mutator == "delete":
        result = tuple(x for x in datum if x not in set(arg))
    elif mutator == "delete-keys":
        gone = set(arg)
        result = tuple(pair for pair in datum if pair[0] not in gone)
    else:
        out = set()
        for atom in datum:
            if mutator in ("/=", "%=") and arg == 0:
                raise OvsdbError("domain error", "Division by zero.")
            if mutator == "+=":
                atom = atom + arg
            elif mutator == "-=":
                atom = atom - arg
            elif mutator == "*=":
                atom = atom * arg
            elif mutator == "/=":
                atom = atom / arg if column_type.key.type == "real" else int(atom / arg)
            else:
                atom = atom - arg * int(atom / arg)     # C's %: the sign of the dividend
            if column_type.key.type == "integer" and not -2 ** 63 <= atom < 2 ** 63:
                raise OvsdbError("range error", "Result of arithmetic operation is out of range.")
            column_type.key.check(atom)
            out.add(atom)
        if len(out) != len(datum):
            raise constraint("Result of arithmetic operation made set elements equal.")
        result = tuple(sorted(out))
    check_datum(column_type, result)
    return result
