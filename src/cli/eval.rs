//! `bounced eval`: classify every file of a corpus directory and compare with expected results.
//!
//! The comparison itself is [`crate::eval`]; this file loads the files, runs the classifier and prints.

use std::fs;
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::json;

use crate::analyze;
use crate::classify::Classifier;
use crate::eval::{Evaluator, Expected, Figures, Floor, Ratio, round1};
use crate::report::{DEFAULT_MAX_SIZE, ReadOptions};

use super::{Entry, read_capped, walk};

/// Output formats of `bounced eval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A report for people.
    Text,
    /// One JSON object.
    Json,
}

/// Arguments of `bounced eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The corpus directory (every regular file in it, recursively).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The expected results, one JSON object per line (`file`, `n`, `status`, `replycode`, `reason`,
    /// `hardbounce`, `feedbacktype`).
    #[arg(long, value_name = "FILE.jsonl")]
    pub expected: PathBuf,
    /// Write one JSON line per disagreement to this file.
    #[arg(long, value_name = "FILE")]
    pub mismatches: Option<PathBuf>,
    /// Minimum figures (TOML); exit 1 naming every figure below its floor.
    #[arg(long, value_name = "FILE.toml")]
    pub floor: Option<PathBuf>,
    /// Messages that are not bounces (every result there counts against us); default: the sibling
    /// `not-bounces/` of DIR, when it exists.
    #[arg(long, value_name = "DIR")]
    pub not_bounces: Option<PathBuf>,
    /// A rule file (TOML) merged over the built-in rules.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

/// Reads `expected.jsonl`; a bad line is an error naming its number.
pub fn load_expected(path: &Path) -> anyhow::Result<Vec<Expected>> {
    let file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut rows = Vec::new();
    for (i, line) in io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let row: Expected = serde_json::from_str(&line)
            .with_context(|| format!("{} line {}", path.display(), i + 1))?;
        rows.push(row);
    }
    Ok(rows)
}

/// Reads a floor file.
pub fn load_floor(path: &Path) -> anyhow::Result<Floor> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("floor file {}", path.display()))
}

