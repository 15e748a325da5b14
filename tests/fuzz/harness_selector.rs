//! T18: the selector fuzz harness, shared by `fuzz_targets/selector.rs` and the main crate's
//! `tests/fuzz_replay.rs` (which replays the committed corpus on every `cargo test`).
#![allow(dead_code)]

use std::sync::OnceLock;

use mqlite::selector::{
    check_topic_name, check_topic_pattern, pattern_matches, Selector, TopicMatcher,
};
use mqlite::{ErrorKind, Message};

/// Messages whose properties, under the short names the seeds use, take every kind of value,
/// and the same names with other kinds (so type mismatches are met), and none at all.
fn messages() -> &'static [Message] {
    static M: OnceLock<Vec<Message>> = OnceLock::new();
    M.get_or_init(|| {
        let base = || {
            Message::new("fuzz")
                .correlation_id("ID:1")
                .group("g")
                .priority(9)
        };
        vec![
            Message::new("nothing"),
            base()
                .property("a", 1i64)
                .property("b", 2.5f64)
                .property("c", "")
                .property("d", 0i64)
                .property("f", f64::NAN)
                .property("i", i64::MIN)
                .property("s", "x%_'é")
                .property("x", true)
                .property("y", "%_")
                .property("z", vec![0u8, 255]),
            base()
                .property("a", "1")
                .property("b", true)
                .property("c", 0.0f64)
                .property("d", i64::MAX)
                .property("f", f64::INFINITY)
                .property("i", -1i64)
                .property("s", 3i64)
                .property("x", "TRUE")
                .property("y", Vec::<u8>::new())
                .property("z", false),
        ]
    })
}

/// Any text: parsing never panics and fails only with `InvalidArgument` naming a position; a
/// selector that parses evaluates on every message without panicking, `matches` is exactly
/// TRUE, and `NOT (text)` parses too (unless that crosses a limit) and is the three-valued
/// complement. The same text, split at its first newline into a topic pattern and a name:
/// `pattern_matches` agrees with a one-entry `TopicMatcher` and with the validity checks.
pub fn selector(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match Selector::parse(&text) {
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{text:?}: {e}");
            assert!(e.message().starts_with("invalid selector"), "{text:?}: {e}");
        }
        Ok(s) => {
            for m in messages() {
                let v = s.evaluate(m);
                assert_eq!(s.matches(m), v == Some(true), "{text:?}");
            }
            if !s.is_select_all() {
                match Selector::parse(&format!("NOT ({text})")) {
                    Ok(n) => {
                        for m in messages() {
                            assert_eq!(n.evaluate(m), s.evaluate(m).map(|t| !t), "{text:?}");
                        }
                    }
                    Err(e) => assert!(
                        e.message().contains("levels of nesting") || e.message().contains("limit"),
                        "{text:?} parsed, NOT ({text}) did not: {e}"
                    ),
                }
            }
        }
    }
    let (pattern, name) = text.split_once('\n').unwrap_or((&text, &text));
    let hit = pattern_matches(pattern, name);
    let mut matcher = TopicMatcher::new();
    match matcher.insert(pattern, ()) {
        Ok(()) => assert_eq!(
            matcher.matching(name).len(),
            usize::from(hit),
            "{pattern:?} × {name:?}"
        ),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::InvalidName);
            assert!(!hit && check_topic_pattern(pattern).is_err());
        }
    }
    if hit {
        assert!(check_topic_name(name).is_ok(), "{name:?}");
    }
}
