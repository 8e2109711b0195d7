//! The cached guest image: Debian bookworm's qemu-system-x86 unpacked next
//! to the machine's own qemu-utils, a debootstrapped bookworm root file
//! system with the kernel PPTP stack and its tools, and an ext4 disk image
//! made from it.
//!
//! Everything lives under the cache folder (`$XDG_CACHE_HOME` or
//! `~/.cache`, then `pptp-xdp/guest`), never in the repository. Each of the
//! three parts carries a stamp file holding the recipe that made it; a part
//! is rebuilt only when it is missing or its recipe changed.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::util::{self, output};

/// Bump to rebuild every part of the cached guest.
const RECIPE: u32 = 1;

/// The Debian release of the guest (and of the qemu it runs on).
const SUITE: &str = "bookworm";

/// What the guest root file system holds besides debootstrap's minbase.
const ROOTFS_PACKAGES: &[&str] = &[
    "linux-image-amd64",
    "ppp",
    "pptpd",
    "pptp-linux",
    "iperf3",
    "iproute2",
    "iputils-ping",
    "procps",
    "kmod",
    "tcpdump",
    "python3",
    // Veth offloads for XDP runs in the guest (GRO on a peer that receives
    // redirected frames, transmit checksums off where XDP encapsulates).
    "ethtool",
    // Profiles of the forwarding vCPU (`lab.sh profile`, docs/bench-guest.md).
    "linux-perf",
];

/// The modules the initramfs needs to mount the root disk (MODULES=list
/// keeps it small: a smaller initrd boots several seconds faster on TCG).
const INITRAMFS_MODULES: &[&str] = &["virtio_pci", "virtio_blk", "ext4"];

/// The init of the guest (PID 1), baked into the disk image.
const INIT: &str = include_str!("../../guest/init.sh");

/// Size of the (sparse) root disk image.
const DISK_SIZE: &str = "2G";

/// A built guest: where qemu and the guest's boot files are.
#[derive(Debug, Clone)]
pub struct Image {
    /// `qemu-system-x86_64` unpacked from the bookworm package.
    pub qemu: PathBuf,
    /// Its module folder (the TCG accelerator is a module), for `QEMU_MODULE_DIR`.
    pub qemu_modules: PathBuf,
    /// Firmware folders (`-L`): qemu-system-data, seabios, ipxe-qemu.
    pub firmware: Vec<PathBuf>,
    /// The guest kernel.
    pub kernel: PathBuf,
    /// The guest initramfs.
    pub initrd: PathBuf,
    /// The root disk (raw ext4, `/dev/vda`; booted with `snapshot=on`).
    pub disk: PathBuf,
}

/// The cache folder of the guest.
pub fn cache_dir() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".cache"),
    };
    Ok(base.join("pptp-xdp/guest"))
}

/// The image as it would be in `dir` (built or not).
fn layout(dir: &Path) -> Image {
    let root = dir.join("qemu/root");
    Image {
        qemu: root.join("usr/bin/qemu-system-x86_64"),
        qemu_modules: root.join("usr/lib/x86_64-linux-gnu/qemu"),
        firmware: [
            "/usr/share/qemu",
            "/usr/share/seabios",
            "/usr/lib/ipxe/qemu",
        ]
        .iter()
        .map(PathBuf::from)
        .collect(),
        kernel: dir.join("vmlinuz"),
        initrd: dir.join("initrd.img"),
        disk: dir.join("disk.img"),
    }
}

/// The built image, building whatever part is missing or out of date
/// (needs root and the Debian mirror only when something is built).
pub fn ensure() -> anyhow::Result<Image> {
    build(false)
}

