//! Property tests of the code parsers (RFC 5321 reply codes, RFC 3463 enhanced status codes) and
//! the address parser and its users: they never panic, what they return re-renders to itself
//! (parse, print, parse is the identity; printing is idempotent), and they never return anything
//! the input does not hold.

use std::sync::LazyLock;

use bounced::address::Address;
use bounced::classify::codes::{
    ReplyCode, StatusCode, find_reply, find_server_pair, find_status, reply_codes,
    reply_status_pairs, status_codes,
};
use proptest::prelude::*;
use regex::Regex;

/// Every dotted triple of numbers in a text, as numbers.
static TRIPLE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(\d+)\.(\d+)\.(\d+)").expect("valid pattern"));

/// Whether `code` is written in `text` (the same numbers; leading zeros allowed).
fn status_in(text: &str, code: StatusCode) -> bool {
    // Overlapping triples (`1.5.1.1`) are found by restarting after every dot.
    (0..text.len())
        .filter(|&i| text.is_char_boundary(i))
        .filter_map(|i| text.get(i..))
        .filter_map(|t| TRIPLE.captures(t))
        .any(|c| {
            let n = |k| c.get(k).and_then(|m| m.as_str().parse::<u32>().ok());
            n(1) == Some(u32::from(code.class))
                && n(2) == Some(u32::from(code.subject))
                && n(3) == Some(u32::from(code.detail))
        })
}

/// Text made of pieces that look like codes, near-codes and the words around them.
fn code_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("550".to_string()),
        Just("5.1.1".to_string()),
        Just("said:".to_string()),
        Just("<<<".to_string()),
        Just("version".to_string()),
        Just("bytes".to_string()),
        Just(".".to_string()),
        Just("-".to_string()),
        Just("\n".to_string()),
        "[0-9]{1,4}",
        "[245]\\.[0-9]{1,2}\\.[0-9]{1,4}",
        "[2-5][0-9][0-9][ -][245]\\.[0-9]\\.[0-9]{1,3}",
        "[0-9.]{1,12}",
        "[a-zA-Z :;()\\[\\]<>'\"]{0,12}",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn status_parse_never_panics_and_re_renders(s in any::<String>()) {
        if let Some(code) = StatusCode::parse(&s) {
            prop_assert_eq!(StatusCode::parse(&code.to_string()), Some(code));
            prop_assert!(status_in(&s, code), "{} not in {:?}", code, s);
        }
    }

    #[test]
    fn canonical_status_codes_round_trip(class in 0u16..10, subject in 0u16..12, detail in 0u16..1200) {
        let text = format!("{class}.{subject}.{detail}");
        let parsed = StatusCode::parse(&text);
        prop_assert_eq!(parsed, StatusCode::new(class, subject, detail));
        if let Some(code) = parsed {
            prop_assert_eq!(code.to_string(), text);
        }
    }

    #[test]
    fn reply_parse_never_panics_and_re_renders(s in any::<String>()) {
        if let Some(code) = ReplyCode::parse(&s) {
            let shown = code.to_string();
            prop_assert_eq!(ReplyCode::parse(&shown), Some(code));
            prop_assert!(s.trim_start().starts_with(&shown), "{} does not lead {:?}", shown, s);
        }
    }

    #[test]
    fn canonical_reply_codes_round_trip(n in 0u16..1000) {
        let text = format!("{n:03}");
        let parsed = ReplyCode::parse(&text);
        prop_assert_eq!(parsed, ReplyCode::new(n));
        if let Some(code) = parsed {
            prop_assert_eq!(code.to_string(), text);
        }
    }

    #[test]
    fn scanners_find_only_codes_in_the_text(text in code_text()) {
        for code in status_codes(&text) {
            prop_assert!(status_in(&text, code), "{} not in {:?}", code, text);
        }
        for code in reply_codes(&text) {
            prop_assert!(text.contains(&code.to_string()), "{} not in {:?}", code, text);
            prop_assert!(code.is_defined());
        }
        for (reply, status) in reply_status_pairs(&text) {
            prop_assert!(text.contains(&reply.to_string()));
            prop_assert!(status_in(&text, status));
            prop_assert_eq!(reply.class(), status.class);
        }
        if let Some(code) = find_status(&text) {
            prop_assert!(status_in(&text, code));
        }
        if let Some(code) = find_reply(&text) {
            prop_assert!(text.contains(&code.to_string()));
        }
        if let Some((reply, status)) = find_server_pair(&text) {
            prop_assert!(reply.class() >= 4 && !status.is_generic());
        }
    }

    #[test]
    fn scanners_never_panic_on_any_text(text in any::<String>()) {
        for code in status_codes(&text) {
            prop_assert!(status_in(&text, code));
        }
        for code in reply_codes(&text) {
            prop_assert!(text.contains(&code.to_string()));
        }
        let _ = find_reply(&text);
        let _ = find_status(&text);
    }
}

