"""Flow cache expiry with a fake clock: inactive, active, TCP end, eviction."""
from vswitch.export.flow_cache import (END_ACTIVE, END_FORCED, END_IDLE,
                                       END_LACK_OF_RESOURCES, END_OF_FLOW, FlowCache)
from vswitch.export.records import FlowKey, FlowStats, check_flow_stats


def key(i, protocol=6):
    return FlowKey(in_port=1, src_ip=f"10.0.0.{i}", dst_ip="10.0.1.1", protocol=protocol,
                   src_port=1000 + i, dst_port=80)


def add(cache, k, t, packets=1, size=100, flags=0):
    stats = FlowStats(k, packets, packets * size, t, t, tcp_flags=flags)
    cache.add(check_flow_stats(stats), stats)


def test_inactive_timeout_expires_an_idle_flow_only_after_the_timeout():
    cache = FlowCache(active_timeout=100, inactive_timeout=10)
    add(cache, key(1), 0.0)
    add(cache, key(1), 5.0)
    assert cache.next_expiry() == 15.0
    assert cache.expire(14.9) == []
    [flow] = cache.expire(15.0)
    assert (flow.end_reason, flow.packets, flow.first, flow.last) == (END_IDLE, 2, 0.0, 5.0)
    assert len(cache) == 0 and cache.next_expiry() is None


def test_active_timeout_cuts_a_busy_flow_and_the_next_delta_starts_a_new_record():
    cache = FlowCache(active_timeout=30, inactive_timeout=10)
    for t in range(0, 31):
        add(cache, key(1), float(t))
        expired = cache.expire(float(t))
    assert [(f.end_reason, f.packets) for f in expired] == [(END_ACTIVE, 31)]
    add(cache, key(1), 31.0)
    [flow] = cache.expire(41.0)
    assert (flow.end_reason, flow.packets, flow.first) == (END_IDLE, 1, 31.0)


def test_timeouts_of_zero_are_disabled():
    cache = FlowCache(active_timeout=0, inactive_timeout=0)
    add(cache, key(1), 0.0)
    assert cache.next_expiry() is None and cache.expire(1e9) == []


def test_tcp_fin_or_rst_ends_the_flow_at_once_but_not_for_udp():
    cache = FlowCache(active_timeout=60, inactive_timeout=15)
    add(cache, key(1), 1.0, flags=0x11)          # FIN+ACK
    add(cache, key(2), 1.0, flags=0x04)          # RST
    add(cache, key(3, protocol=17), 1.0, flags=0x01)
    assert cache.next_expiry() == 1.0
    assert sorted(f.parsed.key.src_port for f in cache.expire(1.0)
                  if f.end_reason == END_OF_FLOW) == [1001, 1002]
    assert len(cache) == 1
    cache.tcp_end_detection = False
    add(cache, key(4), 2.0, flags=0x01)
    assert cache.expire(2.0) == []


def test_full_cache_evicts_the_least_recently_updated_flow():
    cache = FlowCache(active_timeout=60, inactive_timeout=15, max_flows=2)
    add(cache, key(1), 0.0)
    add(cache, key(2), 1.0)
    add(cache, key(1), 2.0)                      # 2 is now the oldest update
    add(cache, key(3), 3.0)
    assert cache.next_expiry() == 0.0
    [evicted] = cache.expire(3.0)
    assert (evicted.parsed.key.src_port, evicted.end_reason) == (1002, END_LACK_OF_RESOURCES)
    assert len(cache) == 2


def test_flush_ends_everything_as_forced_and_keeps_counts():
    cache = FlowCache(active_timeout=60, inactive_timeout=15)
    add(cache, key(1), 0.0, packets=3, size=100)
    add(cache, key(2), 0.0, flags=0x01)
    flows = cache.flush()
    assert sorted((f.end_reason, f.packets, f.l2_bytes, f.ip_bytes) for f in flows) == \
        [(END_OF_FLOW, 1, 100, 86), (END_FORCED, 3, 300, 258)]
    assert len(cache) == 0
