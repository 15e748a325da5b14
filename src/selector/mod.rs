//! JMS message selectors, and topic names with their wildcard patterns.
//!
//! A **selector** is a condition over a message's headers and properties, in the JMS 2.0 message
//! selector language (JMS 2.0 §3.8.1.1, a subset of SQL-92 conditional expressions). A message is
//! selected when the condition is TRUE; FALSE and UNKNOWN (SQL's three-valued logic: what a
//! missing property or a type mismatch gives) do not select it. [`Selector::parse`] checks the
//! text once; [`Selector::matches`] then runs on any [`SelectorInput`] without allocating.
//!
//! ```
//! use mqlite::selector::Selector;
//! use mqlite::Message;
//!
//! let s = Selector::parse("amount > 100 AND region IN ('eu', 'uk') AND NOT urgent").unwrap();
//! let m = Message::new("order").property("amount", 150i64).property("region", "eu")
//!     .property("urgent", false);
//! assert!(s.matches(&m));
//! // A missing property is NULL: `amount > 100` is UNKNOWN, and UNKNOWN does not select.
//! assert_eq!(s.evaluate(&Message::new("no amount")), None);
//! assert!(!s.matches(&Message::new("no amount")));
//!
//! let err = Selector::parse("amount >> 100").unwrap_err();
//! assert_eq!(err.kind(), mqlite::ErrorKind::InvalidArgument);
//! assert!(err.message().contains("at character 9"), "{err}");
//! ```
//!
//! No well-kept Rust crate evaluates JMS selectors (SQL parsers accept far more and evaluate
//! nothing; CEL and evalexpr are other languages without SQL's NULL, LIKE, BETWEEN or IN), so
//! this module is a small hand-written lexer, a recursive-descent parser and a tree evaluator.
//!
//! # Grammar
//!
//! Lowest precedence first; keywords are case-insensitive, identifiers case-sensitive.
//!
//! ```text
//! selector   := or-expr                           (must be a condition; empty text = select all)
//! or-expr    := and-expr { OR and-expr }
//! and-expr   := not-expr { AND not-expr }
//! not-expr   := NOT not-expr | predicate
//! predicate  := sum [ ( = | <> | < | <= | > | >= ) sum
//!                   | [NOT] BETWEEN sum AND sum
//!                   | [NOT] IN ( string { , string } )
//!                   | [NOT] LIKE string [ ESCAPE string ]
//!                   | IS [NOT] NULL ]
//! sum        := product { ( + | - ) product }
//! product    := unary { ( * | / ) unary }
//! unary      := ( + | - ) unary | primary
//! primary    := literal | identifier | ( or-expr )
//! ```
//!
//! - **String literals** are in single quotes, a quote inside written twice: `'it''s'`.
//! - **Exact numeric literals** are Java long literals: decimal (`57`, `-9223372036854775808`),
//!   hex (`0x1F`) or octal (a leading `0`: `017` is 15, as in Java and ActiveMQ), with an optional
//!   `L` suffix; hex and octal may use all 64 bits (`0xFFFFFFFFFFFFFFFF` is -1).
//! - **Approximate numeric literals** have a decimal point and/or an exponent: `7.`, `.5`,
//!   `-57.9E2`, `7E3`; within the range of a double.
//! - **Boolean literals** `TRUE` and `FALSE`. `NULL` is a keyword usable only in `IS [NOT] NULL`
//!   (`x = NULL` is always UNKNOWN in SQL, so it is rejected as the mistake it is).
//! - **Identifiers** start with a letter, `_` or `$` and go on with letters, digits, `_` and `$`
//!   (Java identifiers); they name a header (see below) or else a property.
//! - The left side of `LIKE`, `IN`, `BETWEEN` and `IS NULL` may be any expression (JMS names an
//!   identifier there; ActiveMQ also accepts expressions). An `IN` list holds string literals and a
//!   `LIKE` pattern is a string literal, as JMS says; in a pattern `_` stands for any one character
//!   and `%` for any sequence; the one-character `ESCAPE` string makes the next pattern character
//!   literal (`'\_%' ESCAPE '\'` matches strings that start with `_`).
//!
//! # Types and three-valued logic
//!
//! Values are NULL (a missing property, a header with no value, or UNKNOWN), booleans, exact
//! numbers (i64; [`Value::Int`]), approximate numbers (f64; [`Value::Float`]), strings and bytes.
//!
//! - Any comparison or arithmetic with NULL is UNKNOWN. `AND`, `OR` and `NOT` follow SQL:
//!   `FALSE AND UNKNOWN` is FALSE, `TRUE OR UNKNOWN` is TRUE, `NOT UNKNOWN` is UNKNOWN.
//! - Exact and approximate numbers compare numerically with Java's numeric promotion (a long
//!   meets a double as a double). Arithmetic on two exact numbers is exact and wraps on overflow
//!   as Java's long does; with an approximate operand it is IEEE double arithmetic.
//! - Strings compare only with strings and booleans only with booleans, and only with `=` and
//!   `<>` (two strings are equal when they hold the same characters).
//! - **Values of different types compare FALSE** (JMS 2.0 §3.8.1.2: "If comparison of non-like
//!   type values is attempted, the value of the operation is false"), with every comparison
//!   operator: `s = 1` and `s <> 1` are both FALSE for a string `s`, so `NOT (s = 1)` is TRUE.
//!   `<`, `<=`, `>`, `>=` on strings or booleans are FALSE too (JMS restricts them to `=` and
//!   `<>`). `BETWEEN` and `IN` are comparisons, so the same holds (`s BETWEEN 1 AND 2` and
//!   `n IN ('a')` with `n` a number are FALSE, their `NOT` forms TRUE). Arithmetic on
//!   non-numbers, `LIKE` on non-strings, bytes in anything but `IS NULL`, and a non-boolean
//!   property where a condition is needed are UNKNOWN.
//!   Where the types are known when parsing, a mismatch is an error instead: `'a' < 'b'`,
//!   `JMSPriority = 'high'`, `'x' + 1`, `amount + 1` as a whole selector.
//! - Integer division by zero is UNKNOWN (Java throws, and ActiveMQ then does not select the
//!   message); approximate division by zero gives ±infinity or NaN as in Java, and NaN compares
//!   false with everything (`<>` true), as Java's primitive comparisons do.
//! - `a BETWEEN b AND c` is `a >= b AND a <= c`, and `a NOT BETWEEN b AND c` is
//!   `a < b OR a > c`; `a IN ('x', 'y')` is `a = 'x' OR a = 'y'` and `NOT IN` its `NOT`;
//!   `NOT LIKE` is `NOT (… LIKE …)`; `LIKE` or `IN` on NULL is UNKNOWN (all as JMS defines them).
//! - `e IS NULL` is TRUE when `e` is NULL or UNKNOWN, never UNKNOWN itself.
//!
//! # Headers
//!
//! These identifiers name message headers; any other identifier is a property, and a property
//! that has the name of a header is not reachable from a selector (JMS reserves these names).
//!
//! | identifier | value in mqlite | type |
//! |---|---|---|
//! | `JMSPriority` | the priority, 0–9 | exact |
//! | `JMSTimestamp` | the send time, ms since the epoch (0 before it is sent) | exact |
//! | `JMSCorrelationID` | the correlation id; NULL when it has none | string |
//! | `JMSMessageID` | the id's stable string form `ID:<decimal>`; NULL before it is stored | string |
//! | `JMSDeliveryMode` | `'PERSISTENT'`, or `'NON_PERSISTENT'` in a memory-only destination (JMS gives this header these two string values) | string |
//! | `JMSRedelivered` | TRUE when the message was delivered before | boolean |
//! | `JMSExpiration` | when it expires, ms since the epoch; 0 when never (as JMS) | exact |
//! | `JMSXGroupID` | the group key; NULL when it has none | string |
//! | `JMSXDeliveryCount` | how many times it was delivered (0 before its first delivery) | exact |
//!
//! `JMSType` is no header in mqlite: a selector reads it as the property named `JMSType` (so a
//! bridge can carry a JMS type through), NULL when the message has none. Other JMS headers
//! (`JMSDestination`, `JMSReplyTo`, `JMSDeliveryTime`) are not selectable in JMS and are plain
//! property names here.
//!
//! # Limits
//!
//! A selector is at most [`MAX_SELECTOR_LEN`] bytes and nests at most [`MAX_DEPTH`] levels, so
//! hostile text can exhaust neither the stack nor the heap; these limits never shrink, so a
//! selector that was accepted and stored parses again after an upgrade. Evaluation takes time
//! linear in the selector's size, except `LIKE`, which takes at most pattern length × string
//! length steps.
//!
//! # Topics
//!
//! Topic names are dot-separated segments (`orders.eu.created`); subscription patterns may use
//! `*` for exactly one segment and `>` for one or more trailing segments, as ActiveMQ and NATS do.
//! See [`check_topic_name`], [`check_topic_pattern`], [`pattern_matches`] and [`TopicMatcher`].

