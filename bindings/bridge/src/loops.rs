//! Routes that would feed themselves: an outbound route publishing where an inbound route
//! reads, and that inbound route storing into the queue the outbound route reads (directly, or
//! through other routes). Every message would circle forever, so such a configuration is
//! refused: at load for what the file shows (a subject matching an inbound route's
//! `filter_subject`, a routing key that the default exchange routes to an inbound route's
//! queue), and at connect for what only the server knows (the subjects a JetStream stream
//! captures, see [`Guard::check_stream`]). RabbitMQ bindings of a named exchange are not
//! visible to an AMQP client, so a loop through them cannot be seen (the README says so).
//!
//! Two outbound routes on one queue are refused too: they would split its messages between two
//! targets, each getting an arbitrary half.

use std::sync::Mutex;

use crate::config::{Config, InboundRoute, OutboundRoute};

/// Outbound route `out` publishes where inbound route `inb` reads; `how` says why.
#[derive(Debug, Clone)]
struct Edge {
    out: usize,
    inb: usize,
    how: String,
    /// Found from a stream's subjects at connect (replaced at the route's next connect).
    server: bool,
}

/// Whether the NATS subject pattern `pattern` (`*` one token, `>` the rest) matches the
/// literal subject `subject`.
pub(crate) fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut s = subject.split('.');
    for p in pattern.split('.') {
        match (p, s.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (p, Some(t)) if p == t => {}
            _ => return false,
        }
    }
    s.next().is_none()
}

/// Whether two NATS subject patterns can match one same subject (NATS subject-matching rules:
/// `*` matches one token, `>` one or more trailing tokens, other tokens match themselves).
/// An inbound route's `filter_subject` that overlaps none of its stream's subjects can never
/// receive a message (review r3 #14).
#[cfg(any(feature = "nats", test))]
pub(crate) fn subjects_overlap(a: &str, b: &str) -> bool {
    let (mut a, mut b) = (a.split('.'), b.split('.'));
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            // `>` needs at least one token, which the other side has here.
            (Some(">"), Some(_)) | (Some(_), Some(">")) => return true,
            (Some(x), Some(y)) if x == "*" || y == "*" || x == y => {}
            _ => return false,
        }
    }
}

/// What the configuration alone shows: `out` feeds `inb`, and how.
fn static_edge(out: &OutboundRoute, inb: &InboundRoute) -> Option<String> {
    if let (Some(t), Some(s)) = (&out.nats, &inb.nats) {
        let f = s.filter_subject.as_deref()?;
        return subject_matches(f, &t.subject).then(|| {
            format!(
                "subject {:?} matches the filter_subject {f:?} of stream {:?}",
                t.subject, s.stream
            )
        });
    }
    if let (Some(t), Some(s)) = (&out.rabbitmq, &inb.rabbitmq) {
        // The default exchange routes a key to the queue of that name.
        return (t.exchange.is_empty() && t.routing_key == s.queue).then(|| {
            format!(
                "the default exchange routes key {:?} to RabbitMQ queue {:?}",
                t.routing_key, s.queue
            )
        });
    }
    None
}

/// A loop in `edges`, as the text of its hops, if there is one.
fn find_loop(c: &Config, edges: &[Edge]) -> Option<String> {
    // Each local queue has at most one outbound route (checked first), so a walk from an
    // edge follows the edges out of the queue its inbound route stores into.
    for start in edges {
        let mut path = vec![start];
        if let Some(hops) = walk(c, edges, &mut path) {
            return Some(hops);
        }
    }
    None
}

/// Depth-first from the last edge of `path`; the text of the loop when it reaches the queue
/// the path started from.
fn walk<'a>(c: &Config, edges: &'a [Edge], path: &mut Vec<&'a Edge>) -> Option<String> {
    let first = &c.outbound[path[0].out].queue;
    let last = path[path.len() - 1];
    let into = &c.inbound[last.inb].queue;
    if into == first {
        return Some(describe(c, path));
    }
    for e in edges.iter().filter(|e| &c.outbound[e.out].queue == into) {
        if path.iter().any(|p| p.out == e.out) {
            continue;
        }
        path.push(e);
        if let Some(hops) = walk(c, edges, path) {
            return Some(hops);
        }
        path.pop();
    }
    None
}

