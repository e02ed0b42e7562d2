//! Free-text reports, one file per MTA family.

/// Reader name.
pub const NAME: &str = "generic";
