//! The words a report uses for the run it shows: an etcd run has members and revisions,
//! faultline has replicas and exec indices; a simulated run's clock is virtual.
//!
//! Read from run.toml (`target`, `kind`, `[[shards]]`), so a report never calls an etcd
//! member a replica, and a reader of a simulated run knows its seconds are not wall time.

use crate::run_params::RunParams;

/// How the report names the system and its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Words {
    /// `faultline` or `etcd`.
    pub system: &'static str,
    /// `replica` or `member`.
    pub replica: &'static str,
    /// `exec_index` or `revision`: what a position in the log is called.
    pub position: &'static str,
    /// A simulated run (`kind = "sim"`): time is virtual.
    pub simulated: bool,
    /// A sharded bank (`[[shards]]` in run.toml).
    pub sharded: bool,
}

impl Default for Words {
    fn default() -> Self {
        Words {
            system: "faultline",
            replica: "replica",
            position: "exec_index",
            simulated: false,
            sharded: false,
        }
    }
}

impl Words {
    /// The words for the run `params` describes (faultline's when there is no run.toml).
    pub fn of(params: Option<&RunParams>) -> Words {
        let Some(p) = params else {
            return Words::default();
        };
        let top = |k: &str| p.table.get(k).and_then(toml::Value::as_str);
        let nested = |k: &str| {
            p.table
                .get("params")
                .and_then(|t| t.get(k))
                .and_then(toml::Value::as_str)
        };
        let etcd = top("target").or_else(|| nested("target")) == Some("etcd");
        let sharded = p
            .table
            .get("shards")
            .and_then(toml::Value::as_array)
            .is_some_and(|s| !s.is_empty());
        Words {
            system: if etcd { "etcd" } else { "faultline" },
            replica: if etcd { "member" } else { "replica" },
            position: if etcd { "revision" } else { "exec_index" },
            simulated: top("kind") == Some("sim"),
            sharded,
        }
    }

    /// The kind of run, for titles: `etcd run`, `simulated faultline run`, ...
    pub fn run_title(&self) -> String {
        let sharded = if self.sharded { "sharded " } else { "" };
        if self.simulated {
            format!("simulated {sharded}{} run", self.system)
        } else {
            format!("{sharded}{} run", self.system)
        }
    }

    /// A check's own text in this run's words: an etcd run's `exec_index` is a revision
    /// and its replicas are members.
    pub fn localize(&self, text: &str) -> String {
        if self.system != "etcd" {
            return text.to_string();
        }
        text.replace("an exec_index", "a revision")
            .replace("exec_index", "revision")
            .replace("exec index", "revision")
            .replace("replica", "member")
    }

    /// The time axis's heading.
    pub fn time_axis(&self) -> &'static str {
        if self.simulated {
            "virtual time (s)"
        } else {
            "time (s)"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn words(toml: &str) -> Words {
        Words::of(Some(
            &RunParams::parse(toml, Path::new("run.toml")).unwrap(),
        ))
    }

    #[test]
    fn etcd_sim_and_sharded_runs_have_their_own_words() {
        let etcd = words("target = \"etcd\"\nkind = \"campaign\"\n");
        assert_eq!((etcd.replica, etcd.position), ("member", "revision"));
        assert_eq!(etcd.run_title(), "etcd run");
        assert_eq!(
            etcd.localize("replicas fetched; operations told an exec_index"),
            "members fetched; operations told a revision"
        );
        let sim =
            words("kind = \"sim\"\n[[shards]]\nid = 1\naccounts = [\"A\"]\nnodes = [\"n1\"]\n");
        assert!(sim.simulated && sim.sharded);
        assert_eq!(sim.run_title(), "simulated sharded faultline run");
        assert_eq!(sim.time_axis(), "virtual time (s)");
        assert_eq!(Words::of(None).run_title(), "faultline run");
    }
}
