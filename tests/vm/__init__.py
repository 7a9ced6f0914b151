"""The device-mapper test VM: see README.md; ``run_in_vm`` is in harness.py."""
