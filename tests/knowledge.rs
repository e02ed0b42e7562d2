//! The knowledge measure as a test: every row of the fact tables in `../shared/knowledge` is built
//! into bounces, read and classified as real mail, and the figures must stay at or above the floor
//! in `ci/knowledge-floor.toml` (rows left out are in `ci/knowledge-exclusions.toml`, each with its
//! reason). Skips, saying why, where the tables are absent; CI has them beside the clone.

use std::path::{Path, PathBuf};

use bounced::Classifier;
use bounced::eval::knowledge::{self, KnowledgeFloor};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tables() -> Option<PathBuf> {
    let dir = repo().join("../shared/knowledge");
    dir.join("codes.md").is_file().then_some(dir)
}

fn floor(path: &Path) -> KnowledgeFloor {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_classifier_agrees_with_the_fact_tables() {
    let Some(dir) = tables() else {
        eprintln!("skipped: ../shared/knowledge is not here (it is beside the clone in CI)");
        return;
    };
    let rows = knowledge::load_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
    for table in knowledge::TABLES {
        assert!(
            rows.iter().filter(|r| r.table == table).count() > 30,
            "{table}.md: too few rows read; has the table layout changed?"
        );
    }
    let exclusions = knowledge::load_exclusions(&repo().join("ci/knowledge-exclusions.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let problems = knowledge::check_exclusions(&rows, &exclusions);
    assert!(problems.is_empty(), "{problems:#?}");

    let figures = knowledge::measure(&rows, &exclusions, &Classifier::new());
    let below = floor(&repo().join("ci/knowledge-floor.toml")).check(&figures);
    let soft_as_hard: Vec<String> = figures
        .soft_as_hard
        .iter()
        .map(|d| {
            format!(
                "{}.md:{} [{:?}] {:?} -> {:?}",
                d.table, d.line, d.envelope, d.key, d.rule
            )
        })
        .collect();
    assert!(
        below.is_empty(),
        "{below:#?}\nsoft-reason rows that came out hard: {soft_as_hard:#?}"
    );
}

#[test]
fn every_envelope_of_a_documented_row_is_read_as_a_bounce() {
    // Independent of the shared tables: a row written here, as the tables write them.
    let table = "## 1. Postfix\n\n| wording (as the software writes it) | SMTP reply / enhanced code | situation | what it means | our reason | hard? | source |\n|---|---|---|---|---|---|---|\n| `Recipient address rejected: User unknown in virtual mailbox table` | 550 5.1.1 | receiver, RCPT | gone | userunknown | hard | ours |\n| `Client host rejected: cannot find your hostname, [<ip>]` | 450 4.7.25 | receiver | no PTR | requireptr | soft | ours |\n";
    let rows = knowledge::parse_table_file("mtas", table);
    assert_eq!(rows.len(), 2);
    let figures = knowledge::measure(&rows, &[], &Classifier::new());
    assert_eq!(
        figures.bounces, 9,
        "a DSN and the Postfix, Exim, Sendmail and qmail reports of the failure; no qmail notice of the delay"
    );
    assert!(
        figures.disagreements.is_empty(),
        "{:#?}",
        figures.disagreements
    );
    assert_eq!(figures.table_reason("mtas").hits, 2);
}
