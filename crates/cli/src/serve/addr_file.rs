//! The `--addr-file` JSON: `{"greet":{"tcp":"127.0.0.1:6000"},"echo":{"tcp":..,"udp":..}}`,
//! written atomically (staging file, fsync, rename) once every service listens.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use crate::serve::start::BoundAddr;

/// The addresses as a table: service → protocol → address.
pub fn to_table(addrs: &[BoundAddr]) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut map: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for a in addrs {
        map.entry(a.service.name().to_owned())
            .or_default()
            .insert(a.proto.as_str().to_owned(), a.addr.to_string());
    }
    map
}

/// The addresses as the addr-file JSON object.
pub fn to_json(addrs: &[BoundAddr]) -> serde_json::Value {
    serde_json::json!(to_table(addrs))
}

/// Writes the addr file atomically.
pub fn write(path: &Path, addrs: &[BoundAddr]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    writeln!(tmp, "{}", to_json(addrs))?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
