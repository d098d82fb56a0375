//! Progress of a running campaign: elapsed / remaining, operations ok / fail / info and the fault
//! in force. A live bar (indicatif) on a terminal; a plain line every few seconds otherwise, so
//! CI logs and redirected output stay readable.

use crate::faults::processes::FaultLabel;
use crate::record::Recorder;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Interval of plain progress lines.
const LINE_EVERY: Duration = Duration::from_secs(5);
/// Refresh of the live bar.
const TICK: Duration = Duration::from_millis(200);

pub struct Progress {
    task: Option<JoinHandle<()>>,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Nothing shown (`--no-progress`).
    pub fn hidden() -> Progress {
        Progress {
            task: None,
            bar: None,
        }
    }

    /// Starts showing the progress of a workload of `total` that began at `start`.
    pub fn start(
        recorder: Arc<Recorder>,
        label: FaultLabel,
        start: Instant,
        total: Duration,
    ) -> Progress {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total.as_millis() as u64);
            let style = ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{bar:30}] {eta} left  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style.progress_chars("=> "));
            let shown = bar.clone();
            let task = tokio::spawn(async move {
                loop {
                    let elapsed = start.elapsed().min(total);
                    shown.set_position(elapsed.as_millis() as u64);
                    shown.set_message(status_text(&recorder, &label));
                    tokio::time::sleep(TICK).await;
                }
            });
            Progress {
                task: Some(task),
                bar: Some(bar),
            }
        } else {
            let task = tokio::spawn(async move {
                loop {
                    tokio::time::sleep(LINE_EVERY).await;
                    let elapsed = start.elapsed();
                    let left = total.saturating_sub(elapsed);
                    eprintln!(
                        "[{:>5.0}s elapsed, {:>4.0}s left] {}",
                        elapsed.as_secs_f64(),
                        left.as_secs_f64(),
                        status_text(&recorder, &label)
                    );
                }
            });
            Progress {
                task: Some(task),
                bar: None,
            }
        }
    }

    /// Stops the display (the bar is cleared).
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `ok 120  fail 7  info 1  fault: killed n3`.
pub fn status_text(recorder: &Recorder, label: &FaultLabel) -> String {
    let (_, ok, fail, info) = recorder.counts.snapshot();
    let fault = label.lock().map(|l| l.clone()).unwrap_or_default();
    format!("ok {ok}  fail {fail}  info {info}  fault: {fault}")
}
