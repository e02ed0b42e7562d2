//! Microsoft Exchange text reports: Exchange 2003 ("did not reach the following recipient(s)",
//! an `address on DATE` line with indented reasons and an `MSEXCH:` code) and Exchange 2007+ /
//! Office 365 / Outlook.com ("Delivery has failed to these recipients or groups", then
//! "Diagnostic information for administrators" with `Remote Server returned '...'`), and the
//! Microsoft 365 notice ("Your message to ADDRESS couldn't be delivered.", then "Reported error:"
//! under "Error Details").

use std::sync::LazyLock;

use regex::Regex;

use super::addresses::{address_alone, first_address};
use super::blocks::cut_original;
use super::replies::recipient;
use super::words::unfold;
use super::{Family, Gathered, Input, Recipients};
use crate::classify::Reason;
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

/// "Diagnostic information for administrators", as Exchange localizes it.
const ADMIN_MARKERS: &[&str] = &[
    "Diagnostic information for administrators",
    "Informations de diagnostic pour les administrateurs",
    "Diagnoseinformationen für Administratoren",
    "Información de diagnóstico para administradores",
    "Informazioni di diagnostica per gli amministratori",
];

/// "Delivery has failed to these recipients or groups", as Exchange localizes it.
const USER_MARKERS: &[&str] = &[
    "Delivery has failed to these recipients or groups",
    "Échec de la remise pour ces destinataires ou groupes",
    "Fehler bei der Zustellung an folgende Empfänger oder Gruppen",
    "Error en la entrega a estos destinatarios o grupos",
];

/// Outlook.com's (Hotmail's) older notice, which lists the addresses only.
const OUTLOOK_MARKER: &str = "Delivery to the following recipients failed.";

/// The same notice's delay warning.
const OUTLOOK_DELAY_MARKER: &str = "Delivery to the following recipients has been delayed.";

/// Where the first of `markers` occurs in `body`, and its length.
fn find_any(body: &str, markers: &[&str]) -> Option<(usize, usize)> {
    markers
        .iter()
        .find_map(|m| body.find(m).map(|i| (i, m.len())))
}

/// Every marker above, searched in one pass over the body.
static ANY_MARKER: LazyLock<Regex> = LazyLock::new(|| {
    let all: Vec<String> = OLD_MARKERS
        .iter()
        .chain(USER_MARKERS)
        .chain(ADMIN_MARKERS)
        .chain([&OUTLOOK_MARKER, &OUTLOOK_DELAY_MARKER])
        .map(|m| regex::escape(m))
        .collect();
    Regex::new(&all.join("|")).expect("escaped literals")
});

/// The Microsoft 365 notice's opening (`Your message to ADDRESS couldn't be delivered.`), and
/// the field that quotes the server's reply further down.
const M365_OPENING: &str = "Your message to ";
const M365_CLOSING: &str = "couldn't be delivered";
const M365_REPORTED: &str = "Reported error:";

fn is_m365(body: &str) -> bool {
    body.contains(M365_REPORTED) && body.contains(M365_CLOSING)
}

fn detect(input: &Input) -> bool {
    ANY_MARKER.is_match(input.body) || is_m365(input.body)
}

fn read(input: &Input) -> Vec<RecipientReport> {
    let body = input.body;
    if is_m365(body) {
        // Not cut at "Original Message Details": the error details follow that heading.
        let found = read_m365(body);
        if !found.is_empty() {
            return found;
        }
    }
    if let Some((at, _)) = find_any(body, ADMIN_MARKERS) {
        let found = read_admin(body.get(at..).unwrap_or(""));
        if !found.is_empty() {
            return found;
        }
    }
    if let Some((at, len)) = find_any(body, OLD_MARKERS) {
        return read_2003(cut_original(body.get(at + len..).unwrap_or("")));
    }
    if let Some((at, _)) = find_any(body, USER_MARKERS) {
        return read_user_part(cut_original(body.get(at..).unwrap_or("")));
    }
    if let Some(at) = body.find(OUTLOOK_MARKER) {
        return read_outlook(body.get(at + OUTLOOK_MARKER.len()..).unwrap_or(""));
    }
    match body.find(OUTLOOK_DELAY_MARKER) {
        Some(at) => {
            let mut found = read_outlook(body.get(at + OUTLOOK_DELAY_MARKER.len()..).unwrap_or(""));
            for r in &mut found {
                r.action = Some("delayed".to_string());
            }
            found
        }
        None => Vec::new(),
    }
}

