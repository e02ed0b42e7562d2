//! The outward signs of a failure report, read before any recipient is looked for: a sender or
//! subject of a mailer daemon, an empty envelope sender, and wording that states a delivery failed.
//! The free-text fallback, the auto-reply test and the VERP fallback all ask these questions.

use std::sync::LazyLock;

use regex::Regex;

use super::text::{self, Input};
use super::{prefix, statements};

/// Subjects that MTAs and providers give their failure reports.
static BOUNCE_SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)undeliver|returned mail|returned to sender|delivery status notification|mail delivery fail|delivery fail|failure notice|failed delivery|non[- ]?delivery|delivery (?:report|problem|notification)|could not be delivered|not delivered|(?:not |non[- ]?)deliverable|mail system error|unzustellbar|nicht zugestellt|non recapitabile|no se pudo entregar|non remis|rejected|配信エラー|エラー通知|配送エラー|不達|退信",
    )
    .expect("fixed pattern")
});

/// Wording in a text that says a delivery failed.
static FAILURE_WORDING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)undeliver|could not be delivered|couldn't be delivered|was not delivered|wasn't delivered|delivery (?:has |to the following recipients? )?failed|permanent(?:ly)? (?:error|fail)|fatal error|user unknown|unknown user|no such (?:user|mailbox)|mailbox (?:is )?(?:full|unavailable|not found)|address rejected|returned to sender|non-delivery|(?:not |non[- ]?)deliverable|delivery status notification|(?-u:\b)[45]\.\d{1,3}\.\d{1,3}(?-u:\b)|unzustellbar|nicht zugestellt",
    )
    .expect("fixed pattern")
});

/// Words with which an MTA states that a delivery failed (as opposed to why it failed).
static NON_DELIVERY_STATEMENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)undeliver|(?:could ?n[o']t|cannot|can't|unable to|failed to) (?:be )?deliver|(?:was|were|been) not delivered|(?:wasn't|weren't) delivered|not (?:been )?delivered|(?:not |non[- ]?)deliverable|delivery (?:has |to .{1,80} )?failed|delivery fail|failed delivery|permanent(?:ly)? (?:error|fail)|fatal error|failed recipient|returned mail|return(?:ed|ing) to sender|mail failed|non[- ]?delivery|delivery status notification|failure notice|unzustellbar|nicht zugestellt|non recapitabile|no se pudo entregar|non remis|n'a pas pu être remis|配信|不達|送信できません|退信|未能送达|无法投递|n'a pas pu être (?:transmis|distribué)|échec de la remise|no se (?:ha |han )?(?:podido|puede) entregar|falha na entrega|não (?:foi possível|pôde ser) entreg|non (?:è|e') stato possibile (?:consegnare|spedire|recapitare)|onbestelbaar|kon niet (?:worden )?(?:bezorgd|afgeleverd)|nie (?:można|udało się|mogła|mogło|może) (?:zostać )?dostarcz|niedostarcz|не (?:может быть |могло быть |было |были )?доставлен|недоставлен",
    )
    .expect("fixed pattern")
});

/// Whether a report in no known format states a delivery failure the way MTAs do: an SMTP reply
/// or enhanced status code in its explanation; a subject, opening sentence or marker that mail
/// software is documented to write in its failure reports ([`statements`](super::statements)); or
/// non-delivery words in a message that a mail system sent (a mailer daemon or postmaster, an empty
/// envelope sender, an `Auto-Submitted` header).
///
/// A notice that only says a message was "rejected", with a reason and no code, is also what list
/// moderation, ticket systems and mailbox scripts send; without a known format it is not taken as
/// a bounce, so that a prose notice can never put an address on a suppression list.
pub fn states_non_delivery(input: &Input) -> bool {
    let explanation = prefix(input.explanation, 16384);
    text::replies::has_code(explanation)
        || documented_statement(input)
        || (sent_by_mail_system(input)
            && (NON_DELIVERY_STATEMENT.is_match(input.subject)
                || NON_DELIVERY_STATEMENT.is_match(explanation)))
}

/// Whether the subject or the opening of the explanation is one that mail software is documented
/// to write in its failure reports.
pub fn documented_statement(input: &Input) -> bool {
    statements::in_subject_line(input.subject).is_some()
        || statements::in_explanation(input.explanation).is_some()
}

/// Whether a mail system sent the message: a mailer daemon or postmaster as its sender, an empty
/// envelope sender, or an `Auto-Submitted` header.
fn sent_by_mail_system(input: &Input) -> bool {
    bounce_sender(input) || null_sender(input) || auto_submitted(input)
}

/// Whether the envelope sender was empty (`Return-Path: <>`), as it is for every bounce.
fn null_sender(input: &Input) -> bool {
    input
        .message
        .header_raw("Return-Path")
        .is_some_and(|v| v.trim() == "<>")
}

/// Whether an `Auto-Submitted` header says a program generated or replied with the message.
fn auto_submitted(input: &Input) -> bool {
    let auto = input
        .message
        .header_raw("Auto-Submitted")
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    auto.contains("auto-generated") || auto.contains("auto-replied")
}

/// Whether the sender is a mailer daemon, a postmaster or a mail delivery system.
fn bounce_sender(input: &Input) -> bool {
    input
        .message
        .header_raw("From")
        .is_some_and(text::addresses::names_mail_system)
}

/// Whether the sender or the subject is that of a failure report (`MAILER-DAEMON`, postmaster,
/// "Undelivered Mail Returned to Sender", ...): evidence strong enough to rule out an auto-reply.
pub fn bounce_sender_or_subject(input: &Input) -> bool {
    bounce_sender(input)
        || BOUNCE_SUBJECT.is_match(input.subject)
        || statements::in_subject_line(input.subject).is_some()
}

/// Whether the message has the outward signs of a bounce: sent by a mailer daemon or postmaster, an
/// empty envelope sender, a failure-report subject, a documented opening of a failure report, or an
/// `Auto-Submitted` header with failure wording.
///
/// The family readers and the VERP fallback share this test.
pub fn looks_like_bounce(input: &Input) -> bool {
    bounce_sender_or_subject(input)
        || null_sender(input)
        || statements::in_explanation(input.explanation).is_some()
        || (auto_submitted(input) && has_failure_wording(input.subject, input.body))
}

/// Whether the subject or the start of the text says that a delivery failed.
pub fn has_failure_wording(subject: &str, body: &str) -> bool {
    FAILURE_WORDING.is_match(subject) || FAILURE_WORDING.is_match(prefix(body, 8192))
}
