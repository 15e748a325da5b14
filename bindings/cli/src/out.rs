//! Output: tables, JSON, messages as text, progress bars and confirmation (only on a terminal).

use std::io::{self, IsTerminal, Write};
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use comfy_table::{CellAlignment, ContentArrangement, Table};
use indicatif::{HumanBytes, ProgressBar, ProgressState, ProgressStyle};
use mqlite::{Message, Value};
use serde::Serialize;

use crate::cli::BodyFormat;
use crate::error::{CliError, Result, Status};
use crate::parse;

/// The last instant RFC 3339 can write (9999-12-31T23:59:59.999Z), in ms since the epoch.
const RFC3339_MAX_MS: u64 = 253_402_300_799_999;

/// A time in ms since the epoch as RFC 3339 UTC with milliseconds; `-` for 0 (never / none).
/// Total: a time past year 9999 (a store may hold one: a huge TTL or delay, an imported
/// `expires_at_ms`) is shown as its raw milliseconds, since RFC 3339 has only four-digit years
/// (humantime's formatter fails on it, and a failing `Display` panics in `format!`).
pub fn time(ms: u64) -> String {
    match ms {
        0 => "-".into(),
        1..=RFC3339_MAX_MS => {
            humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
        }
        _ => format!("{ms} ms since the epoch (after year 9999)"),
    }
}

/// Stored text as a table cell: control characters (ESC, newline, …) escaped as Rust does
/// (`\u{1b}`, `\n`), invisible and bidirectional formatting characters as `\u{200b}`,
/// everything else as it is. Any program may have written the text (a failure reason, a queue
/// name in an old or foreign record), and printed raw it could move the cursor, clear the
/// screen or break the table's lines — or make two queue names look the same (a zero-width
/// space) or read backwards (U+202E; review r3 #31), so that an operator acting on the name
/// they see targets another queue. Every cell that shows stored text goes through here.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else if invisible(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// The format characters (Unicode category Cf) that render as nothing or reorder the text
/// around them: soft hyphen, Arabic letter mark, zero-width and directional marks, the
/// embedding, override and isolate controls, word joiner and invisible operators, the BOM.
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{61c}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
    )
}

pub fn bytes(n: u64) -> String {
    HumanBytes(n).to_string()
}

/// A comfy-table preset (19 positions; a space leaves that part out): only the header rule.
const RULE_UNDER_HEADER: &str = "     ──            ";

