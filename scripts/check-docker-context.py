#!/usr/bin/env python3
"""Checks, without a container engine, that every cargo step of the Dockerfile sees a
complete cargo context (issue 17, point 1).

For each build stage it replays, in an empty temporary directory, what the image build
would do: the stage's COPY instructions from this repository (less what .dockerignore
excludes), and the RUN commands that create or remove files (the dummy sources of the
dependency-caching step). Where a RUN calls cargo, it requires `--locked` and runs, in
that directory, `cargo metadata --locked` (the lockfile is current for every member)
and `cargo fetch --locked` (every manifest and the targets it names load). Nothing is
compiled, so this proves the context complete for cargo, not that the code builds.

    python3 scripts/check-docker-context.py [Dockerfile]
"""

import fnmatch
import glob
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# RUN commands that only shape the source tree; anything else (apt-get, cp into the
# image) is left out of the replay.
FILE_COMMANDS = {"mkdir", "touch", "echo", "printf", "rm"}


def logical_lines(text):
    """Instructions with continuation lines joined and comments dropped."""
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or (not stripped and not current):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
        else:
            yield current + stripped
            current = ""


def stages(text):
    """[(name, base, [(keyword, args)])] in Dockerfile order."""
    result = []
    for line in logical_lines(text):
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = args.split()
            words = [w for w in words if not w.startswith("--")]
            name = words[2] if len(words) > 2 and words[1].upper() == "AS" else None
            result.append((name, words[0], []))
        elif result:
            result[-1][2].append((keyword, args.strip()))
    return result


def ignore_rules():
    path = os.path.join(ROOT, ".dockerignore")
    rules = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                negate = line.startswith("!")
                pattern = line.lstrip("!").strip().strip("/")
                rules.append((negate, pattern_regex(os.path.normpath(pattern))))
    return rules


def pattern_regex(pattern):
    """Docker's .dockerignore syntax: `*` and `?` within one path segment, `**` across."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + "$")


def ignored(relative, rules):
    """A path is excluded when the last rule matching it or one of its parents excludes."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for negate, regex in rules:
        if any(regex.match(p) for p in prefixes):
            excluded = not negate
    return excluded


def copy_into(context, source, destination, rules):
    """Copies one context path (file or directory) to destination, as COPY does."""
    relative = os.path.relpath(source, ROOT)
    if ignored(relative, rules):
        return 0
    if os.path.isfile(source):
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        shutil.copy2(source, destination)
        return 1
    copied = 0
    for entry in sorted(os.listdir(source)):
        copied += copy_into(context, os.path.join(source, entry), os.path.join(destination, entry), rules)
    return copied


def replay_copy(args, workdir, rules):
    words = [w for w in shlex.split(args) if not w.startswith("--")]
    *sources, destination = words
    target = os.path.normpath(os.path.join(workdir, destination))
    into_directory = destination.endswith("/") or len(sources) > 1
    for source in sources:
        matches = sorted(glob.glob(os.path.join(ROOT, source)))
        if not matches:
            sys.exit(f"COPY {args}: {source} is not in the repository")
        for match in matches:
            to = target
            if into_directory and os.path.isfile(match):
                to = os.path.join(target, os.path.basename(match))
            if copy_into(ROOT, match, to, rules) == 0:
                sys.exit(f"COPY {args}: {source} is excluded by .dockerignore")


def run_cargo(command, workdir):
    if "--locked" not in command.split():
        sys.exit(f"`{command}` must use --locked")
    host = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout
    target = re.search(r"^host: (\S+)", host, re.M).group(1)
    for check in (
        ["cargo", "metadata", "--locked", "--format-version", "1"],
        ["cargo", "fetch", "--locked", "--target", target],
    ):
        done = subprocess.run(check, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr, end="")
            return False
    return True


def replay_run(args, workdir):
    """Replays the file commands of a RUN; returns False if one of them or a cargo step fails."""
    ok = True
    for command in (c.strip() for c in args.split("&&")):
        program = command.split()[0] if command else ""
        if program == "cargo":
            print(f"  {command}")
            ok = run_cargo(command, workdir) and ok
        elif program in FILE_COMMANDS:
            words = shlex.split(command.split(">")[0])[1:]
            # Paths outside the build directory belong to the image, not the context.
            if any(w.startswith("/") or ".." in w.split("/") for w in words):
                continue
            if subprocess.run(command, shell=True, cwd=workdir).returncode != 0:
                print(f"  `{command}` fails in this context")
                ok = False
    return ok


def main():
    # Our lines and cargo's errors interleave in the order they happened.
    sys.stdout.reconfigure(line_buffering=True)
    dockerfile = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "Dockerfile")
    with open(dockerfile) as f:
        parsed = stages(f.read())
    rules = ignore_rules()
    failures = 0
    checked = 0
    with tempfile.TemporaryDirectory() as scratch:
        stage_dirs = {}
        for index, (name, base, instructions) in enumerate(parsed):
            root = os.path.join(scratch, f"stage{index}")
            if base in stage_dirs:
                shutil.copytree(stage_dirs[base], root, symlinks=True)
            else:
                os.makedirs(root)
            stage_dirs[name or str(index)] = root
            workdir = root
            label = name or f"stage {index}"
            for keyword, args in instructions:
                if keyword == "WORKDIR":
                    # The image's absolute WORKDIR becomes the stage's root directory.
                    workdir = os.path.join(root, args.lstrip("/"))
                    os.makedirs(workdir, exist_ok=True)
                elif keyword in ("COPY", "ADD") and "--from=" not in args:
                    replay_copy(args, workdir, rules)
                elif keyword == "RUN" and re.search(r"(^|&&)\s*cargo ", args):
                    print(f"{label}:")
                    checked += 1
                    if not replay_run(args, workdir):
                        failures += 1
                        print("  FAILED: the context of this step is not a complete cargo workspace")
                elif keyword == "RUN" and not replay_run(args, workdir):
                    sys.exit(f"{label}: RUN {args} fails")
    if checked == 0:
        sys.exit("the Dockerfile runs no cargo command")
    print(f"check-docker-context: {checked - failures} of {checked} cargo steps see a complete context")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