/// Builds the image (everything again with `force`), reusing fresh parts.
pub fn build(force: bool) -> anyhow::Result<Image> {
    let dir = cache_dir()?;
    let image = layout(&dir);
    let qemu_stamp = format!("recipe {RECIPE}\nqemu-system-x86/{SUITE}\n");
    let rootfs_stamp = format!(
        "recipe {RECIPE}\nsuite {SUITE}\npackages {}\ninitramfs modules {}\n",
        ROOTFS_PACKAGES.join(","),
        INITRAMFS_MODULES.join(",")
    );
    let disk_stamp = format!("{rootfs_stamp}size {DISK_SIZE}\ninit:\n{INIT}");

    let qemu_fresh =
        !force && stamp_matches(&dir.join("qemu.stamp"), &qemu_stamp) && qemu_runs(&image);
    let rootfs_fresh = !force && stamp_matches(&dir.join("rootfs.stamp"), &rootfs_stamp);
    let disk_fresh = rootfs_fresh
        && stamp_matches(&dir.join("disk.stamp"), &disk_stamp)
        && image.disk.is_file()
        && image.kernel.is_file()
        && image.initrd.is_file();
    if qemu_fresh && disk_fresh {
        return Ok(image);
    }
    util::require_root("building the test guest (apt, debootstrap, chroot)")?;
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    if !qemu_fresh {
        build_qemu(&dir, &image)?;
        write_stamp(&dir.join("qemu.stamp"), &qemu_stamp)?;
    }
    if !rootfs_fresh {
        let _ = fs::remove_file(dir.join("disk.stamp"));
        build_rootfs(&dir)?;
        write_stamp(&dir.join("rootfs.stamp"), &rootfs_stamp)?;
    }
    if !disk_fresh {
        build_disk(&dir, &image)?;
        write_stamp(&dir.join("disk.stamp"), &disk_stamp)?;
    }
    util::step(&format!("guest image ready in {}", dir.display()));
    Ok(image)
}

fn stamp_matches(path: &Path, recipe: &str) -> bool {
    fs::read_to_string(path).is_ok_and(|s| s == recipe)
}

fn write_stamp(path: &Path, recipe: &str) -> anyhow::Result<()> {
    fs::write(path, recipe).with_context(|| format!("writing {}", path.display()))
}

/// Whether the unpacked qemu starts (its libraries and firmware are there).
fn qemu_runs(image: &Image) -> bool {
    image.firmware.iter().all(|d| d.is_dir())
        && output(
            Command::new(&image.qemu)
                .env("QEMU_MODULE_DIR", &image.qemu_modules)
                .arg("--version"),
        )
        .is_some()
}

fn apt_get() -> Command {
    let mut cmd = Command::new("apt-get");
    cmd.env("DEBIAN_FRONTEND", "noninteractive")
        // Other tools may be running apt at the same time: wait for the lock.
        .args([
            "-q",
            "-o",
            "DPkg::Lock::Timeout=600",
            "-o",
            "APT::Sandbox::User=root",
        ]);
    cmd
}

/// qemu-system-x86 cannot be installed with apt next to the machine's
/// newer qemu-utils (a Breaks conflict), so the bookworm packages are
/// downloaded and unpacked into the cache; only the libraries the emulator
/// links (its Depends line) and its firmware packages are installed.
fn build_qemu(dir: &Path, image: &Image) -> anyhow::Result<()> {
    util::step(&format!(
        "guest: unpacking qemu-system-x86 from {SUITE} into the cache"
    ));
    let work = dir.join("qemu.tmp");
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work)?;
    let packages = [
        format!("qemu-system-x86/{SUITE}"),
        format!("qemu-system-common/{SUITE}"),
    ];
    let download =
        |work: &Path| util::exec(apt_get().current_dir(work).arg("download").args(&packages));
    if download(&work).is_err() {
        util::exec(apt_get().arg("update"))?;
        download(&work).context("apt-get download of the bookworm qemu packages")?;
    }
    let mut debs = Vec::new();
    for entry in fs::read_dir(&work)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "deb") {
            debs.push(path);
        }
    }
    debs.sort();
    let system = debs
        .iter()
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("qemu-system-x86_"))
        })
        .context("apt-get download gave no qemu-system-x86 package")?;
    let depends = output(
        Command::new("dpkg-deb")
            .arg("-f")
            .arg(system)
            .arg("Depends"),
    )
    .context("reading the Depends line of qemu-system-x86")?;
    let root = work.join("root");
    for deb in &debs {
        util::exec(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root))?;
    }
    // qemu-system-common is unpacked (it holds the TCG accelerator module);
    // its own Depends serve its helpers and display modules, unused here.
    let wanted: Vec<String> = dependency_names(&depends)
        .into_iter()
        .filter(|p| p != "qemu-system-common")
        .collect();
    let missing: Vec<&String> = wanted.iter().filter(|p| !installed(p)).collect();
    if !missing.is_empty() {
        util::step(&format!(
            "guest: installing qemu's libraries and firmware: {}",
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ));
        let install = |missing: &[&String]| {
            util::exec(
                apt_get()
                    .args(["install", "-y", "--no-install-recommends"])
                    .args(missing),
            )
        };
        if install(&missing).is_err() {
            util::exec(apt_get().arg("update"))?;
            install(&missing)?;
        }
    }
    let final_root = dir.join("qemu/root");
    let _ = fs::remove_dir_all(dir.join("qemu"));
    fs::create_dir_all(dir.join("qemu"))?;
    fs::rename(&root, &final_root)?;
    let _ = fs::remove_dir_all(&work);
    let libs = output(Command::new("ldd").arg(&image.qemu)).unwrap_or_default();
    let unresolved: Vec<&str> = libs.lines().filter(|l| l.contains("not found")).collect();
    if !unresolved.is_empty() {
        bail!(
            "qemu-system-x86_64 misses libraries:\n{}",
            unresolved.join("\n")
        );
    }
    if !qemu_runs(image) {
        bail!("the unpacked {} does not start", image.qemu.display());
    }
    Ok(())
}

