"""The Dockerfile, checked against pyproject.toml and the CLI (no image build is possible here):
base image, install step, non-root user, entrypoint, default command and healthcheck."""

from __future__ import annotations

import json
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

from packaging.specifiers import SpecifierSet

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef,import-not-found,unused-ignore]

from proxy.cli import build_parser

REPO = Path(__file__).resolve().parents[1]


def instructions(path: Path = REPO / "Dockerfile") -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
DOCKERFILE = instructions()


def find(keyword: str) -> list[tuple[int, str]]:
    return [(i, args) for i, (k, args) in enumerate(DOCKERFILE) if k == keyword]


def test_base_image_is_a_slim_python_that_pyproject_accepts() -> None:
    [(index, image)] = find("FROM")
    assert index == 0
    match = re.fullmatch(r"python:(\d+\.\d+)(?:\.\d+)?-slim(?:-\w+)?", image)
    assert match, f"expected an official slim Python image, got {image}"
    assert match[1] in SpecifierSet(PYPROJECT["project"]["requires-python"])


def test_the_project_is_installed_with_pip_from_what_was_copied() -> None:
    copied: set[str] = set()
    install_at = None
    for _, args in find("COPY"):
        *sources, _dest = shlex.split(args)
        copied |= {s.rstrip("/") for s in sources}
    for i, args in find("RUN"):
        if re.search(r"\bpip install \.(\s|$)", args):
            install_at = i
    assert install_at is not None, "no `pip install .`"
    last_copy = max(i for i, _ in find("COPY"))
    assert last_copy < install_at
    needed = {"pyproject.toml", PYPROJECT["project"]["readme"], *PYPROJECT["tool"]["setuptools"]["packages"]}
    assert needed <= copied, f"not copied before the install: {needed - copied}"


def test_runs_as_a_non_root_user_that_the_image_creates() -> None:
    users = find("USER")
    assert len(users) == 1
    at, user = users[0]
    assert user not in ("root", "0") and not user.startswith("0:")
    created = [args for i, args in find("RUN") if i < at and re.search(rf"useradd\b.*\b{user}\b", args)]
    assert created, f"USER {user} is never created"
    install_at = max(i for i, args in find("RUN") if "pip install" in args)
    assert install_at < at  # installed as root, run as the user
    assert at < find("ENTRYPOINT")[0][0]


def test_entrypoint_is_the_console_script_and_cmd_a_valid_command() -> None:
    [(_, entrypoint)] = find("ENTRYPOINT")
    assert exec_form(entrypoint) == list(PYPROJECT["project"]["scripts"])
    assert PYPROJECT["project"]["scripts"]["handshake-proxy"] == "proxy.cli:main"
    [(_, cmd)] = find("CMD")
    args = build_parser().parse_args(exec_form(cmd))
    assert args.command == "serve"
    [(_, exposed)] = find("EXPOSE")
    assert exposed == args.listen.rpartition(":")[2]  # serve's default port


def healthcheck_argv() -> list[str]:
    [(_, args)] = find("HEALTHCHECK")
    options, _, command = args.partition("CMD ")
    assert "--interval" in options and "--timeout" in options
    argv = exec_form(command)
    assert argv[0] == "python"
    return [sys.executable, *argv[1:]]


def test_healthcheck_passes_when_serve_listens_and_fails_when_not(refused_port: int) -> None:
    argv = healthcheck_argv()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        for listen in (f"0.0.0.0:{port}", f"127.0.0.1:{port}"):
            ok = subprocess.run(argv, env={"HANDSHAKE_PROXY_LISTEN": listen}, timeout=30,
                                capture_output=True)
            assert ok.returncode == 0, ok.stderr
    # Nothing listens on refused_port (held bound for the test, so no one else can).
    for listen in (f"0.0.0.0:{refused_port}", f"127.0.0.1:{refused_port}"):
        down = subprocess.run(argv, env={"HANDSHAKE_PROXY_LISTEN": listen}, timeout=30,
                              capture_output=True)
        assert down.returncode != 0
