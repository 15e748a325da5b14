//! Selector text → tokens, each with its 1-based character position (for error messages).

use super::eval::CmpOp;
use super::syntax_error;
use crate::error::Result;

/// A keyword. Keywords are case-insensitive and are never identifiers (JMS 2.0 §3.8.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kw {
    And,
    Or,
    Not,
    Between,
    In,
    Like,
    Escape,
    Is,
    Null,
    True,
    False,
}

const KEYWORDS: [(&str, Kw); 11] = [
    ("AND", Kw::And),
    ("OR", Kw::Or),
    ("NOT", Kw::Not),
    ("BETWEEN", Kw::Between),
    ("IN", Kw::In),
    ("LIKE", Kw::Like),
    ("ESCAPE", Kw::Escape),
    ("IS", Kw::Is),
    ("NULL", Kw::Null),
    ("TRUE", Kw::True),
    ("FALSE", Kw::False),
];

impl Kw {
    pub(super) fn name(self) -> &'static str {
        KEYWORDS
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("?", |(n, _)| n)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Ident(Box<str>),
    Str(Box<str>),
    /// An exact numeric literal's magnitude. `decimal` is false for hex and octal literals, which
    /// may use all 64 bits and then stand for a negative long, as Java's `0xFFFFFFFFFFFFFFFFL` does.
    Int {
        value: u64,
        decimal: bool,
    },
    Float(f64),
    Kw(Kw),
    Cmp(CmpOp),
    Plus,
    Minus,
    Star,
    Slash,
    LParen,
    RParen,
    Comma,
    End,
}

impl Tok {
    /// How an error message names the token it found.
    pub(super) fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("identifier {s}"),
            Tok::Str(s) => format!("string '{}'", clip(s)),
            Tok::Int { value, .. } => format!("number {value}"),
            Tok::Float(f) => format!("number {f}"),
            Tok::Kw(k) => k.name().to_string(),
            Tok::End => "the end of the selector".to_string(),
            other => format!("'{}'", other.symbol()),
        }
    }

    pub(super) fn symbol(&self) -> &'static str {
        match self {
            Tok::Cmp(op) => op.symbol(),
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::Comma => ",",
            _ => "?",
        }
    }
}

/// At most 40 characters of a string, for error messages about hostile input.
fn clip(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

#[derive(Debug, Clone)]
pub(super) struct Token {
    pub tok: Tok,
    /// 1-based character (not byte) position of its first character.
    pub pos: usize,
}

/// JMS whitespace: space, horizontal tab, form feed and line terminators.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0C')
}

/// Java identifier characters, as JMS defines identifiers (`Character.isJavaIdentifierStart` /
/// `isJavaIdentifierPart`), approximated by Unicode alphabetic/alphanumeric plus `_` and `$`.
fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '$'
}

fn is_ident_part(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// Splits `text` into tokens, ending with [`Tok::End`].
pub(super) fn tokenize(text: &str) -> Result<Vec<Token>> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let pos = i + 1;
        if is_space(c) {
            i += 1;
            continue;
        }
        let (tok, next) =
            match c {
                '\'' => string(&chars, i)?,
                '0'..='9' => number(&chars, i)?,
                '.' if chars.get(i + 1).is_some_and(char::is_ascii_digit) => number(&chars, i)?,
                c if is_ident_start(c) => {
                    let end = (i..chars.len())
                        .find(|&j| !is_ident_part(chars[j]))
                        .unwrap_or(chars.len());
                    let word: String = chars[i..end].iter().collect();
                    let tok = match KEYWORDS.iter().find(|(k, _)| k.eq_ignore_ascii_case(&word)) {
                        Some((_, kw)) => Tok::Kw(*kw),
                        None => Tok::Ident(word.into()),
                    };
                    (tok, end)
                }
                _ => {
                    let next = chars.get(i + 1).copied();
                    match (c, next) {
                        ('<', Some('>')) => (Tok::Cmp(CmpOp::Ne), i + 2),
                        ('<', Some('=')) => (Tok::Cmp(CmpOp::Le), i + 2),
                        ('>', Some('=')) => (Tok::Cmp(CmpOp::Ge), i + 2),
                        ('=', _) => (Tok::Cmp(CmpOp::Eq), i + 1),
                        ('<', _) => (Tok::Cmp(CmpOp::Lt), i + 1),
                        ('>', _) => (Tok::Cmp(CmpOp::Gt), i + 1),
                        ('+', _) => (Tok::Plus, i + 1),
                        ('-', _) => (Tok::Minus, i + 1),
                        ('*', _) => (Tok::Star, i + 1),
                        ('/', _) => (Tok::Slash, i + 1),
                        ('(', _) => (Tok::LParen, i + 1),
                        (')', _) => (Tok::RParen, i + 1),
                        (',', _) => (Tok::Comma, i + 1),
                        ('!', Some('=')) => {
                            return Err(syntax_error(
                                pos,
                                "an operator, found '!=' (JMS writes not-equal as <>)",
                            ))
                        }
                        ('"', _) => return Err(syntax_error(
                            pos,
                            "an operand, found '\"' (string literals take single quotes: 'text')",
                        )),
                        _ => {
                            return Err(syntax_error(
                                pos,
                                &format!("an operand or an operator, found the character {c:?}"),
                            ))
                        }
                    }
                }
            };
        out.push(Token { tok, pos });
        i = next;
    }
    out.push(Token {
        tok: Tok::End,
        pos: chars.len() + 1,
    });
    Ok(out)
}

