//! Exit statuses and the one-line error every failure prints.

use std::fmt;
use std::process::ExitCode;

use mqlite::ErrorKind;

/// The documented exit statuses, as `mqlite --help` prints them (a macro so that clap's
/// `after_long_help` can `concat!` it).
#[macro_export]
macro_rules! exit_statuses {
    () => {
        "Exit statuses:
  0  success (verify: the journal is sound); also when the reader of stdout goes away (| head)
  1  error: I/O, a full queue or disk, a closed or poisoned store, anything else
  2  usage: bad arguments, option values, queue names or property values
  3  corrupt: verify found damage, or the store does not open because of it (see repair)
  4  locked: another process owns the store; the message names its pid
  5  not found: no store at DIR, no such queue, subscription, message or input file (--file,
     --input); a message given by --id that a consumer holds (not waiting)
  6  not confirmed: a destructive command was declined, or --yes is missing off a terminal
  7  bad input: import stopped at a malformed line (named); nothing of its batch was written"
    };
}

/// Why the command failed: decides the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 1
    Failed,
    /// 2
    Usage,
    /// 3
    Corrupt,
    /// 4
    Locked,
    /// 5
    NotFound,
    /// 6
    NotConfirmed,
    /// 7
    BadInput,
}

impl Status {
    pub fn code(self) -> u8 {
        match self {
            Status::Failed => 1,
            Status::Usage => 2,
            Status::Corrupt => 3,
            Status::Locked => 4,
            Status::NotFound => 5,
            Status::NotConfirmed => 6,
            Status::BadInput => 7,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Status::Failed => "failed",
            Status::Usage => "usage",
            Status::Corrupt => "corrupt",
            Status::Locked => "locked",
            Status::NotFound => "not_found",
            Status::NotConfirmed => "not_confirmed",
            Status::BadInput => "bad_input",
        }
    }
}

/// A failure of the command: its status and one line naming the store, queue, id or line.
#[derive(Debug, Clone)]
pub struct CliError {
    pub status: Status,
    pub message: String,
}

pub type Result<T, E = CliError> = std::result::Result<T, E>;

impl CliError {
    pub fn new(status: Status, message: impl Into<String>) -> Self {
        CliError {
            status,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        CliError::new(Status::Usage, message)
    }

    /// Adds context in front of the message ("queue \"x\": …").
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }

    /// Adds a hint after the message ("…; pass --create …").
    pub fn hint(mut self, hint: impl fmt::Display) -> Self {
        self.message = format!("{}; {hint}", self.message);
        self
    }

    /// Prints the error as one line on stderr (a JSON object with `--json`) and gives the exit
    /// code. Only the first error of the run is printed: a run fails once, and with `--json`
    /// stderr holds one JSON object (review r6 #6: a signal at the prompt printed a "declined"
    /// from the handler and another from the interrupted read).
    pub fn report(&self, json: bool) -> ExitCode {
        static REPORTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if REPORTED.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return ExitCode::from(self.status.code());
        }
        let line = if json {
            serde_json::json!({"error": {
                "status": self.status.code(),
                "kind": self.status.name(),
                "message": self.message,
            }})
            .to_string()
        } else {
            format!("mqlite: {}", self.message)
        };
        eprintln!("{}", line.replace('\n', " "));
        ExitCode::from(self.status.code())
    }
}

impl From<mqlite::Error> for CliError {
    fn from(e: mqlite::Error) -> Self {
        let status = match e.kind() {
            ErrorKind::Locked => Status::Locked,
            ErrorKind::NotFound => Status::NotFound,
            ErrorKind::Corrupt => Status::Corrupt,
            ErrorKind::InvalidArgument | ErrorKind::InvalidName => Status::Usage,
            _ => Status::Failed,
        };
        let mut message = e.to_string();
        match e.kind() {
            ErrorKind::Locked => message.push_str(
                " (another process owns it: stop that process or let it close the store, then retry)",
            ),
            ErrorKind::Corrupt => message.push_str(
                " (`mqlite verify DIR` lists every damaged place; `mqlite repair DIR --yes` quarantines them)",
            ),
            ErrorKind::Timeout => {
                if let Some(t) = crate::open::short_timeout() {
                    message.push_str(&format!(
                        " (or --timeout {t} is too short: a live owner may take longer to \
                         answer; try 1s)"
                    ));
                }
            }
            _ => {}
        }
        CliError { status, message }
    }
}

/// Errors writing the output (reading input names its file or line where it fails). A pipe
/// closed by its reader is not reported at all: `main` ends with status 0 (see `out::Stdout`).
impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::new(Status::Failed, format!("writing the output: {e}"))
    }
}
