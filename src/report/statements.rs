//! How mail software states that a delivery failed: the fixed subjects and the opening sentences
//! and section markers of the failure reports of known MTAs and mail systems, in the languages
//! they are sent in. Each entry is a documented fact; its note names the software and the
//! reference (`knowledge/mtas.md` section, `knowledge/languages.md` section) it was taken from.
//!
//! A report that carries one of these is a failure report even when it gives no SMTP code: it is
//! how the software words its own bounces, which list moderation, ticket systems and mailbox
//! scripts do not.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

/// Where a statement is looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// At the start of the subject (after any `Re:`/`Fwd:` left by a forward).
    SubjectStart,
    /// Anywhere in the subject.
    Subject,
    /// Anywhere in the first lines of the report's explanation ([`BODY_SCAN`] bytes).
    Body,
}

/// One documented way a mail system states a failure.
#[derive(Debug, Clone, Copy)]
pub struct Statement {
    /// The words, as the software writes them (matched without regard to ASCII case).
    pub text: &'static str,
    /// Where they are looked for.
    pub place: Place,
    /// The software and the reference the words come from.
    pub note: &'static str,
}

/// How much of a report's explanation is searched for an opening sentence or marker (bytes).
pub const BODY_SCAN: usize = 16 * 1024;

const fn subject(text: &'static str, note: &'static str) -> Statement {
    Statement {
        text,
        place: Place::SubjectStart,
        note,
    }
}

const fn in_subject(text: &'static str, note: &'static str) -> Statement {
    Statement {
        text,
        place: Place::Subject,
        note,
    }
}

const fn body(text: &'static str, note: &'static str) -> Statement {
    Statement {
        text,
        place: Place::Body,
        note,
    }
}

