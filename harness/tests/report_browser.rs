//! The pages a person opens, opened in a real browser: a valid run's report, an invalid
//! run's report, the campaign index, the per-process timeline and a scenario's report and
//! timeline are rendered by headless Chromium from saved or generated runs. Each screenshot must be written and show
//! something (not a blank page), and no page may log a console error (a script error, a
//! resource that failed to load).
//!
//! Chromium is an external program: when it is missing the test says so loudly and
//! passes, unless `FAULTLINE_REQUIRE_CHROMIUM` is set (CI sets it after installing it).
//! With `FAULTLINE_SCREENS=<dir>` the screenshots are also copied there to look at.
//!
//! The invalid run's page must tell the morning reader why at once: Chromium's rendered DOM
//! of it must hold the one-line cause at the top, a link from an anomaly to the box of its
//! operation on a timeline page (which must exist there, highlighted), and the timeline's
//! pages labelled by their time range.

use harness::params::RunParams;
use harness::run::rundir::RunInfo;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest one page may take to render.
const RENDER_TIMEOUT: Duration = Duration::from_secs(90);

fn chromium() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("FAULTLINE_CHROMIUM").map(PathBuf::from),
        Some(PathBuf::from("/usr/bin/chromium")),
        Some(PathBuf::from("/usr/bin/chromium-browser")),
    ];
    candidates.into_iter().flatten().find(|p| p.is_file())
}

fn saved(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/checker")
        .join(name)
}

/// Checks the run in `dir` and writes its report.
fn check_and_report(dir: &Path) {
    let results = checker::check_run(dir).unwrap();
    checker::report::write_report(dir, &results).unwrap();
}

/// A run directory under `out` holding a saved history and final state (five accounts
/// of 10), with a harness run.toml, checked and reported.
fn saved_run(out: &Path, name: &str, src: &Path, seed: u64) -> PathBuf {
    let dir = out.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["history.jsonl", "final.json"] {
        std::fs::copy(src.join(file), dir.join(file)).unwrap();
    }
    RunInfo {
        accounts: ["A", "B", "C", "D", "E"].map(String::from).to_vec(),
        initial_balance: 10,
        seed,
        kind: "campaign".into(),
        started_at: "2026-12-02T00:00:00Z".into(),
        replica_bin: "replica".into(),
        replica_version: "test".into(),
        harness_version: "test".into(),
        replays: None,
        target: harness::params::TargetKind::Faultline,
        params: RunParams::default(),
        shards: Vec::new(),
    }
    .write(&dir)
    .unwrap();
    check_and_report(&dir);
    dir
}

/// A generated valid run with faults (kills, pauses, partitions), a few thousand events.
fn generated_run(tmp: &Path) -> PathBuf {
    let src = tmp.join("generated");
    checker::gen::generate(&checker::gen::GenOptions {
        seed: 7,
        events: 4_000,
        ..checker::gen::GenOptions::default()
    })
    .write(&src)
    .unwrap();
    src
}

/// A real `harness scenario` run saved whole (sets, leader kills), checked again.
fn scenario_run(out: &Path) -> PathBuf {
    let dir = out.join("20261202T000200Z-0");
    std::fs::create_dir_all(&dir).unwrap();
    let src = saved("scenario-leader-failures");
    for file in ["history.jsonl", "final.json", "run.toml", "scenario.csv"] {
        std::fs::copy(src.join(file), dir.join(file)).unwrap();
    }
    check_and_report(&dir);
    dir
}

/// What one page looked like in the browser.
struct Rendered {
    png: PathBuf,
    /// Chromium's log lines that report console messages or script errors.
    console: Vec<String>,
}

