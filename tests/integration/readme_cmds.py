#!/usr/bin/env python3
"""README.md's shell commands for t_readme.sh (standard library only).

  readme_cmds.py MODE README TMP PORT ADMIN_PORT

Every ```sh block is cut into commands (a line with its '\\' continuations).  A block after
<!-- readme-test: skip WHY --> is listed, not run; one after <!-- readme-test: slow --> runs
only in MODE full.  Writes TMP/cmds (records "RUN|SKIP<TAB>why<TAB>command", NUL-separated)
and TMP/readme.sh: each command verbatim, with 127.0.0.1:8080 / :8081 replaced by PORT /
ADMIN_PORT, wrapped so that its output goes to TMP/out.N, its exit status to TMP/rc.N and its
milliseconds to TMP/ms.N;
one bash runs the whole file in TMP/tree, so a variable one command sets reaches the next."""
import re
import sys


def commands(lines):
    """[(marker or None, command)] of the ```sh blocks; marker = (kind, why)."""
    marker, inblock, cmd, out = None, False, "", []
    for line in lines:
        m = re.match(r"\s*<!--\s*readme-test:\s*(skip|slow)\b(.*?)-->", line)
        if m and not inblock:
            marker = (m.group(1), m.group(2).strip(" :"))
            continue
        if not inblock and line.startswith("```sh"):
            inblock = True
            continue
        if inblock and line.startswith("```"):
            inblock, marker = False, None
            continue
        if not inblock:
            continue
        cmd += line + "\n"
        if line.endswith("\\"):
            continue
        c, cmd = cmd.rstrip("\n"), ""
        if c.strip():
            out.append((marker, c))
    return out


def main():
    mode, readme, tmp, port, aport = sys.argv[1:6]
    with open(readme) as f:
        cmds = commands(f.read().split("\n"))
    listing, script = [], ["cd '%s/tree'" % tmp]
    for n, (marker, c) in enumerate(cmds, 1):
        if marker and (marker[0] == "skip" or mode != "full"):
            why = marker[1] if marker[0] == "skip" else "slow: README_TEST=full runs it"
            listing.append("SKIP\t%s\t%s" % (why, c))
            continue
        listing.append("RUN\t\t%s" % c)
        run = c.replace("127.0.0.1:8080", "127.0.0.1:" + port)
        run = run.replace("127.0.0.1:8081", "127.0.0.1:" + aport)
        script.append("__t0=$(date +%%s%%N)\n{\n%s\n} >'%s/out.%d' 2>&1 </dev/null\n"
                      "echo $? >'%s/rc.%d'; echo $((($(date +%%s%%N) - __t0) / 1000000)) >'%s/ms.%d'"
                      % (run, tmp, n, tmp, n, tmp, n))
    with open(tmp + "/cmds", "w") as f:
        f.write("\0".join(listing))
    with open(tmp + "/readme.sh", "w") as f:
        f.write("\n".join(script) + "\n")


if __name__ == "__main__":
    main()
