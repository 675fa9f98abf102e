//! Reading the bundled CRAFT split of MATH (`data/math-craft/` at the workspace root);
//! shared by the tests and the benchmark.

use std::path::{Path, PathBuf};

/// The data folder, or `None` (with the reason printed) when it is absent.
pub fn data_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/math-craft");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("skipped: no data at {}", dir.display());
        None
    }
}

/// `(file:line, answer)` of every record in the `.jsonl` files of `dir`, in file order.
pub fn answers(dir: &Path) -> anyhow::Result<Vec<(String, serde_json::Value)>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|path| path.extension().is_some_and(|ext| ext == "jsonl"));
    files.sort();
    let mut out = Vec::new();
    for path in files {
        for (index, line) in std::fs::read_to_string(&path)?.lines().enumerate() {
            let mut record: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), index + 1))?;
            out.push((
                format!("{}:{}", path.display(), index + 1),
                record["answer"].take(),
            ));
        }
    }
    Ok(out)
}
