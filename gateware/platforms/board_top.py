"""The top level of a board: PLL and resets, RGMII + MAC, the core (``gateware.top.Top``
at W = 8), LEDs.

Clock domains: ``sync`` is the core at 125 MHz from the ECP5 PLL (EHXPLLL) on the board's
oscillator; ``eth_rx`` is the PHY's receive clock. The MAC receive side runs in
``eth_rx`` and crosses into ``sync`` through a 16-deep asynchronous FIFO read every cycle
it holds a beat: both clocks are 125 MHz ± 100 ppm, so a frame meets at most a beat of
bubble, which the lane-preserving stages take like any idle cycle. Transmit runs in
``sync`` and forwards that clock to the PHY. Control datagrams arrive and leave on the
same link as the feed (``Top``'s control endpoint), so the host reaches the board through
the switch port it is plugged into.

LEDs: ``link`` is the PHY's in-band link status, ``activity`` a frame in or out in the
last ~34 ms, ``kill`` the risk gate's kill switch.
"""

from amaranth import ClockDomain, ClockSignal, Elaboratable, Instance, Module, Signal
from amaranth.hdl import DomainRenamer
from amaranth.lib import fifo, io
from amaranth.lib.cdc import FFSynchronizer, PulseSynchronizer, ResetSynchronizer

from ..bytefield import counter_bank
from ..mac import MacRx, MacTx, rx_beat_layout
from ..models import mac as mac_model
from ..rgmii import Rgmii
from ..top import Top
from .boards import Board

CORE_HZ = 125e6
ACTIVITY_BITS = 22  # 2**22 cycles at 125 MHz: 34 ms, long enough to see
PHY_RESET_BITS = 20  # 8 ms of PHY reset after the PLL locks


