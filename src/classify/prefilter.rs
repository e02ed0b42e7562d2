//! A literal prefilter over every text pattern of the rule table.
//!
//! Most diagnostics match few of the table's patterns, and nearly every pattern needs some literal
//! word to be present ("quota", "unknown", "spam"). For each pattern we work out, from its syntax
//! tree, a set of literals of which every match must contain at least one; one Aho-Corasick pass
//! over the (lower-cased) diagnostic then tells which patterns can match at all, and only those run
//! their regex. A pattern for which no useful literal set exists (too short, or optional parts
//! only) is always run. The prefilter only ever rules a pattern out when it cannot match, so the
//! result is the same as running every pattern.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex_syntax::hir::{Class, Hir, HirKind};

/// Literals shorter than this filter too little to be worth a lookup; their pattern always runs.
const MIN_LITERAL: usize = 3;
/// Upper bound on the number of literals one pattern may contribute.
const MAX_LITERALS: usize = 64;
/// Upper bound on the characters of a class expanded into literals (`[ée]`, `[iî]`).
const MAX_CLASS_CHARS: usize = 4;

/// What a (sub)pattern requires of any text it matches.
#[derive(Debug, Clone)]
enum Need {
    /// Nothing known.
    Any,
    /// Every match contains one of these literals; `exact` when every match *is* one of them.
    Lits { lits: Vec<Vec<u8>>, exact: bool },
}

impl Need {
    fn exact(lits: Vec<Vec<u8>>) -> Need {
        Need::Lits { lits, exact: true }
    }

    fn inexact(self) -> Need {
        match self {
            Need::Lits { lits, .. } => Need::Lits { lits, exact: false },
            Need::Any => Need::Any,
        }
    }

    /// How good a filter the set is: the length of its shortest literal (0 when useless).
    fn score(&self) -> usize {
        match self {
            Need::Any => 0,
            Need::Lits { lits, .. } => lits.iter().map(Vec::len).min().unwrap_or(0),
        }
    }
}

/// The literal requirement of a pattern's syntax tree.
fn need(hir: &Hir) -> Need {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => Need::exact(vec![Vec::new()]),
        HirKind::Literal(lit) => Need::exact(vec![lit.0.to_vec()]),
        HirKind::Class(class) => class_literals(class).map_or(Need::Any, Need::exact),
        HirKind::Capture(cap) => need(&cap.sub),
        HirKind::Repetition(rep) => {
            if rep.min == 0 {
                Need::Any
            } else if rep.min == 1 && rep.max == Some(1) {
                need(&rep.sub)
            } else {
                need(&rep.sub).inexact()
            }
        }
        HirKind::Alternation(alts) => {
            let mut lits = Vec::new();
            let mut exact = true;
            for alt in alts {
                match need(alt) {
                    Need::Any => return Need::Any,
                    Need::Lits { lits: l, exact: e } => {
                        exact &= e;
                        lits.extend(l);
                    }
                }
                if lits.len() > MAX_LITERALS {
                    return Need::Any;
                }
            }
            Need::Lits { lits, exact }
        }
        HirKind::Concat(parts) => concat_need(parts),
    }
}

/// A concatenation: runs of exact parts are joined into longer literals; the best run (or the
/// best inexact part) is the requirement.
fn concat_need(parts: &[Hir]) -> Need {
    let mut best = Need::Any;
    let mut run: Option<Vec<Vec<u8>>> = Some(vec![Vec::new()]);
    let mut all_exact = true;
    let consider = |candidate: Need, best: &mut Need| {
        if candidate.score() > best.score() {
            *best = candidate;
        }
    };
    for part in parts {
        match need(part) {
            Need::Lits { lits, exact: true } => {
                let joined = run.take().and_then(|r| cross(&r, &lits));
                match joined {
                    Some(j) => run = Some(j),
                    None => {
                        // The run grew too wide: keep what it had, restart from this part.
                        all_exact = false;
                        run = Some(lits);
                    }
                }
            }
            other => {
                all_exact = false;
                if let Some(r) = run.take() {
                    consider(
                        Need::Lits {
                            lits: r,
                            exact: false,
                        },
                        &mut best,
                    );
                }
                consider(other.inexact(), &mut best);
                run = Some(vec![Vec::new()]);
            }
        }
    }
    match run {
        Some(r) if all_exact => Need::exact(r),
        Some(r) => {
            consider(
                Need::Lits {
                    lits: r,
                    exact: false,
                },
                &mut best,
            );
            best
        }
        None => best,
    }
}

/// Every `a + b`, or `None` when there would be too many.
fn cross(left: &[Vec<u8>], right: &[Vec<u8>]) -> Option<Vec<Vec<u8>>> {
    if left.len().saturating_mul(right.len()) > MAX_LITERALS {
        return None;
    }
    let mut out = Vec::with_capacity(left.len() * right.len());
    for l in left {
        for r in right {
            let mut s = l.clone();
            s.extend_from_slice(r);
            out.push(s);
        }
    }
    Some(out)
}

/// A small class as its characters (UTF-8 encoded), or `None` when it is too wide to expand.
fn class_literals(class: &Class) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    match class {
        Class::Unicode(c) => {
            for r in c.ranges() {
                for ch in r.start()..=r.end() {
                    if out.len() >= MAX_CLASS_CHARS {
                        return None;
                    }
                    let mut buf = [0u8; 4];
                    out.push(ch.encode_utf8(&mut buf).as_bytes().to_vec());
                }
            }
        }
        Class::Bytes(c) => {
            for r in c.ranges() {
                for b in r.start()..=r.end() {
                    if out.len() >= MAX_CLASS_CHARS {
                        return None;
                    }
                    out.push(vec![b]);
                }
            }
        }
    }
    Some(out)
}