/// Address-like text: display names, brackets, types, quotes, mixed case, odd characters.
fn address_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("rfc822;".to_string()),
        Just("RFC822; ".to_string()),
        Just("<".to_string()),
        Just(">".to_string()),
        Just("@".to_string()),
        Just("\"".to_string()),
        Just(";".to_string()),
        Just(",".to_string()),
        Just(" ".to_string()),
        "[a-zA-Z0-9._+-]{1,10}",
        "[A-Z]{1,6}\\.(COM|Org|net)",
        "[a-zA-Z0-9 <>@;,\"'.\\t]{0,12}",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

/// Whether every character of `part` is in `input` (lower-cased when `lower`): a normaliser takes
/// quotes, escapes and brackets off, but never invents a character.
fn from_input(part: &str, input: &str, lower: bool) -> bool {
    let hay = if lower {
        input.to_lowercase()
    } else {
        input.to_string()
    };
    part.chars().all(|c| hay.contains(c))
}

/// Checks the report's field normaliser's promises for one input.
fn check_report_normalizer(input: &str) -> Result<(), TestCaseError> {
    let Some(out) = bounced::report::field_address(input) else {
        return Ok(());
    };
    prop_assert!(!out.is_empty());
    prop_assert_eq!(
        bounced::report::field_address(&out),
        Some(out.clone()),
        "not idempotent for {:?}",
        input
    );
    match Address::parse(&out) {
        Ok(a) => {
            prop_assert_eq!(a.to_string(), out.clone());
            prop_assert_eq!(a.domain(), a.domain().to_lowercase());
            prop_assert!(
                from_input(a.local(), input, false),
                "{:?} not from {:?}",
                a,
                input
            );
            prop_assert!(
                from_input(a.domain(), input, true),
                "{:?} not from {:?}",
                a,
                input
            );
        }
        // A local delivery target (no mailbox address): its text, the domain side lower-cased.
        Err(_) => prop_assert!(
            input.to_lowercase().contains(&out.to_lowercase()),
            "{:?} not in {:?}",
            out,
            input
        ),
    }
    Ok(())
}

