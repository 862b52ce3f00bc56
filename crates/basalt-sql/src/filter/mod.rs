//! The filter and rule compiler: parse → resolve → emit.
//!
//! `basalt_filter` parses the text; this module resolves every path against the schema
//! ([`SchemaLookup`](basalt_schema::SchemaLookup)) and emits a condition over one row
//! of the collection for SQLite or PostgreSQL, with every value as a bound parameter.
//!
//! Key types: [`CompiledExpr`] (a rule or filter, reusable across requests),
//! [`CompiledSort`], [`SelectBuilder`] (list / count / view statements), [`create_check`],
//! [`RuleCache`], [`RequestContext`] (what `@request.*` and the macros read per request).
//!
//! # Semantics (PocketBase's)
//!
//! - `=`/`!=` treat `''` and NULL alike; `~`/`!~` wrap a bound text in `%...%` unless it
//!   already holds an unescaped `%` (escaping `\`, `%`, `_` otherwise, `ESCAPE '\'`);
//!   LIKE is ASCII case-insensitive on both dialects.
//! - Multi-valued operands (a multiple relation/select/file with `:each` or a sub-path,
//!   back-relations, `@collection.*`, multiple `@request.body` values) range over their
//!   values; an empty list counts as one NULL value. A plain operator means every value
//!   satisfies (`NOT EXISTS` of a counter-example), a `?` operator that at least one does.
//!   `?` terms on the same relation path or `@collection` alias inside one `&&` chain
//!   read the same joined row.
//! - A guest's `@request.auth.*` values are NULL, and a comparison of such a value with
//!   anything but an explicit `''`/`null` literal is false (both `=` and `!=`), so a
//!   guest never satisfies `owner = @request.auth.id`, even for an empty owner.
//! - Client filters of non-superusers: no hidden fields, no `@request`/`@collection`,
//!   joined collections need a list rule (null is an error) which is applied to the
//!   joined rows, and auth-record emails match only where `emailVisibility` is on.
//!
//! # Deliberate differences from PocketBase
//!
//! - Guests fail closed: PocketBase lets a guest pass `owner = @request.auth.id` on
//!   records whose `owner` is empty (NULL folds to `''`); here it never does.
//! - A rule and a client filter are compiled separately, so `?` terms on the same
//!   relation in the rule and in the filter do not share a joined row.
//! - A plain operator between two values of the same multi-valued path
//!   (`likes.name = likes.email`) compares within each related row, not all pairs.
//! - A text literal that reads as a number is compared as a number with number fields
//!   (`views = '5'`, as PocketBase) and, for `<`/`>`, a number literal as text with text
//!   fields; `@request.*` values are converted to the other side's type when bound.
//! - Sorting by a multi-valued path is refused (PocketBase picks an arbitrary row).
//!
//! # Dialects
//!
//! - PostgreSQL placeholders always carry a cast (`$1::text`, `::float8`, `::boolean`,
//!   `::jsonb`, `::int8`), so every bind has a fixed type; JSON values are bound as text.
//! - `LIKE` is `LOWER(x COLLATE "C") LIKE LOWER(p COLLATE "C") ESCAPE '\'` on
//!   PostgreSQL (ASCII-only folding, as SQLite); text ordering uses `COLLATE "C"`; sorts
//!   add `NULLS FIRST`/`NULLS LAST` to match SQLite's NULL placement, except on a
//!   table's own non-JSON columns, which are NOT NULL (so an index serves `DESC` too).
//! - JSON values (`meta.a`, unknown `@request.body` keys) are compared on PostgreSQL
//!   with SQLite's rules for mixed types (see `emit`); arrays and objects compared as
//!   text differ in spacing (`jsonb` prints `[1, 2]`, SQLite `[1,2]`).
//! - `@rowid` is SQLite's rowid; PostgreSQL has none and sorts by `created` (when the
//!   collection has it), then `id`.
//! - `strftime` is SQLite's own; on PostgreSQL the specifiers `%d %m %Y %H %M %S %f %j
//!   %w %u %s %F %T %R %%` are emulated and modifiers or other specifiers are refused.
//! - `geoDistance` uses `RADIANS`, `SIN`, `COS`, `ASIN`, `SQRT`, `POWER`: SQLite needs its
//!   math functions (the bundled build lacks them; the SQLite store must register them).
//!
//! # Limits
//!
//! [`MAX_RELATION_HOPS`] relations per path (PocketBase's), [`MAX_JOINS`] joins per
//! expression (ours: SQLite allows 64 tables per `SELECT`; 32 leaves room for the base
//! row and list-rule subqueries and is far above real rules).

mod cache;
mod compile;
mod context;
mod emit;
mod error;
mod resolve;
mod select;
mod sort;
pub(crate) mod template;

pub use cache::{CacheStats, RuleCache};
pub use compile::{CompiledExpr, compile_expr, compile_filter, compile_rule};
pub use context::{AuthContext, CompileOptions, FilterMode, RequestContext};
pub use error::{CompileError, CompileErrorKind};
pub use select::{NEW_RECORD_CTE, SelectBuilder, create_check};
pub use sort::{CompiledSort, compile_sort};

/// Most relations one path may cross (PocketBase's limit).
pub const MAX_RELATION_HOPS: usize = 6;

/// Most joins one expression may register (list rules of joined collections included).
pub const MAX_JOINS: usize = 32;
