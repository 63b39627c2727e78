"""An L2 learning switch for os-ken, written for the tests (OpenFlow 1.3).

On connect it installs a table-miss flow (to the controller).  Each packet-in
teaches it where the source MAC is; known destinations get a flow
(priority 1, in_port + eth_dst -> output) and the packet is sent by a
packet-out, unknown ones are flooded.  It appends one JSON line per event to
the file named by $OSKEN_APP_LOG so the tests can see what it saw:
{"event": "features", "dpid": ...}, {"event": "packet_in", "reason": ...,
"in_port": ..., "table_id": ...}, {"event": "flow", "in_port": ..., "dst": ...}.
"""
import json
import os

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.lib.packet import ethernet, packet
from os_ken.ofproto import ofproto_v1_3


def _log(**event):
    path = os.environ.get("OSKEN_APP_LOG")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(event) + "\n")


class LearningSwitch(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.macs = {}  # dpid -> {mac: port}

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def features(self, ev):
        dp = ev.msg.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        miss = [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)]
        self.add_flow(dp, 0, parser.OFPMatch(), miss)
        _log(event="features", dpid=dp.id, n_tables=ev.msg.n_tables)

    @staticmethod
    def add_flow(dp, priority, match, actions):
        parser = dp.ofproto_parser
        inst = [parser.OFPInstructionActions(dp.ofproto.OFPIT_APPLY_ACTIONS, actions)]
        dp.send_msg(parser.OFPFlowMod(datapath=dp, priority=priority, match=match, instructions=inst))

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def packet_in(self, ev):
        msg = ev.msg
        dp = msg.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        in_port = msg.match["in_port"]
        eth = packet.Packet(msg.data).get_protocols(ethernet.ethernet)[0]
        _log(event="packet_in", reason=msg.reason, in_port=in_port, table_id=msg.table_id,
             total_len=msg.total_len, src=eth.src, dst=eth.dst)
        table = self.macs.setdefault(dp.id, {})
        table[eth.src] = in_port
        out_port = table.get(eth.dst, ofp.OFPP_FLOOD)
        actions = [parser.OFPActionOutput(out_port)]
        if out_port != ofp.OFPP_FLOOD:
            self.add_flow(dp, 1, parser.OFPMatch(in_port=in_port, eth_dst=eth.dst), actions)
            _log(event="flow", in_port=in_port, dst=eth.dst, out_port=out_port)
        dp.send_msg(parser.OFPPacketOut(datapath=dp, buffer_id=ofp.OFP_NO_BUFFER, in_port=in_port,
                                        actions=actions, data=msg.data))
