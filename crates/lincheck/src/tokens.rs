//! Fencing tokens, checked directly: linear in the grants, easy to trust.

use std::fmt;

/// A grant of a fencing token, as a history recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// When the call that got it was invoked ([`crate::mono_ns`]).
    pub invoked: u64,
    /// When it returned.
    pub returned: u64,
    /// The token.
    pub token: u64,
}

/// What [`check_tokens`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenReport {
    /// Grants checked.
    pub grants: usize,
    /// Tokens handed out more than once.
    pub duplicates: Vec<u64>,
    /// Pairs `(earlier, later)`: a grant of `earlier` returned before the one of `later` was
    /// invoked, yet `later` is not greater.
    pub reorders: Vec<(u64, u64)>,
}

impl TokenReport {
    /// Whether tokens were unique and grew in real time.
    pub fn is_ok(&self) -> bool {
        self.duplicates.is_empty() && self.reorders.is_empty()
    }
}

impl fmt::Display for TokenReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} grants: {} tokens repeated, {} out of real-time order",
            self.grants,
            self.duplicates.len(),
            self.reorders.len()
        )?;
        if let Some((a, b)) = self.reorders.first() {
            write!(f, " (first: {a} returned before {b} was asked for)")?;
        }
        if let Some(t) = self.duplicates.first() {
            write!(f, " (first repeated: {t})")?;
        }
        Ok(())
    }
}

/// Checks that no token was granted twice and that a grant that returned before another was
/// invoked holds the smaller token, in O(n log n).
pub fn check_tokens(grants: &[Grant]) -> TokenReport {
    let mut tokens: Vec<u64> = grants.iter().map(|g| g.token).collect();
    tokens.sort_unstable();
    let mut duplicates: Vec<u64> = tokens
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    duplicates.dedup();
    let mut by_return: Vec<&Grant> = grants.iter().collect();
    by_return.sort_by_key(|g| g.returned);
    let mut by_invoke: Vec<&Grant> = grants.iter().collect();
    by_invoke.sort_by_key(|g| g.invoked);
    let mut reorders = Vec::new();
    let mut before = 0;
    let mut max: Option<u64> = None;
    for g in by_invoke {
        while before < by_return.len() && by_return[before].returned < g.invoked {
            max = max.max(Some(by_return[before].token));
            before += 1;
        }
        if let Some(m) = max
            && m >= g.token
        {
            reorders.push((m, g.token));
        }
    }
    TokenReport {
        grants: grants.len(),
        duplicates,
        reorders,
    }
}