/// A string literal starting at the quote `chars[start]`; `''` stands for one quote.
fn string(chars: &[char], start: usize) -> Result<(Tok, usize)> {
    let mut s = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => {
                return Err(syntax_error(
                    start + 1,
                    "a closing quote for the string literal that starts here (a quote inside a string is written '')",
                ))
            }
            Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                s.push('\'');
                i += 2;
            }
            Some('\'') => return Ok((Tok::Str(s.into()), i + 1)),
            Some(&c) => {
                s.push(c);
                i += 1;
            }
        }
    }
}

/// A numeric literal with Java's syntax: decimal, `0x` hex or `0` octal exact literals with an
/// optional `L` suffix; approximate literals with a decimal point and/or an exponent.
// Long (≈80 lines): Java's numeric literal grammar (radix prefixes, suffixes, exponents) in one
// place, so it can be read against the language specification.
fn number(chars: &[char], start: usize) -> Result<(Tok, usize)> {
    let digits_from = |from: usize, radix: u32| {
        (from..chars.len())
            .find(|&j| !chars[j].is_digit(radix))
            .unwrap_or(chars.len())
    };
    let pos = start + 1;
    let is_hex = chars[start] == '0' && matches!(chars.get(start + 1), Some('x' | 'X'));
    let (tok, mut end) = if is_hex {
        let end = digits_from(start + 2, 16);
        if end == start + 2 {
            return Err(syntax_error(pos, "hex digits after 0x"));
        }
        (not_decimal(&chars[start + 2..end], 16, pos)?, end)
    } else {
        let mut end = digits_from(start, 10);
        let mut float = false;
        if chars.get(end) == Some(&'.') {
            float = true;
            end = digits_from(end + 1, 10);
        }
        if matches!(chars.get(end), Some('e' | 'E')) {
            float = true;
            let mut j = end + 1;
            if matches!(chars.get(j), Some('+' | '-')) {
                j += 1;
            }
            let digits_end = digits_from(j, 10);
            if digits_end == j {
                return Err(syntax_error(
                    j + 1,
                    "the digits of the exponent of an approximate numeric literal",
                ));
            }
            end = digits_end;
        }
        if float {
            let text: String = chars[start..end].iter().collect();
            match text.parse::<f64>() {
                Ok(f) if f.is_finite() => (Tok::Float(f), end),
                _ => {
                    return Err(syntax_error(
                        pos,
                        &format!(
                        "an approximate numeric literal within the range of a double, found {text}"
                    ),
                    ))
                }
            }
        } else if chars[start] == '0' && end > start + 1 {
            // A leading 0 makes an exact literal octal, as in Java (and ActiveMQ's selectors).
            if let Some(bad) = chars[start..end].iter().find(|c| !c.is_digit(8)) {
                return Err(syntax_error(
                    pos,
                    &format!("an octal digit, found '{bad}' (a literal with a leading 0 is octal, as in Java)"),
                ));
            }
            (not_decimal(&chars[start + 1..end], 8, pos)?, end)
        } else {
            let value = exact(&chars[start..end], 10, pos)?;
            if value > 1 << 63 {
                return Err(out_of_range(pos, value));
            }
            (
                Tok::Int {
                    value,
                    decimal: true,
                },
                end,
            )
        }
    };
    if matches!(tok, Tok::Int { .. }) && matches!(chars.get(end), Some('l' | 'L')) {
        end += 1;
    }
    if let Some(&c) = chars.get(end).filter(|&&c| is_ident_part(c) || c == '.') {
        return Err(syntax_error(
            end + 1,
            &format!("an operator or a space after the number, found {c:?}"),
        ));
    }
    Ok((tok, end))
}

/// A hex or octal exact literal: any 64 bits.
fn not_decimal(digits: &[char], radix: u32, pos: usize) -> Result<Tok> {
    let value = exact(digits, radix, pos)?;
    Ok(Tok::Int {
        value,
        decimal: false,
    })
}

/// The value of `digits` in `radix`, within 64 bits.
fn exact(digits: &[char], radix: u32, pos: usize) -> Result<u64> {
    digits.iter().try_fold(0u64, |acc, c| {
        let d = c.to_digit(radix).unwrap_or(0) as u64;
        acc.checked_mul(radix as u64)
            .and_then(|a| a.checked_add(d))
            .ok_or_else(|| {
                syntax_error(
                    pos,
                    "an exact numeric literal within the range of a long (64-bit signed)",
                )
            })
    })
}

pub(super) fn out_of_range(pos: usize, value: u64) -> crate::Error {
    syntax_error(
        pos,
        &format!(
            "an exact numeric literal within the range of a long (64-bit signed), found {value}"
        ),
    )
}
