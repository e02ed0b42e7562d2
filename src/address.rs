//! Mailbox addresses, parsed once and printed one way: the readers, the store and the CLI all
//! normalise through [`Address`].
//!
//! The grammar is RFC 5322's `mailbox` (an `addr-spec`, or a display name and an `angle-addr`, with
//! comments and white space around the tokens), over RFC 5321's limits, with RFC 6531's UTF-8 in
//! atoms, quoted strings and domains. A report's field may carry an address type first
//! (`rfc822; ...`, RFC 3464; `utf-8; ...` with `\x{HEX}` escapes, RFC 6533). Two lenient readings
//! of what real mail systems write: an unquoted local part with consecutive, leading or trailing
//! dots (the obsolete syntax some carriers still hand out, `a..b@example.jp`), and a trailing dot on
//! the domain.
//!
//! The printed form keeps the local part as sent (case and characters), lower-cases the domain, and
//! quotes the local part only where RFC 5322 needs it (`"john..doe"@example.org`,
//! `"john smith"@example.com`, `jane.doe@example.com`). Parsing the printed form gives the same
//! address back, so printing is idempotent.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// The longest local part RFC 5321 allows (octets).
pub const MAX_LOCAL: usize = 64;

/// The longest domain RFC 5321 allows (octets).
pub const MAX_DOMAIN: usize = 255;

/// The deepest nesting of comments the parser follows.
const MAX_COMMENT_DEPTH: usize = 16;

/// A mailbox address: the local part as sent (quotes and escapes resolved) and the domain,
/// lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    local: String,
    domain: String,
}

/// Why a text is not a mailbox address.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AddressError {
    /// Nothing but white space (or only an address type).
    #[error("it is empty")]
    Empty,
    /// No `@` separates a local part from a domain.
    #[error("it has no `@` between a local part and a domain")]
    NoAt,
    /// Nothing before the `@`.
    #[error("the local part (before the `@`) is empty")]
    EmptyLocal,
    /// Nothing after the `@`.
    #[error("the domain (after the `@`) is empty")]
    EmptyDomain,
    /// A character that may not stand unquoted in a local part.
    #[error("`{0}` may not appear unquoted in the local part (quote it: \"...\"@domain)")]
    BadLocal(char),
    /// Two words in the local part with no dot between them.
    #[error("the local part has a space in it (quote it: \"...\"@domain)")]
    SpaceInLocal,
    /// A character that may not appear in a domain.
    #[error("`{0}` may not appear in a domain")]
    BadDomain(char),
    /// An empty label in the domain (`example..com`, `.example.com`).
    #[error("the domain has an empty label")]
    EmptyLabel,
    /// A control character anywhere.
    #[error("it holds a control character")]
    Control,
    /// A quoted string, comment or `<` left open.
    #[error("a {0} is not closed")]
    Unclosed(&'static str),
    /// Text after the address (`a@b@c`, a second address, a sentence).
    #[error("`{0}` follows the address")]
    Trailing(String),
    /// Longer than RFC 5321 allows.
    #[error("the {part} is {len} bytes long; at most {limit} are allowed")]
    TooLong {
        /// `local part` or `domain`.
        part: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        limit: usize,
    },
}

impl Address {
    /// Parses a field value: an optional address type (`rfc822;`), then an `addr-spec`, or a
    /// display name and an `<addr-spec>`, with comments and white space around.
    pub fn parse(input: &str) -> Result<Address, AddressError> {
        let (kind, rest) = split_type(input.trim());
        if kind.is_some_and(|k| k.eq_ignore_ascii_case("utf-8")) {
            return parse_mailbox(&decode_utf8_type(rest));
        }
        parse_mailbox(rest)
    }

