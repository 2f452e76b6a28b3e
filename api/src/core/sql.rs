//! SQL plumbing every layer shares: numbered placeholders handed out in
//! order ([`Params`]) and the type of a statement being bound ([`AnyQuery`]).

/// A statement being bound, on whichever database runs.
pub type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// The numbered placeholders (`$1`, `$2`, …) of one statement, handed out
/// in order. A statement assembled from parts written in several modules
/// (say a message and the push it causes, in one PostgreSQL `WITH`) lets
/// each part take the next numbers and bind its values in that same order,
/// instead of one part knowing which numbers the other leaves free.
#[derive(Debug, Clone, Default)]
pub struct Params {
    used: usize,
}

impl Params {
    /// No placeholder taken yet: the next is `$1`.
    pub fn new() -> Self {
        Self::default()
    }

    /// After the `$1`–`$n` the caller numbered in its own SQL.
    pub fn after(n: usize) -> Self {
        Self { used: n }
    }

    /// Takes the next placeholder.
    pub fn take(&mut self) -> String {
        self.used += 1;
        format!("${}", self.used)
    }
}

#[cfg(test)]
mod tests {
    use super::Params;

    #[test]
    fn placeholders_follow_the_callers_own() {
        let mut params = Params::after(8);
        assert_eq!([params.take(), params.take()], ["$9", "$10"]);
        assert_eq!(Params::new().take(), "$1");
    }
}