/// Package names of a Depends line: the first of each alternative, without
/// version constraints or architecture qualifiers.
fn dependency_names(depends: &str) -> Vec<String> {
    depends
        .split(',')
        .filter_map(|dep| {
            let first = dep.split('|').next()?.trim();
            let name = first.split([' ', '(', ':']).next()?.trim();
            (!name.is_empty()).then(|| name.to_owned())
        })
        .collect()
}

fn installed(package: &str) -> bool {
    output(Command::new("dpkg-query").args(["-W", "-f=${Status}", package]))
        .is_some_and(|s| s.contains("install ok installed"))
}

/// The Debian mirror of the machine's apt sources (deb822 `.sources` files
/// first, then one-line `sources.list` files), so no host name is written
/// here. Entries of a plain release suite (no `-security`/`-updates`) with
/// the `main` component qualify; one carrying the guest's suite wins.
pub fn debian_mirror() -> anyhow::Result<String> {
    let mut candidates: Vec<(bool, String)> = Vec::new();
    let mut files: Vec<PathBuf> = fs::read_dir("/etc/apt/sources.list.d")
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    for file in &files {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        if file.extension().is_some_and(|e| e == "sources") {
            candidates.extend(deb822_mirrors(&text));
        } else if file.extension().is_some_and(|e| e == "list") {
            candidates.extend(one_line_mirrors(&text));
        }
    }
    if let Ok(text) = fs::read_to_string("/etc/apt/sources.list") {
        candidates.extend(one_line_mirrors(&text));
    }
    candidates.sort_by_key(|(ours, _)| !ours);
    candidates
        .into_iter()
        .map(|(_, uri)| uri)
        .next()
        .context("no Debian mirror with a plain release suite and `main` in the apt sources")
}

fn qualifies(uri: &str, suites: &[&str], components: &[&str]) -> Option<(bool, String)> {
    let plain = suites.iter().any(|s| !s.contains('-') && !s.contains('/'));
    let http = uri.starts_with("http://") || uri.starts_with("https://");
    (plain && http && components.contains(&"main")).then(|| {
        (
            suites.contains(&SUITE),
            uri.trim_end_matches('/').to_owned(),
        )
    })
}

fn deb822_mirrors(text: &str) -> Vec<(bool, String)> {
    let mut found = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| -> Vec<String> {
            stanza
                .lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .find_map(|l| {
                    let (key, value) = l.split_once(':')?;
                    key.trim()
                        .eq_ignore_ascii_case(name)
                        .then(|| value.split_whitespace().map(str::to_owned).collect())
                })
                .unwrap_or_default()
        };
        let types = field("Types");
        let uris = field("URIs");
        let suites = field("Suites");
        let components = field("Components");
        let enabled = field("Enabled");
        if !types.iter().any(|t| t == "deb") || enabled.iter().any(|e| e == "no") {
            continue;
        }
        let suites: Vec<&str> = suites.iter().map(String::as_str).collect();
        let components: Vec<&str> = components.iter().map(String::as_str).collect();
        found.extend(
            uris.iter()
                .filter_map(|u| qualifies(u, &suites, &components)),
        );
    }
    found
}

fn one_line_mirrors(text: &str) -> Vec<(bool, String)> {
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next()?.trim();
            let rest = line.strip_prefix("deb ")?.trim_start();
            // Skip an options block: deb [arch=amd64 signed-by=...] URI ...
            let rest = match rest.strip_prefix('[') {
                Some(r) => r.split_once(']')?.1,
                None => rest,
            };
            let mut words = rest.split_whitespace();
            let uri = words.next()?;
            let suite = words.next()?;
            let components: Vec<&str> = words.collect();
            qualifies(uri, &[suite], &components)
        })
        .collect()
}

