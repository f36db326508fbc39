//! The server's rotating master keys, which encrypt the cookies it hands out.
//!
//! A new key becomes current every rotation interval (24 hours by default); the previous
//! [`KEPT_PREVIOUS`] keys stay to decrypt cookies issued under them, so a client whose
//! cookies are a day or two old still gets an answer (chrony keeps its keys the same way).
//! A key older than `(KEPT_PREVIOUS + 1)` intervals is dropped even when rotations were
//! missed (a server that was down for a week does not revive week-old keys).
//!
//! Time is passed in: nothing here reads the clock, so tests rotate by moving time.
//!
//! The key file, when there is one, is rewritten atomically (temporary file, fsync,
//! rename, mode 0600) after every rotation, so cookies survive a restart:
//!
//! ```text
//! sockit-nts-keys 1
//! <key id, 8 hex digits> <key, 64 hex digits> <created, Unix seconds>   (newest first)
//! ```

use sockit_runtime::fs::{write_atomic, Mode};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::nts::aead::{self, Key, KEY_LEN};

/// How often a new master key becomes current unless configured otherwise.
pub(crate) const DEFAULT_ROTATION: Duration = Duration::from_secs(24 * 3600);

/// How many keys older than the current one are kept for decrypting cookies.
pub(crate) const KEPT_PREVIOUS: usize = 2;

/// The key file's name inside the state directory.
pub(crate) const KEY_FILE: &str = "master-keys";

const MAGIC: &str = "sockit-nts-keys 1";

/// One master key.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey {
    /// The id written in front of every cookie it encrypts.
    pub(crate) id: u32,
    /// The AES-SIV key.
    pub(crate) key: Key,
    /// When it was generated, in Unix seconds.
    pub(crate) created: u64,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &format_args!("{:08x}", self.id))
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// Why the master keys could not be loaded, generated or saved.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the key file failed.
    #[error("NTS key file {path}: {err}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        err: std::io::Error,
    },
    /// The key file exists but is not one this program wrote.
    #[error("NTS key file {path} is damaged ({reason}); move it away to start with new keys (clients then need a new NTS-KE)")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The operating system's random source failed.
    #[error("random source failed: {0}")]
    Random(getrandom::Error),
}

/// The current master key and the previous ones that still decrypt cookies.
#[derive(Debug, Clone)]
pub struct MasterKeys {
    /// Newest (current) first; never empty.
    keys: Vec<MasterKey>,
    /// How long a key stays current.
    rotation: Duration,
    /// Where the keys are saved after each rotation; `None` keeps them in memory only.
    file: Option<PathBuf>,
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |err| KeyError::Io {
        path: path.to_owned(),
        err,
    }
}

impl MasterKeys {
    /// Fresh keys kept in memory only (lost on restart; for tests and throwaway servers).
    ///
    /// # Errors
    /// The random source failed.
    pub fn generate(now: SystemTime) -> Result<Self, KeyError> {
        let mut keys = Self {
            keys: Vec::new(),
            rotation: DEFAULT_ROTATION,
            file: None,
        };
        keys.push_new(unix_secs(now))?;
        Ok(keys)
    }

