//! The Debian package's inputs (crates/rwsd/debian/, `[package.metadata.deb]`): what `cargo deb`
//! would fail on or ship wrong, checked without cargo-deb (`.ci/package` builds, installs and
//! purges the real packages): the manual pages are those of today's command lines, every asset
//! exists, and the unit, the default config, tmpfiles.d and sysusers.d agree on paths and user.

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use rws_testkit::repo;

fn crate_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `[package.metadata.deb]` of crates/rwsd/Cargo.toml.
fn deb_metadata() -> toml::Table {
    let manifest: toml::Table = toml::from_str(&read(&crate_dir().join("Cargo.toml"))).unwrap();
    manifest["package"]["metadata"]["deb"]
        .as_table()
        .unwrap()
        .clone()
}

/// The assets as (source relative to the crate, destination).
fn assets() -> Vec<(String, String)> {
    deb_metadata()["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let a = a.as_array().unwrap();
            (
                a[0].as_str().unwrap().to_string(),
                a[1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn man_pages_are_current() {
    let dir = crate_dir().join("debian/man");
    let mut pages = rws_testkit::man::pages(rwsd::cli::Rwsd::command());
    pages.extend(rws_testkit::man::pages(rwsd::cli::Rwsctl::command()));
    for (name, text) in &pages {
        let committed = std::fs::read(dir.join(name)).unwrap_or_default();
        assert!(
            committed == *text,
            "{name} is not the page of today's command line: \
             run `cargo run -p rwsd --example make_man_pages`"
        );
    }
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut made: Vec<String> = pages.into_iter().map(|(n, _)| n).collect();
    made.sort();
    assert_eq!(on_disk, made, "a page in debian/man/ belongs to no command");
}

#[test]
fn every_asset_exists() {
    for (source, dest) in assets() {
        if source.starts_with("target/release/") {
            // Built binaries: cargo-deb maps the prefix to the real target directory.
            let bin = source.trim_start_matches("target/release/");
            assert!(
                ["rwsd", "rwsctl"].contains(&bin),
                "{source}: not a binary of this crate"
            );
            continue;
        }
        let path = crate_dir().join(&source);
        let found = match source.rsplit_once("/*") {
            // A glob `dir/*` or `dir/*.ext`: the directory has at least one such file.
            Some((dir, ext)) => std::fs::read_dir(crate_dir().join(dir))
                .unwrap_or_else(|e| panic!("{source}: {e}"))
                .any(|e| e.unwrap().file_name().to_string_lossy().ends_with(ext)),
            None => path.is_file(),
        };
        assert!(found, "asset {source} (to {dest}) does not exist");
    }
}

#[test]
fn unit_config_tmpfiles_and_sysusers_agree() {
    let unit = read(&repo().join("firmware-config/rwsd.service"));
    let assets = assets();
    let dest_of = |source: &str| {
        assets
            .iter()
            .find(|(s, _)| s == source)
            .map(|(_, d)| d.clone())
            .unwrap()
    };
    // The unit starts the packaged binary on the packaged config.
    assert_eq!(dest_of("target/release/rwsd"), "usr/bin/");
    assert_eq!(
        dest_of("../../firmware-config/raspberry-pi.toml"),
        "etc/rwsd/rwsd.toml"
    );
    assert!(
        unit.contains("\nExecStart=/usr/bin/rwsd --config /etc/rwsd/rwsd.toml\n"),
        "{unit}"
    );
    // One user: the unit's, sysusers.d's (which also adds the device groups).
    let sysusers = read(&crate_dir().join("debian/rwsd.sysusers"));
    assert!(unit.contains("\nUser=rwsd\n") && unit.contains("\nGroup=rwsd\n"));
    assert!(sysusers.contains("\nu rwsd "), "{sysusers}");
    for group in ["dialout", "video"] {
        assert!(unit.contains(group) && sysusers.contains(&format!("\nm rwsd {group}")));
    }
    // One runtime directory: the unit's, tmpfiles.d's, and where the config puts the socket
    // and the FIFOs.
    let tmpfiles = read(&crate_dir().join("debian/rwsd.tmpfiles"));
    assert!(
        unit.contains("\nRuntimeDirectory=rwsd\n")
            && unit.contains("\nRuntimeDirectoryMode=0750\n")
    );
    assert!(
        tmpfiles.contains("\nd /run/rwsd 0750 rwsd rwsd -\n"),
        "{tmpfiles}"
    );
    let config = read(&repo().join("firmware-config/raspberry-pi.toml"));
    for path in [
        "/run/rwsd/rwsd.sock",
        "/run/rwsd/frames",
        "/run/rwsd/camera-diag",
    ] {
        assert!(
            config.contains(&format!("\"{path}\"")),
            "{path} not in the default config"
        );
    }
    // The signature set the postinst links, which the unit must be able to read.
    let postinst = read(&crate_dir().join("debian/scripts/postinst"));
    assert!(config.contains("signatures = \"/var/lib/rwsd/signatures\""));
    assert!(postinst.contains("ln -s /usr/share/rwsd/signatures /var/lib/rwsd/signatures"));
    assert_eq!(dest_of("../../signatures/*"), "usr/share/rwsd/signatures/");
    assert!(unit.contains("ReadOnlyPaths=/etc/rwsd -/var/lib/rwsd\n"));
}

#[test]
fn maintainer_scripts_are_posix_sh_with_the_marker() {
    for name in ["postinst", "postrm", "prerm"] {
        let path = crate_dir().join("debian/scripts").join(name);
        let text = read(&path);
        assert!(
            text.starts_with("#!/bin/sh\n") && text.contains("\nset -e\n"),
            "{name}"
        );
        // cargo-deb replaces every occurrence of the marker, comments included (a comment
        // naming it once broke the script): exactly one, on a line of its own.
        assert_eq!(text.matches("#DEBHELPER#").count(), 1, "{name}");
        assert!(text.contains("\n#DEBHELPER#\n"), "{name}");
        let status = std::process::Command::new("sh")
            .arg("-n")
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success(), "{name}: sh -n fails");
    }
}
