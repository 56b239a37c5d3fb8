//! A build of ccbft-core without its `simulator` feature cannot name the simulator's keyed-MAC
//! signer and verifier (`SimKeys`, `SimSigner`), so a production host cannot wire them in.
//!
//! The core's own tests always have the feature (its self dev-dependency turns it on), so a
//! compile-fail doctest or a `cfg` check here would prove nothing. Instead this runs `cargo
//! check` on a separate crate (`tests/data/no_simulator/lib.rs`) that depends on ccbft-core by
//! path, once without the feature (must fail, naming `SimKeys`) and once with it (must pass:
//! the control that the probe fails for that reason alone). The probe has its own target
//! directory under target/tmp, so only its first run checks core's dependencies; later runs
//! re-check ccbft-core alone.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Writes the probe crate (manifest, the workspace's Cargo.lock so no version is resolved
/// anew, the source) into `dir`.
fn write_probe(dir: &Path) {
    let core = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = format!(
        r#"[package]
name = "no-simulator-probe"
version = "0.0.0"
edition = "2021"
publish = false

[lib]
path = "{lib}"

[dependencies]
ccbft-core = {{ path = "{core}" }}

[features]
with-simulator = ["ccbft-core/simulator"]

# Not a member of the CC-BFT workspace, although it lives under its target directory.
[workspace]
"#,
        lib = core.join("tests/data/no_simulator/lib.rs").display(),
        core = core.display(),
    );
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    std::fs::copy(core.join("../Cargo.lock"), dir.join("Cargo.lock")).unwrap();
}

/// `cargo check --offline` of the probe; returns whether it passed and its stderr.
fn check_probe(dir: &Path, features: &[&str]) -> (bool, String) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["check", "--offline", "--quiet", "--message-format", "short"])
        .args(features)
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", dir.join("target"))
        // A type check needs no debug info (the probe's build scripts and proc macros are
        // compiled; without it they build faster and take less disk).
        .env("CARGO_PROFILE_DEV_DEBUG", "false")
        .env("CARGO_INCREMENTAL", "0")
        .output()
        .expect("run cargo");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_build_without_the_simulator_feature_cannot_name_sim_keys() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("no-simulator-probe");
    write_probe(&dir);
    let (passed, stderr) = check_probe(&dir, &[]);
    assert!(!passed, "the probe compiled without the simulator feature");
    let unresolved: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("error[E0432]") || l.contains("error[E0433]"))
        .collect();
    assert!(
        unresolved.iter().any(|l| l.contains("SimKeys"))
            && unresolved.iter().any(|l| l.contains("SimSigner")),
        "expected SimKeys and SimSigner to be unresolved:\n{stderr}"
    );
    let (passed, stderr) = check_probe(&dir, &["--features", "with-simulator"]);
    assert!(passed, "the control (with the feature) failed:\n{stderr}");
}