mod eval;
mod lexer;
mod like;
mod parser;
mod topic;

pub use topic::{check_topic_name, check_topic_pattern, pattern_matches, TopicMatcher};

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::{Delivery, Message, MessageId, Value};

/// The longest selector text accepted, in bytes (64 KiB).
pub const MAX_SELECTOR_LEN: usize = 64 << 10;

/// The deepest nesting accepted: each parenthesis, `NOT` and unary sign is one level (so 40
/// chained `NOT`s are accepted as 40 parentheses are); a left-associative chain of one
/// precedence (`a + b + c`, `a * b / c`, `a AND b AND c`, `a OR b OR c`) is flat and counts
/// none, however long (review r5 #21).
///
/// Parsing recurses once per level, so this bounds the stack a hostile selector can take: the
/// deepest accepted selector parses and evaluates within 128 KiB of stack in a release build
/// (the smallest default thread stack in use, musl's), about 512 KiB in a debug build.
pub const MAX_DEPTH: usize = 40;

/// A parsed JMS message selector: parse once, evaluate many times.
///
/// Two selectors are equal when their texts are equal (JMS replaces a durable subscription whose
/// selector text changes).
#[derive(Clone)]
pub struct Selector {
    text: Box<str>,
    /// `None` for the empty selector, which selects every message (JMS: an empty selector is no
    /// selector).
    expr: Option<eval::Expr>,
}

