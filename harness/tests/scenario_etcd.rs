//! Scenario files on etcd (`harness scenario --target etcd`): a short file with a leader
//! failure and a set with a member down runs to a valid verdict and the balances it implies,
//! and the interactive prompt answers PrintDB and PrintLog from etcd's own state.
//!
//! Both need the `etcd` binary (`apt-get install etcd-server etcd-client`). Without it they
//! skip loudly, unless FAULTLINE_REQUIRE_ETCD is set (CI sets it), when they fail.

mod common;

use harness::params::RunParams;
use harness::params::TargetKind;
use harness::run::shared::INITIAL_BALANCE;
use harness::scenario::run::{bank_accounts, expected_balances, run_scenario, ScenarioOptions};
use harness::scenario::Scenario;
use std::time::Duration;

/// Four sets on three members: set 1 fails the leader, set 2 brings it back, set 3 keeps n3
/// down (client 5, F's owner, lives on n3 and must get through another member), set 4 brings
/// everyone back. No order of these transfers overdraws an account.
const FILE: &str = "Set Number,Transactions,Live Nodes\n\
    1,\"(A, B, 3)\",\"[n1, n2, n3]\"\n\
    ,\"(B, C, 1)\",\n\
    ,LF,\n\
    ,\"(C, D, 2)\",\n\
    2,\"(D, E, 1)\",\"[n1, n2, n3]\"\n\
    3,\"(F, G, 2)\",\"[n1, n2]\"\n\
    ,\"(A, J, 1)\",\n\
    4,\"(G, A, 1)\",\"[n1, n2, n3]\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_with_a_leader_failure_and_a_member_down_runs_on_etcd() {
    if !common::etcd_present() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("etcd.csv");
    std::fs::write(&file, FILE).unwrap();
    let scenario = Scenario::load(&file).unwrap();
    let expected = expected_balances(&scenario, &bank_accounts(), INITIAL_BALANCE)
        .expect("no order of these transfers overdraws");
    let params = RunParams {
        target: TargetKind::Etcd,
        nodes: 3,
        op_timeout_ms: 5_000,
        ..RunParams::default()
    };
    let opts = ScenarioOptions {
        run: common::options(out.path(), 0, params),
        file,
        interactive: false,
        script: None,
        stall: Duration::from_millis(1_500),
        set_timeout: Duration::from_secs(20),
    };
    let summary = run_scenario(&opts).await.unwrap();
    let dir = &summary.dir;
    let results = std::fs::read_to_string(dir.join("results.json")).unwrap_or_default();
    assert_eq!(summary.exit_code, 0, "{summary:#?}\n{results}");
    assert_eq!(summary.info, 0, "every transfer got an answer: {summary:?}");
    assert!(
        summary.ok >= scenario.transfers().count() as u64,
        "{summary:?}"
    );
    let run_toml = std::fs::read_to_string(dir.join("run.toml")).unwrap();
    assert!(
        run_toml.contains("target = \"etcd\"") && run_toml.contains("kind = \"scenario\""),
        "{run_toml}"
    );
    let history = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    let sets = history
        .lines()
        .filter(|l| l.contains("\"f\":\"set\""))
        .count();
    assert_eq!(sets, 4, "every set ran: {history}");
    assert!(
        history.contains("\"target\":\"leader\""),
        "LF killed the leader: {history}"
    );
    let total = INITIAL_BALANCE * bank_accounts().len() as i64;
    let final_state = checker::final_state::FinalState::load(dir.join("final.json")).unwrap();
    assert_eq!(final_state.nodes.len(), 3);
    for (node, state) in &final_state.nodes {
        let balances = state.balances.as_ref().unwrap();
        assert_eq!(
            balances.values().sum::<i64>(),
            total,
            "{node}: {balances:?}"
        );
        assert_eq!(balances, &expected, "{node}'s final balances");
    }
}

#[test]
fn the_prompt_reads_etcd_members_balances_and_history() {
    if !common::etcd_present() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let commands = "printdb\nnext\nprintlog\nprintstatus\nprintview\nstatus\nkill n3\n\
                    printdb n3\nprintlog\ncut n1 n2\nheal\nquit\n";
    let output =
        common::prompt_session(&out.path().join("reports"), &["--target", "etcd"], commands);
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let all = common::output_text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    for expected in [
        "member  revision",
        "each member read on its own",
        "2 writes after the initial balances",
        "transfer A→B 3",
        "transfer B→C 1",
        "the same writes as",
        "the latest any member holds",
        "only the current term and leader",
        "killed n3",
        "n3: down",
        "cut n1 <-> n2",
        "healed every link",
        "quit at the prompt: 1 set not run",
        "final balances per member:",
    ] {
        assert!(stdout.contains(expected), "{expected:?} missing: {all}");
    }
    // Before set 1, a member that has applied the initial balances (revision 2: etcd's first
    // write) holds 10 in every account; one still catching up shows its own, earlier state,
    // which is the point of a serializable read on each member.
    let first_db: Vec<Vec<&str>> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("member"))
        .skip(1)
        .take(3)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(first_db.len(), 3, "{all}");
    let applied: Vec<&Vec<&str>> = first_db.iter().filter(|row| row[1] == "2").collect();
    assert!(
        !applied.is_empty(),
        "some member applied the initial write: {all}"
    );
    for row in applied {
        assert_eq!(row.len(), 13, "member, revision, A..J, total: {all}");
        assert!(row[2..12].iter().all(|b| *b == "10"), "{row:?}: {all}");
        assert_eq!(row[12], "100", "{all}");
    }
    // Set 1 ran (A→B 3, B→C 1), set 2 did not: every member ends with A 7, B 12, C 11.
    common::assert_only_set_one_ran(&stdout, "final balances per member:");
}