fn describe(c: &Config, path: &[&Edge]) -> String {
    let hops: Vec<String> = path
        .iter()
        .map(|e| {
            let (o, i) = (&c.outbound[e.out], &c.inbound[e.inb]);
            format!(
                "outbound route {:?} reads queue {:?} and publishes where inbound route {:?} \
                 reads ({}), which stores into queue {:?}",
                o.name, o.queue, i.name, e.how, i.queue
            )
        })
        .collect();
    format!(
        "routes that feed themselves: {}; every message would circle forever (narrow the \
         subject, filter or routing key, or use another queue)",
        hops.join("; then ")
    )
}

/// The broker source an inbound route reads, as a person names it: `JetStream consumer "c"
/// of stream "S"`, `RabbitMQ queue "q"`.
fn inbound_source(r: &crate::config::InboundRoute) -> Option<String> {
    match (&r.nats, &r.rabbitmq) {
        (Some(n), _) => Some(format!(
            "JetStream consumer {:?} of stream {:?}",
            n.consumer, n.stream
        )),
        (_, Some(q)) => Some(format!("RabbitMQ queue {:?}", q.queue)),
        _ => None,
    }
}

/// Refuses two outbound routes on one queue, two inbound routes on one broker source, and
/// loops the configuration shows.
pub(crate) fn check(c: &Config) -> Result<(), String> {
    for (i, a) in c.outbound.iter().enumerate() {
        if let Some(b) = c.outbound[..i].iter().find(|b| b.queue == a.queue) {
            return Err(format!(
                "outbound routes {:?} and {:?} both read queue {:?}: each would get an \
                 arbitrary part of its messages (forward a queue from one route only)",
                b.name, a.name, a.queue
            ));
        }
    }
    // Review r9 #3: two inbound routes on one durable consumer (or queue) got an arbitrary
    // part of its messages each — refused by the second route's lock file as "another
    // bridge", after the store was made. A mistake in one file is a configuration error.
    for (i, a) in c.inbound.iter().enumerate() {
        let Some(src) = inbound_source(a) else {
            continue;
        };
        if let Some(b) = c.inbound[..i]
            .iter()
            .find(|b| inbound_source(b).as_ref() == Some(&src))
        {
            return Err(format!(
                "inbound routes {:?} and {:?} both read {src}: each would get an arbitrary \
                 part of its messages (read a broker source from one route only; a JetStream \
                 stream can feed several routes through consumers of different names)",
                b.name, a.name
            ));
        }
    }
    match find_loop(c, &static_edges(c)) {
        Some(text) => Err(text),
        None => Ok(()),
    }
}

fn static_edges(c: &Config) -> Vec<Edge> {
    let mut edges = Vec::new();
    for (oi, o) in c.outbound.iter().enumerate() {
        for (ii, i) in c.inbound.iter().enumerate() {
            if let Some(how) = static_edge(o, i) {
                edges.push(Edge {
                    out: oi,
                    inb: ii,
                    how,
                    server: false,
                });
            }
        }
    }
    edges
}

/// The routes of a running bridge, for the checks only the server can answer.
#[derive(Debug)]
#[cfg_attr(not(feature = "nats"), allow(dead_code))]
pub(crate) struct Guard {
    config: Config,
    /// Edges found so far: from the configuration, and from streams' subjects at connect.
    edges: Mutex<Vec<Edge>>,
}

#[cfg_attr(not(feature = "nats"), allow(dead_code))]
impl Guard {
    pub fn new(config: &Config) -> Self {
        Guard {
            config: config.clone(),
            edges: Mutex::new(static_edges(config)),
        }
    }

