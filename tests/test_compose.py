"""docker-compose.yml, tested without a Docker engine: Debian's docker-compose validates it,
and each service's command runs as a local process with the same environment, the volume
paths mapped to a temp dir, in dependency order — the client's requests must land in the log."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_dockerfile import exec_form, find
from test_log_helpers import Proc, child_env

from proxy.cli import build_parser
from proxy.logview import read_records

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
SERVICE_HOSTS = ("0.0.0.0", "localhost")


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return data


def test_docker_compose_config_validates_the_file() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is not installed; .ci/run installs it (Debian docker-compose)")
    result = subprocess.run([binary, "-f", str(COMPOSE_FILE), "config", "-q"], capture_output=True,
                            text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    services = subprocess.run([binary, "-f", str(COMPOSE_FILE), "config", "--services"],
                              capture_output=True, text=True, timeout=120, cwd=REPO)
    assert sorted(services.stdout.split()) == ["certs", "client", "origin", "proxy"]


def test_the_services_are_what_issue_4_describes(monkeypatch: pytest.MonkeyPatch) -> None:
    services = compose()["services"]
    certs, origin, proxy, client = (services[n] for n in ("certs", "origin", "proxy", "client"))
    certs_cmd = " ".join(certs["command"])
    assert "handshake-proxy certs --out /certs" in certs_cmd
    assert "--name proxy" in certs_cmd and "--name localhost" in certs_cmd
    assert origin["command"][0] == "origin"
    env = proxy["environment"]
    assert env["HANDSHAKE_PROXY_LISTEN"] == "0.0.0.0:8443"
    assert proxy["ports"] == ["8443:8443"]
    assert "./logs:/logs" in proxy["volumes"]
    assert env["HANDSHAKE_PROXY_TRAFFIC_LOG"].startswith("/logs/")
    assert env["HANDSHAKE_PROXY_KEYLOG"].startswith("/logs/")
    assert proxy["depends_on"] == {"certs": {"condition": "service_completed_successfully"},
                                   "origin": {"condition": "service_healthy"}}
    assert "healthcheck" in proxy
    assert client["depends_on"] == {"proxy": {"condition": "service_healthy"}}
    # Every HANDSHAKE_PROXY_* the proxy gets is one that `serve` reads, with that value.
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    args = build_parser().parse_args(["serve"])
    for name, value in env.items():
        assert name.startswith("HANDSHAKE_PROXY_")
        assert getattr(args, name.removeprefix("HANDSHAKE_PROXY_").lower()) == value, name


# --- running the services as local processes ------------------------------------------------

def interpolate(text: str) -> str:
    """What compose does to a string: ${VAR:-default} and ${VAR} from the environment; $$ -> $."""
    def one(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        return os.environ.get(match[1]) or (match[2] or "")
    return re.sub(r"\$\$|\$\{(\w+)(?::-([^}]*))?\}", one, text)


def as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(v) for v in value]


class LocalCompose:
    """Volumes become folders in tmp, service:port and 0.0.0.0:port become 127.0.0.1:free port,
    `handshake-proxy` and `python` are this checkout and this interpreter."""

    def __init__(self, tmp: Path, config: dict[str, Any]) -> None:
        self.config = config
        self.tmp = tmp
        self.paths: dict[str, Path] = {}
        for service in config["services"].values():
            for volume in service.get("volumes", []):
                source, target = volume.split(":")[:2]
                host = tmp / ("logs" if source.startswith(".") else f"volumes/{source}")
                host.mkdir(parents=True, exist_ok=True)
                self.paths[target] = host
        names = "|".join(re.escape(n) for n in [*config["services"], *SERVICE_HOSTS])
        self.address = re.compile(rf"\b(?:{names}):(\d+)\b")
        self.ports: dict[str, int] = {}
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        launcher = bin_dir / "handshake-proxy"
        launcher.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m proxy \"$@\"\n")
        launcher.chmod(launcher.stat().st_mode | stat.S_IEXEC)
        (bin_dir / "python").symlink_to(sys.executable)
        self.base_env = child_env({"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})

    def port(self, container_port: str) -> int:
        if container_port not in self.ports:
            import socket
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.ports[container_port] = int(s.getsockname()[1])
        return self.ports[container_port]

    def localize(self, text: str) -> str:
        text = interpolate(text)
        text = self.address.sub(lambda m: f"127.0.0.1:{self.port(m[1])}", text)
        for target in sorted(self.paths, key=len, reverse=True):
            text = re.sub(rf"(?<![\w./]){re.escape(target)}(?=/|\b|$)", str(self.paths[target]), text)
        return text

    def argv(self, name: str) -> list[str]:
        service = self.config["services"][name]
        if "entrypoint" in service:  # compose: an entrypoint clears the image's CMD
            argv = as_list(service["entrypoint"]) + as_list(service.get("command"))
        else:
            [(_, entrypoint)] = find("ENTRYPOINT")
            [(_, cmd)] = find("CMD")
            argv = exec_form(entrypoint) + (as_list(service.get("command")) or exec_form(cmd))
        return [self.localize(a) for a in argv]

    def env(self, name: str) -> dict[str, str]:
        environment = self.config["services"][name].get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) for item in environment)
        return {**self.base_env, **{k: self.localize(str(v)) for k, v in environment.items()}}

    def healthy(self, name: str) -> bool:
        """Run the service's healthcheck until it passes, as compose's retries would."""
        check = self.config["services"][name]["healthcheck"]
        test = as_list(check["test"])
        argv = test[1:] if test[0] == "CMD" else ["sh", "-c", " ".join(test[1:])]
        argv = [self.localize(a) for a in argv]
        for _ in range(200):  # a bound on tries (compose: retries x interval), not a timing
            if subprocess.run(argv, env=self.env(name), capture_output=True, timeout=30).returncode == 0:
                return True
            time.sleep(0.1)
        return False

    def order(self) -> list[str]:
        done: list[str] = []
        def visit(name: str) -> None:
            if name in done:
                return
            for dep in self.config["services"][name].get("depends_on", {}):
                visit(dep)
            done.append(name)
        for name in self.config["services"]:
            visit(name)
        return done


def test_compose_services_run_as_local_processes(tmp_path: Path) -> None:
    local = LocalCompose(tmp_path, compose())
    assert local.order() == ["certs", "origin", "proxy", "client"]
    procs: dict[str, Proc] = {}
    try:
        for name in local.order():
            for dep, rule in local.config["services"][name].get("depends_on", {}).items():
                if rule["condition"] == "service_completed_successfully":
                    assert procs[dep].popen.wait(timeout=120) == 0, procs[dep].seen
                elif rule["condition"] == "service_healthy":
                    assert local.healthy(dep), f"{dep} never became healthy: {procs[dep].seen}"
            procs[name] = Proc(local.argv(name), env=local.env(name), cwd=tmp_path)
        client = procs["client"]
        assert client.popen.wait(timeout=120) == 0
        client.wait_for(r"^client: 4 requests through https://127\.0\.0\.1:\d+$")
        trace = "\n".join(client.seen)
        for step in ("Client Hello", "Server Hello", "Client agrees", "Server agrees", "Encrypted"):
            assert step in trace
        assert "hello through the proxy" in trace  # the echo of the POST

        # The README's curl from the host, through the published port.
        curl = shutil.which("curl")
        assert curl
        argv = [curl, "-sS", "--proxy", "https://localhost:8443", "--proxy-cacert", "logs/ca.pem",
                "http://origin:8080/from-the-host"]
        done = subprocess.run([local.localize(a) for a in argv], cwd=tmp_path, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert '"path": "/from-the-host"' in done.stdout
    finally:
        for name in reversed(local.order()):
            if name in procs:
                procs[name].stop(signal.SIGTERM)
    assert procs["proxy"].popen.returncode == 0, procs["proxy"].seen

    logs = tmp_path / "logs"
    exchanges = [r for r in read_records(logs / "traffic.jsonl") if r["type"] == "exchange"]
    paths = [re.sub(r"^http://[^/]+", "", r["request"]["url"]) for r in exchanges]
    assert paths == ["/hello?from=client", "/echo", "/status/404", "/bytes/100000", "/from-the-host"]
    assert [r["response"]["status"] for r in exchanges] == [200, 200, 404, 200, 200]
    assert (logs / "keylog.txt").read_text().startswith("CLIENT_RANDOM ")
    assert any((logs / "bodies").iterdir())
    shown = subprocess.run([sys.executable, "-m", "proxy", "log", "show", str(logs / "traffic.jsonl")],
                           capture_output=True, text=True, env=child_env(), timeout=60)
    assert shown.returncode == 0 and len(shown.stdout.splitlines()) == 5
