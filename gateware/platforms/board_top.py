"""The top level of a board: PLL and resets, RGMII + MAC, the bridge between MAC and core
(``bridge.CoreBridge``), the core (``gateware.top.Top``), LEDs.

Clock domains: ``sync`` is 125 MHz from the ECP5 PLL (EHXPLLL) on the board's oscillator:
the MAC's transmit side, forwarded to the PHY as its TX clock; ``eth_rx`` is the PHY's
receive clock, the MAC's receive side. The core runs in ``sync`` at W = 8, or at a wider
``core_width`` in ``core``, a second PLL output at ``WIDE_CORE_HZ`` (the ECPIX-5's
default: W = 64 at 20.8 MHz, because the W = 8 core does not come near 125 MHz; see
docs/hardware.md). Received beats cross into the core's clock through an asynchronous
FIFO read every cycle it holds a beat, which is enough because the core takes beats
faster than the line brings them; a frame meets at most a beat of bubble, which the
lane-preserving stages take like any idle cycle. Control datagrams arrive and leave on
the same link as the feed (``Top``'s control endpoint), so the host reaches the board
through the switch port it is plugged into.

LEDs: ``link`` is the PHY's in-band link status, ``activity`` a frame in or out in the
last 2**22 core cycles (34 ms at 125 MHz, 201 ms at 20.8 MHz), ``kill`` the risk gate's
kill switch; each on a pin of its own, or taking turns on an array whose LEDs share
their colour lines (the ButterStick's, ``led_mux``).
"""

from amaranth import (
    Cat,
    ClockDomain,
    ClockSignal,
    Elaboratable,
    Instance,
    Module,
    ResetSignal,
    Signal,
)
from amaranth.hdl import DomainRenamer
from amaranth.lib import io, wiring
from amaranth.lib.cdc import (
    AsyncFFSynchronizer,
    FFSynchronizer,
    PulseSynchronizer,
    ResetSynchronizer,
)

from tick2trade.gateware.bytefield import counter_bank
from tick2trade.gateware.phy.mac import MacRx, MacTx
from tick2trade.gateware.models.phy import mac as mac_model
from tick2trade.gateware.phy.rgmii import Rgmii
from tick2trade.gateware.top import Top
from tick2trade.gateware.platforms.boards import Board
from tick2trade.gateware.platforms.bridge import CoreBridge
from tick2trade.gateware.platforms.led_mux import LedMux

CORE_HZ = 125e6
# A wide core's clock: the PLL's 625 MHz VCO / 30, 1.33x 1GbE line rate at W = 64. The
# reduced core placed at 26.9 MHz on the ECPIX-5 (docs/hardware.md); routing costs more.
WIDE_CORE_DIV = 30
WIDE_CORE_HZ = 625e6 / WIDE_CORE_DIV
ACTIVITY_BITS = 22  # 2**22 cycles: 34 ms at 125 MHz, 201 ms at 20.8 MHz
PHY_RESET_BITS = 20  # 8 ms of PHY reset after the PLL locks


def global_reset(m: Module, reset, domain: str) -> None:
    """``domain``'s reset: ``reset`` synchronized into it (asserted at once, released on a
    clock edge), then spread by a global buffer (DCCA) instead of the fabric. It reaches
    every flip-flop of the core; through the fabric it was among the nets the board
    build's router could not fit (docs/hardware.md)."""
    local, spread = Signal(name=f"{domain}_rst_local"), Signal(name=f"{domain}_rst")
    m.submodules[f"{domain}_reset"] = AsyncFFSynchronizer(reset, local, o_domain=domain)
    m.submodules[f"{domain}_reset_buffer"] = Instance("DCCA", i_CLKI=local, i_CE=1,
                                                      o_CLKO=spread)
    m.d.comb += ResetSignal(domain).eq(spread)


