"""``ouch_tx``: order entry (the block itself arrives with the ``ouch`` branch)."""

from amaranth.lib import data

from .itch import sym_bits


def order_layout(symbols: int) -> data.StructLayout:
    """An order from the risk gate."""
    return data.StructLayout({
        "cancel": 1, "user_ref": 32, "side": 8, "quantity": 32, "stock": 64, "price": 32,
        "tif": 8, "tag": 16, "sym": sym_bits(symbols),
    })