/// `n` and a noun, plural unless `n` is 1: "1 segment", "3 segments".
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A range of input lines, 1-based and inclusive: "line 4", "lines 1–3" (review r4 #2: not
/// "lines 1–1").
pub fn lines(first: usize, last: usize) -> String {
    if first == last {
        format!("line {first}")
    } else {
        format!("lines {first}–{last}")
    }
}

/// A table with a header row; the columns listed in `numeric` are right-aligned.
pub fn table(header: &[&str], numeric: &[usize]) -> Table {
    let mut t = Table::new();
    // Columns and a rule under the header, nothing else: easy to read, grep and paste.
    t.load_preset(RULE_UNDER_HEADER)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    if let Some((_, w)) = io::stdout()
        .is_terminal()
        .then(|| console::Term::stdout().size())
    {
        t.set_width(w);
    }
    if let Some(c) = t.column_mut(0) {
        c.set_padding((0, 1));
    }
    for &i in numeric {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

/// Writes a table without the padding at the start and end of its lines (so that its lines
/// grep, diff and paste cleanly).
pub fn write_table(out: &mut dyn Write, t: &Table) -> Result<()> {
    for line in t.lines() {
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// Writes `value` as one line of JSON. A failed write is an I/O error (a closed pipe among
/// them, which [`Stdout`] notes for `main`); serde_json's other errors cannot occur for the
/// types written here, and would be reported as a failure to write JSON.
pub fn json<T: Serialize>(out: &mut dyn Write, value: &T) -> Result<()> {
    serde_json::to_writer(&mut *out, value).map_err(|e| {
        if e.is_io() {
            CliError::from(io::Error::from(e))
        } else {
            CliError::new(Status::Failed, format!("writing JSON: {e}"))
        }
    })?;
    writeln!(out)?;
    Ok(())
}

/// The command's standard output: notes when a write finds that the reader went away
/// (`EPIPE`: `mqlite stats DIR | head -1`), so that `main` ends quietly with status 0 for every
/// command, whatever the error became on its way up. Rust ignores `SIGPIPE`, so a closed pipe
/// shows as this error rather than killing the process.
pub struct Stdout<W: Write> {
    inner: W,
    gone: bool,
}

impl<W: Write> Stdout<W> {
    pub fn new(inner: W) -> Self {
        Stdout { inner, gone: false }
    }

    /// Whether a write or flush found the pipe closed by its reader.
    pub fn reader_gone(&self) -> bool {
        self.gone
    }

    fn note<T>(&mut self, r: io::Result<T>) -> io::Result<T> {
        if r.as_ref()
            .is_err_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
        {
            self.gone = true;
        }
        r
    }
}

impl<W: Write> Write for Stdout<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let r = self.inner.write(buf);
        self.note(r)
    }

    fn flush(&mut self) -> io::Result<()> {
        let r = self.inner.flush();
        self.note(r)
    }
}

/// A body as text per `format`; `None` for [`BodyFormat::None`] and [`BodyFormat::Raw`] (raw
/// bytes are written as they are).
pub fn body_text(format: BodyFormat, b: &[u8]) -> Option<(&'static str, String)> {
    let hex = || b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    match format {
        BodyFormat::None | BodyFormat::Raw => None,
        BodyFormat::Hex => Some(("hex", hex())),
        BodyFormat::Base64 => Some((
            "base64",
            base64::engine::general_purpose::STANDARD.encode(b),
        )),
        BodyFormat::Auto => match std::str::from_utf8(b) {
            // Text with terminal control characters is shown as hex: it could rewrite the screen.
            Ok(s)
                if !s
                    .chars()
                    .any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r')) =>
            {
                Some(("text", s.to_string()))
            }
            _ => Some(("hex", hex())),
        },
    }
}

/// The most of a body `--body auto` shows (bytes).
pub const PREVIEW_BYTES: usize = 1024;

/// The first [`PREVIEW_BYTES`] of `b`, cut back to a UTF-8 character boundary when `b` is text
/// (so that a cut never turns text into hex).
fn preview(b: &[u8]) -> &[u8] {
    if b.len() <= PREVIEW_BYTES {
        return b;
    }
    let head = &b[..PREVIEW_BYTES];
    match std::str::from_utf8(head) {
        Ok(_) => head,
        // A character cut in two at the end (at most 3 bytes): end before it.
        Err(e) if e.error_len().is_none() && std::str::from_utf8(b).is_ok() => {
            &head[..e.valid_up_to()]
        }
        Err(_) => head,
    }
}

/// A property value as text: strings quoted, bytes in base64.
pub fn value(v: &Value) -> String {
    match v {
        Value::Str(s) => format!("{s:?} (str)"),
        Value::Int(i) => format!("{i} (int)"),
        Value::Float(f) => match parse::non_finite(*f) {
            Some(t) => format!("{t} (float)"),
            None => format!("{f:?} (float)"),
        },
        Value::Bool(b) => format!("{b} (bool)"),
        Value::Bytes(b) => format!(
            "{} (bytes, base64)",
            base64::engine::general_purpose::STANDARD.encode(b)
        ),
    }
}

/// What is shown about one stored message or delivery.
pub struct MessageView<'a> {
    pub message: &'a Message,
    /// `ready`, `delayed`, `in flight`, or the settlement of a received message.
    pub state: &'a str,
    pub delivery_count: u32,
    pub deliver_at_ms: u64,
}

/// Writes a message as a block of text: a head line, headers, dead-letter info, properties, body.
pub fn message(out: &mut dyn Write, v: &MessageView<'_>, format: BodyFormat) -> Result<()> {
    let m = v.message;
    let id = m.id().map(|i| i.to_string()).unwrap_or_default();
    writeln!(
        out,
        "{id}  {}  priority {}  sent {}  deliveries {}",
        v.state,
        m.get_priority(),
        time(m.timestamp_ms()),
        v.delivery_count
    )?;
    let mut heads = Vec::new();
    if m.expires_at_ms() != 0 {
        heads.push(format!("expires {}", time(m.expires_at_ms())));
    }
    if v.deliver_at_ms != 0 {
        heads.push(format!("deliver at {}", time(v.deliver_at_ms)));
    }
    if let Some(c) = m.get_correlation_id() {
        heads.push(format!("correlation id {c:?}"));
    }
    if let Some(g) = m.get_group() {
        heads.push(format!("group {g:?}"));
    }
    if let Some(k) = m.get_dedup_key() {
        heads.push(format!("dedup key {k:?}"));
    }
    if let Some((period, left)) = m.get_repeat() {
        heads.push(format!("repeats {left} more, every {period} ms"));
    }
    if !heads.is_empty() {
        writeln!(out, "  {}", heads.join("  "))?;
    }
    if let Some(d) = m.dead_letter_info() {
        writeln!(
            out,
            "  dead letter: {} from {:?} {}, after {}, first failure {}, last {}: {:?}",
            d.reason,
            d.original_queue,
            d.original_id,
            match d.delivery_count {
                1 => "1 delivery".to_string(),
                n => format!("{n} deliveries"),
            },
            time(d.first_failure_ms),
            time(d.last_failure_ms),
            d.last_failure
        )?;
    }
    for (k, val) in m.properties() {
        writeln!(out, "  {} = {}", k.escape_debug(), value(val))?;
    }
    let full = m.body();
    // `auto` shows a preview (review r3 #16: one 16 MiB body, or a page of them, flooded the
    // terminal or the pager); an explicit format shows every byte, as `--json` does.
    let b = match format {
        BodyFormat::Auto => preview(full),
        _ => full,
    };
    let more = match full.len() - b.len() {
        0 => String::new(),
        1 => " … (1 more byte; --body hex|base64|raw shows all)".to_string(),
        n => format!(" … ({n} more bytes; --body hex|base64|raw shows all)"),
    };
    match (format, body_text(format, b)) {
        (BodyFormat::Raw, _) => {
            write!(out, "  body ({} bytes, raw): ", b.len())?;
            out.write_all(b)?;
            writeln!(out)?;
        }
        (_, Some((kind, text))) => {
            writeln!(out, "  body ({} bytes, {kind}): {text}{more}", full.len())?;
        }
        (_, None) => writeln!(out, "  body ({} bytes)", full.len())?,
    }
    Ok(())
}

/// Whether progress bars and questions may be shown (stderr and stdin are a terminal).
pub fn interactive() -> bool {
    io::stderr().is_terminal() && io::stdin().is_terminal()
}

/// A progress bar on stderr when it is a terminal; hidden otherwise.
pub fn progress(len: u64, what: &str) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({rate}, {eta} left)")
    {
        bar.set_style(style.progress_chars("=> ").with_key("rate", rate));
    }
    bar.set_message(what.to_string());
    bar
}

/// The `{rate}` of a progress bar: a whole number of messages a second ("1250 msgs/s").
/// indicatif's own `{per_sec}` prints four decimals ("1249.8731/s"), noise on a count of
/// messages.
fn rate(state: &ProgressState, w: &mut dyn std::fmt::Write) {
    let r = state.per_sec();
    let r = if r.is_finite() { r.max(0.0) } else { 0.0 };
    let _ = write!(w, "{r:.0} msgs/s");
}

/// Asks whether to `action` ("purge 3 waiting messages of …") on a terminal; without one, only
/// `--yes` lets a destructive command run.
pub fn confirm(yes: bool, action: &str) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !interactive() {
        return Err(CliError::new(
            Status::NotConfirmed,
            format!("not confirmed: {action}; pass --yes (no terminal to ask on); nothing changed"),
        ));
    }
    let mut question = action.to_string();
    if let Some(first) = question.get(..1) {
        question.replace_range(..1, &first.to_uppercase());
    }
    let declined = |how: &str| {
        CliError::new(
            Status::NotConfirmed,
            format!("declined{how}: {action}; nothing changed"),
        )
    };
    match ask(&format!("{question}? [y/N] ")) {
        Ok(Answer::Yes) => Ok(()),
        Ok(Answer::No) => Err(declined("")),
        Ok(Answer::Interrupted) => Err(declined(" (interrupted)")),
        Err(e) => Err(CliError::new(
            Status::NotConfirmed,
            format!("not confirmed: {action} (reading the answer: {e}); nothing changed"),
        )),
    }
}

