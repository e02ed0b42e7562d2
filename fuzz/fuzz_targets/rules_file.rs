//! Any bytes as a user rule file: the loader returns rules or a typed error, never a panic or a hang.
#![no_main]

use bounced::classify::rules::RuleSet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = RuleSet::builtin_with_str(text, "<fuzz>");
});
