//! Configuration mistakes refused at load with one readable line (no broker needed).

use mqlite_bridge::Config;

/// A type error deep in a multi-line file: one line naming the file, line and column.
#[test]
fn a_toml_error_names_file_line_and_column_on_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bridge.toml");
    let text = "origin = \"o\"\n\n[nats]\nurl = \"nats://127.0.0.1:4222\"\n\n[[outbound]]\n\
                name = \"a\"\nqueue = \"q\"\nwindow = \"many\"\nnats = { subject = \"s\" }\n";
    std::fs::write(&path, text).unwrap();
    let e = Config::from_file(&path).unwrap_err().to_string();
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains(&path.display().to_string()), "{e}");
    assert!(e.contains("line 9, column 10"), "{e}");
    assert!(e.contains("invalid type"), "{e}");
    // A syntax error too.
    std::fs::write(&path, "origin = \"o\"\nstats_interval = = \"1s\"\n").unwrap();
    let e = Config::from_file(&path).unwrap_err().to_string();
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains("line 2, column 18"), "{e}");
}

#[test]
fn a_stats_file_in_a_missing_or_read_only_directory_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bridge.toml");
    let load = |stats: &std::path::Path| {
        std::fs::write(
            &path,
            format!("stats_file = {:?}\n", stats.display().to_string()),
        )
        .unwrap();
        Config::from_file(&path)
    };
    let missing = dir.path().join("no-such-dir").join("stats.json");
    let e = load(&missing).unwrap_err().to_string();
    assert!(e.contains("stats_file") && e.contains("no-such-dir"), "{e}");
    let file = dir.path().join("plain");
    std::fs::write(&file, "").unwrap();
    let e = load(&file.join("stats.json")).unwrap_err().to_string();
    assert!(e.contains("not a directory"), "{e}");
    // A directory no one may create files in, root included.
    let e = load(std::path::Path::new("/proc/self/stats.json"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not writable"), "{e}");
    load(&dir.path().join("stats.json")).unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        2,
        "the probe file is left"
    );
}

/// `mqlite-bridge --json` (what `mqlite --json bridge` runs): log events and the final error
/// are JSON objects, one a line.
#[test]
fn with_json_the_log_and_the_error_are_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bridge.toml");
    std::fs::write(&path, "stats_interval = \"0s\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mqlite-bridge"))
        .arg("--json")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!err.trim().is_empty());
    for line in err.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        assert!(v.is_object(), "{line}");
    }
    let last: serde_json::Value = serde_json::from_str(err.lines().last().unwrap()).unwrap();
    let message = last["error"]["message"].as_str().unwrap();
    assert!(message.contains("stats_interval"), "{message}");
}
