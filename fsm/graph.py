"""The lifecycle drawn from ``fsm/states.py``: Mermaid text, or a PNG through graphviz."""

from __future__ import annotations

from fsm import states


def _edges() -> list[tuple[str, str, str]]:
    edges = []
    for transition in states.TRANSITIONS:
        sources = transition["source"]
        for source in [sources] if isinstance(sources, str) else sources:
            edges.append((source, transition["dest"], transition["trigger"]))
    return edges


def mermaid() -> str:
    lines = ["stateDiagram-v2", f"    [*] --> {states.CREATED}"]
    lines += [f"    {source} --> {dest}: {trigger}" for source, dest, trigger in _edges()]
    lines.append(f"    {states.REMOVED} --> [*]")
    return "\n".join(lines)


def dot() -> str:
    lines = ["digraph lifecycle {", "  rankdir=LR;", "  node [shape=box, style=rounded];"]
    for state in states.IN_FLIGHT:
        lines.append(f'  {state} [style="rounded,dashed"];')
    lines += [f'  {source} -> {dest} [label="{trigger}"];' for source, dest, trigger in _edges()]
    lines.append("}")
    return "\n".join(lines)


def render_png(path: str) -> None:
    from drivers.commands import run
    from fsm.errors import host_errors

    with host_errors():
        run(["dot", "-Tpng", "-o", path], input=dot(), what="graphviz could not draw the graph")
