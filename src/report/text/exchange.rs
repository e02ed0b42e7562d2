//! Microsoft Exchange text reports: Exchange 2003 ("did not reach the following recipient(s)",
//! an `address on DATE` line with indented reasons and an `MSEXCH:` code) and Exchange 2007+ /
//! Office 365 / Outlook.com ("Delivery has failed to these recipients or groups", then
//! "Diagnostic information for administrators" with `Remote Server returned '...'`).

use super::provider_util::{addr_line, failed, first_addr, normalize_addr, own_text, unfold};
use super::{Family, Input};
use crate::report::RecipientReport;

/// The Exchange reader.
pub const FAMILY: Family = Family {
    name: "exchange",
    detect,
    read,
};

const OLD_MARKERS: &[&str] = &[
    "did not reach the following recipient(s):",
    "The following recipient(s) could not be reached:",
];

fn detect(input: &Input) -> bool {
    OLD_MARKERS.iter().any(|m| input.body.contains(m))
        || input
            .body
            .contains("Delivery has failed to these recipients or groups")
        || input
            .body
            .contains("Diagnostic information for administrators")
}

fn read(input: &Input) -> Vec<RecipientReport> {
    let body = input.body;
    if let Some(at) = body.find("Diagnostic information for administrators") {
        let found = read_admin(body.get(at..).unwrap_or(""));
        if !found.is_empty() {
            return found;
        }
    }
    if let Some((at, len)) = OLD_MARKERS
        .iter()
        .find_map(|m| body.find(m).map(|i| (i, m.len())))
    {
        return read_2003(own_text(body.get(at + len..).unwrap_or("")));
    }
    match body.find("Delivery has failed to these recipients or groups") {
        Some(at) => read_user_part(own_text(body.get(at..).unwrap_or(""))),
        None => Vec::new(),
    }
}

/// Exchange 2003: `address on DATE` then indented reason lines, until a blank line.
fn read_2003(text: &str) -> Vec<RecipientReport> {
    let mut blocks: Vec<(String, Vec<&str>)> = Vec::new();
    let mut skipping = false;
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() {
            if blocks.is_empty() {
                continue;
            }
            break;
        }
        let head = t.split_once(" on ").map_or(t, |(a, _)| a);
        if let Some(a) = addr_line(head) {
            blocks.push((a, Vec::new()));
            skipping = false;
        } else if t.starts_with("The MTS-ID of the original message") {
            // The message's X.400 id, folded over lines: not the server's words.
            skipping = true;
        } else if skipping && !t.starts_with("MSEXCH:") {
            continue;
        } else if let Some((_, lines)) = blocks.last_mut() {
            skipping = false;
            lines.push(t);
        }
    }
    blocks
        .into_iter()
        .map(|(a, lines)| {
            let mut r = failed(a, unfold(lines));
            if r.diagnostic
                .as_deref()
                .is_some_and(|d| d.starts_with("The recipient name is not recognized"))
            {
                r.reason_hint = Some("userunknown");
            }
            r
        })
        .collect()
}

/// Exchange 2007+: per address, `Remote Server returned '...'` or the words after the address.
fn read_admin(text: &str) -> Vec<RecipientReport> {
    let text = own_text(text);
    let mut out: Vec<(String, Vec<&str>)> = Vec::new();
    for line in text.lines().skip(1) {
        let t = line.trim();
        if t.is_empty() || t.starts_with("Generating server:") {
            continue;
        }
        let head = t.split(|c: char| c.is_whitespace()).next().unwrap_or("");
        let head = head.trim_start_matches('#').split('#').next().unwrap_or("");
        let is_addr =
            t.split_whitespace().count() == 1 || t.starts_with('#') || t.contains("<mailto:");
        if let (true, Some(a)) = (is_addr, first_addr(head).or_else(|| normalize_addr(head))) {
            out.push((a, Vec::new()));
        } else if let Some((_, lines)) = out.last_mut() {
            lines.push(t);
        }
    }
    out.into_iter()
        .map(|(a, lines)| {
            let joined = unfold(lines);
            let diag = match joined.find("Remote Server returned '") {
                Some(at) => {
                    let rest = joined
                        .get(at + "Remote Server returned '".len()..)
                        .unwrap_or("");
                    rest.rfind('\'')
                        .and_then(|e| rest.get(..e))
                        .unwrap_or(rest)
                        .to_string()
                }
                None => joined,
            };
            failed(a, diag)
        })
        .collect()
}

