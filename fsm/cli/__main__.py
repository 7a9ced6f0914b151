"""``python3 -m fsm.cli ARGS``: the console script's ``berth ARGS``."""

from fsm.cli import main

main()
