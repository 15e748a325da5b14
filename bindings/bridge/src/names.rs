//! Checks of the broker-side names a configuration holds — subjects, stream and consumer names,
//! exchanges, routing keys, queues — so that a name the broker would take literally, or refuse
//! message by message, is refused once at load, naming the route and the field.

use crate::config::Config;

/// Checks every broker-side name of `c`'s routes; the error names the route and the field
/// (`route "orders": nats.subject "orders.>" holds the wildcard ">": …`).
pub(crate) fn check(c: &Config) -> Result<(), String> {
    let named = |route: &str, field: &str, r: Result<(), String>| {
        r.map_err(|e| format!("route {route:?}: {field} {e}"))
    };
    for r in &c.outbound {
        named(&r.name, "queue", local_queue(&r.queue))?;
        if let Some(t) = &r.nats {
            named(&r.name, "nats.subject", publish_subject(&t.subject))?;
        }
        if let Some(t) = &r.rabbitmq {
            named(&r.name, "rabbitmq.exchange", exchange(&t.exchange))?;
            named(
                &r.name,
                "rabbitmq.routing_key",
                amqp_text(&t.routing_key, false),
            )?;
        }
    }
    for r in &c.inbound {
        named(&r.name, "queue", local_queue(&r.queue))?;
        if let Some(s) = &r.nats {
            named(&r.name, "nats.stream", nats_name(&s.stream))?;
            named(&r.name, "nats.consumer", nats_name(&s.consumer))?;
            if let Some(f) = &s.filter_subject {
                named(&r.name, "nats.filter_subject", filter_subject(f))?;
            }
        }
        if let Some(s) = &r.rabbitmq {
            named(&r.name, "rabbitmq.queue", amqp_text(&s.queue, true))?;
        }
    }
    for r in &c.outbound {
        let own = c
            .queues
            .get(&r.queue)
            .and_then(|q| q.dead_letter_queue.as_ref());
        if own == Some(&r.queue) {
            return Err(format!(
                "route {:?}: queue {:?} is its own dead_letter_queue ([queues.{:?}]): the store \
                 drops a dead letter of a queue that is its own dead-letter queue, so a message \
                 the broker keeps refusing would be lost; name another queue (the default is \
                 \"DLQ\")",
                r.name, r.queue, r.queue
            ));
        }
    }
    for (name, q) in &c.queues {
        local_queue(name).map_err(|e| format!("[queues] table {name:?} {e}"))?;
        if let Some(dlq) = &q.dead_letter_queue {
            local_queue(dlq).map_err(|e| format!("[queues.{name:?}] dead_letter_queue {e}"))?;
        }
    }
    Ok(())
}

/// A local mqlite queue name, by the store's own rule ([`mqlite::validate_queue_name`]), so that
/// a bad name is refused at load, naming its place, before the store directory is created.
fn local_queue(s: &str) -> Result<(), String> {
    mqlite::validate_queue_name(s).map_err(|e| format!("is refused: {}", e.message()))
}

/// A NATS subject to publish to: dot-separated tokens, none empty, no white space or control
/// characters, and no wildcard token (`*`, `>`): JetStream stores a publish under the literal
/// subject, so a wildcard there is a mistake, not a pattern (as the NATS subject rules).
pub(crate) fn publish_subject(s: &str) -> Result<(), String> {
    subject(s, false)
}

/// A NATS subject filter: as [`publish_subject`], but `*` may stand for one whole token and
/// `>` for the rest as the last token.
pub(crate) fn filter_subject(s: &str) -> Result<(), String> {
    subject(s, true)
}

fn subject(s: &str, wildcards: bool) -> Result<(), String> {
    if s.is_empty() {
        return Err("is empty".into());
    }
    if let Some(c) = s.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{s:?} holds {c:?} (white space and control characters are not allowed)"
        ));
    }
    let tokens: Vec<&str> = s.split('.').collect();
    for (i, t) in tokens.iter().enumerate() {
        if t.is_empty() {
            return Err(format!(
                "{s:?} has an empty token (a leading, trailing or doubled '.')"
            ));
        }
        let wild = *t == "*" || *t == ">";
        if wild && !wildcards {
            return Err(format!(
                "{s:?} holds the wildcard {t:?}: a publish subject must be literal"
            ));
        }
        if *t == ">" && i + 1 != tokens.len() {
            return Err(format!("{s:?}: '>' may only be the last token"));
        }
        if !wild && (t.contains('*') || t.contains('>')) {
            return Err(format!("{s:?}: '*' and '>' must be whole tokens"));
        }
    }
    Ok(())
}

/// A JetStream stream or consumer name: not empty, no white space, `.`, `*`, `>`, path
/// separators or control characters (they become parts of subjects and file names on the
/// server), at most 255 bytes.
pub(crate) fn nats_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("is empty".into());
    }
    if s.len() > 255 {
        return Err(format!("{s:?} is longer than 255 bytes"));
    }
    match s
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || ".*>/\\".contains(*c))
    {
        Some(c) => Err(format!(
            "{s:?} holds {c:?}, which a stream or consumer name may not"
        )),
        None => Ok(()),
    }
}

