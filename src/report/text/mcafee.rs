//! McAfee Email Gateway (X-NAI-Header) reports: "--- The following addresses had delivery
//! problems ---", then `<address>   (reason)` lines.

use super::addresses::first_address;
use super::replies::{command_of, recipient};
use super::{Family, Input, Recipients};
use crate::report::RecipientReport;

/// The McAfee gateway reader.
pub const FAMILY: Family = Family {
    name: "mcafee",
    detect,
    read,
};

fn detect(input: &Input) -> bool {
    input.header("X-NAI-Header").is_some()
        && input
            .body
            .contains("The following addresses had delivery problems")
}

fn read(input: &Input) -> Vec<RecipientReport> {
    let text = input.explanation;
    let Some(at) = text.find("The following addresses had delivery problems") else {
        return Vec::new();
    };
    let mut found = Recipients::default();
    for line in text.get(at..).unwrap_or("").lines().skip(1) {
        if found.full() {
            break;
        }
        let t = line.trim();
        if !t.starts_with('<') {
            continue;
        }
        let (head, reason) = t.split_once('>').map_or((t, ""), |(h, r)| (h, r.trim()));
        let Some(a) = first_address(&format!("{head}>")) else {
            continue;
        };
        let reason = reason
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or(reason);
        let mut r = recipient(a, "failed", reason);
        r.command = command_of(reason).map(str::to_string);
        found.add(r);
    }
    found.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(body: &str) -> Vec<RecipientReport> {
        let raw = format!(
            "From: postmaster@example.com\nX-NAI-Header: Modified by a gateway\nSubject: Delivery Status\n\n{body}"
        );
        let message = mail_parser::MessageParser::default()
            .parse(raw.as_bytes())
            .unwrap_or_default();
        let input = Input::new(&message, "Delivery Status", "postmaster@example.com", body);
        assert!(detect(&input) || body.is_empty() || !body.contains("delivery problems"));
        read(&input)
    }

    #[test]
    fn reads_address_lines() {
        let got = run(
            "    --- The following addresses had delivery problems ---\n\n<hana@Example.com>   (5.1.1 <hana@example.com>... User unknown)\n<ian@example.com>   (No such user)\n",
        );
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].recipient.as_deref(), Some("hana@example.com"));
        assert_eq!(
            got[0].diagnostic.as_deref(),
            Some("5.1.1 <hana@example.com>... User unknown")
        );
        assert_eq!(got[1].diagnostic.as_deref(), Some("No such user"));
        assert_eq!(got[0].command, None);
    }

    #[test]
    fn garbage_gives_nothing() {
        assert!(run("").is_empty());
        assert!(run("The following addresses had delivery problems\n<\n<>\n<\u{0}> (").is_empty());
    }
}
