"""Golden model of ``ouch_rx``: the venue's OUCH answers, parsed on-chip.

The venue answers the FPGA's orders at the address they came from (the receive path's
``ctl_ip`` and ``ouch_tx``'s ``src_port``). A datagram from the venue (``ouch_tx``'s
``venue_ip``:``venue_port``; anyone else is ``wrong_source``) holds one or more whole
SoupBinTCP packets. Rules, packet by packet:

* the datagram ends inside a length prefix or before a packet's last byte:
  ``truncated``, and the cut packet is dropped;
* a length of 0 (no packet type) is ``runt_packet``; the rest of the datagram is
  skipped, since nothing tells where the next packet starts;
* packet types other than sequenced (``S``) and unsequenced (``U``) data — heartbeats,
  debug text, login answers — are ``other_packets``;
* a data packet's OUCH message whose type is not Accepted, Executed, Canceled or
  Rejected (or is empty) is ``unknown_type``;
* a message whose length disagrees with the table (and, for Accepted and Executed, with
  its appendage length) is ``bad_length``;
* the rest become one :class:`Answer` each (``answers``, and by type ``accepted``,
  ``executed``, ``canceled``, ``rejected``).

Every answer becomes an event record (``models.control.AnswerEvent``). Executed,
Canceled and Rejected also update the risk gate when the order is in the order table
(:class:`OrderTable`, written as ``ouch_tx`` sends each Enter) and ``to_gate`` is set —
the record's ``gate`` flag says so, and the host writes no report for such an answer:

| answer | report (``sym``, ``side`` of the order and) |
| --- | --- |
| Executed q, q <= open | ``filled = q``, ``released = q × order price`` |
| Canceled q, q <= open | ``canceled = q``, ``released = q × order price`` |
| Rejected, order not Accepted | ``canceled = open``, ``released = open × order price`` |

with ``closed`` when nothing is left open. An order not in the table (never sent, or
its slot reused by a later order) is ``unknown_order``; an execution or cancel beyond
what is open is ``bad_fill``; a Rejected after the Accepted (the venue refused our
Cancel: the order had gone) is ``late_reject``. None of these touches the gate.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from tick2trade.protocol import ouch, soupbintcp

ANSWER_TYPES = {"A": "accepted", "E": "executed", "C": "canceled", "J": "rejected"}
DATA_PACKETS = ("S", "U")
COUNTERS = ("datagrams", "wrong_source", "packets", "truncated", "runt_packet",
            "other_packets", "unknown_type", "bad_length", "answers", *ANSWER_TYPES.values(),
            "unknown_order", "bad_fill", "late_reject", "to_gate", "overflow",
            "records_lost")
ORDERS = 1024  # order table entries (UserRefNum modulo this)


@dataclass(frozen=True)
class Answer:
    """The fields of one answer the gateware keeps (see docs/control.md, record type 2)."""

    type: str
    user_ref: int
    quantity: int = 0
    price: int = 0  # Accepted, Executed (signed, 1/10000)
    code: int = 0  # Accepted: side; Executed: liquidity flag; Canceled: reason (ASCII)
    ref: int = 0  # Accepted: symbol (8 ASCII bytes as an integer); Executed: match
    # number; Rejected: reason
    tif: int = 0  # Accepted (ASCII)


def parse(payload: bytes, counters: Counter) -> list[Answer]:
    """The answers in one datagram's payload, counting what is not one."""
    out = []
    pos = 0
    while pos < len(payload):
        if pos + soupbintcp.LENGTH > len(payload):
            counters["truncated"] += 1
            break
        length = int.from_bytes(payload[pos:pos + 2], "big")
        if length == 0:
            counters["runt_packet"] += 1
            break
        body = payload[pos + 2:pos + 2 + length]
        if len(body) < length:
            counters["truncated"] += 1
            break
        pos += 2 + length
        counters["packets"] += 1
        if chr(body[0]) not in DATA_PACKETS:
            counters["other_packets"] += 1
            continue
        answer = decode(body[1:], counters)
        if answer is not None:
            out.append(answer)
    return out


