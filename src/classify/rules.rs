//! The ordered rule table that names a reason.

use crate::error::RulesError;

/// The compiled rule table.
#[derive(Debug, Default)]
pub struct RuleSet {}

impl RuleSet {
    /// The built-in rules.
    pub fn builtin() -> RuleSet {
        RuleSet {}
    }

    /// The built-in rules with a user rule file merged in.
    pub fn builtin_with_file(path: &std::path::Path) -> Result<RuleSet, RulesError> {
        let _ = path;
        Ok(RuleSet {})
    }
}
