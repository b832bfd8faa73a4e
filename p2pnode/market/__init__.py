"""The market: order book, matching core, slots and deals."""
