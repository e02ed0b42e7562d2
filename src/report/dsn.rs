//! TODO

/// Reader name.
pub const NAME: &str = "dsn";