def decode(msg: bytes, counters: Counter) -> Answer | None:
    mtype = chr(msg[0]) if msg else ""
    if mtype not in ANSWER_TYPES:
        counters["unknown_type"] += 1
        return None
    table = ouch.OUTBOUND[mtype]
    extra = len(msg) - table.length
    if ouch.has_appendage(table):
        f = table.fields["appendage_length"]
        ok = extra >= 0 and int.from_bytes(msg[f.offset:f.offset + 2], "big") == extra
    else:
        ok = extra == 0
    if not ok:
        counters["bad_length"] += 1
        return None
    m = ouch.decode_outbound(msg)
    counters["answers"] += 1
    counters[ANSWER_TYPES[mtype]] += 1
    if mtype == "A":
        symbol = int.from_bytes(msg[table.fields["symbol"].offset:][:8], "big")
        return Answer("A", m["user_ref"], m["quantity"], m["price"], ord(m["side"] or " "),
                      symbol, tif=ord(m["tif"] or " "))
    if mtype == "E":
        return Answer("E", m["user_ref"], m["quantity"], m["price"],
                      ord(m["liquidity"] or " "), m["match"])
    if mtype == "C":
        return Answer("C", m["user_ref"], m["quantity"], code=ord(m["reason"] or " "))
    return Answer("J", m["user_ref"], ref=m["reason"])


@dataclass
class Order:
    user_ref: int
    sym: int
    side: int  # 0 buy, 1 sell
    price: int
    open: int
    accepted: bool = False


@dataclass(frozen=True)
class GateReport:
    """What ``ouch_rx`` hands the risk gate (``gateware.risk.report_layout``)."""

    sym: int
    side: int
    filled: int = 0
    canceled: int = 0
    closed: int = 0
    released: int = 0


class OrderTable:
    """The orders ``ouch_tx`` sent, by UserRefNum modulo ``size``: a later order takes
    its slot over from an earlier one, whose answers are then ``unknown_order``."""

    def __init__(self, size: int = ORDERS):
        self.size = size
        self.slots: dict[int, Order] = {}

    def sent(self, user_ref: int, sym: int, side: int, price: int, quantity: int) -> None:
        self.slots[user_ref % self.size] = Order(user_ref, sym, side, price, quantity)

    def lookup(self, user_ref: int) -> Order | None:
        o = self.slots.get(user_ref % self.size)
        return o if o is not None and o.user_ref == user_ref and o.open else None

    def apply(self, a: Answer, counters: Counter) -> GateReport | None:
        """The gate's report for answer ``a`` (None: the gate is not touched)."""
        if a.type not in "AECJ":
            return None
        order = self.lookup(a.user_ref)
        if order is None:
            counters["unknown_order"] += 1
            return None
        if a.type == "A":
            order.accepted = True
            return None
        if a.type == "J":
            if order.accepted:
                counters["late_reject"] += 1
                return None
            done, filled = order.open, 0
        else:
            if a.quantity == 0 or a.quantity > order.open:
                counters["bad_fill"] += 1
                return None
            done, filled = a.quantity, a.quantity if a.type == "E" else 0
        order.open -= done
        return GateReport(order.sym, order.side, filled, done - filled, int(order.open == 0),
                          done * order.price)


@dataclass
class OuchRxModel:
    """Datagrams in (with their source), answers and gate reports out.

    ``records`` holds (Answer, gate, closed) per answer, in order: ``gate`` 1 when the
    gate took a report for it, ``closed`` 1 when that report closed the order.
    ``reports`` holds the gate reports in order. With ``to_gate`` off, answers only
    become records: the table is neither read nor changed (switch it between sessions,
    not during one)."""

    venue_ip: int
    venue_port: int
    to_gate: bool = True
    table: OrderTable = field(default_factory=OrderTable)
    counters: Counter = field(default_factory=lambda: Counter({k: 0 for k in COUNTERS}))
    records: list = field(default_factory=list)
    reports: list[GateReport] = field(default_factory=list)

    def datagram(self, src_ip: int, src_port: int, payload: bytes) -> list[GateReport]:
        """One datagram to the order port; returns the gate reports it caused."""
        c = self.counters
        c["datagrams"] += 1
        if (src_ip, src_port) != (self.venue_ip, self.venue_port):
            c["wrong_source"] += 1
            return []
        got = []
        for a in parse(payload, c):
            report = self.table.apply(a, c) if self.to_gate else None
            self.records.append((a, int(report is not None),
                                 report.closed if report is not None else 0))
            if report is not None:
                c["to_gate"] += 1
                got.append(report)
        self.reports += got
        return got
