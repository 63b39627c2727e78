"""OpenFlow errors: one exception, the spec's numbers for both versions.

Decoders and the flow-table model raise `OFPError("BAD_MATCH", "BAD_PREREQ")`
with symbolic names; `numbers(version)` turns them into the (type, code) pair
that the version's spec assigns, because OF1.0 and OF1.3 number them
differently (OF1.0 has no BAD_INSTRUCTION, BAD_MATCH, GROUP/METER errors...).
The connection layer catches OFPError, sends `error_reply()` and keeps going.
"""

# Error types: name -> (OF1.0 number, OF1.3 number); None = absent in that version.
ERROR_TYPES = {
    "HELLO_FAILED": (0, 0),
    "BAD_REQUEST": (1, 1),
    "BAD_ACTION": (2, 2),
    "BAD_INSTRUCTION": (None, 3),
    "BAD_MATCH": (None, 4),
    "FLOW_MOD_FAILED": (3, 5),
    "GROUP_MOD_FAILED": (None, 6),
    "PORT_MOD_FAILED": (4, 7),
    "TABLE_MOD_FAILED": (None, 8),
    "QUEUE_OP_FAILED": (5, 9),
    "SWITCH_CONFIG_FAILED": (None, 10),
    "ROLE_REQUEST_FAILED": (None, 11),
    "METER_MOD_FAILED": (None, 12),
    "TABLE_FEATURES_FAILED": (None, 13),
    "EXPERIMENTER": (None, 0xFFFF),
}


def _codes(of10, of13):
    """Two code lists (index = number) -> {name: (of10 number, of13 number)}."""
    names = dict.fromkeys(list(of13) + list(of10))
    return {n: (of10.index(n) if n in of10 else None, of13.index(n) if n in of13 else None)
            for n in names}


# Error codes per type, in spec order (OF1.0 section 5.4.4, OF1.3 section A.4.4).
# OF1.0 codes carry the OF1.3 name of the same error: BAD_STAT is BAD_MULTIPART,
# BAD_VENDOR(_TYPE) is BAD_EXPERIMENTER/BAD_EXP_TYPE, ALL_TABLES_FULL is
# TABLE_FULL, BAD_EMERG_TIMEOUT is BAD_TIMEOUT.
ERROR_CODES = {
    "HELLO_FAILED": _codes(["INCOMPATIBLE", "EPERM"], ["INCOMPATIBLE", "EPERM"]),
    "BAD_REQUEST": _codes(
        ["BAD_VERSION", "BAD_TYPE", "BAD_MULTIPART", "BAD_EXPERIMENTER", "BAD_EXP_TYPE", "EPERM",
         "BAD_LEN", "BUFFER_EMPTY", "BUFFER_UNKNOWN"],
        ["BAD_VERSION", "BAD_TYPE", "BAD_MULTIPART", "BAD_EXPERIMENTER", "BAD_EXP_TYPE",
         "EPERM", "BAD_LEN", "BUFFER_EMPTY", "BUFFER_UNKNOWN", "BAD_TABLE_ID", "IS_SLAVE",
         "BAD_PORT", "BAD_PACKET", "MULTIPART_BUFFER_OVERFLOW"]),
    "BAD_ACTION": _codes(
        ["BAD_TYPE", "BAD_LEN", "BAD_EXPERIMENTER", "BAD_EXP_TYPE", "BAD_OUT_PORT",
         "BAD_ARGUMENT", "EPERM", "TOO_MANY", "BAD_QUEUE"],
        ["BAD_TYPE", "BAD_LEN", "BAD_EXPERIMENTER", "BAD_EXP_TYPE", "BAD_OUT_PORT",
         "BAD_ARGUMENT", "EPERM", "TOO_MANY", "BAD_QUEUE", "BAD_OUT_GROUP",
         "MATCH_INCONSISTENT", "UNSUPPORTED_ORDER", "BAD_TAG", "BAD_SET_TYPE",
         "BAD_SET_LEN", "BAD_SET_ARGUMENT"]),
    "BAD_INSTRUCTION": _codes(
        [], ["UNKNOWN_INST", "UNSUP_INST", "BAD_TABLE_ID", "UNSUP_METADATA",
             "UNSUP_METADATA_MASK", "BAD_EXPERIMENTER", "BAD_EXP_TYPE", "BAD_LEN", "EPERM"]),
    "BAD_MATCH": _codes(
        [], ["BAD_TYPE", "BAD_LEN", "BAD_TAG", "BAD_DL_ADDR_MASK", "BAD_NW_ADDR_MASK",
             "BAD_WILDCARDS", "BAD_FIELD", "BAD_VALUE", "BAD_MASK", "BAD_PREREQ",
             "DUP_FIELD", "EPERM"]),
    "FLOW_MOD_FAILED": _codes(
        ["TABLE_FULL", "OVERLAP", "EPERM", "BAD_TIMEOUT", "BAD_COMMAND",
         "UNSUPPORTED"],
        ["UNKNOWN", "TABLE_FULL", "BAD_TABLE_ID", "OVERLAP", "EPERM", "BAD_TIMEOUT",
         "BAD_COMMAND", "BAD_FLAGS"]),
    "GROUP_MOD_FAILED": _codes(
        [], ["GROUP_EXISTS", "INVALID_GROUP", "WEIGHT_UNSUPPORTED", "OUT_OF_GROUPS",
             "OUT_OF_BUCKETS", "CHAINING_UNSUPPORTED", "WATCH_UNSUPPORTED", "LOOP",
             "UNKNOWN_GROUP", "CHAINED_GROUP", "BAD_TYPE", "BAD_COMMAND", "BAD_BUCKET",
             "BAD_WATCH", "EPERM"]),
    "PORT_MOD_FAILED": _codes(["BAD_PORT", "BAD_HW_ADDR"],
                              ["BAD_PORT", "BAD_HW_ADDR", "BAD_CONFIG", "BAD_ADVERTISE", "EPERM"]),
    "TABLE_MOD_FAILED": _codes([], ["BAD_TABLE", "BAD_CONFIG", "EPERM"]),
    "QUEUE_OP_FAILED": _codes(["BAD_PORT", "BAD_QUEUE", "EPERM"], ["BAD_PORT", "BAD_QUEUE", "EPERM"]),
    "SWITCH_CONFIG_FAILED": _codes([], ["BAD_FLAGS", "BAD_LEN", "EPERM"]),
    "ROLE_REQUEST_FAILED": _codes([], ["STALE", "UNSUP", "BAD_ROLE"]),
    "METER_MOD_FAILED": _codes(
        [], ["UNKNOWN", "METER_EXISTS", "INVALID_METER", "UNKNOWN_METER", "BAD_COMMAND",
             "BAD_FLAGS", "BAD_RATE", "BAD_BURST", "BAD_BAND", "BAD_BAND_VALUE",
             "OUT_OF_METERS", "OUT_OF_BANDS"]),
    "TABLE_FEATURES_FAILED": _codes(
        [], ["BAD_TABLE", "BAD_METADATA", "BAD_TYPE", "BAD_LEN", "BAD_ARGUMENT", "EPERM"]),
}

