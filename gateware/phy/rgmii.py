"""RGMII: the PHY's 4-bit double-data-rate pins turned into one GMII byte per cycle.

RGMII 1000BASE-T carries a byte per 125 MHz clock: bits 3:0 on the rising edge, bits 7:4 on
the falling edge. ``RX_CTL``/``TX_CTL`` carry the data-valid on the rising edge and
valid XOR error on the falling edge (so an idle, error-free line holds it low on both).
Between frames (valid and error low) the PHY puts its link status on ``RXD``: bit 0 link
up, bits 2:1 speed (2 = 1000 Mb/s), bit 3 full duplex — the in-band status that lets a
board show its link without talking MDIO.

The DDR flip-flops are the platform's (``amaranth.lib.io.DDRBuffer``, IDDRX1F/ODDRX1F on
ECP5): capture and launch happen in the I/O cells, so the only timing the fabric sees is
a plain 125 MHz single-edge path.
"""

from amaranth import Module
from amaranth.lib import io, wiring
from amaranth.lib.wiring import In, Out

from tick2trade.gateware.interfaces import gmii_signature


def _pin(pins, *names):
    """amaranth-boards spells the control pins ``rx_ctl`` on some boards, ``rx_ctrl`` on
    others."""
    for name in names:
        if hasattr(pins, name):
            return getattr(pins, name)
    raise AttributeError(f"RGMII resource has none of {names}")


class Rgmii(wiring.Component):
    """The RGMII pins of one PHY.

    Receive runs in ``rx_domain``, which the board defines and clocks with ``rx_clk``
    (the PHY's ``RX_CLK``), with a reset synchronised into it. Transmit runs in ``tx_domain``,
    whose clock is forwarded to the PHY as ``TX_CLK``, edge-aligned with the data: the PHY
    is expected to add the 2 ns TX delay itself (the RGMII-ID option), as it is expected
    to delay ``RX_CLK``.

    Parameters
    ----------
    pins : the ``eth_rgmii`` resource requested with ``dir="-"``.
    rx_domain, tx_domain : str

    Members
    -------
    rx_clk : Out(1) — the PHY's receive clock.
    rx : Out(gmii_signature()) — in ``rx_domain``, one cycle after the I/O cells.
    tx : In(gmii_signature()) — in ``tx_domain``.
    status : Out(4) — the last in-band status seen between frames (bit 0: link up).
    """

    def __init__(self, pins, rx_domain: str = "eth_rx", tx_domain: str = "sync"):
        self._pins = pins
        self._rx_domain, self._tx_domain = rx_domain, tx_domain
        super().__init__({"rx_clk": Out(1), "rx": Out(gmii_signature()), "tx": In(gmii_signature()),
                          "status": Out(4)})

    def elaborate(self, platform):
        m = Module()
        pins, rxd, txd = self._pins, self._rx_domain, self._tx_domain

        m.submodules.rx_clk = rx_clk = io.Buffer("i", pins.rx_clk)
        m.d.comb += self.rx_clk.eq(rx_clk.i)

        m.submodules.rx_data = rx_data = io.DDRBuffer("i", pins.rx_data, i_domain=rxd)
        m.submodules.rx_ctl = rx_ctl = io.DDRBuffer("i", _pin(pins, "rx_ctl", "rx_ctrl"),
                                                    i_domain=rxd)
        rx_en, rx_en_xor_er = rx_ctl.i[0], rx_ctl.i[1]
        # one register in the fabric after the I/O cells: the MAC's first decisions (SFD,
        # the FCS's XOR trees) then start from a flip-flop placed beside them, not from
        # a pin at the die's edge
        m.d[rxd] += [self.rx.data.eq(rx_data.i[0] | (rx_data.i[1] << 4)),
                     self.rx.en.eq(rx_en), self.rx.er.eq(rx_en ^ rx_en_xor_er)]
        with m.If(~rx_en & ~rx_en_xor_er):
            m.d[rxd] += self.status.eq(rx_data.i[0])

        m.submodules.tx_data = tx_data = io.DDRBuffer("o", pins.tx_data, o_domain=txd)
        m.submodules.tx_ctl = tx_ctl = io.DDRBuffer("o", _pin(pins, "tx_ctl", "tx_ctrl"),
                                                    o_domain=txd)
        m.submodules.tx_clk = tx_clk = io.DDRBuffer("o", pins.tx_clk, o_domain=txd)
        m.d.comb += [tx_data.o[0].eq(self.tx.data[:4]), tx_data.o[1].eq(self.tx.data[4:]),
                     tx_ctl.o[0].eq(self.tx.en), tx_ctl.o[1].eq(self.tx.en ^ self.tx.er),
                     tx_clk.o[0].eq(1), tx_clk.o[1].eq(0)]
        return m
