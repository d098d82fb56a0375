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
    assert!(html.contains("Fault timeline") && html.contains("partition"));
    assert!(html.contains("initial_balance"), "run parameters shown");
    // results.json is written beside it and reads back.
    let back = checker::Results::read_json(&dir.path().join("results.json")).unwrap();
    assert_eq!(back, results);
}

#[test]
fn invalid_run_report_shows_the_anomaly_in_context() {
    let (_dir, results, html) = report_for(Some(Plant::WrongRead));
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
        })
        .chain(std::iter::once(LatencyPoint {
            start_ns: 50_000_000,
            latency_ns: 9_999_999,
            outcome: 0,
            f: 0,
        }))
        .collect();
    let kept = charts::downsample(&points, 1_000, 100_000_000);
    assert!(kept.len() <= 1_000);
    assert!(
        kept.iter().any(|p| p.latency_ns == 9_999_999),
        "the outlier survives"
    );
}
