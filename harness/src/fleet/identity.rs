//! A task's build identity: the commit the harness was built from and the SHA-256 of every
//! binary the task used. Two tasks merge only when their identities match, so a night whose
//! image changed half-way is not reported as one sweep.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildIdentity {
    /// `git rev-parse HEAD` at build time (or `FAULTLINE_COMMIT`), else "unknown".
    pub commit: String,
    /// Binary name (`harness`, `replica`...) to the hex SHA-256 of its file.
    pub binaries: BTreeMap<String, String>,
}

impl BuildIdentity {
    /// The running harness, plus `others` (name, path).
    pub fn of(others: &[(&str, &Path)]) -> std::io::Result<BuildIdentity> {
        let mut binaries = BTreeMap::new();
        let me = std::env::current_exe()?;
        binaries.insert("harness".to_string(), sha256_file(&me)?);
        for (name, path) in others {
            let hash = sha256_file(path)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            binaries.insert((*name).to_string(), hash);
        }
        Ok(BuildIdentity {
            commit: env!("FAULTLINE_COMMIT").to_string(),
            binaries,
        })
    }

    /// How `other` differs from `self`, in words; `None` when they are the same build.
    pub fn difference(&self, other: &BuildIdentity) -> Option<String> {
        if self.commit != other.commit {
            return Some(format!("commit {} vs {}", self.commit, other.commit));
        }
        let names: std::collections::BTreeSet<&String> =
            self.binaries.keys().chain(other.binaries.keys()).collect();
        for name in names {
            let (a, b) = (self.binaries.get(name), other.binaries.get(name));
            if a != b {
                let short = |h: Option<&String>| {
                    h.map_or("absent".to_string(), |h| h.chars().take(12).collect())
                };
                return Some(format!("binary {name} sha256 {} vs {}", short(a), short(b)));
            }
        }
        None
    }
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}
