//! The compiled selector and its evaluation: a tree walked once per message, borrowing every
//! string it compares (from the selector or from the message), so evaluation allocates nothing.

pub(super) use super::like::LikePattern;
use super::SelectorInput;
use crate::Value;

/// A literal of the selector text.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Lit {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Box<str>),
}

/// A header identifier (see the module docs for what each reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Header {
    Priority,
    Timestamp,
    CorrelationId,
    MessageId,
    DeliveryMode,
    Redelivered,
    Expiration,
    GroupId,
    DeliveryCount,
}

impl Header {
    pub(super) const ALL: [(&'static str, Header); 9] = [
        ("JMSPriority", Header::Priority),
        ("JMSTimestamp", Header::Timestamp),
        ("JMSCorrelationID", Header::CorrelationId),
        ("JMSMessageID", Header::MessageId),
        ("JMSDeliveryMode", Header::DeliveryMode),
        ("JMSRedelivered", Header::Redelivered),
        ("JMSExpiration", Header::Expiration),
        ("JMSXGroupID", Header::GroupId),
        ("JMSXDeliveryCount", Header::DeliveryCount),
    ];

    fn value<'a, I: SelectorInput + ?Sized>(self, m: &'a I) -> Val<'a> {
        let opt_str = |s: Option<&'a str>| s.map_or(Val::Null, Val::Str);
        match self {
            Header::Priority => Val::Int(m.jms_priority().into()),
            Header::Timestamp => Val::Int(m.jms_timestamp_ms() as i64),
            Header::CorrelationId => opt_str(m.jms_correlation_id()),
            Header::MessageId => m.jms_message_id().map_or(Val::Null, |id| Val::Id(id.0)),
            Header::DeliveryMode => Val::Str(if m.jms_persistent() {
                "PERSISTENT"
            } else {
                "NON_PERSISTENT"
            }),
            Header::Redelivered => Val::Bool(m.jms_redelivered()),
            Header::Expiration => Val::Int(m.jms_expiration_ms() as i64),
            Header::GroupId => opt_str(m.jmsx_group_id()),
            Header::DeliveryCount => Val::Int(m.jmsx_delivery_count().into()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub(super) fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "<>",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
}

/// The compiled selector.
#[derive(Debug, Clone)]
pub(super) enum Expr {
    Lit(Lit),
    Prop(Box<str>),
    Header(Header),
    /// Unary minus.
    Neg(Box<Expr>),
    /// Unary plus: the operand if it is a number, else UNKNOWN.
    Pos(Box<Expr>),
    /// A left-associative chain of one precedence (`a + b - c`, `a * b / c`): the first
    /// operand, then each operator with its right operand, folded left to right without
    /// recursion, so a long chain takes no stack and is no nesting (review r5 #21).
    Arith(Box<Expr>, Box<[(ArithOp, Expr)]>),
    Cmp(CmpOp, Box<(Expr, Expr)>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Between {
        operands: Box<(Expr, Expr, Expr)>,
        negated: bool,
    },
    /// `list` is sorted and deduplicated, for a binary search.
    In {
        operand: Box<Expr>,
        list: Box<[Box<str>]>,
        negated: bool,
    },
    Like {
        operand: Box<Expr>,
        pattern: LikePattern,
        negated: bool,
    },
    IsNull {
        operand: Box<Expr>,
        negated: bool,
    },
}

/// A value during evaluation; strings are borrowed from the selector or the message.
#[derive(Debug, Clone, Copy)]
enum Val<'a> {
    /// NULL, or UNKNOWN where a condition stands for a value.
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    /// A message id, a string (`ID:<decimal>`) whose text is made only when it is compared.
    Id(u64),
    /// Bytes have no selector type (JMS properties have none): only `IS NULL` sees them.
    Bytes,
}

impl<'a> Val<'a> {
    fn of(v: &'a Value) -> Val<'a> {
        match v {
            Value::Str(s) => Val::Str(s),
            Value::Int(i) => Val::Int(*i),
            Value::Float(f) => Val::Float(*f),
            Value::Bool(b) => Val::Bool(*b),
            Value::Bytes(_) => Val::Bytes,
        }
    }

    fn of_truth(t: Option<bool>) -> Val<'a> {
        t.map_or(Val::Null, Val::Bool)
    }
}

/// Room for `ID:` and the 20 digits of the largest u64.
type IdBuf = [u8; 23];

/// The text of a string value (a message id written into `buf`), or `None` for anything else.
fn text<'c>(v: Val<'c>, buf: &'c mut IdBuf) -> Option<&'c str> {
    match v {
        Val::Str(s) => Some(s),
        Val::Id(mut n) => {
            let mut at = buf.len();
            loop {
                at -= 1;
                buf[at] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            at -= 3;
            buf[at..at + 3].copy_from_slice(b"ID:");
            std::str::from_utf8(&buf[at..]).ok()
        }
        _ => None,
    }
}

impl Expr {
    /// The value of an expression used as an operand.
    fn value<'a, I: SelectorInput + ?Sized>(&'a self, m: &'a I) -> Val<'a> {
        match self {
            Expr::Lit(Lit::Bool(b)) => Val::Bool(*b),
            Expr::Lit(Lit::Int(i)) => Val::Int(*i),
            Expr::Lit(Lit::Float(f)) => Val::Float(*f),
            Expr::Lit(Lit::Str(s)) => Val::Str(s),
            Expr::Prop(name) => m.property_value(name).map_or(Val::Null, Val::of),
            Expr::Header(h) => h.value(m),
            Expr::Neg(e) => match e.value(m) {
                // Java's long negation wraps: -Long.MIN_VALUE is Long.MIN_VALUE.
                Val::Int(i) => Val::Int(i.wrapping_neg()),
                Val::Float(f) => Val::Float(-f),
                _ => Val::Null,
            },
            Expr::Pos(e) => match e.value(m) {
                v @ (Val::Int(_) | Val::Float(_)) => v,
                _ => Val::Null,
            },
            Expr::Arith(first, rest) => rest
                .iter()
                .fold(first.value(m), |v, (op, e)| arith(*op, v, e.value(m))),
            _ => Val::of_truth(self.truth(m)),
        }
    }

    /// The three-valued truth of an expression used as a condition: `None` is UNKNOWN.
    pub(super) fn truth<I: SelectorInput + ?Sized>(&self, m: &I) -> Option<bool> {
        match self {
            Expr::And(items) => all_or_any(items, m, false),
            Expr::Or(items) => all_or_any(items, m, true),
            Expr::Not(e) => e.truth(m).map(|t| !t),
            Expr::Cmp(op, ab) => compare(*op, ab.0.value(m), ab.1.value(m)),
            Expr::Between { operands, negated } => {
                let (v, lo, hi) = (
                    operands.0.value(m),
                    operands.1.value(m),
                    operands.2.value(m),
                );
                if *negated {
                    or3(compare(CmpOp::Lt, v, lo), compare(CmpOp::Gt, v, hi))
                } else {
                    and3(compare(CmpOp::Ge, v, lo), compare(CmpOp::Le, v, hi))
                }
            }
            Expr::In {
                operand,
                list,
                negated,
            } => {
                let mut buf = IdBuf::default();
                let v = operand.value(m);
                if matches!(v, Val::Null | Val::Bytes) {
                    return None;
                }
                // `IN` is a list of `=` comparisons with strings: a non-string equals none.
                let found = text(v, &mut buf)
                    .is_some_and(|s| list.binary_search_by(|x| (**x).cmp(s)).is_ok());
                Some(found != *negated)
            }
            Expr::Like {
                operand,
                pattern,
                negated,
            } => {
                let mut buf = IdBuf::default();
                let s = text(operand.value(m), &mut buf)?;
                Some(pattern.matches(s) != *negated)
            }
            Expr::IsNull { operand, negated } => {
                Some(matches!(operand.value(m), Val::Null) != *negated)
            }
            // A literal, an identifier or arithmetic where a condition is needed: only a boolean
            // value is a truth value.
            _ => match self.value(m) {
                Val::Bool(b) => Some(b),
                _ => None,
            },
        }
    }
}

/// SQL's AND (`decisive` false) or OR (`decisive` true) over a list: the decisive value if any
/// item has it, else UNKNOWN if any item is UNKNOWN, else the other value.
fn all_or_any<I: SelectorInput + ?Sized>(items: &[Expr], m: &I, decisive: bool) -> Option<bool> {
    let mut unknown = false;
    for e in items {
        match e.truth(m) {
            Some(t) if t == decisive => return Some(decisive),
            None => unknown = true,
            Some(_) => {}
        }
    }
    (!unknown).then_some(!decisive)
}

fn and3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn or3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

/// A comparison with JMS's type rules (module docs): NULL gives UNKNOWN; unlike types, and an
/// ordering of strings or booleans, give FALSE (JMS 2.0 §3.8.1.2: "If comparison of non-like
/// type values is attempted, the value of the operation is false").
fn compare(op: CmpOp, a: Val, b: Val) -> Option<bool> {
    fn ord<T: PartialOrd>(op: CmpOp, x: T, y: T) -> bool {
        // PartialOrd on f64 is Java's primitive comparison: NaN is neither <, >, nor ==.
        match op {
            CmpOp::Eq => x == y,
            CmpOp::Ne => x != y,
            CmpOp::Lt => x < y,
            CmpOp::Le => x <= y,
            CmpOp::Gt => x > y,
            CmpOp::Ge => x >= y,
        }
    }
    let equality = matches!(op, CmpOp::Eq | CmpOp::Ne);
    match (a, b) {
        (Val::Int(x), Val::Int(y)) => Some(ord(op, x, y)),
        // Java's binary numeric promotion: a long meets a double as a double.
        (Val::Int(x), Val::Float(y)) => Some(ord(op, x as f64, y)),
        (Val::Float(x), Val::Int(y)) => Some(ord(op, x, y as f64)),
        (Val::Float(x), Val::Float(y)) => Some(ord(op, x, y)),
        (Val::Bool(x), Val::Bool(y)) if equality => Some(ord(op, x, y)),
        (Val::Str(_) | Val::Id(_), Val::Str(_) | Val::Id(_)) if equality => {
            let (mut ba, mut bb) = (IdBuf::default(), IdBuf::default());
            Some(ord(op, text(a, &mut ba)?, text(b, &mut bb)?))
        }
        // Bytes have no selector type: UNKNOWN, as NULL is.
        (Val::Null | Val::Bytes, _) | (_, Val::Null | Val::Bytes) => None,
        _ => Some(false),
    }
}

/// Arithmetic with Java's rules for long and double; anything else is NULL (UNKNOWN).
fn arith<'a>(op: ArithOp, a: Val<'a>, b: Val<'a>) -> Val<'a> {
    fn float(op: ArithOp, x: f64, y: f64) -> f64 {
        match op {
            ArithOp::Add => x + y,
            ArithOp::Sub => x - y,
            ArithOp::Mul => x * y,
            ArithOp::Div => x / y,
        }
    }
    match (a, b) {
        (Val::Int(x), Val::Int(y)) => match op {
            ArithOp::Add => Val::Int(x.wrapping_add(y)),
            ArithOp::Sub => Val::Int(x.wrapping_sub(y)),
            ArithOp::Mul => Val::Int(x.wrapping_mul(y)),
            // Java throws on a long division by zero (ActiveMQ then selects nothing): UNKNOWN.
            ArithOp::Div if y == 0 => Val::Null,
            ArithOp::Div => Val::Int(x.wrapping_div(y)),
        },
        (Val::Int(x), Val::Float(y)) => Val::Float(float(op, x as f64, y)),
        (Val::Float(x), Val::Int(y)) => Val::Float(float(op, x, y as f64)),
        (Val::Float(x), Val::Float(y)) => Val::Float(float(op, x, y)),
        _ => Val::Null,
    }
}
