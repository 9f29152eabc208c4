#!/usr/bin/env python3
"""Draws the workspace's crate graph from `cargo metadata` and keeps
docs/ARCHITECTURE.md's copy of it true.

    python3 tests/docs/crate_graph.py           # print the graph
    python3 tests/docs/crate_graph.py --check   # exit 1 if the doc's copy differs
    python3 tests/docs/crate_graph.py --write   # rewrite the doc's copy

The graph lists, for each workspace crate, the workspace crates it depends on for
normal builds (what ships), then those it uses only in tests, benches or build scripts.
The doc holds it between the markers `<!-- crate-graph:begin -->` and
`<!-- crate-graph:end -->`.
"""

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "ARCHITECTURE.md"
BEGIN = "<!-- crate-graph:begin -->"
END = "<!-- crate-graph:end -->"


def workspace_graph():
    """Returns {crate: (normal deps, dev/build-only deps)} over workspace crates."""
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps", "--offline"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    packages = json.loads(out)["packages"]
    names = {p["name"] for p in packages}
    graph = {}
    for p in packages:
        normal, other = set(), set()
        for dep in p["dependencies"]:
            if dep["name"] not in names:
                continue
            features = dep.get("features") or []
            label = dep["name"] + (f" [{', '.join(sorted(features))}]" if features else "")
            (normal if dep["kind"] is None else other).add(label)
        graph[p["name"]] = (sorted(normal), sorted(other - normal))
    return graph


def short(name):
    return name.removeprefix("bboard-")


def render(graph):
    """A fenced text block, crates ordered from the binary down to the leaves."""

    def depth(name, seen=()):
        deps = [d.split(" ")[0] for d in graph[name][0]]
        return 1 + max((depth(d, seen + (name,)) for d in deps if d not in seen), default=0)

    order = sorted(graph, key=lambda n: (-depth(n), n))
    width = max(len(short(n)) for n in order)
    lines = ["```text"]
    for name in order:
        normal, other = graph[name]
        left = ", ".join(short(d) for d in normal) or "-"
        line = f"{short(name):<{width}} -> {left}"
        if other:
            line += "   (dev: " + ", ".join(short(d) for d in other) + ")"
        lines.append(line)
    lines.append("```")
    return "\n".join(lines) + "\n"


def doc_block(text):
    start = text.index(BEGIN) + len(BEGIN)
    end = text.index(END)
    return start, end


def main():
    rendered = render(workspace_graph())
    if len(sys.argv) == 1:
        sys.stdout.write(rendered)
        return 0
    text = DOC.read_text()
    try:
        start, end = doc_block(text)
    except ValueError:
        print(f"{DOC}: markers {BEGIN} / {END} not found", file=sys.stderr)
        return 1
    current = text[start:end].strip("\n") + "\n"
    if sys.argv[1] == "--check":
        if current == rendered:
            print("docs/ARCHITECTURE.md: crate graph matches cargo metadata")
            return 0
        print("docs/ARCHITECTURE.md's crate graph differs from cargo metadata:", file=sys.stderr)
        print("--- in the doc\n" + current + "--- from cargo metadata\n" + rendered, file=sys.stderr)
        print("run: python3 tests/docs/crate_graph.py --write", file=sys.stderr)
        return 1
    if sys.argv[1] == "--write":
        DOC.write_text(text[:start] + "\n" + rendered + text[end:])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
