//! IBM (Lotus) Domino reports: "Your message ... was not delivered to: address because: reason".

use super::provider_util::{addr_line, failed, unfold};
use super::{Family, Input};
use crate::report::RecipientReport;

/// The Domino reader.
pub const FAMILY: Family = Family {
    name: "domino",
    detect,
    read,
};

fn detect(input: &Input) -> bool {
    input.body.contains("was not delivered to:") && input.body.contains("because:")
}

fn read(input: &Input) -> Vec<RecipientReport> {
    let body = input.body;
    let Some((_, rest)) = body.split_once("was not delivered to:") else {
        return Vec::new();
    };
    let (list, reason) = rest.split_once("because:").unwrap_or((rest, ""));
    let reason: Vec<&str> = reason
        .lines()
        .map(str::trim)
        .skip_while(|l| l.is_empty())
        .take_while(|l| !l.is_empty())
        .collect();
    let diag = unfold(reason);
    list.lines()
        .filter_map(addr_line)
        .map(|a| {
            let mut r = failed(a, diag.clone());
            if diag.contains("not listed in")
                && (diag.contains("Directory") || diag.contains("address book"))
            {
                r.reason_hint = Some("userunknown");
            }
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::provider_util::test_input;

    #[test]
    fn reads_report() {
        let body = "Your message\n\n  Subject: hi\n\nwas not delivered to:\n\n  max@Example.com\n\nbecause:\n\n  User max (max@example.com) not listed in Domino Directory\n\n";
        let got = test_input("postmaster@example.com", "DELIVERY FAILURE", body, |i| {
            assert!(detect(i));
            read(i)
        });
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].recipient.as_deref(), Some("max@example.com"));
        assert_eq!(
            got[0].diagnostic.as_deref(),
            Some("User max (max@example.com) not listed in Domino Directory")
        );
        assert_eq!(got[0].reason_hint, Some("userunknown"));
        assert_eq!(got[0].command, None);
    }

    #[test]
    fn garbage_gives_nothing() {
        assert!(test_input("x", "y", "was not delivered to:\n\u{0}\nbecause:", read).is_empty());
    }
}