/// The documented statements.
pub const STATEMENTS: &[Statement] = &[
    // Postfix (mtas.md section 1, Recognise: bounce_templates.c).
    subject(
        "Undelivered Mail Returned to Sender",
        "Postfix failure subject; mtas.md 1",
    ),
    subject(
        "Delayed Mail (still being retried)",
        "Postfix delay subject; mtas.md 1",
    ),
    subject(
        "Postmaster Copy: Undelivered Mail",
        "Postfix postmaster copy; mtas.md 1",
    ),
    subject(
        "Postmaster Warning: Delayed Mail",
        "Postfix postmaster copy; mtas.md 1",
    ),
    body(
        "This is the mail system at host",
        "Postfix opening; mtas.md 1, languages.md 14",
    ),
    body(
        "I'm sorry to have to inform you that your message could not",
        "Postfix opening; mtas.md 1",
    ),
    // Exim (mtas.md section 2, Recognise: deliver.c).
    subject("Mail delivery failed", "Exim failure subject; mtas.md 2"),
    body(
        "This message was created automatically by mail delivery software",
        "Exim opening; mtas.md 2, languages.md 14",
    ),
    body(
        "could not be delivered to one or more of its",
        "Exim failure sentence; mtas.md 2",
    ),
    body(
        "has not yet been delivered to one or more of its",
        "Exim delay sentence; mtas.md 2",
    ),
    // Sendmail (mtas.md section 3, Recognise: savemail.c, envelope.c).
    subject("Returned mail:", "Sendmail failure subject; mtas.md 3"),
    subject(
        "Postmaster notify: see transcript",
        "Sendmail postmaster subject; mtas.md 3",
    ),
    subject(
        "Warning: could not send message for past",
        "Sendmail delay subject; mtas.md 3",
    ),
    subject(
        "Warning: Delivery time",
        "Sendmail delay subject; mtas.md 3",
    ),
    body(
        "----- The following addresses had permanent fatal errors -----",
        "Sendmail marker; mtas.md 3",
    ),
    body(
        "----- The following addresses had transient non-fatal errors -----",
        "Sendmail marker; mtas.md 3",
    ),
    body(
        "----- Transcript of session follows -----",
        "Sendmail marker; mtas.md 3",
    ),
    body(
        "Message could not be delivered for",
        "Sendmail time-out; mtas.md 3",
    ),
    // qmail and its copies (mtas.md sections 4, 8, 13: qmail-send.c, Haraka, James).
    subject(
        "failure notice",
        "qmail and Haraka failure subject; mtas.md 4, 8",
    ),
    body(
        "This is the qmail-send program at",
        "qmail opening; mtas.md 4",
    ),
    body(
        "I'm afraid I wasn't able to deliver your message",
        "qmail, Haraka and James sentence; mtas.md 4, 8, 13",
    ),
    body(
        "This is a permanent error; I've given up",
        "qmail, Haraka and James sentence; mtas.md 4, 8, 13",
    ),
    body(
        "I tried to deliver a bounce message to this address, but the bounce bounced",
        "qmail double bounce; mtas.md 4",
    ),
    body(
        "This is the Haraka Mailer program at",
        "Haraka opening; mtas.md 8",
    ),
    body(
        "This is the James mail server at",
        "Apache James opening; mtas.md 13",
    ),
    // Microsoft Exchange, IIS SMTP, hMailServer (mtas.md sections 5 and 12).
    subject("Undeliverable:", "Exchange failure subject; mtas.md 5"),
    subject(
        "Message undeliverable:",
        "hMailServer failure subject; mtas.md 12",
    ),
    body(
        "Delivery has failed to these recipients or",
        "Exchange 2007+ user part; mtas.md 5",
    ),
    body(
        "Your message did not reach some or all of the intended recipients",
        "Exchange 5.5/2003 and hMailServer; mtas.md 5, 12",
    ),
    body(
        "The following recipient(s) could not be reached",
        "Exchange 5.5/2003 and hMailServer; mtas.md 5, 12",
    ),
    body(
        "Diagnostic information for administrators",
        "Exchange administrators' part; mtas.md 5",
    ),
    body(
        "This is an automatically generated Delivery Status Notification",
        "IIS SMTP service; mtas.md 5",
    ),
    body(
        "Delivery to the following recipients failed",
        "IIS SMTP service; mtas.md 5",
    ),
    // OpenSMTPD (mtas.md section 6: bounce.c).
    subject(
        "Delivery status notification: failed",
        "OpenSMTPD failure subject; mtas.md 6",
    ),
    subject(
        "Delivery status notification: delayed",
        "OpenSMTPD delay subject; mtas.md 6",
    ),
    body(
        "This is the MAILER-DAEMON, please DO NOT REPLY to this",
        "OpenSMTPD opening; mtas.md 6",
    ),
    body(
        "An error has occurred while attempting to deliver a message for",
        "OpenSMTPD sentence; mtas.md 6",
    ),
    // Courier (mtas.md section 7: dsnfailed.txt, dsnsubjectnotice.txt).
    subject(
        "NOTICE: mail delivery status.",
        "Courier subject; mtas.md 7",
    ),
    subject("WARNING: delayed mail.", "Courier delay subject; mtas.md 7"),
    body(
        "Your message to the following recipients cannot be delivered",
        "Courier failure block; mtas.md 7",
    ),
    body(
        "running the Courier mail server",
        "Courier opening; mtas.md 7",
    ),
    // Subjects several systems use (languages.md section 13, SpamAssassin's bounce rules).
    subject(
        "Delivery Status Notification (Failure)",
        "Gmail and IIS failure subject; languages.md 13",
    ),
    subject(
        "Mail Delivery Failure",
        "common failure subject; languages.md 13",
    ),
    subject(
        "Delivery Failure Notification",
        "common failure subject; languages.md 13",
    ),
    subject("DELIVERY FAILURE", "Domino and others; languages.md 13"),
    // German (languages.md sections 12 to 14).
    subject(
        "Unzustellbar:",
        "Exchange/Outlook German subject; languages.md 13",
    ),
    body(
        "Fehler bei der Nachrichtenzustellung an folgende Empfänger oder Gruppen",
        "Exchange 2013 German; languages.md 14",
    ),
    body(
        "Ihre Nachricht hat einige oder alle Empfänger nicht erreicht",
        "Outlook German NDR; languages.md 14",
    ),
    body(
        "Empfänger kann/können nicht erreicht werden",
        "Outlook German NDR; languages.md 14",
    ),
    body(
        "Ihre Nachricht konnte nicht zugestellt werden",
        "Office 365 German; languages.md 12",
    ),
    body(
        "hat Ihre Nachricht an die folgenden E-Mail-Adressen zurückgewiesen",
        "Office 365 German; languages.md 12",
    ),
    body(
        "Diagnoseinformationen für Administratoren",
        "Exchange German heading; languages.md 14",
    ),
    body(
        "Bedauerlicherweise konnte Ihre Mail nicht an alle Empfänger",
        "masqmail German; languages.md 12",
    ),
    // French.
    subject(
        "Non remis",
        "Exchange/Outlook French subject; languages.md 13",
    ),
    subject(
        "Remise retardée",
        "Exchange/Outlook French delay subject; languages.md 13",
    ),
    subject(
        "Notification d'état de la distribution",
        "Exchange French DSN subject; languages.md 13",
    ),
    subject(
        "Attention: impossible d'envoyer un message",
        "masqmail French delay subject; languages.md 13",
    ),
    in_subject(
        "Impossible d'envoyer l'email",
        "o2switch French subject; languages.md 13",
    ),
    body(
        "Échec de la remise pour ces destinataires ou groupes",
        "Exchange Online French; languages.md 14",
    ),
    body(
        "Échec de la remise aux destinataires suivants",
        "Exchange French; languages.md 12",
    ),
    body(
        "Cette notification d'état de remise est générée automatiquement",
        "Exchange French; languages.md 14",
    ),
    body(
        "Ceci est un message d'echec automatiquement envoye",
        "o2switch French; languages.md 14",
    ),
    body(
        "Un problème est survenu lors de la distribution de votre message",
        "Gmail French; languages.md 12",
    ),
    body(
        "votre courrier n'a pas pu être transmis à tous ses destinataires",
        "masqmail French; languages.md 12",
    ),
    body(
        "Informations de diagnostic pour les administrateurs",
        "Exchange French heading; languages.md 14",
    ),
    // Spanish.
    subject("Sin entregar:", "Outlook Spanish subject; languages.md 13"),
    body(
        "Algunos de los destinatarios no recibieron su mensaje",
        "Outlook Spanish NDR; languages.md 12, 14",
    ),
    body(
        "No se puede localizar a los destinatarios siguientes",
        "Outlook Spanish NDR; languages.md 12",
    ),
    body(
        "rechazó tus mensajes a las siguientes direcciones",
        "Office 365 Spanish; languages.md 12",
    ),
    body(
        "Información de diagnóstico para",
        "Exchange Spanish heading; languages.md 14",
    ),
    // Italian.
    subject(
        "invio messaggio FALLITO",
        "masqmail Italian subject; languages.md 13",
    ),
    subject(
        "Non recapitabile",
        "Exchange/Outlook Italian subject; languages.md 13",
    ),
    body(
        "non e' stato possibile spedire il tuo msg a tutti i destinatari",
        "masqmail Italian; languages.md 12",
    ),
    body(
        "Informazioni di diagnostica per gli amministratori",
        "Exchange Italian heading; languages.md 14",
    ),
    // Portuguese (Brazil).
    body(
        "Falha na entrega aos seguintes destinatários ou grupos",
        "Exchange Brazilian Portuguese; languages.md 12, 14",
    ),
    body(
        "Ocorreu um problema ao se entregar essa mensagem",
        "Exchange Brazilian Portuguese; languages.md 12",
    ),
    body(
        "Informações de diagnóstico para administradores",
        "Exchange Brazilian Portuguese heading; languages.md 14",
    ),
    // Dutch.
    subject(
        "Onbestelbaar:",
        "Exchange/Outlook Dutch subject; languages.md 13",
    ),
    // Polish.
    subject("Niedostarczalne", "Polish subject; languages.md 13"),
    subject("Nie można dostarczyć", "Polish subject; languages.md 13"),
    subject(
        "Nie udało się dostarczyć",
        "Polish subject; languages.md 13",
    ),
    subject("Zwrot do nadawcy", "Polish subject; languages.md 13"),
    body(
        "Informacje diagnostyczne dla administratorów",
        "Exchange Polish heading; languages.md 14",
    ),
    // Russian.
    subject(
        "Ваше сообщение не доставлено",
        "Russian subject; languages.md 13",
    ),
    body(
        "Ваше письмо не может быть доставлено одному или нескольким получателям",
        "Russian webmail template; languages.md 12",
    ),
    // Japanese.
    subject(
        "送信エラーレポート",
        "Lotus Notes Japanese subject; languages.md 13",
    ),
    in_subject("メール送信失敗", "gromox Japanese subject; languages.md 13"),
    body(
        "送信エラーレポート",
        "Lotus Notes Japanese report; languages.md 12",
    ),
    body(
        "管理者向けの診断情報",
        "Exchange Japanese heading; languages.md 14",
    ),
    // Chinese.
    subject(
        "投递失败",
        "gromox simplified Chinese subject; languages.md 13",
    ),
    subject(
        "投遞失敗",
        "gromox traditional Chinese subject; languages.md 13",
    ),
    body(
        "的邮件无法被正确投递",
        "gromox simplified Chinese opening; languages.md 12, 14",
    ),
    body(
        "的郵件無法被正確投遞",
        "gromox traditional Chinese opening; languages.md 14",
    ),
];

