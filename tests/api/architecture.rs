//! The hexagon's rule: domain, ports and use cases import no framework, JWT library, database
//! driver or bcrypt.

use std::path::Path;

const FORBIDDEN: &[&str] = &[
    "poem",
    "josekit",
    "bcrypt",
    "sqlx",
    "hmac",
    "figment",
    "crate::adapters",
    "crate::config",
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn inner_layers_import_no_outer_crate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    for layer in ["domain", "ports", "app"] {
        rust_files(&root.join(layer), &mut files);
    }
    assert!(files.len() >= 10, "found the layer sources: {files:?}");
    let mut offences = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        // Test modules may use an adapter (e.g. the manual clock); production code may not.
        let production = text.split("#[cfg(test)]").next().unwrap_or("");
        for line in production.lines() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for name in FORBIDDEN {
                let uses = code.contains(&format!("use {name}"))
                    || code.contains(&format!("{name}::"))
                    || code.contains(&format!("use {name};"));
                if uses {
                    offences.push(format!("{}: {}", file.display(), line.trim()));
                }
            }
        }
    }
    assert!(
        offences.is_empty(),
        "forbidden imports:\n{}",
        offences.join("\n")
    );
}
