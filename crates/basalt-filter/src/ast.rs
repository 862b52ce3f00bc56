//! The syntax tree of a filter or rule expression.
//!
//! The tree knows nothing about collections or SQL: identifiers are plain paths
//! (`author.profile.name`, `@request.auth.id`, `@collection.users:u.email`) split into
//! segments and modifiers. Meaning is given to them by `basalt-sql`'s resolver.

/// A byte range into the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset one past the last byte.
    pub end: usize,
}

impl Span {
    /// Builds a span from its two ends.
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
}

/// A whole expression: comparisons joined by `&&` / `||`.
///
/// `&&` binds tighter than `||` (as in SQL, which is how PocketBase evaluates joins);
/// both are left-associative. Parentheses are not kept as nodes: the tree shape holds
/// the grouping, and the printer adds parentheses where they are needed.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `lhs && rhs` or `lhs || rhs`.
    Logic {
        /// The joining operator.
        op: LogicOp,
        /// Left side.
        lhs: Box<Expr>,
        /// Right side.
        rhs: Box<Expr>,
    },
    /// `operand op operand`.
    Compare(Comparison),
}

/// `&&` or `||`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogicOp {
    /// `&&`
    And,
    /// `||`
    Or,
}

/// One comparison, the only kind of leaf in the tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Left operand.
    pub lhs: Operand,
    /// The operator.
    pub op: CmpOp,
    /// Right operand.
    pub rhs: Operand,
    /// The whole comparison in the source.
    pub span: Span,
}

/// A comparison operator. The `Any*` forms are the `?`-prefixed "at least one value" forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `!=`
    Neq,
    /// `>`
    Gt,
    /// `>=`
    Gte,
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// `~`
    Like,
    /// `!~`
    NotLike,
    /// `?=`
    AnyEq,
    /// `?!=`
    AnyNeq,
    /// `?>`
    AnyGt,
    /// `?>=`
    AnyGte,
    /// `?<`
    AnyLt,
    /// `?<=`
    AnyLte,
    /// `?~`
    AnyLike,
    /// `?!~`
    AnyNotLike,
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Operand {
    /// What the operand is.
    pub kind: OperandKind,
    /// Where it is in the source.
    pub span: Span,
}

/// The kinds of operand.
#[derive(Debug, Clone, PartialEq)]
pub enum OperandKind {
    /// A quoted string, with escapes already removed.
    Text(String),
    /// A number literal (never NaN or infinite).
    Number(f64),
    /// `true` / `false` (case-insensitive in the source).
    Bool(bool),
    /// `null` (case-insensitive in the source).
    Null,
    /// A field path, request path, collection path or macro.
    Path(Path),
    /// A function call such as `geoDistance(a, b, c, d)` or `strftime('%Y', created)`.
    Call {
        /// The function name as written.
        name: String,
        /// The arguments, in order.
        args: Vec<Operand>,
    },
}

/// A dotted identifier: `a.b:mod.c`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Path {
    /// The segments between dots; never empty.
    pub segments: Vec<Segment>,
}

/// One dot-separated part of a path, with the `:name` suffixes written after it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Segment {
    /// The name (may start with `@` or `#` on the first segment).
    pub name: String,
    /// `:modifier` or `:alias` suffixes, in order, without the colon.
    pub modifiers: Vec<String>,
}

// ---------------------------------------------------------------------------
// Helpers added on top of the tree types (nothing above this line is renamed).
// ---------------------------------------------------------------------------

impl CmpOp {
    /// Every operator, plain forms first, in the order of the enum.
    pub const ALL: [CmpOp; 16] = [
        CmpOp::Eq,
        CmpOp::Neq,
        CmpOp::Gt,
        CmpOp::Gte,
        CmpOp::Lt,
        CmpOp::Lte,
        CmpOp::Like,
        CmpOp::NotLike,
        CmpOp::AnyEq,
        CmpOp::AnyNeq,
        CmpOp::AnyGt,
        CmpOp::AnyGte,
        CmpOp::AnyLt,
        CmpOp::AnyLte,
        CmpOp::AnyLike,
        CmpOp::AnyNotLike,
    ];

    /// True for the `?`-prefixed "at least one value" forms.
    pub fn is_any(self) -> bool {
        matches!(
            self,
            CmpOp::AnyEq
                | CmpOp::AnyNeq
                | CmpOp::AnyGt
                | CmpOp::AnyGte
                | CmpOp::AnyLt
                | CmpOp::AnyLte
                | CmpOp::AnyLike
                | CmpOp::AnyNotLike
        )
    }

