//! Tokens → the compiled [`Expr`]: recursive descent, one function per precedence level (the
//! grammar is in the module docs), with the type checks that the text alone decides.

use super::eval::{ArithOp, CmpOp, Expr, Header, LikePattern, Lit};
use super::lexer::{out_of_range, tokenize, Kw, Tok, Token};
use super::{syntax_error, MAX_DEPTH};
use crate::error::{Error, Result};

/// What the text tells of an expression's type. Identifiers of properties are `Any`: their type
/// is known only per message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Bool,
    Num,
    Str,
    Any,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Bool => "a condition",
            Ty::Num => "a number",
            Ty::Str => "a string",
            Ty::Any => "a value",
        }
    }
}

/// A parsed expression with its type, the position where it starts and the height of its tree.
struct Node {
    e: Expr,
    ty: Ty,
    pos: usize,
    height: usize,
}

/// The tallest expression tree [`MAX_DEPTH`] levels of nesting can make: each level
/// (parenthesis, `NOT`, sign) adds at most one node of each precedence (`OR` list, `AND` list,
/// comparison, sum chain, product chain) besides its own. The parser's nesting count refuses
/// first; this bound only backs up the evaluator's stack budget.
const MAX_HEIGHT: usize = 6 * (MAX_DEPTH + 1);

fn node(e: Expr, ty: Ty, pos: usize, height: usize) -> Result<Node> {
    if height > MAX_HEIGHT {
        return Err(too_deep(pos));
    }
    Ok(Node { e, ty, pos, height })
}

fn too_deep(pos: usize) -> Error {
    syntax_error(
        pos,
        &format!(
            "at most {MAX_DEPTH} levels of nesting (each parenthesis, NOT and sign is one level; \
             a chain such as a + b + c or a AND b AND c is none)"
        ),
    )
}

fn cond(n: &Node, context: &str) -> Result<()> {
    match n.ty {
        Ty::Bool | Ty::Any => Ok(()),
        ty => Err(syntax_error(
            n.pos,
            &format!(
                "a condition (a comparison, a boolean identifier, TRUE or FALSE) {context}, found {}",
                ty.name()
            ),
        )),
    }
}

/// An operand of `op` must be of type `want` (or of a type known only per message).
fn operand(n: &Node, want: Ty, op: &str) -> Result<()> {
    if n.ty == want || n.ty == Ty::Any {
        return Ok(());
    }
    Err(syntax_error(
        n.pos,
        &format!("{} as operand of {op}, found {}", want.name(), n.ty.name()),
    ))
}

fn num(n: &Node, op: &str) -> Result<()> {
    operand(n, Ty::Num, op)
}

fn header_type(h: Header) -> Ty {
    match h {
        Header::Priority | Header::Timestamp | Header::Expiration | Header::DeliveryCount => {
            Ty::Num
        }
        Header::CorrelationId | Header::MessageId | Header::DeliveryMode | Header::GroupId => {
            Ty::Str
        }
        Header::Redelivered => Ty::Bool,
    }
}

/// The compiled selector, or `None` for text with no token (JMS: no selector).
pub(super) fn parse(text: &str) -> Result<Option<Expr>> {
    let toks = tokenize(text)?;
    if toks.len() == 1 {
        return Ok(None);
    }
    let mut p = Parser { toks, at: 0 };
    let n = p.list(0, Kw::Or)?;
    if p.peek() != &Tok::End {
        return Err(p.unexpected("an operator or the end of the selector"));
    }
    cond(&n, "as the selector")?;
    Ok(Some(n.e))
}

