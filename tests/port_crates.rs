//! The OpenBSD port's crates.inc and distinfo are generated from Cargo.lock
//! by `tools/port/update-crates`; `--check` must catch every kind of drift.
//!
//! The committed files are checked against the repository (in a git
//! checkout, where the port directory belongs to the tree being built). The
//! generator itself is checked hermetically: a fixture Cargo.lock names two
//! hand-made .crate files in a private cache, so the expected SHA256 (base64
//! of the lock's checksum), SIZE and licence of each are known here.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn in_git_checkout() -> bool {
    Command::new("git")
        .arg("-C")
        .arg(root())
        .args(["rev-parse", "-q", "--verify", "HEAD"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A scratch directory removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ftp-proxy-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn sha256_hex(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

/// RFC 4648 base64 decoding, independent of the script's awk encoder.
fn base64_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut nbits = 0;
    let mut out = Vec::new();
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c).expect("base64 digit") as u32;
        bits = (bits << 6) | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fixture: Cargo.toml, Cargo.lock, port Makefile and a crate cache.
struct Fixture {
    dir: Scratch,
    /// (name, version, licence line as crates.inc must show it, sha hex, size)
    crates: Vec<(String, String, String, String, u64)>,
}

impl Fixture {
    fn new(name: &str) -> Self {
        let dir = Scratch::new(name);
        let d = &dir.0;
        let cache = d.join("cache");
        fs::create_dir_all(&cache).unwrap();
        let mut crates = Vec::new();
        // One with a licence, one without (ports prints XXX missing license).
        for (n, v, lic) in [
            ("zeta-sys", "1.2.3", Some("MIT OR Apache-2.0")),
            ("alpha", "0.1.0", None),
        ] {
            let src = d.join("src").join(format!("{n}-{v}"));
            fs::create_dir_all(&src).unwrap();
            let mut toml = format!("[package]\nname = \"{n}\"\nversion = \"{v}\"\n");
            if let Some(l) = lic {
                toml.push_str(&format!("license = \"{l}\"\n"));
            }
            fs::write(src.join("Cargo.toml"), toml).unwrap();
            let file = cache.join(format!("{n}-{v}.crate"));
            let st = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "cd '{}' && tar -cf - '{n}-{v}' | gzip -n > '{}'",
                    d.join("src").display(),
                    file.display()
                ))
                .status()
                .unwrap();
            assert!(st.success());
            let size = fs::metadata(&file).unwrap().len();
            let licence = lic.unwrap_or("XXX missing license").to_string();
            crates.push((
                n.to_string(),
                v.to_string(),
                licence,
                sha256_hex(&file),
                size,
            ));
        }
        let version = cargo_version();
        fs::write(
            d.join("Cargo.toml"),
            format!("[package]\nname = \"fixture\"\nversion = \"{version}\"\n"),
        )
        .unwrap();
        let mut lock = String::from("version = 4\n\n");
        for (n, v, _, sha, _) in &crates {
            lock.push_str(&format!(
                "[[package]]\nname = \"{n}\"\nversion = \"{v}\"\n\
                 source = \"registry+https://github.com/rust-lang/crates.io-index\"\n\
                 checksum = \"{sha}\"\n\n"
            ));
        }
        // A path package: not a crates.io distfile.
        lock.push_str(&format!(
            "[[package]]\nname = \"fixture\"\nversion = \"{version}\"\n"
        ));
        fs::write(d.join("Cargo.lock"), lock).unwrap();
        fs::write(d.join("Makefile"), format!("V =\t\t\t{version}\n")).unwrap();
        Fixture { dir, crates }
    }

    fn run(&self, check: bool) -> Output {
        let d = &self.dir.0;
        let mut cmd = Command::new("sh");
        cmd.arg(root().join("tools/port/update-crates"));
        if check {
            cmd.arg("--check");
        }
        cmd.env("CARGO_LOCK", d.join("Cargo.lock"))
            .env("CRATES_INC", d.join("crates.inc"))
            .env("DISTINFO", d.join("distinfo"))
            .env("PORT_MAKEFILE", d.join("Makefile"))
            .env("CRATE_CACHE", d.join("cache"))
            .output()
            .expect("run sh")
    }

    fn read(&self, f: &str) -> String {
        fs::read_to_string(self.dir.0.join(f)).unwrap()
    }

    fn write(&self, f: &str, s: &str) {
        fs::write(self.dir.0.join(f), s).unwrap()
    }
}

fn cargo_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

