//! Topic names and subscription patterns: dot-separated segments, with `*` (exactly one segment)
//! and `>` (one or more trailing segments) in patterns, as ActiveMQ and NATS define them.

use rustc_hash::FxHashMap;

use crate::error::{Error, ErrorKind, Result};

/// Checks a topic name: 1–255 bytes of UTF-8 without control characters (the store's rules for
/// every name), made of non-empty segments separated by `.`, without `*` or `>` (the wildcards
/// of patterns). `orders.eu.created` is a topic name.
///
/// Errors: [`ErrorKind::InvalidName`], naming the rule broken.
///
/// ```
/// use mqlite::selector::check_topic_name;
/// assert!(check_topic_name("orders.eu.created").is_ok());
/// let e = check_topic_name("orders..created").unwrap_err();
/// assert_eq!(e.kind(), mqlite::ErrorKind::InvalidName);
/// assert!(check_topic_name("orders.*").is_err()); // wildcards only in patterns
/// ```
pub fn check_topic_name(name: &str) -> Result<()> {
    check(name, false)
}

/// Checks a subscription pattern: a topic name whose segments may also be `*` (any one segment)
/// or, as the last segment only, `>` (one or more segments). The wildcards stand only as whole
/// segments (`orders.*.created`, `orders.>`; not `orders.eu*`). A pattern without wildcards
/// matches the one topic of that name.
///
/// Errors: [`ErrorKind::InvalidName`], naming the rule broken.
pub fn check_topic_pattern(pattern: &str) -> Result<()> {
    check(pattern, true)
}

fn check(text: &str, pattern: bool) -> Result<()> {
    let what = if pattern {
        "topic pattern"
    } else {
        "topic name"
    };
    let bad = |why: String| {
        Err(Error::new(
            ErrorKind::InvalidName,
            format!("{what} {text:?} {why}"),
        ))
    };
    // The rules of every name in the store first (one check for queues and topics).
    crate::options::check_name_as(what, text)?;
    let count = text.split('.').count();
    for (i, seg) in text.split('.').enumerate() {
        let n = i + 1;
        if seg.is_empty() {
            return bad(format!(
                "has an empty segment {n} (segments are separated by single dots)"
            ));
        }
        if !seg.contains(['*', '>']) {
            continue;
        }
        if !pattern {
            return bad(format!(
                "holds a wildcard in segment {n}: '*' and '>' stand only in subscription patterns"
            ));
        }
        match seg {
            "*" => {}
            ">" if n == count => {}
            ">" => {
                return bad(format!(
                    "has '>' in segment {n}: '>' matches all remaining segments, so it must be the last"
                ))
            }
            _ => {
                return bad(format!(
                    "has {seg:?} as segment {n}: '*' and '>' are wildcards only as a whole segment"
                ))
            }
        }
    }
    Ok(())
}

/// Whether topic `name` matches subscription `pattern`: segment by segment, `*` matches exactly
/// one segment and a final `>` one or more (`orders.>` matches `orders.eu` and `orders.eu.created`,
/// not `orders`), as in ActiveMQ and NATS. False when either is not valid
/// ([`check_topic_pattern`], [`check_topic_name`]). To check one name against many patterns,
/// use a [`TopicMatcher`].
///
/// ```
/// use mqlite::selector::pattern_matches;
/// assert!(pattern_matches("orders.*.created", "orders.eu.created"));
/// assert!(!pattern_matches("orders.*", "orders.eu.created")); // `*` is exactly one segment
/// assert!(pattern_matches("orders.>", "orders.eu.created"));
/// assert!(!pattern_matches("orders.>", "orders")); // `>` is at least one segment
/// assert!(!pattern_matches("orders.>.x", "orders.a.x")); // not a valid pattern
/// ```
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    if check_topic_pattern(pattern).is_err() || check_topic_name(name).is_err() {
        return false;
    }
    let (mut ps, mut ns) = (pattern.split('.'), name.split('.'));
    loop {
        match (ps.next(), ns.next()) {
            (None, None) | (Some(">"), Some(_)) => return true,
            (Some(p), Some(n)) if p == "*" || p == n => {}
            _ => return false,
        }
    }
}

/// Subscription patterns with a value each (say, a subscription id), matched against published
/// topic names all at once: a trie of pattern segments, so one lookup costs about the number of
/// the name's segments times the wildcard branches met, however many patterns there are.
///
/// ```
/// use mqlite::selector::TopicMatcher;
/// let mut m = TopicMatcher::new();
/// m.insert("orders.*.created", "billing").unwrap();
/// m.insert("orders.>", "audit").unwrap();
/// m.insert("stock.>", "warehouse").unwrap();
/// let mut hits = m.matching("orders.eu.created");
/// hits.sort();
/// assert_eq!(hits, [&"audit", &"billing"]);
/// ```
#[derive(Debug, Clone)]
pub struct TopicMatcher<T> {
    root: Node<T>,
    len: usize,
}

