"""`log har`: HAR 1.2 that validates against the schema and loads in a real HAR reader."""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from haralyzer import HarParser
from test_log_helpers import exchange, sample_records, write_log

from proxy import har, logcli

SCHEMA = json.loads((Path(__file__).parent / "data" / "har-schema.json").read_text())


def validate(document: dict[str, Any]) -> None:
    jsonschema.validate(document, SCHEMA, cls=jsonschema.Draft7Validator,
                        format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


def run_har(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="handshake-proxy")
    logcli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["log", "har", *argv])
    return int(args.func(args))


def export(tmp_path: Path, records: list[dict[str, Any]], *options: str) -> dict[str, Any]:
    log = write_log(tmp_path / "traffic.jsonl", records)
    out = tmp_path / "out.har"
    assert run_har(str(log), "-o", str(out), *options) == 0
    document: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return document


def test_the_schema_rejects_what_har_forbids() -> None:
    """The schema file is worth something only if it says no."""
    good = har.build(sample_records())
    validate(good)
    bad_cases = []
    missing = json.loads(json.dumps(good))
    del missing["log"]["entries"][0]["timings"]
    bad_cases.append(missing)
    custom = json.loads(json.dumps(good))
    custom["log"]["entries"][0]["tls"] = {}  # a custom field without its underscore
    bad_cases.append(custom)
    both = json.loads(json.dumps(good))
    both["log"]["entries"][1]["request"]["postData"]["params"] = []
    bad_cases.append(both)  # text and params are mutually exclusive
    wrong_version = json.loads(json.dumps(good))
    wrong_version["log"]["version"] = "1.1"
    bad_cases.append(wrong_version)
    for bad in bad_cases:
        with pytest.raises(jsonschema.ValidationError):
            validate(bad)


def test_har_validates_and_carries_every_exchange(tmp_path: Path) -> None:
    document = export(tmp_path, sample_records())
    validate(document)
    entries = document["log"]["entries"]
    assert [e["request"]["url"].rsplit("/", 1)[1] for e in entries] == [
        "", "upload", "missing", "fail", "slow"]
    first = entries[0]
    assert first["request"]["queryString"] == []
    assert first["response"]["content"]["text"] == '{"ok": true}\n'
    assert first["response"]["content"]["mimeType"] == "application/json"
    assert first["request"]["cookies"] == [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}]
    assert first["response"]["cookies"][0]["name"] == "session"
    assert first["connection"] == "c000001"
    assert first["serverIPAddress"] == "127.0.0.1"
    # TLS facts and the client as custom fields.
    assert first["_tls"]["cipher_suite"] == "TLS_RSA_WITH_AES_128_GCM_SHA256"
    assert first["_tls"]["client_random"] == f"{1:064x}"
    assert first["_client"] == "127.0.0.1:50412"
    # Timings add up to the entry's time.
    t = first["timings"]
    assert first["time"] == pytest.approx(sum(v for v in t.values() if v >= 0))
    post = entries[1]["request"]["postData"]
    assert post["text"] == "name=value" and entries[1]["request"]["bodySize"] == 10
    assert entries[3]["_error"].startswith("origin refused")
    assert entries[4]["response"]["status"] == 0 and entries[4]["_error"]


def test_har_loads_in_a_real_reader(tmp_path: Path) -> None:
    document = export(tmp_path, sample_records())
    parser = HarParser(document)
    entries = [e for page in parser.pages for e in page.entries]
    assert len(entries) == 5
    assert entries[0].request.method == "GET"
    assert entries[0].response.status == 200
    assert entries[0].response.text == '{"ok": true}\n'
    assert entries[1].request.text == "name=value"
    assert [e.response.status for e in entries] == [200, 200, 404, 502, 0]


def test_har_filters_and_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = write_log(tmp_path / "traffic.jsonl", sample_records())
    assert run_har(str(log), "--status", "5xx") == 0
    document = json.loads(capsys.readouterr().out)
    validate(document)
    assert [e["response"]["status"] for e in document["log"]["entries"]] == [502]


def test_binary_truncated_and_stored_bodies(tmp_path: Path) -> None:
    binary = bytes(range(256)) * 40  # 10 KiB: the preview keeps 4 KiB
    big_text = b"0123456789" * 1000
    stored = b"stored in full " * 1000
    bodies = tmp_path / "bodies"
    bodies.mkdir()
    digest = hashlib.sha256(stored).hexdigest()
    (bodies / digest).write_bytes(stored)
    records = [exchange(resp_body=binary), exchange(seq=2, resp_body=big_text),
               exchange(seq=3, method="PUT", req_body=stored, resp_body=stored)]
    document = export(tmp_path, records, "--bodies", str(bodies))
    validate(document)
    c0, c1, c2 = (e["response"]["content"] for e in document["log"]["entries"])
    assert c0["encoding"] == "base64" and c0["_truncated"] and c0["size"] == len(binary)
    assert c1["_truncated"] and len(c1["text"]) == 4096 and c1["size"] == 10000
    assert c2["text"] == stored.decode() and "_truncated" not in c2
    assert document["log"]["entries"][2]["request"]["postData"]["text"] == stored.decode()
    assert c2["_sha256"] == digest


def test_gzip_response_is_decoded_as_har_wants(tmp_path: Path) -> None:
    plain = b"hello gzip " * 50
    packed = gzip.compress(plain)
    record = exchange(resp_body=packed)
    record["response"]["headers"].append(["Content-Encoding", "gzip"])
    document = export(tmp_path, [record])
    validate(document)
    content = document["log"]["entries"][0]["response"]["content"]
    assert content["text"] == plain.decode()
    assert content["size"] == len(plain)
    assert content["compression"] == len(plain) - len(packed)


def test_connect_tunnel_entry(tmp_path: Path) -> None:
    record = exchange(method="CONNECT", url="example.com:443", status=200, resp_body=b"",
                      tunnel={"host": "example.com", "port": 443, "bytes_up": 517, "bytes_down": 4242})
    document = export(tmp_path, [record])
    validate(document)
    e = document["log"]["entries"][0]
    assert e["request"]["url"] == "https://example.com:443/"
    assert e["_tunnel"]["bytes_down"] == 4242


def test_har_loads_in_mitmproxy_when_installed(tmp_path: Path) -> None:
    """mitmproxy reads HAR since 10.1; it is not in the test extra (see README), so this
    runs where `mitmdump` is on PATH or HANDSHAKE_PROXY_MITMDUMP names it."""
    import os
    import shutil
    import subprocess
    mitmdump = os.environ.get("HANDSHAKE_PROXY_MITMDUMP") or shutil.which("mitmdump")
    if not mitmdump:
        pytest.skip("mitmdump not installed (haralyzer is the HAR reader CI uses)")
    export(tmp_path, sample_records())
    result = subprocess.run([mitmdump, "-nr", str(tmp_path / "out.har")], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "POST http://127.0.0.1:8080/upload" in result.stdout
    assert "<< 404 Not Found" in result.stdout