#[test]
fn committed_crates_inc_and_distinfo_are_current() {
    if !in_git_checkout() {
        eprintln!("SKIP: not a git checkout; port/ is checked in the repository only");
        return;
    }
    let out = Command::new("sh")
        .arg(root().join("tools/port/update-crates"))
        .arg("--check")
        .output()
        .expect("run sh");
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn writes_ports_format_from_the_lock_and_the_crates() {
    if !in_git_checkout() {
        eprintln!("SKIP: the distfile line needs git archive");
        return;
    }
    let fx = Fixture::new("crates-format");
    let out = fx.run(false);
    assert!(out.status.success(), "{}", text(&out));

    // crates.inc: Cargo.lock's order, licences as ports prints them.
    let want: String = fx
        .crates
        .iter()
        .map(|(n, v, l, _, _)| format!("MODCARGO_CRATES +=\t{n}\t{v}\t# {l}\n"))
        .collect();
    assert_eq!(fx.read("crates.inc"), want);

    // distinfo: SHA256 lines sorted by file, then SIZE lines.
    let distinfo = fx.read("distinfo");
    let lines: Vec<&str> = distinfo.lines().collect();
    let dist = format!("ftp-proxy-{}.tar.gz", cargo_version());
    let mut files: Vec<String> = fx
        .crates
        .iter()
        .map(|(n, v, ..)| format!("cargo/{n}-{v}.tar.gz"))
        .chain([dist.clone()])
        .collect();
    files.sort();
    assert_eq!(lines.len(), 2 * files.len(), "{distinfo}");
    for (i, f) in files.iter().enumerate() {
        let sha = lines[i]
            .strip_prefix(&format!("SHA256 ({f}) = "))
            .unwrap_or_else(|| panic!("line {i}: {}", lines[i]));
        let size = lines[files.len() + i]
            .strip_prefix(&format!("SIZE ({f}) = "))
            .unwrap_or_else(|| panic!("line {}: {}", files.len() + i, lines[files.len() + i]));
        assert_eq!(sha.len(), 44, "{sha}");
        if let Some((.., sha_hex, bytes)) = fx
            .crates
            .iter()
            .find(|(n, v, ..)| *f == format!("cargo/{n}-{v}.tar.gz"))
        {
            assert_eq!(&hex(&base64_decode(sha)), sha_hex, "{f}");
            assert_eq!(size, bytes.to_string(), "{f}");
        } else {
            assert!(size.parse::<u64>().unwrap() > 1000, "{f}: {size}");
        }
    }

    // And --check agrees with what was written.
    let out = fx.run(true);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn check_reports_every_kind_of_drift() {
    if !in_git_checkout() {
        eprintln!("SKIP: the distfile line needs git archive");
        return;
    }
    let fx = Fixture::new("crates-drift");
    assert!(fx.run(false).status.success());
    let inc = fx.read("crates.inc");
    let distinfo = fx.read("distinfo");

    // A licence edited by hand.
    fx.write("crates.inc", &inc.replace("# MIT OR Apache-2.0", "# MIT"));
    let out = fx.run(true);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("crates.inc is stale"), "{err}");
    assert!(
        err.contains("+ MODCARGO_CRATES +=\tzeta-sys\t1.2.3\t# MIT OR Apache-2.0"),
        "{err}"
    );
    assert!(
        err.contains("- MODCARGO_CRATES +=\tzeta-sys\t1.2.3\t# MIT\n"),
        "{err}"
    );
    fx.write("crates.inc", &inc);

    // A crate dropped from crates.inc.
    let dropped: String = inc
        .lines()
        .filter(|l| !l.contains("\talpha\t"))
        .map(|l| format!("{l}\n"))
        .collect();
    fx.write("crates.inc", &dropped);
    assert_eq!(fx.run(true).status.code(), Some(1));
    fx.write("crates.inc", &inc);

    // A wrong SIZE for a crate.
    let (_, _, _, _, size) = &fx.crates[1];
    let bad = distinfo.replace(
        &format!("SIZE (cargo/alpha-0.1.0.tar.gz) = {size}"),
        &format!("SIZE (cargo/alpha-0.1.0.tar.gz) = {}", size + 1),
    );
    assert_ne!(bad, distinfo);
    fx.write("distinfo", &bad);
    let out = fx.run(true);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("distinfo is stale"));

    // No line for the source distfile.
    let no_dist: String = distinfo
        .lines()
        .filter(|l| !l.contains("(ftp-proxy-"))
        .map(|l| format!("{l}\n"))
        .collect();
    fx.write("distinfo", &no_dist);
    let out = fx.run(true);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("want one SHA256 and one SIZE line"));
    fx.write("distinfo", &distinfo);
    assert!(fx.run(true).status.success());

    // A .crate whose bytes are not the ones Cargo.lock pins: refused.
    let (n, v, ..) = &fx.crates[0];
    let file = fx.dir.0.join("cache").join(format!("{n}-{v}.crate"));
    let mut bytes = fs::read(&file).unwrap();
    bytes.push(0);
    fs::write(&file, bytes).unwrap();
    let out = fx.run(true);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("but Cargo.lock says"));
}

#[test]
fn the_distfile_is_the_same_bytes_every_time() {
    if !in_git_checkout() {
        eprintln!("SKIP: make-distfile needs git archive");
        return;
    }
    let dir = Scratch::new("distfile");
    let make = |sub: &str| {
        let out = Command::new("sh")
            .arg(root().join("tools/port/make-distfile"))
            .arg("-o")
            .arg(dir.0.join(sub))
            .arg("HEAD")
            .output()
            .expect("run sh");
        assert!(out.status.success(), "{}", text(&out));
        let path = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        fs::read(path).unwrap()
    };
    let a = make("a");
    let b = make("b");
    assert!(a.len() > 1000);
    assert!(a == b, "two archives of HEAD differ");
    // gzip -n: no name, and a zero time in the header (bytes 4..8).
    assert_eq!(&a[..3], &[0x1f, 0x8b, 8]);
    assert_eq!(a[3] & 0x08, 0, "FNAME set");
    assert_eq!(&a[4..8], &[0, 0, 0, 0], "MTIME set");
}
