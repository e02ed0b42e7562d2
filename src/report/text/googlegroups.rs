//! Google Groups' refusal to post: a localized notice that the group may not exist or the sender
//! may not post to it; the group's address is in `X-Failed-Recipients`.

use super::addresses::address_alone;
use super::replies::recipient;
use super::words::unfold;
use super::{Family, Input, Recipients};
use crate::classify::Reason;
use crate::report::RecipientReport;

/// The Google Groups reader.
pub const FAMILY: Family = Family {
    name: "googlegroups",
    detect,
    read,
};

fn detect(input: &Input) -> bool {
    if !(input.from.contains("googlemail.com") || input.from.contains("google.com")) {
        return false;
    }
    // Only the notice itself counts: a returned group post also mentions Google Groups.
    let own = input.explanation;
    own.contains("groups.google.com") || own.contains("Google Groups")
}

fn read(input: &Input) -> Vec<RecipientReport> {
    let Some(list) = input.header("X-Failed-Recipients") else {
        return Vec::new();
    };
    let text = input.explanation;
    // The paragraph after the greeting says why, in the sender's language.
    let diag = text
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .nth(1)
        .map(unfold)
        .unwrap_or_default();
    Recipients::of(list.split(',').filter_map(address_alone), |a| {
        let mut r = recipient(a, "failed", &diag);
        r.reason_hint = Some(Reason::Rejected);
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(body: &str, failed_to: Option<&str>) -> Vec<RecipientReport> {
        let mut raw = String::from(
            "From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\nSubject: Delivery Status Notification (Failure)\n",
        );
        if let Some(f) = failed_to {
            raw.push_str(&format!("X-Failed-Recipients: {f}\n"));
        }
        raw.push('\n');
        raw.push_str(body);
        let message = mail_parser::MessageParser::default()
            .parse(raw.as_bytes())
            .unwrap_or_default();
        let input = Input::new(&message, "x", "mailer-daemon@googlemail.com", body);
        assert!(detect(&input));
        read(&input)
    }

    #[test]
    fn reads_group_refusal() {
        let body = "Hello sender@example.org,\n\nThe group you wrote to (team) may not exist, or you may not\nhave permission to post to it.\n\n * The name may be misspelled.\n\nGoogle Groups\n\n----- Original message -----\n";
        let got = run(body, Some("team@Groups.Example.com"));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].recipient.as_deref(), Some("team@groups.example.com"));
        assert_eq!(
            got[0].diagnostic.as_deref(),
            Some(
                "The group you wrote to (team) may not exist, or you may not have permission to post to it."
            )
        );
        assert_eq!(got[0].reason_hint, Some(Reason::Rejected));
        assert_eq!(got[0].command, None);
    }

    #[test]
    fn a_returned_group_post_is_not_a_group_refusal() {
        let body = "Delivery to the following recipient failed permanently:\n\n     una@example.com\n\n----- Original message -----\n\nYou received this message because you are subscribed to the Google Groups list.\n";
        let raw = format!(
            "From: mailer-daemon@googlemail.com\nX-Failed-Recipients: una@example.com\n\n{body}"
        );
        let message = mail_parser::MessageParser::default()
            .parse(raw.as_bytes())
            .unwrap_or_default();
        let input = Input::new(&message, "x", "mailer-daemon@googlemail.com", body);
        assert!(!detect(&input));
    }

    #[test]
    fn without_header_or_with_garbage_nothing() {
        assert!(run("Google Groups\n\n\u{0}", None).is_empty());
        assert!(run("Google Groups", Some("<<@>>, ,")).is_empty());
    }
}