/// The terminal a prompt reads its key from, with its settings before the prompt put it in raw
/// mode, and the question: for the signal handler ([`restore_terminal`]).
struct Prompt {
    tty: std::fs::File,
    saved: libc::termios,
    question: String,
}

static PROMPT: std::sync::Mutex<Option<Prompt>> = std::sync::Mutex::new(None);

fn prompt() -> std::sync::MutexGuard<'static, Option<Prompt>> {
    PROMPT.lock().unwrap_or_else(|e| e.into_inner())
}

/// Saves the settings of the terminal the prompt reads from (stdin if it is one, else
/// /dev/tty, as `console` chooses) before `read_key_raw` puts it in raw mode.
fn save_terminal(question: &str) {
    use std::os::fd::{AsFd, AsRawFd};
    let stdin = io::stdin();
    let tty = if stdin.is_terminal() {
        stdin.as_fd().try_clone_to_owned().map(std::fs::File::from)
    } else {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
    };
    let Ok(tty) = tty else {
        return;
    };
    let mut saved = std::mem::MaybeUninit::<libc::termios>::uninit();
    // SAFETY: tcgetattr fills the termios it is given when it returns 0; it is read only then.
    if unsafe { libc::tcgetattr(tty.as_raw_fd(), saved.as_mut_ptr()) } != 0 {
        return;
    }
    let saved = unsafe { saved.assume_init() };
    *prompt() = Some(Prompt {
        tty,
        saved,
        question: question.trim_end().trim_end_matches("? [y/N]").to_string(),
    });
}

