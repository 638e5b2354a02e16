"""Deployment tests (docker/, docs/deploy.md): what can be checked without a Docker engine or a cluster.

Helpers shared by the modules: a small Dockerfile reader (logical lines, stages, the JSON forms of CMD
and HEALTHCHECK, ENV), the repository's paths and a free port.
"""

from __future__ import annotations

import json
import re
import shlex
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
DOCKERFILES = {"gpu": DOCKER / "Dockerfile", "cpu": DOCKER / "Dockerfile.cpu"}
DEPLOY_DOC = REPO / "docs" / "deploy.md"
VENV_BIN = Path(sys.executable).parent
APP_UID = 10001  # the images' user (uid = gid); the k8s securityContext must use the same


@dataclass
class Instruction:
    keyword: str  # upper case: FROM, RUN, ...
    args: str  # the rest of the logical line, continuation lines joined
    line: int  # where it starts in the file


@dataclass
class Stage:
    base: str  # the FROM image, global ARGs replaced by their defaults
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)
    written: str = ""  # the FROM image as written (e.g. ${BASE_IMAGE})

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert found, f"no {keyword} in the stage FROM {self.base}"
        return found[-1]

    def env(self) -> dict[str, str]:
        """ENV KEY=VALUE ... of this stage (the KEY VALUE legacy form too)."""
        values: dict[str, str] = {}
        for inst in self.all("ENV"):
            words = shlex.split(inst.args)
            if words and "=" not in words[0]:
                values[words[0]] = " ".join(words[1:])
                continue
            for word in words:
                key, _, value = word.partition("=")
                values[key] = value
        return values


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, instruction) with comments dropped and backslash continuations joined."""
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not buf):
            continue  # comments (also inside continuations, as Docker does) and blank lines
        if not buf:
            start = number
        if stripped.endswith("\\"):
            buf.append(stripped[:-1].strip())
            continue
        buf.append(stripped)
        out.append((start, " ".join(part for part in buf if part)))
        buf = []
    assert not buf, "the Dockerfile ends inside a continuation line"
    return out


def parse_dockerfile(path: Path) -> list[Stage]:
    """The stages of a Dockerfile, in order."""
    stages: list[Stage] = []
    global_args: dict[str, str] = {}  # ARGs before the first FROM: what FROM lines may use
    for line, text in logical_lines(path.read_text()):
        keyword, _, args = text.partition(" ")
        inst = Instruction(keyword.upper(), args.strip(), line)
        if inst.keyword == "ARG" and not stages:
            key, _, default = inst.args.partition("=")
            global_args[key.strip()] = default.strip().strip('"')
        elif inst.keyword == "FROM":
            words = inst.args.split()
            words = [w for w in words if not w.startswith("--platform")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            base = re.sub(r"\$\{?(\w+)\}?", lambda m: global_args.get(m.group(1), m.group(0)), words[0])
            stages.append(Stage(base, name, written=words[0]))
        else:
            assert stages, f"{path.name}:{line}: {inst.keyword} before the first FROM"
            stages[-1].instructions.append(inst)
    return stages


def json_form(args: str, what: str) -> list[str]:
    """The exec (JSON) form of CMD/ENTRYPOINT/HEALTHCHECK CMD; fails on the shell form."""
    try:
        value = json.loads(args)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"{what} is not in JSON (exec) form: {args!r}") from exc
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), f"{what}: {args!r}"
    return value


def image_cmd(path: Path) -> list[str]:
    """The CMD of the final stage, as the argv Docker runs."""
    return json_form(parse_dockerfile(path)[-1].last("CMD").args, f"CMD of {path.name}")


def healthcheck(path: Path) -> tuple[dict[str, str], list[str]]:
    """({option: value}, argv) of the final stage's HEALTHCHECK."""
    args = parse_dockerfile(path)[-1].last("HEALTHCHECK").args
    options = dict(re.findall(r"--([a-z-]+)=(\S+)", args))
    match = re.search(r"\bCMD\s+(\[.*\])\s*$", args)
    assert match, f"HEALTHCHECK of {path.name} has no JSON-form CMD: {args!r}"
    return options, json_form(match.group(1), f"HEALTHCHECK of {path.name}")


def flag_value(argv: list[str], flag: str) -> str:
    """The value after `flag` in argv (also --flag=value)."""
    for i, word in enumerate(argv):
        if word == flag:
            return argv[i + 1]
        if word.startswith(flag + "="):
            return word.split("=", 1)[1]
    raise AssertionError(f"{flag} not in {argv}")


def with_flag(argv: list[str], flag: str, value: str) -> list[str]:
    """argv with the value of `flag` replaced (nothing else changes)."""
    out = list(argv)
    for i, word in enumerate(out):
        if word == flag:
            out[i + 1] = value
            return out
        if word.startswith(flag + "="):
            out[i] = f"{flag}={value}"
            return out
    raise AssertionError(f"{flag} not in {argv}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