/// Outlook.com: the indented addresses after the marker, with no reason given.
fn read_outlook(text: &str) -> Vec<RecipientReport> {
    let mut found = Recipients::default();
    for a in text
        .lines()
        .map(str::trim)
        .skip_while(|l| l.is_empty())
        .map_while(address_alone)
    {
        if found.full() {
            break;
        }
        if !found.contains(&a) {
            found.add(recipient(a, "failed", ""));
        }
    }
    found.into_vec()
}

/// Whether a line starts the returned message's header (the localized "Original message headers"
/// line is not recognised, the header fields below it are).
fn is_header_line(t: &str) -> bool {
    const FIELDS: &[&str] = &[
        "Received:",
        "Return-Path:",
        "Message-ID:",
        "Message-Id:",
        "From:",
        "To:",
        "Subject:",
        "Date:",
        "MIME-Version:",
        "Content-Type:",
    ];
    FIELDS.iter().any(|f| t.starts_with(f))
}

/// Exchange 2003: `address on DATE` then indented reason lines, until a blank line.
fn read_2003(text: &str) -> Vec<RecipientReport> {
    let mut blocks = Gathered::default();
    let mut skipping = false;
    // After a blank line, only another `address on DATE` line continues the list.
    let mut gap = false;
    for line in text.lines() {
        if blocks.full() {
            break;
        }
        let t = line.trim();
        if t.is_empty() {
            gap = !blocks.is_empty();
            continue;
        }
        let (head, dated) = t.split_once(" on ").map_or((t, false), |(a, rest)| {
            (a, rest.starts_with(|c: char| c.is_ascii_digit()))
        });
        if let Some(a) = address_alone(head) {
            blocks.start(a);
            skipping = false;
            gap = false;
        } else if gap && dated {
            // A recipient named only by a display name: its lines say nothing of an address,
            // and the list goes on after them.
            blocks.close();
            skipping = true;
            gap = false;
        } else if gap {
            break;
        } else if t.starts_with("The MTS-ID of the original message") {
            // The message's X.400 id, folded over lines: not the server's words.
            skipping = true;
        } else if skipping && !t.starts_with("MSEXCH:") {
            continue;
        } else {
            skipping = false;
            blocks.line(t);
        }
    }
    blocks
        .into_blocks()
        .into_iter()
        .map(|(a, lines)| {
            let mut r = recipient(a, "failed", &unfold(&lines.join(" ")));
            if r.diagnostic
                .as_deref()
                .is_some_and(|d| d.starts_with("The recipient name is not recognized"))
            {
                r.reason_hint = Some(Reason::Userunknown);
            }
            r
        })
        .collect()
}

/// Exchange 2007+: per address, `Remote Server returned '...'` or the words after the address.
fn read_admin(text: &str) -> Vec<RecipientReport> {
    let text = cut_original(text);
    let mut out = Gathered::default();
    for line in text.lines().skip(1) {
        let t = line.trim();
        if is_header_line(t) || out.full() {
            break;
        }
        if t.is_empty() {
            // A blank line ends the current address's block.
            out.close();
            continue;
        }
        if t.starts_with("Generating server:") {
            continue;
        }
        let head = t.split(|c: char| c.is_whitespace()).next().unwrap_or("");
        let head = head.trim_start_matches('#').split('#').next().unwrap_or("");
        let is_addr =
            t.split_whitespace().count() == 1 || t.starts_with('#') || t.contains("<mailto:");
        if let (true, Some(a)) = (is_addr, first_address(head).or_else(|| address_alone(head))) {
            out.start(a);
        } else {
            out.line(t);
        }
    }
    out.into_blocks()
        .into_iter()
        .map(|(a, lines)| {
            let joined = unfold(&lines.join(" "));
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
                None => unframe(&joined),
            };
            recipient(a, "failed", &diag)
        })
        .collect()
}

