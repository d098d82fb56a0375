//! `--slice K/N`: task K of N runs its share of a sweep's seeds (or a campaign's runs), with
//! no coordination between tasks.
//!
//! The range is cut into N contiguous blocks whose sizes differ by at most one, so the N
//! slices cover every seed once and a task's share is a plain range (easy to read in its
//! summary). `--slice auto` takes K and N from the engine that started the task: a Slurm job
//! array (`SLURM_ARRAY_TASK_ID`, `SLURM_ARRAY_TASK_MIN`, `SLURM_ARRAY_TASK_STEP`,
//! `SLURM_ARRAY_TASK_COUNT`) or a Kubernetes Indexed Job (`JOB_COMPLETION_INDEX`, and
//! `JOB_COMPLETIONS`, which the Job's spec sets to its `completions`).

use std::fmt;

/// What `--slice` says: a fixed slice, or "ask the engine".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SliceArg {
    Fixed(Slice),
    Auto,
}

/// Task `index` (1-based) of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Slice {
    pub index: u64,
    pub count: u64,
}

/// A slice that cannot be used: a usage error (exit 64).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SliceError {
    #[error("--slice {0:?}: expected K/N with 1 <= K <= N (e.g. 3/10), or auto")]
    Syntax(String),
    #[error(
        "--slice auto: no engine told this task its index: neither SLURM_ARRAY_TASK_ID \
         (a Slurm job array) nor JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) is set"
    )]
    NoEngine,
    #[error("--slice auto: {engine} sets {present} but {missing} is not set{hint}")]
    Missing {
        engine: &'static str,
        present: &'static str,
        missing: &'static str,
        hint: &'static str,
    },
    #[error("--slice auto: {name}={value:?} is not a whole number")]
    NotANumber { name: &'static str, value: String },
    #[error("--slice auto: {detail}, which is not a task of 1..={count}")]
    OutOfRange { detail: String, count: u64 },
}

impl fmt::Display for Slice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Slice {
    /// The whole range as one task.
    pub const WHOLE: Slice = Slice { index: 1, count: 1 };

    /// The task's results directory name under `--out`: `slice-3-of-10`.
    pub fn dir_name(&self) -> String {
        format!("slice-{}-of-{}", self.index, self.count)
    }

    /// This slice's share of `len` items starting at `first`: `[start, end)`.
    pub fn share(&self, first: u64, len: u64) -> std::ops::Range<u64> {
        let cut = |k: u64| (u128::from(len) * u128::from(k) / u128::from(self.count)) as u64;
        first.wrapping_add(cut(self.index - 1))..first.wrapping_add(cut(self.index))
    }
}

/// Parses `K/N` or `auto` (clap's value parser: a bad value is a usage error).
pub fn parse_slice(text: &str) -> Result<SliceArg, String> {
    if text == "auto" {
        return Ok(SliceArg::Auto);
    }
    let syntax = || SliceError::Syntax(text.to_string()).to_string();
    let (k, n) = text.split_once('/').ok_or_else(syntax)?;
    let index: u64 = k.trim().parse().map_err(|_| syntax())?;
    let count: u64 = n.trim().parse().map_err(|_| syntax())?;
    if index == 0 || index > count {
        return Err(syntax());
    }
    Ok(SliceArg::Fixed(Slice { index, count }))
}

impl SliceArg {
    /// The slice, asking the environment for `auto`.
    pub fn resolve(&self) -> Result<Slice, SliceError> {
        match self {
            SliceArg::Fixed(slice) => Ok(*slice),
            SliceArg::Auto => from_env(&|name| std::env::var(name).ok()),
        }
    }
}

