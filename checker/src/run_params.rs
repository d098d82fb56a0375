//! `run.toml`: the run's parameters, written by the harness beside the history.
//!
//! The checker needs only `accounts` and `initial_balance` (the total every `read_all`
//! must sum to, and the state the replay starts from), and `liveness_bound_ms` when the
//! liveness check applies; everything else is kept as is for the report and otherwise
//! ignored, so the harness may add parameters freely. Every key: docs/run-toml.md.

use std::path::{Path, PathBuf};

/// The parts of run.toml the checks use, and the whole table for the report.
#[derive(Debug, Clone, Default)]
pub struct RunParams {
    pub accounts: Option<Vec<String>>,
    pub initial_balance: Option<i64>,
    /// How long, after the last `stable` nemesis event, an operation may wait for a
    /// definite answer (see `checks::liveness`). Kept raw: a value that is not a
    /// non-negative integer makes that check not applicable, never a failure.
    pub liveness_bound_ms: Option<toml::Value>,
    /// Every parameter, as written.
    pub table: toml::Table,
}

/// run.toml exists but is not usable.
#[derive(Debug, thiserror::Error)]
#[error("{}: {}{message}", path.display(), field.as_ref().map(|f| format!("field `{f}`: ")).unwrap_or_default())]
pub struct RunParamsError {
    pub path: PathBuf,
    pub field: Option<String>,
    pub message: String,
}

impl RunParams {
    /// Reads `path`; `Ok(None)` when it does not exist.
    pub fn load(path: &Path) -> Result<Option<RunParams>, RunParamsError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(err(path, None, e.to_string())),
        };
        RunParams::parse(&text, path).map(Some)
    }

    /// Parses run.toml text; `path` is for messages.
    pub fn parse(text: &str, path: &Path) -> Result<RunParams, RunParamsError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| err(path, None, e.to_string().trim_end().to_string()))?;
        let accounts = match table.get("accounts") {
            None => None,
            Some(v) => Some(string_list(v).ok_or_else(|| {
                err(
                    path,
                    Some("accounts"),
                    "expected an array of account names".into(),
                )
            })?),
        };
        let initial_balance =
            match table.get("initial_balance") {
                None => None,
                Some(v) => Some(v.as_integer().ok_or_else(|| {
                    err(path, Some("initial_balance"), "expected an integer".into())
                })?),
            };
        Ok(RunParams {
            accounts,
            initial_balance,
            liveness_bound_ms: table.get("liveness_bound_ms").cloned(),
            table,
        })
    }

    /// What every `read_all` must sum to: accounts × initial balance. In i128, so
    /// even `initial_balance = i64::MAX` over many accounts cannot wrap.
    pub fn total(&self) -> Option<i128> {
        let n = self.accounts.as_ref()?.len() as i128;
        i128::from(self.initial_balance?).checked_mul(n)
    }

    /// Parameters flattened to `key = value` pairs (nested tables as `a.b`).
    pub fn flattened(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        flatten("", &self.table, &mut out);
        out
    }
}

fn err(path: &Path, field: Option<&str>, message: String) -> RunParamsError {
    RunParamsError {
        path: path.to_path_buf(),
        field: field.map(str::to_string),
        message,
    }
}

fn string_list(v: &toml::Value) -> Option<Vec<String>> {
    v.as_array()?
        .iter()
        .map(|x| x.as_str().map(str::to_string))
        .collect()
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<(String, String)>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => flatten(&key, t, out),
            toml::Value::String(s) => out.push((key, s.clone())),
            other => out.push((key, other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_accounts_and_ignores_the_rest() {
        let p = RunParams::parse(
            "seed = 7\naccounts = [\"A\", \"B\"]\ninitial_balance = 10\n[nemesis]\nkinds = [\"kill\"]\n",
            Path::new("run.toml"),
        )
        .unwrap();
        assert_eq!(p.total(), Some(20));
        assert!(p.flattened().iter().any(|(k, _)| k == "nemesis.kinds"));
        let p = RunParams::parse(
            &format!(
                "accounts = [\"A\", \"B\"]\ninitial_balance = {}\n",
                i64::MAX
            ),
            Path::new("run.toml"),
        )
        .unwrap();
        assert_eq!(p.total(), Some(2 * i128::from(i64::MAX)));
    }

    #[test]
    fn wrong_type_names_the_field() {
        let e = RunParams::parse("accounts = 3\n", Path::new("run.toml")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "run.toml: field `accounts`: expected an array of account names"
        );
    }
}