/// Microsoft 365: the address in the opening sentence; the reply after "Reported error:" (up to
/// a blank line or the next field); the hosts of "DSN generated by:" and "Remote server:".
fn read_m365(text: &str) -> Vec<RecipientReport> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let address = lines.iter().find_map(|l| {
        let rest = l.strip_prefix(M365_OPENING)?;
        let (addr, _) = rest.split_once(M365_CLOSING)?;
        address_alone(addr.trim())
    });
    let Some(address) = address else {
        return Vec::new();
    };
    let field = |name: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let host = |name: &str| {
        field(name)
            .and_then(|v| v.split_whitespace().next())
            .map(str::to_ascii_lowercase)
    };
    let reported = lines
        .iter()
        .position(|l| l.starts_with(M365_REPORTED))
        .map(|at| {
            let mut parts = vec![
                lines
                    .get(at)
                    .and_then(|l| l.strip_prefix(M365_REPORTED))
                    .unwrap_or(""),
            ];
            parts.extend(
                lines
                    .iter()
                    .skip(at + 1)
                    .take_while(|l| !l.is_empty() && !is_m365_field(l)),
            );
            unfold(&parts.join(" "))
        })
        .filter(|d| !d.is_empty());
    let diagnostic = reported
        .or_else(|| field("Status code:").map(str::to_string))
        .unwrap_or_default();
    let mut r = recipient(address, "failed", &diagnostic);
    r.reporting_mta = host("DSN generated by:");
    r.remote_mta = host("Remote server:");
    vec![r]
}

/// A `Name: value` line of the notice's details (`DSN generated by:`, `Remote server:`).
fn is_m365_field(line: &str) -> bool {
    line.split_once(':').is_some_and(|(name, _)| {
        !name.is_empty()
            && name.len() < 30
            && name.chars().all(|c| c.is_ascii_alphabetic() || c == ' ')
            && name.chars().next().is_some_and(|c| c.is_ascii_uppercase())
    })
}

/// The reply inside Exchange's framing: `#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##`
/// and `#< #5.1.1 smtp;550 5.1.1 ...> #SMTP#` give the reply alone; other text is kept.
fn unframe(text: &str) -> String {
    let t = text.trim();
    if !t.starts_with('#') {
        return t.to_string();
    }
    if let Some((_, reply)) = t.split_once("smtp;") {
        let reply = reply.rsplit_once('>').map_or(reply, |(r, _)| r);
        return reply.trim().to_string();
    }
    t.trim_matches(|c: char| c == '#' || c.is_whitespace())
        .to_string()
}