/// Runs `bounced eval`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !args.dir.is_dir() {
        bail!("{} is not a directory", args.dir.display());
    }
    let expected = load_expected(&args.expected)?;
    let floor = args.floor.as_deref().map(load_floor).transpose()?;
    let classifier = match &args.rules {
        Some(path) => Classifier::with_rules_file(path)
            .with_context(|| format!("loading rules from {}", path.display()))?,
        None => Classifier::new(),
    };
    let opts = ReadOptions {
        max_size: DEFAULT_MAX_SIZE,
        ..ReadOptions::default()
    };
    let mut mismatch_out = match &args.mismatches {
        Some(p) => Some(io::BufWriter::new(
            fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => None,
    };

    let mut evaluator = Evaluator::new(expected);
    let mut read_errors = 0u64;
    let mut write_result: io::Result<()> = Ok(());
    walk(&args.dir, &mut |entry| {
        let Entry::File(path) = entry else {
            read_errors += 1;
            return;
        };
        let name = relative_name(&args.dir, &path);
        let bounces = match read_capped(&path, opts.max_size) {
            Ok(bytes) => {
                let analysis = analyze(&bytes, &classifier, &opts);
                if analysis.kind == "error" {
                    read_errors += 1;
                }
                analysis.bounces
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot read");
                read_errors += 1;
                Vec::new()
            }
        };
        let mismatches = evaluator.add_file(&name, &bounces);
        if let (Some(out), Ok(())) = (mismatch_out.as_mut(), &write_result) {
            for m in &mismatches {
                write_result = serde_json::to_writer(&mut *out, m)
                    .map_err(io::Error::from)
                    .and_then(|()| out.write_all(b"\n"));
            }
        }
    });
    if let Some(mut out) = mismatch_out {
        write_result = write_result.and_then(|()| out.flush());
    }
    write_result.context("writing the mismatch file")?;

    let not_bounces = args.not_bounces.clone().or_else(|| {
        let sibling = args.dir.parent()?.join("not-bounces");
        sibling.is_dir().then_some(sibling)
    });
    if let Some(dir) = &not_bounces {
        walk(dir, &mut |entry| {
            if let Entry::File(path) = entry
                && let Ok(bytes) = read_capped(&path, opts.max_size)
            {
                evaluator.add_not_bounce(&analyze(&bytes, &classifier, &opts).bounces);
            }
        });
    }

    let figures = evaluator.finish();
    let below = floor
        .as_ref()
        .map(|f| f.check(&figures))
        .unwrap_or_default();
    let stdout = io::stdout();
    let mut out = stdout.lock();
    match args.format {
        Format::Text => print_text(&mut out, &args.dir, &figures, read_errors)?,
        Format::Json => {
            let value = json!({
                "dir": args.dir.to_string_lossy(),
                "figures": figures,
                "percent": percents(&figures),
                "read_errors": read_errors,
                "below_floor": below,
            });
            writeln!(out, "{value}")?;
        }
    }
    if below.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for b in &below {
        let actual = b.actual.map_or("n/a".to_string(), |a| format!("{a:.1}"));
        if b.figure == "max_not_bounce_reasons" {
            eprintln!(
                "bounced: eval: {} is {actual}, above the allowed {:.0}",
                b.figure, b.floor
            );
        } else {
            eprintln!(
                "bounced: eval: {} is {actual}%, below its floor of {:.1}%",
                b.figure, b.floor
            );
        }
    }
    Ok(ExitCode::from(1))
}

/// A file's name relative to the corpus directory, with `/` separators (as in `expected.jsonl`).
fn relative_name(dir: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(dir).unwrap_or(path);
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.join("/")
}

fn percents(f: &Figures) -> serde_json::Value {
    let p = |r: Ratio| r.percent().map(round1);
    json!({
        "coverage": p(f.coverage),
        "rows_matched": p(f.rows_matched),
        "recipient": p(f.recipient),
        "status": p(f.status),
        "replycode": p(f.replycode),
        "reason": p(f.reason),
        "hard_soft": p(f.hard_soft),
        "feedback_type": p(f.feedback_type),
        "hard_precision": p(f.hard_precision),
        "hard_recall": p(f.hard_recall),
    })
}

fn print_text(out: &mut impl Write, dir: &Path, f: &Figures, read_errors: u64) -> io::Result<()> {
    let line = |out: &mut dyn Write, label: &str, r: Ratio| {
        writeln!(
            out,
            "{label:<22}{:>7}  ({}/{})",
            r.display(),
            r.hits,
            r.total
        )
    };
    writeln!(out, "corpus                {}", dir.display())?;
    writeln!(
        out,
        "mails with expectations {}  (unscored files: {}, expected but absent: {}, unreadable: {})",
        f.coverage.total, f.unscored_files, f.missing_files, read_errors
    )?;
    line(out, "coverage", f.coverage)?;
    line(out, "rows matched", f.rows_matched)?;
    line(out, "recipient found", f.recipient)?;
    line(out, "status", f.status)?;
    line(out, "replycode", f.replycode)?;
    line(out, "reason", f.reason)?;
    line(out, "hard/soft", f.hard_soft)?;
    line(out, "feedback type", f.feedback_type)?;
    line(out, "hard precision", f.hard_precision)?;
    line(out, "hard recall", f.hard_recall)?;
    writeln!(out, "extra results         {}", f.extra_results)?;
    writeln!(
        out,
        "not-bounces           {} files, {} results (must be 0)",
        f.not_bounce_files, f.not_bounce_reasons
    )?;
    if !f.worst_families.is_empty() {
        writeln!(out, "worst families by reason disagreements:")?;
        for (family, count) in &f.worst_families {
            writeln!(out, "  {family:<30}{count:>5}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_relative_with_slashes() {
        let dir = Path::new("/corpus/maildir");
        assert_eq!(
            relative_name(dir, Path::new("/corpus/maildir/a-01.eml")),
            "a-01.eml"
        );
        assert_eq!(
            relative_name(dir, Path::new("/corpus/maildir/sub/b-02.eml")),
            "sub/b-02.eml"
        );
    }

    #[test]
    fn expected_rows_load_and_bad_lines_are_named() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("expected.jsonl");
        fs::write(
            &p,
            "{\"file\":\"a-01.eml\",\"n\":1,\"status\":\"5.1.1\",\"replycode\":\"550\",\"reason\":\"userunknown\",\"hardbounce\":true,\"feedbacktype\":\"\",\"engine\":\"x\"}\n\n",
        )?;
        let rows = load_expected(&p)?;
        assert_eq!(rows.len(), 1);
        assert!(rows[0].hardbounce);
        fs::write(&p, "{\"file\":\"a-01.eml\"}\n{broken\n")?;
        let err = format!(
            "{:#}",
            load_expected(&p)
                .err()
                .unwrap_or_else(|| anyhow::anyhow!(""))
        );
        assert!(err.contains("line 1"), "{err}");
        Ok(())
    }
}
