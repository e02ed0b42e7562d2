//! Typed errors of the library; the binary explains them to the user.

use thiserror::Error;

/// Why a message could not be read at all.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The input holds no bytes (or only white space).
    #[error("the message is empty")]
    Empty,
    /// The input is larger than the configured limit; it was not parsed.
    #[error("the message is {size} bytes, over the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// The bytes do not form an Internet message (no header could be parsed).
    #[error("not an Internet message: {0}")]
    Malformed(String),
    /// MIME parts or attached messages are nested deeper than any real report nests them; the
    /// message is refused rather than walked.
    #[error("MIME parts are nested {depth} levels deep, over the limit of {limit}")]
    TooDeep { depth: usize, limit: usize },
    /// The report names more recipients than any real report does; the message is refused rather
    /// than classified recipient by recipient. Counting stops past the limit, so `count` is the
    /// number counted, at least `limit + 1`.
    #[error("the report names more than {limit} recipients")]
    TooManyRecipients { count: usize, limit: usize },
    /// The message's header blocks (its own, its MIME parts', its attached messages') hold more
    /// header fields than any real message; it is refused before it is parsed.
    #[error("the message has more than {limit} header fields")]
    TooManyHeaders { count: usize, limit: usize },
    /// The message has more MIME parts and attached messages than any real report; it is refused
    /// before it is parsed.
    #[error("the message has more than {limit} MIME parts and attached messages")]
    TooManyParts { count: usize, limit: usize },
    /// The fields the parser reads into structures or decodes (`Content-Type`,
    /// `Content-Disposition`, `From`, `Subject`, `Message-ID`, ...) are longer, all together, than
    /// any real message's; it is refused before it is parsed.
    #[error(
        "the message's structured header fields (Content-Type, From, Subject, ...) take more than {limit} bytes"
    )]
    FieldsTooLong { size: usize, limit: usize },
}

/// Why a user rule file could not be loaded.
#[derive(Debug, Error)]
pub enum RulesError {
    /// The file could not be read.
    #[error("cannot read rule file {path}: {cause}")]
    Io { path: String, cause: std::io::Error },
    /// The file is not valid TOML or does not have the expected shape.
    #[error("rule file {path} is not valid: {message}")]
    Syntax { path: String, message: String },
    /// One rule is wrong; `rule` names it (its id, or its position when it has none).
    #[error("rule `{rule}` in {path}: {problem}")]
    Rule {
        path: String,
        rule: String,
        problem: String,
    },
}