/// The literals of which every match of `pattern` contains one, or `None` when the pattern must
/// always be run (no useful literal, or a pattern the parser does not take).
pub fn required_literals(pattern: &str) -> Option<Vec<Vec<u8>>> {
    let hir = regex_syntax::ParserBuilder::new()
        .build()
        .parse(pattern)
        .ok()?;
    match need(&hir) {
        Need::Lits { mut lits, .. } if lits.iter().all(|l| l.len() >= MIN_LITERAL) => {
            lits.sort();
            lits.dedup();
            Some(lits)
        }
        _ => None,
    }
}

/// One Aho-Corasick automaton over the required literals of many patterns.
#[derive(Debug, Clone, Default)]
pub struct Prefilter {
    /// The automaton; `None` when no pattern has literals.
    ac: Option<AhoCorasick>,
    /// For each automaton pattern (literal), the text patterns that need it.
    owners: Vec<Vec<usize>>,
    /// The text patterns that must always run.
    always: Vec<usize>,
    /// How many text patterns there are.
    patterns: usize,
}

impl Prefilter {
    /// Builds the prefilter for these patterns (as compiled: case-sensitive, over lower-cased
    /// text); `None` in `needs` marks a pattern that must always run.
    pub fn new(needs: &[Option<Vec<Vec<u8>>>]) -> Prefilter {
        let mut literals: Vec<&[u8]> = Vec::new();
        let mut owners: Vec<Vec<usize>> = Vec::new();
        let mut always = Vec::new();
        for (i, need) in needs.iter().enumerate() {
            match need {
                None => always.push(i),
                Some(lits) => {
                    for lit in lits {
                        match literals.iter().position(|l| *l == lit.as_slice()) {
                            Some(k) => {
                                if let Some(o) = owners.get_mut(k) {
                                    o.push(i);
                                }
                            }
                            None => {
                                literals.push(lit);
                                owners.push(vec![i]);
                            }
                        }
                    }
                }
            }
        }
        let ac = if literals.is_empty() {
            None
        } else {
            match AhoCorasickBuilder::new()
                .match_kind(MatchKind::Standard)
                .build(&literals)
            {
                Ok(ac) => Some(ac),
                Err(e) => {
                    // Without the automaton every pattern runs: slower, same answers.
                    tracing::warn!(error = %e, "rule prefilter not built");
                    always = (0..needs.len()).collect();
                    owners.clear();
                    None
                }
            }
        };
        Prefilter {
            ac,
            owners,
            always,
            patterns: needs.len(),
        }
    }

    /// Which patterns can match `text` (lower-cased as the patterns expect): their indices, in
    /// ascending order, each once. A caller walks only these, not every pattern of the table.
    pub fn candidates(&self, text: &str) -> Vec<usize> {
        let mut out = self.always.clone();
        if let Some(ac) = &self.ac {
            for m in ac.find_overlapping_iter(text) {
                if let Some(owners) = self.owners.get(m.pattern().as_usize()) {
                    out.extend_from_slice(owners);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out.retain(|&i| i < self.patterns);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lits(pattern: &str) -> Option<Vec<String>> {
        required_literals(pattern).map(|v| {
            v.into_iter()
                .map(|l| String::from_utf8_lossy(&l).into_owned())
                .collect()
        })
    }

    fn strings(v: &[&str]) -> Option<Vec<String>> {
        let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        v.sort();
        Some(v)
    }

    #[test]
    fn literals_of_common_shapes() {
        assert_eq!(lits("mailbox full"), strings(&["mailbox full"]));
        assert_eq!(lits("quota|over limit"), strings(&["over limit", "quota"]));
        assert_eq!(lits(r"(?-u:\b)spam(?-u:\b)"), strings(&["spam"]));
        assert_eq!(lits("d[ée]pass"), strings(&["depass", "dépass"]));
        // The longest run around an optional part.
        assert_eq!(lits(r"no (such )?user here"), strings(&["user here"]));
        assert_eq!(
            lits(r"(user|mailbox) unknown"),
            strings(&["mailbox unknown", "user unknown"])
        );
        // A repetition of at least one keeps its literal, inexactly.
        assert_eq!(lits(r"(spam)+ found"), strings(&[" found"]));
    }

    #[test]
    fn patterns_without_useful_literals_always_run() {
        assert_eq!(lits(r"\d+"), None);
        assert_eq!(lits(r"(abc)?"), None);
        assert_eq!(lits("ab|cde"), None);
        assert_eq!(lits(r"x.{0,5}y"), None);
        assert_eq!(lits("(unclosed"), None);
    }

    #[test]
    fn candidates_mark_patterns_whose_literals_occur() {
        let needs = vec![
            required_literals("mailbox (is )?full"),
            required_literals(r"\d{3}"),
            required_literals("spam|junk"),
        ];
        let pf = Prefilter::new(&needs);
        assert_eq!(pf.candidates("your mailbox is full"), [0, 1]);
        assert_eq!(pf.candidates("junk mail refused"), [1, 2]);
        assert_eq!(pf.candidates(""), [1]);
    }

    #[test]
    fn overlapping_literals_are_all_found() {
        let needs = vec![
            required_literals("user unknown"),
            required_literals("unknown"),
        ];
        let pf = Prefilter::new(&needs);
        assert_eq!(pf.candidates("user unknown"), [0, 1]);
    }
}