/// Exchange 2007+ without the administrators' part: the address, then the explanation paragraph.
fn read_user_part(text: &str) -> Vec<RecipientReport> {
    let mut out: Vec<(String, Vec<&str>)> = Vec::new();
    for line in text.lines().skip(1) {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        let head = t.split("<mailto:").next().unwrap_or(t);
        match addr_line(head).or_else(|| {
            first_addr(t).filter(|_| t.split_whitespace().count() <= 3 && t.ends_with(')'))
        }) {
            Some(a) => out.push((a, Vec::new())),
            None => {
                if let Some((_, lines)) = out.last_mut() {
                    lines.push(t);
                }
            }
        }
    }
    out.into_iter()
        .map(|(a, lines)| failed(a, unfold(lines)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::text::provider_util::test_input;

    #[test]
    fn reads_exchange_2003() {
        let body = "Your message\n\n  To:      x@example.org\n  Subject: Hi\n\ndid not reach the following recipient(s):\n\nann@EXAMPLE.com on Mon, 5 Jan 2026 10:00:00 +0000\n    The recipient name is not recognized\n\tThe MTS-ID of the original message is: c=us;a= ;p=org\n;l=SERVER0000\n    MSEXCH:IMS:ORG:SITE:SERVER 0 (000C05A6) Unknown Recipient\nben@example.com on Mon, 5 Jan 2026 10:00:00 +0000\n    The e-mail account does not exist\n\n";
        let got = test_input("postmaster@example.com", "Undeliverable: Hi", body, |i| {
            assert!(detect(i));
            read(i)
        });
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].recipient.as_deref(), Some("ann@example.com"));
        assert_eq!(
            got[0].diagnostic.as_deref(),
            Some(
                "The recipient name is not recognized MSEXCH:IMS:ORG:SITE:SERVER 0 (000C05A6) Unknown Recipient"
            )
        );
        assert_eq!(got[0].reason_hint, Some("userunknown"));
        assert_eq!(
            got[1].diagnostic.as_deref(),
            Some("The e-mail account does not exist")
        );
        assert_eq!(got[1].command, None);
    }

    #[test]
    fn reads_administrators_part() {
        let body = "Delivery has failed to these recipients or groups:\n\ncat@example.com<mailto:cat@example.com>\nThe email address couldn't be found.\n\nDiagnostic information for administrators:\n\nGenerating server: SRV01.example.net\n\ncat@example.com\nRemote Server returned '550 5.1.1 RESOLVER.ADR.RecipNotFound; not found'\n\nOriginal message headers:\n\nTo: cat@example.com\n";
        let got = test_input("postmaster@example.net", "Undeliverable: Hi", body, read);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].recipient.as_deref(), Some("cat@example.com"));
        assert_eq!(
            got[0].diagnostic.as_deref(),
            Some("550 5.1.1 RESOLVER.ADR.RecipNotFound; not found")
        );
    }

    #[test]
    fn reads_user_part_alone_and_garbage() {
        let body = "Delivery has failed to these recipients or groups:\n\ndan@example.com<mailto:dan@example.com>\nThe mailbox is full.\n";
        let got = test_input("postmaster@example.net", "Undeliverable", body, read);
        assert_eq!(got[0].diagnostic.as_deref(), Some("The mailbox is full."));
        for g in [
            "",
            "did not reach the following recipient(s):\n\u{0} on ",
            "Diagnostic information for administrators\n#<>#",
        ] {
            assert!(test_input("x", "y", g, read).is_empty());
        }
    }
}