class BoardTop(Elaboratable):
    """Everything on the FPGA of ``board``; ``core_width`` overrides the board's, ``top``
    its ``BuildProfile`` (as ``BuildProfile.override`` takes them).

    ``core_width`` 8 runs the core in ``sync`` with the MAC (125 MHz). A wider core runs
    in its own domain ``core`` at ``WIDE_CORE_HZ`` from a second PLL output; the
    ``CoreBridge`` between MAC and core holds the gearbox and a clock-crossing FIFO each
    way: at W = 64 and 20.8 MHz the core has 1.33× the line rate, and the W = 8 core
    does not place at 125 MHz (docs/hardware.md).

    Members
    -------
    core : Top
    mac_rx, mac_tx : MacRx, MacTx — counted in ``core.mac_counters`` (the ``mac``
        registers).
    """

    def __init__(self, board: Board, core_width: int | None = None, **top):
        self.board = board
        self.core_width = core_width = core_width or board.core_width
        self.core = Top(data_width=core_width, **board.top.override(top).top_kwargs())
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
        wide = self.core_width != 8
        cd = "core" if wide else "sync"
        locked = Signal()
        outputs = {}
        if wide:
            m.domains.core = ClockDomain("core")
            div = round(b.pll.vco_hz(b.clock_hz) / WIDE_CORE_HZ)
            outputs = {"p_CLKOS_ENABLE": "ENABLED", "p_CLKOS_DIV": div,
                       "p_CLKOS_CPHASE": div // 2, "p_CLKOS_FPHASE": 0,
                       "o_CLKOS": ClockSignal("core")}
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
            i_PLLWAKESYNC=0, i_ENCLKOP=0, o_LOCK=locked, **outputs,
        )
        reset = ~locked
        if b.reset is not None:
            m.submodules.reset_button = button = io.Buffer("i", platform.request(
                b.reset, 0, dir="-"))
            reset = reset | button.i
        if wide:
            m.submodules.sync_reset = ResetSynchronizer(reset, domain="sync")
        global_reset(m, reset, cd)

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
        m.submodules.core = core = DomainRenamer(cd)(self.core) if wide else self.core
        m.submodules.bridge = bridge = CoreBridge(self.core_width, cd)
        m.submodules.mac_tx = mac_tx = self.mac_tx
        m.d.comb += [bridge.rx_bytes.valid.eq(mac_rx.frames.valid),
                     bridge.rx_bytes.payload.eq(mac_rx.frames.payload),
                     core.mac_rx.valid.eq(bridge.rx_beats.valid),
                     core.mac_rx.payload.eq(bridge.rx_beats.payload),
                     rgmii.tx.data.eq(mac_tx.gmii.data), rgmii.tx.en.eq(mac_tx.gmii.en),
                     rgmii.tx.er.eq(mac_tx.gmii.er)]
        wiring.connect(m, core.mac_tx, bridge.tx_beats)
        wiring.connect(m, bridge.tx_bytes, mac_tx.frames)

        # MAC counters, counted in the core's clock: an event from another domain crosses
        # as a pulse (one carrier event or frame each, many cycles apart)
        mac_count = {}
        for prefix, domain, events, names in (
                ("rx", "eth_rx", mac_rx.events, mac_model.RX_COUNTERS),
                ("tx", "sync", mac_tx.events, mac_model.TX_COUNTERS)):
            for name in names:
                if domain == cd:
                    mac_count[f"{prefix}_{name}"] = getattr(events, name)
                    continue
                pulse = PulseSynchronizer(i_domain=domain, o_domain=cd)
                m.submodules[f"{prefix}_{name}_cdc"] = pulse
                m.d.comb += pulse.i.eq(getattr(events, name))
                mac_count[f"{prefix}_{name}"] = pulse.o
        counting = Module()
        strobes = counter_bank(counting, mac_model.COUNTERS, core.mac_counters)
        counting.d.comb += [strobes[n].eq(pulse) for n, pulse in mac_count.items()]
        m.submodules.mac_counters = DomainRenamer(cd)(counting)

        # --- LEDs
        link = Signal()
        m.submodules.link_sync = FFSynchronizer(rgmii.status[0], link, o_domain=cd)
        activity = Signal(ACTIVITY_BITS)
        frame_seen = (core.mac_rx.valid & core.mac_rx.payload.first) | \
            (core.mac_tx.valid & core.mac_tx.ready & core.mac_tx.payload.first)
        with m.If(frame_seen):
            m.d[cd] += activity.eq((1 << ACTIVITY_BITS) - 1)
        with m.Elif(activity != 0):
            m.d[cd] += activity.eq(activity - 1)
        shown = {"link": link, "activity": activity != 0, "kill": core.kill}
        if b.led_select is None:
            for function, (resource, number, sub) in b.leds.items():
                port = platform.request(resource, number, dir="-")
                m.submodules[f"led_{function}"] = led = io.Buffer(
                    "o", getattr(port, sub) if sub else port)
                m.d.comb += led.o.eq(shown[function])
        else:
            muxed_leds(m, platform, b, shown, cd)
        return m


def muxed_leds(m: Module, platform, b: Board, shown: dict, domain: str) -> None:
    """``shown`` on an LED array sharing its colour lines (``Board.led_select``): the
    functions take turns on LEDs 0, 1, 2...; the array's other LEDs stay dark."""
    ((resource, number),) = {(r, n) for r, n, _ in b.leds.values()}
    port = platform.request(resource, number, dir="-")
    m.submodules.led_mux = mux = DomainRenamer(domain)(LedMux(len(b.leds)))
    m.d.comb += mux.states.eq(Cat(shown[function] for function in b.leds))
    m.submodules.led_select = select = io.Buffer("o", getattr(port, b.led_select))
    m.d.comb += select.o.eq(mux.select)
    colours = [sub for _, _, sub in b.leds.values()]
    for colour in dict.fromkeys(colours):
        m.submodules[f"led_{colour}"] = line = io.Buffer("o", getattr(port, colour))
        m.d.comb += line.o.eq(Cat(mux.lit[i] for i, c in enumerate(colours)
                                  if c == colour).any())

