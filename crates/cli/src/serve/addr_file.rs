//! The `--addr-file` JSON: `{"greet":{"tcp":"127.0.0.1:6000"},"echo":{"tcp":..,"udp":..}}`,
//! written atomically (staging file, fsync, rename) once every service listens.

use std::collections::BTreeMap;
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
    let text = format!("{}\n", to_json(addrs));
    sockit_runtime::fs::write_atomic(path, text.as_bytes(), sockit_runtime::fs::Mode::Public)
}