#[derive(Debug, Clone)]
struct Node<T> {
    literal: FxHashMap<Box<str>, Node<T>>,
    star: Option<Box<Node<T>>>,
    /// Values of patterns that end at this node.
    end: Vec<T>,
    /// Values of patterns that end with `>` after this node.
    rest: Vec<T>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Node {
            literal: FxHashMap::default(),
            star: None,
            end: Vec::new(),
            rest: Vec::new(),
        }
    }
}

impl<T> Node<T> {
    fn is_empty(&self) -> bool {
        self.literal.is_empty()
            && self.star.is_none()
            && self.end.is_empty()
            && self.rest.is_empty()
    }

    fn child_mut(&mut self, seg: &str) -> &mut Node<T> {
        if seg == "*" {
            self.star.get_or_insert_with(Box::default)
        } else {
            self.literal.entry(seg.into()).or_default()
        }
    }

    /// Removes `value` under the segments `segs`; prunes children left empty.
    fn remove<'s>(&mut self, mut segs: impl Iterator<Item = &'s str>, value: &T) -> bool
    where
        T: PartialEq,
    {
        let take = |list: &mut Vec<T>| match list.iter().position(|v| v == value) {
            Some(i) => {
                list.remove(i);
                true
            }
            None => false,
        };
        let Some(seg) = segs.next() else {
            return take(&mut self.end);
        };
        if seg == ">" {
            return take(&mut self.rest);
        }
        if seg == "*" {
            let Some(child) = self.star.as_deref_mut() else {
                return false;
            };
            let removed = child.remove(segs, value);
            if child.is_empty() {
                self.star = None;
            }
            return removed;
        }
        let Some(child) = self.literal.get_mut(seg) else {
            return false;
        };
        let removed = child.remove(segs, value);
        if child.is_empty() {
            self.literal.remove(seg);
        }
        removed
    }

    /// Calls `f` with every value whose pattern matches `rest` (the name's remaining segments;
    /// `None` once they are used up).
    fn walk<'a, F: FnMut(&'a T)>(&'a self, rest: Option<&str>, f: &mut F) {
        let Some(rest) = rest else {
            self.end.iter().for_each(&mut *f);
            return;
        };
        self.rest.iter().for_each(&mut *f);
        let (seg, tail) = match rest.split_once('.') {
            Some((seg, tail)) => (seg, Some(tail)),
            None => (rest, None),
        };
        if let Some(child) = self.literal.get(seg) {
            child.walk(tail, f);
        }
        if let Some(child) = &self.star {
            child.walk(tail, f);
        }
    }
}

impl<T> Default for TopicMatcher<T> {
    fn default() -> Self {
        TopicMatcher {
            root: Node::default(),
            len: 0,
        }
    }
}

impl<T> TopicMatcher<T> {
    /// An empty matcher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `value` under `pattern`. The same value may be added under several patterns; it is
    /// then reported once for each of them that matches.
    ///
    /// Errors: [`ErrorKind::InvalidName`] when `pattern` is not valid ([`check_topic_pattern`]).
    pub fn insert(&mut self, pattern: &str, value: T) -> Result<()> {
        check_topic_pattern(pattern)?;
        let mut node = &mut self.root;
        for seg in pattern.split('.') {
            if seg == ">" {
                node.rest.push(value);
                self.len += 1;
                return Ok(());
            }
            node = node.child_mut(seg);
        }
        node.end.push(value);
        self.len += 1;
        Ok(())
    }

    /// Removes one entry of `value` under `pattern`; false when there was none.
    pub fn remove(&mut self, pattern: &str, value: &T) -> bool
    where
        T: PartialEq,
    {
        let removed =
            check_topic_pattern(pattern).is_ok() && self.root.remove(pattern.split('.'), value);
        if removed {
            self.len -= 1;
        }
        removed
    }

    /// Calls `f` with the value of every entry whose pattern matches topic `name`, in no
    /// particular order, without allocating. Nothing matches a name that is not valid
    /// ([`check_topic_name`]).
    pub fn for_each_match<F: FnMut(&T)>(&self, name: &str, mut f: F) {
        if check_topic_name(name).is_ok() {
            self.root.walk(Some(name), &mut f);
        }
    }

    /// The values of every entry whose pattern matches topic `name`, in no particular order.
    pub fn matching(&self, name: &str) -> Vec<&T> {
        let mut out = Vec::new();
        if check_topic_name(name).is_ok() {
            self.root.walk(Some(name), &mut |v| out.push(v));
        }
        out
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}