    /// Loads the keys saved in `dir` (file `KEY_FILE`, `master-keys`), or generates and saves new
    /// ones; creates `dir` (mode 0700) if needed, then rotates if a rotation is due.
    ///
    /// # Errors
    /// The directory or file cannot be read or written, the file is damaged, or the
    /// random source failed.
    pub fn load_or_create(dir: &Path, now: SystemTime) -> Result<Self, KeyError> {
        let file = dir.join(KEY_FILE);
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(&file)(e)),
        };
        let mut keys = match text {
            Some(text) => Self {
                keys: parse(&text).map_err(|reason| KeyError::Corrupt {
                    path: file.clone(),
                    reason,
                })?,
                rotation: DEFAULT_ROTATION,
                file: Some(file),
            },
            None => {
                create_private_dir(dir)?;
                let mut keys = Self::generate(now)?;
                keys.file = Some(file);
                keys.save()?;
                keys
            }
        };
        keys.rotate(now)?;
        Ok(keys)
    }

    /// Sets how long a key stays current (at least one second).
    pub fn with_rotation(mut self, every: Duration) -> Self {
        self.rotation = every.max(Duration::from_secs(1));
        self
    }

    /// How long a key stays current.
    pub fn rotation(&self) -> Duration {
        self.rotation
    }

    /// Whether [`MasterKeys::rotate`] has work at `now`: the current key has served its
    /// interval, the clock went back by more than one (the key's age is unknowable
    /// then), or an older key has reached the end of its life.
    pub fn rotation_due(&self, now: SystemTime) -> bool {
        let now = unix_secs(now);
        let created = self.current().created;
        let every = self.rotation.as_secs();
        now >= created.saturating_add(every)
            || created > now.saturating_add(every)
            || self.keys[1..].iter().any(|k| !self.alive(k, now))
    }

    /// Whether an older key still decrypts at `now` (Unix seconds): for
    /// `KEPT_PREVIOUS + 1` intervals after it was made.
    fn alive(&self, key: &MasterKey, now: u64) -> bool {
        let lifetime = self
            .rotation
            .as_secs()
            .saturating_mul(KEPT_PREVIOUS as u64 + 1);
        key.created <= now && key.created.saturating_add(lifetime) > now
    }

    /// Makes a new key current if its time has come, drops keys past their life (or
    /// beyond the `KEPT_PREVIOUS` (2) newest), and saves the result. Returns whether the
    /// keys changed.
    ///
    /// # Errors
    /// The random source failed, or saving failed (the new keys are in use all the same:
    /// only a restart would lose them).
    pub fn rotate(&mut self, now: SystemTime) -> Result<bool, KeyError> {
        if !self.rotation_due(now) {
            return Ok(false);
        }
        let now_secs = unix_secs(now);
        let created = self.current().created;
        let every = self.rotation.as_secs();
        if now_secs >= created.saturating_add(every) || created > now_secs.saturating_add(every) {
            self.push_new(now_secs)?;
        }
        let current = self.keys[0].clone();
        let mut older: Vec<MasterKey> = self.keys[1..]
            .iter()
            .filter(|k| self.alive(k, now_secs))
            .cloned()
            .collect();
        older.truncate(KEPT_PREVIOUS);
        self.keys = std::iter::once(current).chain(older).collect();
        self.save()?;
        Ok(true)
    }

    /// The key new cookies are encrypted with.
    pub fn current(&self) -> &MasterKey {
        &self.keys[0]
    }

    /// The key with `id`, if it is still kept.
    pub fn get(&self, id: u32) -> Option<&MasterKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// The ids of the kept keys, current first.
    pub fn ids(&self) -> Vec<u32> {
        self.keys.iter().map(|k| k.id).collect()
    }

    /// The key file, if the keys are saved.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    fn push_new(&mut self, created: u64) -> Result<(), KeyError> {
        let mut key = [0u8; KEY_LEN];
        aead::random(&mut key).map_err(KeyError::Random)?;
        let mut id = [0u8; 4];
        // Ids only tell the kept keys apart; draw again on the rare collision.
        let id = loop {
            aead::random(&mut id).map_err(KeyError::Random)?;
            let candidate = u32::from_be_bytes(id);
            if self.get(candidate).is_none() {
                break candidate;
            }
        };
        self.keys.insert(0, MasterKey { id, key, created });
        Ok(())
    }

    fn save(&self) -> Result<(), KeyError> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let mut text = format!("{MAGIC}\n");
        for k in &self.keys {
            text.push_str(&format!(
                "{:08x} {} {}\n",
                k.id,
                hex_encode(&k.key),
                k.created
            ));
        }
        write_atomic(file, text.as_bytes(), Mode::Private).map_err(io_err(file))
    }
}