    /// Parses an address written alone: an `addr-spec`, or one in `<...>`, with nothing else (no
    /// type, no display name).
    pub fn parse_bare(input: &str) -> Result<Address, AddressError> {
        let mut c = Cursor::new(input);
        c.skip_cfws()?;
        let angle = c.eat('<');
        if angle {
            c.skip_cfws()?;
        }
        let address = c.addr_spec()?;
        c.skip_cfws()?;
        if angle && !c.eat('>') {
            return Err(c.trailing_or(AddressError::Unclosed("`<`")));
        }
        c.skip_cfws()?;
        c.finish(address)
    }

    /// An address from its parts as a parsed header gives them: the local part's content
    /// (unquoted) and the domain.
    pub fn from_parts(local: &str, domain: &str) -> Result<Address, AddressError> {
        check_local(local)?;
        let mut c = Cursor::new(domain.trim());
        let domain = c.domain()?;
        c.finish(())?;
        Ok(Address {
            local: local.to_string(),
            domain,
        })
    }

    /// The local part, as sent (unquoted).
    pub fn local(&self) -> &str {
        &self.local
    }

    /// The domain, lower-cased (an address literal keeps its brackets).
    pub fn domain(&self) -> &str {
        &self.domain
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_dot_atom(&self.local) {
            f.write_str(&self.local)?;
        } else {
            f.write_str("\"")?;
            for c in self.local.chars() {
                if c == '"' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("\"")?;
        }
        write!(f, "@{}", self.domain)
    }
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Address::parse(s)
    }
}

/// The printed form of an address field, or `None` when it holds no mailbox address.
pub fn normalize(input: &str) -> Option<String> {
    Address::parse(input).ok().map(|a| a.to_string())
}

/// The most mailboxes [`address_list`] returns from one header.
pub const MAX_LIST: usize = 1000;

/// The mailboxes of an address-list header value (RFC 5322 `address-list`: mailboxes separated by
/// commas, groups `name: a, b;` opened up), each parsed by [`Address::parse`], the first
/// [`MAX_LIST`] of them; what does not parse is left out.
pub fn address_list(value: &str) -> Vec<Address> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    let mut comment = 0usize;
    let mut angle = false;
    let mut item = |piece: &str| {
        if out.len() < MAX_LIST
            && let Ok(a) = Address::parse(piece)
        {
            out.push(a);
        }
    };
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted || comment > 0 => escaped = true,
            '"' if comment == 0 => quoted = !quoted,
            '(' if !quoted => comment += 1,
            ')' if !quoted => comment = comment.saturating_sub(1),
            '<' if !quoted && comment == 0 => angle = true,
            '>' if !quoted && comment == 0 => angle = false,
            ',' | ';' if !quoted && comment == 0 && !angle => {
                item(value.get(start..i).unwrap_or(""));
                start = i + 1;
            }
            // A group's name ends at its colon; the group's members follow.
            ':' if !quoted && comment == 0 && !angle => start = i + 1,
            _ => {}
        }
    }
    item(value.get(start..).unwrap_or(""));
    out
}

/// Whether `c` may stand unquoted in an atom (RFC 5322 `atext`, RFC 6531 UTF-8).
pub fn is_atext(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
    } else {
        !c.is_control() && !c.is_whitespace()
    }
}

/// Whether `c` may appear in a domain name's label (letters, digits, `-`, `_`, UTF-8).
fn is_domain_char(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric() || c == '-' || c == '_'
    } else {
        !c.is_control() && !c.is_whitespace()
    }
}

/// Whether a local part can be printed without quotes: dot-separated non-empty atoms.
fn is_dot_atom(local: &str) -> bool {
    !local.is_empty()
        && local
            .split('.')
            .all(|w| !w.is_empty() && w.chars().all(is_atext))
}

/// A local part's content: not empty, no control character, within RFC 5321's length.
fn check_local(local: &str) -> Result<(), AddressError> {
    if local.is_empty() {
        return Err(AddressError::EmptyLocal);
    }
    if local.chars().any(char::is_control) {
        return Err(AddressError::Control);
    }
    if local.len() > MAX_LOCAL {
        return Err(AddressError::TooLong {
            part: "local part",
            len: local.len(),
            limit: MAX_LOCAL,
        });
    }
    Ok(())
}

