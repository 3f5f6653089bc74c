"""Build the tiny guest: a Debian kernel plus a busybox initramfs, from Debian packages only.

The guest boots in a few seconds even under TCG, prints a heartbeat on its serial console
and powers off on the ACPI power button, which is all the driver and cluster tests need.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from corral.image.cpio import CpioWriter
from corral.image.kernel import extract_vmlinux
from corral.image.modules import index_modules, load_order

KERNEL_META = "linux-image-amd64"
BUSYBOX = "busybox-static"
# Kernel options the guest needs -> the module providing each when it is not built in.
NEEDED_MODULES = {
    "CONFIG_VIRTIO_PCI": "virtio_pci",
    "CONFIG_VIRTIO_BLK": "virtio_blk",
    "CONFIG_ACPI_BUTTON": "button",
    "CONFIG_INPUT_EVDEV": "evdev",
}
MANIFEST_FORMAT = 2


class ImageBuildError(RuntimeError):
    pass


def init_script() -> bytes:
    return resources.files("corral.image").joinpath("init.sh").read_bytes()


def _run(args: list[str], cwd: Path | None = None) -> str:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ImageBuildError(f"{' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def _run_with_lists(args: list[str], cwd: Path | None, log: Callable[[str], None]) -> str:
    """Run an apt command, refreshing the package lists once if they are missing or stale."""
    try:
        return _run(args, cwd)
    except ImageBuildError:
        log("apt: refreshing package lists")
        _run(["apt-get", "update"])
        return _run(args, cwd)


def resolve_kernel_package(log: Callable[[str], None]) -> str:
    """The real linux-image-<ver>-amd64 package the metapackage currently points to."""
    out = _run_with_lists(["apt-cache", "depends", KERNEL_META], None, log)
    for line in out.splitlines():
        dep = line.strip().removeprefix("|")
        if dep.startswith("Depends:"):
            name = dep.split(":", 1)[1].strip()
            if name.startswith("linux-image-") and name != KERNEL_META:
                return name
    raise ImageBuildError(f"cannot resolve {KERNEL_META} to a kernel package:\n{out}")


def fetch_deb(package: str, cache_dir: Path, log: Callable[[str], None]) -> Path:
    found = sorted(cache_dir.glob(f"{package}_*.deb"), key=lambda p: p.stat().st_mtime)
    if found:
        return found[-1]
    log(f"apt-get download {package}")
    _run_with_lists(["apt-get", "download", package], cache_dir, log)
    found = sorted(cache_dir.glob(f"{package}_*.deb"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise ImageBuildError(f"apt-get download {package} produced no .deb")
    return found[-1]


def _deb_version(deb: Path) -> str:
    return _run(["dpkg-deb", "-f", str(deb), "Version"]).strip()


def _kernel_config(root: Path) -> tuple[str, dict[str, str]]:
    configs = sorted((root / "boot").glob("config-*"))
    if len(configs) != 1:
        raise ImageBuildError(f"expected one kernel config in the package, found {configs}")
    release = configs[0].name.removeprefix("config-")
    options: dict[str, str] = {}
    for line in configs[0].read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            options[key] = value
    return release, options


def modules_to_load(options: dict[str, str]) -> list[str]:
    """The needed drivers that are modules; a needed driver missing altogether is an error."""
    wanted = []
    for option, module in NEEDED_MODULES.items():
        value = options.get(option)
        if value == "m":
            wanted.append(module)
        elif value != "y":
            raise ImageBuildError(f"kernel lacks {option}, the tiny guest needs it")
    return wanted


def _busybox_applets(busybox: Path) -> list[str]:
    """Applet paths ("bin/sh", "sbin/poweroff", ...) as the binary itself lists them."""
    return [a.strip("/") for a in _run([str(busybox), "--list-full"]).split()]


def build_initramfs(busybox: Path, modules: list[tuple[str, bytes]], init: bytes) -> bytes:
    """A gzipped newc archive: busybox with applet links, /init, modules and their order."""
    raw = io.BytesIO()
    cpio = CpioWriter(raw)
    for d in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "etc",
              "lib", "lib/modules", "tmp", "run"):  # fmt: skip
        cpio.directory(d)
    # The kernel opens /dev/console for init before init can mount devtmpfs.
    cpio.chardev("dev/console", 5, 1)
    cpio.file("bin/busybox", busybox.read_bytes(), 0o755)
    for applet in _busybox_applets(busybox):
        if applet != "bin/busybox":
            cpio.symlink(applet, "/bin/busybox")
    order = []
    for name, data in modules:
        cpio.file(f"lib/modules/{name}", data)
        order.append(f"/lib/modules/{name}\n")
    cpio.file("etc/corral-modules", "".join(order).encode())
    cpio.file("init", init, 0o755)
    cpio.close()
    return gzip.compress(raw.getvalue(), compresslevel=6, mtime=0)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise builders of the same image directory (tests and agents may race)."""
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _is_current(out: Path, init_sha: str) -> bool:
    try:
        manifest = json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return (
        (out / "vmlinuz").is_file()
        and (out / "initrd.img").is_file()
        and manifest.get("format") == MANIFEST_FORMAT
        and manifest.get("init_sha256") == init_sha
    )