    /// Inbound route `name` reads a stream capturing `subjects`: refuses it (the text names
    /// the routes) when an outbound route publishes to a subject the stream captures (and the
    /// route's filter passes) and that closes a loop. Cheap: the stream's info is fetched at
    /// connect anyway.
    pub fn check_stream(&self, name: &str, subjects: &[String]) -> Result<(), String> {
        let c = &self.config;
        let Some(inb) = c.inbound.iter().position(|r| r.name == name) else {
            return Ok(());
        };
        let filter = c.inbound[inb]
            .nats
            .as_ref()
            .and_then(|s| s.filter_subject.clone());
        let stream = c.inbound[inb]
            .nats
            .as_ref()
            .map_or("", |s| s.stream.as_str());
        let mut edges = self.edges.lock().unwrap_or_else(|p| p.into_inner());
        // What the stream captured at the last connect may have changed since.
        edges.retain(|e| !(e.server && e.inb == inb));
        for (out, o) in c.outbound.iter().enumerate() {
            let Some(t) = &o.nats else { continue };
            let Some(p) = subjects.iter().find(|p| subject_matches(p, &t.subject)) else {
                continue;
            };
            let passes = filter
                .as_deref()
                .is_none_or(|f| subject_matches(f, &t.subject));
            if passes && !edges.iter().any(|e| e.out == out && e.inb == inb) {
                edges.push(Edge {
                    out,
                    inb,
                    how: format!(
                        "stream {stream:?} captures subject {:?} by its subject {p:?}",
                        t.subject
                    ),
                    server: true,
                });
            }
        }
        match find_loop(c, &edges) {
            Some(text) => {
                // The route does not run: its edges do not count for the others.
                edges.retain(|e| !(e.server && e.inb == inb));
                Err(text)
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "[nats]\nurl='nats://h:1'\n[rabbitmq]\nurl='amqp://h'\n";

    fn load(routes: &str) -> Result<Config, String> {
        Config::from_toml(&format!("{HEAD}{routes}")).map_err(|e| e.to_string())
    }

    #[test]
    fn subject_patterns() {
        assert!(subject_matches("cmd.>", "cmd.loop"));
        assert!(subject_matches("cmd.>", "cmd.a.b"));
        assert!(!subject_matches("cmd.>", "cmd"));
        assert!(subject_matches("*.loop", "cmd.loop"));
        assert!(!subject_matches("*.loop", "cmd.loop.x"));
        assert!(subject_matches("cmd.loop", "cmd.loop"));
        assert!(!subject_matches("cmd.loo", "cmd.loop"));
        assert!(subject_matches(">", "a"));
    }

    #[test]
    fn subject_pattern_overlaps() {
        assert!(subjects_overlap("orders.>", "orders.eu"));
        assert!(subjects_overlap("orders.*", "*.eu"));
        assert!(subjects_overlap("orders.*.x", "orders.>"));
        assert!(subjects_overlap(">", "a.b.c"));
        assert!(subjects_overlap("a.b", "a.b"));
        assert!(!subjects_overlap("order.>", "orders.>"));
        assert!(!subjects_overlap("orders", "orders.>"));
        assert!(!subjects_overlap("orders.*", "orders.a.b"));
        assert!(!subjects_overlap("in.>", "other.x"));
    }

    #[test]
    fn two_outbound_routes_on_one_queue_are_refused_naming_both() {
        let e = load(
            "[[outbound]]\nname='o1'\nqueue='q'\nnats={subject='a'}\n\
             [[outbound]]\nname='o2'\nqueue='q'\nrabbitmq={exchange='aud',routing_key='k'}\n",
        )
        .unwrap_err();
        assert!(e.contains("\"o1\" and \"o2\" both read queue \"q\""), "{e}");
    }

    #[test]
    fn two_inbound_routes_on_one_broker_source_are_refused_naming_both() {
        let e = load(
            "[[inbound]]\nname='i1'\nqueue='q'\nnats={stream='T1',consumer='c'}\n\
             [[inbound]]\nname='i2'\nqueue='q2'\n\
             nats={stream='T1',consumer='c',filter_subject='t1.b'}\n",
        )
        .unwrap_err();
        assert!(
            e.contains("\"i1\" and \"i2\" both read JetStream consumer \"c\" of stream \"T1\""),
            "{e}"
        );
        let e = load(
            "[[inbound]]\nname='i1'\nqueue='q'\nrabbitmq={queue='src'}\n\
             [[inbound]]\nname='i2'\nqueue='q2'\nrabbitmq={queue='src'}\n",
        )
        .unwrap_err();
        assert!(
            e.contains("\"i1\" and \"i2\" both read RabbitMQ queue \"src\""),
            "{e}"
        );
        // Two consumers of one stream are two sources.
        load(
            "[[inbound]]\nname='i1'\nqueue='q'\nnats={stream='T1',consumer='c1'}\n\
             [[inbound]]\nname='i2'\nqueue='q2'\nnats={stream='T1',consumer='c2'}\n",
        )
        .unwrap();
    }

    #[test]
    fn a_route_feeding_its_own_queue_is_refused_naming_both_routes() {
        let nats = "[[outbound]]\nname='out'\nqueue='loop'\nnats={subject='cmd.loop'}\n\
                    [[inbound]]\nname='in'\nqueue='loop'\n\
                    nats={stream='CMD',consumer='c',filter_subject='cmd.>'}\n";
        let e = load(nats).unwrap_err();
        assert!(
            e.contains("outbound route \"out\"") && e.contains("inbound route \"in\""),
            "{e}"
        );
        assert!(e.contains("filter_subject \"cmd.>\""), "{e}");
        // Into another queue it is a relay, not a loop.
        load(&nats.replace("queue='loop'\nnats={stream", "queue='other'\nnats={stream")).unwrap();
        // The same filter not matching the subject.
        load(&nats.replace("cmd.>", "evt.>")).unwrap();
        let rabbit = "[[outbound]]\nname='ro'\nqueue='jobs'\nrabbitmq={routing_key='jobsq'}\n\
                      [[inbound]]\nname='ri'\nqueue='jobs'\nrabbitmq={queue='jobsq'}\n";
        let e = load(rabbit).unwrap_err();
        assert!(
            e.contains("\"ro\"") && e.contains("\"ri\"") && e.contains("default exchange"),
            "{e}"
        );
        load(&rabbit.replace("routing_key='jobsq'", "exchange='x',routing_key='jobsq'")).unwrap();
    }

    #[test]
    fn a_loop_through_two_queues_is_refused() {
        let two = "[[outbound]]\nname='a'\nqueue='q1'\nnats={subject='x.1'}\n\
                   [[inbound]]\nname='b'\nqueue='q2'\nnats={stream='X',consumer='b',filter_subject='x.1'}\n\
                   [[outbound]]\nname='c'\nqueue='q2'\nnats={subject='x.2'}\n\
                   [[inbound]]\nname='d'\nqueue='q1'\nnats={stream='X',consumer='d',filter_subject='x.2'}\n";
        let e = load(two).unwrap_err();
        for r in ["\"a\"", "\"b\"", "\"c\"", "\"d\""] {
            assert!(e.contains(r), "{e}");
        }
        // Break the ring: a relay q1 → q2 → elsewhere.
        load(&two.replace("filter_subject='x.2'", "filter_subject='y.2'")).unwrap();
    }

    #[test]
    fn a_stream_capturing_an_outbound_subject_is_a_loop_found_at_connect() {
        let c = load(
            "[[outbound]]\nname='out'\nqueue='loop'\nnats={subject='cmd.loop'}\n\
             [[inbound]]\nname='in'\nqueue='loop'\nnats={stream='CMD',consumer='c'}\n\
             [[inbound]]\nname='elsewhere'\nqueue='other'\nnats={stream='CMD',consumer='d'}\n",
        )
        .unwrap();
        let g = Guard::new(&c);
        g.check_stream("in", &["evt.>".into()]).unwrap();
        let e = g.check_stream("in", &["cmd.>".into()]).unwrap_err();
        assert!(
            e.contains("\"out\"") && e.contains("\"in\"") && e.contains("\"cmd.>\""),
            "{e}"
        );
        g.check_stream("elsewhere", &["cmd.>".into()]).unwrap();
        // The stream's subjects were changed: the route may run.
        g.check_stream("in", &["evt.>".into()]).unwrap();
    }
}