/// Splits an address type (`rfc822;`, `utf-8;`, RFC 3464 `address-type`) off a field value.
fn split_type(value: &str) -> (Option<&str>, &str) {
    match value.split_once(';') {
        Some((kind, rest))
            if !kind.trim().is_empty()
                && kind
                    .trim()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-') =>
        {
            (Some(kind.trim()), rest.trim())
        }
        _ => (None, value),
    }
}

/// A `utf-8` typed address with its `\x{HEX}` escapes (RFC 6533) decoded; an escape that names no
/// character is kept as written.
fn decode_utf8_type(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find("\\x{") {
        out.push_str(rest.get(..at).unwrap_or(""));
        let after = rest.get(at + 3..).unwrap_or("");
        let decoded = after.split_once('}').and_then(|(hex, tail)| {
            let c = (hex.len() <= 6)
                .then(|| u32::from_str_radix(hex, 16).ok())
                .flatten()
                .and_then(char::from_u32)?;
            Some((c, tail))
        });
        match decoded {
            Some((c, tail)) => {
                out.push(c);
                rest = tail;
            }
            None => {
                out.push_str("\\x{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A mailbox (RFC 5322): an `addr-spec`, or a display name and an `angle-addr`.
fn parse_mailbox(input: &str) -> Result<Address, AddressError> {
    let mut c = Cursor::new(input);
    c.skip_cfws()?;
    if c.at_end() {
        return Err(AddressError::Empty);
    }
    let start = c.pos;
    let bare = c.addr_spec().and_then(|a| {
        c.skip_cfws()?;
        c.finish(a)
    });
    let bare_error = match bare {
        Ok(a) => return Ok(a),
        Err(e) => e,
    };
    // A display name, then the address in angle brackets.
    c.pos = start;
    loop {
        c.skip_cfws()?;
        match c.peek() {
            Some('<') => break,
            Some('"') => {
                c.bump();
                c.quoted_content()?;
            }
            Some(ch) if ch.is_control() => return Err(AddressError::Control),
            Some(_) => {
                c.bump();
            }
            None => return Err(bare_error),
        }
    }
    c.bump();
    c.skip_cfws()?;
    if c.peek() == Some('@') {
        // An obsolete source route (`<@relay.example:user@example.org>`) is not part of the address.
        while let Some(ch) = c.bump() {
            if ch == ':' {
                break;
            }
        }
    }
    let address = c.addr_spec()?;
    c.skip_cfws()?;
    if !c.eat('>') {
        return Err(c.trailing_or(AddressError::Unclosed("`<`")));
    }
    c.skip_cfws()?;
    c.finish(address)
}

/// A position in the text being parsed.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Self {
        Cursor { s, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    /// Moves past the longest run of characters that satisfy `keep`, and returns it.
    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> &'a str {
        let rest = self.rest();
        let len = rest.find(|c: char| !keep(c)).unwrap_or(rest.len());
        self.pos += len;
        rest.get(..len).unwrap_or("")
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    /// `value` when nothing is left, else the text that follows.
    fn finish<T>(&self, value: T) -> Result<T, AddressError> {
        if self.at_end() {
            Ok(value)
        } else {
            Err(self.trailing_or(AddressError::Empty))
        }
    }

    /// The error for what is left: [`AddressError::Trailing`] with it, else `otherwise`.
    fn trailing_or(&self, otherwise: AddressError) -> AddressError {
        let rest = self.rest().trim();
        if rest.is_empty() {
            return otherwise;
        }
        let shown: String = rest.chars().take(40).collect();
        AddressError::Trailing(shown)
    }

    /// Skips white space and comments (`(...)`, nested, with quoted pairs).
    fn skip_cfws(&mut self) -> Result<(), AddressError> {
        loop {
            match self.peek() {
                Some(c) if c == ' ' || c == '\t' || c == '\r' || c == '\n' => {
                    self.bump();
                }
                Some('(') => self.comment()?,
                _ => return Ok(()),
            }
        }
    }

    fn comment(&mut self) -> Result<(), AddressError> {
        let mut depth = 0usize;
        while let Some(c) = self.bump() {
            match c {
                '(' => {
                    depth += 1;
                    if depth > MAX_COMMENT_DEPTH {
                        return Err(AddressError::Unclosed("comment"));
                    }
                }
                ')' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return Ok(());
                    }
                }
                '\\' => {
                    self.bump();
                }
                _ => {}
            }
        }
        Err(AddressError::Unclosed("comment"))
    }

    /// The content of a quoted string whose opening `"` has been read: quoted pairs resolved.
    fn quoted_content(&mut self) -> Result<String, AddressError> {
        let mut out = String::new();
        while let Some(c) = self.bump() {
            match c {
                '"' => return Ok(out),
                '\\' => match self.bump() {
                    Some(e) if e.is_control() => return Err(AddressError::Control),
                    Some(e) => out.push(e),
                    None => break,
                },
                c if c.is_control() => return Err(AddressError::Control),
                c => out.push(c),
            }
        }
        Err(AddressError::Unclosed("quoted string"))
    }

    /// `local-part "@" domain`.
    fn addr_spec(&mut self) -> Result<Address, AddressError> {
        let local = self.local_part()?;
        self.skip_cfws()?;
        match self.peek() {
            Some('@') => {
                self.bump();
            }
            None => return Err(AddressError::NoAt),
            Some(c) if c.is_control() => return Err(AddressError::Control),
            Some(c) if local.is_empty() => return Err(AddressError::BadLocal(c)),
            Some('<' | '>' | ',' | ';' | ':') => return Err(AddressError::NoAt),
            Some(c) => return Err(AddressError::BadLocal(c)),
        }
        check_local(&local)?;
        self.skip_cfws()?;
        let domain = self.domain()?;
        Ok(Address { local, domain })
    }

    /// A local part: atoms, quoted strings and dots (consecutive, leading and trailing dots
    /// accepted), comments and white space between them; its content.
    fn local_part(&mut self) -> Result<String, AddressError> {
        let mut out = String::new();
        // Whether the last token was a word (an atom or a quoted string), which only a dot may follow.
        let mut after_word = false;
        loop {
            let before = self.pos;
            self.skip_cfws()?;
            let spaced = self.pos > before;
            match self.peek() {
                Some('.') => {
                    self.bump();
                    out.push('.');
                    after_word = false;
                }
                Some('"') => {
                    if after_word {
                        return Err(AddressError::SpaceInLocal);
                    }
                    self.bump();
                    out.push_str(&self.quoted_content()?);
                    after_word = true;
                }
                Some(c) if is_atext(c) => {
                    if after_word && spaced {
                        return Err(AddressError::SpaceInLocal);
                    }
                    let atom = self.take_while(is_atext);
                    out.push_str(atom);
                    after_word = true;
                }
                _ => {
                    if spaced {
                        self.pos = before;
                    }
                    return Ok(out);
                }
            }
        }
    }

    /// A domain: dot-separated labels (a trailing dot dropped), or an address literal in `[...]`;
    /// lower-cased.
    fn domain(&mut self) -> Result<String, AddressError> {
        if self.eat('[') {
            let mut out = String::from("[");
            loop {
                match self.bump() {
                    Some(']') => break,
                    Some(c) if c.is_control() => return Err(AddressError::Control),
                    Some(c @ ('[' | '\\' | ' ' | '\t')) => return Err(AddressError::BadDomain(c)),
                    Some(c) => out.push(c),
                    None => return Err(AddressError::Unclosed("`[`")),
                }
            }
            if out.len() == 1 {
                return Err(AddressError::EmptyDomain);
            }
            out.push(']');
            return Ok(out.to_lowercase());
        }
        let raw = self.take_while(|c| c == '.' || is_domain_char(c));
        if raw.is_empty() {
            return match self.peek() {
                None => Err(AddressError::EmptyDomain),
                Some(c) if c.is_control() => Err(AddressError::Control),
                Some(c) if c.is_whitespace() || c == '>' || c == ',' || c == ';' => {
                    Err(AddressError::EmptyDomain)
                }
                Some(c) => Err(AddressError::BadDomain(c)),
            };
        }
        let name = raw.strip_suffix('.').unwrap_or(raw);
        if name.is_empty() || name.split('.').any(str::is_empty) {
            return Err(AddressError::EmptyLabel);
        }
        let lower = name.to_lowercase();
        if lower.len() > MAX_DOMAIN {
            return Err(AddressError::TooLong {
                part: "domain",
                len: lower.len(),
                limit: MAX_DOMAIN,
            });
        }
        Ok(lower)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> Option<String> {
        normalize(s)
    }

    #[test]
    fn plain_addresses_keep_the_local_part_and_lower_the_domain() {
        assert_eq!(
            norm("Jane.Doe@Example.COM").as_deref(),
            Some("Jane.Doe@example.com")
        );
        assert_eq!(
            norm(" <Jane.Doe@Example.COM> ").as_deref(),
            Some("Jane.Doe@example.com")
        );
        assert_eq!(
            norm("rfc822; bob@Mail.Example.org.").as_deref(),
            Some("bob@mail.example.org")
        );
        assert_eq!(
            norm("RFC822;<ann@example.net>").as_deref(),
            Some("ann@example.net")
        );
    }

    #[test]
    fn quoted_local_parts_are_quoted_only_where_needed() {
        assert_eq!(
            norm("rfc822; \"john..doe\"@example.org").as_deref(),
            Some("\"john..doe\"@example.org")
        );
        assert_eq!(
            norm("\"john smith\"@Example.com").as_deref(),
            Some("\"john smith\"@example.com")
        );
        assert_eq!(
            norm("\"jane.doe\"@example.com").as_deref(),
            Some("jane.doe@example.com")
        );
        assert_eq!(
            norm(r#""say \"hi\" \\ bye"@example.com"#).as_deref(),
            Some(r#""say \"hi\" \\ bye"@example.com"#)
        );
        assert_eq!(
            norm("\"john\".doe@example.com").as_deref(),
            Some("john.doe@example.com")
        );
        // The obsolete unquoted forms of real carriers read as the same mailbox.
        assert_eq!(
            norm("neko....nyaan....@example.jp").as_deref(),
            Some("\"neko....nyaan....\"@example.jp")
        );
    }

    #[test]
    fn display_names_comments_and_routes_are_not_the_address() {
        assert_eq!(
            norm("John Smith <John@Example.com>").as_deref(),
            Some("John@example.com")
        );
        assert_eq!(
            norm("\"Smith, John\" <j@example.com> (work)").as_deref(),
            Some("j@example.com")
        );
        assert_eq!(
            norm("(boss) pat(x)@example.com").as_deref(),
            Some("pat@example.com")
        );
        assert_eq!(
            norm("<@relay.example.net:lou@example.org>").as_deref(),
            Some("lou@example.org")
        );
    }

    #[test]
    fn utf8_addresses() {
        assert_eq!(
            norm("jöran@Exämple.SE").as_deref(),
            Some("jöran@exämple.se")
        );
        assert_eq!(norm("用户@例子.广告").as_deref(), Some("用户@例子.广告"));
        assert_eq!(
            norm("utf-8; j\\x{F6}ran@example.se").as_deref(),
            Some("jöran@example.se")
        );
        assert_eq!(
            norm("x@[IPv6:2001:DB8::1]").as_deref(),
            Some("x@[ipv6:2001:db8::1]")
        );
    }

    #[test]
    fn what_is_not_a_mailbox_is_refused_with_its_reason() {
        let err = |s: &str| Address::parse(s).err();
        assert_eq!(err("a@b@c"), Some(AddressError::Trailing("@c".into())));
        assert_eq!(err(""), Some(AddressError::Empty));
        assert_eq!(err("rfc822;  "), Some(AddressError::Empty));
        assert_eq!(err("no-at-sign"), Some(AddressError::NoAt));
        assert_eq!(err("@example.com"), Some(AddressError::EmptyLocal));
        assert_eq!(err("user@"), Some(AddressError::EmptyDomain));
        assert_eq!(err("a b@example.com"), Some(AddressError::SpaceInLocal));
        assert_eq!(err("x@\u{7}"), Some(AddressError::Control));
        assert_eq!(err("x@example..com"), Some(AddressError::EmptyLabel));
        assert_eq!(
            err("\"open@example.com"),
            Some(AddressError::Unclosed("quoted string"))
        );
        assert_eq!(
            err("a@example.com, b@example.com").map(|e| matches!(e, AddressError::Trailing(_))),
            Some(true)
        );
        assert!(matches!(
            err(&format!("{}@example.com", "a".repeat(65))),
            Some(AddressError::TooLong { .. })
        ));
        assert!(err(&format!("{}@example.com", "a".repeat(64))).is_none());
        for bad in [
            "<;",
            "rfc822;;",
            "/var/mail/box",
            "|/usr/bin/filter",
            "<a@b",
            "a@b>",
        ] {
            assert!(err(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn the_errors_say_what_is_wrong() {
        let e = Address::parse("a@b@c").err().map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("`@c` follows the address"));
        let e = Address::parse("a b@example.com")
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("quote it")));
    }

    #[test]
    fn bare_addresses_take_no_display_name_or_type() {
        assert!(Address::parse_bare("<a@example.com>").is_ok());
        assert!(Address::parse_bare("\"x y\"@example.com").is_ok());
        assert!(Address::parse_bare("Ann <a@example.com>").is_err());
        assert!(Address::parse_bare("rfc822; a@example.com").is_err());
        assert!(Address::parse_bare("<a@example.com").is_err());
    }

    #[test]
    fn address_lists_and_groups() {
        let got: Vec<String> = address_list(
            "\"Lee, Ann\" <ann@example.org>, bo@Example.net (x, y),\n undisclosed-recipients:;, team: cy@example.com, \"d,e\"@example.com; name@kyoto\n <fi@example.com>",
        )
        .iter()
        .map(Address::to_string)
        .collect();
        assert_eq!(
            got,
            [
                "ann@example.org",
                "bo@example.net",
                "cy@example.com",
                "\"d,e\"@example.com",
                "fi@example.com"
            ]
        );
        assert!(address_list("Undisclosed recipients:;").is_empty());
        assert!(address_list("").is_empty());
    }

    #[test]
    fn parts_from_a_parsed_header() {
        let a = Address::from_parts("john smith", "Example.COM").ok();
        assert_eq!(
            a.map(|a| a.to_string()).as_deref(),
            Some("\"john smith\"@example.com")
        );
        assert!(Address::from_parts("", "example.com").is_err());
        assert!(Address::from_parts("x", "exa mple.com").is_err());
    }

    #[test]
    fn the_printed_form_parses_back_to_itself() {
        for s in [
            "\"john..doe\"@example.org",
            "\"a\\\"b\"@example.org",
            "\"\\\\\"@example.org",
            "\" \"@example.org",
            "\"a@b\"@example.org",
            "x@[192.0.2.1]",
        ] {
            let a = Address::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(a.to_string(), s);
            assert_eq!(Address::parse(&a.to_string()), Ok(a));
        }
    }
}
