#!/usr/bin/python3
"""The code blocks of README.md, as 26-readme.t runs them.

  readme_blocks.py README.md TMPDIR

Every fenced block must follow a marker comment (blank lines between allowed):

  <!-- readme-test: run -->                 every line is a command; each must exit 0
  <!-- readme-test: run; not 'PREFIX': WHY --> the same, lines starting with PREFIX skipped
  <!-- readme-test: fstab -->               /etc/fstab lines: each is mounted with mount -T
  <!-- readme-test: systemd-unit -->        a .mount unit: verified, then mounted as systemd would
  <!-- readme-test: skip: WHY -->           not run, for the reason given

Paths the README uses for a user's data are moved under TMPDIR: /data/, /mnt/,
/local/, /tmp/sdafs- and ckpts/ become TMPDIR/data/, TMPDIR/mnt/, ...; commands
run in the repository root, so build/sdafs, examples/ and tests/ are the
repository's.  Prints one item per line, fields separated by tabs:

  BLOCK  LINE  KIND  WHY          a block begins (KIND run, fstab, systemd-unit, skip)
  CMD    LINE  ORIGINAL  COMMAND  a command of a run block, paths moved
  SKIP   LINE  ORIGINAL  WHY      a command of a run block that is not run
  TEXT   LINE  TEXT               a line of an fstab or systemd-unit block, paths moved
  MKDIR  PATH                     a mount point or directory the commands expect to exist
  ERROR  LINE  MESSAGE            a block without a (valid) marker
"""
import re
import sys

MARKER = re.compile(r"^<!--\s*readme-test:\s*(.*?)\s*-->$")
USER_PATHS = re.compile(r"(?<![\w./-])(/data/|/mnt/|/local/|/tmp/sdafs-|ckpts/)")


def moved(line, tmp):
    return USER_PATHS.sub(lambda m: tmp + ("" if m.group(1).startswith("/") else "/") + m.group(1), line)


def parse_marker(text):
    """(kind, why, skipped prefix) of a marker's text, or None."""
    m = re.match(r"^run;\s*not\s+'([^']+)':\s*(.+)$", text)
    if m:
        return "run", m.group(2), m.group(1)
    if text in ("run", "fstab", "systemd-unit"):
        return text, "", None
    m = re.match(r"^skip:\s*(.+)$", text)
    if m:
        return "skip", m.group(1), None
    return None


def blocks(lines):
    """(line number, marker text or None, body lines with their numbers) of each block."""
    i, marker = 0, None
    while i < len(lines):
        line = lines[i].rstrip("\n")
        m = MARKER.match(line.strip())
        if m:
            marker = m.group(1)
        elif line.startswith("```"):
            start, body = i + 1, []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append((i + 1, lines[i].rstrip("\n")))
                i += 1
            yield start, marker, body
            marker = None
        elif line.strip():
            marker = None       # a marker belongs to the block right after it
        i += 1


def commands(body):
    """Command lines of a run block: continuations joined, blank lines dropped."""
    out, pending, first = [], "", None
    for n, line in body:
        if not line.strip() and not pending:
            continue
        if first is None:
            first = n
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append((first, pending + line))
        pending, first = "", None
    return out


def emit(*fields):
    print("\t".join(str(f).replace("\t", " ") for f in fields))


def main(argv):
    if len(argv) != 2:
        sys.exit(__doc__)
    readme, tmp = argv
    dirs = []
    for start, marker, body in blocks(open(readme).readlines()):
        parsed = parse_marker(marker) if marker is not None else None
        if parsed is None:
            emit("ERROR", start, "the block at line %d has no readme-test marker (run, fstab, systemd-unit, skip: why)"
                 % start if marker is None else "unknown readme-test marker '%s'" % marker)
            continue
        kind, why, skipped = parsed
        emit("BLOCK", start, kind, why)
        if kind == "run":
            for n, cmd in commands(body):
                if skipped and (cmd == skipped or cmd.startswith(skipped + " ")):
                    emit("SKIP", n, cmd, why)
                    continue
                line = moved(cmd, tmp)
                emit("CMD", n, cmd, line)
                dirs += re.findall(re.escape(tmp) + r"/mnt/[\w.-]+", line)
                dirs += re.findall(re.escape(tmp) + r"/local/[\w./-]+", line.split(",")[0])
        elif kind in ("fstab", "systemd-unit"):
            for n, text in body:
                line = moved(text, tmp)
                emit("TEXT", n, line)
                dirs += re.findall(re.escape(tmp) + r"/mnt/[\w.-]+", line)
    for d in sorted(set(dirs)):
        emit("MKDIR", d)


if __name__ == "__main__":
    main(sys.argv[1:])
