"""The reputation service: the daemon's driver of the sans-IO core in reputation/.

`service.py` runs it (trust topic, polling, chain and deal evidence, global trust),
`store.py` keeps its state in SQLite, `chainfeed.py` reads hub wallet payments,
`rating.py` turns statuses and trust into the market's ratings.
"""
