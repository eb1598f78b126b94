"""Order entry frames: the golden model of ``gateware/trade/ouch_tx.py``.

An order leaves as one OUCH 5.0 message (Enter Order ``O`` without appendage, or Cancel
Order ``X``) in one SoupBinTCP Unsequenced Data packet (``U``) in one UDP datagram to the
venue — the first of the two order transports (UDP now, TCP with delegated sends later).
The frame is ``protocol.frames``' ``build_udp_frame`` of ``protocol.soupbintcp``'s
``encode`` of ``protocol.ouch``'s ``encode_inbound``: nothing here restates a layout.

Enter Order fields the strategy does not choose are fixed: display ``Y`` (visible),
capacity ``A`` (agency), intermarket sweep ``N``, cross type ``N`` (continuous market).
The ClOrdID names the order for people and logs: ``T``, the client tag in 4 and the
UserRefNum in 8 uppercase hex digits, then the alpha field's space padding (14 bytes).

User reference numbers: every Enter takes the next one (:attr:`OuchTxModel.next_user_ref`,
1 after reset, settable by the host); a Cancel names the order it cancels. A cancel-all
sweep sends Cancel (quantity 0) for each UserRefNum from the host's floor up to the last
one issued, at most ``MAX_CANCELS`` per sweep; the rest are counted as truncated.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from tick2trade.protocol import frames, ouch, soupbintcp
from tick2trade.protocol.itch import stock_int

CAPACITY_AGENCY = "A"
ISO_NO = "N"  # not an intermarket sweep order
CROSS_CONTINUOUS = "N"  # continuous market, no cross
ENTER_FIXED = {"display": ouch.DISPLAY_VISIBLE, "capacity": CAPACITY_AGENCY, "iso": ISO_NO,
               "cross_type": CROSS_CONTINUOUS}
"""Enter Order fields that are the same in every order the FPGA sends."""
FIRST_USER_REF = 1
MAX_CANCELS = 256
CLORDID_PREFIX = "T"


@dataclass(frozen=True)
class TxConfig:
    """Addresses of the order frames (the block's registers and the endpoint's own)."""

    venue_mac: bytes
    venue_ip: int
    venue_port: int
    src_mac: bytes
    src_ip: int
    src_port: int


@dataclass(frozen=True)
class Order:
    """An order as the risk gate hands it over (``gateware.ouch_tx.order_layout``).

    ``user_ref`` matters only for a cancel (the order to cancel); ``quantity`` is the new
    remaining quantity of a cancel (0: all of it). ``sym`` never reaches the wire.
    """

    cancel: bool = False
    user_ref: int = 0
    side: str = "B"
    quantity: int = 0
    stock: str = ""
    price: int = 0
    tif: str = ouch.TIF_DAY
    tag: int = 0
    sym: int = 0

    def fields(self) -> dict[str, int]:
        """The order as integer fields of ``order_layout`` (ASCII codes, stock as
        ``protocol.itch.stock_int``)."""
        return {"cancel": int(self.cancel), "user_ref": self.user_ref,
                "side": ord(self.side), "quantity": self.quantity,
                "stock": stock_int(self.stock), "price": self.price, "tif": ord(self.tif),
                "tag": self.tag, "sym": self.sym}


def clordid(tag: int, user_ref: int) -> str:
    return f"{CLORDID_PREFIX}{tag:04X}{user_ref:08X}"


def ouch_message(order: Order, user_ref: int) -> bytes:
    """The OUCH message of ``order`` sent as UserRefNum ``user_ref``."""
    if order.cancel:
        return ouch.encode_inbound("X", user_ref=user_ref, quantity=order.quantity)
    return ouch.encode_inbound(
        "O", user_ref=user_ref, side=order.side, quantity=order.quantity,
        symbol=order.stock, price=order.price, tif=order.tif,
        clordid=clordid(order.tag, user_ref), **ENTER_FIXED)


def order_frame(cfg: TxConfig, order: Order, user_ref: int) -> bytes:
    """The whole Ethernet frame (without FCS, padded to 60 bytes) of ``order``."""
    return frames.build_udp_frame(
        cfg.venue_ip, cfg.venue_port,
        soupbintcp.encode("U", message=ouch_message(order, user_ref)),
        src_ip=cfg.src_ip, src_port=cfg.src_port, dst_mac=cfg.venue_mac,
        src_mac=cfg.src_mac)


class OuchTxModel:
    """The block's sequence: which UserRefNum each frame carries, what a sweep cancels.

    Which frame goes next is the caller's choice, as it is the timing's in the gateware:
    an order waiting at a frame boundary goes first, else the sweep's next Cancel.
    """

    def __init__(self, cfg: TxConfig, max_cancels: int = MAX_CANCELS):
        self.cfg = cfg
        self.max_cancels = max_cancels
        self.next_user_ref = FIRST_USER_REF
        self.sweep: deque[int] = deque()  # UserRefNums the sweep has yet to cancel
        self.counters = dict.fromkeys(("enters", "cancels", "frames", "cancel_sweeps",
                                       "cancels_truncated"), 0)

    def send(self, order: Order | None) -> tuple[int, bytes]:
        """(UserRefNum, frame) of ``order``, or of the sweep's next Cancel if None."""
        if order is None:
            order = Order(cancel=True, user_ref=self.sweep.popleft(), quantity=0)
        if order.cancel:
            user_ref = order.user_ref
            self.counters["cancels"] += 1
        else:
            user_ref = self.next_user_ref
            self.next_user_ref = (user_ref + 1) & 0xFFFFFFFF
            self.counters["enters"] += 1
        self.counters["frames"] += 1
        return user_ref, order_frame(self.cfg, order, user_ref)

    def set_user_ref(self, value: int) -> None:
        self.next_user_ref = value

    def cancel_all(self, floor: int) -> None:
        """Start a sweep from ``floor`` to the last UserRefNum issued; ignored while a
        sweep still has Cancels to send."""
        if self.sweep:
            return
        span = max(0, self.next_user_ref - floor)
        self.counters["cancel_sweeps"] += 1
        self.counters["cancels_truncated"] += max(0, span - self.max_cancels)
        self.sweep.extend(range(floor, floor + min(span, self.max_cancels)))
