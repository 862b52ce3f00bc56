//! Where a view query's columns come from: a small reader of the outermost `SELECT`
//! list and its `FROM`/`JOIN` tables, so a view column that is a plain column of a
//! collection keeps that field's type and options (relation, select, file, email, ...).
//!
//! Only what can be read with certainty is reported; anything else is
//! [`Origin::Unknown`] and the caller falls back to the type the database declares.

/// Where one select item comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A plain column: `table.column` or `column`, with the table resolved from the
    /// `FROM` list (the table name, not its alias).
    Column {
        /// Source table.
        table: String,
        /// Source column.
        column: String,
    },
    /// `*` (every table of the `FROM` list, in order) or `t.*` (one table).
    Star {
        /// The tables, by name.
        tables: Vec<String>,
    },
    /// `COUNT(...)` and `LENGTH(...)` (integers), `TOTAL`, `SUM` and `AVG` (numbers).
    Number {
        /// Whether the result is always an integer.
        integer: bool,
    },
    /// `CAST(... AS type)`: that type.
    Cast {
        /// The type name as written (`INTEGER`, `TEXT`, `REAL`, ...).
        type_name: String,
    },
    /// An expression or subquery column.
    Unknown,
}

/// One select item: its output name (when known) and origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewColumn {
    /// Output column name (`None` for stars and unnamed expressions).
    pub name: Option<String>,
    /// Where it comes from.
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// Unquoted word (keywords included), as written.
    Word(String),
    /// Quoted identifier.
    Quoted(String),
    /// String or number literal.
    Literal,
    Symbol(char),
}

fn tokenize(sql: &str) -> Vec<Token> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if c == '\'' {
            i += 1;
            while i < chars.len() {
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
            out.push(Token::Literal);
        } else if matches!(c, '"' | '`' | '[') {
            let close = if c == '[' { ']' } else { c };
            let mut text = String::new();
            i += 1;
            while i < chars.len() {
                if chars[i] == close {
                    if close != ']' && chars.get(i + 1) == Some(&close) {
                        text.push(close);
                        i += 2;
                        continue;
                    }
                    break;
                }
                text.push(chars[i]);
                i += 1;
            }
            i += 1;
            out.push(Token::Quoted(text));
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            out.push(Token::Literal);
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            out.push(Token::Word(chars[start..i].iter().collect()));
        } else {
            out.push(Token::Symbol(c));
            i += 1;
        }
    }
    out
}

fn is_keyword(token: &Token, keyword: &str) -> bool {
    matches!(token, Token::Word(w) if w.eq_ignore_ascii_case(keyword))
}

fn identifier(token: &Token) -> Option<&str> {
    match token {
        Token::Word(w) | Token::Quoted(w) => Some(w),
        _ => None,
    }
}

