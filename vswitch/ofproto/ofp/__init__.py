"""The switch side of OpenFlow 1.0 and 1.3: messages in and out, one model.

Design note.  Messages decode into version-independent dataclasses
(messages.py, multipart.py) with a Match dict {oxm name: (value, mask)}
(oxm.py), action dataclasses (actions.py) and instructions (instructions.py);
OF1.0 converts into the same shapes (match10.py, its action table), so the
pipeline never looks at the version.  Layouts are tables read against the spec
(records.Struct, the action and OXM tables, codec.CODECS) rather than
if-chains.  Malformed input raises only OFPError, whose symbolic type/code
map to each version's numbers (errors.py); the connection layer answers with
`error_reply(err)` and keeps the connection up.

Entry points: decode(bytes) -> Message, encode(Message) -> bytes,
split_messages(stream) -> (messages, rest), error_reply(OFPError) -> bytes.
"""
from .actions import (CopyTtlIn, CopyTtlOut, DecMplsTtl, DecNwTtl, Enqueue, Experimenter, Group,
                      Output, PopMpls, PopPbb, PopVlan, PushMpls, PushPbb, PushVlan, SetField,
                      SetMplsTtl, SetNwTtl, SetQueue, decode_actions, encode_actions)
from .codec import decode, encode, error_message, error_reply, message_length, split_messages
from .constants import *  # noqa: F401,F403  (port/group/meter numbers and enums)
from .errors import OFPError, error_name
from .instructions import (ApplyActions, ClearActions, ExperimenterInstruction, GotoTable, Meter,
                           WriteActions, WriteMetadata, actions_of)
from .messages import *  # noqa: F401,F403
from .multipart import *  # noqa: F401,F403
from .oxm import FIELDS, OFPVID_NONE, OFPVID_PRESENT, Match
