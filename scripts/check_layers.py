#!/usr/bin/python3
"""Check that includes point only downward and form no cycle.

usage: check_layers.py FOLDER=DEP,DEP ... (the Makefile's LAYERS table)

Each argument names a folder and the folders its files may include from;
a folder always may include its own files.  Every `#include "name"` of a
.c/.h/.cu file directly in a listed folder must resolve to its own folder or
to one it may use; a name no listed folder holds (a system or generated
header) is not ours to check.  The folder table itself must be acyclic, and
so must the include graph of the files.  Prints every violation and exits 1.
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def main(argv):
    allowed = {}
    for arg in argv:
        folder, _, deps = arg.partition("=")
        allowed[folder] = [d for d in deps.split(",") if d]
    problems = []

    # the folder table: every dependency listed, no cycle
    state = {}

    def visit(f, trail):
        if state.get(f) == "done":
            return
        if state.get(f) == "open":
            problems.append("folder cycle: " + " -> ".join(trail + [f]))
            return
        state[f] = "open"
        for d in allowed.get(f, []):
            if d not in allowed:
                problems.append(f"{f} may use {d}, which is not in the table")
                continue
            visit(d, trail + [f])
        state[f] = "done"

    for f in allowed:
        visit(f, [])

    owner = {}          # header name -> folder that holds it
    files = {}          # path -> list of included paths (ours only)
    for folder in allowed:
        for name in sorted(os.listdir(folder)):
            if name.endswith((".h", ".c", ".cu")):
                if name.endswith(".h"):
                    if name in owner:
                        problems.append(f"{name} is in both {owner[name]} and {folder}")
                    owner[name] = folder
                files[os.path.join(folder, name)] = None

    for path in files:
        folder = os.path.dirname(path)
        with open(path, encoding="utf-8") as fh:
            names = INCLUDE.findall(fh.read())
        deps = []
        for n in names:
            base = os.path.basename(n)
            where = owner.get(base)
            if where is None:
                continue
            if where != folder and where not in allowed[folder]:
                problems.append(f"{path}: includes {where}/{base}: {folder} may use only "
                                f"{', '.join(allowed[folder]) or 'itself'}")
            deps.append(os.path.join(where, base))
        files[path] = deps

    # file-level cycles (header includes header ... back to itself)
    colour = {}

    def walk(p, trail):
        if colour.get(p) == 2:
            return
        if colour.get(p) == 1:
            problems.append("include cycle: " + " -> ".join(trail[trail.index(p):] + [p]))
            return
        colour[p] = 1
        for q in files.get(p) or []:
            walk(q, trail + [p])
        colour[p] = 2

    for p in files:
        walk(p, [])

    for p in problems:
        print("check_layers: " + p, file=sys.stderr)
    if not problems:
        print(f"check_layers: {len(files)} files in {len(allowed)} folders, "
              "every include points down, no cycle")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
