//! Generates `include/mqlite.h` with cbindgen (rewriting it only when its content changed, so
//! an unchanged header keeps its mtime) and gives the shared library its soname.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;

// The core's defaults and limits, written once; the header carries them as MQLITE_<NAME>.
#[path = "src/defaults.rs"]
mod defaults;

fn main() {
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    println!("cargo:rerun-if-env-changed=CARGO_FEATURE_CAPI");
    if env::var_os("CARGO_FEATURE_CAPI").is_none() {
        return; // no C ABI: no header, no soname (the library is only linked into Rust code)
    }
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=src/defaults.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=build.rs");
    // A hand-edited (or deleted) header is regenerated, so the staleness check sees it.
    println!("cargo:rerun-if-changed=include/mqlite.h");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libmqlite.so.0");

    let mut config =
        cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("reading cbindgen.toml");
    let v = |k: &str| env::var(k).expect("cargo sets the version variables");
    config.after_includes = Some(format!(
        "\n/* The version of the header; `mqlite_version()` gives the library's. */\n\
         #define MQLITE_VERSION_MAJOR {}\n#define MQLITE_VERSION_MINOR {}\n#define MQLITE_VERSION_PATCH {}\n\
         #define MQLITE_VERSION_STRING \"{}\"",
        v("CARGO_PKG_VERSION_MAJOR"),
        v("CARGO_PKG_VERSION_MINOR"),
        v("CARGO_PKG_VERSION_PATCH"),
        v("CARGO_PKG_VERSION"),
    ));
    let after = config.after_includes.get_or_insert_with(String::new);
    after.push_str(
        "\n\n/* The defaults and limits of the options (the core's, shared by every face). */",
    );
    for (name, value, doc) in defaults::c_defines() {
        let doc = doc.lines().map(str::trim).collect::<Vec<_>>().join(" ");
        let _ = write!(after, "\n/** {doc} */\n#define MQLITE_{name} {value}");
    }
    let bindings = match cbindgen::Builder::new()
        .with_crate(&dir)
        .with_config(config)
        .generate()
    {
        Ok(b) => b,
        Err(e) => {
            // A header that cannot be generated must fail the build, not go stale silently.
            panic!("cbindgen failed: {e}");
        }
    };
    let mut out = Vec::new();
    bindings.write(&mut out);
    let path = dir.join("include").join("mqlite.h");
    if fs::read(&path).ok().as_deref() != Some(&out[..]) {
        fs::create_dir_all(path.parent().expect("include/")).expect("creating include/");
        fs::write(&path, &out).expect("writing include/mqlite.h");
    }
}
