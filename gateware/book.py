"""``book``: the L3 order book — order table, price levels, sorted top N, update stream.

Golden model: :class:`gateware.models.book.BookModel` with the same ``n``, ``depth``,
``capacity`` and ``ways``; its docstring states the ITCH rules and the capacity rules
(bucket overflow, level-store limit, untracked orders), which this file implements.

Order table
    ``capacity // ways`` buckets of ``ways`` entries (valid, tag, symbol, side, price,
    shares) in one block RAM row each, so a lookup is one read and every way is compared
    at once; an insert takes the first free way. The bucket is the reference folded by
    XOR (``models.book.bucket_of``), the tag the rest of the reference. A full bucket
    refuses the add (``table_full``): bounded work per event, no probe chains, no
    deletion tombstones; with sequential venue references and 4 ways the table fills to
    its capacity before a bucket overflows. The price is kept per order because Executed,
    Cancel and Delete do not carry it.

Level store
    One block RAM row per (symbol, side) holding ``depth`` levels (price, shares, orders)
    sorted best first, their count, the side's limit and its untracked-order count. An
    event reads the row, a single-cycle compare of the price against every level finds
    the level (or the insert position), and the row is written back shifted as needed.
    The row is wide and shallow (``2 * symbols`` rows), so block RAMs are spent on width:
    up to 512 rows (256 symbols) cost the same as 64 symbols.

Schedule (cycles; the next event's reads are issued in the last cycle of the current
one, read ports are transparent to the writes of that cycle)
    * issue: table read at the bucket of the reference; level row of (symbol, side) from
      the event for an add.
    * lookup: the bucket is out. An add finds its free way, and the level row is out too:
      levels, table and update are written in this cycle (an add is 1 cycle). A reduce
      (E, C, X, D, U) finds its order, writes the bucket back and reads the level row of
      the order's (symbol, side).
    * level: the reduce's level row is out; levels and update are written (2 cycles).
      A replace then issues the add of its new reference (3 cycles in all).
    Events that do not touch the book (trades, system events, ...) take one cycle.

Updates go through a FIFO; an event is only taken while it has room for two (a replace
makes two), so the consumer may stall the book, and the book stalls the event stream.

Prints (``prints``, for the trade tap; ``models.book`` "Prints")
    An E or C that finds its order in the lookup cycle is a print at the order's price
    (E) or its own (C), the order's symbol and side; a P or a Q is one as it is taken
    (they do not touch the book). Both are registered: ``prints`` is valid the cycle after, never
    twice in a cycle (a lookup that finds its order leads to the level cycle, in which
    no event is taken), and the schedule above does not change. ``print_misses``
    strobes, likewise a cycle late, the executions that are no print.

Clearing (``clear.stb`` with ``all`` or a symbol) waits for the current event, then
sweeps the order table one bucket per cycle (dropping the entries of the symbol, or all)
and the level rows, and publishes one ``CLEAR`` update; events wait meanwhile (``busy``).
"""

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for

from tick2trade.gateware.bytefield import counter_bank
from tick2trade.gateware.interfaces import (PRINT_MISSES, BookAction, ItchType, event_layout,
                                            print_layout, sym_bits, update_layout)
from tick2trade.gateware.models.book import BOOK_COUNTERS

LEVEL = data.StructLayout({"price": 32, "shares": 32, "orders": 16})


def side_layout(depth: int) -> data.StructLayout:
    return data.StructLayout({
        "levels": data.ArrayLayout(LEVEL, depth), "count": bits_for(depth),
        "limited": 1, "limit": 32, "untracked": 32,
    })


def entry_layout(symbols: int, index_bits: int) -> data.StructLayout:
    return data.StructLayout({"valid": 1, "tag": 64 - index_bits, "sym": sym_bits(symbols),
                              "side": 1, "price": 32, "shares": 32})