    /// The plain form of the operator: `AnyEq` gives `Eq`; plain forms give themselves.
    pub fn base(self) -> CmpOp {
        match self {
            CmpOp::AnyEq => CmpOp::Eq,
            CmpOp::AnyNeq => CmpOp::Neq,
            CmpOp::AnyGt => CmpOp::Gt,
            CmpOp::AnyGte => CmpOp::Gte,
            CmpOp::AnyLt => CmpOp::Lt,
            CmpOp::AnyLte => CmpOp::Lte,
            CmpOp::AnyLike => CmpOp::Like,
            CmpOp::AnyNotLike => CmpOp::NotLike,
            plain => plain,
        }
    }

    /// The operator as written in the source, e.g. `"?!~"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Neq => "!=",
            CmpOp::Gt => ">",
            CmpOp::Gte => ">=",
            CmpOp::Lt => "<",
            CmpOp::Lte => "<=",
            CmpOp::Like => "~",
            CmpOp::NotLike => "!~",
            CmpOp::AnyEq => "?=",
            CmpOp::AnyNeq => "?!=",
            CmpOp::AnyGt => "?>",
            CmpOp::AnyGte => "?>=",
            CmpOp::AnyLt => "?<",
            CmpOp::AnyLte => "?<=",
            CmpOp::AnyLike => "?~",
            CmpOp::AnyNotLike => "?!~",
        }
    }

    /// The operator written as `text`, if `text` is exactly one of the sixteen.
    pub fn from_symbol(text: &str) -> Option<CmpOp> {
        CmpOp::ALL.into_iter().find(|op| op.as_str() == text)
    }
}

impl LogicOp {
    /// The operator as written in the source: `"&&"` or `"||"`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogicOp::And => "&&",
            LogicOp::Or => "||",
        }
    }
}

impl Expr {
    /// A copy of the tree with every span set to `Span::default()`.
    ///
    /// Two parses of differently formatted sources compare equal after this
    /// (`parse("a=1")` and `parse(" a = 1 ")`), which is how the printer is tested.
    pub fn without_spans(&self) -> Expr {
        match self {
            Expr::Logic { op, lhs, rhs } => Expr::Logic {
                op: *op,
                lhs: Box::new(lhs.without_spans()),
                rhs: Box::new(rhs.without_spans()),
            },
            Expr::Compare(cmp) => Expr::Compare(cmp.without_spans()),
        }
    }

    /// The source range from the first comparison to the last one.
    ///
    /// Parentheses are not nodes, so a leading `(` or trailing `)` is not included.
    pub fn span(&self) -> Span {
        Span::new(self.first().span.start, self.last().span.end)
    }

    /// The leftmost comparison.
    fn first(&self) -> &Comparison {
        let mut node = self;
        loop {
            match node {
                Expr::Logic { lhs, .. } => node = lhs,
                Expr::Compare(cmp) => return cmp,
            }
        }
    }

    /// The rightmost comparison.
    fn last(&self) -> &Comparison {
        let mut node = self;
        loop {
            match node {
                Expr::Logic { rhs, .. } => node = rhs,
                Expr::Compare(cmp) => return cmp,
            }
        }
    }

    /// Every comparison of the tree, left to right.
    pub fn comparisons(&self) -> Vec<&Comparison> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(node) = stack.pop() {
            match node {
                Expr::Logic { lhs, rhs, .. } => {
                    stack.push(rhs);
                    stack.push(lhs);
                }
                Expr::Compare(cmp) => out.push(cmp),
            }
        }
        out
    }
}

impl Comparison {
    /// A copy with every span set to `Span::default()`.
    pub fn without_spans(&self) -> Comparison {
        Comparison {
            lhs: self.lhs.without_spans(),
            op: self.op,
            rhs: self.rhs.without_spans(),
            span: Span::default(),
        }
    }
}

impl Operand {
    /// An operand with an empty span, handy for building trees in code.
    pub fn unspanned(kind: OperandKind) -> Operand {
        Operand {
            kind,
            span: Span::default(),
        }
    }

    /// A copy with every span (including those of call arguments) set to `Span::default()`.
    pub fn without_spans(&self) -> Operand {
        let kind = match &self.kind {
            OperandKind::Call { name, args } => OperandKind::Call {
                name: name.clone(),
                args: args.iter().map(Operand::without_spans).collect(),
            },
            other => other.clone(),
        };
        Operand::unspanned(kind)
    }
}

impl Segment {
    /// A segment without modifiers.
    pub fn plain(name: impl Into<String>) -> Segment {
        Segment {
            name: name.into(),
            modifiers: Vec::new(),
        }
    }
}