/// Exchange 2007+ without the administrators' part: the address, then the explanation paragraph.
fn read_user_part(text: &str) -> Vec<RecipientReport> {
    let mut out = Gathered::default();
    for line in text.lines().skip(1) {
        if out.full() {
            break;
        }
        let t = line.trim();
        if t.is_empty() {
            // A blank line after an address's explanation ends it: what follows is the notice's
            // own text.
            if !out.open_and_empty() {
                out.close();
            }
            continue;
        }
        let head = t.split("<mailto:").next().unwrap_or(t);
        match address_alone(head).or_else(|| {
            first_address(t).filter(|_| t.split_whitespace().count() <= 3 && t.ends_with(')'))
        }) {
            Some(a) => out.start(a),
            None => out.line(t),
        }
    }
    out.into_blocks()
        .into_iter()
        .map(|(a, lines)| recipient(a, "failed", &unfold(&lines.join(" "))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_2003_lists_recipients_between_blank_lines() {
        let text = "\n\nkim@example.net on Tue, 24 Nov 2026 09:39:58 +0000\n    No such account.\n    <mx.example.net #5.1.1>\n\nlee@example.net on Tue, 24 Nov 2026 09:39:58 +0000\n    Mailbox full.\n    <mx.example.net #5.2.2>\n\nSome closing words here.\n";
        let got = read_2003(text);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].recipient.as_deref(), Some("lee@example.net"));
        assert_eq!(
            got[1].diagnostic.as_deref(),
            Some("Mailbox full. <mx.example.net #5.2.2>")
        );
        assert!(
            !got[1]
                .diagnostic
                .as_deref()
                .is_some_and(|d| d.contains("closing"))
        );
    }

    #[test]
    fn exchange_2003_goes_on_past_a_recipient_named_only_by_name() {
        let text = "\n\nkim@example.net on 3/2/2026 10:00 AM\n    No such account.\n    <mx.example.net #5.1.1>\n\nLee Park on 3/2/2026 10:00 AM\n    Mailbox full.\n    <mx.example.net #5.2.2>\n\nmo@example.net on 3/2/2026 10:00 AM\n    Not permitted.\n    <mx.example.net #5.7.1>\n\nSome closing words here.\n";
        let got: Vec<_> = read_2003(text)
            .into_iter()
            .map(|r| (r.recipient, r.diagnostic))
            .collect();
        assert_eq!(
            got,
            [
                (
                    Some("kim@example.net".to_string()),
                    Some("No such account. <mx.example.net #5.1.1>".to_string())
                ),
                (
                    Some("mo@example.net".to_string()),
                    Some("Not permitted. <mx.example.net #5.7.1>".to_string())
                )
            ]
        );
    }

    #[test]
    fn reads_the_microsoft_365_notice() {
        let body = "Your message to nia@example.com couldn't be delivered.\n\nnia wasn't found at example.com.\n\nMore Info for Email Admins\nStatus code: 550 5.1.10\n\nError Details\nReported error: 550 5.1.10 RESOLVER.ADR.RecipientNotFound; not found by SMTP\naddress lookup\nDSN generated by: AB1PR01MB0001.example.prod.outlook.com\nRemote server: mx.example.com\n";
        let got = read_m365(body);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].recipient.as_deref(), Some("nia@example.com"));
        assert_eq!(
            got[0].diagnostic.as_deref(),
            Some("550 5.1.10 RESOLVER.ADR.RecipientNotFound; not found by SMTP address lookup")
        );
        assert_eq!(
            got[0].reporting_mta.as_deref(),
            Some("ab1pr01mb0001.example.prod.outlook.com")
        );
        assert_eq!(got[0].remote_mta.as_deref(), Some("mx.example.com"));
        let no_report = body.replace("Reported error:", "Noted:");
        assert_eq!(
            read_m365(&no_report)[0].diagnostic.as_deref(),
            Some("550 5.1.10")
        );
        assert!(read_m365("Reported error: 550\n").is_empty());
    }

    #[test]
    fn exchange_framing_is_removed_from_the_reply() {
        assert_eq!(
            unframe("#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##"),
            "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found"
        );
        assert_eq!(
            unframe("#< #5.1.1 smtp;550 5.1.1 RESOLVER.ADR.RecipNotFound; not found> #SMTP#"),
            "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found"
        );
        assert_eq!(unframe("The mailbox is full."), "The mailbox is full.");
        assert_eq!(unframe("#"), "");
    }
    use crate::report::text::testutil::test_input;

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
        assert_eq!(got[0].reason_hint, Some(Reason::Userunknown));
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
    fn reads_localized_and_outlook_forms() {
        let body = "Échec de la remise pour ces destinataires ou groupes :\n\nnoe@example.fr<mailto:noe@example.fr>\nL'adresse est introuvable.\n\nInformations de diagnostic pour les administrateurs :\n\nServeur de génération : SRV2.example.fr\n\nnoe@example.fr\nRemote Server returned '550 5.1.1 RESOLVER.ADR.RecipNotFound; not found'\n\nEn-têtes de message d'origine :\n\nReceived: from a.example.fr\nTo: <other@example.fr>\n";
        let got = test_input("postmaster@example.fr", "Non remis", body, |i| {
            assert!(detect(i));
            read(i)
        });
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].recipient.as_deref(), Some("noe@example.fr"));
        assert_eq!(
            got[0].diagnostic.as_deref(),
            Some("550 5.1.1 RESOLVER.ADR.RecipNotFound; not found")
        );
        let body = "This is an automatically generated Delivery Status Notification.\n\nDelivery to the following recipients failed.\n\n       ola@example.com\n       pam@example.com\n\n";
        let got = test_input(
            "postmaster@mail.example.com",
            "Delivery Status Notification (Failure)",
            body,
            read,
        );
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].recipient.as_deref(), Some("pam@example.com"));
        assert_eq!(got[1].diagnostic, None);
        let body = "THIS IS A WARNING MESSAGE ONLY.\n\nDelivery to the following recipients has been delayed.\n\n       quinn@example.com\n";
        let got = test_input(
            "postmaster@mail.example.com",
            "Delivery Status Notification (Delay)",
            body,
            read,
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].action.as_deref(), Some("delayed"));
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