fn forget_terminal() {
    *prompt() = None;
}

/// Called by the signal handler: when a confirmation prompt is showing, restores its
/// terminal's settings (review r4 #5: a SIGINT, SIGTERM or SIGHUP at the prompt left the
/// operator's terminal in raw mode, without echo) and prints that it was declined; returns
/// whether a prompt was showing (the run then exits 6, not 130: nothing changed).
pub fn restore_terminal() -> bool {
    use std::os::fd::AsRawFd;
    let Some(p) = prompt().take() else {
        return false;
    };
    // SAFETY: the termios is the one tcgetattr filled for this very terminal.
    unsafe { libc::tcsetattr(p.tty.as_raw_fd(), libc::TCSANOW, &p.saved) };
    eprintln!();
    CliError::new(
        Status::NotConfirmed,
        format!(
            "declined (interrupted by a signal): {}; nothing changed",
            p.question
        ),
    )
    .report(std::env::args_os().any(|a| a == "--json"));
    true
}

/// An answer to [`ask`].
enum Answer {
    Yes,
    No,
    /// Ctrl-C, Ctrl-D or Esc.
    Interrupted,
}

/// Asks a yes/no question on the terminal (stderr), one key, "no" by default. Review r3 #17:
/// dialoguer's prompt hid the cursor and raised SIGINT on Ctrl-C, so the process died with the
/// cursor hidden, and it ignored Ctrl-D. Here the cursor is never hidden, and the keys are read
/// with `read_key_raw`, which gives Ctrl-C as a key rather than a signal: Ctrl-C, Ctrl-D and Esc
/// decline like "n" (status 6, nothing changed), as a shell's or an editor's prompt does.
fn ask(prompt: &str) -> io::Result<Answer> {
    use console::Key;
    let term = console::Term::stderr();
    // Saved before the question shows: a signal from then on finds it.
    save_terminal(prompt);
    if let Err(e) = term.write_str(prompt) {
        forget_terminal();
        return Err(e);
    }
    let answer = loop {
        match term.read_key_raw() {
            Ok(Key::Char('y' | 'Y')) => break Answer::Yes,
            Ok(Key::Char('n' | 'N') | Key::Enter) => break Answer::No,
            Ok(Key::CtrlC | Key::Escape | Key::Char('\u{3}' | '\u{4}')) => {
                break Answer::Interrupted
            }
            Ok(_) => {}
            Err(e) => return Err(e),
        }
    };
    // Forgotten only when the command goes on: a signal can end the read too (as Ctrl-C or an
    // error), and its handler, racing this thread, must still find the prompt to exit 6.
    if let Answer::Yes = answer {
        forget_terminal();
    }
    term.write_line(match answer {
        Answer::Yes => "yes",
        Answer::No | Answer::Interrupted => "no",
    })?;
    Ok(answer)
}