struct Parser {
    toks: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.at].tok
    }

    fn pos(&self) -> usize {
        self.toks[self.at].pos
    }

    /// Moves past the current token (never past the end token).
    fn bump(&mut self) {
        if self.at + 1 < self.toks.len() {
            self.at += 1;
        }
    }

    fn eat(&mut self, t: &Tok) -> bool {
        let hit = self.peek() == t;
        if hit {
            self.bump();
        }
        hit
    }

    fn eat_kw(&mut self, k: Kw) -> bool {
        self.eat(&Tok::Kw(k))
    }

    fn expect(&mut self, t: &Tok, expected: &str) -> Result<()> {
        if self.eat(t) {
            Ok(())
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn unexpected(&self, expected: &str) -> Error {
        syntax_error(
            self.pos(),
            &format!("{expected}, found {}", self.peek().describe()),
        )
    }

    /// One more level of nesting at `pos`.
    fn enter(&self, depth: usize, pos: usize) -> Result<usize> {
        if depth >= MAX_DEPTH {
            return Err(too_deep(pos));
        }
        Ok(depth + 1)
    }

    /// `or-expr` (for `Kw::Or`) or `and-expr` (for `Kw::And`): a flat list, so that long
    /// generated `a = 1 OR a = 2 OR …` chains do not count as nesting.
    fn list(&mut self, d: usize, kw: Kw) -> Result<Node> {
        let item = |p: &mut Parser| {
            if kw == Kw::Or {
                p.list(d, Kw::And)
            } else {
                p.not(d)
            }
        };
        let first = item(self)?;
        if self.peek() != &Tok::Kw(kw) {
            return Ok(first);
        }
        let context = format!("as operand of {}", kw.name());
        cond(&first, &context)?;
        let (pos, mut height) = (first.pos, first.height);
        let mut items = vec![first.e];
        while self.eat_kw(kw) {
            let n = item(self)?;
            cond(&n, &context)?;
            height = height.max(n.height);
            items.push(n.e);
        }
        let e = if kw == Kw::Or {
            Expr::Or(items)
        } else {
            Expr::And(items)
        };
        node(e, Ty::Bool, pos, height + 1)
    }

    fn not(&mut self, d: usize) -> Result<Node> {
        if self.peek() != &Tok::Kw(Kw::Not) {
            return self.predicate(d);
        }
        let pos = self.pos();
        self.bump();
        let n = self.not(self.enter(d, pos)?)?;
        cond(&n, "after NOT")?;
        node(Expr::Not(Box::new(n.e)), Ty::Bool, pos, n.height + 1)
    }

    fn predicate(&mut self, d: usize) -> Result<Node> {
        let left = self.sum(d)?;
        let op = match self.peek() {
            &Tok::Cmp(op) => op,
            Tok::Kw(Kw::Not) => {
                self.bump();
                if !matches!(self.peek(), Tok::Kw(Kw::Between | Kw::In | Kw::Like)) {
                    return Err(self.unexpected("BETWEEN, IN or LIKE after NOT"));
                }
                return self.special(left, true, d);
            }
            Tok::Kw(Kw::Between | Kw::In | Kw::Like) => return self.special(left, false, d),
            Tok::Kw(Kw::Is) => {
                self.bump();
                let negated = self.eat_kw(Kw::Not);
                self.expect(&Tok::Kw(Kw::Null), "NULL after IS or IS NOT")?;
                let e = Expr::IsNull {
                    operand: Box::new(left.e),
                    negated,
                };
                return node(e, Ty::Bool, left.pos, left.height + 1);
            }
            _ => return Ok(left),
        };
        let symbol = op.symbol();
        self.bump();
        let right = self.sum(d)?;
        if matches!(op, CmpOp::Eq | CmpOp::Ne) {
            if left.ty != Ty::Any && right.ty != Ty::Any && left.ty != right.ty {
                return Err(syntax_error(
                    right.pos,
                    &format!(
                        "{} on the right of {symbol}, as on its left (JMS compares only values of like types), found {}",
                        left.ty.name(),
                        right.ty.name()
                    ),
                ));
            }
        } else {
            // JMS: "String and Boolean comparison is restricted to = and <>".
            num(&left, symbol)?;
            num(&right, symbol)?;
        }
        let height = left.height.max(right.height) + 1;
        node(
            Expr::Cmp(op, Box::new((left.e, right.e))),
            Ty::Bool,
            left.pos,
            height,
        )
    }

    /// `[NOT] BETWEEN`, `[NOT] IN` or `[NOT] LIKE` after `left` (at the keyword).
    // Long (≈90 lines): the three JMS special predicates share the NOT handling and the
    // operand checks; one function keeps them side by side.
    fn special(&mut self, left: Node, negated: bool, d: usize) -> Result<Node> {
        let kw = self.peek().clone();
        self.bump();
        let (e, height) = match kw {
            Tok::Kw(Kw::Between) => {
                num(&left, "BETWEEN")?;
                let lo = self.sum(d)?;
                num(&lo, "BETWEEN")?;
                self.expect(&Tok::Kw(Kw::And), "AND of BETWEEN … AND …")?;
                let hi = self.sum(d)?;
                num(&hi, "BETWEEN")?;
                let height = left.height.max(lo.height).max(hi.height);
                let operands = Box::new((left.e, lo.e, hi.e));
                (Expr::Between { operands, negated }, height)
            }
            Tok::Kw(Kw::In) => {
                operand(&left, Ty::Str, "IN")?;
                self.expect(&Tok::LParen, "'(' opening the IN list")?;
                let mut list = Vec::new();
                loop {
                    match self.peek() {
                        Tok::Str(s) => list.push(s.clone()),
                        _ => return Err(self.unexpected(
                            "a string literal in the IN list (JMS IN lists hold string literals)",
                        )),
                    }
                    self.bump();
                    if !self.eat(&Tok::Comma) {
                        self.expect(&Tok::RParen, "',' or ')' in the IN list")?;
                        break;
                    }
                }
                list.sort_unstable();
                list.dedup();
                let operand = Box::new(left.e);
                let list = list.into_boxed_slice();
                (
                    Expr::In {
                        operand,
                        list,
                        negated,
                    },
                    left.height,
                )
            }
            _ => {
                operand(&left, Ty::Str, "LIKE")?;
                let pattern_pos = self.pos();
                let Tok::Str(pattern) = self.peek().clone() else {
                    return Err(self.unexpected("a string literal as the LIKE pattern"));
                };
                self.bump();
                let mut escape = None;
                if self.eat_kw(Kw::Escape) {
                    let mut chars = match self.peek() {
                        Tok::Str(s) => s.chars(),
                        _ => "".chars(),
                    };
                    match (chars.next(), chars.next()) {
                        (Some(c), None) => escape = Some(c),
                        _ => {
                            return Err(
                                self.unexpected("a one-character string literal after ESCAPE")
                            )
                        }
                    }
                    self.bump();
                }
                let pattern = LikePattern::new(&pattern, escape).map_err(|_| {
                    syntax_error(
                        pattern_pos,
                        "a character after the ESCAPE character that ends the LIKE pattern starting here",
                    )
                })?;
                let operand = Box::new(left.e);
                (
                    Expr::Like {
                        operand,
                        pattern,
                        negated,
                    },
                    left.height,
                )
            }
        };
        node(e, Ty::Bool, left.pos, height + 1)
    }

    /// `sum` (for `+ -`) and `product` (for `* /`), left-associative: one flat chain node, as
    /// the items of an `AND` or `OR` list, so that `a + b + … + z` is one level of the tree,
    /// not one per operator (review r5 #21: a 40-term sum was refused as too deeply nested).
    fn arith(&mut self, d: usize, sum: bool) -> Result<Node> {
        let operand = |p: &mut Parser| if sum { p.arith(d, false) } else { p.unary(d) };
        let first = operand(self)?;
        let mut height = first.height;
        let mut rest = Vec::new();
        loop {
            let op = match (self.peek(), sum) {
                (Tok::Plus, true) => ArithOp::Add,
                (Tok::Minus, true) => ArithOp::Sub,
                (Tok::Star, false) => ArithOp::Mul,
                (Tok::Slash, false) => ArithOp::Div,
                _ => break,
            };
            let symbol = self.peek().symbol();
            self.bump();
            let right = operand(self)?;
            if rest.is_empty() {
                num(&first, symbol)?;
            }
            num(&right, symbol)?;
            height = height.max(right.height);
            rest.push((op, right.e));
        }
        if rest.is_empty() {
            return Ok(first);
        }
        let e = Expr::Arith(Box::new(first.e), rest.into_boxed_slice());
        node(e, Ty::Num, first.pos, height + 1)
    }

    fn sum(&mut self, d: usize) -> Result<Node> {
        self.arith(d, true)
    }

    fn unary(&mut self, d: usize) -> Result<Node> {
        let minus = match self.peek() {
            Tok::Minus => true,
            Tok::Plus => false,
            _ => return self.primary(d),
        };
        let pos = self.pos();
        self.bump();
        // -9223372036854775808 is a long, though 9223372036854775808 alone is not (Java).
        if minus
            && self.peek()
                == &(Tok::Int {
                    value: 1 << 63,
                    decimal: true,
                })
        {
            self.bump();
            return node(Expr::Lit(Lit::Int(i64::MIN)), Ty::Num, pos, 1);
        }
        let n = self.unary(self.enter(d, pos)?)?;
        num(&n, if minus { "unary -" } else { "unary +" })?;
        // Signs on literals are folded, so `-5` is the literal it looks like.
        let e = match (n.e, minus) {
            (Expr::Lit(Lit::Int(i)), true) => Expr::Lit(Lit::Int(i.wrapping_neg())),
            (Expr::Lit(Lit::Float(f)), true) => Expr::Lit(Lit::Float(-f)),
            (e @ Expr::Lit(_), false) => e,
            (e, true) => Expr::Neg(Box::new(e)),
            (e, false) => Expr::Pos(Box::new(e)),
        };
        let height = if matches!(e, Expr::Lit(_)) {
            n.height
        } else {
            n.height + 1
        };
        node(e, Ty::Num, pos, height)
    }

    fn primary(&mut self, d: usize) -> Result<Node> {
        let pos = self.pos();
        let (e, ty) = match self.peek() {
            &Tok::Int { value, decimal } => {
                if decimal && value > i64::MAX as u64 {
                    return Err(out_of_range(pos, value));
                }
                // Hex and octal literals use all 64 bits (two's complement), as Java's do.
                (Expr::Lit(Lit::Int(value as i64)), Ty::Num)
            }
            &Tok::Float(f) => (Expr::Lit(Lit::Float(f)), Ty::Num),
            Tok::Str(s) => (Expr::Lit(Lit::Str(s.clone())), Ty::Str),
            Tok::Kw(Kw::True) => (Expr::Lit(Lit::Bool(true)), Ty::Bool),
            Tok::Kw(Kw::False) => (Expr::Lit(Lit::Bool(false)), Ty::Bool),
            Tok::Ident(name) => match Header::ALL.iter().find(|(n, _)| **n == **name) {
                Some(&(_, h)) => (Expr::Header(h), header_type(h)),
                None => (Expr::Prop(name.clone()), Ty::Any),
            },
            Tok::LParen => {
                self.bump();
                let n = self.list(self.enter(d, pos)?, Kw::Or)?;
                self.expect(
                    &Tok::RParen,
                    &format!("')' closing the '(' at character {pos}"),
                )?;
                return Ok(Node { pos, ..n });
            }
            Tok::Kw(Kw::Null) => {
                return Err(syntax_error(
                    pos,
                    "an operand, found NULL (a comparison with NULL is never true: test for a missing value with IS NULL or IS NOT NULL)",
                ))
            }
            _ => {
                return Err(self.unexpected("an operand (a literal, an identifier or '(')"));
            }
        };
        self.bump();
        node(e, ty, pos, 1)
    }
}
