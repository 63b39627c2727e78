"""flowkey.mask_packed (the upcall path's byte-wise masking) equals masking
the dict and packing it, on random keys and masks."""
import random

from vswitch.datapath import flowkey


def test_mask_packed_equals_pack_of_apply_mask():
    rng = random.Random(7)
    fields = list(flowkey.FIELDS)
    for _ in range(2000):
        key = {f: rng.getrandbits(flowkey.FIELDS[f][1]) for f in fields}
        mask = {f: rng.choice((0, flowkey.full_mask(f), rng.getrandbits(flowkey.FIELDS[f][1])))
                for f in rng.sample(fields, rng.randint(1, len(fields)))}
        assert flowkey.mask_packed(flowkey.pack(key), flowkey.pack(mask)) == \
            flowkey.pack(flowkey.apply_mask(key, mask))