def clear_layout(symbols: int) -> data.StructLayout:
    """A host clear request, ``stb`` high for one cycle."""
    return data.StructLayout({"stb": 1, "all": 1, "sym": sym_bits(symbols)})


def fold(ref, index_bits: int):
    """``models.book.bucket_of`` in gateware."""
    out = Const(0, index_bits)
    for shift in range(0, 64, index_bits):
        out = out ^ ref[shift:shift + index_bits]
    return out[:index_bits]


class Book(wiring.Component):
    """The order book of ``symbols`` instruments.

    Parameters
    ----------
    symbols : int
        Instruments (the event's ``sym``).
    capacity, ways : int
        Orders in the table and entries per bucket; ``capacity // ways`` must be a power
        of two.
    n : int
        Levels published per side (the top N).
    depth : int
        Levels tracked per side (``depth >= n``).
    update_depth : int
        Update FIFO entries.

    Members
    -------
    events : In(stream.Signature(event_layout(symbols)))
        Normalized ITCH events (the receive path's output).
    updates : Out(stream.Signature(update_layout(symbols, n)))
        Book updates, in event order.
    prints : Out(stream.Signature(print_layout(symbols), always ready))
        Every print of the events, in event order, valid for one cycle.
    print_misses : Out(PRINT_MISSES)
        One-cycle strobes: an E or C on an unknown reference (``unpriced``), a C whose
        printable byte is not 'Y' (``non_printable``).
    clear : In(clear_layout(symbols))
        Host clear request.
    busy : Out(1)
        A clear is pending or running.
    occupancy : Out
        Orders in the table.
    counters : Out(StructLayout)
        ``models.book.BOOK_COUNTERS``, 32-bit wrapping.
    """

    def __init__(self, symbols: int = 64, capacity: int = 16384, ways: int = 4, n: int = 8,
                 depth: int = 16, update_depth: int = 16):
        buckets = capacity // ways
        if capacity % ways or buckets & (buckets - 1) or buckets < 2:
            raise ValueError(f"capacity {capacity}: ways ({ways}) times a power of two ≥ 2")
        if depth < n:
            raise ValueError(f"depth {depth} < n {n}")
        if update_depth < 4:
            raise ValueError("update_depth must be at least 4")
        self.symbols, self.capacity, self.ways = symbols, capacity, ways
        self.n, self.depth, self.update_depth = n, depth, update_depth
        self.buckets = buckets
        self.index_bits = buckets.bit_length() - 1
        super().__init__({
            "events": In(stream.Signature(event_layout(symbols))),
            "updates": Out(stream.Signature(update_layout(symbols, n))),
            "prints": Out(stream.Signature(print_layout(symbols), always_ready=True)),
            "print_misses": Out(PRINT_MISSES),
            "clear": In(clear_layout(symbols)),
            "busy": Out(1),
            "occupancy": Out(bits_for(capacity)),
            "counters": Out(data.StructLayout({c: 32 for c in BOOK_COUNTERS})),
            "peek_select": In(data.StructLayout({"side": 1, "sym": sym_bits(symbols)})),
            "peek": Out(side_layout(depth)),
        })

    def registers(self):
        """The book's registers: counters, occupancy, the clear strobe and its busy flag,
        and a window onto one (symbol, side)'s level row (``peek_select`` → ``peek``,
        refreshed in every cycle the book is not reading a row for an event: two cycles
        after the select on an idle book)."""
        from tick2trade.gateware.registers import RegisterBlock

        regs = RegisterBlock("book", "Order book: order table, price levels, top N.")
        regs.struct("counters", self.counters, "ro", "32-bit wrapping counter")
        regs.ro("occupancy", self.occupancy, "orders in the table")
        regs.ro("busy", self.busy, "a clear is pending or sweeping (events wait)")
        regs.pulse("clear", self.clear, "set stb=1 with all=1 (every symbol) or a sym: "
                   "forget its orders and levels; one CLEAR update follows")
        regs.rw("peek_select", self.peek_select, "(sym, side) whose level row peek shows")
        regs.struct("peek", self.peek, "ro", "the selected level row (best first, count "
                    "valid, limit/untracked as in models.book)")
        return regs

    def elaborate(self, platform):
        m = Module()
        S, D, N, W, k = self.symbols, self.depth, self.n, self.ways, self.index_bits
        sb = sym_bits(S)
        inc = counter_bank(m, BOOK_COUNTERS, self.counters)

        entry = entry_layout(S, k)
        side_shape = side_layout(D)
        m.submodules.table = table = memory.Memory(
            shape=data.ArrayLayout(entry, W), depth=self.buckets, init=[])
        t_wr = table.write_port()
        t_rd = table.read_port(transparent_for=(t_wr,))
        m.submodules.store = store = memory.Memory(shape=side_shape, depth=2 * S, init=[])
        s_wr = store.write_port()
        s_rd = store.read_port(transparent_for=(s_wr,))
        # The host's window onto a level row shares the events' read port (a second read
        # port would double the level store's block RAM): in every cycle the book does
        # not read a row for an event, it reads the selected one into ``peek``.
        s_rd_used = Signal()
        peek_pending = Signal()
        peek = Signal.like(self.peek)
        m.d.comb += [s_rd.addr.eq(self.peek_select.as_value()), self.peek.eq(peek)]
        m.d.sync += peek_pending.eq(~s_rd_used)
        with m.If(peek_pending):
            m.d.sync += peek.eq(s_rd.data)

        upd_shape = update_layout(S, N)
        m.submodules.upd_fifo = q = fifo.SyncFIFOBuffered(width=upd_shape.size,
                                                          depth=self.update_depth)
        upd = Signal(upd_shape)
        upd_valid = Signal()
        m.d.comb += [q.w_data.eq(upd), q.w_en.eq(upd_valid),
                     self.updates.payload.eq(q.r_data), self.updates.valid.eq(q.r_rdy),
                     q.r_en.eq(self.updates.ready)]
        room = Signal()
        m.d.comb += room.eq(q.level <= self.update_depth - 3)

        occupancy = Signal(bits_for(self.capacity))
        m.d.comb += self.occupancy.eq(occupancy)

        IDLE, LOOKUP, LEVEL, SWEEP, SWEEP_LEVELS, SWEEP_END = range(6)
        state = Signal(range(6))

        # --- the operation in flight -----------------------------------------------
        op_add = Signal()  # add (else reduce)
        op_ref = Signal(64)
        op_sym = Signal(sb)
        op_side = Signal()
        op_price = Signal(32)
        op_shares = Signal(32)  # add: shares; reduce: shares to take off
        op_all = Signal()  # reduce: the whole order (D, U)
        op_chain = Signal()  # U: then add new_ref
        op_new_ref = Signal(64)
        op_new_price = Signal(32)
        op_new_shares = Signal(32)
        op_exec = Signal()  # E or C: a print when the order is found
        op_with_price = Signal()  # C: at op_price
        op_printable = Signal()
        op_match = Signal(64)
        # latched by a reduce's lookup for its level cycle
        r_sym = Signal(sb)
        r_side = Signal()
        r_price = Signal(32)
        r_take = Signal(32)
        r_gone = Signal()

        # --- issuing the next operation (from IDLE, or in the last cycle of one) -----
        can_start = Signal()  # the current state is done this cycle
        chain = Signal()  # a replace's add is issued instead of taking an event
        clear_pending = Signal()
        clear_all = Signal()
        clear_sym = Signal(sb)

        ev = self.events.payload
        t = ev.type
        T = ItchType
        is_add = (t == T.ADD_ORDER) | (t == T.ADD_ORDER_MPID)
        is_reduce = ((t == T.ORDER_EXECUTED) | (t == T.ORDER_EXECUTED_WITH_PRICE)
                     | (t == T.ORDER_CANCEL) | (t == T.ORDER_DELETE) | (t == T.ORDER_REPLACE))
        take_event = Signal()
        m.d.comb += [
            self.events.ready.eq(can_start & ~chain & room & ~clear_pending),
            take_event.eq(self.events.valid & self.events.ready),
        ]
        with m.If(take_event):
            m.d.comb += [
                inc["adds"].eq(is_add),
                inc["executes"].eq((t == T.ORDER_EXECUTED) | (t == T.ORDER_EXECUTED_WITH_PRICE)),
                inc["cancels"].eq(t == T.ORDER_CANCEL),
                inc["deletes"].eq(t == T.ORDER_DELETE),
                inc["replaces"].eq(t == T.ORDER_REPLACE),
            ]

        iss = Signal()
        iss_ref = Signal(64)
        iss_sym = Signal(sb)
        iss_side = Signal()
        with m.If(chain):
            m.d.comb += [iss.eq(1), iss_ref.eq(op_new_ref), iss_sym.eq(r_sym),
                         iss_side.eq(r_side)]
            m.d.sync += [op_add.eq(1), op_ref.eq(op_new_ref), op_sym.eq(r_sym),
                         op_side.eq(r_side), op_price.eq(op_new_price),
                         op_shares.eq(op_new_shares), op_chain.eq(0)]
        with m.Elif(take_event & (is_add | is_reduce)):
            m.d.comb += [iss.eq(1), iss_ref.eq(ev.order_ref), iss_sym.eq(ev.sym),
                         iss_side.eq(ev.side == ord("S"))]
            m.d.sync += [op_add.eq(is_add), op_ref.eq(ev.order_ref), op_sym.eq(ev.sym),
                         op_side.eq(ev.side == ord("S")), op_price.eq(ev.price),
                         op_shares.eq(ev.shares),
                         op_all.eq((t == T.ORDER_DELETE) | (t == T.ORDER_REPLACE)),
                         op_chain.eq(t == T.ORDER_REPLACE), op_new_ref.eq(ev.new_ref),
                         op_new_price.eq(ev.price), op_new_shares.eq(ev.shares),
                         op_exec.eq((t == T.ORDER_EXECUTED)
                                    | (t == T.ORDER_EXECUTED_WITH_PRICE)),
                         op_with_price.eq(t == T.ORDER_EXECUTED_WITH_PRICE),
                         op_printable.eq((t != T.ORDER_EXECUTED_WITH_PRICE)
                                         | (ev.code == ord("Y"))),
                         op_match.eq(ev.match)]
        with m.If(iss):
            m.d.comb += [t_rd.addr.eq(fold(iss_ref, k)), s_rd.addr.eq(Cat(iss_side, iss_sym)),
                         s_rd_used.eq(1)]
            m.d.sync += state.eq(LOOKUP)
        with m.Elif(can_start):
            m.d.sync += state.eq(IDLE)

        # --- the bucket ------------------------------------------------------------
        row = t_rd.data
        tag = op_ref[k:]
        match = Signal(W)
        free = Signal(W)
        first_free = Signal(W)  # one-hot
        m.d.comb += [match[w].eq(row[w].valid & (row[w].tag == tag)) for w in range(W)]
        m.d.comb += [free[w].eq(~row[w].valid) for w in range(W)]
        m.d.comb += first_free.eq(free & -free)
        hit = Signal(entry)  # the matching entry (at most one way matches)
        for w in range(W):
            with m.If(match[w]):
                m.d.comb += hit.eq(row[w])
        take = Signal(32)
        overfill = Signal()
        m.d.comb += [
            overfill.eq(~op_all & (op_shares > hit.shares)),
            take.eq(Mux(op_all | overfill, hit.shares, op_shares)),
        ]
        new_row = Signal.like(row)
        m.d.comb += [t_wr.addr.eq(fold(op_ref, k)), t_wr.data.eq(new_row),
                     new_row.eq(row)]

        # --- prints: a found E/C in its lookup cycle, a P/Q as it is taken; a cycle late -
        looked_up = (state == LOOKUP) & ~op_add & op_exec
        found_print = looked_up & op_printable & match.any()
        trade = take_event & ((t == T.TRADE) | (t == T.CROSS_TRADE))
        pr = self.prints.payload
        m.d.sync += [
            self.prints.valid.eq(found_print | trade),
            self.print_misses.unpriced.eq(looked_up & op_printable & ~match.any()),
            self.print_misses.non_printable.eq(looked_up & ~op_printable),
        ]
        with m.If(found_print):
            m.d.sync += [pr.sym.eq(hit.sym), pr.side.eq(hit.side),
                         pr.kind.eq(Mux(op_with_price, T.ORDER_EXECUTED_WITH_PRICE.value,
                                        T.ORDER_EXECUTED.value)),
                         pr.price.eq(Mux(op_with_price, op_price, hit.price)),
                         pr.shares.eq(op_shares), pr.match.eq(op_match)]
        with m.Else():
            m.d.sync += [pr.sym.eq(ev.sym), pr.side.eq(ev.side == ord("S")),
                         pr.kind.eq(t), pr.price.eq(ev.price), pr.shares.eq(ev.shares),
                         pr.match.eq(ev.match)]

        # --- the level computation (lookup of an add, level cycle of a reduce) ------
        lc_go = Signal()
        lc_add = Signal()
        lc_sym = Signal(sb)
        lc_side = Signal()
        lc_price = Signal(32)
        lc_shares = Signal(32)  # add: shares; reduce: take
        lc_gone = Signal()
        with m.If(state == LOOKUP):
            m.d.comb += [lc_add.eq(1), lc_sym.eq(op_sym), lc_side.eq(op_side),
                         lc_price.eq(op_price), lc_shares.eq(op_shares)]
        with m.Else():
            m.d.comb += [lc_sym.eq(r_sym), lc_side.eq(r_side), lc_price.eq(r_price),
                         lc_shares.eq(r_take), lc_gone.eq(r_gone)]
        self._level_unit(m, s_rd.data, s_wr, lc_go, lc_add, lc_sym, lc_side, lc_price,
                         lc_shares, lc_gone, upd, upd_valid, inc)

        # --- clear requests --------------------------------------------------------
        with m.If(self.clear.stb & ~clear_pending):
            m.d.sync += [clear_pending.eq(1), clear_all.eq(self.clear.all),
                         clear_sym.eq(self.clear.sym)]
        sweep = Signal(max(k, (2 * S - 1).bit_length()) + 1)
        m.d.comb += self.busy.eq(clear_pending)

        # --- the schedule ------------------------------------------------------------
        with m.Switch(state):
            with m.Case(IDLE):
                with m.If(clear_pending & room):
                    m.d.comb += t_rd.addr.eq(0)
                    m.d.sync += [sweep.eq(0), state.eq(SWEEP)]
                with m.Else():
                    m.d.comb += can_start.eq(1)

            with m.Case(LOOKUP):
                with m.If(op_add):
                    with m.If(match.any()):
                        m.d.comb += [inc["duplicate_ref"].eq(1), can_start.eq(1)]
                    with m.Elif(~free.any()):
                        m.d.comb += [inc["table_full"].eq(1), can_start.eq(1)]
                    with m.Else():
                        for w in range(W):
                            with m.If(first_free[w]):
                                m.d.comb += [new_row[w].valid.eq(1), new_row[w].tag.eq(tag),
                                             new_row[w].sym.eq(op_sym),
                                             new_row[w].side.eq(op_side),
                                             new_row[w].price.eq(op_price),
                                             new_row[w].shares.eq(op_shares)]
                        m.d.comb += [t_wr.en.eq(1), lc_go.eq(1), can_start.eq(1)]
                        m.d.sync += occupancy.eq(occupancy + 1)
                with m.Elif(~match.any()):
                    m.d.comb += [inc["unknown_ref"].eq(1), can_start.eq(1)]
                with m.Else():
                    gone = hit.shares == take
                    for w in range(W):
                        with m.If(match[w]):
                            m.d.comb += [new_row[w].shares.eq(hit.shares - take),
                                         new_row[w].valid.eq(~gone)]
                    m.d.comb += [t_wr.en.eq(1), inc["overfill"].eq(overfill),
                                 s_rd.addr.eq(Cat(hit.side, hit.sym)), s_rd_used.eq(1)]
                    m.d.sync += [r_sym.eq(hit.sym), r_side.eq(hit.side),
                                 r_price.eq(hit.price), r_take.eq(take), r_gone.eq(gone),
                                 occupancy.eq(occupancy - gone), state.eq(LEVEL)]

            with m.Case(LEVEL):
                m.d.comb += lc_go.eq(1)
                with m.If(op_chain):
                    m.d.comb += chain.eq(1)
                with m.Else():
                    m.d.comb += can_start.eq(1)

            with m.Case(SWEEP):
                # t_rd.data is bucket `sweep`: drop the cleared entries, read the next
                dropped = Signal(W)
                for w in range(W):
                    m.d.comb += dropped[w].eq(row[w].valid
                                              & (clear_all | (row[w].sym == clear_sym)))
                    m.d.comb += new_row[w].valid.eq(row[w].valid & ~dropped[w])
                m.d.comb += [t_wr.addr.eq(sweep), t_wr.en.eq(1), t_rd.addr.eq(sweep + 1)]
                m.d.sync += [occupancy.eq(occupancy - sum(dropped[w] for w in range(W))),
                             sweep.eq(sweep + 1)]
                with m.If(sweep == self.buckets - 1):
                    m.d.sync += [sweep.eq(0), state.eq(SWEEP_LEVELS)]

            with m.Case(SWEEP_LEVELS):
                m.d.comb += [s_wr.addr.eq(sweep), s_wr.data.eq(0),
                             s_wr.en.eq(clear_all | (sweep[1:] == clear_sym))]
                m.d.sync += sweep.eq(sweep + 1)
                with m.If(sweep == 2 * S - 1):
                    m.d.sync += state.eq(SWEEP_END)

            with m.Case(SWEEP_END):
                m.d.comb += [upd_valid.eq(1), upd.action.eq(BookAction.CLEAR), upd.all_syms.eq(clear_all),
                             upd.sym.eq(Mux(clear_all, 0, clear_sym)),
                             inc["clears"].eq(1), inc["updates"].eq(1)]
                m.d.sync += [clear_pending.eq(0), state.eq(IDLE)]
        return m

    def _level_unit(self, m, old, s_wr, go, add, sym, side, price, shares, gone, upd,
                    upd_valid, inc):
        """Apply one order's change to the level row ``old`` of (sym, side); write the row
        and publish the update when ``go``."""
        D, N = self.depth, self.n
        levels = old.levels
        valid = [Signal(name=f"lv_valid{j}") for j in range(D)]
        eq = Signal(D)
        ahead = Signal(D)  # level j is better than the price
        for j in range(D):
            p = levels[j].price
            m.d.comb += [
                valid[j].eq(j < old.count),
                eq[j].eq(valid[j] & (p == price)),
                ahead[j].eq(valid[j] & Mux(side, p < price, p > price)),
            ]
        found = eq.any()
        pos = Signal(range(D + 1))  # insert position: levels ahead form a prefix
        m.d.comb += pos.eq(sum(ahead[j] for j in range(D)))
        fidx = Signal(range(D))
        at = Signal(LEVEL)  # the level found
        for j in range(D):
            with m.If(eq[j]):
                m.d.comb += [fidx.eq(j), at.eq(levels[j])]
        beyond = old.limited & ~Mux(side, price < old.limit, price > old.limit)

        new = Signal.like(old)
        m.d.comb += new.eq(old)
        mod = Signal(LEVEL)  # the found level after the change
        m.d.comb += [mod.price.eq(price),
                     mod.shares.eq(Mux(add, at.shares + shares, at.shares - shares)),
                     mod.orders.eq(Mux(add, at.orders + 1, at.orders - gone))]
        ins = Signal(LEVEL)
        m.d.comb += [ins.price.eq(price), ins.shares.eq(shares), ins.orders.eq(1)]
        zero = Const(0, LEVEL.size)

        action = Signal(2)
        level = Signal(range(D + 1))
        out = Signal(LEVEL)
        publish = Signal()
        with m.If(found):
            with m.If(~add & (mod.orders == 0)):  # the level empties: close it
                for j in range(D):
                    nxt = levels[j + 1] if j + 1 < D else zero
                    with m.If(j >= fidx):
                        m.d.comb += new.levels[j].eq(nxt)
                m.d.comb += [new.count.eq(old.count - 1), action.eq(BookAction.DELETE),
                             level.eq(fidx), publish.eq(fidx < N),
                             out.eq(Mux(old.count - 1 >= N, new.levels[N - 1], 0))]
            with m.Else():
                for j in range(D):
                    with m.If(eq[j]):
                        m.d.comb += new.levels[j].eq(mod)
                m.d.comb += [action.eq(BookAction.MODIFY), level.eq(fidx), out.eq(mod),
                             publish.eq((fidx < N) & (add | (shares != 0) | gone))]
        with m.Elif(add & beyond):
            m.d.comb += [new.untracked.eq(old.untracked + 1), inc["untracked"].eq(go)]
        with m.Elif(add):  # a new level at pos
            for j in range(D):
                prev = levels[j - 1] if j else zero
                with m.If(j == pos):
                    m.d.comb += new.levels[j].eq(ins)
                with m.Elif(j > pos):
                    m.d.comb += new.levels[j].eq(prev)
            with m.If(old.count == D):  # full: the worst level (maybe the new one) goes
                refused = pos == D
                m.d.comb += [new.limited.eq(1),
                             new.limit.eq(Mux(refused, price, levels[D - 1].price)),
                             new.untracked.eq(old.untracked
                                              + Mux(refused, 1, levels[D - 1].orders)),
                             inc["levels_dropped"].eq(go)]
            with m.Else():
                m.d.comb += new.count.eq(old.count + 1)
            m.d.comb += [action.eq(BookAction.INSERT), level.eq(pos), out.eq(ins),
                         publish.eq(pos < N)]
        with m.Elif(beyond):  # an untracked order shrinks or goes
            m.d.comb += [new.untracked.eq(old.untracked - gone), inc["untracked"].eq(go)]
            with m.If(gone & (old.untracked == 1)):
                m.d.comb += new.limited.eq(0)
        with m.Else():
            m.d.comb += inc["level_missing"].eq(go)

        with m.If(go):
            m.d.comb += [s_wr.addr.eq(Cat(side, sym)), s_wr.data.eq(new), s_wr.en.eq(1)]
            with m.If(publish):
                m.d.comb += [upd_valid.eq(1), upd.sym.eq(sym), upd.side.eq(side),
                             upd.action.eq(action), upd.level.eq(level),
                             upd.price.eq(out.price), upd.shares.eq(out.shares),
                             upd.orders.eq(out.orders), upd.bbo.eq(level == 0),
                             upd.best_price.eq(Mux(new.count != 0, new.levels[0].price, 0)),
                             upd.best_shares.eq(Mux(new.count != 0, new.levels[0].shares, 0)),
                             inc["updates"].eq(1),
                             inc["short_side"].eq(new.limited & (new.count < N))]
