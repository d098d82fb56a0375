//! The report is written for a valid and an invalid run; its charts are real PNGs.

use checker::gen::{self, GenOptions, Plant};
use checker::report::{self, charts};
use checker::{check_run, Validity};
use std::path::Path;

fn png_dimensions(path: &Path) -> (u32, u32) {
    let img = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (img.width(), img.height())
}

fn report_for(plant: Option<Plant>) -> (tempfile::TempDir, checker::Results, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut run = gen::generate(&GenOptions {
        events: 3_000,
        ..GenOptions::default()
    });
    if let Some(p) = plant {
        run.plant(p).unwrap();
    }
    run.write(dir.path()).unwrap();
    let results = check_run(dir.path()).unwrap();
    let written = report::write_report(dir.path(), &results).unwrap();
    assert_eq!(written.charts.len(), 3, "every chart drawn");
    for (file, _, _) in report::CHARTS {
        assert_eq!(
            png_dimensions(&dir.path().join(file)),
            charts::SIZE,
            "{file}"
        );
    }
    let html = std::fs::read_to_string(&written.html).unwrap();
    (dir, results, html)
}

#[test]
fn valid_run_report() {
    let (dir, results, html) = report_for(None);
    assert_eq!(results.valid, Validity::Valid);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("class=\"verdict valid\">VALID<"));
    assert_eq!(
        html.matches("src=\"data:image/png;base64,").count(),
        3,
        "charts inlined"
    );
    assert!(html.contains("Fault timeline") && html.contains("class=\"swatch\""));
    assert!(html.contains("initial_balance"), "run parameters shown");
    // results.json is written beside it and reads back.
    let back = checker::Results::read_json(&dir.path().join("results.json")).unwrap();
    assert_eq!(back, results);
}

#[test]
fn invalid_run_report_shows_the_anomaly_in_context() {
    let (dir, results, html) = report_for(Some(Plant::WrongRead));
    assert_eq!(results.valid, Validity::Invalid);
    assert!(html.contains("class=\"verdict invalid\">INVALID<"));
    let a = &results.check("replay").unwrap().anomalies[0];
    assert!(html.contains("wrong-result"));
    // The cited completion is highlighted in the history excerpt.
    let cited = a.indices.last().unwrap();
    assert!(
        html.contains(&format!("<tr class=\"cited\"><td>{cited}</td>")),
        "excerpt row for {cited}"
    );
    // The cause in one line, under the verdict and before the checks.
    let cause = format!(
        "id=\"cause\">{}<",
        checker::report::html::esc(&results.cause_line())
    );
    assert!(results.cause_line().starts_with("invalid: replay ("));
    let at = html.find(&cause).expect("the one-line cause");
    assert!(at < html.find("<h2>Checks</h2>").unwrap());
    // The anomaly links to its operation's box on the timeline, which is flagged there.
    let link = html
        .find("class=\"tl-link\" href=\"")
        .expect("a link to the timeline");
    let rest = &html[link + "class=\"tl-link\" href=\"".len()..];
    let (file, anchor) = rest[..rest.find('"').unwrap()].split_once('#').unwrap();
    let page = std::fs::read_to_string(dir.path().join(file)).unwrap();
    let boxed = page
        .find(&format!("id=\"{anchor}\" class=\"op "))
        .expect("the box");
    assert!(
        page[boxed..boxed + 60].contains("flagged"),
        "{}",
        &page[boxed..boxed + 60]
    );
}

#[test]
fn a_check_that_did_not_apply_is_not_applicable_not_valid() {
    let (_dir, results, html) = report_for(None);
    let liveness = results.check("liveness").unwrap();
    assert!(liveness.not_applicable.is_some(), "{liveness:?}");
    assert!(html.contains("<td>liveness</td><td><span class=\"tag na\">NOT APPLICABLE</span>"));
    assert!(results.summary().contains("liveness      n/a"));
    assert!(results.cause_line().contains("not applicable: liveness"));
}

