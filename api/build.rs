//! Embeds the web app (`web/` at the workspace root) in the crate: a table
//! of its files and one version string, a hash of every path and byte, that
//! names the asset URLs (`/app/{version}/…`) so browsers may cache them for
//! good. `src/webapp.rs` serves them.

use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let web = manifest.join("../web");
    // A directory here is scanned by cargo for any change below it.
    println!("cargo:rerun-if-changed={}", web.display());
    let mut files = Vec::new();
    collect(&web, &web, &mut files);
    files.sort();
    let mut hash = Sha256::new();
    let mut table = String::new();
    for (name, path) in &files {
        let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        hash.update(name.as_bytes());
        hash.update([0]);
        hash.update(&bytes);
        let path = path.canonicalize().expect("the file was just read");
        writeln!(
            table,
            "    ({name:?}, include_bytes!({:?})),",
            path.display().to_string()
        )
        .expect("writing to a String");
    }
    let version: String = hash.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let out = PathBuf::from(env::var("OUT_DIR").expect("set by cargo")).join("webapp_files.rs");
    let code = format!(
        "/// A hash of every file of the web app.\npub const VERSION: &str = {version:?};\n\
         /// Every file of the web app: its path below `web/`, and its bytes.\n\
         pub static FILES: &[(&str, &[u8])] = &[\n{table}];\n"
    );
    fs::write(out, code).expect("OUT_DIR is writable");
}

/// Every file below `dir`, as (path below `root` with `/`, full path).
fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a readable directory entry").path();
        // Editors' and systems' hidden files are no part of the app.
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let name = path.strip_prefix(root).expect("below the root");
            let name = name
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>();
            files.push((name.join("/"), path));
        }
    }
}