/// An AMQP 0-9-1 exchange name: letters, digits, `-`, `_`, `.`, `:` (the protocol's rule),
/// at most 255 bytes; `""` is the default exchange.
pub(crate) fn exchange(s: &str) -> Result<(), String> {
    short_string(s)?;
    match s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.:".contains(*c)))
    {
        Some(c) => Err(format!(
            "{s:?} holds {c:?}; an exchange name has only letters, digits, '-', '_', '.', ':'"
        )),
        None => Ok(()),
    }
}

/// An AMQP routing key or queue name: at most 255 bytes (a short string), no control
/// characters; `non_empty` for a queue (the broker names a queue `""` itself).
pub(crate) fn amqp_text(s: &str, non_empty: bool) -> Result<(), String> {
    if non_empty && s.is_empty() {
        return Err("is empty".into());
    }
    short_string(s)
}

fn short_string(s: &str) -> Result<(), String> {
    if s.len() > 255 {
        return Err(format!("is {} bytes, more than 255", s.len()));
    }
    match s.chars().find(|c| c.is_control()) {
        Some(c) => Err(format!("{s:?} holds the control character {c:?}")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_with_a_bad_name_is_refused_naming_route_and_field() {
        let head = "[nats]\nurl='nats://h:1'\n[rabbitmq]\nurl='amqp://h'\n";
        for (route, field) in [
            ("[[outbound]]\nname='r'\nqueue='q'\nnats={subject='orders.>'}", "nats.subject"),
            ("[[outbound]]\nname='r'\nqueue='q'\nnats={subject='a b'}", "nats.subject"),
            ("[[outbound]]\nname='r'\nqueue='q'\nnats={subject='a..b'}", "nats.subject"),
            (
                "[[outbound]]\nname='r'\nqueue='q'\nrabbitmq={exchange='a b',routing_key='k'}",
                "rabbitmq.exchange",
            ),
            (
                "[[outbound]]\nname='r'\nqueue='q'\nrabbitmq={routing_key=\"k\\u0001\"}",
                "rabbitmq.routing_key",
            ),
            ("[[inbound]]\nname='r'\nqueue='q'\nnats={stream='A.B',consumer='c'}", "nats.stream"),
            ("[[inbound]]\nname='r'\nqueue='q'\nnats={stream='S',consumer='c d'}", "nats.consumer"),
            (
                "[[inbound]]\nname='r'\nqueue='q'\nnats={stream='S',consumer='c',filter_subject='a.>.b'}",
                "nats.filter_subject",
            ),
            ("[[inbound]]\nname='r'\nqueue='q'\nrabbitmq={queue=''}", "rabbitmq.queue"),
        ] {
            let e = Config::from_toml(&format!("{head}{route}")).unwrap_err().to_string();
            assert!(e.contains(&format!("route \"r\": {field} ")), "{route}: {e}");
        }
    }

    #[test]
    fn a_route_queue_that_is_its_own_dead_letter_queue_is_refused_naming_the_route() {
        let text = "[nats]\nurl='nats://h:1'\n[[outbound]]\nname='ship'\nqueue='oq'\n\
                    nats={subject='out.y'}\n[queues.oq]\ndead_letter_queue='oq'\n";
        let e = Config::from_toml(text).unwrap_err().to_string();
        assert!(
            e.contains("route \"ship\": queue \"oq\" is its own dead_letter_queue"),
            "{e}"
        );
        // Another queue as its dead-letter queue is fine, and so is a self-DLQ no route reads.
        Config::from_toml(&text.replace("dead_letter_queue='oq'", "dead_letter_queue='bad'"))
            .unwrap();
        Config::from_toml(&text.replace(
            "[queues.oq]\ndead_letter_queue='oq'",
            "[queues.x]\ndead_letter_queue='x'",
        ))
        .unwrap();
    }

    #[test]
    fn subjects() {
        for ok in ["orders", "orders.created", "a.b-c_d.E1"] {
            publish_subject(ok).unwrap();
            filter_subject(ok).unwrap();
        }
        for bad in [
            "orders.>", "a.*.b", "a b", "", ".a", "a.", "a..b", "a\tb", "a*", "a.b>",
        ] {
            assert!(publish_subject(bad).is_err(), "{bad:?}");
        }
        for ok in ["orders.>", "a.*.b", ">", "*"] {
            filter_subject(ok).unwrap();
        }
        for bad in ["a.>.b", "a b.>", "a..>", "x*.>"] {
            assert!(filter_subject(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn broker_names() {
        nats_name("ORDERS-1_x").unwrap();
        for bad in ["", "A.B", "A B", "A*", "A>", "a/b", &"s".repeat(256)] {
            assert!(nats_name(bad).is_err(), "{bad:?}");
        }
        for ok in ["", "amq.topic", "orders:eu-1_x"] {
            exchange(ok).unwrap();
        }
        for bad in ["a b", "a/b", "é", &"e".repeat(256)] {
            assert!(exchange(bad).is_err(), "{bad:?}");
        }
        amqp_text("", false).unwrap();
        amqp_text("any key * #", false).unwrap();
        assert!(amqp_text("", true).is_err());
        assert!(amqp_text("a\nb", false).is_err());
        assert!(amqp_text(&"k".repeat(256), false).is_err());
    }
}
