//! The deployment files keep their promises: what the systemd unit points at is installed by the
//! documented steps, a Maildir under /home has a documented way through `ProtectHome=`, and the
//! container build hides no failure.

use std::fs;

fn read(path: &str) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Values of `Key=` lines of a unit file, comments skipped.
fn unit_values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn the_units_documentation_is_installed_by_the_documented_steps() {
    let unit = read("deploy/bounced.service");
    let steps = read("deploy/README.md");
    let docs = unit_values(&unit, "Documentation");
    assert!(!docs.is_empty(), "the unit names no documentation");
    for doc in docs.iter().flat_map(|d| d.split_whitespace()) {
        if let Some(path) = doc.strip_prefix("file://") {
            assert!(
                steps
                    .lines()
                    .any(|l| l.trim_start().starts_with("install ") && l.contains(path)),
                "Documentation={doc}: no install step in deploy/README.md creates {path}"
            );
        }
    }
}

#[test]
fn a_maildir_under_home_has_a_documented_way_through_protect_home() {
    let unit = read("deploy/bounced.service");
    if unit_values(&unit, "ProtectHome").contains(&"yes") {
        for (file, text) in [
            ("deploy/bounced.service", &unit),
            ("deploy/README.md", &read("deploy/README.md")),
        ] {
            assert!(
                text.contains("ProtectHome=tmpfs") && text.contains("BindPaths=/home/"),
                "{file} does not say how to reach a Maildir under /home with ProtectHome=yes"
            );
        }
        // The quick start's example Maildir is under the home folder: it points at the drop-in.
        let readme = read("README.md");
        if readme.contains("--maildir ~/") {
            assert!(
                readme.contains("ProtectHome=yes") && readme.contains("deploy/README.md"),
                "README.md uses a Maildir under ~ without saying that the unit hides /home"
            );
        }
    }
}

#[test]
fn the_container_build_hides_no_failure() {
    let dockerfile = read("deploy/Dockerfile");
    for (n, line) in dockerfile.lines().enumerate() {
        let code = line.split('#').next().unwrap_or("");
        assert!(
            !code.contains("|| true") && !code.contains("|| :"),
            "deploy/Dockerfile:{}: a step whose failure is ignored: {line}",
            n + 1
        );
    }
}
