//! Size and nesting limits applied while parsing.

/// Limits checked by [`parse_with`](crate::parse_with).
///
/// The defaults fit rules and other trusted expressions; [`Limits::client_filter`] is
/// what the API applies to a client's `?filter=`.
///
/// | Field | Default | `client_filter()` | Counted as |
/// |---|---|---|---|
/// | `max_len` | none | 3500 | bytes of input (PocketBase counts bytes too) |
/// | `max_comparisons` | 200 | 200 | comparisons (`a = b`), PocketBase's "expressions" |
/// | `max_depth` | 32 | 32 | nesting of parentheses: `((a=1))` is 2 |
/// | `max_call_depth` | 2 | 2 | calls nested inside a call's arguments: `a(b(c(1)))` is 2 |
///
/// `max_depth` and `max_call_depth` exist to keep recursion bounded; values above
/// [`Limits::HARD_MAX_DEPTH`] and [`Limits::HARD_MAX_CALL_DEPTH`] are treated as those
/// caps. The tree's height also grows with the number of comparisons (`&&` chains are
/// left-nested), and dropping, cloning or comparing a tree recurses over it, so keep
/// `max_comparisons` in the thousands at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest accepted input in bytes, if any.
    pub max_len: Option<usize>,
    /// Most comparisons in one expression.
    pub max_comparisons: usize,
    /// Deepest nesting of parentheses.
    pub max_depth: usize,
    /// Deepest nesting of function calls inside call arguments (fexpr allows 2).
    pub max_call_depth: usize,
}

impl Limits {
    /// PocketBase's limit on the length of a client filter (`MaxFilterLength`).
    pub const CLIENT_FILTER_MAX_LEN: usize = 3500;
    /// PocketBase's limit on comparisons per filter (`DefaultFilterExprLimit`).
    pub const DEFAULT_MAX_COMPARISONS: usize = 200;
    /// Our cap on parenthesis nesting; PocketBase has none, 32 is far above real use.
    pub const DEFAULT_MAX_DEPTH: usize = 32;
    /// fexpr's cap: a call may hold calls two levels deep (`a(b(c(1)))`).
    pub const DEFAULT_MAX_CALL_DEPTH: usize = 2;
    /// Parenthesis nesting is never allowed beyond this, whatever `max_depth` says.
    pub const HARD_MAX_DEPTH: usize = 256;
    /// Call nesting is never allowed beyond this, whatever `max_call_depth` says.
    pub const HARD_MAX_CALL_DEPTH: usize = 64;

    /// The limits for a client's `?filter=` parameter: 3500 bytes, 200 comparisons.
    pub fn client_filter() -> Limits {
        Limits {
            max_len: Some(Self::CLIENT_FILTER_MAX_LEN),
            ..Limits::default()
        }
    }

    /// `max_depth`, capped by [`Limits::HARD_MAX_DEPTH`].
    pub(crate) fn depth_cap(&self) -> usize {
        self.max_depth.min(Self::HARD_MAX_DEPTH)
    }

    /// `max_call_depth`, capped by [`Limits::HARD_MAX_CALL_DEPTH`].
    pub(crate) fn call_depth_cap(&self) -> usize {
        self.max_call_depth.min(Self::HARD_MAX_CALL_DEPTH)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_len: None,
            max_comparisons: Self::DEFAULT_MAX_COMPARISONS,
            max_depth: Self::DEFAULT_MAX_DEPTH,
            max_call_depth: Self::DEFAULT_MAX_CALL_DEPTH,
        }
    }
}