class BoardTop(Elaboratable):
    """Everything on the FPGA of ``board``; ``top`` overrides the board's ``Top``
    parameters (``data_width`` is fixed at 8).

    Members
    -------
    core : Top
    mac_rx, mac_tx : MacRx, MacTx — their counters are not in the register map yet.
    """

    def __init__(self, board: Board, **top):
        self.board = board
        self.core = Top(data_width=8, **{**board.top, **top})
        self.mac_rx = MacRx()
        self.mac_tx = MacTx()

    def elaborate(self, platform):
        m = Module()
        b = self.board

        # --- clocks and resets
        osc = platform.request(b.clock, 0, dir="-")
        m.submodules.osc = osc_buf = io.Buffer("i", osc)
        # The core clock is not constrained by name: the net's name after synthesis is
        # not the one Amaranth writes into the LPF (nextpnr dropped such a constraint),
        # and nextpnr derives the PLL output's 125 MHz from the oscillator's constraint.
        sync = ClockDomain("sync")
        m.domains.sync = sync
        locked = Signal()
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=str(b.clock_hz / 1e6),
            a_FREQUENCY_PIN_CLKOP=str(CORE_HZ / 1e6),
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED",
            p_CLKI_DIV=b.pll.clki_div, p_CLKOP_DIV=b.pll.clkop_div,
            p_CLKOP_CPHASE=b.pll.clkop_div // 2, p_CLKOP_FPHASE=0,
            p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=b.pll.clkfb_div,
            i_RST=0, i_STDBY=0, i_CLKI=osc_buf.i, o_CLKOP=sync.clk, i_CLKFB=sync.clk,
            i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
            i_PLLWAKESYNC=0, i_ENCLKOP=0, o_LOCK=locked,
        )
        reset = ~locked
        if b.reset is not None:
            m.submodules.reset_button = button = io.Buffer("i", platform.request(
                b.reset, 0, dir="-"))
            reset = reset | button.i
        m.submodules.sync_reset = ResetSynchronizer(reset, domain="sync")

        # --- Ethernet
        eth = platform.request("eth_rgmii", b.eth, dir="-")
        platform.add_clock_constraint(eth.rx_clk.io, CORE_HZ)
        m.submodules.rgmii = rgmii = Rgmii(eth, rx_domain="eth_rx", tx_domain="sync")
        m.domains.eth_rx = ClockDomain("eth_rx")
        m.d.comb += ClockSignal("eth_rx").eq(rgmii.rx_clk)
        m.submodules.eth_rx_reset = ResetSynchronizer(reset, domain="eth_rx")
        phy_reset = Signal(PHY_RESET_BITS + 1)
        with m.If(~phy_reset[-1]):
            m.d.sync += phy_reset.eq(phy_reset + 1)
        m.submodules.phy_reset = phy_rst = io.Buffer("o", eth.rst)
        m.d.comb += phy_rst.o.eq(~phy_reset[-1])

        m.submodules.mac_rx = mac_rx = DomainRenamer("eth_rx")(self.mac_rx)
        m.d.comb += [mac_rx.gmii.data.eq(rgmii.rx.data), mac_rx.gmii.en.eq(rgmii.rx.en),
                     mac_rx.gmii.er.eq(rgmii.rx.er)]
        layout = rx_beat_layout()
        m.submodules.rx_cdc = cdc = fifo.AsyncFIFO(width=layout.size, depth=16,
                                                   r_domain="sync", w_domain="eth_rx")
        m.d.comb += [cdc.w_data.eq(mac_rx.frames.payload.as_value()),
                     cdc.w_en.eq(mac_rx.frames.valid)]

        m.submodules.core = core = self.core
        beat = layout(cdc.r_data)
        m.d.comb += [cdc.r_en.eq(1), core.mac_rx.valid.eq(cdc.r_rdy),
                     core.mac_rx.payload.data.eq(beat.data), core.mac_rx.payload.be.eq(beat.be),
                     core.mac_rx.payload.first.eq(beat.first),
                     core.mac_rx.payload.last.eq(beat.last),
                     core.mac_rx.payload.abort.eq(beat.abort)]

        m.submodules.mac_tx = mac_tx = self.mac_tx
        m.d.comb += [mac_tx.frames.valid.eq(core.mac_tx.valid),
                     mac_tx.frames.payload.eq(core.mac_tx.payload),
                     core.mac_tx.ready.eq(mac_tx.frames.ready),
                     rgmii.tx.data.eq(mac_tx.gmii.data), rgmii.tx.en.eq(mac_tx.gmii.en),
                     rgmii.tx.er.eq(mac_tx.gmii.er)]

        # MAC counters, counted in the core clock: a receive event crosses as a pulse
        # (carrier events are many cycles apart)
        mac_count = {}
        for name in mac_model.RX_COUNTERS:
            sync_pulse = PulseSynchronizer(i_domain="eth_rx", o_domain="sync")
            m.submodules[f"rx_{name}_cdc"] = sync_pulse
            m.d.comb += sync_pulse.i.eq(getattr(mac_rx.events, name))
            mac_count[f"rx_{name}"] = sync_pulse.o
        for name in mac_model.TX_COUNTERS:
            mac_count[f"tx_{name}"] = getattr(mac_tx.events, name)
        strobes = counter_bank(m, mac_model.COUNTERS, core.mac_counters)
        m.d.comb += [strobes[n].eq(pulse) for n, pulse in mac_count.items()]

        # --- LEDs
        link = Signal()
        m.submodules.link_sync = FFSynchronizer(rgmii.status[0], link)
        activity = Signal(ACTIVITY_BITS)
        frame_seen = (core.mac_rx.valid & core.mac_rx.payload.first) | \
            (core.mac_tx.valid & core.mac_tx.ready & core.mac_tx.payload.first)
        with m.If(frame_seen):
            m.d.sync += activity.eq((1 << ACTIVITY_BITS) - 1)
        with m.Elif(activity != 0):
            m.d.sync += activity.eq(activity - 1)
        shown = {"link": link, "activity": activity != 0, "kill": core.kill}
        for function, (resource, number, sub) in b.leds.items():
            port = platform.request(resource, number, dir="-")
            m.submodules[f"led_{function}"] = led = io.Buffer(
                "o", getattr(port, sub) if sub else port)
            m.d.comb += led.o.eq(shown[function])
        return m