fn render(browser: &Path, page: &Path, png: &Path, profile: &Path) -> Rendered {
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1280,2000")
        .arg(&url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > RENDER_TIMEOUT {
            let _ = child.kill();
            panic!("chromium did not finish rendering {url} within {RENDER_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    let console = log
        .lines()
        .filter(|l| {
            l.contains(":CONSOLE") || l.contains("Uncaught") || l.contains("Failed to load")
        })
        .map(str::to_string)
        .collect();
    Rendered {
        png: png.to_path_buf(),
        console,
    }
}

/// The DOM Chromium builds from `page` (after any script ran).
fn dump_dom(browser: &Path, page: &Path, profile: &Path) -> String {
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let output = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(&url)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("chromium starts");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The text of the first element whose opening tag contains `marker`, tags stripped.
fn element_text(dom: &str, marker: &str) -> Option<String> {
    let at = dom.find(marker)?;
    let open_end = at + dom[at..].find('>')? + 1;
    let close = open_end + dom[open_end..].find("</")?;
    Some(
        dom[open_end..close]
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// Checks what the invalid run's report must show, from Chromium's DOM of it and of the
/// timeline page its first anomaly links to.
fn check_invalid_report(browser: &Path, run: &Path, tmp: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let dom = dump_dom(browser, &run.join("report.html"), &tmp.join("dom1"));
    match element_text(&dom, "id=\"cause\"") {
        Some(cause) if cause.starts_with("invalid: ") && cause.contains("first: ") => {
            let verdict = dom.find("class=\"verdict").unwrap_or(usize::MAX);
            let checks = dom.find("<h2>Checks</h2>").unwrap_or(0);
            let at = dom.find("id=\"cause\"").unwrap_or(usize::MAX);
            if !(verdict < at && at < checks) {
                problems.push("the one-line cause is not at the top, under the verdict".into());
            }
        }
        other => problems.push(format!(
            "no one-line cause at the top of the report: {other:?}"
        )),
    }
    let link = dom.find("class=\"tl-link\" href=\"").map(|at| {
        let rest = &dom[at + "class=\"tl-link\" href=\"".len()..];
        rest[..rest.find('"').unwrap_or(0)].to_string()
    });
    match link.as_deref().and_then(|l| l.split_once('#')) {
        Some((file, anchor)) if file.starts_with("timeline") && anchor.starts_with("op-") => {
            let page = dump_dom(browser, &run.join(file), &tmp.join("dom2"));
            let boxed = format!("id=\"{anchor}\" class=\"op ");
            match page.find(&boxed) {
                Some(at) if page[at..at + 80].contains("flagged") => {}
                Some(_) => problems.push(format!("{file}#{anchor} is not highlighted")),
                None => problems.push(format!("{file} has no box {anchor} the report links to")),
            }
            match element_text(&page, "<h1") {
                Some(h1) if h1.contains("page 1 of") && h1.contains(" s") && h1.contains('–') => {
                }
                other => problems.push(format!(
                    "the timeline page is not labelled by its time range: {other:?}"
                )),
            }
        }
        _ => problems.push(format!(
            "no anomaly links to its operation on the timeline: {link:?}"
        )),
    }
    match element_text(&dom, "id=\"timeline-pages\"") {
        Some(_) if dom.contains("page 1 · ") && dom.contains(" s</a>:") => {}
        _ => problems.push("the report does not list the timeline pages by time range".into()),
    }
    problems
}

/// Fraction of pixels that are not (near) white.
fn ink(png: &Path) -> f64 {
    let img = image::open(png)
        .unwrap_or_else(|e| panic!("{} is not a readable PNG: {e}", png.display()))
        .to_rgb8();
    let inked = img
        .pixels()
        .filter(|p| p.0.iter().any(|&c| c < 235))
        .count();
    inked as f64 / (img.width() * img.height()).max(1) as f64
}

#[test]
fn reports_index_and_timeline_render_in_chromium_without_console_errors() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("FAULTLINE_REQUIRE_CHROMIUM").is_none(),
            "FAULTLINE_REQUIRE_CHROMIUM is set but chromium is not installed"
        );
        eprintln!(
            "\n\n*** SKIPPED: chromium not found (/usr/bin/chromium); the report pages were NOT rendered. \
             Install it (apt-get install chromium) or set FAULTLINE_REQUIRE_CHROMIUM=1 to make this a failure. ***\n\n"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("reports");
    let valid = saved_run(&out, "20261202T000000Z-7", &generated_run(tmp.path()), 7);
    let invalid = saved_run(&out, "20261202T000100Z-8", &saved("lost-ack"), 8);
    let scenario = scenario_run(&out);
    harness::run::index::write_index(&out).unwrap();
    let report = std::fs::read_to_string(invalid.join("report.html")).unwrap();
    assert!(report.contains("harness replay") && report.contains("checker check"));
    assert!(report.contains("href=\"timeline.html\""));
    let invalid_problems = check_invalid_report(&browser, &invalid, tmp.path());
    assert!(
        invalid_problems.is_empty(),
        "the invalid run's report: {invalid_problems:#?}"
    );
    // A valid run has no cause of failure nor anomaly links: the check must see that.
    let control_dir = tmp.path().join("control");
    std::fs::create_dir_all(&control_dir).unwrap();
    assert!(
        check_invalid_report(&browser, &valid, &control_dir).len() >= 2,
        "the invalid-report check passes a valid run's page; it would be blind"
    );

    // A page with a script error must be caught, or the check below proves nothing.
    let broken = tmp.path().join("broken.html");
    std::fs::write(
        &broken,
        "<!DOCTYPE html><html><body><p>x</p><script>notDefinedAnywhere();</script></body></html>",
    )
    .unwrap();
    let shots = tmp.path().join("shots");
    std::fs::create_dir(&shots).unwrap();
    let control = render(
        &browser,
        &broken,
        &shots.join("control.png"),
        &tmp.path().join("p0"),
    );
    assert!(
        control
            .console
            .iter()
            .any(|l| l.contains("notDefinedAnywhere")),
        "chromium's log did not show a planted script error; the console check would be blind"
    );

    let pages = [
        ("report-valid", valid.join("report.html")),
        ("report-invalid", invalid.join("report.html")),
        ("campaign-index", out.join("index.html")),
        ("timeline", valid.join("timeline.html")),
        ("report-scenario", scenario.join("report.html")),
        ("timeline-scenario", scenario.join("timeline.html")),
    ];
    let keep = std::env::var_os("FAULTLINE_SCREENS").map(PathBuf::from);
    let mut problems = Vec::new();
    for (k, (name, page)) in pages.iter().enumerate() {
        let png = shots.join(format!("{name}.png"));
        let profile = tmp.path().join(format!("p{}", k + 1));
        let r = render(&browser, page, &png, &profile);
        assert!(r.png.is_file(), "no screenshot of {name} was written");
        let ink = ink(&r.png);
        if ink < 0.002 {
            problems.push(format!(
                "{name} looks blank ({:.2}% of pixels drawn)",
                ink * 100.0
            ));
        }
        if !r.console.is_empty() {
            problems.push(format!("{name} logged console errors: {:?}", r.console));
        }
        if let Some(dir) = &keep {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::copy(&r.png, dir.join(format!("{name}.png"))).unwrap();
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}