/// One automaton per place, each with the statements' indices.
struct Matchers {
    subject_start: (AhoCorasick, Vec<usize>),
    subject: (AhoCorasick, Vec<usize>),
    body: (AhoCorasick, Vec<usize>),
}

static MATCHERS: LazyLock<Matchers> = LazyLock::new(|| {
    let build = |place: Place| {
        let chosen: Vec<usize> = STATEMENTS
            .iter()
            .enumerate()
            .filter(|(_, s)| s.place == place)
            .map(|(i, _)| i)
            .collect();
        let patterns: Vec<&str> = chosen
            .iter()
            .filter_map(|&i| STATEMENTS.get(i).map(|s| s.text))
            .collect();
        let automaton = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostFirst)
            .build(patterns)
            .expect("fixed patterns");
        (automaton, chosen)
    };
    Matchers {
        subject_start: build(Place::SubjectStart),
        subject: build(Place::Subject),
        body: build(Place::Body),
    }
});

/// The subject without the `Re:`, `Fwd:`, `Fw:`, `AW:`, `WG:` and `TR:` a forward or reply adds.
fn bare_subject(subject: &str) -> &str {
    let mut s = subject.trim_start();
    loop {
        let stripped = ["re:", "fwd:", "fw:", "aw:", "wg:", "tr:"]
            .iter()
            .find_map(|p| {
                s.get(..p.len())
                    .filter(|h| h.eq_ignore_ascii_case(p))
                    .map(|_| s.get(p.len()..).unwrap_or("").trim_start())
            });
        match stripped {
            Some(rest) => s = rest,
            None => return s,
        }
    }
}

