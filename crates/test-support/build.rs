//! Fingerprints the migrations so that the template database is rebuilt whenever any
//! migration changes, not only when one is added.

use std::fs;
use std::path::Path;

/// Relative to the package: cargo resolves relative `rerun-if-changed` paths against
/// the package it builds, so two checkouts sharing one target directory (a clone for CI
/// beside the working copy) each see their own migrations. Absolute paths would keep
/// pointing at whichever checkout built first, and the template of other migrations
/// would be used.
const MIGRATIONS: &str = "../../migrations";

fn main() {
    let dir = Path::new(MIGRATIONS);
    println!("cargo:rerun-if-changed={MIGRATIONS}");
    let mut files = Vec::new();
    collect(dir, &mut files);
    files.sort();
    // FNV-1a over every path and content: stable across compiler versions.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for path in files {
        println!("cargo:rerun-if-changed={}", path.display());
        let name = path
            .strip_prefix(dir)
            .unwrap_or(&path)
            .display()
            .to_string();
        let content = fs::read(&path).unwrap_or_default();
        for byte in name.bytes().chain(content) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    println!("cargo:rustc-env=MIGRATIONS_FINGERPRINT={hash:016x}");
}

fn collect(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            collect(&path, files);
        } else {
            files.push(path);
        }
    }
}
