//! VERP: a list sends each message from `list-bounces+user=example.com@lists.example.org`, so a
//! bounce that names no recipient still tells who failed through the address it was sent back to.

use mail_parser::Message;

/// Reader name.
pub const NAME: &str = "verp";

/// Headers of the bounce that carry the address the bounce was delivered to, in order of trust.
const HEADERS: &[&str] = &["To", "Delivered-To", "X-Original-To", "Envelope-To"];

/// The recipient encoded in the bounce's own destination address, if any.
pub fn recipient(message: &Message, separator: char) -> Option<String> {
    for name in HEADERS {
        for header in message.headers() {
            if !header.name().eq_ignore_ascii_case(name) {
                continue;
            }
            let Some(raw) = message
                .raw_message()
                .get(header.offset_start() as usize..header.offset_end() as usize)
            else {
                continue;
            };
            // A VERP address holds the separator and an `=` in its local part: a field without
            // both names none, and is not parsed.
            let mut utf8 = [0u8; 4];
            let sep = separator.encode_utf8(&mut utf8).as_bytes();
            if memchr::memmem::find(raw, sep).is_none() || memchr::memchr(b'=', raw).is_none() {
                continue;
            }
            let raw = String::from_utf8_lossy(raw);
            for candidate in raw.split(',') {
                if let Some(found) = super::field_address(candidate)
                    .and_then(|a| decode(&a, separator))
                    .and_then(|a| crate::address::normalize(&a))
                {
                    return Some(found);
                }
            }
        }
    }
    None
}

/// Decodes `prefix+user=example.com@host` into `user@example.com`; `None` for an address that is not
/// VERP-encoded.
pub fn decode(address: &str, separator: char) -> Option<String> {
    let (local, host) = address.trim().rsplit_once('@')?;
    if host.is_empty() {
        return None;
    }
    let (prefix, encoded) = local.split_once(separator)?;
    let (user, domain) = encoded.rsplit_once('=')?;
    if prefix.is_empty() || user.is_empty() || !is_domain(domain) {
        return None;
    }
    if user
        .chars()
        .any(|c| c.is_whitespace() || c == '@' || c == '<' || c == '>')
    {
        return None;
    }
    Some(format!("{user}@{}", domain.to_ascii_lowercase()))
}

/// Whether `s` is a plausible domain name (at least two labels of letters, digits and hyphens).
fn is_domain(s: &str) -> bool {
    s.contains('.')
        && s.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Kind, ReadOptions, read, read_with};

    #[test]
    fn decodes_verp_addresses() {
        assert_eq!(
            decode("list-bounces+jane.doe=Example.COM@lists.example.org", '+'),
            Some("jane.doe@example.com".to_string())
        );
        assert_eq!(
            decode("bounce-x=y+a=b=example.net@example.org", '+'),
            Some("a=b@example.net".to_string())
        );
        assert_eq!(
            decode("news-bounce-kim=example.net@example.org", '-'),
            Some("bounce-kim@example.net".to_string())
        );
    }

    #[test]
    fn plain_addresses_are_not_decoded() {
        assert_eq!(decode("jane@example.com", '+'), None);
        assert_eq!(decode("jane+tag@example.com", '+'), None);
        assert_eq!(decode("a+b=notadomain@example.com", '+'), None);
        assert_eq!(decode("+x=example.com@example.org", '+'), None);
    }

    #[test]
    fn bounce_without_recipient_falls_back_to_verp() {
        let msg = "From: MAILER-DAEMON@mx.example.net\nTo: news-bounces+lee=example.com@lists.example.org\n\
Subject: failure notice\n\nSorry, it did not work out.\n";
        let r = read(msg.as_bytes()).unwrap();
        assert_eq!(r.kind, Some(Kind::Text));
        assert_eq!(r.reader, "verp");
        assert_eq!(r.recipients.len(), 1);
        assert_eq!(
            r.recipients[0].recipient.as_deref(),
            Some("lee@example.com")
        );
        assert_eq!(r.recipients[0].action.as_deref(), Some("failed"));
        assert_eq!(r.recipients[0].status, None);

        let dashed = msg.replace("bounces+lee", "bounces#lee");
        let opts = ReadOptions {
            verp_separator: '#',
            ..ReadOptions::default()
        };
        let r = read_with(dashed.as_bytes(), &opts).unwrap();
        assert_eq!(
            r.recipients[0].recipient.as_deref(),
            Some("lee@example.com")
        );
    }

    #[test]
    fn ordinary_mail_to_verp_address_is_not_a_bounce() {
        let msg = "From: friend@example.com\nTo: news-bounces+lee=example.com@lists.example.org\n\
Subject: hello\n\nhi\n";
        let r = read(msg.as_bytes()).unwrap();
        assert_eq!(r.kind, Some(Kind::NotBounce));
    }
}