/// `--slice auto` with `var` as the environment.
pub fn from_env(var: &dyn Fn(&str) -> Option<String>) -> Result<Slice, SliceError> {
    let number = |name: &'static str| -> Result<Option<u64>, SliceError> {
        match var(name) {
            None => Ok(None),
            Some(value) => value
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| SliceError::NotANumber { name, value }),
        }
    };
    if let Some(id) = number("SLURM_ARRAY_TASK_ID")? {
        let count = number("SLURM_ARRAY_TASK_COUNT")?.ok_or(SliceError::Missing {
            engine: "Slurm",
            present: "SLURM_ARRAY_TASK_ID",
            missing: "SLURM_ARRAY_TASK_COUNT",
            hint: " (Slurm sets both for a job array; is this an array job?)",
        })?;
        // An array need not start at 0 or 1 (`--array=5-8`), nor step by 1 (`--array=0-9:3`).
        let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let step = number("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
        let detail = format!(
            "SLURM_ARRAY_TASK_ID={id} with SLURM_ARRAY_TASK_MIN={min}, SLURM_ARRAY_TASK_STEP={step} \
             and SLURM_ARRAY_TASK_COUNT={count} is task {}",
            if id >= min { ((id - min) / step + 1).to_string() } else { "below 1".into() }
        );
        return checked(id.checked_sub(min).map(|d| d / step + 1), count, detail);
    }
    if let Some(index) = number("JOB_COMPLETION_INDEX")? {
        let count = number("JOB_COMPLETIONS")?.ok_or(SliceError::Missing {
            engine: "Kubernetes",
            present: "JOB_COMPLETION_INDEX",
            missing: "JOB_COMPLETIONS",
            hint: " (set it in the Job's env to the Job's spec.completions)",
        })?;
        let detail = format!(
            "JOB_COMPLETION_INDEX={index} (0-based) is task {}",
            index + 1
        );
        return checked(Some(index + 1), count, detail);
    }
    Err(SliceError::NoEngine)
}

fn checked(index: Option<u64>, count: u64, detail: String) -> Result<Slice, SliceError> {
    match index {
        Some(index) if index >= 1 && index <= count => Ok(Slice { index, count }),
        _ => Err(SliceError::OutOfRange { detail, count }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn slices_cover_the_range_once_without_overlap() {
        for (first, len) in [(1u64, 100u64), (7, 3), (0, 0), (1, 1001)] {
            for count in 1..=12u64 {
                let mut seen = Vec::new();
                for index in 1..=count {
                    let share = Slice { index, count }.share(first, len);
                    assert!(share.end - share.start <= len / count + 1);
                    seen.extend(share);
                }
                let whole: Vec<u64> = (first..first + len).collect();
                assert_eq!(seen, whole, "{count} slices of {first}+{len}");
            }
        }
    }

    #[test]
    fn bad_slices_are_refused_with_the_reason() {
        for bad in ["0/4", "5/4", "4", "a/b", "1/0", ""] {
            assert!(parse_slice(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_slice("2/4"),
            Ok(SliceArg::Fixed(Slice { index: 2, count: 4 }))
        );
        assert_eq!(parse_slice("auto"), Ok(SliceArg::Auto));
    }

    #[test]
    fn auto_reads_slurm_minding_the_array_minimum_and_step() {
        let slice = from_env(&env(&[
            ("SLURM_ARRAY_TASK_ID", "7"),
            ("SLURM_ARRAY_TASK_MIN", "5"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]));
        assert_eq!(slice, Ok(Slice { index: 3, count: 4 }));
        let stepped = from_env(&env(&[
            ("SLURM_ARRAY_TASK_ID", "6"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_STEP", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]));
        assert_eq!(stepped, Ok(Slice { index: 3, count: 4 }));
        let e = from_env(&env(&[("SLURM_ARRAY_TASK_ID", "1")])).unwrap_err();
        assert!(e.to_string().contains("SLURM_ARRAY_TASK_COUNT"), "{e}");
        let e = from_env(&env(&[
            ("SLURM_ARRAY_TASK_ID", "9"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]))
        .unwrap_err();
        assert!(matches!(e, SliceError::OutOfRange { .. }), "{e}");
    }

    #[test]
    fn auto_reads_a_kubernetes_indexed_job() {
        let slice = from_env(&env(&[
            ("JOB_COMPLETION_INDEX", "0"),
            ("JOB_COMPLETIONS", "10"),
        ]));
        assert_eq!(
            slice,
            Ok(Slice {
                index: 1,
                count: 10
            })
        );
        let e = from_env(&env(&[("JOB_COMPLETION_INDEX", "0")])).unwrap_err();
        assert!(e.to_string().contains("JOB_COMPLETIONS"), "{e}");
        let e = from_env(&env(&[])).unwrap_err();
        assert_eq!(e, SliceError::NoEngine);
        assert!(e.to_string().contains("SLURM_ARRAY_TASK_ID"));
        assert!(e.to_string().contains("JOB_COMPLETION_INDEX"));
    }
}