fn build_rootfs(dir: &Path) -> anyhow::Result<()> {
    if output(Command::new("debootstrap").arg("--version")).is_none() {
        util::step("guest: installing debootstrap");
        util::exec(apt_get().args(["install", "-y", "--no-install-recommends", "debootstrap"]))?;
    }
    let mirror = debian_mirror()?;
    let tmp = dir.join("rootfs.tmp");
    let _ = fs::remove_dir_all(&tmp);
    let log = dir.join("debootstrap.log");
    util::step(&format!(
        "guest: debootstrap {SUITE} from {mirror} (2 to 6 minutes; log in {})",
        log.display()
    ));
    let log_file = fs::File::create(&log)?;
    let status = Command::new("debootstrap")
        .arg("--variant=minbase")
        .arg(format!("--include={}", ROOTFS_PACKAGES.join(",")))
        .arg(SUITE)
        .arg(&tmp)
        .arg(&mirror)
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .status()
        .context("starting debootstrap")?;
    if !status.success() {
        let text = fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        bail!(
            "debootstrap failed ({status}); end of {}:\n{}",
            log.display(),
            tail.join("\n")
        );
    }
    // A small initramfs: only what mounts the virtio root disk.
    let conf = tmp.join("etc/initramfs-tools/initramfs.conf");
    let text = fs::read_to_string(&conf).with_context(|| format!("reading {}", conf.display()))?;
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("MODULES=") {
                "MODULES=list"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    fs::write(&conf, text + "\n")?;
    let modules = tmp.join("etc/initramfs-tools/modules");
    let mut list = fs::read_to_string(&modules).unwrap_or_default();
    for m in INITRAMFS_MODULES {
        list.push_str(m);
        list.push('\n');
    }
    fs::write(&modules, list)?;
    util::exec(
        Command::new("chroot")
            .arg(&tmp)
            .args(["update-initramfs", "-u", "-k", "all"]),
    )?;
    fs::write(tmp.join("etc/hostname"), "pxg\n")?;
    let rootfs = dir.join("rootfs");
    let _ = fs::remove_dir_all(&rootfs);
    fs::rename(&tmp, &rootfs)?;
    Ok(())
}

/// The newest file in `dir` whose name starts with `prefix`.
fn newest(dir: &Path, prefix: &str) -> anyhow::Result<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect();
    found.sort();
    found
        .pop()
        .with_context(|| format!("no {prefix}* in {}", dir.display()))
}

fn build_disk(dir: &Path, image: &Image) -> anyhow::Result<()> {
    util::step("guest: making the root disk image");
    let rootfs = dir.join("rootfs");
    let init = rootfs.join("sbin/pxg-init");
    fs::write(&init, INIT)?;
    util::exec(Command::new("chmod").arg("755").arg(&init))?;
    let boot = rootfs.join("boot");
    fs::copy(newest(&boot, "vmlinuz-")?, &image.kernel)?;
    fs::copy(newest(&boot, "initrd.img-")?, &image.initrd)?;
    let tmp = dir.join("disk.img.tmp");
    let _ = fs::remove_file(&tmp);
    util::exec(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "pxgroot", "-d"])
            .arg(&rootfs)
            .arg(&tmp)
            .arg(DISK_SIZE),
    )?;
    fs::rename(&tmp, &image.disk)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_line() {
        let names = dependency_names(
            "libaio1 (>= 0.3.93), libc6 (>= 2.34), libfoo:any | libbar, qemu-system-common (= 1:7.2), seabios",
        );
        assert_eq!(
            names,
            [
                "libaio1",
                "libc6",
                "libfoo",
                "qemu-system-common",
                "seabios"
            ]
        );
    }

    #[test]
    fn mirror_from_deb822() {
        let text = "Types: deb\n# a comment: x\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n\
                    Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n";
        assert_eq!(
            deb822_mirrors(text),
            [(true, "http://mirror.example/debian".to_owned())]
        );
    }

    #[test]
    fn mirror_from_one_line() {
        let text = "# deb http://old.example/debian bookworm main\n\
                    deb [arch=amd64] http://mirror.example/debian/ trixie main contrib\n\
                    deb http://mirror.example/debian-security trixie-security main\n";
        assert_eq!(
            one_line_mirrors(text),
            [(false, "http://mirror.example/debian".to_owned())]
        );
    }
}