def build_tiny(
    images_dir: Path,
    cache_dir: Path | None = None,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> Path:
    """Build images_dir/tiny/{vmlinuz,initrd.img,manifest.json}; returns images_dir/tiny.

    When the kernel supports PVH, `vmlinux` (the unpacked kernel) is added for faster boots.

    Skipped when already built from the current init script, unless `force`.
    """
    out = images_dir / "tiny"
    out.mkdir(parents=True, exist_ok=True)
    init = init_script()
    init_sha = hashlib.sha256(init).hexdigest()
    with _locked(out / ".lock"):
        if not force and _is_current(out, init_sha):
            log(f"tiny image already built in {out}")
            return out
        with tempfile.TemporaryDirectory(prefix="corral-tiny-") as tmp:
            work = Path(tmp)
            debs = cache_dir or work / "debs"
            debs.mkdir(parents=True, exist_ok=True)
            kernel_pkg = resolve_kernel_package(log)
            kernel_deb = fetch_deb(kernel_pkg, debs, log)
            busybox_deb = fetch_deb(BUSYBOX, debs, log)
            root = work / "root"
            for deb in (kernel_deb, busybox_deb):
                _run(["dpkg-deb", "-x", str(deb), str(root)])
            release, options = _kernel_config(root)
            wanted = modules_to_load(options)
            index = index_modules(root / "lib" / "modules" / release)
            modules = [(p.name, p.read_bytes()) for p in load_order(wanted, index)]
            log(f"modules: {' '.join(name for name, _ in modules) or '(none)'}")
            initrd = build_initramfs(root / "bin" / "busybox", modules, init)
            bzimage = root / "boot" / f"vmlinuz-{release}"
            # PVH needs the kernel's ELF note; without it only the bzImage is usable.
            vmlinux = None
            if options.get("CONFIG_PVH") == "y":
                vmlinux = extract_vmlinux(bzimage.read_bytes())
            manifest = {
                "format": MANIFEST_FORMAT,
                "kernel_package": kernel_pkg,
                "kernel_version": _deb_version(kernel_deb),
                "kernel_release": release,
                "busybox_version": _deb_version(busybox_deb),
                "modules": [name for name, _ in modules],
                "init_sha256": init_sha,
                "pvh": vmlinux is not None,
            }
            # Write side files first and the manifest last: a manifest means a whole image.
            (out / "manifest.json").unlink(missing_ok=True)
            shutil.copyfile(bzimage, out / "vmlinuz.tmp")
            (out / "vmlinuz.tmp").replace(out / "vmlinuz")
            if vmlinux is not None:
                (out / "vmlinux.tmp").write_bytes(vmlinux)
                (out / "vmlinux.tmp").replace(out / "vmlinux")
            else:
                (out / "vmlinux").unlink(missing_ok=True)
                log("kernel not unpacked for PVH; guests boot the slower bzImage")
            (out / "initrd.img.tmp").write_bytes(initrd)
            (out / "initrd.img.tmp").replace(out / "initrd.img")
            (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        log(f"tiny image built in {out} ({kernel_pkg} {manifest['kernel_version']})")
    return out
