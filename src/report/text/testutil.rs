//! Helpers for the readers' unit tests: an [`Input`] built from a raw message, and garbage inputs
//! every reader must survive.

use mail_parser::MessageParser;

use super::{Input, readable_text};
use crate::report::RecipientReport;

/// Parses `raw` and calls `f` with the reader input built from it.
pub fn input_from(raw: &str, f: impl FnOnce(&Input)) {
    let Some(msg) = MessageParser::default().parse(raw.as_bytes()) else {
        panic!("test message does not parse");
    };
    let subject = msg.subject().unwrap_or("").to_string();
    let from = msg
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or("")
        .to_lowercase();
    let body = readable_text(&msg);
    let input = Input::new(&msg, &subject, &from, &body);
    f(&input);
}

/// Runs `f` on an [`Input`] built from a small test bounce.
pub fn test_input<T>(from: &str, subject: &str, body: &str, f: impl FnOnce(&Input) -> T) -> T {
    let raw = format!(
        "From: {from}\nSubject: {subject}\nContent-Type: text/plain; charset=utf-8\n\n{body}"
    );
    let message = mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .unwrap_or_default();
    let from_lc = from.to_ascii_lowercase();
    let input = Input::new(&message, subject, &from_lc, body);
    f(&input)
}

/// Runs a reader over garbage and truncated inputs: it must return, whatever it finds.
pub fn garbage(read: fn(&Input) -> Vec<RecipientReport>) {
    let mut seed: u32 = 0x1234_5678;
    let alphabet: Vec<char> = "<>@:.()[] \n\t-x5é日0>>><<<said host RCPT"
        .chars()
        .collect();
    let mut cases: Vec<String> = vec![
        String::new(),
        "\n".into(),
        "<@>:\n<<<\n>>>\n".into(),
        "<a@b.cc>:\n".into(),
        "  a@b.cc\n    host :\n".into(),
        "<a@b.cc> (expanded from <\n".into(),
    ];
    for _ in 0..200 {
        let mut s = String::new();
        for _ in 0..(seed % 300) {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let i = (seed as usize) % alphabet.len();
            s.push(alphabet.get(i).copied().unwrap_or('x'));
        }
        cases.push(s);
    }
    for body in cases {
        let raw = format!("From: MAILER-DAEMON@example.org\nSubject: failure\n\n{body}");
        input_from(&raw, |input| {
            let _ = read(input);
        });
    }
}