# OF1.0 has no number for many OF1.3 errors; it then gets the closest 1.0 error
# (what a 1.0 controller can still understand): a generic permission error of
# the request, except the match/action cases that 1.0 does have words for.
OF10_FALLBACK = {
    "BAD_INSTRUCTION": ("BAD_ACTION", "BAD_TYPE"),
    "BAD_MATCH": ("BAD_REQUEST", "EPERM"),
    "FLOW_MOD_FAILED": ("FLOW_MOD_FAILED", "EPERM"),
    "BAD_ACTION": ("BAD_ACTION", "BAD_ARGUMENT"),
    "BAD_REQUEST": ("BAD_REQUEST", "EPERM"),
}

VERSION_INDEX = {1: 0, 4: 1}


class OFPError(Exception):
    """An OpenFlow error to answer with: symbolic type and code names."""

    def __init__(self, err_type, code, data=b"", detail=""):
        if code not in ERROR_CODES.get(err_type, {}):
            raise ValueError(f"unknown OpenFlow error {err_type}/{code}")
        super().__init__(f"OFPET_{err_type}/{code}" + (f": {detail}" if detail else ""))
        self.type = err_type
        self.code = code
        self.data = data
        self.detail = detail

    def numbers(self, version):
        """(type, code) as numbered by OpenFlow `version` (1 or 4)."""
        i = VERSION_INDEX[version]
        t, c = ERROR_TYPES[self.type][i], ERROR_CODES[self.type][self.code][i]
        if t is not None and c is not None:
            return t, c
        ft, fc = OF10_FALLBACK.get(self.type, ("BAD_REQUEST", "EPERM"))
        return ERROR_TYPES[ft][i], ERROR_CODES[ft][fc][i]


def error_name(version, err_type, code):
    """Numbers -> ("BAD_MATCH", "BAD_PREREQ"), or the numbers as text if unknown."""
    i = VERSION_INDEX[version]
    for tname, nums in ERROR_TYPES.items():
        if nums[i] == err_type:
            for cname, cnums in ERROR_CODES[tname].items():
                if cnums[i] == code:
                    return tname, cname
            return tname, str(code)
    return str(err_type), str(code)