/// Checks the store normalizer's promises for one input.
fn check_store_normalizer(input: &str) -> Result<(), TestCaseError> {
    let Some((address, domain)) = bounced::store::normalize_address(input) else {
        return Ok(());
    };
    prop_assert_eq!(domain.clone(), domain.to_lowercase());
    let suffix = format!("@{domain}");
    prop_assert!(address.ends_with(&suffix));
    let parsed = Address::parse(&address);
    prop_assert!(parsed.is_ok(), "{:?} does not parse", address);
    let local = parsed.map(|a| a.local().to_string()).unwrap_or_default();
    prop_assert!(!local.is_empty());
    prop_assert!(
        from_input(&local, input, false),
        "{:?} not from {:?}",
        local,
        input
    );
    prop_assert_eq!(
        bounced::store::normalize_address(&address),
        Some((address.clone(), domain.clone())),
        "not idempotent for {:?}",
        input
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn report_normalizer_on_address_text(input in address_text()) {
        check_report_normalizer(&input)?;
    }

    #[test]
    fn report_normalizer_on_any_text(input in any::<String>()) {
        check_report_normalizer(&input)?;
    }

    #[test]
    fn store_normalizer_on_address_text(input in address_text()) {
        check_store_normalizer(&input)?;
    }

    #[test]
    fn store_normalizer_on_any_text(input in any::<String>()) {
        check_store_normalizer(&input)?;
    }

    #[test]
    fn a_plain_address_keeps_its_local_part_and_lowers_its_domain(
        local in "[a-zA-Z0-9._+-]{1,20}",
        domain in "[a-zA-Z0-9-]{1,12}\\.[a-zA-Z]{2,6}",
        wrap in 0usize..4,
    ) {
        let plain = format!("{local}@{domain}");
        let input = match wrap {
            0 => plain.clone(),
            1 => format!("<{plain}>"),
            2 => format!("rfc822; {plain}"),
            _ => format!("\"Someone\" <{plain}>"),
        };
        let want = format!("{local}@{}", domain.to_lowercase());
        // A local part with consecutive, leading or trailing dots is printed quoted.
        let want = if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            format!("\"{local}\"@{}", domain.to_lowercase())
        } else {
            want
        };
        prop_assert_eq!(bounced::report::field_address(&input), Some(want.clone()));
        prop_assert_eq!(
            bounced::store::normalize_address(&input),
            Some((want, domain.to_lowercase()))
        );
    }

    #[test]
    fn parse_print_parse_is_the_identity(local in local_part(), domain in domain_name()) {
        let Ok(address) = Address::from_parts(&local, &domain) else {
            return Ok(());
        };
        let printed = address.to_string();
        let again = Address::parse(&printed);
        prop_assert_eq!(again.as_ref(), Ok(&address), "{:?} printed as {:?}", address, printed);
        prop_assert_eq!(again.map(|a| a.to_string()), Ok(printed));
        prop_assert_eq!(address.local(), local.as_str());
    }

    #[test]
    fn printing_a_parsed_address_is_idempotent(input in address_text()) {
        check_idempotent_print(&input)?;
    }

    #[test]
    fn printing_any_parsed_text_is_idempotent(input in any::<String>()) {
        check_idempotent_print(&input)?;
    }

    #[test]
    fn a_quoted_local_part_survives_every_wrapping(
        local in "[a-z. ]{1,12}",
        domain in "[a-zA-Z]{1,8}\\.[a-zA-Z]{2,4}",
        wrap in 0usize..4,
    ) {
        let quoted = format!("\"{local}\"@{domain}");
        let input = match wrap {
            0 => quoted.clone(),
            1 => format!("<{quoted}>"),
            2 => format!("rfc822; {quoted}"),
            _ => format!("Someone <{quoted}>"),
        };
        let parsed = Address::parse(&input);
        prop_assert!(parsed.is_ok(), "{:?}", input);
        let parsed = parsed.unwrap_or_else(|_| unreachable!());
        prop_assert_eq!(parsed.local(), local.as_str());
        prop_assert_eq!(parsed.domain(), domain.to_lowercase());
    }
}

/// Local parts: atoms, dots, spaces, quotes, backslashes, `@`, commas and UTF-8, in any order.
fn local_part() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]{1,6}",
        Just(".".to_string()),
        Just(" ".to_string()),
        Just("\"".to_string()),
        Just("\\".to_string()),
        Just("@".to_string()),
        Just(",".to_string()),
        Just("(".to_string()),
        "[éöü用户ñ]{1,3}",
    ];
    prop::collection::vec(piece, 1..6).prop_map(|v| v.concat())
}

/// Domains: one to four labels, mixed case, some UTF-8, sometimes a trailing dot or a literal.
fn domain_name() -> impl Strategy<Value = String> {
    let label = prop_oneof!["[a-zA-Z0-9-]{1,10}", "[a-zÄÖÜéß例子]{1,5}"];
    prop_oneof![
        (prop::collection::vec(label, 1..4), any::<bool>()).prop_map(|(labels, dot)| {
            let mut d = labels.join(".");
            if dot {
                d.push('.');
            }
            d
        }),
        "\\[[0-9]{1,3}(\\.[0-9]{1,3}){3}\\]",
        Just("[IPv6:2001:DB8::1]".to_string()),
    ]
}

/// The printed form of whatever parses is a fixed point: it parses to the same address and prints
/// as itself.
fn check_idempotent_print(input: &str) -> Result<(), TestCaseError> {
    let Ok(address) = Address::parse(input) else {
        return Ok(());
    };
    let printed = address.to_string();
    let again = Address::parse(&printed);
    prop_assert_eq!(again.as_ref(), Ok(&address), "{:?} -> {:?}", input, printed);
    prop_assert_eq!(again.map(|a| a.to_string()), Ok(printed));
    Ok(())
}