fn parse(text: &str) -> Result<Vec<MasterKey>, String> {
    let mut lines = text.lines();
    if lines.next() != Some(MAGIC) {
        return Err(format!("first line is not `{MAGIC}`"));
    }
    let mut keys = Vec::new();
    for (n, line) in lines.enumerate().take(64) {
        let bad = |what: &str| format!("line {}: {what}", n + 2);
        let mut parts = line.split_ascii_whitespace();
        let (Some(id), Some(key), Some(created), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected `id key created`"));
        };
        let id = u32::from_str_radix(id, 16).map_err(|_| bad("bad key id"))?;
        let key: Key = hex_decode(key)
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| bad("bad key"))?;
        let created = created.parse().map_err(|_| bad("bad creation time"))?;
        keys.push(MasterKey { id, key, created });
    }
    if keys.is_empty() {
        return Err("no key".into());
    }
    keys.truncate(KEPT_PREVIOUS + 1);
    Ok(keys)
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

fn create_private_dir(dir: &Path) -> Result<(), KeyError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(io_err(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hours: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + hours * 3600)
    }

    #[test]
    fn rotation_keeps_two_previous() {
        let mut keys = MasterKeys::generate(at(0)).unwrap();
        let first = keys.current().id;
        assert!(!keys.rotate(at(23)).unwrap());
        assert!(keys.rotate(at(24)).unwrap());
        assert!(keys.rotate(at(48)).unwrap());
        assert_eq!(keys.ids().len(), 3);
        assert!(keys.get(first).is_some());
        assert!(keys.rotate(at(72)).unwrap());
        assert_eq!(keys.ids().len(), 3);
        assert!(keys.get(first).is_none());
    }

    #[test]
    fn missed_rotations_drop_old_keys() {
        let mut keys = MasterKeys::generate(at(0)).unwrap();
        let first = keys.current().id;
        assert!(keys.rotate(at(24 * 7)).unwrap());
        assert_eq!(keys.ids().len(), 1);
        assert!(keys.get(first).is_none());
    }

    #[test]
    fn old_key_expires_without_a_rotation() {
        let mut keys = MasterKeys::generate(at(0)).unwrap();
        let first = keys.current().id;
        keys.rotate(at(25)).unwrap();
        keys.rotate(at(49)).unwrap();
        assert!(!keys.rotation_due(at(71)));
        assert!(keys.rotation_due(at(72)), "the first key's life ends");
        assert!(keys.rotate(at(72)).unwrap());
        assert_eq!(keys.ids().len(), 2);
        assert!(keys.get(first).is_none());
    }

    #[test]
    fn clock_stepped_back_rotates() {
        let mut keys = MasterKeys::generate(at(100)).unwrap();
        assert!(keys.rotation_due(at(50)));
        assert!(keys.rotate(at(50)).unwrap());
        assert!(!keys.rotation_due(at(51)));
    }

    #[test]
    fn saved_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state/nts-keys");
        let a = MasterKeys::load_or_create(&state, at(0)).unwrap();
        let b = MasterKeys::load_or_create(&state, at(1)).unwrap();
        assert_eq!(a.keys, b.keys);
        let mut c = MasterKeys::load_or_create(&state, at(25)).unwrap();
        assert_eq!(c.ids().len(), 2);
        assert_eq!(c.ids()[1], a.current().id);
        assert!(!c.rotate(at(26)).unwrap());
        let d = MasterKeys::load_or_create(&state, at(26)).unwrap();
        assert_eq!(c.keys, d.keys);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&state.join(KEY_FILE)), 0o600);
            assert_eq!(mode(&state), 0o700);
        }
    }

    #[test]
    fn damaged_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEY_FILE), "not keys\n").unwrap();
        let err = MasterKeys::load_or_create(dir.path(), at(0)).unwrap_err();
        assert!(matches!(err, KeyError::Corrupt { .. }), "{err}");
        std::fs::write(
            dir.path().join(KEY_FILE),
            format!("{MAGIC}\n0000000g aa 1\n"),
        )
        .unwrap();
        assert!(matches!(
            MasterKeys::load_or_create(dir.path(), at(0)),
            Err(KeyError::Corrupt { .. })
        ));
    }

    #[test]
    fn debug_hides_key() {
        let keys = MasterKeys::generate(at(0)).unwrap();
        let text = format!("{keys:?}");
        assert!(!text.contains(&hex_encode(&keys.current().key)));
    }
}