/// The documented statement a subject makes, if any.
pub fn in_subject_line(subject: &str) -> Option<&'static Statement> {
    let m = &*MATCHERS;
    let s = bare_subject(subject);
    let at_start = m
        .subject_start
        .0
        .find(s)
        .filter(|found| found.start() == 0)
        .and_then(|found| m.subject_start.1.get(found.pattern().as_usize()));
    let anywhere = || {
        m.subject
            .0
            .find(s)
            .and_then(|found| m.subject.1.get(found.pattern().as_usize()))
    };
    at_start.or_else(anywhere).and_then(|&i| STATEMENTS.get(i))
}

/// The documented opening sentence or marker the start of an explanation holds, if any.
pub fn in_explanation(explanation: &str) -> Option<&'static Statement> {
    let m = &*MATCHERS;
    let head = super::prefix(explanation, BODY_SCAN);
    m.body
        .0
        .find(head)
        .and_then(|found| m.body.1.get(found.pattern().as_usize()))
        .and_then(|&i| STATEMENTS.get(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_subjects_are_found_at_their_start() {
        for s in [
            "Undelivered Mail Returned to Sender",
            "Mail delivery failed: returning message to sender",
            "Returned mail: User unknown",
            "Undeliverable: Spring programme",
            "Fwd: Unzustellbar: Hallo",
            "Non remis : Réunion",
            "Onbestelbaar: Vergadering",
            "Niedostarczalne: Spotkanie",
            "Ваше сообщение не доставлено",
            "投递失败，收件人不存在",
            "送信エラーレポート",
            "failure notice",
            "[Important] Impossible d'envoyer l'email",
            "受信者が存在していないため、メール送信失敗",
        ] {
            assert!(in_subject_line(s).is_some(), "{s:?}");
        }
        for s in [
            "Your message to club was rejected",
            "Re: your failure notice about the meeting was wrong",
            "[Ticket #4521] Your request could not be delivered to an agent",
            "Weekly digest: mail delivery failed stories",
            "",
        ] {
            assert!(in_subject_line(s).is_none(), "{s:?}");
        }
    }

    #[test]
    fn documented_openings_are_found_in_the_explanation() {
        let found = in_explanation(
            "Hi. This is the qmail-send program at mx.example.net.\nI'm afraid I wasn't able to deliver your message",
        );
        assert_eq!(found.map(|s| s.note), Some("qmail opening; mtas.md 4"));
        assert!(
            in_explanation("很抱歉通知您，您发送到“li@example.cn”的邮件无法被正确投递，").is_some()
        );
        assert!(
            in_explanation("THIS MESSAGE WAS CREATED AUTOMATICALLY BY MAIL DELIVERY SOFTWARE.")
                .is_some()
        );
        assert!(in_explanation("Your message was rejected by the list moderator.").is_none());
        // Only the head of a long text is searched.
        let late = format!(
            "{}This is the mail system at host x.",
            "x\n".repeat(BODY_SCAN)
        );
        assert!(in_explanation(&late).is_none());
    }

    #[test]
    fn every_statement_has_words_and_a_source() {
        for s in STATEMENTS {
            assert!(s.text.len() >= 5, "{:?}", s.text);
            assert!(s.note.contains(".md"), "{:?}", s.note);
        }
    }
}
