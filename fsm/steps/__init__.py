"""The side effects of the lifecycle, one module per phase, referenced by name from
``fsm/states.py``: :mod:`~fsm.steps.start`, :mod:`~fsm.steps.stop`, :mod:`~fsm.steps.exit`
(the undo steps that exit and the error edge share), :mod:`~fsm.steps.remove`.

A step receives the ``transitions`` event: ``event.model`` is the
:class:`~fsm.container.LiveContainer` being driven and ``event.kwargs["host"]`` the
:class:`~fsm.steps.host.Host` (the drivers and the stores); never the orchestrator.
"""
