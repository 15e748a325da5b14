//! The range of every duration a configuration holds, checked at load so that a zero or absurd
//! value (`ack_wait = "0s"`, which JetStream would silently replace by its 30 s default, or a
//! hundred-year timeout that overflows a deadline) is refused naming its route and field
//! instead of misbehaving later.

use std::time::Duration;

use crate::config::Config;

const MS: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);
const YEAR: Duration = Duration::from_secs(365 * 86_400);

/// `(field, value, least, most)` for every duration of `c`, with its place in the file.
fn durations(c: &Config) -> Vec<(String, Duration, Duration, Duration)> {
    let mut out = vec![
        // A lag tick below 10 ms is a busy loop, not a refresh rate.
        ("stats_interval".into(), c.stats_interval, 10 * MS, DAY),
        ("reconnect.initial".into(), c.reconnect.initial, MS, HOUR),
        ("reconnect.max".into(), c.reconnect.max, MS, HOUR),
    ];
    if let Some(n) = &c.nats {
        // A publish is never confirmed within less than a network round trip and an fsync.
        out.push(("[nats] ack_timeout".into(), n.ack_timeout, 10 * MS, HOUR));
    }
    if let Some(r) = &c.rabbitmq {
        out.push((
            "[rabbitmq] ack_timeout".into(),
            r.ack_timeout,
            10 * MS,
            HOUR,
        ));
    }
    for r in &c.inbound {
        let route = format!("route {:?}: ", r.name);
        // The outage a crash may last: zero would claim no restart ever takes time.
        out.push((format!("{route}max_outage"), r.max_outage, SECOND, YEAR));
        if let Some(s) = &r.nats {
            // JetStream takes 0 as "its default" (30 s), and below a second a message is
            // delivered again while its first delivery is still being stored.
            out.push((format!("{route}nats.ack_wait"), s.ack_wait, SECOND, DAY));
        }
    }
    for (name, q) in &c.queues {
        let table = format!("[queues.{name:?}] ");
        // Zero is a valid redelivery delay (redeliver at once, as ActiveMQ allows).
        if let Some(d) = q.redelivery_delay {
            out.push((format!("{table}redelivery_delay"), d, Duration::ZERO, YEAR));
        }
        if let Some(d) = q.maximum_redelivery_delay {
            out.push((format!("{table}maximum_redelivery_delay"), d, MS, YEAR));
        }
        if let Some(d) = q.dedup_window {
            // Zero would remember no key: every redelivered broker message stored twice.
            out.push((format!("{table}dedup_window"), d, SECOND, YEAR));
        }
    }
    out
}

/// Refuses a duration outside its range: `route "in": nats.ack_wait 0s is below 1s`.
pub(crate) fn check(c: &Config) -> Result<(), String> {
    let show = |d: Duration| humantime::format_duration(d).to_string();
    for (field, d, least, most) in durations(c) {
        if d < least {
            let why = if d.is_zero() { " (zero)" } else { "" };
            return Err(format!(
                "{field} {}{why} is below the least allowed, {}",
                show(d),
                show(least)
            ));
        }
        if d > most {
            return Err(format!(
                "{field} {} is above the most allowed, {}",
                show(d),
                show(most)
            ));
        }
    }
    if c.reconnect.max < c.reconnect.initial {
        return Err(format!(
            "reconnect.max {} is below reconnect.initial {}",
            show(c.reconnect.max),
            show(c.reconnect.initial)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const HEAD: &str = "[nats]\nurl='nats://h:1'\n[rabbitmq]\nurl='amqp://h'\n";
    const IN: &str = "[[inbound]]\nname='in'\nqueue='q'\n";

    #[test]
    fn zero_and_absurd_durations_are_refused_naming_route_and_field() {
        for (text, field) in [
            (
                format!("{IN}nats={{stream='S',consumer='c',ack_wait='0s'}}"),
                "route \"in\": nats.ack_wait 0s (zero)",
            ),
            (
                format!("{IN}nats={{stream='S',consumer='c',ack_wait='10ms'}}"),
                "route \"in\": nats.ack_wait 10ms",
            ),
            (
                format!("{IN}nats={{stream='S',consumer='c',ack_wait='400days'}}"),
                "route \"in\": nats.ack_wait 1year",
            ),
            (
                format!("{IN}max_outage='0s'\nrabbitmq={{queue='x'}}"),
                "route \"in\": max_outage 0s",
            ),
            (
                format!("{IN}max_outage='1000years'\nrabbitmq={{queue='x'}}"),
                "route \"in\": max_outage",
            ),
            ("stats_interval='1ns'".to_string(), "stats_interval 1ns"),
            ("stats_interval='0s'".to_string(), "stats_interval 0s"),
            (
                "reconnect={initial='0s',max='1s'}".to_string(),
                "reconnect.initial 0s",
            ),
            (
                "reconnect={initial='1s',max='100years'}".to_string(),
                "reconnect.max",
            ),
            (
                "reconnect={initial='2s',max='1s'}".to_string(),
                "reconnect.max 1s is below",
            ),
            (
                "[queues.q]\ndedup_window='0s'".to_string(),
                "[queues.\"q\"] dedup_window 0s",
            ),
            (
                "[queues.q]\nmaximum_redelivery_delay='0s'".to_string(),
                "maximum_redelivery_delay 0s",
            ),
            (
                "[queues.q]\nredelivery_delay='600years'".to_string(),
                "redelivery_delay",
            ),
        ] {
            // Top-level keys before the tables, tables after them.
            let head = if text.starts_with('[') {
                format!("{HEAD}{text}")
            } else {
                format!("{text}\n{HEAD}")
            };
            let e = Config::from_toml(&head).unwrap_err().to_string();
            assert!(e.contains(field), "{text}: {e}");
        }
        for ok in [
            format!("{IN}nats={{stream='S',consumer='c',ack_wait='1s'}}"),
            "[queues.q]\nredelivery_delay='0s'".to_string(),
        ] {
            Config::from_toml(&format!("{HEAD}{ok}")).unwrap();
        }
    }
}