/// Splits `tokens` at depth-0 commas.
fn split_commas(tokens: &[Token]) -> Vec<&[Token]> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, token) in tokens.iter().enumerate() {
        match token {
            Token::Symbol('(') => depth += 1,
            Token::Symbol(')') => depth -= 1,
            Token::Symbol(',') if depth == 0 => {
                out.push(&tokens[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&tokens[start..]);
    out
}

/// Index of the first depth-0 token at or after `from` matching one of `keywords`.
fn find_top(tokens: &[Token], from: usize, keywords: &[&str]) -> Option<usize> {
    let mut depth = 0i32;
    for (i, token) in tokens.iter().enumerate().skip(from) {
        match token {
            Token::Symbol('(') => depth += 1,
            Token::Symbol(')') => depth -= 1,
            _ if depth == 0 && keywords.iter().any(|k| is_keyword(token, k)) => return Some(i),
            _ => {}
        }
    }
    None
}

const CLAUSE_ENDS: &[&str] = &[
    "where",
    "group",
    "having",
    "order",
    "limit",
    "union",
    "intersect",
    "except",
    "window",
    "offset",
    "fetch",
];

const JOIN_WORDS: &[&str] = &[
    "join", "inner", "left", "right", "full", "outer", "cross", "natural", "on", "using",
];

/// The tables of a `FROM` clause: (alias or name, table name); subqueries have no name.
fn from_tables(tokens: &[Token]) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut expect_table = true;
    while i < tokens.len() {
        let token = &tokens[i];
        if matches!(token, Token::Symbol(',')) || is_keyword(token, "join") {
            expect_table = true;
            i += 1;
            continue;
        }
        if is_keyword(token, "on") || is_keyword(token, "using") {
            expect_table = false;
            i += 1;
            continue;
        }
        if !expect_table {
            if let Token::Symbol('(') = token {
                // Skip a parenthesised ON/USING expression.
                i = skip_parens(tokens, i);
                continue;
            }
            i += 1;
            continue;
        }
        if JOIN_WORDS.iter().any(|k| is_keyword(token, k)) {
            i += 1;
            continue;
        }
        let (table, next) = if let Token::Symbol('(') = token {
            (None, skip_parens(tokens, i))
        } else if let Some(name) = identifier(token) {
            // `schema.table` keeps the last part.
            let mut name = name.to_string();
            let mut next = i + 1;
            while matches!(tokens.get(next), Some(Token::Symbol('.')))
                && let Some(part) = tokens.get(next + 1).and_then(identifier)
            {
                name = part.to_string();
                next += 2;
            }
            (Some(name), next)
        } else {
            i += 1;
            continue;
        };
        let mut next = next;
        if tokens.get(next).is_some_and(|t| is_keyword(t, "as")) {
            next += 1;
        }
        let alias = match tokens.get(next) {
            Some(t @ (Token::Word(_) | Token::Quoted(_)))
                if !JOIN_WORDS.iter().any(|k| is_keyword(t, k)) =>
            {
                next += 1;
                identifier(t).map(str::to_string)
            }
            _ => None,
        };
        if let Some(key) = alias.clone().or_else(|| table.clone()) {
            out.push((key, table));
        }
        expect_table = false;
        i = next;
    }
    out
}

fn skip_parens(tokens: &[Token], open: usize) -> usize {
    let mut depth = 0i32;
    for (i, token) in tokens.iter().enumerate().skip(open) {
        match token {
            Token::Symbol('(') => depth += 1,
            Token::Symbol(')') => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
    }
    tokens.len()
}

fn resolve_table(tables: &[(String, Option<String>)], qualifier: Option<&str>) -> Option<String> {
    match qualifier {
        Some(q) => tables
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(q))
            .and_then(|(_, table)| table.clone()),
        // Unqualified: the first table of the FROM list (PocketBase's reading too).
        None => tables.first().and_then(|(_, table)| table.clone()),
    }
}

const INTEGER_FUNCTIONS: &[&str] = &["count", "length"];
const NUMBER_FUNCTIONS: &[&str] = &["total", "sum", "avg"];

/// Whether the tokens are exactly one call `f(...)` (not `f(x) + 1`).
fn ends_call(tokens: &[Token]) -> bool {
    tokens.len() >= 3 && skip_parens(tokens, 1) == tokens.len()
}

fn select_item(tokens: &[Token], tables: &[(String, Option<String>)]) -> ViewColumn {
    // Output alias: `... AS name` or a trailing bare name after an expression.
    let (expr, alias) = match tokens {
        [rest @ .., as_kw, name] if is_keyword(as_kw, "as") && identifier(name).is_some() => {
            (rest, identifier(name).map(str::to_string))
        }
        [rest @ .., name]
            if !rest.is_empty()
                && identifier(name).is_some()
                && !matches!(rest.last(), Some(Token::Symbol('.'))) =>
        {
            (rest, identifier(name).map(str::to_string))
        }
        _ => (tokens, None),
    };
    let origin = match expr {
        [Token::Symbol('*')] => Origin::Star {
            tables: tables.iter().filter_map(|(_, t)| t.clone()).collect(),
        },
        [q, Token::Symbol('.'), Token::Symbol('*')] => {
            match identifier(q).and_then(|q| resolve_table(tables, Some(q))) {
                Some(table) => Origin::Star {
                    tables: vec![table],
                },
                None => Origin::Unknown,
            }
        }
        [column] if identifier(column).is_some() => {
            let column = identifier(column).unwrap_or_default().to_string();
            match resolve_table(tables, None) {
                Some(table) => Origin::Column { table, column },
                None => Origin::Unknown,
            }
        }
        [q, Token::Symbol('.'), column]
            if identifier(q).is_some() && identifier(column).is_some() =>
        {
            match resolve_table(tables, identifier(q)) {
                Some(table) => Origin::Column {
                    table,
                    column: identifier(column).unwrap_or_default().to_string(),
                },
                None => Origin::Unknown,
            }
        }
        [
            Token::Word(cast),
            Token::Symbol('('),
            ..,
            as_kw,
            Token::Word(type_name),
            Token::Symbol(')'),
        ] if cast.eq_ignore_ascii_case("cast") && is_keyword(as_kw, "as") && ends_call(expr) => {
            Origin::Cast {
                type_name: type_name.clone(),
            }
        }
        [Token::Word(function), Token::Symbol('('), ..]
            if INTEGER_FUNCTIONS
                .iter()
                .any(|f| function.eq_ignore_ascii_case(f))
                && ends_call(expr) =>
        {
            Origin::Number { integer: true }
        }
        [Token::Word(function), Token::Symbol('('), ..]
            if NUMBER_FUNCTIONS
                .iter()
                .any(|f| function.eq_ignore_ascii_case(f))
                && ends_call(expr) =>
        {
            Origin::Number { integer: false }
        }
        _ => Origin::Unknown,
    };
    let name = alias.or_else(|| match &origin {
        Origin::Column { column, .. } => Some(column.clone()),
        _ => None,
    });
    ViewColumn { name, origin }
}

/// Reads the outermost `SELECT` of a view query. Empty when it cannot be read.
pub fn view_columns(query: &str) -> Vec<ViewColumn> {
    let tokens = tokenize(query);
    let Some(select) = find_top(&tokens, 0, &["select"]) else {
        return Vec::new();
    };
    let mut start = select + 1;
    while tokens
        .get(start)
        .is_some_and(|t| is_keyword(t, "distinct") || is_keyword(t, "all"))
    {
        start += 1;
    }
    let from = find_top(&tokens, start, &["from"]);
    let items_end = from
        .or_else(|| find_top(&tokens, start, CLAUSE_ENDS))
        .unwrap_or(tokens.len());
    let tables = match from {
        Some(from) => {
            let end = find_top(&tokens, from + 1, CLAUSE_ENDS).unwrap_or(tokens.len());
            from_tables(&tokens[from + 1..end])
        }
        None => Vec::new(),
    };
    split_commas(&tokens[start..items_end])
        .into_iter()
        .filter(|item| !item.is_empty())
        .map(|item| select_item(item, &tables))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, table: &str, column: &str) -> ViewColumn {
        ViewColumn {
            name: Some(name.into()),
            origin: Origin::Column {
                table: table.into(),
                column: column.into(),
            },
        }
    }

    fn unknown(name: Option<&str>) -> ViewColumn {
        ViewColumn {
            name: name.map(str::to_string),
            origin: Origin::Unknown,
        }
    }

    #[test]
    fn reads_select_lists() {
        let cases: Vec<(&str, Vec<ViewColumn>)> = vec![
            (
                "SELECT id, title FROM posts",
                vec![col("id", "posts", "id"), col("title", "posts", "title")],
            ),
            (
                "select p.id, p.author as writer, \"p\".\"title\" AS t FROM posts p WHERE p.n > 1",
                vec![
                    col("id", "posts", "id"),
                    col("writer", "posts", "author"),
                    col("t", "posts", "title"),
                ],
            ),
            (
                "SELECT c.id, p.title, c.post FROM comments AS c LEFT JOIN posts p ON p.id = c.post ORDER BY c.id",
                vec![
                    col("id", "comments", "id"),
                    col("title", "posts", "title"),
                    col("post", "comments", "post"),
                ],
            ),
            (
                "SELECT * FROM posts",
                vec![ViewColumn {
                    name: None,
                    origin: Origin::Star {
                        tables: vec!["posts".into()],
                    },
                }],
            ),
            (
                "SELECT p.*, u.email FROM posts p JOIN users u ON (u.id = p.author)",
                vec![
                    ViewColumn {
                        name: None,
                        origin: Origin::Star {
                            tables: vec!["posts".into()],
                        },
                    },
                    col("email", "users", "email"),
                ],
            ),
            (
                "SELECT (ROW_NUMBER() OVER()) as id, count(*) AS total, lower(title) t2, 'x' lit FROM posts GROUP BY title",
                vec![
                    unknown(Some("id")),
                    ViewColumn {
                        name: Some("total".into()),
                        origin: Origin::Number { integer: true },
                    },
                    unknown(Some("t2")),
                    unknown(Some("lit")),
                ],
            ),
            (
                "SELECT id, CAST(n AS INTEGER) AS i, (CAST(n AS TEXT)) t, CAST(n AS REAL) + 1 AS x FROM posts",
                vec![
                    col("id", "posts", "id"),
                    ViewColumn {
                        name: Some("i".into()),
                        origin: Origin::Cast {
                            type_name: "INTEGER".into(),
                        },
                    },
                    unknown(Some("t")),
                    unknown(Some("x")),
                ],
            ),
            (
                // Unqualified columns over a join read the first table.
                "SELECT id, title FROM posts, users",
                vec![col("id", "posts", "id"), col("title", "posts", "title")],
            ),
            (
                "WITH x AS (SELECT id FROM posts) SELECT x.id FROM x -- note\n",
                vec![col("id", "x", "id")],
            ),
            (
                "SELECT s.id FROM (SELECT id FROM posts) s",
                vec![unknown(None)],
            ),
            ("garbage", vec![]),
        ];
        for (query, expected) in cases {
            assert_eq!(view_columns(query), expected, "{query}");
        }
    }
}
