"""The Debian mirror for local images and scripts/fetch-cloud-init.sh: this machine's own apt
mirror (sources.list, sources.list.d/*.list and *.sources), overridable, with the image cache
key unchanged for the default mirror; and fetch-cloud-init.sh refusing a Release file that
Debian's archive keys did not sign (a real apt against a local HTTP mirror)."""

from __future__ import annotations

import functools
import http.server
import subprocess
import threading
from pathlib import Path

import pytest

from phoenix.localboot.apt_mirror import DEFAULT_MIRROR, debian_mirror, host_debian_mirror
from phoenix.localboot.image import ImageRecipe, _recipes

ROOT = Path(__file__).resolve().parents[1]


def etc_apt(tmp_path: Path, sources_list: str = "", **parts: str) -> Path:
    base = tmp_path / "apt"
    (base / "sources.list.d").mkdir(parents=True)
    (base / "sources.list").write_text(sources_list)
    for name, text in parts.items():
        (base / "sources.list.d" / name.replace("_", ".")).write_text(text)
    return base


def test_one_line_format_with_options_skips_security_and_other_distributions(tmp_path):
    apt = etc_apt(tmp_path, """
# deb http://commented.example/debian bookworm main
deb [signed-by=/usr/share/keyrings/x.gpg] http://security.debian.org/debian-security bookworm-security main
deb http://archive.ubuntu.com/ubuntu noble main
deb [arch=amd64] http://mirror.lan/debian/ bookworm main contrib
""")
    assert host_debian_mirror(apt) == "http://mirror.lan/debian"


def test_deb822_sources_and_an_apt_proxy(tmp_path):
    apt = etc_apt(tmp_path, "", debian_sources="""Types: deb
URIs: http://apt-cache.lan:3142/deb.debian.org/debian
Suites: trixie trixie-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://apt-cache.lan:3142/deb.debian.org/debian-security
Suites: trixie-security
Components: main
""")
    assert host_debian_mirror(apt) == "http://apt-cache.lan:3142/deb.debian.org/debian"


def test_disabled_entries_updates_only_and_nothing_found(tmp_path):
    apt = etc_apt(tmp_path, "deb http://upd.lan/debian bookworm-updates main\n", off_sources="""Types: deb
URIs: http://disabled.lan/debian
Suites: bookworm
Components: main
Enabled: no
""")
    assert host_debian_mirror(apt) == "http://upd.lan/debian"  # a main suite would win; none is on
    assert host_debian_mirror(etc_apt(tmp_path / "empty")) is None


def test_override_and_default(tmp_path, monkeypatch):
    apt = etc_apt(tmp_path, "deb http://mirror.lan/debian bookworm main\n")
    monkeypatch.delenv("PHOENIX_DEBIAN_MIRROR", raising=False)
    assert debian_mirror(apt) == "http://mirror.lan/debian"
    assert debian_mirror(etc_apt(tmp_path / "none")) == DEFAULT_MIRROR
    monkeypatch.setenv("PHOENIX_DEBIAN_MIRROR", "http://override.lan/debian/")
    assert debian_mirror(apt) == "http://override.lan/debian"


def test_the_cache_key_is_unchanged_for_the_default_mirror():
    """Images cached before the mirror was resolved are still found (not rebuilt)."""
    for name, recipe in _recipes(DEFAULT_MIRROR).items():
        before = ImageRecipe(name=name, suite=recipe.suite, extra_packages=recipe.extra_packages)
        assert recipe.cache_key() == before.cache_key()
        elsewhere = _recipes("http://mirror.lan/debian")[name]
        assert elsewhere.cache_key() != before.cache_key()  # another mirror's image is its own
        assert (elsewhere.mirror, elsewhere.guest_mirror) == ("http://mirror.lan/debian",) * 2


def test_the_script_resolves_the_mirror_with_the_same_code():
    done = subprocess.run(["python3", str(ROOT / "phoenix" / "localboot" / "apt_mirror.py")],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == debian_mirror()


@pytest.fixture
def unsigned_mirror(tmp_path):
    """An HTTP mirror whose trixie Release file nobody signed (it lists a real-looking index)."""
    dists = tmp_path / "mirror" / "dists" / "trixie"
    (dists / "main" / "binary-amd64").mkdir(parents=True)
    (dists / "main" / "binary-amd64" / "Packages").write_text("")
    (dists / "Release").write_text("Origin: Debian\nSuite: trixie\nCodename: trixie\n"
                                   "Architectures: amd64\nComponents: main\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "mirror"))
    handler.log_message = lambda *a: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_fetch_cloud_init_refuses_an_unsigned_mirror(unsigned_mirror, tmp_path):
    import os

    done = subprocess.run(["bash", str(ROOT / "scripts" / "fetch-cloud-init.sh"), "trixie",
                           str(tmp_path / "dest")], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PHOENIX_DEBIAN_MIRROR": unsigned_mirror}, check=False)
    assert done.returncode == 1
    assert f"could not download cloud-init from {unsigned_mirror} trixie" in done.stderr
    assert "is not signed" in done.stderr  # apt, verifying against Debian's keyring
    assert not (tmp_path / "dest").exists()
    script = (ROOT / "scripts" / "fetch-cloud-init.sh").read_text()
    assert "trusted=yes" not in script and "signed-by=$KEYRING" in script