impl Selector {
    /// Parses `text` in the JMS message selector language (see the module docs for the grammar,
    /// the types and the headers). Text that is empty or only whitespace selects every message.
    ///
    /// Errors: [`crate::ErrorKind::InvalidArgument`], with a message naming the 1-based character
    /// position and what was expected there, for a syntax error, a type error visible in the text
    /// (`'a' < 'b'`), a literal out of range, text longer than [`MAX_SELECTOR_LEN`] bytes or
    /// nesting deeper than [`MAX_DEPTH`].
    pub fn parse(text: &str) -> Result<Selector> {
        if text.len() > MAX_SELECTOR_LEN {
            return Err(Error::invalid(format!(
                "invalid selector: it is {} bytes long; the limit is {MAX_SELECTOR_LEN}",
                text.len()
            )));
        }
        Ok(Selector {
            text: text.into(),
            expr: parser::parse(text)?,
        })
    }

    /// The text it was parsed from.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether it selects every message (the empty selector).
    pub fn is_select_all(&self) -> bool {
        self.expr.is_none()
    }

    /// Whether it selects `input`: TRUE selects; FALSE and UNKNOWN do not.
    pub fn matches<I: SelectorInput + ?Sized>(&self, input: &I) -> bool {
        self.evaluate(input) == Some(true)
    }

    /// The three-valued result on `input`: `Some(true)` (TRUE), `Some(false)` (FALSE) or `None`
    /// (UNKNOWN, SQL's NULL truth value). The empty selector gives TRUE.
    pub fn evaluate<I: SelectorInput + ?Sized>(&self, input: &I) -> Option<bool> {
        match &self.expr {
            None => Some(true),
            Some(e) => e.truth(input),
        }
    }
}

impl PartialEq for Selector {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Selector {}

impl fmt::Debug for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Selector").field(&self.text).finish()
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Selector {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Selector::parse(s)
    }
}

