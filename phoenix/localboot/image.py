"""Debian guest images (bookworm, trixie) built with debootstrap, cached by a hash of their recipe.

Two variants per suite: ``debian-<suite>`` (cloud-init + openssh-server, no guest agent: what a stock
cloud image gives, so cloud-init must install the agent) and ``debian-<suite>-agent`` (the
agent baked in: the fast path, a template that needs no ``package_update``).

The disk is made without loop devices (so it works in containers and without privileges for
mounting): the root tree goes into an ext4 file with ``mkfs.ext4 -d``, which is copied behind a
partition table made with ``sfdisk`` and compressed to qcow2. The kernel and initrd are copied
out for direct kernel boot (the image has no bootloader).

Builds go into a temporary directory next to the cache entry and are renamed into place in one
step, so an interrupted build never leaves a half image that a later run would trust.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from phoenix.localboot.apt_mirror import DEBIAN_KEYRING, DEFAULT_MIRROR, debian_mirror

Log = Callable[[str], None]

# Bump when the steps in _configure_root or _make_disk change: the hash must cover how the
# image is made, not only what goes in, or a cached image from older steps would be reused.
BUILD_STEPS_VERSION = 3

BASE_PACKAGES: tuple[str, ...] = (
    "linux-image-amd64",
    "cloud-init",
    # Without it cloud-init's Python dependencies stay unconfigured and cloud-init never runs.
    "python3-cffi-backend",
    "systemd-sysv",
    "systemd-resolved",
    "udev",
    "dbus",
    "openssh-server",
    "cloud-guest-utils",  # growpart
    "e2fsprogs",
    "fdisk",
    "iproute2",
    "sudo",
    "ca-certificates",
    "netbase",
    "locales",
)


@dataclass(frozen=True)
class ImageRecipe:
    """Everything that decides the bytes of an image; its hash is the cache key."""

    name: str
    suite: str = "bookworm"
    # Where debootstrap fetches from, and the guest's own apt sources. RECIPES take this
    # machine's apt mirror (apt_mirror.py); the defaults stay deb.debian.org so a recipe whose
    # mirror resolves to it keeps today's cache key (cached images are not rebuilt). http, because
    # this network's proxy intercepts HTTPS.
    mirror: str = DEFAULT_MIRROR
    guest_mirror: str = DEFAULT_MIRROR
    packages: tuple[str, ...] = BASE_PACKAGES
    extra_packages: tuple[str, ...] = ()
    filesystem_mb: int = 2048
    steps_version: int = BUILD_STEPS_VERSION

    def cache_key(self) -> str:
        data = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(data).hexdigest()[:16]


# Guest generations the real-boot suite covers: bookworm ships cloud-init 22.4, trixie 25.1 (the
# generation of Ubuntu 24.04's images). The same recipe builds both; only the suite differs.
SUITES: tuple[str, ...] = ("bookworm", "trixie")


def _recipes(mirror: str | None = None) -> dict[str, ImageRecipe]:
    """The recipes, fetching from `mirror` (default: $PHOENIX_DEBIAN_MIRROR, else this machine's
    own apt mirror, else deb.debian.org)."""
    mirror = mirror or debian_mirror()
    recipes: dict[str, ImageRecipe] = {}
    for suite in SUITES:
        recipes[f"debian-{suite}"] = ImageRecipe(name=f"debian-{suite}", suite=suite, mirror=mirror,
                                                 guest_mirror=mirror)
        recipes[f"debian-{suite}-agent"] = ImageRecipe(
            name=f"debian-{suite}-agent", suite=suite, mirror=mirror, guest_mirror=mirror,
            extra_packages=("qemu-guest-agent",)
        )
    return recipes


RECIPES: dict[str, ImageRecipe] = _recipes()


def image_name(suite: str, *, agent: bool) -> str:
    """The recipe name for a guest generation, with or without the agent baked in."""
    if suite not in SUITES:
        raise ImageBuildError(f"unknown suite {suite!r}; known: {', '.join(SUITES)}")
    return f"debian-{suite}-agent" if agent else f"debian-{suite}"


@dataclass(frozen=True)
class BuiltImage:
    """A cached image: a qcow2 without bootloader plus the kernel and initrd to boot it."""

    name: str
    directory: Path
    disk: Path
    kernel: Path
    initrd: Path
    append: str = "root=LABEL=rootfs ro console=ttyS0"
    recipe: dict = field(default_factory=dict)


class ImageBuildError(RuntimeError):
    pass


def cache_dir() -> Path:
    """``$PHOENIX_CACHE_DIR`` or ``~/.cache/phoenix``."""
    configured = os.environ.get("PHOENIX_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "phoenix"


def image_dir(recipe: ImageRecipe, root: Path | None = None) -> Path:
    return (root or cache_dir()) / "images" / f"{recipe.name}-{recipe.cache_key()}"


def _as_built(recipe: ImageRecipe, directory: Path) -> BuiltImage:
    return BuiltImage(
        name=recipe.name,
        directory=directory,
        disk=directory / "disk.qcow2",
        kernel=directory / "vmlinuz",
        initrd=directory / "initrd.img",
        recipe=asdict(recipe),
    )


def cached_image(recipe: ImageRecipe, root: Path | None = None) -> BuiltImage | None:
    """The cached image for this recipe, or None when it was never (completely) built."""
    directory = image_dir(recipe, root)
    built = _as_built(recipe, directory)
    if all(p.is_file() for p in (built.disk, built.kernel, built.initrd)):
        return built
    return None


def ensure_image(name: str, *, log: Log = print, root: Path | None = None) -> BuiltImage:
    """The named image from the cache, built first when the cache has none for its recipe."""
    if name not in RECIPES:
        raise ImageBuildError(f"unknown image {name!r}; known: {', '.join(sorted(RECIPES))}")
    recipe = RECIPES[name]
    found = cached_image(recipe, root)
    if found is not None:
        log(f"image {name}: cached at {found.directory}")
        return found
    return build_image(recipe, log=log, root=root)


def _run(argv: list[str], log: Log, *, timeout_s: float = 1200) -> None:
    try:
        done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=timeout_s)
    except FileNotFoundError as exc:
        raise ImageBuildError(f"{argv[0]} is not installed ({exc})") from exc
    except subprocess.TimeoutExpired as exc:
        raise ImageBuildError(f"{argv[0]} did not finish within {timeout_s:.0f} s") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise ImageBuildError(f"{' '.join(argv[:3])} ... failed (rc {done.returncode}):\n{tail}")


def check_build_prerequisites() -> list[str]:
    """What is missing to build an image here (empty when a build can run)."""
    problems = []
    if os.geteuid() != 0:
        problems.append("building an image needs root (debootstrap, chroot)")
    for tool in ("debootstrap", "sfdisk", "mkfs.ext4", "qemu-img", "chroot"):
        if shutil.which(tool) is None:
            problems.append(f"{tool} not found on PATH")
    if not Path(DEBIAN_KEYRING).is_file():
        problems.append(f"{DEBIAN_KEYRING} is missing (apt-get install debian-archive-keyring): "
                        "the mirror's Release files are verified with it")
    return problems


def build_image(recipe: ImageRecipe, *, log: Log = print, root: Path | None = None) -> BuiltImage:
    """Build the image into a temporary directory and rename it into the cache."""
    problems = check_build_prerequisites()
    if problems:
        raise ImageBuildError("cannot build image: " + "; ".join(problems))
    final = image_dir(recipe, root)
    final.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    # Same parent directory as the final entry, so the rename is atomic (same filesystem).
    work = Path(tempfile.mkdtemp(prefix=f".build-{recipe.name}-", dir=final.parent))
    try:
        tree = work / "root"
        packages = ",".join(recipe.packages + recipe.extra_packages)
        log(f"image {recipe.name}: debootstrap {recipe.suite} (a few minutes) ...")
        _run(
            # The mirror may be any machine's: its Release file is verified with Debian's keys.
            ["debootstrap", f"--keyring={DEBIAN_KEYRING}", "--variant=minbase", f"--include={packages}",
             recipe.suite, str(tree), recipe.mirror],
            log,
        )
        log(f"image {recipe.name}: configuring the root tree ...")
        _configure_root(tree, recipe, log)
        out = work / "image"
        out.mkdir()
        _copy_boot_files(tree, out)
        log(f"image {recipe.name}: making the disk (mkfs.ext4 -d, qcow2) ...")
        _make_disk(tree, work, out / "disk.qcow2", recipe.filesystem_mb, log)
        (out / "recipe.json").write_text(json.dumps(asdict(recipe), indent=2) + "\n")
        try:
            out.rename(final)
        except OSError:
            # Another build finished first: keep its result, ours is identical by recipe.
            if cached_image(recipe, root) is None:
                raise
        log(f"image {recipe.name}: built in {time.monotonic() - started:.0f} s -> {final}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    built = cached_image(recipe, root)
    if built is None:
        raise ImageBuildError(f"image {recipe.name}: build finished but {final} is incomplete")
    return built


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _configure_root(tree: Path, recipe: ImageRecipe, log: Log) -> None:
    _write(
        tree / "etc/apt/sources.list",
        f"deb {recipe.guest_mirror} {recipe.suite} main\n"
        f"deb {recipe.guest_mirror} {recipe.suite}-updates main\n"
        f"deb {recipe.guest_mirror.replace('/debian', '/debian-security')} "
        f"{recipe.suite}-security main\n",
    )
    # The image has no bootloader; the kernel command line says root=LABEL=rootfs ro, and this
    # entry makes systemd remount it read-write.
    _write(tree / "etc/fstab", "LABEL=rootfs / ext4 defaults,errors=remount-ro 0 1\n")
    # Only the NoCloud seed exists locally; probing other datasources costs minutes.
    _write(tree / "etc/cloud/cloud.cfg.d/90_phoenix_datasource.cfg",
           "datasource_list: [NoCloud, None]\n")
    # Without a generated locale cloud-init's locale module fails and its status is "error".
    locale_gen = tree / "etc/locale.gen"
    text = locale_gen.read_text() if locale_gen.exists() else ""
    _write(locale_gen, text + "en_US.UTF-8 UTF-8\n")
    _write(tree / "etc/default/locale", "LANG=en_US.UTF-8\n")
    _run(["chroot", str(tree), "locale-gen"], log)
    _run(["chroot", str(tree), "systemctl", "enable", "systemd-networkd", "systemd-resolved"], log)
    # Every clone must get its own identity on first boot.
    _write(tree / "etc/machine-id", "")
    (tree / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    for key in (tree / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    _write(tree / "etc/hostname", "localhost\n")
    _run(["chroot", str(tree), "apt-get", "clean"], log)
    shutil.rmtree(tree / "var/lib/apt/lists", ignore_errors=True)
    (tree / "var/lib/apt/lists/partial").mkdir(parents=True)


def _copy_boot_files(tree: Path, out: Path) -> None:
    kernels = sorted((tree / "boot").glob("vmlinuz-*"))
    initrds = sorted((tree / "boot").glob("initrd.img-*"))
    if not kernels or not initrds:
        raise ImageBuildError(f"no kernel/initrd in {tree / 'boot'} (was linux-image installed?)")
    shutil.copyfile(kernels[-1], out / "vmlinuz")
    shutil.copyfile(initrds[-1], out / "initrd.img")


def _make_disk(tree: Path, work: Path, target: Path, filesystem_mb: int, log: Log) -> None:
    part = work / "part.img"
    raw = work / "disk.raw"
    offset_mb = 1  # partition at sector 2048, the usual alignment
    _run(["truncate", "-s", f"{filesystem_mb}M", str(part)], log)
    _run(["mkfs.ext4", "-q", "-L", "rootfs", "-d", str(tree), str(part)], log)
    _run(["truncate", "-s", f"{filesystem_mb + offset_mb}M", str(raw)], log)
    layout = "label: dos\nstart=2048, type=83\n"
    try:
        done = subprocess.run(["sfdisk", "--quiet", str(raw)], input=layout, text=True,
                              check=False, capture_output=True, timeout=60)
    except FileNotFoundError as exc:
        raise ImageBuildError("sfdisk is not installed") from exc
    if done.returncode != 0:
        raise ImageBuildError(f"sfdisk failed: {done.stderr.strip()}")
    _run(["dd", f"if={part}", f"of={raw}", "bs=1M", f"seek={offset_mb}",
          "conv=notrunc,sparse", "status=none"], log)
    part.unlink()
    _run(["qemu-img", "convert", "-c", "-O", "qcow2", str(raw), str(target)], log)