#[test]
fn downsampling_keeps_extremes_and_bounds_points() {
    use checker::report::scan::LatencyPoint;
    let points: Vec<LatencyPoint> = (0..100_000u64)
        .map(|i| LatencyPoint {
            start_ns: i * 1_000,
            latency_ns: 1_000 + (i * 7919) % 5_000,
            outcome: 0,
            f: 0,
            flagged: false,
        })
        .chain(std::iter::once(LatencyPoint {
            start_ns: 50_000_000,
            latency_ns: 9_999_999,
            outcome: 0,
            f: 0,
            flagged: false,
        }))
        .collect();
    let kept = charts::downsample(&points, 1_000, 100_000_000);
    assert!(kept.len() <= 1_000);
    assert!(
        kept.iter().any(|p| p.latency_ns == 9_999_999),
        "the outlier survives"
    );
}

/// A generated run in a fresh directory, written but not yet checked.
fn written_run() -> (tempfile::TempDir, gen::GenRun) {
    let dir = tempfile::tempdir().unwrap();
    let run = gen::generate(&GenOptions {
        events: 3_000,
        ..GenOptions::default()
    });
    run.write(dir.path()).unwrap();
    (dir, run)
}

#[test]
fn report_opens_with_the_commands_that_reproduce_it_and_links_the_timeline() {
    let (dir, results, html) = report_for(None);
    let run = results.run_dir.clone();
    assert!(html.contains(&format!("harness replay {run}")), "{run}");
    assert!(html.contains(&format!("checker check {run}")));
    let repro = html.find("harness replay").unwrap();
    assert!(
        repro < html.find("<h2>Checks</h2>").unwrap(),
        "commands come first"
    );
    assert!(html.contains("href=\"timeline.html\""));
    let timeline = std::fs::read_to_string(dir.path().join("timeline.html")).unwrap();
    assert!(timeline.contains(" class=\"op ok\""));
    assert!(timeline.contains("href=\"report.html\""));
}

#[test]
fn final_state_shows_balances_per_replica_and_folds_journal_stretches() {
    let (dir, run) = written_run();
    // Split n1's log the way the harness's journal does: an earlier stretch saved apart.
    let mut fin = run.final_state();
    let n1 = fin.nodes.get_mut("n1").unwrap();
    let early: Vec<_> = n1.executed.drain(..10).collect();
    let (first, last) = (early[0].exec_index, early[9].exec_index);
    fin.nodes.insert(
        format!("n1:{first}-{last}"),
        checker::final_state::NodeFinal {
            balances: None,
            executed: early,
            error: None,
        },
    );
    fin.write(dir.path().join("final.json")).unwrap();
    let results = check_run(dir.path()).unwrap();
    assert_eq!(results.valid, Validity::Valid, "{}", results.summary());
    let names: Vec<&str> = results
        .final_state
        .nodes
        .iter()
        .map(|n| n.name.as_str())
        .collect();
    assert_eq!(names.len(), run.options.nodes, "{names:?}");
    let n1 = &results.final_state.nodes[0];
    assert_eq!(
        (n1.name.as_str(), n1.stretches, n1.first_exec),
        ("n1", 1, first)
    );
    assert_eq!(
        n1.ranges,
        vec![(first, n1.last_exec)],
        "touching stretches merge"
    );
    assert!(results
        .summary()
        .contains(&format!("{} replicas", run.options.nodes)));
    let written = report::write_report(dir.path(), &results).unwrap();
    let html = std::fs::read_to_string(written.html).unwrap();
    assert!(!html.contains("..="), "no Rust range syntax");
    assert!(
        !html.contains("n1:"),
        "no journal stretch shown as a replica"
    );
    let table = &html[html.find("Replicas' final state").unwrap()..];
    assert!(
        table.contains("<th class=\"num\">A</th>")
            && table.contains("<th class=\"num\">total</th>")
    );
    let total = run.options.initial_balance * run.options.accounts as i64;
    assert!(table.contains(&format!("<td class=\"num\">{total}</td>")));
}

#[test]
fn a_replica_with_other_balances_is_highlighted() {
    let (dir, run) = written_run();
    let diffs = |dir: &Path| {
        let results = check_run(dir).unwrap();
        let written = report::write_report(dir, &results).unwrap();
        let html = std::fs::read_to_string(written.html).unwrap();
        let table = &html[html.find("Replicas' final state").unwrap()..];
        table.matches("class=\"num diff\"").count()
    };
    // A lagging replica's balances may differ already; n1 holds the whole log.
    let before = diffs(dir.path());
    let mut fin = run.final_state();
    let n1 = fin.nodes.get_mut("n1").unwrap();
    *n1.balances.as_mut().unwrap().get_mut("B").unwrap() += 1_000;
    fin.write(dir.path().join("final.json")).unwrap();
    assert_eq!(diffs(dir.path()), before + 2, "B and the total of n1");
}

