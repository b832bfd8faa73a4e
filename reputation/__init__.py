"""Hub verification states, trust polling, local and global trust (sans-IO).

Nothing here may import trio, socket, time, random or threading
(tests/test_sans_io.py): the daemon drives these objects with the real clock,
the simulator (simulations/scenarios/trust.py) with a virtual one. Nothing here
imports the daemon either; errors are defined in reputation/errors.py.
"""
