"""What touches the host: storage, network and runtime drivers.

Drivers take plain values and return plain values; they import neither ``fsm`` nor ``models``,
so each can be tested alone.
"""
