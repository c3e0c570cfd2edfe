"""Public key lines (phoenix/config/ssh_keys.py), checked against OpenSSH's own reading of them:
`ssh-keygen -l -f FILE` parses authorized_keys lines, options included (authfile.c
`sshkey_advance_past_options`), so every line we accept must be one it reads, and every blob we
call broken one it refuses. The three places that take a key use this one parser."""

from __future__ import annotations

import base64
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from phoenix.config import build_config
from phoenix.config.ssh_keys import KeyLineError, parse_public_key_line, public_key_problem
from phoenix.features.catalog import check_feature

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def real_keys(tmp_path_factory) -> dict[str, str]:
    """Public key lines made by ssh-keygen, one per type."""
    d = tmp_path_factory.mktemp("keys")
    keys = {}
    for kind, extra in (("ed25519", []), ("rsa", ["-b", "2048"]), ("ecdsa", ["-b", "256"]),
                        ("ecdsa384", ["-t", "ecdsa", "-b", "384"]), ("ecdsa521", ["-t", "ecdsa", "-b", "521"])):
        args = extra if kind.startswith("ecdsa3") or kind.startswith("ecdsa5") else ["-t", kind, *extra]
        subprocess.run(["ssh-keygen", "-q", "-N", "", "-C", f"{kind}@test", "-f", str(d / kind), *args],
                       check=True)
        keys[kind] = (d / f"{kind}.pub").read_text().strip()
    return keys


def openssh_reads(line: str, tmp_path: Path) -> bool:
    """Whether ssh-keygen reads `line` as an authorized_keys line."""
    path = tmp_path / "authorized_keys"
    path.write_text(line + "\n")
    return subprocess.run(["ssh-keygen", "-l", "-f", str(path)], capture_output=True,
                          check=False).returncode == 0


def cut(line: str, keep: int) -> str:
    key_type, blob = line.split()[:2]
    return f"{key_type} {base64.b64encode(base64.b64decode(blob)[:keep]).decode()} me@laptop"


OPTIONS = [
    'from="10.0.0.0/8",no-agent-forwarding',
    'command="echo \\"hi there\\"",restrict',
    'environment="A=b c",no-pty,no-port-forwarding,no-X11-forwarding',
    'expiry-time="20301231",permitopen="10.0.0.1:22"',
]


@pytest.mark.parametrize("kind", ["ed25519", "rsa", "ecdsa", "ecdsa384", "ecdsa521"])
def test_every_real_key_type_is_read_with_and_without_options(real_keys, kind, tmp_path):
    line = real_keys[kind]
    parsed = parse_public_key_line(line)
    assert parsed.options == "" and parsed.comment == f"{kind}@test" and parsed.line() == line
    for options in OPTIONS:
        with_options = f"{options} {line}"
        assert openssh_reads(with_options, tmp_path)
        parsed = parse_public_key_line(with_options)
        assert parsed.options == options and parsed.key == " ".join(line.split()[:2])


@pytest.mark.parametrize("kind", ["ed25519", "rsa", "ecdsa"])
def test_keys_cut_short_are_refused_as_openssh_refuses_them(real_keys, kind, tmp_path):
    line = real_keys[kind]
    length = len(base64.b64decode(line.split()[1]))
    for keep in (length // 2, length - 1, 19):
        short = cut(line, keep)
        assert not openssh_reads(short, tmp_path), short
        assert public_key_problem(short) is not None, short


def test_the_issues_examples():
    assert "cut short" in public_key_problem("ssh-rsa AAAAB3NzaC1yc2E= me@laptop")
    ed = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAII/jV6eMjJ2/+eGwf2WIdbYUJKgQRfNihMtYdvx9RyyF"
    assert public_key_problem(ed) is None
    assert "cut short" in public_key_problem(ed[:52] + " admin@laptop")


def test_wrong_type_inside_extra_bytes_and_weak_rsa(real_keys, tmp_path):
    ed_type, ed_blob = real_keys["ed25519"].split()[:2]
    assert "is a 'ssh-ed25519' key but the line says 'ssh-rsa'" in public_key_problem(f"ssh-rsa {ed_blob}")
    padded = base64.b64encode(base64.b64decode(ed_blob) + b"\0\0\0\0").decode()
    assert not openssh_reads(f"{ed_type} {padded}", tmp_path)
    assert "4 extra byte(s)" in public_key_problem(f"{ed_type} {padded}")
    weak = struct.pack(">I", 7) + b"ssh-rsa" + struct.pack(">I", 3) + b"\1\0\1" + struct.pack(">I", 65) \
        + b"\0" + b"\xff" * 64
    assert "512 bits; sshd refuses fewer than 1024" in public_key_problem(
        "ssh-rsa " + base64.b64encode(weak).decode())


@pytest.mark.parametrize("line, expected", [
    ("bogus-opt {key}", "unknown authorized_keys option 'bogus-opt'"),
    ('from="10.0.0.0/8 {key}', "unterminated quote"),
    ("no-pty,,pty {key}", "unknown authorized_keys option ''"),
    ("no-pty, {key}", "ends with ','"),
    ("from=10.0.0.0/8 {key}", "needs a quoted value"),
    ('command="x"no-pty {key}', "separated by ','"),
    ("{key}\nssh-ed25519 AAAA attacker", "single line"),
    ("{key}\rx", "single line"),
    ('command="a\x00b" {key}', "control characters"),
    ("{key} comment\x1b[2J", "control characters"),
])
def test_lines_sshd_would_refuse_or_that_could_break_out(real_keys, line, expected):
    text = line.format(key=real_keys["ed25519"])
    with pytest.raises(KeyLineError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        parse_public_key_line(text)


def test_options_are_refused_where_only_a_key_belongs(real_keys):
    assert "unknown SSH key type" in public_key_problem(f"no-pty {real_keys['ed25519']}", allow_options=False)


def test_the_three_places_use_the_one_parser(real_keys, doc, tmp_path):
    short = cut(real_keys["ed25519"], 30)
    # 1. user.ssh_authorized_keys (options allowed there: cloud-init writes the lines as they are)
    doc["vms"][0]["user"] = {"ssh_authorized_keys": [short, f"{OPTIONS[0]} {real_keys['rsa']}"]}
    from phoenix.config import ConfigError

    with pytest.raises(ConfigError) as caught:
        build_config(doc)
    assert [str(p) for p in caught.value.problems] == [
        "vms[0] (vmid 8001, phoenix-docker-01): user.ssh_authorized_keys[0]: the ssh-ed25519 key data "
        "is cut short (copy the whole line from the .pub file)"]
    # 2. the authorized-keys feature, keys with options
    assert check_feature("authorized-keys", {"keys": f"{OPTIONS[1]} {real_keys['ecdsa']}"}) == []
    assert check_feature("authorized-keys", {"keys": short})[0].endswith("line 1: the ssh-ed25519 key data "
                                                                         "is cut short (copy the whole line "
                                                                         "from the .pub file)")
    # 3. render --extra-key
    config = tmp_path / "vms.json"
    doc["vms"][0]["user"] = {"ssh_authorized_keys": [real_keys["ed25519"]]}
    import json

    config.write_text(json.dumps(doc))
    done = subprocess.run([sys.executable, "-m", "phoenix", "render", "8001", "--file", str(config),
                           "--extra-key", short], capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 2 and "extra SSH key" in done.stderr and "cut short" in done.stderr
    assert "Traceback" not in done.stderr