#[test]
fn processes_past_the_workers_are_not_counted_as_clients() {
    let (dir, run) = written_run();
    let toml = run.options.run_toml().replace(
        &format!("clients = {}", run.options.clients),
        &format!("clients = {}", run.options.clients - 2),
    );
    std::fs::write(dir.path().join("run.toml"), toml).unwrap();
    let results = check_run(dir.path()).unwrap();
    assert_eq!(results.history.clients, run.options.clients - 2);
    assert_eq!(results.history.internal_processes, 2);
    assert!(results.summary().contains("(+ 2 harness final reads)"));
}

#[test]
fn anomalies_are_listed_most_severe_first_with_a_count_per_kind() {
    use checker::checks::{Anomaly, AnomalyKind, OpFunction};
    let (dir, _run) = written_run();
    let mut results = check_run(dir.path()).unwrap();
    let eo = results.checks.get_mut("exactly-once").unwrap();
    eo.anomalies = vec![
        Anomaly::new(
            AnomalyKind::ExecutedTwice,
            "read_all by client 1 (request 2, history 5, 6) is in the log 2 times".into(),
            vec![5],
        )
        .about(Some(OpFunction::ReadAll)),
        Anomaly::new(
            AnomalyKind::ExecutedTwice,
            "read_all by client 2 (request 2, history 7, 8) is in the log 2 times".into(),
            vec![7],
        )
        .about(Some(OpFunction::ReadAll)),
        Anomaly::new(
            AnomalyKind::FailedButApplied,
            "transfer A->B 3 by client 3 (request 7, history 9, 12) was told it failed".into(),
            vec![9],
        )
        .about(Some(OpFunction::Transfer)),
        Anomaly::new(
            AnomalyKind::ClientOrder,
            "Client 4 issued transfer A->B 1 before read A, yet they executed at 9 and 8".into(),
            vec![11],
        ),
    ];
    eo.anomaly_count = 4;
    eo.valid = Validity::Invalid;
    let written = report::write_report(dir.path(), &results).unwrap();
    let html = std::fs::read_to_string(written.html).unwrap();
    let section = &html[html.find("<h2 id=\"anomalies\">Anomalies</h2>").unwrap()..];
    let serious = section.find("transfer told failed but applied").unwrap();
    let harmless = section.find("read_all executed twice").unwrap();
    assert!(serious < harmless, "the transfer comes first");
    assert!(
        section.contains("read_all executed twice</td><td class=\"num\">2</td>"),
        "counted per kind"
    );
    assert!(
        section.contains("(client-order, exactly-once; also real time order)"),
        "a kind names the kinds it implies"
    );
    let first_detail = section.find("<div class=\"anomaly ").unwrap();
    assert!(
        section[first_detail..].find("failed-but-applied").unwrap()
            < section[first_detail..].find("executed-twice").unwrap()
    );
}

#[test]
fn a_sharded_final_table_totals_each_shard_and_the_bank() {
    let dir = tempfile::tempdir().unwrap();
    gen::shards::generate(&GenOptions {
        seed: 5,
        events: 3_000,
        accounts: 8,
        shards: Some(gen::ShardGen::default()),
        ..GenOptions::default()
    })
    .write(dir.path())
    .unwrap();
    let results = check_run(dir.path()).unwrap();
    assert_eq!(results.valid, Validity::Valid, "{}", results.summary());
    let written = report::write_report(dir.path(), &results).unwrap();
    let html = std::fs::read_to_string(written.html).unwrap();
    let table = &html[html.find("id=\"final-state\"").unwrap()..];
    for shard in 1..=3 {
        assert!(
            table.contains(&format!("shard {shard} (")),
            "{}",
            &table[..table.len().min(4000)]
        );
    }
    assert!(table.contains("moved by cross-shard transfers"));
    // The bank-wide sum equals the bank's total, so it is not highlighted.
    let bank = &table[table.find("bank-wide sum").unwrap()..];
    assert!(bank.starts_with("bank-wide sum of the shards' totals (must equal the bank's total)</th><th class=\"num\">"), "{}", &bank[..200]);
    assert!(html.contains("Sharded faultline run"));
}