/// What a selector reads: a message's properties and headers.
///
/// Implemented for [`Message`] (what is sent or published) and [`Delivery`] (what a consumer
/// holds); the store implements it over a stored message's headers to evaluate subscription
/// selectors at publish time and a selective consumer's selector on a queue. The methods are
/// named after the JMS headers they feed (see the module docs), so they do not collide with
/// [`Message`]'s own builder methods.
pub trait SelectorInput {
    /// The user property `name` (case-sensitive); `None` when the message has none (NULL).
    fn property_value(&self, name: &str) -> Option<&Value>;
    /// `JMSPriority`: 0–9.
    fn jms_priority(&self) -> u8;
    /// `JMSTimestamp`: the send time in ms since the epoch (0 before it is sent).
    fn jms_timestamp_ms(&self) -> u64;
    /// `JMSCorrelationID`, if it has one.
    fn jms_correlation_id(&self) -> Option<&str>;
    /// `JMSMessageID`, once it has one (its string form is `ID:<decimal>`).
    fn jms_message_id(&self) -> Option<MessageId>;
    /// `JMSDeliveryMode`: true for `PERSISTENT`, false for `NON_PERSISTENT`.
    fn jms_persistent(&self) -> bool;
    /// `JMSRedelivered`: whether it was delivered before.
    fn jms_redelivered(&self) -> bool;
    /// `JMSExpiration`: when it expires, ms since the epoch; 0 when never.
    fn jms_expiration_ms(&self) -> u64;
    /// `JMSXGroupID`: its group key, if any.
    fn jmsx_group_id(&self) -> Option<&str>;
    /// `JMSXDeliveryCount`: how many times it was delivered (0 before its first delivery).
    fn jmsx_delivery_count(&self) -> u32;
}

/// A message as sent or published: never delivered, so not redelivered and delivered 0 times.
/// `JMSDeliveryMode` is `PERSISTENT`: a message does not know its destination; the store reports
/// `NON_PERSISTENT` for memory-only ones.
impl SelectorInput for Message {
    fn property_value(&self, name: &str) -> Option<&Value> {
        self.get_property(name)
    }
    fn jms_priority(&self) -> u8 {
        self.get_priority()
    }
    fn jms_timestamp_ms(&self) -> u64 {
        self.timestamp_ms()
    }
    fn jms_correlation_id(&self) -> Option<&str> {
        self.get_correlation_id()
    }
    fn jms_message_id(&self) -> Option<MessageId> {
        self.id()
    }
    fn jms_persistent(&self) -> bool {
        true
    }
    fn jms_redelivered(&self) -> bool {
        false
    }
    fn jms_expiration_ms(&self) -> u64 {
        self.expires_at_ms()
    }
    fn jmsx_group_id(&self) -> Option<&str> {
        self.get_group()
    }
    fn jmsx_delivery_count(&self) -> u32 {
        0
    }
}

/// A delivered message, with its delivery count, its redelivered flag, and `NON_PERSISTENT` when
/// its queue is memory-only.
impl SelectorInput for Delivery {
    fn property_value(&self, name: &str) -> Option<&Value> {
        self.message().property_value(name)
    }
    fn jms_priority(&self) -> u8 {
        self.message().jms_priority()
    }
    fn jms_timestamp_ms(&self) -> u64 {
        self.message().jms_timestamp_ms()
    }
    fn jms_correlation_id(&self) -> Option<&str> {
        self.message().jms_correlation_id()
    }
    fn jms_message_id(&self) -> Option<MessageId> {
        Some(self.id())
    }
    fn jms_persistent(&self) -> bool {
        !self.queue().is_memory()
    }
    fn jms_redelivered(&self) -> bool {
        self.redelivered()
    }
    fn jms_expiration_ms(&self) -> u64 {
        self.message().jms_expiration_ms()
    }
    fn jmsx_group_id(&self) -> Option<&str> {
        self.message().jmsx_group_id()
    }
    fn jmsx_delivery_count(&self) -> u32 {
        self.delivery_count()
    }
}

/// The one shape of selector syntax errors: where, and what was expected there.
fn syntax_error(pos: usize, expected: &str) -> Error {
    Error::invalid(format!(
        "invalid selector at character {pos}: expected {expected}"
    ))
}
