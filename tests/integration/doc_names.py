#!/usr/bin/python3
"""Option names a help text or a man page section documents, one per line, sorted.

  doc_names.py help < TEXT          the entries of `sdafs --help` (or `sdafs status --help`)
  doc_names.py man FILE SECTION     the .TP entries of one .SH section of a man page

An entry's names are what comes before its description, split at commas:
"-v, --verbose" gives -v and --verbose, "ep_rank=R,ep_size=N" gives ep_rank and
ep_size, "-o debug" gives debug, "-o OPTIONS" gives -o.  The help's "passed on:"
paragraph lists names too.  Used by 25-install-docs.t to check that the two
agree, both ways.
"""
import re
import shlex
import sys


def names_of(entry):
    """Option names of an entry's head ("-d, -o debug" -> ["-d", "debug"])."""
    out = []
    for tok in entry.split(","):
        tok = tok.strip()
        m = re.match(r"^-o ([a-z_]+)$", tok)
        if m:
            out.append(m.group(1))
            continue
        m = re.match(r"^-{0,2}[A-Za-z][\w-]*", tok)
        if m:
            out.append(m.group(0))
    return out


def help_names(text):
    names = set()
    passed_on = False
    for line in text.splitlines():
        if re.match(r"^\S.*\(-o ", line):
            names.add("-o")
        if passed_on:
            if not line.strip():
                passed_on = False
                continue
            names.update(names_of(line))
            continue
        if "passed on:" in line:
            passed_on = True
            names.update(names_of(line.split("passed on:", 1)[1]))
            continue
        if re.match(r"^  \S", line):
            names.update(names_of(re.split(r"\s{2,}", line.strip())[0]))
    return names


def roff_text(line):
    """The text of a font macro line (.B/.BR/.BI/.IR ...), arguments joined as roff does."""
    parts = line.split(None, 1)
    args = shlex.split(parts[1]) if len(parts) > 1 else []
    text = "".join(args)
    return re.sub(r"\\f[BIRP]", "", text).replace("\\-", "-")


def man_names(path, section):
    names = set()
    inside = take = False
    for line in open(path):
        line = line.rstrip("\n")
        if line.startswith(".SH "):
            inside = line[4:].strip().strip('"') == section
            continue
        if not inside:
            continue
        if line.startswith(".TP"):
            take = True
            continue
        if take and line.startswith("."):
            names.update(names_of(roff_text(line)))
            take = False
    return names


def main(argv):
    if argv[:1] == ["help"]:
        names = help_names(sys.stdin.read())
    elif len(argv) == 3 and argv[0] == "man":
        names = man_names(argv[1], argv[2])
    else:
        sys.exit(__doc__)
    print("\n".join(sorted(names)))


if __name__ == "__main__":
    main(sys.argv[1:])
