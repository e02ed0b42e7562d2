//! `bounced eval`: classify every file of a corpus directory and compare with expected results, or
//! (`--explain FILE`) show for one message which reader and which rule decided its results, and why,
//! or (`--knowledge DIR`) measure the classifier against the documented wording of mail servers and
//! providers (bounces built from the fact tables, see [`bounced::eval::knowledge`]).
//!
//! The comparison itself is [`bounced::eval`], the explanation [`bounced::explain`]; this file loads the
//! files, runs the classifier and prints.

use std::fs;
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::json;

use bounced::analyze;
use bounced::classify::Reason;
use bounced::eval::{Evaluator, Expected, Figures, Floor, Ratio, compare, knowledge, round1};
use bounced::explain::{Explanation, explain};
use bounced::report::{DEFAULT_MAX_SIZE, ReadOptions};
use bounced::text::printable;

use super::load_classifier;
use bounced::source::files::{Entry, read_capped, walk};

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
    /// The corpus directory (every regular file in it, recursively); with `--explain`, optional: the
    /// explained file's name in the expected rows is taken relative to it.
    #[arg(value_name = "DIR", required_unless_present_any = ["explain", "knowledge"])]
    pub dir: Option<PathBuf>,
    /// The expected results, one JSON object per line (`file`, `n`, `status`, `replycode`, `reason`,
    /// `hardbounce`, `feedbacktype`); optional with `--explain`.
    #[arg(long, value_name = "FILE.jsonl", required_unless_present_any = ["explain", "knowledge"])]
    pub expected: Option<PathBuf>,
    /// Explain one message instead: the reader that recognised it and why, each recipient's fields
    /// and where its codes came from, the rule that fired and the hard/soft decision; with
    /// `--expected`, the expected rows beside ours.
    #[arg(long, value_name = "FILE")]
    pub explain: Option<PathBuf>,
    /// Measure against the fact tables in this directory (`codes.md`, `mtas.md`, `providers.md`,
    /// `languages.md`) instead of a corpus: each row is built into bounces, read and classified, and
    /// compared with the reasons the row gives.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["dir", "expected", "explain"])]
    pub knowledge: Option<PathBuf>,
    /// With `--knowledge`: rows judged mislabelled, left out (TOML `[[exclude]]` tables with `table`,
    /// `key` and `why`; at most 3% of a table).
    #[arg(long, value_name = "FILE.toml", requires = "knowledge")]
    pub exclusions: Option<PathBuf>,
    /// With `--knowledge`: print every disagreeing bounce, with the rule, reader, codes and diagnostic
    /// that decided it.
    #[arg(long, requires = "knowledge")]
    pub disagreements: bool,
    /// Write one JSON line per disagreement to this file.
    #[arg(long, value_name = "FILE")]
    pub mismatches: Option<PathBuf>,
    /// Minimum figures (TOML); exit 1 naming every figure below its floor (with `--knowledge`: the
    /// `reason` table of per-file minimums, `hard_soft`, `max_soft_as_hard`).
    #[arg(long, value_name = "FILE.toml")]
    pub floor: Option<PathBuf>,
    /// Messages that are not bounces (every result there counts against us); default: the sibling
    /// `not-bounces/` of DIR, when it exists.
    #[arg(long, value_name = "DIR")]
    pub not_bounces: Option<PathBuf>,
    /// A rule file (TOML) merged over the built-in rules.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Classifier threads [default: one per CPU core]; the figures are the same whatever N.
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
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
    if let Some(file) = &args.explain {
        return run_explain(&args, file);
    }
    if let Some(dir) = &args.knowledge {
        return run_knowledge(&args, dir);
    }
    let (Some(dir), Some(expected)) = (&args.dir, &args.expected) else {
        bail!("eval needs DIR and --expected FILE.jsonl (or --explain FILE)");
    };
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let dir = dir.as_path();
    let expected = load_expected(expected)?;
    let floor = args.floor.as_deref().map(load_floor).transpose()?;
    let classifier = load_classifier(args.rules.as_deref())?;
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
    let jobs = bounced::pipeline::jobs(args.jobs.unwrap_or(0));
    // Read and classify on the workers; compare here, in walk order.
    let work = |path: PathBuf| {
        let name = relative_name(dir, &path);
        match read_capped(&path, opts.max_size) {
            Ok(bytes) => {
                let analysis = analyze(&bytes, &classifier, &opts);
                let error = analysis.kind == bounced::Kind::Error;
                (name, analysis.bounces, error)
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot read");
                (name, Vec::new(), true)
            }
        }
    };
    let sink = |(name, bounces, error): (String, Vec<bounced::Bounce>, bool)| {
        if error {
            read_errors += 1;
        }
        let mismatches = evaluator.add_file(&name, &bounces);
        if let (Some(out), Ok(())) = (mismatch_out.as_mut(), &write_result) {
            for m in &mismatches {
                write_result = serde_json::to_writer(&mut *out, m)
                    .map_err(io::Error::from)
                    .and_then(|()| out.write_all(b"\n"));
            }
        }
    };
    let mut unlisted = 0u64;
    bounced::pipeline::map_ordered(jobs, work, sink, |push| {
        walk(dir, &mut |entry| match entry {
            Entry::File(path) => push(path),
            Entry::Unlisted(..) => unlisted += 1,
        });
    });
    read_errors += unlisted;
    if let Some(mut out) = mismatch_out {
        write_result = write_result.and_then(|()| out.flush());
    }
    write_result.context("writing the mismatch file")?;

    let not_bounces = args.not_bounces.clone().or_else(|| {
        let sibling = dir.parent()?.join("not-bounces");
        sibling.is_dir().then_some(sibling)
    });
    if let Some(dir) = &not_bounces {
        let work = |path: PathBuf| {
            read_capped(&path, opts.max_size)
                .ok()
                .map(|bytes| analyze(&bytes, &classifier, &opts).bounces)
        };
        let sink = |bounces: Option<Vec<bounced::Bounce>>| {
            if let Some(b) = bounces {
                evaluator.add_not_bounce(&b);
            }
        };
        bounced::pipeline::map_ordered(jobs, work, sink, |push| {
            walk(dir, &mut |entry| {
                if let Entry::File(path) = entry {
                    push(path);
                }
            });
        });
    }

    let figures = evaluator.finish();
    let below = floor
        .as_ref()
        .map(|f| f.check(&figures))
        .unwrap_or_default();
    let mut out = text_stdout(args.format);
    match args.format {
        Format::Text => print_text(&mut out, dir, &figures, read_errors)?,
        Format::Json => {
            let value = json!({
                "dir": dir.to_string_lossy(),
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

/// Runs `bounced eval --knowledge DIR`.
fn run_knowledge(args: &Args, dir: &Path) -> anyhow::Result<ExitCode> {
    let rows = knowledge::load_dir(dir)
        .with_context(|| format!("reading the fact tables in {}", dir.display()))?;
    let exclusions = match &args.exclusions {
        Some(p) => knowledge::load_exclusions(p)?,
        None => Vec::new(),
    };
    let problems = knowledge::check_exclusions(&rows, &exclusions);
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("bounced: eval: {p}");
        }
        bail!("the exclusions file is not valid for these tables");
    }
    let floor: Option<knowledge::KnowledgeFloor> = match &args.floor {
        Some(p) => {
            let text = fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            Some(toml::from_str(&text).with_context(|| format!("floor file {}", p.display()))?)
        }
        None => None,
    };
    let classifier = load_classifier(args.rules.as_deref())?;
    let figures = knowledge::measure(&rows, &exclusions, &classifier);
    if let Some(p) = &args.mismatches {
        let mut out = io::BufWriter::new(
            fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        );
        for d in &figures.disagreements {
            serde_json::to_writer(&mut out, d)?;
            out.write_all(b"\n")?;
        }
        out.flush()
            .with_context(|| format!("writing {}", p.display()))?;
    }
    let below = floor
        .as_ref()
        .map(|f| f.check(&figures))
        .unwrap_or_default();
    let mut out = text_stdout(args.format);
    match args.format {
        Format::Text => {
            print_knowledge(&mut out, dir, &figures, &exclusions)?;
            if args.disagreements {
                print_disagreements(&mut out, &figures.disagreements)?;
            }
        }
        Format::Json => {
            let value = json!({
                "knowledge": dir.to_string_lossy(),
                "figures": figures,
                "excluded": exclusions,
                "below_floor": below,
            });
            writeln!(out, "{value}")?;
        }
    }
    if below.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for b in &below {
        eprintln!("bounced: eval: {b}");
    }
    Ok(ExitCode::from(1))
}

fn print_knowledge(
    out: &mut impl Write,
    dir: &Path,
    f: &knowledge::KnowledgeFigures,
    exclusions: &[knowledge::Exclusion],
) -> io::Result<()> {
    let ratio = |r: Ratio| format!("{:>7}  ({}/{})", r.display(), r.hits, r.total);
    writeln!(out, "knowledge             {}", dir.display())?;
    writeln!(
        out,
        "rows                  {} ({} excluded, {} not scored on reason: use text, ESP-local, not a bounce, no cause); {} bounces built",
        f.rows, f.excluded, f.reason_not_scored, f.bounces
    )?;
    writeln!(
        out,
        "reason agreement by table (rows; a row agrees when all its bounces do):"
    )?;
    for table in knowledge::TABLES {
        if let Some(g) = f.tables.get(table) {
            writeln!(
                out,
                "  {:<18}{}   hard/soft {}",
                format!("{table}.md"),
                ratio(g.reason),
                ratio(g.hard_soft)
            )?;
        }
    }
    writeln!(out, "hard/soft, all rows    {}", ratio(f.hard_soft))?;
    writeln!(out, "by table and envelope (bounces):")?;
    for (name, g) in &f.envelopes {
        writeln!(
            out,
            "  {name:<22}{}   hard/soft {}   not read as a bounce: {}",
            ratio(g.reason),
            ratio(g.hard_soft),
            g.unread
        )?;
    }
    writeln!(out, "by reason (rows, by the first reason the row names):")?;
    for (name, g) in &f.reasons {
        writeln!(
            out,
            "  {name:<18}{}   hard/soft {}",
            ratio(g.reason),
            ratio(g.hard_soft)
        )?;
    }
    writeln!(
        out,
        "soft-reason rows that came out hard: {} (must be 0)",
        f.soft_as_hard.len()
    )?;
    for d in &f.soft_as_hard {
        writeln!(
            out,
            "  {}.md:{} [{}] {:?} -> {} ({})",
            d.table,
            d.line,
            d.envelope.as_str(),
            d.key,
            d.got.map_or("-", |r| r.as_str()),
            d.rule.as_deref().unwrap_or("-")
        )?;
    }
    if !exclusions.is_empty() {
        writeln!(out, "excluded rows:")?;
        for e in exclusions {
            writeln!(out, "  {}.md {:?}: {}", e.table, e.key, e.why)?;
        }
    }
    Ok(())
}

fn print_disagreements(out: &mut impl Write, list: &[knowledge::Disagreement]) -> io::Result<()> {
    writeln!(out)?;
    writeln!(out, "disagreements ({} bounces):", list.len())?;
    for d in list {
        let expected: Vec<&str> = d.expected.iter().map(|r| r.as_str()).collect();
        writeln!(out)?;
        writeln!(
            out,
            "{}.md:{} [{}] {}",
            d.table,
            d.line,
            d.envelope.as_str(),
            d.section
        )?;
        writeln!(out, "  words       {}", d.words)?;
        writeln!(
            out,
            "  expected    {} ({:?})",
            if expected.is_empty() {
                "(reason not scored)".to_string()
            } else {
                expected.join(" | ")
            },
            d.expected_hard
        )?;
        match d.got {
            None => writeln!(out, "  got         no result (not read as a bounce)")?,
            Some(reason) => {
                writeln!(
                    out,
                    "  got         {} ({}) by {}",
                    reason,
                    d.got_type.map_or("-", |t| t.as_str()),
                    d.rule.as_deref().unwrap_or("-")
                )?;
                writeln!(
                    out,
                    "  read        reader {}, status {}, replycode {}",
                    d.reader.as_deref().unwrap_or("-"),
                    d.status.as_deref().unwrap_or("-"),
                    d.replycode.as_deref().unwrap_or("-")
                )?;
                writeln!(
                    out,
                    "  diagnostic  {}",
                    d.diagnostic.as_deref().unwrap_or("-")
                )?;
            }
        }
    }
    Ok(())
}

/// Standard output for `format`, which may be a terminal: whatever a message or file name holds
/// reaches it escaped ([`bounced::text::PrintableWriter`]).
fn text_stdout(format: Format) -> Box<dyn Write> {
    use bounced::text::PrintableWriter;
    let out = io::stdout().lock();
    match format {
        Format::Text => Box::new(PrintableWriter::new(out)),
        Format::Json => Box::new(PrintableWriter::json(out)),
    }
}

/// Runs `bounced eval --explain FILE`.
fn run_explain(args: &Args, file: &Path) -> anyhow::Result<ExitCode> {
    let classifier = load_classifier(args.rules.as_deref())?;
    let opts = ReadOptions::default();
    let bytes = match read_capped(file, opts.max_size) {
        Ok(b) => b,
        Err(e) => {
            // The message itself cannot be read: like `classify`, an input error (exit 1).
            eprintln!(
                "bounced: error: {}",
                printable(&format!("cannot read {}: {e}", file.display()))
            );
            return Ok(ExitCode::from(1));
        }
    };
    let explanation = explain(&bytes, &classifier, &opts);
    let expected = match &args.expected {
        Some(path) => {
            let evaluator = Evaluator::new(load_expected(path)?);
            let rows = expected_names(args.dir.as_deref(), file)
                .into_iter()
                .map(|name| evaluator.rows(&name).to_vec())
                .find(|rows| !rows.is_empty());
            Some(rows.unwrap_or_default())
        }
        None => None,
    };
    let mut out = text_stdout(args.format);
    match args.format {
        Format::Text => print_explanation(&mut out, file, &explanation, expected.as_deref())?,
        Format::Json => {
            let value = json!({
                "file": file.to_string_lossy(),
                "explanation": explanation,
                "expected": expected,
            });
            writeln!(out, "{value}")?;
        }
    }
    Ok(if explanation.kind == "error" {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The names under which `file` may appear in the expected rows, most specific first: relative to
/// DIR, as given, and its bare file name.
fn expected_names(dir: Option<&Path>, file: &Path) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(dir) = dir
        && file.starts_with(dir)
    {
        names.push(relative_name(dir, file));
    }
    names.push(file.to_string_lossy().into_owned());
    if let Some(base) = file.file_name() {
        names.push(base.to_string_lossy().into_owned());
    }
    names
}

fn print_explanation(
    out: &mut impl Write,
    file: &Path,
    e: &Explanation,
    expected: Option<&[Expected]>,
) -> io::Result<()> {
    let or_dash = |v: Option<&str>| v.filter(|s| !s.is_empty()).unwrap_or("-").to_string();
    writeln!(out, "file          {}", file.display())?;
    writeln!(out, "kind          {}", e.kind)?;
    writeln!(out, "reader        {}", e.reader)?;
    writeln!(out, "from          {}", or_dash(e.from.as_deref()))?;
    writeln!(out, "subject       {}", or_dash(e.subject.as_deref()))?;
    writeln!(out, "content type  {}", or_dash(e.content_type.as_deref()))?;
    writeln!(out, "why:")?;
    for line in &e.why {
        writeln!(out, "  - {line}")?;
    }
    let total = e.recipients.len();
    for (i, r) in e.recipients.iter().enumerate() {
        let b = &r.result;
        writeln!(out)?;
        writeln!(out, "result {} of {total}", i + 1)?;
        let fields: [(&str, String); 11] = [
            ("recipient", or_dash(b.recipient.as_deref())),
            ("final rcpt", or_dash(r.read.final_recipient.as_deref())),
            ("action", or_dash(b.action.as_deref())),
            ("status", r.status_source.clone()),
            ("replycode", r.replycode_source.clone()),
            ("command", or_dash(r.read.command.as_deref())),
            ("diagnostic", or_dash(b.diagnostic.as_deref())),
            ("remote MTA", or_dash(b.remote_mta.as_deref())),
            ("reporting MTA", or_dash(b.reporting_mta.as_deref())),
            (
                "reader hint",
                or_dash(r.read.reason_hint.map(Reason::as_str)),
            ),
            ("reason", b.reason.as_str().to_string()),
        ];
        for (label, value) in fields {
            writeln!(out, "  {label:<14}{value}")?;
        }
        writeln!(out, "  {:<14}{}", "rule", r.rule.id)?;
        writeln!(out, "  {:<14}{}", "  step", r.rule.step)?;
        if let Some(note) = &r.rule.note {
            writeln!(out, "  {:<14}{note}", "  note")?;
        }
        writeln!(out, "  {:<14}{}", "  because", r.rule.condition)?;
        writeln!(out, "  {:<14}{}", "bounce type", r.bounce_type_why)?;
        if let Some(rows) = expected
            && let Some(row) = rows.iter().find(|row| row.n == i + 1)
        {
            writeln!(out, "  expected (n={}):", row.n)?;
            let checks = compare(row, b);
            let ours: Vec<String> = checks.iter().map(|c| or_dash(c.got)).collect();
            let w = ours
                .iter()
                .map(|o| o.chars().count())
                .max()
                .unwrap_or(0)
                .max(8)
                + 2;
            writeln!(
                out,
                "    {:<15}{:<w$}{:<12}agrees",
                "field", "ours", "expected"
            )?;
            for (c, ours) in checks.iter().zip(&ours) {
                writeln!(
                    out,
                    "    {:<15}{ours:<w$}{:<12}{}",
                    c.field,
                    or_dash(Some(c.expected)),
                    if c.agrees { "yes" } else { "NO" }
                )?;
            }
        }
    }
    match expected {
        None => {}
        Some([]) => {
            writeln!(out)?;
            writeln!(out, "expected: this file has no expected rows")?;
        }
        Some(rows) => {
            for row in rows.iter().filter(|row| row.n == 0 || row.n > total) {
                writeln!(out)?;
                writeln!(
                    out,
                    "expected (n={}) has no result of ours: reason {}, status {}, replycode {}, {}",
                    row.n,
                    row.reason,
                    or_dash(Some(&row.status)),
                    or_dash(Some(&row.replycode)),
                    if row.hardbounce { "hard" } else { "not hard" }
                )?;
            }
        }
    }
    Ok(())
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
