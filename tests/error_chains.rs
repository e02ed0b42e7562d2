//! Every error type of the library says each cause once: a message that quotes its cause does not
//! also hand it on as its source (which the command line would print again after it).

use std::error::Error;
use std::path::Path;

use bounced::Classifier;
use bounced::config::{Config, HttpConfig, MaildirConfig};
use bounced::source::files::read_capped;
use bounced::source::maildir::MaildirSource;
use bounced::store::{Store, StoreOptions};

/// No message in the chain of `e` contains the message of the cause it hands on.
fn said_once(what: &str, e: &dyn Error) {
    let mut current: &dyn Error = e;
    while let Some(next) = current.source() {
        let (outer, inner) = (current.to_string(), next.to_string());
        assert!(
            !outer.contains(&inner),
            "{what}: `{outer}` quotes its source `{inner}`, which would be printed again"
        );
        current = next;
    }
}

#[test]
fn no_error_quotes_the_source_it_chains() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing");
    let e = Config::load(&missing).expect_err("missing configuration");
    said_once("configuration", &e);
    let e = Classifier::with_rules_file(&missing).expect_err("missing rules");
    said_once("rule file", &e);
    let cfg = Config::parse(
        &format!(
            "[[imap]]\nname = \"a\"\nhost = \"h\"\nusername = \"u\"\npassword_file = \"{}\"\n",
            missing.display()
        ),
        Path::new("t.toml"),
    )
    .expect("config");
    let e = cfg.imap[0].password().expect_err("missing password file");
    said_once("password file", &e);
    let e = MaildirSource::new(&MaildirConfig::at(missing.clone())).expect_err("no maildir");
    said_once("maildir", &e);
    let e = bounced::eval::knowledge::load_exclusions(&missing).expect_err("missing exclusions");
    said_once("exclusions file", &e);
    let e = bounced::eval::knowledge::load_dir(&missing).expect_err("missing knowledge");
    said_once("knowledge tables", &e);
    let e = read_capped(&missing, 100).expect_err("missing input");
    said_once("input", &e);
    let http = HttpConfig {
        token_file: Some(missing.clone()),
        ..HttpConfig::default()
    };
    match bounced::http::Tokens::load(&http) {
        Ok(_) => panic!("a missing token file was read"),
        Err(e) => said_once("token file", &e),
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for path in [dir.path().to_path_buf(), missing.join("b.db")] {
        let e = rt
            .block_on(Store::open(&path, StoreOptions::default()))
            .expect_err("not a database");
        said_once("store", &e);
    }
    std::fs::write(dir.path().join("junk.db"), vec![7u8; 8192]).expect("junk");
    let e = rt
        .block_on(Store::open(
            &dir.path().join("junk.db"),
            StoreOptions::default(),
        ))
        .expect_err("not a database");
    said_once("store", &e);
}
